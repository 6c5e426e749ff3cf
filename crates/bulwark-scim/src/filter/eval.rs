//! Filter evaluation (RFC 7644 §3.4.2.2). A filter is first checked against the schema (every
//! attribute known, every operator meaningful for the attribute's type), so the error does
//! not depend on the data; then evaluated, which cannot fail.
//!
//! Semantics: a comparison on a multi-valued attribute holds when any value satisfies it (for
//! a multi-valued complex attribute without a sub-attribute, its `value` sub-attribute is
//! compared); `path[filter]` holds when one value satisfies the whole inner filter; `pr` means
//! present and not null, `""`, `[]` or `{}`; `eq null` means absent and `ne null` present; `ne`
//! holds for an absent attribute. Strings compare case-insensitively unless the attribute is
//! case-exact (binary is always case-exact); date-times compare as instants; numbers
//! numerically.

use std::cmp::Ordering;

use serde_json::Value;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::{AttrPath, CompareOp, Filter};
use crate::error::{ScimError, ScimType};
use crate::json::{field, present};
use crate::schema::{Attribute, Kind, Resource};

/// Where a filter's attribute paths are resolved: in a resource, or inside one value of a
/// complex attribute (between `[` and `]`).
#[derive(Clone, Copy)]
enum Scope {
    Resource(Resource),
    Element(&'static Attribute),
}

/// A resolved path: the extension holding it, the attribute holding the value, and the
/// sub-attribute.
struct Target {
    ext: Option<&'static str>,
    top: &'static Attribute,
    sub: Option<&'static Attribute>,
}

fn error(detail: impl Into<String>) -> ScimError {
    ScimError::bad(ScimType::InvalidFilter, detail)
}

fn resolve(scope: Scope, path: &AttrPath) -> Result<Target, ScimError> {
    match scope {
        Scope::Resource(r) => r
            .resolve(path)
            .map(|t| Target {
                ext: t.ext,
                top: t.top,
                sub: t.sub,
            })
            .ok_or_else(|| error(format!("unknown attribute `{path}`"))),
        Scope::Element(parent) => {
            let sub = match (&path.uri, &path.sub) {
                (None, None) => parent.sub(&path.name),
                _ => None,
            };
            sub.map(|top| Target {
                ext: None,
                top,
                sub: None,
            })
            .ok_or_else(|| {
                error(format!(
                    "`{path}` is not a sub-attribute of `{}`",
                    parent.name
                ))
            })
        }
    }
}

/// The attribute a comparison compares: the sub-attribute, or a complex attribute's `value`.
fn leaf(t: &Target) -> Option<&'static Attribute> {
    match t.sub {
        Some(sub) => Some(sub),
        None if t.top.kind == Kind::Complex => t.top.value_sub(),
        None => Some(t.top),
    }
}

/// Checks `filter` against `resource`'s schema.
pub(crate) fn check(filter: &Filter, resource: Resource) -> Result<(), ScimError> {
    check_in(filter, Scope::Resource(resource))
}

/// Checks the filter of a value path (`emails[…]`) against the sub-attributes of `parent`.
pub(crate) fn check_in_element(
    filter: &Filter,
    parent: &'static Attribute,
) -> Result<(), ScimError> {
    check_in(filter, Scope::Element(parent))
}

fn check_in(filter: &Filter, scope: Scope) -> Result<(), ScimError> {
    match filter {
        Filter::And(a, b) | Filter::Or(a, b) => {
            check_in(a, scope)?;
            check_in(b, scope)
        }
        Filter::Not(inner) => check_in(inner, scope),
        Filter::Present(path) => resolve(scope, path).map(|_| ()),
        Filter::Compare { path, op, value } => {
            let t = resolve(scope, path)?;
            let leaf = leaf(&t).ok_or_else(|| {
                error(format!(
                    "`{path}` is complex; compare one of its sub-attributes"
                ))
            })?;
            check_compare(path, leaf, *op, value)
        }
        Filter::ValuePath { path, filter } => {
            let (Scope::Resource(_), None) = (scope, &path.sub) else {
                return Err(error(format!("`{path}[…]` cannot appear here")));
            };
            let t = resolve(scope, path)?;
            if t.top.kind != Kind::Complex {
                return Err(error(format!("`{path}` is not a complex attribute")));
            }
            check_in(filter, Scope::Element(t.top))
        }
    }
}

fn check_compare(
    path: &AttrPath,
    leaf: &Attribute,
    op: CompareOp,
    value: &Value,
) -> Result<(), ScimError> {
    let only = |what: &str| error(format!("`{path}` {what}"));
    if value.is_null() {
        return match op {
            CompareOp::Eq | CompareOp::Ne => Ok(()),
            _ => Err(only("can only be compared with null by eq or ne")),
        };
    }
    match leaf.kind {
        Kind::Boolean if op.is_ordering() || op.is_substring() => {
            Err(only("is a boolean: compare it with eq or ne"))
        }
        Kind::Boolean if as_bool(value).is_none() => {
            Err(only("is a boolean: compare it with true or false"))
        }
        Kind::Binary if op.is_ordering() => Err(only("is binary: it has no order")),
        Kind::Integer | Kind::Decimal if op.is_substring() => {
            Err(only("is a number: co, sw and ew compare strings"))
        }
        Kind::Integer | Kind::Decimal if !value.is_number() => {
            Err(only("is a number: compare it with a number"))
        }
        Kind::DateTime if !op.is_substring() && as_time(value).is_none() => {
            Err(only("is a date-time: compare it with an RFC 3339 string"))
        }
        _ => Ok(()),
    }
}

/// Evaluates a checked filter on a resource.
pub(crate) fn eval(filter: &Filter, resource: Resource, value: &Value) -> bool {
    eval_in(filter, Scope::Resource(resource), value)
}

/// Whether one value of the complex attribute `parent` satisfies `filter` (checked with
/// [`check_in_element`]).
pub(crate) fn element_matches(
    filter: &Filter,
    parent: &'static Attribute,
    element: &Value,
) -> bool {
    eval_in(filter, Scope::Element(parent), element)
}

fn eval_in(filter: &Filter, scope: Scope, value: &Value) -> bool {
    match filter {
        Filter::And(a, b) => eval_in(a, scope, value) && eval_in(b, scope, value),
        Filter::Or(a, b) => eval_in(a, scope, value) || eval_in(b, scope, value),
        Filter::Not(inner) => !eval_in(inner, scope, value),
        Filter::Present(path) => resolve(scope, path).is_ok_and(|t| is_present(&t, scope, value)),
        Filter::Compare { path, op, value: c } => {
            let Ok(t) = resolve(scope, path) else {
                return false;
            };
            compare_path(&t, scope, value, *op, c)
        }
        Filter::ValuePath { path, filter } => {
            let Ok(t) = resolve(scope, path) else {
                return false;
            };
            let Some(top) = top_value(&t, scope, value) else {
                return false;
            };
            elements(top).any(|e| eval_in(filter, Scope::Element(t.top), e))
        }
    }
}

/// The value of the path's attribute (its top-level attribute in a resource).
fn top_value<'v>(t: &Target, scope: Scope, value: &'v Value) -> Option<&'v Value> {
    let container = match (scope, t.ext) {
        (Scope::Resource(_), Some(urn)) => field(value, urn)?,
        _ => value,
    };
    field(container, t.top.name)
}

fn elements(v: &Value) -> Box<dyn Iterator<Item = &Value> + '_> {
    match v {
        Value::Array(items) => Box::new(items.iter()),
        other => Box::new(std::iter::once(other)),
    }
}

/// The values a comparison looks at: the sub-attribute (or `value`) of each value of a complex
/// attribute, else the values themselves; nulls left out.
fn leaves<'v>(t: &Target, top: &'v Value) -> Vec<&'v Value> {
    let sub = t
        .sub
        .map(|s| s.name)
        .or_else(|| (t.top.kind == Kind::Complex).then_some("value"));
    elements(top)
        .filter_map(|e| match sub {
            Some(name) => field(e, name),
            None => Some(e),
        })
        .flat_map(elements)
        .filter(|v| !v.is_null())
        .collect()
}

fn is_present(t: &Target, scope: Scope, value: &Value) -> bool {
    let Some(top) = top_value(t, scope, value) else {
        return false;
    };
    match t.sub {
        Some(_) => leaves(t, top).into_iter().any(present),
        None => present(top),
    }
}

fn compare_path(t: &Target, scope: Scope, value: &Value, op: CompareOp, c: &Value) -> bool {
    if c.is_null() {
        let there = is_present(t, scope, value);
        return if op == CompareOp::Eq { !there } else { there };
    }
    let Some(leaf) = leaf(t) else {
        return false;
    };
    let values = top_value(t, scope, value)
        .map(|top| leaves(t, top))
        .unwrap_or_default();
    if op == CompareOp::Ne && values.is_empty() {
        return true;
    }
    values.into_iter().any(|v| compare(leaf, op, v, c))
}

fn as_bool(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::String(s) if s.eq_ignore_ascii_case("true") => Some(true),
        Value::String(s) if s.eq_ignore_ascii_case("false") => Some(false),
        _ => None,
    }
}

fn as_time(v: &Value) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(v.as_str()?, &Rfc3339).ok()
}

fn as_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(_) | Value::Bool(_) => Some(v.to_string()),
        _ => None,
    }
}

fn numbers(a: &Value, b: &Value) -> Option<Ordering> {
    let (Value::Number(a), Value::Number(b)) = (a, b) else {
        return None;
    };
    if let (Some(x), Some(y)) = (a.as_i64(), b.as_i64()) {
        return Some(x.cmp(&y));
    }
    if let (Some(x), Some(y)) = (a.as_u64(), b.as_u64()) {
        return Some(x.cmp(&y));
    }
    a.as_f64()?.partial_cmp(&b.as_f64()?)
}

fn ordered(op: CompareOp, ord: Ordering) -> bool {
    match op {
        CompareOp::Eq => ord == Ordering::Equal,
        CompareOp::Ne => ord != Ordering::Equal,
        CompareOp::Gt => ord == Ordering::Greater,
        CompareOp::Ge => ord != Ordering::Less,
        CompareOp::Lt => ord == Ordering::Less,
        CompareOp::Le => ord != Ordering::Greater,
        CompareOp::Co | CompareOp::Sw | CompareOp::Ew => false,
    }
}

/// `v op c` for one value `v` of the attribute `leaf`.
fn compare(leaf: &Attribute, op: CompareOp, v: &Value, c: &Value) -> bool {
    let ord = match leaf.kind {
        Kind::Boolean => as_bool(v).zip(as_bool(c)).map(|(a, b)| a.cmp(&b)),
        Kind::Integer | Kind::Decimal => numbers(v, c),
        Kind::DateTime if !op.is_substring() => as_time(v).zip(as_time(c)).map(|(a, b)| a.cmp(&b)),
        _ => return compare_text(leaf, op, v, c),
    };
    ord.is_some_and(|ord| ordered(op, ord))
}

fn compare_text(leaf: &Attribute, op: CompareOp, v: &Value, c: &Value) -> bool {
    let (Some(mut a), Some(mut b)) = (as_text(v), as_text(c)) else {
        return false;
    };
    if !leaf.case_exact && leaf.kind != Kind::Binary {
        a = a.to_lowercase();
        b = b.to_lowercase();
    }
    match op {
        CompareOp::Co => a.contains(&b),
        CompareOp::Sw => a.starts_with(&b),
        CompareOp::Ew => a.ends_with(&b),
        _ => ordered(op, a.cmp(&b)),
    }
}
