-- Enterprise SSO (issue 21). Same meaning as bulwark-store-sqlite/migrations/0020:
-- sso_connections: an org's identity providers (OIDC or SAML); the non-secret settings as JSON,
-- the client secret or private key as a vault credential, referenced;
-- sso_domains: email domains an org claims for home-realm discovery, unique across the
-- deployment, routing sign-ins only once verified;
-- sso_settings: the org's sign-in rules (SSO required, the emails that may hold owner/admin
-- through SSO, whether the IdP's MFA counts);
-- sso_identities: (connection, subject) bound to a user;
-- sso_sessions: which IdP sign-in made a session (back-channel logout ends them); deployment-wide
-- like sessions;
-- sso_replay: single-use values (OIDC state, SAML request and assertion ids) until they expire;
-- deployment-wide, checked before any organisation is known.
-- Times are Unix milliseconds.

CREATE TABLE sso_connections (
    org_id     UUID    NOT NULL REFERENCES orgs (id),
    id         UUID    NOT NULL PRIMARY KEY,
    protocol   TEXT    NOT NULL CHECK (protocol IN ('oidc', 'saml')),
    name       TEXT    NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    config     TEXT    NOT NULL,
    secret_id  UUID    REFERENCES credentials (id),
    enabled    BOOLEAN NOT NULL,
    created_ms BIGINT  NOT NULL,
    updated_ms BIGINT  NOT NULL,
    CONSTRAINT sso_connections_org_id_name_key UNIQUE (org_id, name)
);

CREATE TABLE sso_domains (
    domain      TEXT   NOT NULL CONSTRAINT sso_domains_pkey PRIMARY KEY
                       CHECK (length(domain) BETWEEN 1 AND 253),
    org_id      UUID   NOT NULL REFERENCES orgs (id),
    created_ms  BIGINT NOT NULL,
    verified_ms BIGINT,
    verified_by TEXT
);
CREATE INDEX sso_domains_org_idx ON sso_domains (org_id);

CREATE TABLE sso_settings (
    org_id       UUID    NOT NULL PRIMARY KEY REFERENCES orgs (id),
    sso_required BOOLEAN NOT NULL,
    admin_emails TEXT    NOT NULL,
    idp_mfa      BOOLEAN NOT NULL,
    updated_ms   BIGINT  NOT NULL
);

CREATE TABLE sso_identities (
    org_id        UUID   NOT NULL REFERENCES orgs (id),
    connection_id UUID   NOT NULL REFERENCES sso_connections (id) ON DELETE CASCADE,
    subject       TEXT   NOT NULL CHECK (length(subject) BETWEEN 1 AND 512),
    user_id       UUID   NOT NULL REFERENCES users (id),
    created_ms    BIGINT NOT NULL,
    last_ms       BIGINT NOT NULL,
    PRIMARY KEY (connection_id, subject)
);
CREATE INDEX sso_identities_org_idx ON sso_identities (org_id, user_id);

CREATE TABLE sso_sessions (
    session_id    UUID NOT NULL PRIMARY KEY REFERENCES sessions (id),
    connection_id UUID NOT NULL,
    subject       TEXT NOT NULL,
    sid           TEXT
);
CREATE INDEX sso_sessions_subject_idx ON sso_sessions (connection_id, subject);
CREATE INDEX sso_sessions_sid_idx ON sso_sessions (connection_id, sid);

CREATE TABLE sso_replay (
    key        TEXT   NOT NULL PRIMARY KEY,
    expires_ms BIGINT NOT NULL
);

ALTER TABLE sso_connections ENABLE ROW LEVEL SECURITY;
ALTER TABLE sso_connections FORCE ROW LEVEL SECURITY;
CREATE POLICY sso_connections_current_org ON sso_connections
    USING (org_id = NULLIF(current_setting('app.current_org_id', true), '')::uuid)
    WITH CHECK (org_id = NULLIF(current_setting('app.current_org_id', true), '')::uuid);
CREATE POLICY sso_connections_owner_lookup ON sso_connections FOR SELECT TO CURRENT_USER USING (true);

ALTER TABLE sso_domains ENABLE ROW LEVEL SECURITY;
ALTER TABLE sso_domains FORCE ROW LEVEL SECURITY;
CREATE POLICY sso_domains_current_org ON sso_domains
    USING (org_id = NULLIF(current_setting('app.current_org_id', true), '')::uuid)
    WITH CHECK (org_id = NULLIF(current_setting('app.current_org_id', true), '')::uuid);
CREATE POLICY sso_domains_owner_lookup ON sso_domains FOR SELECT TO CURRENT_USER USING (true);

ALTER TABLE sso_settings ENABLE ROW LEVEL SECURITY;
ALTER TABLE sso_settings FORCE ROW LEVEL SECURITY;
CREATE POLICY sso_settings_current_org ON sso_settings
    USING (org_id = NULLIF(current_setting('app.current_org_id', true), '')::uuid)
    WITH CHECK (org_id = NULLIF(current_setting('app.current_org_id', true), '')::uuid);

ALTER TABLE sso_identities ENABLE ROW LEVEL SECURITY;
ALTER TABLE sso_identities FORCE ROW LEVEL SECURITY;
CREATE POLICY sso_identities_current_org ON sso_identities
    USING (org_id = NULLIF(current_setting('app.current_org_id', true), '')::uuid)
    WITH CHECK (org_id = NULLIF(current_setting('app.current_org_id', true), '')::uuid);

-- Before any organisation is known: which org a connection belongs to (the callback URL names
-- the connection), and which org has claimed a domain and whether it is verified (home-realm
-- discovery). Nothing else of the rows.
CREATE FUNCTION bulwark_sso_connection_org(p_id uuid) RETURNS uuid
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
    SELECT org_id FROM sso_connections WHERE id = p_id
$$;
REVOKE ALL ON FUNCTION bulwark_sso_connection_org(uuid) FROM PUBLIC;

CREATE FUNCTION bulwark_sso_domain_org(p_domain text)
RETURNS TABLE (org_id uuid, verified boolean)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
    SELECT org_id, verified_ms IS NOT NULL FROM sso_domains WHERE domain = p_domain
$$;
REVOKE ALL ON FUNCTION bulwark_sso_domain_org(text) FROM PUBLIC;
