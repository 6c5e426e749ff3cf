-- Same version as bulwark-store-postgres/migrations/0006, which lets the owner enumerate org logs
-- behind their checkpoints under row-level security. SQLite has no row-level security: the store
-- reads the heads directly, so there is nothing to change here.
SELECT 1;
