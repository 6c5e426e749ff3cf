-- The credential vault (issue 6). Same meaning as bulwark-store-postgres/migrations/0013:
-- vault_keys holds the key versions (exactly one `active`; `previous` ones are being rewrapped;
-- `retired` ones open nothing) and no key material; credentials holds each org's credentials,
-- the value sealed under its own data key, the data key wrapped by key_version's KEK.

CREATE TABLE vault_keys (
    version    INTEGER NOT NULL PRIMARY KEY CHECK (version >= 1),
    provider   TEXT    NOT NULL CHECK (provider IN ('seed', 'pkcs11')),
    state      TEXT    NOT NULL CHECK (state IN ('active', 'previous', 'retired')),
    created_at TEXT    NOT NULL,
    retired_at TEXT,
    CHECK ((state = 'retired') = (retired_at IS NOT NULL))
) STRICT;
CREATE UNIQUE INDEX vault_keys_one_active ON vault_keys (state) WHERE state = 'active';

CREATE TABLE credentials (
    org_id       BLOB    NOT NULL REFERENCES orgs (id),
    id           BLOB    NOT NULL PRIMARY KEY,
    name         TEXT    NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    kind         TEXT    NOT NULL,
    destinations TEXT    NOT NULL,
    key_version  INTEGER NOT NULL REFERENCES vault_keys (version),
    wrapped_key  BLOB    NOT NULL,
    ciphertext   BLOB    NOT NULL,
    created_by   BLOB    REFERENCES users (id),
    created_at   TEXT    NOT NULL,
    updated_at   TEXT    NOT NULL,
    last_used_at TEXT,
    UNIQUE (org_id, name)
) STRICT;
CREATE INDEX credentials_key_version_idx ON credentials (key_version, org_id);
-- The rewrap job walks an org's rows under older versions in (version, id) order.
CREATE INDEX credentials_rewrap_idx ON credentials (org_id, key_version, id);
