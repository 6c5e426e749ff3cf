-- The retention floor in the database itself: the prune gate lets through only the clearing of
-- a body older than its org's retention, by SQLite's own clock, as bulwark_audit_prune() does on
-- PostgreSQL (migration 0005 there). An org that keeps events forever (NULL retention), the
-- system log (no org) and every younger event are refused even with the gate open.
--
-- Event times are stored as RFC 3339 text, which julianday() reads. Whoever can write the file
-- can still drop this trigger: the offline verifier then flags every body erased younger than
-- the retention the log itself records (docs/audit.md).

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
), 0)
BEGIN
    SELECT RAISE(ABORT, 'audit_events is append-only: only a body older than its org''s retention may be pruned');
END;
