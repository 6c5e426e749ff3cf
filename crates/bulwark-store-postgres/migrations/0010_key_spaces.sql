-- Key spaces (issue 5): keys a host application issues to its own customers and checks with
-- POST /v1/orgs/{org}/keys/verify. They live beside the org's own keys, named by their space
-- and owner (the customer, as the application names it); they never authenticate to Bulwark.
-- Same meaning as bulwark-store-sqlite/migrations/0010.

ALTER TABLE api_keys ADD COLUMN space TEXT
    CHECK (space IS NULL OR space ~ '^[a-z0-9][a-z0-9-]{0,62}$');
ALTER TABLE api_keys ADD COLUMN owner TEXT
    CHECK (owner IS NULL OR length(owner) BETWEEN 1 AND 200);
ALTER TABLE api_keys ADD CONSTRAINT api_keys_space_owner CHECK ((space IS NULL) = (owner IS NULL));
CREATE INDEX api_keys_space_idx ON api_keys (org_id, space, created_at);
