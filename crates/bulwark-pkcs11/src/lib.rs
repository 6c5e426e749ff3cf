//! Bulwark's PKCS#11 key provider: the key-encryption key (KEK) lives on a token and never
//! leaves it.
//!
//! Each stored credential is encrypted with its own random 32-byte data key (DEK); this crate
//! wraps that DEK under a KEK held by an HSM with AES key wrap with padding
//! (`CKM_AES_KEY_WRAP_PAD`, RFC 5649) through `C_WrapKey`/`C_UnwrapKey`, and unwraps it again.
//! Destroying the KEK crypto-shreds every DEK wrapped under it.
//!
//! The KEK is generated on the token as sensitive and non-extractable, usable only to wrap and
//! unwrap. A DEK enters the token only as a short-lived session object, destroyed right after
//! use, also when the operation fails.
//!
//! Open one [`Hsm`] per token at start-up and share it: it is `Send + Sync`, its calls take
//! turns on one session. The module is initialised once per process and never finalised here.

use std::fmt;
use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard, PoisonError};

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::types::{AuthPin, Ulong};
use secrecy::{ExposeSecret as _, SecretString};
use zeroize::{Zeroize as _, Zeroizing};

/// The length of a data key (AES-256).
const DEK_LEN: usize = 32;
/// The length of a DEK wrapped with RFC 5649: the 8-byte integrity block plus the padded key.
const WRAPPED_LEN: usize = DEK_LEN + 8;

/// Where the token is and how to log in to it.
#[derive(Clone)]
pub struct HsmConfig {
    /// The PKCS#11 module (shared library), e.g. `/usr/lib/softhsm/libsofthsm2.so`.
    pub module: PathBuf,
    /// The label of the initialised token holding the KEKs.
    pub token_label: String,
    /// The user PIN of that token.
    pub pin: SecretString,
}

impl fmt::Debug for HsmConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HsmConfig")
            .field("module", &self.module)
            .field("token_label", &self.token_label)
            .field("pin", &"[redacted]")
            .finish()
    }
}

/// A logged-in read/write session on one token; safe to share between threads (calls are
/// serialised on the session).
pub struct Hsm {
    session: Mutex<Session>,
    description: String,
}

impl fmt::Debug for Hsm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Hsm").field(&self.description).finish()
    }
}

/// Why a PKCS#11 operation failed. No variant carries a PIN or key material.
#[derive(Debug, thiserror::Error)]
pub enum HsmError {
    /// The PKCS#11 module does not load or does not initialise.
    #[error("the PKCS#11 module `{}` did not load: {reason}", module.display())]
    ModuleLoad {
        /// The module path from the configuration.
        module: PathBuf,
        /// What the loader or `C_Initialize` said.
        reason: String,
    },
    /// No initialised token carries the configured label.
    #[error(
        "no initialised PKCS#11 token labelled `{label}` (tokens seen: {})",
        seen(available)
    )]
    NoToken {
        /// The configured label.
        label: String,
        /// The labels of the initialised tokens the module shows.
        available: Vec<String>,
    },
    /// The token refused the user PIN.
    #[error("the PIN for the PKCS#11 token is incorrect")]
    PinIncorrect,
    /// The token locked the user PIN after too many failures.
    #[error("the user PIN of the PKCS#11 token is locked; the security officer must reset it")]
    PinLocked,
    /// No key carries this label on the token.
    #[error("no key labelled `{label}` on the PKCS#11 token")]
    NoKey {
        /// The label looked for.
        label: String,
    },
    /// An object with this label already exists on the token.
    #[error("an object labelled `{label}` already exists on the PKCS#11 token")]
    KeyExists {
        /// The label asked for.
        label: String,
    },
    /// More than one KEK carries this label: refused rather than guessing which one wraps.
    #[error(
        "more than one key labelled `{label}` is on the PKCS#11 token; remove the one Bulwark did not create"
    )]
    Ambiguous {
        /// The label.
        label: String,
    },
    /// The wrapped key is not authentic under this KEK (wrong KEK, altered or truncated input).
    #[error("the wrapped key was rejected")]
    Rejected,
    /// Any other failure, as the PKCS#11 return code's name (e.g. `CKR_DEVICE_ERROR`).
    #[error("the PKCS#11 token failed: {0}")]
    Token(String),
}

fn seen(labels: &[String]) -> String {
    if labels.is_empty() {
        "none".to_owned()
    } else {
        labels.join(", ")
    }
}

/// Any refusal, as the operator should read it.
fn token_err(err: CkError) -> HsmError {
    match err {
        CkError::Pkcs11(RvError::PinIncorrect, _) => HsmError::PinIncorrect,
        CkError::Pkcs11(RvError::PinLocked, _) => HsmError::PinLocked,
        CkError::Pkcs11(rv, _) => HsmError::Token(ckr_name(rv)),
        other => HsmError::Token(other.to_string()),
    }
}

/// `RvError::WrappedKeyInvalid` → `CKR_WRAPPED_KEY_INVALID`.
fn ckr_name(rv: RvError) -> String {
    match rv {
        RvError::VendorDefined(code) => format!("CKR_VENDOR_DEFINED+{code:#x}"),
        RvError::UnknownErrorCode(code) => format!("CKR {code:#x}"),
        known => {
            let mut name = "CKR".to_owned();
            for c in format!("{known:?}").chars() {
                if c.is_ascii_uppercase() {
                    name.push('_');
                }
                name.push(c.to_ascii_uppercase());
            }
            name
        }
    }
}

impl Hsm {
    /// Loads the module, finds the initialised token whose label is `token_label`, opens a R/W
    /// session, logs in as the normal user.
    ///
    /// PKCS#11 keeps the login state per token and process: while another handle of this
    /// process is logged in to the token, the module may answer `CKR_USER_ALREADY_LOGGED_IN`
    /// without checking the PIN (SoftHSM2 does), and this succeeds. Hence: one handle per token.
    ///
    /// # Errors
    /// [`HsmError::ModuleLoad`], [`HsmError::NoToken`], [`HsmError::PinIncorrect`],
    /// [`HsmError::PinLocked`], or [`HsmError::Token`] for any other refusal.
    pub fn open(config: &HsmConfig) -> Result<Self, HsmError> {
        // INVARIANT: one open at a time in the process; concurrent first `C_Initialize` calls
        // of a module are undefined behaviour, and SoftHSM2 races on concurrent session opens.
        static OPENING: Mutex<()> = Mutex::new(());
        let _opening = OPENING.lock().unwrap_or_else(PoisonError::into_inner);
        let pkcs11 = load(config)?;
        let mut available = Vec::new();
        let mut found = None;
        for slot in pkcs11
            .get_slots_with_initialized_token()
            .map_err(token_err)?
        {
            let info = pkcs11.get_token_info(slot).map_err(token_err)?;
            if found.is_none() && info.label() == config.token_label {
                found = Some((slot, info.model().to_owned()));
            }
            available.push(info.label().to_owned());
        }
        let Some((slot, model)) = found else {
            let label = config.token_label.clone();
            return Err(HsmError::NoToken { label, available });
        };
        let session = pkcs11.open_rw_session(slot).map_err(token_err)?;
        let pin = AuthPin::from(config.pin.expose_secret());
        match session.login(UserType::User, Some(&pin)) {
            // Login state is per token and process: another handle logged in already.
            Ok(()) | Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => {}
            Err(e) => return Err(token_err(e)),
        }
        let description = format!("{model} slot {} token `{}`", slot.id(), config.token_label);
        let session = Mutex::new(session);
        Ok(Self {
            session,
            description,
        })
    }

    /// A short public description, e.g. "SoftHSM v2 slot 123456 token `bulwark`" (no secrets).
    #[must_use]
    pub fn describe(&self) -> String {
        self.description.clone()
    }

    /// Whether the token holds a usable KEK labelled `label`: generated there, always sensitive,
    /// never extractable (see `find_kek`).
    ///
    /// # Errors
    /// [`HsmError::Ambiguous`] when several match; [`HsmError::Token`].
    pub fn has_kek(&self, label: &str) -> Result<bool, HsmError> {
        match find_kek(&self.session(), label) {
            Ok(_) => Ok(true),
            Err(HsmError::NoKey { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Whether any object on the token carries `label`.
    ///
    /// # Errors
    /// [`HsmError::Token`] when the token refuses the search.
    pub fn has_key(&self, label: &str) -> Result<bool, HsmError> {
        labelled(&self.session(), label)
    }

    /// Generates an AES-256 KEK labelled `label` on the token: a private, sensitive,
    /// non-extractable token object usable only to wrap and unwrap.
    ///
    /// # Errors
    /// [`HsmError::KeyExists`] when an object with this label exists; [`HsmError::Token`].
    pub fn generate_kek(&self, label: &str) -> Result<(), HsmError> {
        let session = self.session();
        if labelled(&session, label)? {
            return Err(HsmError::KeyExists {
                label: label.to_owned(),
            });
        }
        let template = [
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::KeyType(KeyType::AES),
            Attribute::ValueLen(Ulong::from(32)), // AES-256
            Attribute::Token(true),
            Attribute::Private(true),
            Attribute::Sensitive(true),
            Attribute::Extractable(false),
            Attribute::Wrap(true),
            Attribute::Unwrap(true),
            Attribute::Encrypt(false),
            Attribute::Decrypt(false),
            Attribute::Sign(false),
            Attribute::Verify(false),
            Attribute::Derive(false),
            Attribute::Modifiable(false),
            Attribute::Copyable(false),
            Attribute::Label(label.into()),
        ];
        session
            .generate_key(&Mechanism::AesKeyGen, &template)
            .map_err(token_err)?;
        Ok(())
    }

    /// Wraps a 32-byte DEK under the KEK `kek_label` with `CKM_AES_KEY_WRAP_PAD`; the result is
    /// 40 bytes.
    ///
    /// # Errors
    /// [`HsmError::NoKey`] when there is no such KEK; [`HsmError::Token`].
    pub fn wrap(&self, kek_label: &str, dek: &[u8; DEK_LEN]) -> Result<Vec<u8>, HsmError> {
        let session = self.session();
        let kek = find_kek(&session, kek_label)?;
        let mut template = [
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::KeyType(KeyType::AES),
            Attribute::Token(false),
            Attribute::Sensitive(false),
            Attribute::Extractable(true),
            Attribute::Value(dek.to_vec()),
        ];
        let created = session.create_object(&template);
        scrub(&mut template);
        let dek_object = created.map_err(token_err)?;
        let wrapped = session.wrap_key(&Mechanism::AesKeyWrapPad, kek, dek_object);
        let destroyed = session.destroy_object(dek_object);
        let wrapped = wrapped.map_err(token_err)?;
        destroyed.map_err(token_err)?;
        Ok(wrapped)
    }

    /// Unwraps a DEK that [`Hsm::wrap`] produced under the KEK `kek_label`.
    ///
    /// # Errors
    /// [`HsmError::NoKey`] when there is no such KEK; [`HsmError::Rejected`] when `wrapped` is
    /// not authentic under it (wrong KEK, altered, truncated); [`HsmError::Token`].
    pub fn unwrap(
        &self,
        kek_label: &str,
        wrapped: &[u8],
    ) -> Result<Zeroizing<[u8; DEK_LEN]>, HsmError> {
        let session = self.session();
        let kek = find_kek(&session, kek_label)?;
        if wrapped.len() != WRAPPED_LEN {
            return Err(HsmError::Rejected);
        }
        let template = [
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::KeyType(KeyType::AES),
            Attribute::Token(false),
            Attribute::Sensitive(false),
            Attribute::Extractable(true),
        ];
        // No CKA_VALUE_LEN: SoftHSM2 refuses it in an unwrap template (CKR_ATTRIBUTE_READ_ONLY);
        // the length is checked on the value read back instead.
        let dek_object = session
            .unwrap_key(&Mechanism::AesKeyWrapPad, kek, wrapped, &template)
            .map_err(unwrap_err)?;
        let read = read_value(&session, dek_object);
        let destroyed = session.destroy_object(dek_object);
        let dek = read?;
        destroyed.map_err(token_err)?;
        Ok(dek)
    }

    /// Destroys the KEK `label`, crypto-shredding every DEK wrapped under it; `Ok(false)` when
    /// there is no such KEK.
    ///
    /// # Errors
    /// [`HsmError::Token`] when the token refuses.
    pub fn destroy_kek(&self, label: &str) -> Result<bool, HsmError> {
        let session = self.session();
        let keks = session
            .find_objects(&kek_template(label))
            .map_err(token_err)?;
        for kek in &keks {
            session.destroy_object(*kek).map_err(token_err)?;
        }
        Ok(!keks.is_empty())
    }

    fn session(&self) -> MutexGuard<'_, Session> {
        // A panic while holding the lock leaves no half-done PKCS#11 state worth refusing.
        self.session.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Loads and initialises the module (once per process: later calls find it initialised).
fn load(config: &HsmConfig) -> Result<Pkcs11, HsmError> {
    let load_err = |reason: String| HsmError::ModuleLoad {
        module: config.module.clone(),
        reason,
    };
    let pkcs11 = Pkcs11::new(&config.module).map_err(|e| match e {
        CkError::LibraryLoading(inner) => load_err(inner.to_string()),
        other => load_err(other.to_string()),
    })?;
    match pkcs11.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
        Ok(()) | Err(CkError::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => Ok(pkcs11),
        Err(CkError::Pkcs11(rv, _)) => {
            Err(load_err(format!("C_Initialize returned {}", ckr_name(rv))))
        }
        Err(other) => Err(load_err(other.to_string())),
    }
}

fn kek_template(label: &str) -> [Attribute; 3] {
    [
        Attribute::Class(ObjectClass::SECRET_KEY),
        Attribute::KeyType(KeyType::AES),
        Attribute::Label(label.into()),
    ]
}

/// Whether any object (key or not) carries `label`.
fn labelled(session: &Session, label: &str) -> Result<bool, HsmError> {
    let found = session.find_objects(&[Attribute::Label(label.into())]);
    Ok(!found.map_err(token_err)?.is_empty())
}

/// The KEK labelled `label`: only a key generated on the token (`CKA_LOCAL`) that has always been
/// sensitive and never extractable matches, so a key someone imported with a known value under
/// the label is not used. Two matches are refused rather than one picked.
fn find_kek(session: &Session, label: &str) -> Result<ObjectHandle, HsmError> {
    let [class, key_type, label_attr] = kek_template(label);
    let template = [
        class,
        key_type,
        label_attr,
        Attribute::Token(true),
        Attribute::Local(true),
        Attribute::Sensitive(true),
        Attribute::AlwaysSensitive(true),
        Attribute::Extractable(false),
        Attribute::NeverExtractable(true),
    ];
    let found = session.find_objects(&template).map_err(token_err)?;
    match found.as_slice() {
        [one] => Ok(*one),
        [] => Err(HsmError::NoKey {
            label: label.to_owned(),
        }),
        _ => Err(HsmError::Ambiguous {
            label: label.to_owned(),
        }),
    }
}

/// Integrity and length failures of an unwrap are all the same answer: rejected. SoftHSM2
/// reports a failed RFC 5649 integrity check as `CKR_GENERAL_ERROR`.
fn unwrap_err(err: CkError) -> HsmError {
    match err {
        CkError::Pkcs11(
            RvError::GeneralError
            | RvError::WrappedKeyInvalid
            | RvError::WrappedKeyLenRange
            | RvError::EncryptedDataInvalid
            | RvError::EncryptedDataLenRange,
            _,
        ) => HsmError::Rejected,
        other => token_err(other),
    }
}

fn read_value(
    session: &Session,
    object: ObjectHandle,
) -> Result<Zeroizing<[u8; DEK_LEN]>, HsmError> {
    let mut attributes = session
        .get_attributes(object, &[AttributeType::Value])
        .map_err(token_err)?;
    let mut dek = Zeroizing::new([0_u8; DEK_LEN]);
    let mut filled = false;
    for attribute in &mut attributes {
        if let Attribute::Value(value) = attribute
            && value.len() == DEK_LEN
        {
            dek.copy_from_slice(value);
            filled = true;
        }
    }
    scrub(&mut attributes);
    if filled {
        Ok(dek)
    } else {
        Err(HsmError::Rejected)
    }
}

/// Zeroizes the key bytes held in a template.
fn scrub(template: &mut [Attribute]) {
    for attribute in template {
        if let Attribute::Value(value) = attribute {
            value.zeroize();
        }
    }
}
