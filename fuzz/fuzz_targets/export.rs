//! Any bytes as an audit export: the verifier returns an error or a report, never panics.
#![no_main]

use bulwark_audit::checkpoint::NoteSigner;
use bulwark_crypto::Ed25519Signer;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let seed = zeroize::Zeroizing::new([7u8; 32]);
    let Ok(key) = Ed25519Signer::from_seed(&seed) else {
        return;
    };
    let Ok(signer) = NoteSigner::new("fuzz", key) else {
        return;
    };
    let _ = bulwark_audit::export::verify(data, &signer.verifier(), &[]);
});
