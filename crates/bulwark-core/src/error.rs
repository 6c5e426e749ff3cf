//! Errors of the domain layer and of the storage ports.

/// What a storage adapter can report. Adapters map engine errors into these; the text of an
/// engine error never reaches a client (the HTTP layer logs the source and answers opaquely).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database could not be reached or the connection broke.
    #[error("database unavailable")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// A uniqueness rule was violated; the string names the rule (e.g. `users.email`).
    #[error("conflict on `{0}`")]
    Conflict(&'static str),
    /// The row was expected to exist and does not (or belongs to another org).
    #[error("not found")]
    NotFound,
    /// Stored data does not parse (e.g. an unknown role string): a bug or tampering.
    #[error("stored data is invalid: {0}")]
    Corrupt(String),
    /// Any other engine failure.
    #[error("database error")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// Errors of the domain services. Every variant maps to one HTTP answer in the server's single
/// exhaustive `match`.
#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    /// Input failed a rule; `field` is the JSON path of the offending value.
    #[error("invalid `{field}`: {message}")]
    Validation {
        /// JSON path of the offending field.
        field: &'static str,
        /// What is wrong, for the person who sent it.
        message: String,
    },
    /// Setup already ran; it cannot run twice.
    #[error("setup has already been completed")]
    SetupCompleted,
    /// The setup token is missing or wrong.
    #[error("the setup token is not valid")]
    InvalidSetupToken,
    /// Sign-in failed: unknown email or wrong password (never says which).
    #[error("the email or password is not correct")]
    InvalidCredentials,
    /// Too many failed sign-ins for this account or from this address: wait before retrying.
    #[error("too many failed attempts; retry in {retry_after_secs} s")]
    Throttled {
        /// Whole seconds to wait (at least 1).
        retry_after_secs: u64,
    },
    /// A new password breaks the password policy.
    #[error(
        "the new password is not acceptable: it {}",
        weaknesses.iter().map(|w| w.message()).collect::<Vec<_>>().join("; it ")
    )]
    WeakPassword {
        /// JSON path of the password field.
        field: &'static str,
        /// Every rule it breaks.
        weaknesses: Vec<crate::password_policy::Weakness>,
    },
    /// A one-time code (TOTP or backup code) was wrong, used already, or not for this user.
    #[error("the code is not valid")]
    InvalidCode,
    /// The action needs a second factor this session has not passed (or the user has none yet).
    #[error("this action needs multi-factor authentication")]
    MfaRequired {
        /// Whether the user must enrol a second factor first.
        enroll: bool,
    },
    /// The action is not allowed in the current state (e.g. enrolling MFA twice).
    #[error("{0}")]
    State(&'static str),
    /// A programming error caught before it acted (e.g. an action attempted under another
    /// action's decision): answered as an opaque internal error, logged with this cause.
    #[error("internal: {0}")]
    Bug(&'static str),
    /// An email could not be sent; what it was for has been undone.
    #[error("the email could not be sent")]
    Mail,
    /// A resource that must be unique exists already.
    #[error("`{0}` is already taken")]
    Conflict(&'static str),
    /// The resource does not exist in this org (or belongs to another: both look the same).
    #[error("not found")]
    NotFound,
    /// Storage failed.
    #[error(transparent)]
    Store(StoreError),
    /// The key provider (the seed or an HSM) could not wrap or unwrap a data key.
    #[error("the key provider is unavailable")]
    KeyProvider,
    /// A sealed value did not open: altered, moved, or sealed under a retired key version.
    #[error("a sealed value did not open")]
    Sealed,
    /// A cryptographic primitive failed (RNG, KDF, hashing).
    #[error("cryptographic failure")]
    Crypto,
    /// The server is shutting down or overloaded and cannot take the work.
    #[error("service unavailable")]
    Unavailable,
    /// Authorization policies that cannot be activated: not Cedar, not valid against the
    /// schema, or too large. Each entry says what is wrong.
    #[error("the policies are not valid")]
    InvalidPolicies(Vec<String>),
    /// The change would leave no owner able to manage the org (its policies, or its last
    /// owner's role); nothing was changed.
    #[error("{0}")]
    LockOut(&'static str),
    /// The license does not allow this (a limit, a feature, read-only mode); audited.
    #[error("{message}")]
    Entitlement {
        /// Stable code (`license_limit_orgs`, `license_limit_seats`, `license_feature_missing`,
        /// `license_read_only`).
        code: &'static str,
        /// What was refused and how to fix it.
        message: String,
    },
    /// A single sign-on was refused; audited with the code as its reason, no session.
    #[error("single sign-on refused: {code}")]
    SsoRefused {
        /// Stable code (`sso_state_invalid`, `sso_token_invalid`, `sso_email_unverified`, …).
        code: &'static str,
        /// Whether a presented secret failed (state, code, token): charged to the throttle.
        secret: bool,
    },
    /// A SCIM request was refused (answered as a SCIM error with its status and `scimType`).
    #[error("{0}")]
    Scim(bulwark_scim::error::ScimError),
    /// What the org's identity provider manages over SCIM cannot be changed here.
    #[error("{0}")]
    ManagedByScim(&'static str),
    /// A license file was not activated; audited, nothing changed.
    #[error("{message}")]
    LicenseRefused {
        /// Stable code (`license_malformed`, `license_bad_signature`, …).
        code: &'static str,
        /// Why, never echoing the file.
        message: String,
    },
}

impl From<StoreError> for CoreError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict(what) => Self::Conflict(what),
            StoreError::NotFound => Self::NotFound,
            other => Self::Store(other),
        }
    }
}
