-- Signed checkpoints of each audit log, append-only.
-- Same table and meaning as bulwark-store-sqlite/migrations/0003.

CREATE TABLE audit_checkpoints (
    log        TEXT        NOT NULL,
    size       BIGINT      NOT NULL CHECK (size >= 0),
    org_id     UUID        NULL,
    note       TEXT        NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (log, size)
);

ALTER TABLE audit_checkpoints ENABLE ROW LEVEL SECURITY;
ALTER TABLE audit_checkpoints FORCE ROW LEVEL SECURITY;
CREATE POLICY audit_checkpoints_scope ON audit_checkpoints
    USING (org_id IS NOT DISTINCT FROM NULLIF(current_setting('app.current_org_id', true), '')::uuid)
    WITH CHECK (org_id IS NOT DISTINCT FROM NULLIF(current_setting('app.current_org_id', true), '')::uuid);

CREATE TRIGGER audit_checkpoints_no_change BEFORE UPDATE OR DELETE ON audit_checkpoints
    FOR EACH ROW EXECUTE FUNCTION audit_events_append_only();
CREATE TRIGGER audit_checkpoints_no_truncate BEFORE TRUNCATE ON audit_checkpoints
    FOR EACH STATEMENT EXECUTE FUNCTION audit_events_append_only();
