//! [`normalize`]: checks a resource body (POST, PUT, or the result of a PATCH) against the
//! schema and rewrites it into the one form the rest of the server reads.
//!
//! Lenient where identity providers are known to differ from the RFC and nothing is lost:
//! attribute names in any case (rewritten to the schema's spelling), `"True"`/`"false"` strings
//! for booleans (Entra ID), a single value for a multi-valued attribute, a bare id for the
//! enterprise `manager`, unknown and read-only attributes dropped (RFC 7643 §7 says to ignore
//! read-only values), null and empty values treated as unassigned (RFC 7643 §2.5), repeated
//! values of a multi-valued attribute kept once. Strict where a value would be misread: a
//! value of the wrong type for a known attribute, a missing required attribute, an overlong
//! string or list, `schemas` without the core schema, are all 400 `invalidValue`.

use std::collections::HashSet;

use serde_json::{Map, Value};

use super::{
    Attribute, Kind, MAX_BINARY_CHARS, MAX_STRING_CHARS, MAX_VALUES, Mutability, Resource, find,
};
use crate::error::{ScimError, ScimType};
use crate::json;

/// Checks and rewrites `value`, a `resource` body, in place.
///
/// # Errors
/// 400 `invalidSyntax` when it is not an object; 400 `invalidValue` for a wrong type, a
/// missing required attribute, an overlong value, or `schemas` without the core schema.
pub fn normalize(resource: Resource, value: &mut Value) -> Result<(), ScimError> {
    let Value::Object(body) = value else {
        return Err(ScimError::bad(
            ScimType::InvalidSyntax,
            "the body must be a JSON object",
        ));
    };
    let mut schemas = None;
    let mut out = Map::new();
    for (key, v) in std::mem::take(body) {
        if key.eq_ignore_ascii_case("schemas") {
            schemas = Some(v);
        } else if let Some(urn) = resource.extension_urn(&key) {
            if let Some(ext) = extension(resource, urn, v)? {
                insert(&mut out, &key, urn, Value::Object(ext));
            }
        } else if let Some(attr) = find(resource.core(), &key) {
            put(&mut out, attr, &key, v, None)?;
        }
    }
    required(resource.core(), &out)?;
    let schemas = checked_schemas(resource, schemas, &out)?;
    out.insert("schemas".into(), schemas);
    *body = out;
    Ok(())
}

/// Inserts `v` under the canonical `name`; when the body spelled the attribute twice, the
/// canonical spelling wins, else the first.
fn insert(out: &mut Map<String, Value>, key: &str, name: &str, v: Value) {
    if !out.contains_key(name) || key == name {
        out.insert(name.to_owned(), v);
    }
}

/// Normalizes one attribute of an object and inserts it; read-only and unassigned ones are
/// left out.
fn put(
    out: &mut Map<String, Value>,
    attr: &'static Attribute,
    key: &str,
    v: Value,
    parent: Option<&str>,
) -> Result<(), ScimError> {
    if attr.mutability == Mutability::ReadOnly {
        return Ok(());
    }
    if let Some(v) = value(attr, v, parent)? {
        insert(out, key, attr.name, v);
    }
    Ok(())
}

fn extension(
    resource: Resource,
    urn: &str,
    v: Value,
) -> Result<Option<Map<String, Value>>, ScimError> {
    let table = resource.extension(urn).unwrap_or_default();
    let obj = match v {
        Value::Null => return Ok(None),
        Value::Object(o) => o,
        other => return Err(wrong(urn, None, "an object", &other)),
    };
    let mut out = Map::new();
    for (key, v) in obj {
        if let Some(attr) = find(table, &key) {
            put(&mut out, attr, &key, v, None)?;
        }
    }
    required(table, &out)?;
    Ok((!out.is_empty()).then_some(out))
}

/// `schemas` as written back: the core schema, then each extension the body holds.
fn checked_schemas(
    resource: Resource,
    given: Option<Value>,
    out: &Map<String, Value>,
) -> Result<Value, ScimError> {
    let listed = match given {
        Some(Value::Array(a)) => a,
        Some(Value::String(s)) => vec![Value::String(s)],
        _ => Vec::new(),
    };
    let mut has_core = false;
    for s in &listed {
        let Some(s) = s.as_str() else {
            return Err(ScimError::bad(
                ScimType::InvalidValue,
                "`schemas` must be a list of URIs",
            ));
        };
        has_core |= s.eq_ignore_ascii_case(resource.schema());
    }
    if !has_core {
        return Err(ScimError::bad(
            ScimType::InvalidValue,
            format!("`schemas` must list `{}`", resource.schema()),
        ));
    }
    let mut schemas = vec![Value::from(resource.schema())];
    for urn in resource.extensions() {
        if out.contains_key(*urn) {
            schemas.push(Value::from(*urn));
        }
    }
    Ok(Value::Array(schemas))
}

fn required(table: &'static [Attribute], out: &Map<String, Value>) -> Result<(), ScimError> {
    for attr in table.iter().filter(|a| a.required) {
        let ok = out.get(attr.name).is_some_and(|v| match v {
            Value::String(s) => !s.trim().is_empty(),
            other => json::present(other),
        });
        if !ok {
            return Err(ScimError::bad(
                ScimType::InvalidValue,
                format!("`{}` is required", attr.name),
            ));
        }
    }
    Ok(())
}

/// An attribute's value, normalized; `None` when it is unassigned (null, empty).
fn value(
    attr: &'static Attribute,
    v: Value,
    parent: Option<&str>,
) -> Result<Option<Value>, ScimError> {
    if !attr.multi_valued {
        return single(attr, v, parent);
    }
    let items = match v {
        Value::Array(a) => a,
        other => vec![other],
    };
    let mut seen = HashSet::with_capacity(items.len());
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        if let Some(x) = single(attr, item, parent)?
            && seen.insert(element_key(attr, &x))
        {
            out.push(x);
        }
    }
    if out.len() > MAX_VALUES && attr.name != "members" {
        return Err(ScimError::bad(
            ScimType::InvalidValue,
            format!(
                "`{}` holds more than {MAX_VALUES} values",
                label(attr, parent)
            ),
        ));
    }
    Ok((!out.is_empty()).then_some(Value::Array(out)))
}

/// What makes two values of a multi-valued attribute the same: a group member's id (ignoring
/// case), else the whole value.
pub(crate) fn element_key(attr: &Attribute, element: &Value) -> String {
    if attr.name == "members"
        && let Some(id) = json::field(element, "value").and_then(Value::as_str)
    {
        return id.to_lowercase();
    }
    element.to_string()
}

fn single(
    attr: &'static Attribute,
    v: Value,
    parent: Option<&str>,
) -> Result<Option<Value>, ScimError> {
    if v.is_null() {
        return Ok(None);
    }
    let v = match attr.kind {
        Kind::Complex => return complex(attr, v),
        Kind::Boolean => boolean(attr, v, parent)?,
        Kind::Integer | Kind::Decimal => number(attr, v, parent)?,
        Kind::String | Kind::Reference | Kind::Binary | Kind::DateTime => text(attr, v, parent)?,
    };
    Ok(Some(v))
}

fn complex(attr: &'static Attribute, v: Value) -> Result<Option<Value>, ScimError> {
    let obj = match v {
        Value::Object(o) => o,
        // Entra ID sets the enterprise manager to a bare id.
        Value::String(id) if attr.name == "manager" => {
            Map::from_iter([("value".to_owned(), Value::String(id))])
        }
        other => return Err(wrong(attr.name, None, "an object", &other)),
    };
    let mut out = Map::new();
    for (key, x) in obj {
        if let Some(sub) = attr.sub(&key) {
            put(&mut out, sub, &key, x, Some(attr.name))?;
        }
    }
    Ok((!out.is_empty()).then_some(Value::Object(out)))
}

fn boolean(attr: &Attribute, v: Value, parent: Option<&str>) -> Result<Value, ScimError> {
    match &v {
        Value::Bool(_) => Ok(v),
        Value::String(s) if s.trim().eq_ignore_ascii_case("true") => Ok(Value::Bool(true)),
        Value::String(s) if s.trim().eq_ignore_ascii_case("false") => Ok(Value::Bool(false)),
        _ => Err(wrong(attr.name, parent, "true or false", &v)),
    }
}

fn number(attr: &Attribute, v: Value, parent: Option<&str>) -> Result<Value, ScimError> {
    let n = match &v {
        Value::Number(n) => Some(n.clone()),
        Value::String(s) => s.trim().parse::<serde_json::Number>().ok(),
        _ => None,
    };
    let integer = attr.kind == Kind::Integer;
    match n {
        Some(n) if !integer || n.is_i64() || n.is_u64() => Ok(Value::Number(n)),
        _ => Err(wrong(
            attr.name,
            parent,
            if integer { "an integer" } else { "a number" },
            &v,
        )),
    }
}

fn text(attr: &Attribute, v: Value, parent: Option<&str>) -> Result<Value, ScimError> {
    let s = match v {
        Value::String(s) => s,
        Value::Number(n) if attr.kind == Kind::String => n.to_string(),
        other => return Err(wrong(attr.name, parent, "a string", &other)),
    };
    let max = match attr.kind {
        Kind::Binary => MAX_BINARY_CHARS,
        _ => MAX_STRING_CHARS,
    };
    if s.chars().nth(max).is_some() {
        return Err(ScimError::bad(
            ScimType::InvalidValue,
            format!("`{}` is longer than {max} characters", label(attr, parent)),
        ));
    }
    if attr.kind == Kind::DateTime
        && time::OffsetDateTime::parse(&s, &time::format_description::well_known::Rfc3339).is_err()
    {
        return Err(wrong(
            attr.name,
            parent,
            "an RFC 3339 date-time",
            &Value::String(s),
        ));
    }
    Ok(Value::String(s))
}

fn label(attr: &Attribute, parent: Option<&str>) -> String {
    match parent {
        Some(p) => format!("{p}.{}", attr.name),
        None => attr.name.to_owned(),
    }
}

fn wrong(name: &str, parent: Option<&str>, expected: &str, got: &Value) -> ScimError {
    let got = match got {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    };
    let name = match parent {
        Some(p) => format!("{p}.{name}"),
        None => name.to_owned(),
    };
    ScimError::bad(
        ScimType::InvalidValue,
        format!("`{name}` must be {expected}, not {got}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::{ENTERPRISE_USER, GROUP, USER};
    use serde_json::json;

    fn user(mut v: Value) -> Result<Value, ScimError> {
        normalize(Resource::User, &mut v).map(|()| v)
    }

    fn invalid(v: Value) -> String {
        let e = user(v).unwrap_err();
        assert_eq!((e.status, e.scim_type), (400, Some(ScimType::InvalidValue)));
        e.detail
    }

    #[test]
    fn rewrites_names_and_coerces_quirks() {
        let v = user(json!({
            "SCHEMAS": [USER.to_uppercase(), ENTERPRISE_USER],
            "username": "bjensen",
            "Active": "False",
            "NAME": {"GivenName": "Barbara", "nope": 1},
            "emails": {"Value": "b@example.com", "Primary": "true", "type": "work"},
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:user": {
                "Department": "Tour Operations",
                "manager": "26118915-6090-4610-87e4-49d8ca9f808d",
            },
            "id": "forged",
            "meta": {"resourceType": "User"},
            "groups": [{"value": "g1"}],
            "unknownAttribute": true,
            "title": null,
            "roles": [],
        }))
        .unwrap();
        assert_eq!(
            v,
            json!({
                "schemas": [USER, ENTERPRISE_USER],
                "userName": "bjensen",
                "active": false,
                "name": {"givenName": "Barbara"},
                "emails": [{"value": "b@example.com", "primary": true, "type": "work"}],
                ENTERPRISE_USER: {
                    "department": "Tour Operations",
                    "manager": {"value": "26118915-6090-4610-87e4-49d8ca9f808d"},
                },
            })
        );
    }

    #[test]
    fn drops_read_only_sub_attributes_and_keeps_the_canonical_spelling() {
        let v = user(json!({
            "schemas": [USER],
            "UserName": "first",
            "userName": "canonical",
            "emails": [{"value": "c@example.com"}],
            ENTERPRISE_USER: {"manager": {"value": "m", "displayName": "Boss"}},
        }))
        .unwrap();
        assert_eq!(v["userName"], "canonical");
        assert_eq!(v[ENTERPRISE_USER], json!({"manager": {"value": "m"}}));
        assert_eq!(v["schemas"], json!([USER, ENTERPRISE_USER]));
    }

    #[test]
    fn wrong_types_are_invalid_value() {
        let base = |k: &str, v: Value| {
            let mut b = json!({"schemas": [USER], "userName": "u"});
            b[k] = v;
            b
        };
        assert!(
            invalid(base("name", json!("Barbara")))
                .contains("`name` must be an object, not a string")
        );
        assert!(
            invalid(base("displayName", json!({"x": 1})))
                .contains("`displayName` must be a string")
        );
        assert!(invalid(base("active", json!("yes"))).contains("`active` must be true or false"));
        assert!(invalid(base("active", json!(1))).contains("`active`"));
        assert!(invalid(base("emails", json!(["a@b"]))).contains("`emails` must be an object"));
        assert!(
            invalid(base("emails", json!([{"primary": "maybe"}]))).contains("`emails.primary`")
        );
        assert!(invalid(base("title", json!("x".repeat(1025)))).contains("longer than 1024"));
        let many: Vec<Value> = (0..101)
            .map(|i| json!({"value": format!("r{i}")}))
            .collect();
        assert!(invalid(base("roles", json!(many))).contains("more than 100 values"));
        let mut ext = base("x", json!(null));
        ext[ENTERPRISE_USER] = json!("sales");
        assert!(invalid(ext).contains(ENTERPRISE_USER));
    }

    #[test]
    fn numbers_become_strings_for_string_attributes() {
        let emails = json!([{"value": "u@example.com"}]);
        let v = user(json!({"schemas": [USER], "userName": "u", "emails": emails, ENTERPRISE_USER: {"employeeNumber": 701984}})).unwrap();
        assert_eq!(v[ENTERPRISE_USER]["employeeNumber"], "701984");
        assert_eq!(user(json!({"schemas": [USER], "userName": "u", "emails": emails, "title": "x".repeat(1024)})).unwrap()["title"].as_str().unwrap().len(), 1024);
        let cert = json!({"schemas": [USER], "userName": "u", "emails": emails, "x509Certificates": [{"value": "A".repeat(2000)}]});
        assert!(user(cert).is_ok());
    }

    #[test]
    fn required_attributes_and_schemas() {
        assert!(invalid(json!({"schemas": [USER]})).contains("`userName` is required"));
        // Every Bulwark account has an address: `emails` is required, with a value.
        assert!(
            invalid(json!({"schemas": [USER], "userName": "u"})).contains("`emails` is required")
        );
        assert!(
            invalid(json!({"schemas": [USER], "userName": "  "}))
                .contains("`userName` is required")
        );
        let e = json!([{"value": "u@example.com"}]);
        assert!(invalid(json!({"userName": "u", "emails": e})).contains("`schemas` must list"));
        assert!(
            invalid(json!({"schemas": [GROUP], "userName": "u", "emails": e}))
                .contains("`schemas` must list")
        );
        assert!(
            invalid(json!({"schemas": [USER, 7], "userName": "u", "emails": e}))
                .contains("list of URIs")
        );
        let e = normalize(Resource::Group, &mut json!({"schemas": [GROUP]})).unwrap_err();
        assert!(e.detail.contains("`displayName` is required"));
        let e = normalize(Resource::User, &mut json!([1])).unwrap_err();
        assert_eq!(e.scim_type, Some(ScimType::InvalidSyntax));
        // An unknown extension is dropped with its URN; a listed extension without its object
        // is not listed back.
        let v = user(json!({"schemas": [USER, "urn:okta:custom", ENTERPRISE_USER], "userName": "u", "emails": [{"value": "u@example.com"}], "urn:okta:custom": {"a": 1}})).unwrap();
        assert_eq!(
            v,
            json!({"schemas": [USER], "userName": "u", "emails": [{"value": "u@example.com"}]})
        );
    }

    #[test]
    fn groups_keep_many_members_once() {
        let members: Vec<Value> = (0..10_000)
            .map(|i| json!({"value": format!("usr_{i}"), "type": "User"}))
            .chain([json!({"VALUE": "USR_1"})])
            .collect();
        let mut g =
            json!({"schemas": [GROUP], "displayName": "Eng", "members": members, "id": "x"});
        normalize(Resource::Group, &mut g).unwrap();
        assert_eq!(g["members"].as_array().unwrap().len(), 10_000);
        assert!(g.get("id").is_none());
    }
}
