//! Signed checkpoints in the C2SP formats, so transparency tooling can read them.
//!
//! A checkpoint (C2SP `tlog-checkpoint`) is the note body
//! ```text
//! <origin>\n
//! <tree size, decimal, no leading zeros>\n
//! <root hash, standard base64>\n
//! time <unix seconds>\n            (Bulwark's one extension line)
//! ```
//! signed as a C2SP `signed-note`: the body, one empty line, then one line per signature,
//! `— <key name> <base64(key id ‖ Ed25519 signature)>\n` (U+2014 EM DASH, then a space). The key id
//! is the first four bytes of `SHA-256(key name ‖ 0x0A ‖ 0x01 ‖ public key)`; the verifier key is
//! written `<key name>+<key id as 8 hex>+<base64(0x01 ‖ public key)>`.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bulwark_crypto::{Ed25519Signer, verify_ed25519};

use crate::merkle::Hash;

/// Largest note we parse.
pub const MAX_NOTE_BYTES: usize = 16 * 1024;
/// Most signature lines we look at.
pub const MAX_SIGNATURES: usize = 100;
const ED25519_TYPE: u8 = 0x01;
const DASH: &str = "\u{2014} ";

/// Why a checkpoint or key was refused. Each message names what broke.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckpointError {
    /// Larger than [`MAX_NOTE_BYTES`].
    #[error("the note is larger than {MAX_NOTE_BYTES} bytes")]
    TooLarge,
    /// Not a body, an empty line and signature lines.
    #[error("malformed note: {0}")]
    Malformed(&'static str),
    /// The body is not a checkpoint.
    #[error("malformed checkpoint body: {0}")]
    Body(&'static str),
    /// No valid signature by the expected key.
    #[error("no valid signature by key `{0}`")]
    NotSigned(String),
    /// A verifier key string is malformed.
    #[error("malformed verifier key: {0}")]
    Key(&'static str),
}

/// A signed statement that the log `origin` had `size` leaves with root `root` at `time`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// The log's unique name, e.g. `bulwark/<deployment id>/org_…`.
    pub origin: String,
    /// Number of leaves.
    pub size: u64,
    /// Merkle Tree Hash of those leaves.
    pub root: Hash,
    /// Unix seconds when the checkpoint was made.
    pub time: u64,
}

impl Checkpoint {
    /// The note body.
    #[must_use]
    pub fn body(&self) -> String {
        format!(
            "{}\n{}\n{}\ntime {}\n",
            self.origin,
            self.size,
            STANDARD.encode(self.root),
            self.time
        )
    }

    fn parse_body(body: &str) -> Result<Self, CheckpointError> {
        let lines: Vec<&str> = body
            .strip_suffix('\n')
            .ok_or(CheckpointError::Body("missing final newline"))?
            .split('\n')
            .collect();
        let [origin, size, root, rest @ ..] = lines.as_slice() else {
            return Err(CheckpointError::Body("fewer than three lines"));
        };
        if origin.is_empty() || origin.chars().any(char::is_control) {
            return Err(CheckpointError::Body("bad origin line"));
        }
        let size = decimal(size).ok_or(CheckpointError::Body(
            "tree size is not a canonical decimal",
        ))?;
        let root: Hash = STANDARD
            .decode(root)
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or(CheckpointError::Body("root hash is not 32 bytes of base64"))?;
        // Extension lines are opaque to other verifiers; ours must hold exactly one `time`.
        let mut times = rest.iter().filter_map(|l| l.strip_prefix("time "));
        let time = match (times.next(), times.next()) {
            (Some(t), None) => {
                decimal(t).ok_or(CheckpointError::Body("`time` is not a canonical decimal"))?
            }
            (None, _) => return Err(CheckpointError::Body("missing `time` line")),
            (Some(_), Some(_)) => return Err(CheckpointError::Body("more than one `time` line")),
        };
        Ok(Self {
            origin: (*origin).to_owned(),
            size,
            root,
            time,
        })
    }
}

/// Signs checkpoints under a named Ed25519 key.
pub struct NoteSigner {
    name: String,
    key: Ed25519Signer,
    id: [u8; 4],
}

impl NoteSigner {
    /// A signer named `name` (no whitespace, no `+`).
    ///
    /// # Errors
    /// When the name is not a valid key name.
    pub fn new(name: &str, key: Ed25519Signer) -> Result<Self, CheckpointError> {
        check_name(name)?;
        let id = key_id(name, &key.public_key());
        Ok(Self {
            name: name.to_owned(),
            key,
            id,
        })
    }

    /// The matching verifier.
    #[must_use]
    pub fn verifier(&self) -> NoteVerifier {
        NoteVerifier {
            name: self.name.clone(),
            id: self.id,
            public: self.key.public_key(),
        }
    }

    /// The signed note text.
    #[must_use]
    pub fn sign(&self, checkpoint: &Checkpoint) -> String {
        self.sign_unchecked(&checkpoint.body())
    }

    /// The signed-note layer alone: signs any note text.
    ///
    /// # Errors
    /// When `text` is not a valid note text: empty, not ending in a newline, holding an empty
    /// line or a control character other than newline.
    pub fn sign_note(&self, text: &str) -> Result<String, CheckpointError> {
        let valid = text.ends_with('\n')
            && !text.starts_with('\n')
            && !text.contains("\n\n")
            && !text.bytes().any(|b| (b < 0x20 && b != b'\n') || b == 0x7f);
        if !valid {
            return Err(CheckpointError::Malformed("not a valid note text"));
        }
        Ok(self.sign_unchecked(text))
    }

    fn sign_unchecked(&self, text: &str) -> String {
        let mut blob = Vec::with_capacity(68);
        blob.extend_from_slice(&self.id);
        blob.extend_from_slice(&self.key.sign(text.as_bytes()));
        format!("{text}\n{DASH}{} {}\n", self.name, STANDARD.encode(blob))
    }
}

/// Verifies notes signed by one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoteVerifier {
    name: String,
    id: [u8; 4],
    public: [u8; 32],
}

impl NoteVerifier {
    /// Parses `<name>+<hex key id>+<base64(0x01 ‖ public key)>`.
    ///
    /// # Errors
    /// When any part is malformed or the key id does not match the key.
    pub fn parse(vkey: &str) -> Result<Self, CheckpointError> {
        let mut parts = vkey.trim().splitn(3, '+');
        let (Some(name), Some(id_hex), Some(key_b64)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(CheckpointError::Key("expected name+keyid+key"));
        };
        check_name(name).map_err(|_| CheckpointError::Key("bad key name"))?;
        let id = u32::from_str_radix(id_hex, 16)
            .ok()
            .filter(|_| id_hex.len() == 8)
            .ok_or(CheckpointError::Key("key id is not 8 hex digits"))?
            .to_be_bytes();
        let raw = STANDARD
            .decode(key_b64)
            .map_err(|_| CheckpointError::Key("key is not base64"))?;
        let Some((&ED25519_TYPE, public)) = raw.split_first() else {
            return Err(CheckpointError::Key("not an Ed25519 key"));
        };
        let public: [u8; 32] = public
            .try_into()
            .map_err(|_| CheckpointError::Key("Ed25519 key is not 32 bytes"))?;
        if key_id(name, &public) != id {
            return Err(CheckpointError::Key("key id does not match the key"));
        }
        Ok(Self {
            name: name.to_owned(),
            id,
            public,
        })
    }

    /// The `name+id+key` text.
    #[must_use]
    pub fn to_vkey(&self) -> String {
        let mut raw = vec![ED25519_TYPE];
        raw.extend_from_slice(&self.public);
        format!("{}+{}+{}", self.name, hex8(self.id), STANDARD.encode(raw))
    }

    /// The key name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Parses a signed note and returns its checkpoint if this key signed it.
    ///
    /// # Errors
    /// Oversized or malformed notes and bodies, or no valid signature by this key.
    pub fn verify(&self, note: &str) -> Result<Checkpoint, CheckpointError> {
        Checkpoint::parse_body(self.verify_note(note)?)
    }

    /// The signed-note layer alone: returns the note's text (everything before the empty line,
    /// with its final newline) if this key signed it, whatever that text says.
    ///
    /// # Errors
    /// Oversized or malformed notes, or no valid signature by this key.
    pub fn verify_note<'n>(&self, note: &'n str) -> Result<&'n str, CheckpointError> {
        if note.len() > MAX_NOTE_BYTES {
            return Err(CheckpointError::TooLarge);
        }
        if note.bytes().any(|b| (b < 0x20 && b != b'\n') || b == 0x7f) {
            return Err(CheckpointError::Malformed(
                "control character other than a newline",
            ));
        }
        let split = note.find("\n\n").ok_or(CheckpointError::Malformed(
            "no empty line before the signatures",
        ))?;
        let (body, sigs) = (
            note.get(..=split).unwrap_or(""),
            note.get(split + 2..).unwrap_or(""),
        );
        let sigs = sigs
            .strip_suffix('\n')
            .ok_or(CheckpointError::Malformed("missing final newline"))?;
        let mut signed = false;
        for (n, line) in sigs.split('\n').enumerate() {
            if n >= MAX_SIGNATURES {
                return Err(CheckpointError::Malformed("too many signature lines"));
            }
            let rest = line.strip_prefix(DASH).ok_or(CheckpointError::Malformed(
                "signature line does not start with an em dash",
            ))?;
            let (name, b64) = rest.split_once(' ').ok_or(CheckpointError::Malformed(
                "signature line without a signature",
            ))?;
            let blob = STANDARD
                .decode(b64)
                .map_err(|_| CheckpointError::Malformed("signature is not base64"))?;
            // Lines by other keys are skipped, as the signed-note format requires.
            if name != self.name || blob.get(..4) != Some(&self.id[..]) {
                continue;
            }
            // A line that claims this key but does not verify is a forgery, not noise.
            if !verify_ed25519(&self.public, body.as_bytes(), blob.get(4..).unwrap_or(&[])) {
                return Err(CheckpointError::NotSigned(self.name.clone()));
            }
            signed = true;
        }
        if !signed {
            return Err(CheckpointError::NotSigned(self.name.clone()));
        }
        Ok(body)
    }
}

/// A canonical unsigned decimal: ASCII digits only, no sign, no leading zero (except `0`).
fn decimal(text: &str) -> Option<u64> {
    let canonical = !text.is_empty()
        && text.bytes().all(|b| b.is_ascii_digit())
        && (text == "0" || !text.starts_with('0'));
    canonical.then(|| text.parse().ok()).flatten()
}

fn check_name(name: &str) -> Result<(), CheckpointError> {
    if name.is_empty()
        || name.contains('+')
        || name.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(CheckpointError::Key(
            "key names are non-empty with no spaces or `+`",
        ));
    }
    Ok(())
}

fn key_id(name: &str, public: &[u8; 32]) -> [u8; 4] {
    let mut data = Vec::with_capacity(name.len() + 34);
    data.extend_from_slice(name.as_bytes());
    data.push(0x0A);
    data.push(ED25519_TYPE);
    data.extend_from_slice(public);
    let h = bulwark_crypto::sha256(&data);
    [h[0], h[1], h[2], h[3]]
}

fn hex8(id: [u8; 4]) -> String {
    id.iter().map(|b| format!("{b:02x}")).collect()
}

/// Parses arbitrary bytes as a note under a fixed key and ignores the result: a fuzz entry point
/// that must never panic.
pub fn fuzz_parse(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let key = NoteVerifier {
        name: "fuzz".into(),
        id: [0; 4],
        public: [0; 32],
    };
    let _ = key.verify(text);
    let _ = NoteVerifier::parse(text);
    let _ = Checkpoint::parse_body(text);
}

#[cfg(test)]
mod tests {
    use super::*;
    use zeroize::Zeroizing;

    fn signer(name: &str, seed: u8) -> NoteSigner {
        NoteSigner::new(
            name,
            Ed25519Signer::from_seed(&Zeroizing::new([seed; 32])).unwrap(),
        )
        .unwrap()
    }

    fn checkpoint() -> Checkpoint {
        Checkpoint {
            origin: "bulwark/dep/org_1".into(),
            size: 42,
            root: [7; 32],
            time: 1_790_000_000,
        }
    }

    #[test]
    fn a_checkpoint_round_trips_through_a_signed_note() {
        let s = signer("bulwark-audit", 1);
        let note = s.sign(&checkpoint());
        assert!(note.contains("\n\n\u{2014} bulwark-audit "));
        let v = NoteVerifier::parse(&s.verifier().to_vkey()).unwrap();
        assert_eq!(v, s.verifier());
        assert_eq!(v.verify(&note).unwrap(), checkpoint());
    }

    #[test]
    fn another_key_or_any_edit_is_refused() {
        let s = signer("bulwark-audit", 1);
        let note = s.sign(&checkpoint());
        let other = signer("bulwark-audit", 2).verifier();
        assert!(matches!(
            other.verify(&note),
            Err(CheckpointError::NotSigned(_))
        ));
        let forged = signer("bulwark-audit", 2).sign(&checkpoint());
        assert!(
            s.verifier().verify(&forged).is_err(),
            "signature by another key under the same name"
        );
        for (from, to) in [
            ("\n42\n", "\n43\n"),
            ("org_1", "org_2"),
            ("time 1790000000", "time 1790000001"),
        ] {
            let edited = note.replacen(from, to, 1);
            assert!(s.verifier().verify(&edited).is_err(), "{from} → {to}");
        }
        let mut bytes = note.clone().into_bytes();
        for i in 0..bytes.len() {
            bytes[i] ^= 0x01;
            if let Ok(t) = std::str::from_utf8(&bytes) {
                assert!(s.verifier().verify(t).is_err(), "flip at byte {i}");
            }
            bytes[i] ^= 0x01;
        }
    }

    #[test]
    fn malformed_bodies_are_refused_even_when_signed() {
        let s = signer("k", 3);
        for body in [
            "o\n042\nAAAA\ntime 1\n",
            "o\n+4\nAAAA\ntime 1\n",
            "o\n4\nnot base64\ntime 1\n",
            "o\n4\n",
            "o\n4\nBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=\n",
        ] {
            let mut blob = s.id.to_vec();
            blob.extend_from_slice(&s.key.sign(body.as_bytes()));
            let note = format!("{body}\n{DASH}k {}\n", STANDARD.encode(blob));
            assert!(
                matches!(s.verifier().verify(&note), Err(CheckpointError::Body(_))),
                "{body:?}"
            );
        }
    }

    #[test]
    fn hostile_inputs_never_panic() {
        for input in [
            "",
            "\n\n",
            "a\n\n\u{2014}",
            "a\n\n\u{2014} k",
            "a\n\n\u{2014} k !!\n",
            "+",
            "a+b+c",
            "k+00000000+AQ==",
            &"x".repeat(MAX_NOTE_BYTES + 1),
        ] {
            fuzz_parse(input.as_bytes());
        }
        let many = format!(
            "o\n1\nAAAA\n\n{}",
            format!("{DASH}k AAAA\n").repeat(MAX_SIGNATURES + 1)
        );
        assert!(signer("k", 1).verifier().verify(&many).is_err());
    }

    #[test]
    fn verifier_keys_are_checked() {
        let vkey = signer("k", 1).verifier().to_vkey();
        assert!(NoteVerifier::parse(&vkey).is_ok());
        let mut parts: Vec<&str> = vkey.split('+').collect();
        parts[1] = "00000000";
        assert!(
            NoteVerifier::parse(&parts.join("+")).is_err(),
            "wrong key id"
        );
        assert!(NoteVerifier::parse("k+abc+AQ==").is_err());
        assert!(NoteVerifier::parse("k k+00000000+AQ==").is_err());
    }

    #[test]
    fn extension_lines_time_and_control_characters_are_checked() {
        let s = signer("k", 4);
        let sign_body = |body: &str| {
            let mut blob = s.id.to_vec();
            blob.extend_from_slice(&s.key.sign(body.as_bytes()));
            format!("{body}\n{DASH}k {}\n", STANDARD.encode(blob))
        };
        let root = STANDARD.encode([7u8; 32]);
        let ok = sign_body(&format!("o\n4\n{root}\nother ext\ntime 5\n"));
        assert_eq!(
            s.verifier().verify(&ok).unwrap().time,
            5,
            "unknown extensions are opaque"
        );
        for body in [
            format!("o\n4\n{root}\ntime 5\ntime 5\n"),
            format!("o\n4\n{root}\ntime 05\n"),
            format!("o\n4\n{root}\ntime +5\n"),
            format!("o\n4\n{root}\ntime 5 \n"),
            format!("o\n4\n{root}\ntime 18446744073709551616\n"),
            format!("o\n18446744073709551616\n{root}\ntime 5\n"),
            format!("o\n4\n{root}\ntime\t5\n"),
            format!("o\r\n4\n{root}\ntime 5\n"),
        ] {
            assert!(s.verifier().verify(&sign_body(&body)).is_err(), "{body:?}");
        }
    }

    #[test]
    fn a_bad_signature_claiming_our_key_is_refused_even_beside_a_good_one() {
        let s = signer("k", 5);
        let good = s.sign(&checkpoint());
        let (body, sig) = good.split_once("\n\n").unwrap();
        let mut blob = s.id.to_vec();
        blob.extend_from_slice(&[0u8; 64]);
        let forged = format!("{DASH}k {}\n", STANDARD.encode(&blob));
        for note in [
            format!("{body}\n\n{sig}{forged}"),
            format!("{body}\n\n{forged}{sig}"),
        ] {
            assert!(matches!(
                s.verifier().verify(&note),
                Err(CheckpointError::NotSigned(_))
            ));
        }
        let other = signer("other", 6).sign(&checkpoint());
        let other_sig = other.split_once("\n\n").unwrap().1;
        let both = format!("{body}\n\n{other_sig}{sig}");
        assert_eq!(s.verifier().verify(&both).unwrap(), checkpoint());
    }

    mod props {
        use proptest::prelude::*;

        use super::*;

        fn any_checkpoint() -> impl Strategy<Value = Checkpoint> {
            (
                "[a-z0-9./_-]{1,40}",
                any::<u64>(),
                any::<[u8; 32]>(),
                any::<u64>(),
            )
                .prop_map(|(origin, size, root, time)| Checkpoint {
                    origin,
                    size,
                    root,
                    time,
                })
        }

        proptest! {
            #[test]
            fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..2048)) {
                fuzz_parse(&data);
            }

            #[test]
            fn arbitrary_note_shaped_text_never_panics_or_verifies(
                body in "[a-z0-9+/= \n]{0,80}",
                sigs in "(\u{2014} [a-z]{0,3} [A-Za-z0-9+/=]{0,96}\n){0,4}",
            ) {
                let note = format!("{body}\n{sigs}");
                fuzz_parse(note.as_bytes());
                prop_assert!(signer("k", 1).verifier().verify(&note).is_err());
            }

            #[test]
            fn signed_checkpoints_round_trip_and_any_byte_change_is_refused(
                c in any_checkpoint(),
                at in any::<prop::sample::Index>(),
                with in any::<u8>(),
            ) {
                let s = signer("bulwark-audit", 9);
                let note = s.sign(&c);
                prop_assert_eq!(s.verifier().verify(&note), Ok(c));
                let mut bytes = note.clone().into_bytes();
                let i = at.index(bytes.len());
                prop_assume!(bytes[i] != with);
                bytes[i] = with;
                if let Ok(text) = std::str::from_utf8(&bytes) {
                    prop_assert!(s.verifier().verify(text).is_err(), "byte {} of {:?}", i, note);
                }
            }
        }
    }
}
