//! The PATCH operations on a resolved target (RFC 7644 §3.5.2.1–3): writing (`add`,
//! `replace`) and removing, inside the core object or an extension object. Values are written
//! as given; [`normalize`](crate::schema::normalize) checks and rewrites them afterwards.
//! Lists are handled in one pass with a hash set, so a 10,000-member change stays linear.

use std::collections::HashSet;

use serde_json::{Map, Value};

use super::Op;
use super::path::AttrTarget;
use crate::error::{ScimError, ScimType};
use crate::filter::{CompareOp, Filter, element_matches};
use crate::json::{self, remove_ci, set_ci, take_array, take_object};
use crate::schema::{Attribute, element_key};

/// Runs `f` on the object holding the target's attribute: the resource, or its extension
/// object (created when missing, dropped when left empty).
fn in_container<R>(
    map: &mut Map<String, Value>,
    ext: Option<&str>,
    f: impl FnOnce(&mut Map<String, Value>) -> R,
) -> R {
    let Some(urn) = ext else {
        return f(map);
    };
    let mut obj = take_object(map, urn);
    let r = f(&mut obj);
    if !obj.is_empty() {
        map.insert(urn.to_owned(), Value::Object(obj));
    }
    r
}

/// Puts `list` back under `name`, or leaves the attribute out when the list is empty.
fn put_list(c: &mut Map<String, Value>, name: &str, list: Vec<Value>) {
    if !list.is_empty() {
        c.insert(name.to_owned(), Value::Array(list));
    }
}

/// `add` or `replace` of `value` at `t`.
pub(super) fn write(
    map: &mut Map<String, Value>,
    t: &AttrTarget,
    value: Value,
    kind: Op,
) -> Result<(), ScimError> {
    in_container(map, t.ext, |c| {
        let top = t.top;
        match (top.multi_valued, &t.filter, t.sub) {
            // Complex: the given sub-attributes replace theirs, others are kept (§3.5.2.3).
            (false, _, None) => merge(c, top, value),
            (false, _, Some(sub)) => {
                let mut obj = take_object(c, top.name);
                set_ci(&mut obj, sub.name, value);
                c.insert(top.name.to_owned(), Value::Object(obj));
            }
            (true, None, None) if kind == Op::Add => append(c, top, value),
            (true, None, None) => put_list(c, top.name, as_list(value)),
            (true, None, Some(sub)) => set_sub_everywhere(c, top, sub, value),
            (true, Some(filter), sub) => return write_matching(c, t, filter, sub, value, kind),
        }
        Ok(())
    })
}

fn as_list(value: Value) -> Vec<Value> {
    match value {
        Value::Array(a) => a,
        Value::Null => Vec::new(),
        other => vec![other],
    }
}

/// Sets a single-valued attribute; for a complex one given an object, sets the given
/// sub-attributes and keeps the others.
fn merge(c: &mut Map<String, Value>, top: &Attribute, value: Value) {
    let Value::Object(given) = value else {
        set_ci(c, top.name, value);
        return;
    };
    if top.sub_attributes.is_empty() {
        set_ci(c, top.name, Value::Object(given));
        return;
    }
    let mut obj = take_object(c, top.name);
    merge_into(&mut obj, top, given);
    c.insert(top.name.to_owned(), Value::Object(obj));
}

fn merge_into(obj: &mut Map<String, Value>, top: &Attribute, given: Map<String, Value>) {
    for (k, v) in given {
        let name = top.sub(&k).map_or(k.as_str(), |s| s.name);
        set_ci(obj, name, v);
    }
}

/// Appends the values not already there; a new primary value makes the others non-primary.
fn append(c: &mut Map<String, Value>, top: &Attribute, value: Value) {
    let mut list = take_array(c, top.name);
    let new = as_list(value);
    if new.iter().any(is_primary) {
        for e in list.iter_mut().filter_map(Value::as_object_mut) {
            if let Some(p) = json::get_ci_mut(e, "primary") {
                *p = Value::Bool(false);
            }
        }
    }
    let mut seen: HashSet<String> = list.iter().map(|e| element_key(top, e)).collect();
    for e in new {
        if seen.insert(element_key(top, &e)) {
            list.push(e);
        }
    }
    put_list(c, top.name, list);
}

fn is_primary(v: &Value) -> bool {
    matches!(json::field(v, "primary"), Some(Value::Bool(true)))
        || json::field(v, "primary")
            .and_then(Value::as_str)
            .is_some_and(|s| s.eq_ignore_ascii_case("true"))
}

/// `emails.type` without a filter: the sub-attribute of every value (of a new value when
/// there is none).
fn set_sub_everywhere(c: &mut Map<String, Value>, top: &Attribute, sub: &Attribute, value: Value) {
    let mut list = take_array(c, top.name);
    if list.is_empty() {
        list.push(Value::Object(Map::new()));
    }
    for e in list.iter_mut().filter_map(Value::as_object_mut) {
        set_ci(e, sub.name, value.clone());
    }
    put_list(c, top.name, list);
}

/// `emails[type eq "work"]` (with an optional `.value`): the matching values.
fn write_matching(
    c: &mut Map<String, Value>,
    t: &AttrTarget,
    filter: &Filter,
    sub: Option<&Attribute>,
    value: Value,
    kind: Op,
) -> Result<(), ScimError> {
    let top = t.top;
    let mut list = take_array(c, top.name);
    let mut hit = false;
    for e in list.iter_mut() {
        if !element_matches(filter, top, e) {
            continue;
        }
        hit = true;
        match (sub, e.as_object_mut(), &value) {
            (Some(s), Some(obj), _) => set_ci(obj, s.name, value.clone()),
            (None, Some(obj), Value::Object(given)) if kind == Op::Add => {
                merge_into(obj, top, given.clone());
            }
            _ => *e = value.clone(),
        }
    }
    if !hit {
        // Entra ID sets `emails[type eq "work"].value` (and `phoneNumbers[type eq "mobile"]
        // .value`, `addresses[type eq "work"].locality`…) on users that have no such value yet,
        // expecting it to be created, as most service providers do: the new value takes the
        // `eq` comparisons of the filter and the sub-attribute. Without a sub-attribute, or
        // with a filter that is not a conjunction of `eq`, there is nothing to build: noTarget.
        let Some((sub, mut obj)) = sub.zip(built_from(filter, top)) else {
            return Err(ScimError::bad(
                ScimType::NoTarget,
                format!("no value of `{}` matches `{filter}`", top.name),
            ));
        };
        obj.insert(sub.name.to_owned(), value);
        list.push(Value::Object(obj));
    }
    put_list(c, top.name, list);
    Ok(())
}

/// The value a filter of `eq` comparisons joined by `and` describes (`type eq "work"` gives
/// `{"type": "work"}`).
fn built_from(filter: &Filter, top: &Attribute) -> Option<Map<String, Value>> {
    match filter {
        Filter::Compare {
            path,
            op: CompareOp::Eq,
            value,
        } if !value.is_null() => {
            let name = top.sub(&path.name)?.name;
            Some(Map::from_iter([(name.to_owned(), value.clone())]))
        }
        Filter::And(a, b) => {
            let mut obj = built_from(a, top)?;
            obj.extend(built_from(b, top)?);
            Some(obj)
        }
        _ => None,
    }
}

/// `remove` at `t`; `value` lists the values to remove from a multi-valued attribute when the
/// path has no filter (Entra ID's way of removing group members).
pub(super) fn remove(
    map: &mut Map<String, Value>,
    t: &AttrTarget,
    value: Option<&Value>,
) -> Result<(), ScimError> {
    let top = t.top;
    if top.required && t.filter.is_none() && t.sub.is_none() {
        return Err(ScimError::bad(
            ScimType::InvalidValue,
            format!("`{}` is required and cannot be removed", top.name),
        ));
    }
    in_container(map, t.ext, |c| match (top.multi_valued, &t.filter, t.sub) {
        (false, _, None) => drop(remove_ci(c, top.name)),
        (false, _, Some(sub)) => {
            let mut obj = take_object(c, top.name);
            remove_ci(&mut obj, sub.name);
            if !obj.is_empty() {
                c.insert(top.name.to_owned(), Value::Object(obj));
            }
        }
        (true, None, None) => match value.filter(|v| !v.is_null()) {
            Some(listed) => {
                let list = remove_listed(take_array(c, top.name), listed);
                put_list(c, top.name, list);
            }
            None => drop(remove_ci(c, top.name)),
        },
        (true, filter, sub) => remove_selected(c, top, filter.as_ref(), sub),
    });
    Ok(())
}

/// Removes the values of a multi-valued attribute that `filter` selects (all without one), or
/// their sub-attribute `sub`. Nothing selected is not an error: Entra ID removes non-members.
fn remove_selected(
    c: &mut Map<String, Value>,
    top: &'static Attribute,
    filter: Option<&Filter>,
    sub: Option<&Attribute>,
) {
    let mut list = take_array(c, top.name);
    let selected = |e: &Value| filter.is_none_or(|f| element_matches(f, top, e));
    match sub {
        None => list.retain(|e| !selected(e)),
        Some(s) => {
            for e in list.iter_mut().filter(|e| selected(e)) {
                if let Some(obj) = e.as_object_mut() {
                    remove_ci(obj, s.name);
                }
            }
        }
    }
    put_list(c, top.name, list);
}

/// What identifies a value to remove: its `value` (ignoring case), else the whole value.
fn listed_key(v: &Value) -> String {
    match v {
        Value::String(s) => format!("v:{}", s.to_lowercase()),
        _ => match json::field(v, "value") {
            Some(Value::String(s)) => format!("v:{}", s.to_lowercase()),
            Some(other) => format!("v:{other}"),
            None => format!("j:{v}"),
        },
    }
}

fn remove_listed(list: Vec<Value>, listed: &Value) -> Vec<Value> {
    let gone: HashSet<String> = match listed {
        Value::Array(items) => items.iter().map(listed_key).collect(),
        other => HashSet::from([listed_key(other)]),
    };
    list.into_iter()
        .filter(|e| !gone.contains(&listed_key(e)))
        .collect()
}
