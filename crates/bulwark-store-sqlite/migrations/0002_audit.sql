-- The audit log: per-log heads and append-only events.
-- Same tables and meaning as bulwark-store-postgres/migrations/0002.

CREATE TABLE audit_heads (
    log      TEXT PRIMARY KEY,
    org_id   BLOB REFERENCES orgs (id),
    frontier BLOB NOT NULL
) STRICT;

CREATE TABLE audit_events (
    log       TEXT    NOT NULL,
    seq       INTEGER NOT NULL CHECK (seq >= 0),
    org_id    BLOB,
    event_id  BLOB    NOT NULL UNIQUE,
    time      TEXT    NOT NULL,
    action    TEXT    NOT NULL,
    body      BLOB    NOT NULL,
    leaf_hash BLOB    NOT NULL CHECK (length(leaf_hash) = 32),
    PRIMARY KEY (log, seq)
) STRICT;

-- Append-only: no statement may change or remove an event.
CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events
BEGIN
    SELECT RAISE(ABORT, 'audit_events is append-only');
END;

CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events
BEGIN
    SELECT RAISE(ABORT, 'audit_events is append-only');
END;
