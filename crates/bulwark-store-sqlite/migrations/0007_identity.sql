-- Operator identity: account state, MFA, single-use tokens, invitations, sign-in throttling and
-- per-org session and MFA policy. Same tables and meaning as
-- bulwark-store-postgres/migrations/0007.

ALTER TABLE users ADD COLUMN email_verified_at TEXT;
ALTER TABLE users ADD COLUMN disabled_at TEXT;

-- `mfa_pending`: the password matched but the second factor is still owed; such a session can
-- only complete MFA. `mfa_at`: when this session passed a second factor.
ALTER TABLE sessions ADD COLUMN stage TEXT NOT NULL DEFAULT 'active'
    CHECK (stage IN ('active', 'mfa_pending'));
ALTER TABLE sessions ADD COLUMN mfa_at TEXT;

ALTER TABLE orgs ADD COLUMN session_idle_secs INTEGER
    CHECK (session_idle_secs BETWEEN 120 AND 86400);
ALTER TABLE orgs ADD COLUMN session_absolute_secs INTEGER
    CHECK (session_absolute_secs BETWEEN 600 AND 2592000);
ALTER TABLE orgs ADD COLUMN mfa_required TEXT NOT NULL DEFAULT 'owners'
    CHECK (mfa_required IN ('none', 'owners', 'owners_admins'));
ALTER TABLE orgs ADD COLUMN password_composition INTEGER NOT NULL DEFAULT 0
    CHECK (password_composition IN (0, 1));

-- One TOTP authenticator per user, its secret sealed (AES-256-GCM under a seed-derived key,
-- bound to the user id). `last_step` is the last time step accepted: a code for it or an
-- earlier step is refused, atomically, by the UPDATE that records a use.
CREATE TABLE mfa_totp (
    user_id       BLOB PRIMARY KEY REFERENCES users (id),
    secret_sealed BLOB NOT NULL,
    created_at    TEXT NOT NULL,
    enabled_at    TEXT,
    last_step     INTEGER CHECK (last_step >= 0)
) STRICT;

CREATE TABLE mfa_backup_codes (
    user_id    BLOB NOT NULL REFERENCES users (id),
    code_hash  BLOB NOT NULL CHECK (length(code_hash) = 32),
    created_at TEXT NOT NULL,
    used_at    TEXT,
    PRIMARY KEY (user_id, code_hash)
) STRICT;

-- Single-use tokens sent by email, stored as SHA-256 of the token.
CREATE TABLE user_tokens (
    token_hash BLOB PRIMARY KEY CHECK (length(token_hash) = 32),
    purpose    TEXT NOT NULL CHECK (purpose IN ('verify_email', 'reset_password')),
    user_id    BLOB NOT NULL REFERENCES users (id),
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    used_at    TEXT
) STRICT;

CREATE INDEX user_tokens_user_id_idx ON user_tokens (user_id);

CREATE TABLE invitations (
    id         BLOB PRIMARY KEY,
    org_id     BLOB NOT NULL REFERENCES orgs (id),
    token_hash BLOB NOT NULL UNIQUE CHECK (length(token_hash) = 32),
    email      TEXT NOT NULL,
    email_key  TEXT NOT NULL,
    role       TEXT NOT NULL CHECK (role IN ('owner', 'admin', 'member', 'auditor')),
    invited_by BLOB NOT NULL REFERENCES users (id),
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    accepted_at TEXT,
    revoked_at TEXT
) STRICT;

CREATE INDEX invitations_org_id_idx ON invitations (org_id);

-- Failed sign-ins per key (`ip:…`, `account:…`), shared by every process using this database.
CREATE TABLE login_throttle (
    key             TEXT    PRIMARY KEY,
    failures        INTEGER NOT NULL CHECK (failures >= 0),
    last_failure_at TEXT    NOT NULL
) STRICT;
