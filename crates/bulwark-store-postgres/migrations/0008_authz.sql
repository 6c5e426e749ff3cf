-- Authorization: teams and their members, and each org's own Cedar policies. Same tables and
-- meaning as bulwark-store-sqlite/migrations/0008. All three are tenant tables under row-level
-- security.
--
-- authz_policy_sets keeps every set an org ever activated (built-in and org parts, as hashed),
-- so a recorded decision can be replayed by its hash; orgs.authz_policy_hash names the one in
-- force (NULL: the built-in set alone).

ALTER TABLE orgs ADD COLUMN authz_policy_hash TEXT NULL
    CHECK (authz_policy_hash IS NULL OR length(authz_policy_hash) = 64);

CREATE TABLE authz_policy_sets (
    org_id     UUID        NOT NULL REFERENCES orgs (id),
    hash       TEXT        NOT NULL CHECK (length(hash) = 64),
    body       TEXT        NOT NULL,
    created_by UUID        NULL REFERENCES users (id),
    created_at TIMESTAMPTZ NOT NULL,
    CONSTRAINT authz_policy_sets_pkey PRIMARY KEY (org_id, hash)
);

CREATE TABLE teams (
    org_id     UUID        NOT NULL REFERENCES orgs (id),
    id         UUID        NOT NULL,
    name       TEXT        NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    created_at TIMESTAMPTZ NOT NULL,
    CONSTRAINT teams_pkey PRIMARY KEY (org_id, id),
    CONSTRAINT teams_org_id_name_key UNIQUE (org_id, name)
);

CREATE TABLE team_members (
    org_id  UUID NOT NULL,
    team_id UUID NOT NULL,
    user_id UUID NOT NULL,
    CONSTRAINT team_members_pkey PRIMARY KEY (org_id, team_id, user_id),
    FOREIGN KEY (org_id, team_id) REFERENCES teams (org_id, id) ON DELETE CASCADE,
    FOREIGN KEY (org_id, user_id) REFERENCES memberships (org_id, user_id) ON DELETE CASCADE
);

CREATE INDEX team_members_user_idx ON team_members (org_id, user_id);

ALTER TABLE authz_policy_sets ENABLE ROW LEVEL SECURITY;
ALTER TABLE authz_policy_sets FORCE ROW LEVEL SECURITY;
CREATE POLICY authz_policy_sets_current_org ON authz_policy_sets
    USING (org_id = NULLIF(current_setting('app.current_org_id', true), '')::uuid)
    WITH CHECK (org_id = NULLIF(current_setting('app.current_org_id', true), '')::uuid);

ALTER TABLE teams ENABLE ROW LEVEL SECURITY;
ALTER TABLE teams FORCE ROW LEVEL SECURITY;
CREATE POLICY teams_current_org ON teams
    USING (org_id = NULLIF(current_setting('app.current_org_id', true), '')::uuid)
    WITH CHECK (org_id = NULLIF(current_setting('app.current_org_id', true), '')::uuid);

ALTER TABLE team_members ENABLE ROW LEVEL SECURITY;
ALTER TABLE team_members FORCE ROW LEVEL SECURITY;
CREATE POLICY team_members_current_org ON team_members
    USING (org_id = NULLIF(current_setting('app.current_org_id', true), '')::uuid)
    WITH CHECK (org_id = NULLIF(current_setting('app.current_org_id', true), '')::uuid);
