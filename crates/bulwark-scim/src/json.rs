//! Case-insensitive access to JSON objects: SCIM attribute names are case-insensitive
//! (RFC 7643 §2.1), so every lookup in a client's JSON goes through these helpers.

use serde_json::{Map, Value};

/// The key of `map` equal to `name` ignoring ASCII case (the exact spelling first).
pub(crate) fn key_ci<'m>(map: &'m Map<String, Value>, name: &str) -> Option<&'m String> {
    if let Some((k, _)) = map.get_key_value(name) {
        return Some(k);
    }
    map.keys().find(|k| k.eq_ignore_ascii_case(name))
}

/// The value of `map` under `name`, ignoring case.
pub(crate) fn get_ci<'m>(map: &'m Map<String, Value>, name: &str) -> Option<&'m Value> {
    let key = key_ci(map, name)?;
    map.get(key)
}

/// The value of `value` (when it is an object) under `name`, ignoring case.
pub(crate) fn field<'v>(value: &'v Value, name: &str) -> Option<&'v Value> {
    get_ci(value.as_object()?, name)
}

/// The value of `map` under `name`, ignoring case, for changing.
pub(crate) fn get_ci_mut<'m>(map: &'m mut Map<String, Value>, name: &str) -> Option<&'m mut Value> {
    let key = key_ci(map, name)?.clone();
    map.get_mut(&key)
}

/// Removes every key of `map` equal to `name` ignoring case; returns the value under the exact
/// spelling when there was one, else one of the others.
pub(crate) fn remove_ci(map: &mut Map<String, Value>, name: &str) -> Option<Value> {
    let mut removed = map.remove(name);
    let others: Vec<String> = map
        .keys()
        .filter(|k| k.eq_ignore_ascii_case(name))
        .cloned()
        .collect();
    for k in others {
        let v = map.remove(&k);
        removed = removed.or(v);
    }
    removed
}

/// Sets `name` (the canonical spelling) to `value`, dropping other spellings of the key.
pub(crate) fn set_ci(map: &mut Map<String, Value>, name: &str, value: Value) {
    if !map.contains_key(name) {
        remove_ci(map, name);
    }
    map.insert(name.to_owned(), value);
}

/// Takes the object under `name` out of `map` (every spelling); an empty object when it is
/// missing or not an object. The caller puts it back under the canonical name.
pub(crate) fn take_object(map: &mut Map<String, Value>, name: &str) -> Map<String, Value> {
    match remove_ci(map, name) {
        Some(Value::Object(o)) => o,
        _ => Map::new(),
    }
}

/// Takes the values under `name` out of `map` (every spelling): an array's elements, a single
/// value as one element, nothing for null or a missing key.
pub(crate) fn take_array(map: &mut Map<String, Value>, name: &str) -> Vec<Value> {
    match remove_ci(map, name) {
        Some(Value::Array(a)) => a,
        Some(Value::Null) | None => Vec::new(),
        Some(other) => vec![other],
    }
}

/// Whether `v` counts as present (RFC 7644 §3.4.2.2 `pr`): not null, not an empty string, not
/// an empty array or object.
pub(crate) fn present(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => a.iter().any(present),
        Value::Object(o) => o.values().any(present),
        Value::Bool(_) | Value::Number(_) => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn lookups_ignore_case_and_prefer_the_exact_spelling() {
        let v = json!({"UserName": "a", "userName": "b"});
        let map = v.as_object().unwrap();
        assert_eq!(get_ci(map, "userName"), Some(&json!("b")));
        assert!(get_ci(map, "USERNAME").is_some());
        let mut m = map.clone();
        set_ci(&mut m, "userName", json!("c"));
        assert_eq!(m.len(), 2);
        assert!(remove_ci(&mut m, "username").is_some());
        assert!(m.is_empty());
        set_ci(&mut m, "UserName", json!("x"));
        set_ci(&mut m, "userName", json!("y"));
        assert_eq!(Value::Object(m), json!({"userName": "y"}));
    }

    #[test]
    fn take_gives_an_object_or_a_list() {
        let mut m = json!({"Name": "x", "Emails": {"value": "a"}, "roles": null})
            .as_object()
            .unwrap()
            .clone();
        assert!(take_object(&mut m, "name").is_empty());
        assert_eq!(take_array(&mut m, "emails"), vec![json!({"value": "a"})]);
        assert!(take_array(&mut m, "roles").is_empty());
        assert!(m.is_empty());
    }

    #[test]
    fn presence() {
        for v in [
            json!(null),
            json!(""),
            json!([]),
            json!({}),
            json!([null, ""]),
        ] {
            assert!(!present(&v), "{v}");
        }
        for v in [json!(false), json!(0), json!("x"), json!([{"value": "a"}])] {
            assert!(present(&v), "{v}");
        }
    }
}
