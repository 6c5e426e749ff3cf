-- Org deletion with a grace window, crypto-shredding and signed certificates (ADR 0021). Same
-- version as bulwark-store-sqlite/migrations/0023.
-- An org scheduled for deletion carries when it was asked, by whom and when it is due; a purged
-- org keeps only its row as a tombstone (id, `purged_at`, no name or slug of its own) so that its
-- sealed audit log keeps an owner. org_keys holds each org's random vault secret, mixed into
-- every data key wrapped for the org: deleting the row is the org's crypto-shredding.
ALTER TABLE orgs
    ADD COLUMN deletion_requested_at TIMESTAMPTZ,
    ADD COLUMN deletion_requested_by TEXT,
    ADD COLUMN deletion_due_at TIMESTAMPTZ,
    ADD COLUMN purged_at TIMESTAMPTZ,
    ADD COLUMN audit_sealed_size BIGINT CHECK (audit_sealed_size >= 1);

CREATE TABLE org_keys (
    org_id     UUID        NOT NULL PRIMARY KEY REFERENCES orgs (id),
    id         UUID        NOT NULL UNIQUE,
    secret     BYTEA       NOT NULL CHECK (octet_length(secret) = 32),
    created_at TIMESTAMPTZ NOT NULL
);
ALTER TABLE org_keys ENABLE ROW LEVEL SECURITY;
ALTER TABLE org_keys FORCE ROW LEVEL SECURITY;
CREATE POLICY org_keys_current_org ON org_keys
    USING (org_id = NULLIF(current_setting('app.current_org_id', true), '')::uuid)
    WITH CHECK (org_id = NULLIF(current_setting('app.current_org_id', true), '')::uuid);
-- The owner's backup and restore policies of migration 0022, for this tenant table too.
CREATE POLICY org_keys_owner_backup ON org_keys FOR SELECT TO CURRENT_USER USING (true);
CREATE POLICY org_keys_owner_restore ON org_keys FOR INSERT TO CURRENT_USER WITH CHECK (true);

-- Deployment-wide: the certificate outlives the org it names.
CREATE TABLE deletion_certificates (
    org_id    UUID        NOT NULL PRIMARY KEY,
    purged_at TIMESTAMPTZ NOT NULL,
    body      TEXT        NOT NULL
);

-- Org ids only: each due org is purged inside its own transaction.
CREATE FUNCTION bulwark_deletion_due_orgs(p_now timestamptz) RETURNS SETOF uuid
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
    SELECT id FROM orgs WHERE deletion_due_at <= p_now AND (purged_at IS NULL
        OR NOT EXISTS (SELECT 1 FROM deletion_certificates c WHERE c.org_id = orgs.id))
    ORDER BY id
$$;
REVOKE ALL ON FUNCTION bulwark_deletion_due_orgs(timestamptz) FROM PUBLIC;

-- A purged org's audit log is sealed: its last event is `org.purged`, appended in the purge's
-- transaction, which then sets `audit_sealed_size` to the log's size; nothing may follow it but
-- the record of a person's erasure (a restore still loads the events below that size).
CREATE FUNCTION audit_events_sealed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.org_id IS NOT NULL
       AND NEW.action <> 'audit.erased'
       AND EXISTS (SELECT 1 FROM orgs WHERE id = NEW.org_id AND NEW.seq >= audit_sealed_size) THEN
        RAISE EXCEPTION 'the org was purged: its audit log is sealed';
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER audit_events_sealed BEFORE INSERT ON audit_events
    FOR EACH ROW EXECUTE FUNCTION audit_events_sealed();

-- Retention per kind of record (docs/deletion.md): org ids only, each org's closed invitations
-- are then deleted inside its own transaction; the orgs whose audit bodies have a retention.
CREATE FUNCTION bulwark_retention_invitation_orgs(p_before timestamptz) RETURNS SETOF uuid
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
    SELECT DISTINCT org_id FROM invitations
    WHERE coalesce(accepted_at, revoked_at, expires_at) < p_before ORDER BY org_id
$$;
REVOKE ALL ON FUNCTION bulwark_retention_invitation_orgs(timestamptz) FROM PUBLIC;

CREATE FUNCTION bulwark_retention_audit_orgs() RETURNS SETOF uuid
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
    SELECT id FROM orgs WHERE audit_retention_days IS NOT NULL AND purged_at IS NULL ORDER BY id
$$;
REVOKE ALL ON FUNCTION bulwark_retention_audit_orgs() FROM PUBLIC;

-- Every org's id (ids only), for an erasure, which looks for a person's events in every log.
CREATE FUNCTION bulwark_all_orgs() RETURNS SETOF uuid
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
    SELECT id FROM orgs ORDER BY id
$$;
REVOKE ALL ON FUNCTION bulwark_all_orgs() FROM PUBLIC;

-- Erasure of a person (ADR 0022): their account row stays as a tombstone (`erased_at`), and the
-- bodies of the events holding their personal data are replaced by redacted bodies through
-- bulwark_audit_erase(), in the log the transaction is bound to. The leaf hash, and every other
-- column, never changes; a later `audit.erased` event records each redacted body's SHA-256, which
-- the offline verifier requires.
ALTER TABLE users ADD COLUMN erased_at TIMESTAMPTZ;

CREATE OR REPLACE FUNCTION audit_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- The permitted changes: bulwark_audit_prune() clearing a body, bulwark_audit_erase()
    -- replacing one; nothing else.
    IF TG_OP = 'UPDATE' AND TG_TABLE_NAME = 'audit_events'
       AND (NEW.log, NEW.seq, NEW.org_id, NEW.event_id, NEW.time, NEW.action, NEW.leaf_hash)
           IS NOT DISTINCT FROM
           (OLD.log, OLD.seq, OLD.org_id, OLD.event_id, OLD.time, OLD.action, OLD.leaf_hash)
       AND OLD.body IS NOT NULL
       AND ((current_setting('bulwark.audit_prune', true) = 'on' AND NEW.body IS NULL)
            OR (current_setting('bulwark.audit_erase', true) = 'on' AND NEW.body IS NOT NULL))
    THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION '% is append-only', TG_TABLE_NAME;
END
$$;

CREATE FUNCTION bulwark_audit_erase(p_seq bigint, p_body bytea) RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
DECLARE
    v_org   uuid := NULLIF(current_setting('app.current_org_id', true), '')::uuid;
    v_count bigint;
BEGIN
    PERFORM set_config('bulwark.audit_erase', 'on', true);
    UPDATE audit_events SET body = p_body
        WHERE org_id IS NOT DISTINCT FROM v_org AND seq = p_seq AND body IS NOT NULL;
    GET DIAGNOSTICS v_count = ROW_COUNT;
    PERFORM set_config('bulwark.audit_erase', '', true);
    RETURN v_count = 1;
END
$$;
REVOKE ALL ON FUNCTION bulwark_audit_erase(bigint, bytea) FROM PUBLIC;

-- A purged org (a tombstone) no longer counts towards the license's `orgs` limit.
CREATE OR REPLACE FUNCTION bulwark_license_usage() RETURNS TABLE (orgs bigint, seats bigint, operator_org uuid)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
    SELECT (SELECT count(*) FROM orgs WHERE purged_at IS NULL),
           (SELECT count(DISTINCT user_id) FROM memberships),
           (SELECT operator_org FROM instance WHERE id = 1)
$$;
