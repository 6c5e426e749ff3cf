//! Any bytes as a signed note, a verifier key or a checkpoint body: never a panic.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    bulwark_audit::checkpoint::fuzz_parse(data);
});
