//! The one HTTP error type. Every error answers `application/problem+json` (RFC 9457) with a
//! stable `code` and the request id; a 5xx says nothing of its cause, which the observing
//! middleware logs from the response extensions.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bulwark_core::{CoreError, StoreError};
use serde::Serialize;

use crate::middleware::request_id::current_request_id;

/// The media type of every error body.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// One invalid field of a request body.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct FieldError {
    /// JSON pointer to the field, e.g. `/owner/email`.
    pub pointer: String,
    /// What is wrong with it.
    pub detail: String,
}

/// A problem details body.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Problem {
    /// `urn:bulwark:problem:<code>`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Short summary of the problem kind.
    pub title: String,
    /// HTTP status.
    pub status: u16,
    /// Stable machine-readable code.
    pub code: String,
    /// Human explanation of this occurrence.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// The request id, for support.
    pub request_id: String,
    /// Invalid fields, for validation errors.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
}

/// The cause of a 5xx, attached to the response for the log only.
#[derive(Clone, Debug)]
pub struct LoggedCause(pub String);

/// An HTTP error.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    detail: Option<String>,
    errors: Vec<FieldError>,
    cause: Option<String>,
    retry_after: Option<u64>,
}

impl ApiError {
    /// An error with a status, stable code and detail.
    #[must_use]
    pub fn new(status: StatusCode, code: &'static str, detail: impl Into<String>) -> Self {
        Self {
            status,
            code,
            detail: Some(detail.into()),
            errors: Vec::new(),
            cause: None,
            retry_after: None,
        }
    }

    /// 404 `not_found`: the one answer for a missing resource, another org's, and an id that
    /// does not parse.
    #[must_use]
    pub fn not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", "no such resource")
    }

    /// Adds `Retry-After: secs` to the answer.
    #[must_use]
    pub fn retry_after(mut self, secs: u64) -> Self {
        self.retry_after = Some(secs);
        self
    }

    /// A 422 naming the invalid field.
    #[must_use]
    pub fn invalid_field(pointer: impl Into<String>, detail: impl Into<String>) -> Self {
        let detail = detail.into();
        let pointer = pointer.into();
        Self {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            code: "validation_failed",
            detail: Some(format!("`{pointer}` {detail}")),
            errors: vec![FieldError { pointer, detail }],
            cause: None,
            retry_after: None,
        }
    }

    /// An opaque 500; `cause` goes to the log, never to the client.
    #[must_use]
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        Self {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            code: "internal_error",
            detail: Some(
                "an internal error occurred; quote the request id to your administrator".into(),
            ),
            errors: Vec::new(),
            cause: Some(cause.to_string()),
            retry_after: None,
        }
    }

    /// The status.
    #[must_use]
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The stable code.
    #[must_use]
    pub fn code(&self) -> &'static str {
        self.code
    }

    /// The human explanation.
    #[must_use]
    pub fn detail(&self) -> &str {
        self.detail.as_deref().unwrap_or_default()
    }

    /// The invalid fields, for validation errors.
    #[must_use]
    pub fn field_errors(&self) -> &[FieldError] {
        &self.errors
    }

    /// The `Retry-After` seconds, if any.
    #[must_use]
    pub fn retry_after_secs(&self) -> Option<u64> {
        self.retry_after
    }

    /// The cause of a 5xx, for the log.
    #[must_use]
    pub fn cause(&self) -> Option<&str> {
        self.cause.as_deref()
    }
}

/// Renders a problem body for `status` with `code`; used by the error type and by the middleware
/// that turns bare framework errors (404, 405, 408, 413) into problems.
pub fn problem_response(
    status: StatusCode,
    code: &str,
    detail: Option<String>,
    errors: Vec<FieldError>,
) -> Response {
    let bytes = problem_bytes(status, code, detail, errors);
    let mut res = (status, bytes).into_response();
    res.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
    res
}

/// The JSON of a problem body, with the current request id (for answers written below axum:
/// see `conn::parse_error`).
#[must_use]
pub fn problem_bytes(
    status: StatusCode,
    code: &str,
    detail: Option<String>,
    errors: Vec<FieldError>,
) -> Vec<u8> {
    let body = Problem {
        kind: format!("urn:bulwark:problem:{code}"),
        title: status.canonical_reason().unwrap_or("Error").to_owned(),
        status: status.as_u16(),
        code: code.to_owned(),
        detail,
        request_id: current_request_id()
            .map(|r| r.to_string())
            .unwrap_or_default(),
        errors,
    };
    serde_json::to_vec(&body).unwrap_or_else(|_| b"{}".to_vec())
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut res = problem_response(self.status, self.code, self.detail, self.errors);
        if let Some(cause) = self.cause {
            res.extensions_mut().insert(LoggedCause(cause));
        }
        if let Some(secs) = self.retry_after {
            res.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        res
    }
}

impl ApiError {
    /// A storage failure as an answer: 503 when the database is unreachable, else an opaque 500.
    #[must_use]
    pub fn from_store(e: StoreError) -> Self {
        store_error(e)
    }
}

impl From<CoreError> for ApiError {
    fn from(e: CoreError) -> Self {
        match e {
            CoreError::Validation { field, message } => Self::invalid_field(field, message),
            CoreError::SetupCompleted => Self::new(
                StatusCode::GONE,
                "setup_completed",
                "setup has already been completed",
            ),
            CoreError::InvalidSetupToken => Self::new(
                StatusCode::UNAUTHORIZED,
                "invalid_setup_token",
                "the setup token is missing or not valid",
            ),
            CoreError::InvalidCredentials => Self::new(
                StatusCode::UNAUTHORIZED,
                "invalid_credentials",
                "the email or password is not correct",
            ),
            CoreError::Throttled { retry_after_secs } => Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_attempts",
                format!("too many failed attempts; retry in {retry_after_secs} s"),
            )
            .retry_after(retry_after_secs),
            CoreError::WeakPassword { field, weaknesses } => Self {
                status: StatusCode::UNPROCESSABLE_ENTITY,
                code: "weak_password",
                detail: Some(format!("`{field}` is not an acceptable password")),
                errors: weaknesses
                    .iter()
                    .map(|w| FieldError {
                        pointer: field.to_owned(),
                        detail: format!("{} ({})", w.message(), w.code()),
                    })
                    .collect(),
                cause: None,
                retry_after: None,
            },
            CoreError::InvalidCode => Self::new(
                StatusCode::UNAUTHORIZED,
                "invalid_code",
                "the code is not valid (wrong, expired or already used)",
            ),
            CoreError::MfaRequired { enroll: true } => Self::new(
                StatusCode::FORBIDDEN,
                "mfa_enrollment_required",
                "this organisation requires multi-factor authentication for your role: enrol a TOTP authenticator first",
            ),
            CoreError::MfaRequired { enroll: false } => Self::new(
                StatusCode::FORBIDDEN,
                "mfa_required",
                "this action needs a session that passed multi-factor authentication: sign in again",
            ),
            CoreError::Mail => Self::new(
                StatusCode::BAD_GATEWAY,
                "mail_failed",
                "the email could not be sent; nothing was changed, try again later",
            ),
            CoreError::Entitlement { code, message } => {
                Self::new(StatusCode::FORBIDDEN, code, message)
            }
            CoreError::Scim(e) => Self::new(
                StatusCode::from_u16(e.status).unwrap_or(StatusCode::BAD_REQUEST),
                "scim_refused",
                e.detail,
            ),
            CoreError::ManagedByScim(what) => Self::new(StatusCode::CONFLICT, "scim_managed", what),
            CoreError::LicenseRefused { code, message } => {
                Self::new(StatusCode::UNPROCESSABLE_ENTITY, code, message)
            }
            CoreError::SsoRefused { code, .. } => Self::new(
                StatusCode::FORBIDDEN,
                code,
                "the single sign-on was refused; nothing was signed in (see the code)",
            ),
            CoreError::State(what) => Self::new(StatusCode::CONFLICT, "invalid_state", what),
            CoreError::Conflict("idempotency_key") => Self::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "idempotency_key_reused",
                "this Idempotency-Key was used with a different request; nothing was queued",
            ),
            CoreError::Conflict(what) => Self::new(
                StatusCode::CONFLICT,
                "conflict",
                format!("`{what}` is already taken"),
            ),
            CoreError::NotFound => {
                Self::new(StatusCode::NOT_FOUND, "not_found", "no such resource")
            }
            CoreError::Store(s) => store_error(s),
            CoreError::Crypto => Self::internal("cryptographic failure"),
            CoreError::Bug(what) => Self::internal(format!("programming error: {what}")),
            CoreError::KeyProvider => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "key_provider_unavailable",
                "the vault's key provider is unavailable; retry later",
            ),
            CoreError::Sealed => Self::new(
                StatusCode::CONFLICT,
                "credential_unreadable",
                "the credential's stored value does not open (altered in the database, or sealed under a retired key version); nothing was sent: replace the credential's value",
            ),
            CoreError::Unavailable => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "the service cannot take this request now; retry later",
            ),
            CoreError::InvalidPolicies(problems) => Self {
                status: StatusCode::UNPROCESSABLE_ENTITY,
                code: "invalid_policies",
                detail: Some("the policies cannot be activated; nothing was changed".into()),
                errors: problems
                    .into_iter()
                    .map(|detail| FieldError {
                        pointer: "/policies".into(),
                        detail,
                    })
                    .collect(),
                cause: None,
                retry_after: None,
            },
            CoreError::LockOut(what) => Self::new(StatusCode::CONFLICT, "would_lock_out", what),
        }
    }
}

fn store_error(e: StoreError) -> ApiError {
    let cause = error_chain(&e);
    match e {
        StoreError::Unavailable(_) => ApiError {
            cause: Some(cause),
            ..ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "database_unavailable",
                "the database is unavailable; retry later",
            )
        },
        StoreError::Conflict(what) => ApiError::new(
            StatusCode::CONFLICT,
            "conflict",
            format!("`{what}` is already taken"),
        ),
        StoreError::NotFound => {
            ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such resource")
        }
        StoreError::Corrupt(_) | StoreError::Internal(_) => ApiError::internal(cause),
    }
}

/// The error and its sources, one after another, for the log.
#[must_use]
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut next = e.source();
    while let Some(s) = next {
        let text = s.to_string();
        // Wrappers often repeat their source's text; say each thing once.
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        next = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_programming_error_is_an_opaque_500_with_its_cause_for_the_log_only() {
        let err = ApiError::from(CoreError::Bug(
            "an action was attempted under another action's decision",
        ));
        assert_eq!(err.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(err.code(), "internal_error");
        let body = format!("{:?}", err.detail);
        assert!(!body.contains("another action"), "{body}");
        assert!(
            err.cause
                .as_deref()
                .is_some_and(|c| c.contains("another action"))
        );
    }
}
