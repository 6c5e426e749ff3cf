//! Fuzzes a backup archive's reader (the plaintext `age` decrypts): any input is refused with an
//! error or read to its verified end; every row line it hands on is decoded or refused; the audit
//! replay runs on what it reads. Nothing panics, on this thread or on the verifier threads.
#![no_main]

use bulwark_core::backup::archive::{Item, Reader};
use bulwark_core::backup::check::AuditCheck;
use bulwark_core::backup::decode_row;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(mut reader) = Reader::new(data) else {
        return;
    };
    let mut audit = AuditCheck::new(reader.header()).ok();
    loop {
        match reader.next_item() {
            Ok(None) => {
                assert!(reader.verified().is_some(), "the end is reached only verified");
                break;
            }
            Err(_) => break,
            Ok(Some(Item::File { name, data })) => {
                if let Some(a) = audit.as_mut()
                    && a.file(&name, &data).is_err()
                {
                    audit = None;
                }
            }
            Ok(Some(Item::Row(table, line))) => {
                if let Ok(values) = decode_row(table, &line)
                    && let Some(a) = audit.as_mut()
                    && let Err(e) = a.row(table, &values)
                {
                    assert!(!e.to_string().contains("stopped unexpectedly"), "{e}");
                    audit = None;
                }
            }
            Ok(Some(_)) => {}
        }
    }
    if let Some(a) = audit
        && let Err(e) = a.finish()
    {
        assert!(!e.to_string().contains("stopped unexpectedly"), "{e}");
    }
});
