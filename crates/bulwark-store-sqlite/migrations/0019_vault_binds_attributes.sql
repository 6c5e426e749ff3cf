-- Value envelope v2 (review item 5). Same meaning as bulwark-store-postgres/migrations/0016:
-- values sealed under a key version with binds_attributes = 1 bind the credential's kind and
-- destinations into their associated data. The versions that exist now predate that (0): at
-- start the server rotates away from them once, and the rewrap job moves every credential into
-- envelope v2 (ADR 0007).
ALTER TABLE vault_keys ADD COLUMN binds_attributes INTEGER NOT NULL DEFAULT 0
    CHECK (binds_attributes IN (0, 1));
