//! Attribute projection (RFC 7644 §3.9 and RFC 7643 §7 `returned`): what of a resource a
//! response shows, given the `attributes` and `excludedAttributes` parameters.
//!
//! `returned: always` attributes (`id`, and `schemas`) are always shown; `returned: never`
//! ones (`password`) never; `returned: request` ones only when named in `attributes`. With
//! `attributes`, only the named attributes (and sub-attributes) remain; with
//! `excludedAttributes`, the named ones are removed; `attributes` wins when both are given.
//! Names the schema does not know are ignored (clients send them; the RFC is silent).

use serde_json::{Map, Value};

use crate::error::{ScimError, ScimType};
use crate::filter::AttrPath;
use crate::json::remove_ci;
use crate::schema::{Attribute, Resource, Returned, find};

/// One entry of an `attributes` / `excludedAttributes` list, resolved.
enum Selector {
    /// A whole extension object.
    Extension(&'static str),
    /// An attribute or one of its sub-attributes.
    Attr {
        ext: Option<&'static str>,
        top: &'static Attribute,
        sub: Option<&'static Attribute>,
    },
}

/// Applies `attributes` / `excludedAttributes` (comma-separated attribute paths) to `value`,
/// a `resource`, in place.
///
/// # Errors
/// 400 `invalidValue` for a list entry that is not an attribute path.
pub fn project(
    resource: Resource,
    value: &mut Value,
    attributes: Option<&str>,
    excluded: Option<&str>,
) -> Result<(), ScimError> {
    let Value::Object(map) = value else {
        return Ok(());
    };
    let nonblank = |s: &&str| !s.trim().is_empty();
    match (attributes.filter(nonblank), excluded.filter(nonblank)) {
        (Some(list), _) => {
            let selected = selectors(resource, list)?;
            include(resource, map, &selected);
        }
        (None, Some(list)) => {
            let selected = selectors(resource, list)?;
            exclude(resource, map, &selected);
            strip(resource, map, true);
        }
        (None, None) => strip(resource, map, true),
    }
    strip(resource, map, false);
    Ok(())
}

fn selectors(resource: Resource, list: &str) -> Result<Vec<Selector>, ScimError> {
    let mut out = Vec::new();
    for raw in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        if let Some(urn) = resource.extension_urn(raw) {
            out.push(Selector::Extension(urn));
            continue;
        }
        let path = AttrPath::parse(raw).map_err(|_| {
            ScimError::bad(
                ScimType::InvalidValue,
                format!("`{raw}` is not an attribute path"),
            )
        })?;
        if let Some(r) = resource.resolve(&path) {
            out.push(Selector::Attr {
                ext: r.ext,
                top: r.top,
                sub: r.sub,
            });
        }
    }
    Ok(out)
}

/// What `selected` says about the attribute `name` of the container `ext`: `None` when it is
/// not named, else the sub-attributes named (empty for the whole attribute).
fn wanted(selected: &[Selector], ext: Option<&str>, name: &str) -> Option<Vec<&'static str>> {
    let mut subs = Vec::new();
    let mut named = false;
    for s in selected {
        if let Selector::Attr { ext: e, top, sub } = s
            && *e == ext
            && top.name == name
        {
            match sub {
                None => return Some(Vec::new()),
                Some(sub) => subs.push(sub.name),
            }
            named = true;
        }
    }
    named.then_some(subs)
}

/// Keeps what `selected` names (and what is always returned).
fn include(resource: Resource, map: &mut Map<String, Value>, selected: &[Selector]) {
    let keys: Vec<String> = map.keys().cloned().collect();
    for key in keys {
        if key.eq_ignore_ascii_case("schemas") {
            continue;
        }
        let Some(urn) = resource.extension_urn(&key) else {
            keep_named(map, &key, resource.core(), None, selected);
            continue;
        };
        let whole = selected
            .iter()
            .any(|s| matches!(s, Selector::Extension(u) if *u == urn));
        if whole {
            continue;
        }
        let Some(Value::Object(mut obj)) = map.remove(&key) else {
            continue;
        };
        let inner: Vec<String> = obj.keys().cloned().collect();
        let table = resource.extension(urn).unwrap_or_default();
        for k in inner {
            keep_named(&mut obj, &k, table, Some(urn), selected);
        }
        if !obj.is_empty() {
            map.insert(key, Value::Object(obj));
        }
    }
}

/// Keeps `key` of `container` when `selected` names it (or it is always returned), trimmed
/// to the sub-attributes named.
fn keep_named(
    container: &mut Map<String, Value>,
    key: &str,
    table: &'static [Attribute],
    ext: Option<&str>,
    selected: &[Selector],
) {
    let Some(attr) = find(table, key) else {
        container.remove(key);
        return;
    };
    if attr.returned == Returned::Always {
        return;
    }
    match wanted(selected, ext, attr.name) {
        None => drop(container.remove(key)),
        Some(subs) if subs.is_empty() => {}
        Some(subs) => {
            let keep = |name: &str| {
                subs.iter().any(|s| s.eq_ignore_ascii_case(name))
                    || attr
                        .sub(name)
                        .is_some_and(|s| s.returned == Returned::Always)
            };
            each_value(container, key, |obj| obj.retain(|k, _| keep(k)));
        }
    }
}

/// Runs `f` on the object value of `key` (each object value, for a list), then drops the
/// objects left empty, and the attribute if nothing is left.
fn each_value(
    container: &mut Map<String, Value>,
    key: &str,
    mut f: impl FnMut(&mut Map<String, Value>),
) {
    let Some(v) = container.get_mut(key) else {
        return;
    };
    let empty = match v {
        Value::Object(obj) => {
            f(obj);
            obj.is_empty()
        }
        Value::Array(items) => {
            for obj in items.iter_mut().filter_map(Value::as_object_mut) {
                f(obj);
            }
            items.retain(|e| e.as_object().is_none_or(|o| !o.is_empty()));
            items.is_empty()
        }
        _ => false,
    };
    if empty {
        container.remove(key);
    }
}

/// Removes what `selected` names, unless it is always returned.
fn exclude(resource: Resource, map: &mut Map<String, Value>, selected: &[Selector]) {
    for s in selected {
        match s {
            Selector::Extension(urn) => drop(remove_ci(map, urn)),
            Selector::Attr { ext, top, sub } => {
                let container = match ext {
                    None => Some(&mut *map),
                    Some(urn) => crate::json::get_ci_mut(map, urn).and_then(Value::as_object_mut),
                };
                let Some(container) = container else {
                    continue;
                };
                let Some(key) = crate::json::key_ci(container, top.name).cloned() else {
                    continue;
                };
                match sub {
                    _ if top.returned == Returned::Always => {}
                    None => drop(container.remove(&key)),
                    Some(sub) if sub.returned == Returned::Always => {}
                    Some(sub) => each_value(container, &key, |obj| drop(remove_ci(obj, sub.name))),
                }
            }
        }
    }
    for urn in resource.extensions() {
        if crate::json::get_ci(map, urn)
            .and_then(Value::as_object)
            .is_some_and(Map::is_empty)
        {
            remove_ci(map, urn);
        }
    }
}

/// Removes `returned: never` attributes and sub-attributes (or, with `request`, the
/// `returned: request` ones).
fn strip(resource: Resource, map: &mut Map<String, Value>, request: bool) {
    let hidden = if request {
        Returned::Request
    } else {
        Returned::Never
    };
    strip_table(map, resource.core(), hidden);
    for urn in resource.extensions() {
        let table = resource.extension(urn).unwrap_or_default();
        if let Some(obj) = crate::json::get_ci_mut(map, urn).and_then(Value::as_object_mut) {
            strip_table(obj, table, hidden);
        }
    }
}

fn strip_table(container: &mut Map<String, Value>, table: &'static [Attribute], hidden: Returned) {
    for attr in table {
        if attr.returned == hidden {
            remove_ci(container, attr.name);
            continue;
        }
        for sub in attr.sub_attributes.iter().filter(|s| s.returned == hidden) {
            if let Some(key) = crate::json::key_ci(container, attr.name).cloned() {
                each_value(container, &key, |obj| drop(remove_ci(obj, sub.name)));
            }
        }
    }
}
