//! Console forms into API bodies. A form's fields become the JSON body of the API operation
//! the page calls, and are parsed by the API's own parser ([`crate::extract::parse`]) into the
//! API's own request type: the same rules, limits and error pointers as `/v1`.

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::error::ApiError;

/// How a form field becomes a JSON value.
#[derive(Clone, Copy)]
pub enum Kind {
    /// A string (the default); an empty field is left out.
    Text,
    /// A string, even when empty.
    TextKeepEmpty,
    /// A whole number; an empty field is left out.
    Number,
    /// Every occurrence, as an array of strings (checkboxes, multi-selects).
    List,
    /// Lines of a textarea, as an array of non-empty trimmed strings.
    Lines,
}

/// Builds the JSON body from `fields`: only the listed fields are read (others, like `_csrf`,
/// are dropped); a listed field sent twice (other than a list) is refused.
///
/// # Errors
/// 422 `invalid_form` for a duplicated field or a number that is not one.
pub fn body<T: DeserializeOwned>(
    fields: &[(String, String)],
    spec: &[(&str, Kind)],
) -> Result<T, ApiError> {
    let mut out = Map::new();
    for (name, kind) in spec {
        let mut values = fields.iter().filter(|(k, _)| k == name).map(|(_, v)| v);
        let value = match kind {
            Kind::List => Some(Value::Array(
                values
                    .filter(|v| !v.is_empty())
                    .map(|v| Value::String(v.clone()))
                    .collect(),
            )),
            _ => {
                let (first, second) = (values.next(), values.next());
                if second.is_some() {
                    return Err(invalid(&format!("the field `{name}` appears twice")));
                }
                match (kind, first) {
                    (_, None) => None,
                    (Kind::TextKeepEmpty, Some(v)) => Some(Value::String(v.clone())),
                    (_, Some(v)) if v.trim().is_empty() => None,
                    (Kind::Number, Some(v)) => Some(Value::Number(
                        v.trim()
                            .parse::<u64>()
                            .map_err(|_| invalid(&format!("`{name}` must be a whole number")))?
                            .into(),
                    )),
                    (Kind::Lines, Some(v)) => Some(Value::Array(
                        v.lines()
                            .map(str::trim)
                            .filter(|l| !l.is_empty())
                            .map(|l| Value::String(l.to_owned()))
                            .collect(),
                    )),
                    (_, Some(v)) => Some(Value::String(v.clone())),
                }
            }
        };
        if let Some(value) = value {
            out.insert((*name).to_owned(), value);
        }
    }
    let bytes = serde_json::to_vec(&Value::Object(out)).unwrap_or_default();
    crate::extract::parse(&bytes)
}

/// One field's value (the first), or empty.
#[must_use]
pub fn field<'f>(fields: &'f [(String, String)], name: &str) -> &'f str {
    fields
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .unwrap_or_default()
}

fn invalid(detail: &str) -> ApiError {
    ApiError::new(
        axum::http::StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_form",
        format!("the form is not valid: {detail}"),
    )
}
