-- Org deletion with a grace window, crypto-shredding and signed certificates (ADR 0021). Same
-- version as bulwark-store-postgres/migrations/0023.
-- An org scheduled for deletion carries when it was asked, by whom and when it is due; a purged
-- org keeps only its row as a tombstone (id, `purged_at`, no name or slug of its own) so that its
-- sealed audit log keeps an owner. org_keys holds each org's random vault secret, mixed into
-- every data key wrapped for the org: deleting the row is the org's crypto-shredding.
ALTER TABLE orgs ADD COLUMN deletion_requested_at TEXT;
ALTER TABLE orgs ADD COLUMN deletion_requested_by TEXT;
ALTER TABLE orgs ADD COLUMN deletion_due_at TEXT;
ALTER TABLE orgs ADD COLUMN purged_at TEXT;
ALTER TABLE orgs ADD COLUMN audit_sealed_size INTEGER CHECK (audit_sealed_size >= 1);

CREATE TABLE org_keys (
    org_id     BLOB NOT NULL PRIMARY KEY REFERENCES orgs (id),
    id         BLOB NOT NULL UNIQUE,
    secret     BLOB NOT NULL CHECK (length(secret) = 32),
    created_at TEXT NOT NULL
) STRICT;

-- Deployment-wide: the certificate outlives the org it names.
CREATE TABLE deletion_certificates (
    org_id    BLOB NOT NULL PRIMARY KEY,
    purged_at TEXT NOT NULL,
    body      TEXT NOT NULL
) STRICT;

-- A purged org's audit log is sealed: its last event is `org.purged`, appended in the purge's
-- transaction, which then sets `audit_sealed_size` to the log's size; nothing may follow it but
-- the record of a person's erasure (a restore still loads the events below that size).
CREATE TRIGGER audit_events_sealed BEFORE INSERT ON audit_events
WHEN NEW.action != 'audit.erased'
    AND EXISTS (SELECT 1 FROM orgs WHERE id = NEW.org_id AND NEW.seq >= audit_sealed_size)
BEGIN
    SELECT RAISE(ABORT, 'the org was purged: its audit log is sealed');
END;

-- Retention per kind of record (docs/deletion.md) needs no schema here: ended sessions and closed
-- invitations are deleted by their times; PostgreSQL adds owner-run functions listing org ids.

-- Erasure of a person (ADR 0022): their account row stays as a tombstone (`erased_at`), and the
-- bodies of the events holding their personal data are replaced by redacted bodies through the
-- erase gate, open only inside an erasure's transaction. The leaf hash, and every other column,
-- never changes; a later `audit.erased` event records each redacted body's SHA-256, which the
-- offline verifier requires.
ALTER TABLE users ADD COLUMN erased_at TEXT;

CREATE TABLE audit_erase_gate (open INTEGER PRIMARY KEY CHECK (open = 1)) STRICT;

DROP TRIGGER audit_events_no_update;

CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events
WHEN NOT COALESCE((
    EXISTS (SELECT 1 FROM audit_prune_gate)
    AND OLD.body IS NOT NULL AND NEW.body IS NULL
    AND NEW.log IS OLD.log AND NEW.seq IS OLD.seq AND NEW.org_id IS OLD.org_id
    AND NEW.event_id IS OLD.event_id AND NEW.time IS OLD.time AND NEW.action IS OLD.action
    AND NEW.leaf_hash IS OLD.leaf_hash
    AND OLD.org_id IS NOT NULL
    AND julianday(OLD.time) < julianday('now')
        - (SELECT audit_retention_days FROM orgs WHERE id = OLD.org_id)
), 0) AND NOT COALESCE((
    EXISTS (SELECT 1 FROM audit_erase_gate)
    AND OLD.body IS NOT NULL AND NEW.body IS NOT NULL
    AND NEW.log IS OLD.log AND NEW.seq IS OLD.seq AND NEW.org_id IS OLD.org_id
    AND NEW.event_id IS OLD.event_id AND NEW.time IS OLD.time AND NEW.action IS OLD.action
    AND NEW.leaf_hash IS OLD.leaf_hash
), 0)
BEGIN
    SELECT RAISE(ABORT, 'audit_events is append-only: only a body older than its org''s retention may be pruned, or redacted by an erasure');
END;
