-- Deployment, accounts, organisations and memberships.
-- Same tables and meaning as bulwark-store-sqlite/migrations/0001.
--
-- Global tables (no row-level security): instance, users.
-- Tenant tables: row-level security ENABLEd and FORCEd, one policy each, keyed on the
-- transaction-local setting `app.current_org_id`. An unset setting reads as '' on a pooled
-- connection, hence NULLIF: '' becomes NULL, which matches no row (a bare ''::uuid would error).
-- INVARIANT: every table added to schema public is either listed in GLOBAL_TABLES (src/setup.rs)
-- or gets ENABLE + FORCE ROW LEVEL SECURITY and a policy; the catalog test enforces this.

CREATE TABLE instance (
    id                 SMALLINT    PRIMARY KEY CHECK (id = 1),
    deployment_id      UUID        NOT NULL,
    seed_check         BYTEA       NOT NULL,
    setup_token_hash   BYTEA       NULL,
    setup_completed_at TIMESTAMPTZ NULL,
    created_at         TIMESTAMPTZ NOT NULL
);

CREATE TABLE users (
    id            UUID        PRIMARY KEY,
    email         TEXT        NOT NULL,
    email_key     TEXT        NOT NULL CONSTRAINT users_email_key_key UNIQUE,
    password_hash TEXT        NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL
);

CREATE TABLE orgs (
    id         UUID        PRIMARY KEY,
    slug       TEXT        NOT NULL CONSTRAINT orgs_slug_key UNIQUE,
    name       TEXT        NOT NULL,
    created_at TIMESTAMPTZ NOT NULL
);

CREATE TABLE memberships (
    org_id     UUID        NOT NULL REFERENCES orgs (id),
    user_id    UUID        NOT NULL REFERENCES users (id),
    role       TEXT        NOT NULL CHECK (role IN ('owner', 'admin', 'member', 'auditor')),
    created_at TIMESTAMPTZ NOT NULL,
    CONSTRAINT memberships_pkey PRIMARY KEY (org_id, user_id)
);

CREATE INDEX memberships_user_id_idx ON memberships (user_id);

ALTER TABLE orgs ENABLE ROW LEVEL SECURITY;
ALTER TABLE orgs FORCE ROW LEVEL SECURITY;
CREATE POLICY orgs_current_org ON orgs
    USING (id = NULLIF(current_setting('app.current_org_id', true), '')::uuid)
    WITH CHECK (id = NULLIF(current_setting('app.current_org_id', true), '')::uuid);

ALTER TABLE memberships ENABLE ROW LEVEL SECURITY;
ALTER TABLE memberships FORCE ROW LEVEL SECURITY;
CREATE POLICY memberships_current_org ON memberships
    USING (org_id = NULLIF(current_setting('app.current_org_id', true), '')::uuid)
    WITH CHECK (org_id = NULLIF(current_setting('app.current_org_id', true), '')::uuid);
