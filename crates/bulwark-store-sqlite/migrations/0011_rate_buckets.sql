-- Rate-limit buckets live in the process that owns the SQLite database
-- (bulwark-store-sqlite/src/lib.rs, `rate_take`); on PostgreSQL they are the shared table of
-- bulwark-store-postgres/migrations/0011. Nothing to store here: this migration keeps the two
-- engines' migration numbers aligned.
SELECT 1;
