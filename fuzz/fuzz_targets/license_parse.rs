//! Fuzzes the license parser: any bytes either fail to parse or give claims whose canonical
//! form parses back to the same claims; nothing panics.
#![no_main]

use bulwark_license as license;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(file) = license::parse(data) else {
        return;
    };
    let canonical = license::canonical_bytes(&file.license).expect("parsed claims are writable");
    let again = serde_json::to_vec(&serde_json::json!({
        "license": serde_json::from_slice::<serde_json::Value>(&canonical).expect("canonical JSON"),
        "signature": file.signature,
    }))
    .expect("a license file is writable");
    let reparsed = license::parse(&again).expect("the canonical form parses");
    assert_eq!(reparsed.license, file.license);
    assert_eq!(license::canonical_bytes(&reparsed.license).ok(), Some(canonical));
    // Verification never panics, whatever the signature field holds.
    let _ = license::verify(&file, &[[7u8; 32]]);
});
