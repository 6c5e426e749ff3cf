-- Deployment, accounts, organisations and memberships.
-- Same tables and meaning as bulwark-store-postgres/migrations/0001; UUIDs are 16-byte BLOBs,
-- times are RFC 3339 TEXT in UTC.

CREATE TABLE instance (
    id                 INTEGER PRIMARY KEY CHECK (id = 1),
    deployment_id      BLOB    NOT NULL,
    seed_check         BLOB    NOT NULL,
    setup_token_hash   BLOB,
    setup_completed_at TEXT,
    created_at         TEXT    NOT NULL
) STRICT;

CREATE TABLE users (
    id            BLOB PRIMARY KEY,
    email         TEXT NOT NULL,
    email_key     TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    created_at    TEXT NOT NULL
) STRICT;

CREATE TABLE orgs (
    id         BLOB PRIMARY KEY,
    slug       TEXT NOT NULL UNIQUE,
    name       TEXT NOT NULL,
    created_at TEXT NOT NULL
) STRICT;

CREATE TABLE memberships (
    org_id     BLOB NOT NULL REFERENCES orgs (id),
    user_id    BLOB NOT NULL REFERENCES users (id),
    role       TEXT NOT NULL CHECK (role IN ('owner', 'admin', 'member', 'auditor')),
    created_at TEXT NOT NULL,
    PRIMARY KEY (org_id, user_id)
) STRICT;
