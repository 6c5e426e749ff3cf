-- The audit log: per-log heads and append-only events.
-- Same tables and meaning as bulwark-store-sqlite/migrations/0002.
-- Both tables are tenant tables: an org's rows are visible only with app.current_org_id set to
-- that org; system-log rows (org_id NULL) only with no org set.

CREATE TABLE audit_heads (
    log      TEXT  PRIMARY KEY,
    org_id   UUID  NULL REFERENCES orgs (id),
    frontier BYTEA NOT NULL
);

CREATE TABLE audit_events (
    log       TEXT        NOT NULL,
    seq       BIGINT      NOT NULL CHECK (seq >= 0),
    org_id    UUID        NULL,
    event_id  UUID        NOT NULL UNIQUE,
    time      TIMESTAMPTZ NOT NULL,
    action    TEXT        NOT NULL,
    body      BYTEA       NOT NULL,
    leaf_hash BYTEA       NOT NULL CHECK (length(leaf_hash) = 32),
    PRIMARY KEY (log, seq)
);

ALTER TABLE audit_heads ENABLE ROW LEVEL SECURITY;
ALTER TABLE audit_heads FORCE ROW LEVEL SECURITY;
CREATE POLICY audit_heads_scope ON audit_heads
    USING (org_id IS NOT DISTINCT FROM NULLIF(current_setting('app.current_org_id', true), '')::uuid)
    WITH CHECK (org_id IS NOT DISTINCT FROM NULLIF(current_setting('app.current_org_id', true), '')::uuid);

ALTER TABLE audit_events ENABLE ROW LEVEL SECURITY;
ALTER TABLE audit_events FORCE ROW LEVEL SECURITY;
CREATE POLICY audit_events_scope ON audit_events
    USING (org_id IS NOT DISTINCT FROM NULLIF(current_setting('app.current_org_id', true), '')::uuid)
    WITH CHECK (org_id IS NOT DISTINCT FROM NULLIF(current_setting('app.current_org_id', true), '')::uuid);

-- Append-only, for every role including the owner: the application role is also granted only
-- INSERT and SELECT (src/setup.rs).
CREATE FUNCTION audit_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_events is append-only';
END
$$;
CREATE TRIGGER audit_events_no_change BEFORE UPDATE OR DELETE ON audit_events
    FOR EACH ROW EXECUTE FUNCTION audit_events_append_only();
CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON audit_events
    FOR EACH STATEMENT EXECUTE FUNCTION audit_events_append_only();
