-- Authorization: teams and their members, and each org's own Cedar policies. Same tables and
-- meaning as bulwark-store-postgres/migrations/0008.
--
-- authz_policy_sets keeps every set an org ever activated (built-in and org parts, as hashed),
-- so a recorded decision can be replayed by its hash; orgs.authz_policy_hash names the one in
-- force (NULL: the built-in set alone).

ALTER TABLE orgs ADD COLUMN authz_policy_hash TEXT
    CHECK (authz_policy_hash IS NULL OR length(authz_policy_hash) = 64);

CREATE TABLE authz_policy_sets (
    org_id     BLOB NOT NULL REFERENCES orgs (id),
    hash       TEXT NOT NULL CHECK (length(hash) = 64),
    body       TEXT NOT NULL,
    created_by BLOB REFERENCES users (id),
    created_at TEXT NOT NULL,
    PRIMARY KEY (org_id, hash)
) STRICT;

CREATE TABLE teams (
    org_id     BLOB NOT NULL REFERENCES orgs (id),
    id         BLOB NOT NULL,
    name       TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    created_at TEXT NOT NULL,
    PRIMARY KEY (org_id, id),
    UNIQUE (org_id, name)
) STRICT;

CREATE TABLE team_members (
    org_id  BLOB NOT NULL,
    team_id BLOB NOT NULL,
    user_id BLOB NOT NULL,
    PRIMARY KEY (org_id, team_id, user_id),
    FOREIGN KEY (org_id, team_id) REFERENCES teams (org_id, id) ON DELETE CASCADE,
    FOREIGN KEY (org_id, user_id) REFERENCES memberships (org_id, user_id) ON DELETE CASCADE
) STRICT;

CREATE INDEX team_members_user_idx ON team_members (org_id, user_id);
