-- The two roles and the database of docs/postgres.md ("Two roles"), made once by the postgres
-- image's entrypoint when its data volume is new (/docker-entrypoint-initdb.d), as the
-- superuser, through psql.
--
-- The passwords are not written here: they are read from the URLs Bulwark itself uses, the
-- Compose secrets bulwark_owner_url and bulwark_app_url, so that each password is kept in one
-- place. Each URL must be postgres://bulwark_owner:PASSWORD@… and postgres://bulwark_app:PASSWORD@…
-- with a password of letters and digits (deploy/compose/make-secrets writes hex).
--
-- deploy/check/run runs this file against a throwaway PostgreSQL 15 (with -v secrets=DIR).

\set ON_ERROR_STOP on
\if :{?secrets}
\else
\set secrets /run/secrets
\endif

\set owner_url `cat :secrets/bulwark_owner_url`
\set app_url `cat :secrets/bulwark_app_url`

SELECT substring(:'owner_url' from '^postgres(?:ql)?://bulwark_owner:([A-Za-z0-9]+)@') AS owner_password,
       substring(:'app_url' from '^postgres(?:ql)?://bulwark_app:([A-Za-z0-9]+)@') AS app_password
\gset

SELECT :{?owner_password} AND :{?app_password} AS urls_ok
\gset
\if :urls_ok
\else
DO $$ BEGIN
    RAISE EXCEPTION 'bulwark_owner_url and bulwark_app_url must be postgres://bulwark_owner:PASSWORD@… and postgres://bulwark_app:PASSWORD@…, the password letters and digits';
END $$;
\endif

-- Neither role may bypass row-level security; the application role owns nothing and is a
-- member of nothing (`migrate` and `serve` check both).
CREATE ROLE bulwark_owner LOGIN PASSWORD :'owner_password' NOSUPERUSER NOBYPASSRLS;
CREATE ROLE bulwark_app LOGIN PASSWORD :'app_password' NOSUPERUSER NOBYPASSRLS;
CREATE DATABASE bulwark OWNER bulwark_owner;
