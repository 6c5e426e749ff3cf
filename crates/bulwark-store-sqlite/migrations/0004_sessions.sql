-- Signed-in sessions. Same table and meaning as bulwark-store-postgres/migrations/0004 (a global
-- table: looked up by token hash before any org is known; it holds no tenant data).

CREATE TABLE sessions (
    id           BLOB PRIMARY KEY,
    token_hash   BLOB NOT NULL UNIQUE CHECK (length(token_hash) = 32),
    user_id      BLOB NOT NULL REFERENCES users (id),
    created_at   TEXT NOT NULL,
    last_seen_at TEXT NOT NULL,
    expires_at   TEXT NOT NULL,
    revoked_at   TEXT,
    source_ip    TEXT,
    user_agent   TEXT CHECK (length(user_agent) <= 500)
) STRICT;

CREATE INDEX sessions_user_id_idx ON sessions (user_id);
