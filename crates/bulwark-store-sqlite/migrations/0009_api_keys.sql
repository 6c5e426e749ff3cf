-- API keys of an org (issue 5). Same tables and meaning as
-- bulwark-store-postgres/migrations/0009: only an HMAC of each key's secret under a
-- seed-derived pepper is stored; rotated_from links a key to the one it replaced.

CREATE TABLE api_keys (
    org_id       BLOB NOT NULL REFERENCES orgs (id),
    id           BLOB NOT NULL PRIMARY KEY,
    name         TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    scopes       TEXT NOT NULL,
    verifier     BLOB NOT NULL CHECK (length(verifier) = 32),
    created_by   BLOB REFERENCES users (id),
    created_at   TEXT NOT NULL,
    expires_at   TEXT,
    revoked_at   TEXT,
    rotated_from BLOB,
    last_used_at TEXT,
    UNIQUE (org_id, id),
    FOREIGN KEY (org_id, rotated_from) REFERENCES api_keys (org_id, id)
) STRICT;

CREATE INDEX api_keys_org_idx ON api_keys (org_id, created_at);
