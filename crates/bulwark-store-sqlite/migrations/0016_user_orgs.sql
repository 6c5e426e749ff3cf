-- Same version as bulwark-store-postgres/migrations/0016 (an owner-run function there, for
-- `GET /v1/me/orgs`): SQLite has no row-level security and reads memberships directly, so
-- nothing changes here.
SELECT 1;
