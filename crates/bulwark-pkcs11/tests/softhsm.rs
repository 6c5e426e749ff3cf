//! The PKCS#11 provider against a real SoftHSM2 token, mostly as attacks.
//!
//! `scripts/test` sources `scripts/softhsm-env`, which initialises a throwaway token and exports
//! `BULWARK_TEST_PKCS11_MODULE`, `BULWARK_TEST_PKCS11_TOKEN`, `BULWARK_TEST_PKCS11_PIN` and
//! `BULWARK_TEST_SOFTHSM_DIR`. Every test makes its own KEK labels; the wrong-PIN test initialises
//! a token of its own, so no other login covers it.
//!
//! The tests take turns on the token (see [`take_turn`]): SoftHSM2 2.6 fails at random when
//! sessions of one token open, close and write at the same time (softhsm/SoftHSMv2#464, #573),
//! and concurrent `C_Initialize` calls in one process are unsafe.
#![expect(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test helpers outside #[test] functions"
)]

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bulwark_pkcs11::{Hsm, HsmConfig, HsmError};
use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{
    Attribute, AttributeInfo, AttributeType, KeyType, ObjectClass, ObjectHandle,
};
use cryptoki::session::{Session, UserType};
use cryptoki::types::AuthPin;

const MODULE_ENV: &str = "BULWARK_TEST_PKCS11_MODULE";

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!(
            "{name} is not set: the PKCS#11 tests need the throwaway SoftHSM2 token that \
             `scripts/test` sets up (through scripts/softhsm-env); run the tests with \
             `scripts/test` (e.g. `scripts/test -p bulwark-pkcs11`)"
        )
    })
}

/// An exclusive lock on the test token, across threads (`cargo test`) and processes (nextest
/// runs each test in its own), held until the returned file drops. Declare it before any handle
/// so that the handle closes first.
#[must_use]
fn take_turn() -> File {
    env(MODULE_ENV);
    let path = Path::new(&env("BULWARK_TEST_SOFTHSM_DIR")).join("tests.lock");
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .unwrap();
    file.lock().unwrap();
    file
}

fn config() -> HsmConfig {
    HsmConfig {
        module: PathBuf::from(env(MODULE_ENV)),
        token_label: env("BULWARK_TEST_PKCS11_TOKEN"),
        pin: env("BULWARK_TEST_PKCS11_PIN").into(),
    }
}

fn open() -> Hsm {
    Hsm::open(&config()).unwrap()
}

fn fresh_label(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}

/// 32 random bytes (two v4 uuids; the fixed version bits do not matter here).
fn random_dek() -> [u8; 32] {
    let mut dek = [0_u8; 32];
    dek[..16].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
    dek[16..].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
    dek
}

/// What an attacker holding the PIN can do: raw PKCS#11 calls on the test token.
fn raw_session() -> Session {
    let pkcs11 = Pkcs11::new(env(MODULE_ENV)).unwrap();
    match pkcs11.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
        Ok(()) | Err(CkError::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {}
        Err(e) => panic!("C_Initialize: {e}"),
    }
    let label = env("BULWARK_TEST_PKCS11_TOKEN");
    let slot = pkcs11
        .get_slots_with_initialized_token()
        .unwrap()
        .into_iter()
        .find(|slot| pkcs11.get_token_info(*slot).unwrap().label() == label)
        .unwrap();
    let session = pkcs11.open_rw_session(slot).unwrap();
    let pin = AuthPin::from(env("BULWARK_TEST_PKCS11_PIN"));
    match session.login(UserType::User, Some(&pin)) {
        Ok(()) | Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => {}
        Err(e) => panic!("C_Login: {e}"),
    }
    session
}

fn raw_find(session: &Session, label: &str) -> ObjectHandle {
    let found = session
        .find_objects(&[Attribute::Label(label.into())])
        .unwrap();
    assert_eq!(found.len(), 1, "exactly one object labelled {label}");
    found[0]
}

/// Destroys the test's KEKs, keeping the shared token small.
fn shred(hsm: &Hsm, labels: &[&str]) {
    for label in labels {
        assert!(hsm.destroy_kek(label).unwrap(), "{label} was there");
    }
}

fn refused<T>(result: Result<T, CkError>) -> RvError {
    match result {
        Err(CkError::Pkcs11(rv, _)) => rv,
        Err(other) => panic!("refused for another reason: {other}"),
        Ok(_) => panic!("the token allowed it"),
    }
}

#[test]
fn wrap_then_unwrap_returns_the_dek_and_the_wrapped_form_hides_it() {
    let _turn = take_turn();
    let hsm = open();
    let kek = fresh_label("kek");
    hsm.generate_kek(&kek).unwrap();
    let dek = random_dek();

    let wrapped = hsm.wrap(&kek, &dek).unwrap();
    assert_eq!(
        wrapped.len(),
        40,
        "RFC 5649: 32 bytes of key + 8 of integrity block"
    );
    assert!(
        !wrapped.windows(32).any(|w| w == dek),
        "the DEK appears in the wrapped form"
    );
    assert_eq!(*hsm.unwrap(&kek, &wrapped).unwrap(), dek);

    let other = random_dek();
    assert_ne!(hsm.wrap(&kek, &other).unwrap(), wrapped);
    assert!(
        hsm.describe().contains("bulwark-test"),
        "{}",
        hsm.describe()
    );
    shred(&hsm, &[&kek]);
}

#[test]
fn the_kek_never_leaves_the_token() {
    let _turn = take_turn();
    let hsm = open();
    let (kek, other) = (fresh_label("kek"), fresh_label("other"));
    hsm.generate_kek(&kek).unwrap();
    hsm.generate_kek(&other).unwrap();
    let session = raw_session();
    let (kek_handle, other_handle) = (raw_find(&session, &kek), raw_find(&session, &other));

    let flags = [
        AttributeType::Extractable,
        AttributeType::Sensitive,
        AttributeType::NeverExtractable,
        AttributeType::AlwaysSensitive,
        AttributeType::Token,
        AttributeType::Private,
        AttributeType::Encrypt,
        AttributeType::Decrypt,
        AttributeType::Wrap,
        AttributeType::Unwrap,
    ];
    let read = |handle| session.get_attributes(handle, &flags).unwrap();
    let expected = vec![
        Attribute::Extractable(false),
        Attribute::Sensitive(true),
        Attribute::NeverExtractable(true),
        Attribute::AlwaysSensitive(true),
        Attribute::Token(true),
        Attribute::Private(true),
        Attribute::Encrypt(false),
        Attribute::Decrypt(false),
        Attribute::Wrap(true),
        Attribute::Unwrap(true),
    ];
    assert_eq!(read(kek_handle), expected);

    // Reading the key value is refused.
    let info = session
        .get_attribute_info(kek_handle, &[AttributeType::Value])
        .unwrap();
    assert!(matches!(info[..], [AttributeInfo::Sensitive]), "{info:?}");
    let value = session
        .get_attributes(kek_handle, &[AttributeType::Value])
        .unwrap();
    assert!(value.is_empty(), "the token returned the KEK's value");

    // Wrapping the KEK under another KEK (ours or the attacker's) is refused.
    let wrapped = session.wrap_key(&Mechanism::AesKeyWrapPad, other_handle, kek_handle);
    assert_eq!(refused(wrapped), RvError::KeyUnextractable);
    let wrapped = session.wrap_key(&Mechanism::AesKeyWrap, other_handle, kek_handle);
    assert_eq!(refused(wrapped), RvError::KeyUnextractable);

    // Turning it extractable, or copying it into an extractable object, is refused.
    let _ = refused(session.update_attributes(kek_handle, &[Attribute::Extractable(true)]));
    let _ = refused(session.update_attributes(kek_handle, &[Attribute::Sensitive(false)]));
    let _ = refused(session.copy_object(kek_handle, &[Attribute::Extractable(true)]));
    assert_eq!(read(kek_handle), expected);

    // It is no general-purpose cipher: encrypting, or decrypting a wrapped DEK, is refused.
    let _ = refused(session.encrypt(&Mechanism::AesKeyWrapPad, kek_handle, &random_dek()));
    let _ = refused(session.encrypt(&Mechanism::AesEcb, kek_handle, &random_dek()));
    let wrapped_dek = hsm.wrap(&kek, &random_dek()).unwrap();
    let _ = refused(session.decrypt(&Mechanism::AesKeyWrapPad, kek_handle, &wrapped_dek));
    shred(&hsm, &[&kek, &other]);
}

#[test]
fn unwrap_rejects_another_kek_and_any_tampering() {
    let _turn = take_turn();
    let hsm = open();
    let (kek, other) = (fresh_label("kek"), fresh_label("other"));
    hsm.generate_kek(&kek).unwrap();
    hsm.generate_kek(&other).unwrap();
    let wrapped = hsm.wrap(&kek, &random_dek()).unwrap();

    let rejected = |input: &[u8], label: &str| {
        let result = hsm.unwrap(label, input);
        assert!(
            matches!(result, Err(HsmError::Rejected)),
            "{:?}",
            result.map(|_| "a key")
        );
    };
    rejected(&wrapped, &other);
    for bit in [0, 7, 63, 64, 200, 319] {
        let mut flipped = wrapped.clone();
        flipped[bit / 8] ^= 1 << (bit % 8);
        rejected(&flipped, &kek);
    }
    rejected(&wrapped[..39], &kek);
    rejected(&wrapped[..32], &kek);
    rejected(&wrapped[..8], &kek);
    rejected(&[], &kek);
    rejected(&[wrapped.as_slice(), &[0; 8]].concat(), &kek);
    // A key of another length wrapped under the same KEK is no DEK either.
    let session = raw_session();
    let short = session
        .create_object(&[
            Attribute::Class(cryptoki::object::ObjectClass::SECRET_KEY),
            Attribute::KeyType(cryptoki::object::KeyType::AES),
            Attribute::Token(false),
            Attribute::Sensitive(false),
            Attribute::Extractable(true),
            Attribute::Value(vec![9; 24]),
        ])
        .unwrap();
    let short_wrapped = session
        .wrap_key(&Mechanism::AesKeyWrapPad, raw_find(&session, &kek), short)
        .unwrap();
    rejected(&short_wrapped, &kek);

    assert!(
        hsm.unwrap(&kek, &wrapped).is_ok(),
        "the untouched value still unwraps"
    );
    shred(&hsm, &[&kek, &other]);
}

#[test]
fn labels_are_unique_and_destroying_the_kek_shreds_its_deks() {
    let _turn = take_turn();
    let hsm = open();
    let kek = fresh_label("kek");
    assert!(!hsm.has_key(&kek).unwrap());
    hsm.generate_kek(&kek).unwrap();
    assert!(hsm.has_key(&kek).unwrap());
    assert!(matches!(hsm.generate_kek(&kek), Err(HsmError::KeyExists { label }) if label == kek));

    let missing = fresh_label("missing");
    assert!(matches!(
        hsm.wrap(&missing, &random_dek()),
        Err(HsmError::NoKey { .. })
    ));
    let err = hsm.unwrap(&missing, &[0; 40]).map(|_| ()).unwrap_err();
    assert!(
        matches!(&err, HsmError::NoKey { label } if *label == missing),
        "{err:?}"
    );
    assert!(err.to_string().contains(&format!("`{missing}`")), "{err}");

    let wrapped = hsm.wrap(&kek, &random_dek()).unwrap();
    assert!(hsm.destroy_kek(&kek).unwrap());
    assert!(!hsm.has_key(&kek).unwrap());
    let shredded = hsm.unwrap(&kek, &wrapped).map(|_| ());
    assert!(
        matches!(shredded, Err(HsmError::NoKey { .. })),
        "{shredded:?}"
    );
    assert!(!hsm.destroy_kek(&kek).unwrap());

    // A new KEK under the old label does not bring the DEK back.
    hsm.generate_kek(&kek).unwrap();
    assert!(matches!(
        hsm.unwrap(&kek, &wrapped),
        Err(HsmError::Rejected)
    ));
    shred(&hsm, &[&kek]);
}

#[test]
fn open_names_the_missing_token_and_the_tokens_seen() {
    let _turn = take_turn();
    let mut config = config();
    let label = fresh_label("absent")[..20].to_owned();
    config.token_label.clone_from(&label);
    let err = Hsm::open(&config).map(|_| ()).unwrap_err();
    let HsmError::NoToken {
        label: asked,
        available,
    } = &err
    else {
        panic!("{err:?}");
    };
    assert_eq!(*asked, label);
    assert!(
        available.iter().any(|l| l == "bulwark-test"),
        "{available:?}"
    );
    let message = err.to_string();
    assert!(
        message.contains(&format!("`{label}`")) && message.contains("bulwark-test"),
        "{message}"
    );
}

#[test]
fn open_names_a_module_that_does_not_load() {
    let not_there = PathBuf::from(format!(
        "/nonexistent/{}/libpkcs11.so",
        uuid::Uuid::new_v4()
    ));
    let not_a_library = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml");
    for module in [not_there, not_a_library] {
        let config = HsmConfig {
            module: module.clone(),
            ..config()
        };
        let err = Hsm::open(&config).map(|_| ()).unwrap_err();
        assert!(
            matches!(&err, HsmError::ModuleLoad { module: m, .. } if *m == module),
            "{err:?}"
        );
        assert!(
            err.to_string().contains(&module.display().to_string()),
            "{err}"
        );
    }
}

/// Initialises a token of this test's own (SO PIN and user PIN chosen here) in the free slot.
fn init_own_token(label: &str, user_pin: &str) {
    let pkcs11 = Pkcs11::new(env(MODULE_ENV)).unwrap();
    match pkcs11.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
        Ok(()) | Err(CkError::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {}
        Err(e) => panic!("C_Initialize: {e}"),
    }
    let slot = pkcs11
        .get_slots_with_token()
        .unwrap()
        .into_iter()
        .find(|slot| !pkcs11.get_token_info(*slot).unwrap().token_initialized())
        .expect("SoftHSM2 always shows one free slot");
    let so_pin = AuthPin::from("so-pin-of-the-pin-test");
    pkcs11.init_token(slot, &so_pin, label).unwrap();
    let session = pkcs11.open_rw_session(slot).unwrap();
    session.login(UserType::So, Some(&so_pin)).unwrap();
    session.init_pin(&AuthPin::from(user_pin)).unwrap();
    session.logout().unwrap();
}

#[test]
fn a_wrong_pin_is_refused_and_no_pin_shows_in_errors_or_debug() {
    let _turn = take_turn();
    // Distinctive PINs, so that finding them in a message means a leak.
    const RIGHT: &str = "right-pin-5e1b2d0c";
    const WRONG: &str = "wrong-pin-7f3a9c41";
    let label = fresh_label("pin")[..20].to_owned();
    init_own_token(&label, RIGHT);
    let config = |pin: &str| HsmConfig {
        token_label: label.clone(),
        pin: pin.into(),
        ..config()
    };
    let no_pin = |text: String| {
        assert!(
            !text.contains(RIGHT) && !text.contains(WRONG),
            "a PIN leaked: {text}"
        );
    };

    // One wrong attempt only: SoftHSM2 locks the PIN after a few.
    let err = Hsm::open(&config(WRONG)).map(|_| ()).unwrap_err();
    assert!(matches!(err, HsmError::PinIncorrect), "{err:?}");
    no_pin(format!("{err} {err:?} {:?}", config(WRONG)));

    let hsm = Hsm::open(&config(RIGHT)).unwrap();
    no_pin(format!("{} {hsm:?} {:?}", hsm.describe(), config(RIGHT)));
    let kek = fresh_label("kek");
    hsm.generate_kek(&kek).unwrap();
    let wrapped = hsm.wrap(&kek, &random_dek()).unwrap();
    let errors = [
        hsm.generate_kek(&kek).unwrap_err(),
        hsm.unwrap("missing", &wrapped).map(|_| ()).unwrap_err(),
        hsm.unwrap(&kek, &wrapped[1..]).map(|_| ()).unwrap_err(),
    ];
    for err in errors {
        no_pin(format!("{err} {err:?}"));
    }
}

#[test]
fn one_handle_serves_several_threads() {
    let _turn = take_turn();
    fn send_sync<T: Send + Sync>() {}
    send_sync::<Hsm>();
    let hsm = Arc::new(open());
    let kek = fresh_label("kek");
    hsm.generate_kek(&kek).unwrap();
    let workers: Vec<_> = (0..4)
        .map(|_| {
            let (hsm, kek) = (Arc::clone(&hsm), kek.clone());
            std::thread::spawn(move || {
                for _ in 0..10 {
                    let dek = random_dek();
                    let wrapped = hsm.wrap(&kek, &dek).unwrap();
                    assert_eq!(*hsm.unwrap(&kek, &wrapped).unwrap(), dek);
                }
            })
        })
        .collect();
    for worker in workers {
        worker.join().unwrap();
    }
    shred(&hsm, &[&kek]);
}

#[test]
fn a_key_imported_under_the_label_is_never_used_and_duplicates_are_refused() {
    let _turn = take_turn();
    let hsm = open();
    let session = raw_session();
    // Someone holding the PIN imports a key of known value under a KEK label.
    let label = fresh_label("planted");
    let known = random_dek();
    session
        .create_object(&[
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::KeyType(KeyType::AES),
            Attribute::Token(true),
            Attribute::Private(true),
            Attribute::Value(known.to_vec()),
            Attribute::Wrap(true),
            Attribute::Unwrap(true),
            Attribute::Label(label.as_bytes().to_vec()),
        ])
        .unwrap();
    assert!(hsm.has_key(&label).unwrap(), "the label is taken");
    assert!(
        !hsm.has_kek(&label).unwrap(),
        "but it is not a KEK this provider uses"
    );
    assert!(matches!(
        hsm.wrap(&label, &random_dek()),
        Err(HsmError::NoKey { .. })
    ));
    assert!(matches!(
        hsm.generate_kek(&label),
        Err(HsmError::KeyExists { .. })
    ));
    assert!(hsm.destroy_kek(&label).unwrap());
    // Two generated keys under one label (made outside `generate_kek`): neither is picked.
    let twice = fresh_label("twice");
    for _ in 0..2 {
        session
            .generate_key(
                &Mechanism::AesKeyGen,
                &[
                    Attribute::Class(ObjectClass::SECRET_KEY),
                    Attribute::KeyType(KeyType::AES),
                    Attribute::ValueLen(32.into()),
                    Attribute::Token(true),
                    Attribute::Private(true),
                    Attribute::Sensitive(true),
                    Attribute::Extractable(false),
                    Attribute::Wrap(true),
                    Attribute::Unwrap(true),
                    Attribute::Label(twice.as_bytes().to_vec()),
                ],
            )
            .unwrap();
    }
    assert!(matches!(
        hsm.has_kek(&twice),
        Err(HsmError::Ambiguous { .. })
    ));
    assert!(matches!(
        hsm.wrap(&twice, &random_dek()),
        Err(HsmError::Ambiguous { .. })
    ));
    assert!(hsm.destroy_kek(&twice).unwrap());
}
