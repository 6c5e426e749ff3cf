-- Value envelope v2 (review item 5). Same meaning as bulwark-store-sqlite/migrations/0016:
-- values sealed under a key version with binds_attributes bind the credential's kind and
-- destinations into their associated data. The versions that exist now predate that (false): at
-- start the server rotates away from them once, and the rewrap job moves every credential into
-- envelope v2 (ADR 0007). vault_keys keeps its grants (SELECT, INSERT, UPDATE) and has no
-- row-level security (deployment-wide, no key material).
ALTER TABLE vault_keys ADD COLUMN binds_attributes BOOLEAN NOT NULL DEFAULT FALSE;
