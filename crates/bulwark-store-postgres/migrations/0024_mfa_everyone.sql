-- An org may require a second factor of every member (`everyone`, ASVS V6.3.3). Same version as
-- bulwark-store-sqlite/migrations/0024.
ALTER TABLE orgs DROP CONSTRAINT orgs_mfa_required_check;
ALTER TABLE orgs ADD CONSTRAINT orgs_mfa_required_check
    CHECK (mfa_required IN ('none', 'owners', 'owners_admins', 'everyone'));
