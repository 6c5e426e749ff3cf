-- The credential vault (issue 6). Same meaning as bulwark-store-sqlite/migrations/0013.
--
-- vault_keys: the key versions of the vault, deployment-wide. Exactly one is `active` (new
-- values are sealed under it); the versions it replaced are `previous` until the rewrap job has
-- moved every credential off them, then `retired`. No key material is stored here: the KEK of
-- a version is derived from the workspace seed or held by an HSM.
--
-- credentials: an org's integration credentials. The value is sealed with its own data key
-- (AES-256-GCM); the data key is wrapped by the KEK of key_version. Metadata is in the clear.
-- A version can be retired only when no credential uses it (bulwark_vault_retire checks that
-- across orgs, which row-level security hides from the application role).

CREATE TABLE vault_keys (
    version    INTEGER     PRIMARY KEY CHECK (version >= 1),
    provider   TEXT        NOT NULL CHECK (provider IN ('seed', 'pkcs11')),
    state      TEXT        NOT NULL CHECK (state IN ('active', 'previous', 'retired')),
    created_at TIMESTAMPTZ NOT NULL,
    retired_at TIMESTAMPTZ,
    CHECK ((state = 'retired') = (retired_at IS NOT NULL))
);
CREATE UNIQUE INDEX vault_keys_one_active ON vault_keys (state) WHERE state = 'active';

CREATE TABLE credentials (
    org_id       UUID        NOT NULL REFERENCES orgs (id),
    id           UUID        NOT NULL PRIMARY KEY,
    name         TEXT        NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    kind         TEXT        NOT NULL,
    destinations TEXT        NOT NULL,
    key_version  INTEGER     NOT NULL REFERENCES vault_keys (version),
    wrapped_key  BYTEA       NOT NULL,
    ciphertext   BYTEA       NOT NULL,
    created_by   UUID        REFERENCES users (id),
    created_at   TIMESTAMPTZ NOT NULL,
    updated_at   TIMESTAMPTZ NOT NULL,
    last_used_at TIMESTAMPTZ,
    CONSTRAINT credentials_org_id_name_key UNIQUE (org_id, name)
);
CREATE INDEX credentials_key_version_idx ON credentials (key_version, org_id);
-- The rewrap job walks an org's rows under older versions in (version, id) order.
CREATE INDEX credentials_rewrap_idx ON credentials (org_id, key_version, id);

ALTER TABLE credentials ENABLE ROW LEVEL SECURITY;
ALTER TABLE credentials FORCE ROW LEVEL SECURITY;
CREATE POLICY credentials_current_org ON credentials
    USING (org_id = NULLIF(current_setting('app.current_org_id', true), '')::uuid)
    WITH CHECK (org_id = NULLIF(current_setting('app.current_org_id', true), '')::uuid);
CREATE POLICY credentials_owner_lookup ON credentials FOR SELECT TO CURRENT_USER USING (true);

-- Org ids only: the rewrap job then works inside each org's own transaction.
CREATE FUNCTION bulwark_vault_stale_orgs(p_active integer) RETURNS SETOF uuid
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
    SELECT DISTINCT org_id FROM credentials WHERE key_version < p_active
$$;

-- Counts only, never a row.
CREATE FUNCTION bulwark_vault_counts() RETURNS TABLE (version integer, n bigint)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
    SELECT key_version, count(*) FROM credentials GROUP BY key_version
$$;

-- Whether any credential is sealed under p_version.
CREATE FUNCTION bulwark_vault_in_use(p_version integer) RETURNS boolean
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
    SELECT EXISTS (SELECT 1 FROM credentials WHERE key_version = p_version)
$$;

REVOKE ALL ON FUNCTION bulwark_vault_stale_orgs(integer) FROM PUBLIC;
REVOKE ALL ON FUNCTION bulwark_vault_counts() FROM PUBLIC;
REVOKE ALL ON FUNCTION bulwark_vault_in_use(integer) FROM PUBLIC;
