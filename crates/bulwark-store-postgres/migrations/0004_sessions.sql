-- Signed-in sessions. Same table and meaning as bulwark-store-sqlite/migrations/0004.
--
-- A global table (listed in GLOBAL_TABLES), like the users it belongs to: a session is looked up
-- by its token hash before any org is known. It holds no tenant data; the org a request acts on
-- comes from its URL and is checked against memberships, which stay under row-level security.

CREATE TABLE sessions (
    id           UUID        PRIMARY KEY,
    token_hash   BYTEA       NOT NULL CONSTRAINT sessions_token_hash_key UNIQUE
                             CHECK (octet_length(token_hash) = 32),
    user_id      UUID        NOT NULL REFERENCES users (id),
    created_at   TIMESTAMPTZ NOT NULL,
    last_seen_at TIMESTAMPTZ NOT NULL,
    expires_at   TIMESTAMPTZ NOT NULL,
    revoked_at   TIMESTAMPTZ NULL,
    source_ip    TEXT        NULL,
    user_agent   TEXT        NULL CHECK (char_length(user_agent) <= 500)
);

CREATE INDEX sessions_user_id_idx ON sessions (user_id);
