-- Email addresses in normal form (NFKC, no invisible or bidi controls, IDNA domain, no
-- mixed-script confusables; docs/identity.md). No table changes: this version exists so that
-- `serve` waits for `bulwark migrate`, which, after the migrations, brings accounts stored by
-- earlier releases into the normal form (crates/bulwark-store-postgres/src/identity.rs,
-- renormalise_emails). SQLite does the same each time the store opens.
COMMENT ON COLUMN users.email IS
    'the address in normal form (Email), local part as given; earlier releases: as typed';
COMMENT ON COLUMN users.email_key IS
    'Email::key(): the normal form with the local part lower-cased; unique';
