-- Offline licensing (issue 8): the activation history, which is also the anti-reuse ledger, and
-- the license clock. Twin of the PostgreSQL migration.

-- Append-only; the newest row is the license in force. Each row carries a receipt signed with
-- the deployment's seed-derived Ed25519 key, checked at every start.
CREATE TABLE license_activations (
    seq               INTEGER NOT NULL PRIMARY KEY CHECK (seq >= 1),
    license_id        TEXT    NOT NULL,
    serial            INTEGER NOT NULL CHECK (serial BETWEEN 0 AND 4294967295),
    issued_at_ms      INTEGER NOT NULL,
    license_sha256    TEXT    NOT NULL,
    license_file      TEXT    NOT NULL,
    activated_at_ms   INTEGER NOT NULL,
    receipt           TEXT    NOT NULL,
    receipt_signature TEXT    NOT NULL
) STRICT;
CREATE INDEX license_activations_by_id ON license_activations (license_id, serial);

CREATE TRIGGER license_activations_append_only_update BEFORE UPDATE ON license_activations
BEGIN SELECT RAISE(ABORT, 'license_activations is append-only'); END;
CREATE TRIGGER license_activations_append_only_delete BEFORE DELETE ON license_activations
BEGIN SELECT RAISE(ABORT, 'license_activations is append-only'); END;

-- One row: the latest time this deployment has seen, and the last expiry warning written.
CREATE TABLE license_clock (
    id              INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),
    last_seen_ms    INTEGER NOT NULL,
    warned_at_ms    INTEGER,
    read_only_noted INTEGER NOT NULL DEFAULT 0 CHECK (read_only_noted IN (0, 1)),
    -- Activations up to this position no longer floor the clock (set by an audited reset).
    reset_after_seq INTEGER NOT NULL DEFAULT 0,
    -- When the reset happened; with reset_after_seq signed by the deployment key (unsigned,
    -- the reset counts for nothing).
    reset_at_ms     INTEGER NOT NULL DEFAULT 0,
    reset_signature TEXT
) STRICT;
INSERT INTO license_clock (id, last_seen_ms) VALUES (1, 0);

-- The operator org: the first org, made by setup; its owners manage the deployment's license
-- and create further orgs. Recorded, so that no later org can take its place.
ALTER TABLE instance ADD COLUMN operator_org BLOB REFERENCES orgs (id);
UPDATE instance SET operator_org = (SELECT id FROM orgs ORDER BY created_at, id LIMIT 1);
