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
    /// A resource that must be unique exists already.
    #[error("`{0}` is already taken")]
    Conflict(&'static str),
    /// The resource does not exist in this org (or belongs to another: both look the same).
    #[error("not found")]
    NotFound,
    /// Storage failed.
    #[error(transparent)]
    Store(StoreError),
    /// A cryptographic primitive failed (RNG, KDF, hashing).
    #[error("cryptographic failure")]
    Crypto,
    /// The server is shutting down or overloaded and cannot take the work.
    #[error("service unavailable")]
    Unavailable,
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
