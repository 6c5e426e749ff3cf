-- Signed checkpoints of each audit log, append-only.
-- Same table and meaning as bulwark-store-postgres/migrations/0003.

CREATE TABLE audit_checkpoints (
    log        TEXT    NOT NULL,
    size       INTEGER NOT NULL CHECK (size >= 0),
    org_id     BLOB,
    note       TEXT    NOT NULL,
    created_at TEXT    NOT NULL,
    PRIMARY KEY (log, size)
) STRICT;

CREATE TRIGGER audit_checkpoints_no_update BEFORE UPDATE ON audit_checkpoints
BEGIN
    SELECT RAISE(ABORT, 'audit_checkpoints is append-only');
END;

CREATE TRIGGER audit_checkpoints_no_delete BEFORE DELETE ON audit_checkpoints
BEGIN
    SELECT RAISE(ABORT, 'audit_checkpoints is append-only');
END;
