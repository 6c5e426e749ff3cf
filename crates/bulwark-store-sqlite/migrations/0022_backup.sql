-- Backups and restores (ADR 0020). Same version as bulwark-store-postgres/migrations/0022, which
-- gives the PostgreSQL owner role read and insert policies on every tenant table. SQLite has no
-- row-level security and no roles: there is nothing to change, and the version is recorded so
-- that both engines stand at the same schema version (an archive names it).
SELECT 1;
