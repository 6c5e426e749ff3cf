-- Audit retention: an org may keep event bodies for a number of days (at least 30); older
-- bodies are pruned while their leaf hashes stay, so every proof and export still verifies.
-- Same meaning as bulwark-store-postgres/migrations/0005.
--
-- SQLite has no roles: whoever can open the file can change it, which is why the signed
-- checkpoints are published outside it. The triggers stop every other statement; a prune opens
-- the gate (a row in audit_prune_gate) inside its own transaction and closes it before commit.

ALTER TABLE orgs ADD COLUMN audit_retention_days INTEGER
    CHECK (audit_retention_days BETWEEN 30 AND 36500);

CREATE TABLE audit_prune_gate (open INTEGER PRIMARY KEY CHECK (open = 1)) STRICT;

CREATE TABLE audit_events_v2 (
    log       TEXT    NOT NULL,
    seq       INTEGER NOT NULL CHECK (seq >= 0),
    org_id    BLOB,
    event_id  BLOB    NOT NULL UNIQUE,
    time      TEXT    NOT NULL,
    action    TEXT    NOT NULL,
    body      BLOB,
    leaf_hash BLOB    NOT NULL CHECK (length(leaf_hash) = 32),
    PRIMARY KEY (log, seq)
) STRICT;

INSERT INTO audit_events_v2 (log, seq, org_id, event_id, time, action, body, leaf_hash)
    SELECT log, seq, org_id, event_id, time, action, body, leaf_hash FROM audit_events;

DROP TABLE audit_events;
ALTER TABLE audit_events_v2 RENAME TO audit_events;

CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events
WHEN NOT (
    EXISTS (SELECT 1 FROM audit_prune_gate)
    AND OLD.body IS NOT NULL AND NEW.body IS NULL
    AND NEW.log IS OLD.log AND NEW.seq IS OLD.seq AND NEW.org_id IS OLD.org_id
    AND NEW.event_id IS OLD.event_id AND NEW.time IS OLD.time AND NEW.action IS OLD.action
    AND NEW.leaf_hash IS OLD.leaf_hash
)
BEGIN
    SELECT RAISE(ABORT, 'audit_events is append-only');
END;

CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events
BEGIN
    SELECT RAISE(ABORT, 'audit_events is append-only');
END;
