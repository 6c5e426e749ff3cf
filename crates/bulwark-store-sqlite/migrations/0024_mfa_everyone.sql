-- An org may require a second factor of every member (`everyone`, ASVS V6.3.3). Same version as
-- bulwark-store-postgres/migrations/0024. SQLite cannot change a column's CHECK in place: the
-- column is copied into one with the wider check, dropped, and the copy takes its name (the
-- check follows the rename).
ALTER TABLE orgs ADD COLUMN mfa_required_next TEXT NOT NULL DEFAULT 'owners'
    CHECK (mfa_required_next IN ('none', 'owners', 'owners_admins', 'everyone'));
UPDATE orgs SET mfa_required_next = mfa_required;
ALTER TABLE orgs DROP COLUMN mfa_required;
ALTER TABLE orgs RENAME COLUMN mfa_required_next TO mfa_required;
