-- Key spaces (issue 5): keys a host application issues to its own customers. Same meaning as
-- bulwark-store-postgres/migrations/0010 (the name pattern is checked by the application here:
-- SQLite has no regular expressions).

ALTER TABLE api_keys ADD COLUMN space TEXT
    CHECK (space IS NULL OR length(space) BETWEEN 1 AND 63);
ALTER TABLE api_keys ADD COLUMN owner TEXT
    CHECK (owner IS NULL OR length(owner) BETWEEN 1 AND 200);
CREATE INDEX api_keys_space_idx ON api_keys (org_id, space, created_at);
