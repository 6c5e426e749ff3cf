-- SCIM provisioning (issue 22). Same meaning as bulwark-store-sqlite/migrations/0021:
-- scim_users: the org's identity provider's view of an account: userName (unique in the org,
-- compared case-insensitively through user_name_key), externalId, active, the rest of the SCIM
-- resource as JSON, and a version for ETags. emails_key holds the lower-cased email values, one
-- per line, so `emails co "…"` is answered by the database.
-- scim_groups: teams the identity provider manages (displayName is the team's name).
-- scim_group_members: who the identity provider put in a group, active or not; an active
-- member's team membership follows it (reactivation restores it).
-- All three are tenant tables under row-level security. Times are Unix milliseconds.

CREATE TABLE scim_users (
    org_id        UUID    NOT NULL REFERENCES orgs (id),
    user_id       UUID    NOT NULL REFERENCES users (id),
    user_name     TEXT    NOT NULL CHECK (length(user_name) BETWEEN 1 AND 1024),
    user_name_key TEXT    NOT NULL,
    external_id   TEXT             CHECK (length(external_id) BETWEEN 1 AND 1024),
    display_name  TEXT,
    emails_key    TEXT    NOT NULL,
    active        BOOLEAN NOT NULL,
    resource      TEXT    NOT NULL,
    version       BIGINT  NOT NULL,
    created_ms    BIGINT  NOT NULL,
    updated_ms    BIGINT  NOT NULL,
    CONSTRAINT scim_users_pkey PRIMARY KEY (org_id, user_id),
    CONSTRAINT scim_users_user_name UNIQUE (org_id, user_name_key)
);
CREATE INDEX scim_users_external_idx ON scim_users (org_id, external_id);
CREATE INDEX scim_users_created_idx ON scim_users (org_id, created_ms, user_id);

CREATE TABLE scim_groups (
    org_id      UUID   NOT NULL,
    team_id     UUID   NOT NULL,
    external_id TEXT            CHECK (length(external_id) BETWEEN 1 AND 1024),
    version     BIGINT NOT NULL,
    created_ms  BIGINT NOT NULL,
    updated_ms  BIGINT NOT NULL,
    CONSTRAINT scim_groups_pkey PRIMARY KEY (org_id, team_id),
    FOREIGN KEY (org_id, team_id) REFERENCES teams (org_id, id) ON DELETE CASCADE
);

CREATE TABLE scim_group_members (
    org_id  UUID NOT NULL,
    team_id UUID NOT NULL,
    user_id UUID NOT NULL,
    CONSTRAINT scim_group_members_pkey PRIMARY KEY (org_id, team_id, user_id),
    FOREIGN KEY (org_id, team_id) REFERENCES scim_groups (org_id, team_id) ON DELETE CASCADE,
    FOREIGN KEY (org_id, user_id) REFERENCES scim_users (org_id, user_id) ON DELETE CASCADE
);
CREATE INDEX scim_group_members_user_idx ON scim_group_members (org_id, user_id);

ALTER TABLE scim_users ENABLE ROW LEVEL SECURITY;
ALTER TABLE scim_users FORCE ROW LEVEL SECURITY;
CREATE POLICY scim_users_current_org ON scim_users
    USING (org_id = NULLIF(current_setting('app.current_org_id', true), '')::uuid)
    WITH CHECK (org_id = NULLIF(current_setting('app.current_org_id', true), '')::uuid);

ALTER TABLE scim_groups ENABLE ROW LEVEL SECURITY;
ALTER TABLE scim_groups FORCE ROW LEVEL SECURITY;
CREATE POLICY scim_groups_current_org ON scim_groups
    USING (org_id = NULLIF(current_setting('app.current_org_id', true), '')::uuid)
    WITH CHECK (org_id = NULLIF(current_setting('app.current_org_id', true), '')::uuid);

ALTER TABLE scim_group_members ENABLE ROW LEVEL SECURITY;
ALTER TABLE scim_group_members FORCE ROW LEVEL SECURITY;
CREATE POLICY scim_group_members_current_org ON scim_group_members
    USING (org_id = NULLIF(current_setting('app.current_org_id', true), '')::uuid)
    WITH CHECK (org_id = NULLIF(current_setting('app.current_org_id', true), '')::uuid);
