//! PATCH (RFC 7644 §3.5.2): [`apply`] runs the operations of a `PatchOp` request on a
//! resource, all or none, then [`normalize`](crate::schema::normalize)s the result.
//!
//! Besides the RFC, it accepts what Microsoft Entra ID and Okta send: operation names in any
//! case (`"Replace"`), an `add`/`replace` without a path whose value holds paths as keys
//! (`"name.givenName"`, `"urn:…:enterprise:2.0:User:department"`,
//! `"emails[type eq \"work\"].value"`), a `remove` of `members` listing the members to remove
//! in `value`, and an `add`/`replace` of `emails[type eq "work"].value` when there is no work
//! email yet (the email is created).

mod ops;
mod path;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::{ScimError, ScimType};
use crate::json::field;
use crate::schema::{Mutability, PATCH_OP, Resource, normalize};

/// The most operations one request may hold.
pub const MAX_OPERATIONS: usize = 1000;

/// A `PatchOp` request body.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct PatchRequest {
    /// Must list [`PATCH_OP`].
    pub schemas: Vec<String>,
    /// The operations, applied in order.
    #[serde(rename = "Operations", alias = "operations")]
    pub operations: Vec<PatchOp>,
}

/// One operation as sent.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct PatchOp {
    /// `add`, `replace` or `remove`, in any case.
    pub op: String,
    /// The target; the resource itself when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// The value (absent for most removals; JSON null reads as absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<Value>,
}

/// A PATCH operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// Add values (append to a multi-valued attribute).
    Add,
    /// Replace values.
    Replace,
    /// Remove values.
    Remove,
}

impl Op {
    /// The operation `s` names, in any case.
    ///
    /// # Errors
    /// 400 `invalidSyntax` for anything else.
    pub fn parse(s: &str) -> Result<Self, ScimError> {
        match s.trim().to_ascii_lowercase().as_str() {
            "add" => Ok(Self::Add),
            "replace" => Ok(Self::Replace),
            "remove" => Ok(Self::Remove),
            _ => Err(ScimError::bad(
                ScimType::InvalidSyntax,
                format!("`{s}` is not a PATCH operation (add, replace or remove)"),
            )),
        }
    }
}

/// Applies `request` to `target`, a `resource`, then normalizes it. Either every operation
/// succeeds and `target` is replaced by the normalized result, or `target` is left as it was.
/// Returns the top-level attributes whose value changed, in schema order (`"<URN>:<name>"`
/// for an extension's).
///
/// # Errors
/// 400 `invalidSyntax` (not a PatchOp request, too many operations, unknown operation,
/// missing value), `invalidPath` (bad or unknown path), `noTarget` (a `remove` without a path,
/// a value filter matching nothing), `mutability` (a read-only attribute), `invalidValue`
/// (removing a required attribute, a value the schema refuses).
pub fn apply(
    resource: Resource,
    target: &mut Value,
    request: &PatchRequest,
) -> Result<Vec<String>, ScimError> {
    check_request(request)?;
    let mut doc = target.clone();
    if normalize(resource, &mut doc).is_err() {
        doc = target.clone();
    }
    let before = doc.clone();
    let Value::Object(map) = &mut doc else {
        return Err(ScimError::bad(
            ScimType::InvalidSyntax,
            "the resource is not an object",
        ));
    };
    for op in &request.operations {
        operation(resource, map, op)?;
    }
    normalize(resource, &mut doc)?;
    let changed = changed(resource, &before, &doc);
    *target = doc;
    Ok(changed)
}

fn check_request(request: &PatchRequest) -> Result<(), ScimError> {
    let syntax = |detail: String| Err(ScimError::bad(ScimType::InvalidSyntax, detail));
    if !request
        .schemas
        .iter()
        .any(|s| s.eq_ignore_ascii_case(PATCH_OP))
    {
        return syntax(format!("`schemas` must list `{PATCH_OP}`"));
    }
    if request.operations.is_empty() {
        return syntax("`Operations` is empty".into());
    }
    if request.operations.len() > MAX_OPERATIONS {
        return syntax(format!(
            "more than {MAX_OPERATIONS} operations in one request"
        ));
    }
    Ok(())
}

fn operation(
    resource: Resource,
    map: &mut Map<String, Value>,
    op: &PatchOp,
) -> Result<(), ScimError> {
    let kind = Op::parse(&op.op)?;
    let Some(raw) = op.path.as_deref().filter(|p| !p.trim().is_empty()) else {
        return without_path(resource, map, kind, op.value.clone());
    };
    match path::resolve(resource, raw)? {
        path::Target::Extension(urn) => match (kind, op.value.clone()) {
            (Op::Remove, _) | (Op::Replace, None) => {
                crate::json::remove_ci(map, urn);
                Ok(())
            }
            (_, Some(Value::Object(obj))) => each(resource, map, kind, Some(urn), obj),
            (_, _) => Err(ScimError::bad(
                ScimType::InvalidValue,
                format!("the value for `{urn}` must be an object"),
            )),
        },
        path::Target::Attr(t) => match (kind, op.value.clone()) {
            (Op::Add, Some(v)) => ops::write(map, &t, v, Op::Add),
            (Op::Add, None) => Err(ScimError::bad(
                ScimType::InvalidSyntax,
                "`add` needs a value",
            )),
            (Op::Replace, Some(v)) => ops::write(map, &t, v, Op::Replace),
            // A null value means unassigned (RFC 7643 §2.5).
            (Op::Replace, None) => ops::remove(map, &t, None),
            (Op::Remove, v) => ops::remove(map, &t, v.as_ref()),
        },
    }
}

/// `add` or `replace` without a path: the value's attributes, each as if it were the path.
fn without_path(
    resource: Resource,
    map: &mut Map<String, Value>,
    kind: Op,
    value: Option<Value>,
) -> Result<(), ScimError> {
    match (kind, value) {
        (Op::Remove, _) => Err(ScimError::bad(ScimType::NoTarget, "`remove` needs a path")),
        (_, Some(Value::Object(obj))) => each(resource, map, kind, None, obj),
        _ => Err(ScimError::bad(
            ScimType::InvalidValue,
            "without a path, the value must be an object of attributes",
        )),
    }
}

/// Applies `kind` with each key of `obj` as a path (under the extension `prefix`, when
/// given). Keys that are not writable paths of the schema (unknown attributes, `schemas`,
/// `id`, `meta`) are ignored, as in a POST body: providers echo them.
fn each(
    resource: Resource,
    map: &mut Map<String, Value>,
    kind: Op,
    prefix: Option<&str>,
    obj: Map<String, Value>,
) -> Result<(), ScimError> {
    for (key, v) in obj {
        if prefix.is_none() {
            if key.eq_ignore_ascii_case("schemas") {
                continue;
            }
            if let Some(urn) = resource.extension_urn(&key) {
                match v {
                    Value::Object(inner) => each(resource, map, kind, Some(urn), inner)?,
                    Value::Null if kind == Op::Replace => drop(crate::json::remove_ci(map, urn)),
                    Value::Null => {}
                    _ => {
                        return Err(ScimError::bad(
                            ScimType::InvalidValue,
                            format!("`{urn}` must be an object"),
                        ));
                    }
                }
                continue;
            }
        }
        let raw = match prefix {
            Some(urn) => format!("{urn}:{key}"),
            None => key,
        };
        let Ok(path::Target::Attr(t)) = path::resolve(resource, &raw) else {
            continue;
        };
        match (kind, v) {
            (Op::Add, Value::Null) => {}
            (Op::Replace, Value::Null) => ops::remove(map, &t, None)?,
            (kind, v) => ops::write(map, &t, v, kind)?,
        }
    }
    Ok(())
}

/// The writable top-level attributes whose value differs between `before` and `after`.
fn changed(resource: Resource, before: &Value, after: &Value) -> Vec<String> {
    let writable = |a: &&crate::schema::Attribute| a.mutability != Mutability::ReadOnly;
    let mut out: Vec<String> = resource
        .core()
        .iter()
        .filter(writable)
        .filter(|a| field(before, a.name) != field(after, a.name))
        .map(|a| a.name.to_owned())
        .collect();
    for urn in resource.extensions() {
        let (b, a) = (field(before, urn), field(after, urn));
        for attr in resource
            .extension(urn)
            .unwrap_or_default()
            .iter()
            .filter(writable)
        {
            if b.and_then(|b| field(b, attr.name)) != a.and_then(|a| field(a, attr.name)) {
                out.push(format!("{urn}:{}", attr.name));
            }
        }
    }
    out
}
