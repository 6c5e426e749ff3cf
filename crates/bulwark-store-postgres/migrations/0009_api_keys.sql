-- API keys of an org (issue 5). Only an HMAC of each key's secret under a seed-derived pepper
-- is stored. rotated_from links a key to the one it replaced, so a chain can be listed.
-- bulwark_api_key_org() maps a presented key's public id to its org id and nothing else
-- (row-level security hides keys outside the bound org); the key is then read inside that
-- org's transaction. Same meaning as bulwark-store-sqlite/migrations/0009.

CREATE TABLE api_keys (
    org_id       UUID        NOT NULL REFERENCES orgs (id),
    id           UUID        NOT NULL,
    name         TEXT        NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    scopes       TEXT        NOT NULL,
    verifier     BYTEA       NOT NULL CHECK (length(verifier) = 32),
    created_by   UUID        REFERENCES users (id),
    created_at   TIMESTAMPTZ NOT NULL,
    expires_at   TIMESTAMPTZ,
    revoked_at   TIMESTAMPTZ,
    rotated_from UUID,
    last_used_at TIMESTAMPTZ,
    CONSTRAINT api_keys_pkey PRIMARY KEY (id),
    CONSTRAINT api_keys_org_id_id_key UNIQUE (org_id, id),
    FOREIGN KEY (org_id, rotated_from) REFERENCES api_keys (org_id, id)
);

CREATE INDEX api_keys_org_idx ON api_keys (org_id, created_at);

ALTER TABLE api_keys ENABLE ROW LEVEL SECURITY;
ALTER TABLE api_keys FORCE ROW LEVEL SECURITY;
CREATE POLICY api_keys_current_org ON api_keys
    USING (org_id = NULLIF(current_setting('app.current_org_id', true), '')::uuid)
    WITH CHECK (org_id = NULLIF(current_setting('app.current_org_id', true), '')::uuid);
CREATE POLICY api_keys_owner_lookup ON api_keys FOR SELECT TO CURRENT_USER USING (true);

CREATE FUNCTION bulwark_api_key_org(p_id uuid) RETURNS uuid
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
    SELECT org_id FROM api_keys WHERE id = p_id
$$;

REVOKE ALL ON FUNCTION bulwark_api_key_org(uuid) FROM PUBLIC;
