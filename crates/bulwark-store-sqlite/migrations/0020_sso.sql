-- Enterprise SSO (issue 21). Same meaning as bulwark-store-postgres/migrations/0020:
-- sso_connections: an org's identity providers (OIDC or SAML); the non-secret settings as JSON,
-- the client secret or private key as a vault credential, referenced;
-- sso_domains: email domains an org claims for home-realm discovery, unique across the
-- deployment, routing sign-ins only once verified;
-- sso_settings: the org's sign-in rules (SSO required, the emails that may hold owner/admin
-- through SSO, whether the IdP's MFA counts);
-- sso_identities: (connection, subject) bound to a user;
-- sso_sessions: which IdP sign-in made a session (back-channel logout ends them);
-- sso_replay: single-use values (OIDC state, SAML request and assertion ids) until they expire.
-- Times are Unix milliseconds.

CREATE TABLE sso_connections (
    org_id     BLOB    NOT NULL REFERENCES orgs (id),
    id         BLOB    NOT NULL PRIMARY KEY,
    protocol   TEXT    NOT NULL CHECK (protocol IN ('oidc', 'saml')),
    name       TEXT    NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    config     TEXT    NOT NULL,
    secret_id  BLOB    REFERENCES credentials (id),
    enabled    INTEGER NOT NULL CHECK (enabled IN (0, 1)),
    created_ms INTEGER NOT NULL,
    updated_ms INTEGER NOT NULL,
    UNIQUE (org_id, name)
) STRICT;

CREATE TABLE sso_domains (
    domain      TEXT    NOT NULL PRIMARY KEY CHECK (length(domain) BETWEEN 1 AND 253),
    org_id      BLOB    NOT NULL REFERENCES orgs (id),
    created_ms  INTEGER NOT NULL,
    verified_ms INTEGER,
    verified_by TEXT
) STRICT;
CREATE INDEX sso_domains_org_idx ON sso_domains (org_id);

CREATE TABLE sso_settings (
    org_id       BLOB    NOT NULL PRIMARY KEY REFERENCES orgs (id),
    sso_required INTEGER NOT NULL CHECK (sso_required IN (0, 1)),
    admin_emails TEXT    NOT NULL,
    idp_mfa      INTEGER NOT NULL CHECK (idp_mfa IN (0, 1)),
    updated_ms   INTEGER NOT NULL
) STRICT;

CREATE TABLE sso_identities (
    org_id        BLOB    NOT NULL REFERENCES orgs (id),
    connection_id BLOB    NOT NULL REFERENCES sso_connections (id) ON DELETE CASCADE,
    subject       TEXT    NOT NULL CHECK (length(subject) BETWEEN 1 AND 512),
    user_id       BLOB    NOT NULL REFERENCES users (id),
    created_ms    INTEGER NOT NULL,
    last_ms       INTEGER NOT NULL,
    PRIMARY KEY (connection_id, subject)
) STRICT;
CREATE INDEX sso_identities_org_idx ON sso_identities (org_id, user_id);

CREATE TABLE sso_sessions (
    session_id    BLOB NOT NULL PRIMARY KEY REFERENCES sessions (id),
    connection_id BLOB NOT NULL,
    subject       TEXT NOT NULL,
    sid           TEXT
) STRICT;
CREATE INDEX sso_sessions_subject_idx ON sso_sessions (connection_id, subject);
CREATE INDEX sso_sessions_sid_idx ON sso_sessions (connection_id, sid);

CREATE TABLE sso_replay (
    key        TEXT    NOT NULL PRIMARY KEY,
    expires_ms INTEGER NOT NULL
) STRICT;
