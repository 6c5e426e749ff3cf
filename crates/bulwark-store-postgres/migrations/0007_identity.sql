-- Operator identity: account state, MFA, single-use tokens, invitations, sign-in throttling and
-- per-org session and MFA policy. Same tables and meaning as
-- bulwark-store-sqlite/migrations/0007.
--
-- Global tables (GLOBAL_TABLES): mfa_totp, mfa_backup_codes, user_tokens, login_throttle. They
-- belong to users or client addresses, which are deployment-wide. Invitations are tenant data
-- under row-level security; the invitee presents only a token, so the owner-run
-- bulwark_invitation_org() maps a token hash to its org id and nothing else.

ALTER TABLE users ADD COLUMN email_verified_at TIMESTAMPTZ NULL;
ALTER TABLE users ADD COLUMN disabled_at TIMESTAMPTZ NULL;

ALTER TABLE sessions ADD COLUMN stage TEXT NOT NULL DEFAULT 'active'
    CHECK (stage IN ('active', 'mfa_pending'));
ALTER TABLE sessions ADD COLUMN mfa_at TIMESTAMPTZ NULL;

ALTER TABLE orgs ADD COLUMN session_idle_secs INTEGER NULL
    CHECK (session_idle_secs BETWEEN 120 AND 86400);
ALTER TABLE orgs ADD COLUMN session_absolute_secs INTEGER NULL
    CHECK (session_absolute_secs BETWEEN 600 AND 2592000);
ALTER TABLE orgs ADD COLUMN mfa_required TEXT NOT NULL DEFAULT 'owners'
    CHECK (mfa_required IN ('none', 'owners', 'owners_admins'));
ALTER TABLE orgs ADD COLUMN password_composition BOOLEAN NOT NULL DEFAULT false;

CREATE TABLE mfa_totp (
    user_id       UUID        PRIMARY KEY REFERENCES users (id),
    secret_sealed BYTEA       NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL,
    enabled_at    TIMESTAMPTZ NULL,
    last_step     BIGINT      NULL CHECK (last_step >= 0)
);

CREATE TABLE mfa_backup_codes (
    user_id    UUID        NOT NULL REFERENCES users (id),
    code_hash  BYTEA       NOT NULL CHECK (octet_length(code_hash) = 32),
    created_at TIMESTAMPTZ NOT NULL,
    used_at    TIMESTAMPTZ NULL,
    CONSTRAINT mfa_backup_codes_pkey PRIMARY KEY (user_id, code_hash)
);

CREATE TABLE user_tokens (
    token_hash BYTEA       PRIMARY KEY CHECK (octet_length(token_hash) = 32),
    purpose    TEXT        NOT NULL CHECK (purpose IN ('verify_email', 'reset_password')),
    user_id    UUID        NOT NULL REFERENCES users (id),
    created_at TIMESTAMPTZ NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL,
    used_at    TIMESTAMPTZ NULL
);

CREATE INDEX user_tokens_user_id_idx ON user_tokens (user_id);

CREATE TABLE invitations (
    id          UUID        PRIMARY KEY,
    org_id      UUID        NOT NULL REFERENCES orgs (id),
    token_hash  BYTEA       NOT NULL CONSTRAINT invitations_token_hash_key UNIQUE
                            CHECK (octet_length(token_hash) = 32),
    email       TEXT        NOT NULL,
    email_key   TEXT        NOT NULL,
    role        TEXT        NOT NULL CHECK (role IN ('owner', 'admin', 'member', 'auditor')),
    invited_by  UUID        NOT NULL REFERENCES users (id),
    created_at  TIMESTAMPTZ NOT NULL,
    expires_at  TIMESTAMPTZ NOT NULL,
    accepted_at TIMESTAMPTZ NULL,
    revoked_at  TIMESTAMPTZ NULL
);

CREATE INDEX invitations_org_id_idx ON invitations (org_id);

ALTER TABLE invitations ENABLE ROW LEVEL SECURITY;
ALTER TABLE invitations FORCE ROW LEVEL SECURITY;
CREATE POLICY invitations_current_org ON invitations
    USING (org_id = NULLIF(current_setting('app.current_org_id', true), '')::uuid)
    WITH CHECK (org_id = NULLIF(current_setting('app.current_org_id', true), '')::uuid);
CREATE POLICY invitations_owner_lookup ON invitations FOR SELECT TO CURRENT_USER USING (true);

CREATE FUNCTION bulwark_invitation_org(p_token_hash bytea) RETURNS uuid
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
    SELECT org_id FROM invitations WHERE token_hash = p_token_hash
$$;

REVOKE ALL ON FUNCTION bulwark_invitation_org(bytea) FROM PUBLIC;

CREATE TABLE login_throttle (
    key             TEXT        PRIMARY KEY,
    failures        INTEGER     NOT NULL CHECK (failures >= 0),
    last_failure_at TIMESTAMPTZ NOT NULL
);
