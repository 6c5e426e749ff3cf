//! Validated JSON bodies.
//!
//! `ValidJson<T>` accepts only `application/json`, parses with the target type's own rules
//! (unknown fields refused, values parsed into domain types), and reports the path of the first
//! bad field: 415 for another media type, 413 over the body limit, 400 for malformed JSON or
//! invalid UTF-8, 422 with a JSON pointer for well-formed JSON that breaks the schema.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{StatusCode, header};
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// A JSON body parsed into `T`.
pub struct ValidJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ValidJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !is_json(req.headers().get(header::CONTENT_TYPE)) {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "send the body as `Content-Type: application/json`",
            ));
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "payload_too_large",
                    "the request body exceeds the configured limit",
                )
            } else {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "unreadable_body",
                    "the request body could not be read",
                )
            }
        })?;
        parse(&bytes).map(ValidJson)
    }
}

fn is_json(value: Option<&axum::http::HeaderValue>) -> bool {
    let Some(v) = value.and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let essence = v
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// Parses `bytes` as `T`, mapping errors as described in the module docs.
///
/// # Errors
/// 400 for syntax, 422 with the field's JSON pointer for schema violations.
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    use serde_json::error::Category;
    let mut de = serde_json::Deserializer::from_slice(bytes);
    match serde_path_to_error::deserialize::<_, T>(&mut de) {
        Ok(value) => {
            de.end().map_err(|e| malformed(&e))?;
            Ok(value)
        }
        Err(e) if e.inner().classify() == Category::Data => {
            // JSON has one number type: `7.0` is the integer 7 (JSON Schema's `integer` says
            // so too), but serde refuses it for an integer field. Such a body is read again
            // with every whole number written as an integer; any other refusal stands.
            let refused = || ApiError::invalid_field(pointer(e.path()), clean(e.inner()));
            let Ok(mut value) = serde_json::from_slice::<serde_json::Value>(bytes) else {
                return Err(refused());
            };
            if !integers_written_as_integers(&mut value) {
                return Err(refused());
            }
            serde_path_to_error::deserialize(value).map_err(|again| {
                ApiError::invalid_field(pointer(again.path()), clean(again.inner()))
            })
        }
        Err(e) => Err(malformed(e.inner())),
    }
}

/// Rewrites every whole-valued float of `value` (`7.0`, `1e3`) within ±2^53 as an integer;
/// whether it changed anything.
fn integers_written_as_integers(value: &mut serde_json::Value) -> bool {
    use serde_json::Value;
    const EXACT: f64 = 9_007_199_254_740_992.0;
    match value {
        Value::Number(n) => match n.as_f64() {
            Some(f) if n.is_f64() && f.fract() == 0.0 && f.abs() <= EXACT => {
                // A whole number within ±2^53 converts exactly.
                let whole = f as i64;
                *n = whole.into();
                true
            }
            _ => false,
        },
        Value::Array(items) => items.iter_mut().fold(false, |changed, v| {
            integers_written_as_integers(v) | changed
        }),
        Value::Object(fields) => fields.values_mut().fold(false, |changed, v| {
            integers_written_as_integers(v) | changed
        }),
        _ => false,
    }
}

fn malformed(e: &serde_json::Error) -> ApiError {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        "malformed_json",
        format!("the body is not valid JSON: {}", clean(e)),
    )
}

/// `a.b[0].c` → `/a/b/0/c`.
fn pointer(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let mut out = String::new();
    for seg in path.iter() {
        out.push('/');
        match seg {
            Segment::Seq { index } => out.push_str(&index.to_string()),
            Segment::Map { key } | Segment::Enum { variant: key } => {
                out.push_str(&key.replace('~', "~0").replace('/', "~1"));
            }
            Segment::Unknown => out.push('?'),
        }
    }
    if out.is_empty() { "/".into() } else { out }
}

/// serde's message without its trailing " at line L column C" (positions help nobody here) and
/// without the offending value: "invalid type: integer `31415926`, expected a string" would
/// echo a secret sent with the wrong type, so it becomes "invalid type, expected a string".
fn clean(e: &serde_json::Error) -> String {
    let s = e.to_string();
    let s = match s.rfind(" at line ") {
        Some(i) => s.get(..i).unwrap_or(&s).to_owned(),
        None => s,
    };
    for kind in ["invalid type", "invalid value"] {
        if s.starts_with(kind)
            && let Some(i) = s.find(", expected ")
        {
            return format!("{kind}{}", s.get(i..).unwrap_or_default());
        }
    }
    s
}

/// The request facts every audit event records: client address (see [`crate::client_ip`]),
/// user agent, request id. The actor is `system` until authentication fills it in.
pub struct AuditContext(pub bulwark_audit::event::Context);

impl axum::extract::FromRequestParts<crate::state::AppState> for AuditContext {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &crate::state::AppState,
    ) -> Result<Self, Self::Rejection> {
        use bulwark_audit::event::{Actor, ActorKind, Context};
        let source_ip = parts
            .extensions
            .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
            .map(|c| {
                let forwarded = parts
                    .headers
                    .get_all("x-forwarded-for")
                    .iter()
                    .filter_map(|v| v.to_str().ok());
                crate::client_ip::client_ip(c.0.ip(), forwarded, &state.trusted_proxies).to_string()
            });
        let user_agent = parts
            .headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let request_id = crate::middleware::request_id::current_request_id().map(|r| r.to_string());
        Ok(Self(Context {
            actor: Actor {
                kind: ActorKind::System,
                id: None,
            },
            source_ip,
            user_agent,
            request_id,
            decision: None,
        }))
    }
}

/// Query parameters parsed into `T` (unknown parameters refused by `T`'s own rules); a query
/// that does not parse is a 400 `invalid_query` problem naming what is wrong.
pub struct ValidQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> axum::extract::FromRequestParts<S> for ValidQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &S,
    ) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::try_from_uri(&parts.uri)
            .map(|q| Self(q.0))
            .map_err(|rejection| {
                let text = rejection.body_text();
                let detail = text
                    .strip_prefix("Failed to deserialize query string: ")
                    .unwrap_or(&text);
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "invalid_query",
                    format!("the query string is not valid: {detail}"),
                )
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, Debug)]
    struct Body {
        n: u32,
        #[serde(default)]
        any: serde_json::Value,
    }

    #[test]
    fn a_whole_number_written_as_a_float_is_an_integer_and_a_fraction_is_refused() {
        let body: Body = parse(br#"{"n": 7.0, "any": [1.5]}"#).unwrap();
        assert_eq!(body.n, 7);
        assert_eq!(body.any, serde_json::json!([1.5]));
        assert_eq!(parse::<Body>(br#"{"n": 1e3}"#).unwrap().n, 1000);
        for bad in [&br#"{"n": 7.5}"#[..], br#"{"n": -1.0}"#, br#"{"n": "7"}"#] {
            let err = parse::<Body>(bad).unwrap_err();
            assert_eq!(err.status(), StatusCode::UNPROCESSABLE_ENTITY, "{bad:?}");
        }
        let err = parse::<Body>(br#"{"n": 7"#).unwrap_err();
        assert_eq!(err.status(), StatusCode::BAD_REQUEST);
    }
}
