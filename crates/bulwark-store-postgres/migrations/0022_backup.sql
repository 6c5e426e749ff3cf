-- Backups and restores (ADR 0020). Same version as bulwark-store-sqlite/migrations/0022.
-- A backup reads every org's rows in one REPEATABLE READ snapshot, and a restore inserts them,
-- both as the owner role. Row-level security is FORCEd, so it binds the owner too: these policies
-- let the owner (the role running this migration; CURRENT_USER is resolved now) read and insert
-- every row of every tenant table. They grant the owner nothing it could not take (it owns the
-- tables and can switch row-level security off), and nothing to the application role, which
-- `migrate` and `serve` keep apart from the owner.
-- INVARIANT: a tenant table added by a later migration gets the same two policies; backup
-- refuses to run while any table lacks them (crates/bulwark-store-postgres/src/backup_open.rs).
DO $$
DECLARE
    t text;
BEGIN
    FOR t IN
        SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = 'public' AND c.relkind = 'r' AND c.relrowsecurity
        ORDER BY c.relname
    LOOP
        EXECUTE format('CREATE POLICY %I ON %I FOR SELECT TO CURRENT_USER USING (true)',
                       t || '_owner_backup', t);
        EXECUTE format('CREATE POLICY %I ON %I FOR INSERT TO CURRENT_USER WITH CHECK (true)',
                       t || '_owner_restore', t);
    END LOOP;
END
$$;
