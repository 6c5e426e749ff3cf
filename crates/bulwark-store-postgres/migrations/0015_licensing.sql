-- Offline licensing (issue 8): the activation history, which is also the anti-reuse ledger, and
-- the license clock. Deployment-wide data: no row-level security (see GLOBAL_TABLES).

-- Append-only: the application role may SELECT and INSERT, never UPDATE or DELETE. The newest
-- row is the license in force. Each row carries a receipt signed with the deployment's
-- seed-derived Ed25519 key, checked at every start.
CREATE TABLE license_activations (
    seq               BIGINT PRIMARY KEY CHECK (seq >= 1),
    license_id        TEXT   NOT NULL,
    serial            BIGINT NOT NULL CHECK (serial BETWEEN 0 AND 4294967295),
    issued_at_ms      BIGINT NOT NULL,
    license_sha256    TEXT   NOT NULL,
    license_file      TEXT   NOT NULL,
    activated_at_ms   BIGINT NOT NULL,
    receipt           TEXT   NOT NULL,
    receipt_signature TEXT   NOT NULL
);
CREATE INDEX license_activations_by_id ON license_activations (license_id, serial);

-- One row: the latest time this deployment has seen (a clock moved back behind it is refused
-- for activation and never extends a license), and the last expiry warning written.
CREATE TABLE license_clock (
    id              INTEGER PRIMARY KEY CHECK (id = 1),
    last_seen_ms    BIGINT  NOT NULL,
    warned_at_ms    BIGINT,
    read_only_noted BOOLEAN NOT NULL DEFAULT FALSE,
    -- Activations up to this position no longer floor the clock (set by an audited reset).
    reset_after_seq BIGINT  NOT NULL DEFAULT 0,
    -- When the reset happened; with reset_after_seq signed by the deployment key (unsigned,
    -- the reset counts for nothing).
    reset_at_ms     BIGINT  NOT NULL DEFAULT 0,
    reset_signature TEXT
);
INSERT INTO license_clock (id, last_seen_ms) VALUES (1, 0);

-- The owner-run count below must see every org's rows (as in migrations 0007 to 0014).
CREATE POLICY orgs_owner_lookup ON orgs FOR SELECT TO CURRENT_USER USING (true);
CREATE POLICY memberships_owner_lookup ON memberships FOR SELECT TO CURRENT_USER USING (true);

-- The operator org: the first org, made by setup; its owners manage the deployment's license
-- and create further orgs. Recorded, so that no later org can take its place.
ALTER TABLE instance ADD COLUMN operator_org UUID REFERENCES orgs (id);
UPDATE instance SET operator_org = (SELECT id FROM orgs ORDER BY created_at, id LIMIT 1);

-- Counts only, never a row: organisations, distinct users holding a membership (seats), and the
-- operator org.
CREATE FUNCTION bulwark_license_usage() RETURNS TABLE (orgs bigint, seats bigint, operator_org uuid)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
    SELECT (SELECT count(*) FROM orgs),
           (SELECT count(DISTINCT user_id) FROM memberships),
           (SELECT operator_org FROM instance WHERE id = 1)
$$;
REVOKE ALL ON FUNCTION bulwark_license_usage() FROM PUBLIC;
