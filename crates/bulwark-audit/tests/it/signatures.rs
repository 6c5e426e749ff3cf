//! Ed25519 (RFC 8032 §7.1) through the wrappers the checkpoint signer and verifier use, and the
//! signed-note layer against the published Go `sumdb/note` and C2SP examples.

use bulwark_audit::checkpoint::{NoteSigner, NoteVerifier};
use bulwark_crypto::{Ed25519Signer, verify_ed25519};
use serde_json::Value;
use zeroize::Zeroizing;

use crate::{hex, vectors};

fn load(name: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(vectors().join(name)).unwrap()).unwrap()
}

fn seed(hex_text: &str) -> Zeroizing<[u8; 32]> {
    Zeroizing::new(hex(hex_text).try_into().unwrap())
}

#[test]
fn ed25519_rfc8032_vectors_through_our_wrappers() {
    let v = load("ed25519-rfc8032.json");
    let cases = v["cases"].as_array().unwrap();
    for c in cases {
        let signer = Ed25519Signer::from_seed(&seed(c["secret_key"].as_str().unwrap())).unwrap();
        let public: [u8; 32] = hex(c["public_key"].as_str().unwrap()).try_into().unwrap();
        let msg = hex(c["message"].as_str().unwrap());
        let want = hex(c["signature"].as_str().unwrap());
        assert_eq!(signer.public_key(), public);
        assert_eq!(signer.sign(&msg).to_vec(), want);
        assert!(verify_ed25519(&public, &msg, &want));
        let mut bad = want.clone();
        bad[0] ^= 1;
        assert!(!verify_ed25519(&public, &msg, &bad));
        let mut other = msg.clone();
        other.push(0);
        assert!(!verify_ed25519(&public, &other, &want));
        // And a note signed with this key verifies under its vkey, and only under it.
        let note = NoteSigner::new("rfc8032", signer).unwrap();
        let vkey = NoteVerifier::parse(&note.verifier().to_vkey()).unwrap();
        assert_eq!(vkey.verify_note(&note.sign_note("m\n").unwrap()), Ok("m\n"));
    }
    assert_eq!(cases.len(), 3);
}

#[test]
fn go_sumdb_note_example_is_reproduced_byte_for_byte() {
    let v = &load("signed-note-examples.json")["go_sumdb_note"];
    let signer = NoteSigner::new(
        v["key_name"].as_str().unwrap(),
        Ed25519Signer::from_seed(&seed(v["seed_hex"].as_str().unwrap())).unwrap(),
    )
    .unwrap();
    let (vkey, text, note) = (
        v["vkey"].as_str().unwrap(),
        v["text"].as_str().unwrap(),
        v["note"].as_str().unwrap(),
    );
    assert_eq!(
        signer.verifier().to_vkey(),
        vkey,
        "key id and vkey encoding"
    );
    assert_eq!(signer.sign_note(text).unwrap(), note, "note encoding");
    let verifier = NoteVerifier::parse(vkey).unwrap();
    assert_eq!(verifier.verify_note(note), Ok(text));
    // A note, not a checkpoint: the checkpoint layer refuses its body.
    assert!(verifier.verify(note).is_err());
}

#[test]
fn c2sp_signed_note_example_verifies() {
    let v = &load("signed-note-examples.json")["c2sp_example"];
    let verifier = NoteVerifier::parse(v["vkey"].as_str().unwrap()).unwrap();
    assert_eq!(verifier.to_vkey(), v["vkey"].as_str().unwrap());
    let note = v["note"].as_str().unwrap();
    assert_eq!(verifier.verify_note(note), Ok(v["text"].as_str().unwrap()));
    let edited = note.replacen("example message", "example massage", 1);
    assert!(verifier.verify_note(&edited).is_err());
}
