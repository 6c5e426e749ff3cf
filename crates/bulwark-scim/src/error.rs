//! SCIM errors (RFC 7644 §3.12): an HTTP status, an optional `scimType` keyword and a detail
//! message, rendered as the `urn:ietf:params:scim:api:messages:2.0:Error` body.

use serde_json::{Value, json};

/// The `scimType` keywords of RFC 7644 §3.12 (table 9).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ScimType {
    /// The filter syntax was invalid or names an unknown attribute.
    InvalidFilter,
    /// The filter yields more results than the server will return.
    TooMany,
    /// A value is already in use (a uniqueness conflict).
    Uniqueness,
    /// The request tried to change a read-only or immutable attribute.
    Mutability,
    /// The request body structure was invalid.
    InvalidSyntax,
    /// A PATCH path was invalid or names an unknown attribute.
    InvalidPath,
    /// A PATCH path did not select any value.
    NoTarget,
    /// A value was missing, of the wrong type or not allowed.
    InvalidValue,
    /// The protocol version is not supported.
    InvalidVers,
    /// The request holds sensitive data in the URL.
    Sensitive,
}

impl ScimType {
    /// The keyword as written in an error body.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::InvalidFilter => "invalidFilter",
            Self::TooMany => "tooMany",
            Self::Uniqueness => "uniqueness",
            Self::Mutability => "mutability",
            Self::InvalidSyntax => "invalidSyntax",
            Self::InvalidPath => "invalidPath",
            Self::NoTarget => "noTarget",
            Self::InvalidValue => "invalidValue",
            Self::InvalidVers => "invalidVers",
            Self::Sensitive => "sensitive",
        }
    }
}

impl std::fmt::Display for ScimType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A SCIM error response: what the server sends back, status and body.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{detail}")]
pub struct ScimError {
    /// The HTTP status.
    pub status: u16,
    /// The `scimType` keyword, for the 400 (and 409) errors that have one.
    pub scim_type: Option<ScimType>,
    /// A human-readable explanation.
    pub detail: String,
}

impl ScimError {
    /// A 400 Bad Request with `scim_type`.
    pub fn bad(scim_type: ScimType, detail: impl Into<String>) -> Self {
        Self::new(400, Some(scim_type), detail)
    }

    /// Any status, with or without a `scimType`.
    pub fn new(status: u16, scim_type: Option<ScimType>, detail: impl Into<String>) -> Self {
        Self {
            status,
            scim_type,
            detail: detail.into(),
        }
    }

    /// The same error with another `scimType` (a filter error inside a PATCH path becomes an
    /// `invalidPath` one).
    #[must_use]
    pub fn retyped(mut self, scim_type: ScimType) -> Self {
        self.scim_type = Some(scim_type);
        self
    }

    /// The error body of RFC 7644 §3.12: `status` is a string, `scimType` is left out when
    /// there is none.
    pub fn body(&self) -> Value {
        let mut body = json!({
            "schemas": [crate::schema::ERROR],
            "status": self.status.to_string(),
            "detail": self.detail,
        });
        if let (Some(t), Some(map)) = (self.scim_type, body.as_object_mut()) {
            map.insert("scimType".into(), Value::from(t.as_str()));
        }
        body
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_has_status_as_a_string_and_the_keyword() {
        let e = ScimError::bad(ScimType::InvalidFilter, "bad `x`");
        assert_eq!(
            e.body(),
            json!({
                "schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"],
                "status": "400",
                "scimType": "invalidFilter",
                "detail": "bad `x`",
            })
        );
        assert_eq!(e.to_string(), "bad `x`");
    }

    #[test]
    fn body_leaves_out_a_missing_keyword() {
        let body = ScimError::new(404, None, "no such resource").body();
        assert_eq!(body.get("status"), Some(&json!("404")));
        assert!(body.get("scimType").is_none());
    }

    #[test]
    fn keywords_are_those_of_the_rfc() {
        let all = [
            (ScimType::InvalidFilter, "invalidFilter"),
            (ScimType::TooMany, "tooMany"),
            (ScimType::Uniqueness, "uniqueness"),
            (ScimType::Mutability, "mutability"),
            (ScimType::InvalidSyntax, "invalidSyntax"),
            (ScimType::InvalidPath, "invalidPath"),
            (ScimType::NoTarget, "noTarget"),
            (ScimType::InvalidValue, "invalidValue"),
            (ScimType::InvalidVers, "invalidVers"),
            (ScimType::Sensitive, "sensitive"),
        ];
        for (t, s) in all {
            assert_eq!(t.as_str(), s);
            assert_eq!(t.to_string(), s);
        }
    }
}
