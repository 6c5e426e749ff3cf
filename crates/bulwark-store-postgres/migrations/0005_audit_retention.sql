-- Audit retention: an org may keep event bodies for a number of days (at least 30); older
-- bodies are pruned while their leaf hashes stay, so every proof and export still verifies.
-- Same meaning as bulwark-store-sqlite/migrations/0005.
--
-- The application role still has no UPDATE or DELETE on audit_events. Pruning runs only through
-- bulwark_audit_prune(), which executes as the table owner, reads the retention itself, prunes
-- only the org the transaction is bound to, and only bodies older than now() minus that
-- retention: even a compromised application cannot erase the last 30 days.

ALTER TABLE orgs ADD COLUMN audit_retention_days INTEGER NULL
    CHECK (audit_retention_days BETWEEN 30 AND 36500);

ALTER TABLE audit_events ALTER COLUMN body DROP NOT NULL;

CREATE OR REPLACE FUNCTION audit_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- The one permitted change: bulwark_audit_prune() clearing a body, nothing else.
    IF TG_OP = 'UPDATE' AND TG_TABLE_NAME = 'audit_events'
       AND current_setting('bulwark.audit_prune', true) = 'on'
       AND OLD.body IS NOT NULL AND NEW.body IS NULL
       AND (NEW.log, NEW.seq, NEW.org_id, NEW.event_id, NEW.time, NEW.action, NEW.leaf_hash)
           IS NOT DISTINCT FROM
           (OLD.log, OLD.seq, OLD.org_id, OLD.event_id, OLD.time, OLD.action, OLD.leaf_hash)
    THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION '% is append-only', TG_TABLE_NAME;
END
$$;

CREATE FUNCTION bulwark_audit_prune() RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
DECLARE
    v_org   uuid := NULLIF(current_setting('app.current_org_id', true), '')::uuid;
    v_days  integer;
    v_count bigint;
BEGIN
    IF v_org IS NULL THEN
        RAISE EXCEPTION 'bulwark_audit_prune: the transaction is not bound to an org';
    END IF;
    SELECT audit_retention_days INTO v_days FROM orgs WHERE id = v_org;
    IF v_days IS NULL THEN
        RETURN 0;
    END IF;
    PERFORM set_config('bulwark.audit_prune', 'on', true);
    UPDATE audit_events SET body = NULL
        WHERE org_id = v_org AND body IS NOT NULL
          AND time < now() - make_interval(days => v_days);
    GET DIAGNOSTICS v_count = ROW_COUNT;
    PERFORM set_config('bulwark.audit_prune', '', true);
    RETURN v_count;
END
$$;

REVOKE ALL ON FUNCTION bulwark_audit_prune() FROM PUBLIC;
