//! Field-level redaction of secrets in structured and semi-structured text.
//!
//! Used where text leaves the process: every log line is passed through [`redact_json_line`]
//! before it is written. Redaction is by field name, case-insensitive, at any nesting depth,
//! including JSON documents and `key: "value"` / `key=value` pairs embedded in string values
//! (the shape `Debug` output takes).

use serde_json::Value;

/// The replacement for a redacted value.
pub const REDACTED: &str = "[REDACTED]";

/// Field names whose values are never written out. Matched case-insensitively, with `-` read as
/// `_`, and also as a suffix (`x_api_key`, `db_password`).
pub const SENSITIVE_KEYS: &[&str] = &[
    "password",
    "password_hash",
    "token",
    "refresh_token",
    "authorization",
    "cookie",
    "set_cookie",
    "secret",
    "api_key",
    "seed",
    "setup_token",
    "database_url",
];

/// Whether a field of this name holds a secret.
#[must_use]
pub fn is_sensitive_key(key: &str) -> bool {
    let k = key.trim().to_ascii_lowercase().replace('-', "_");
    SENSITIVE_KEYS
        .iter()
        .any(|s| k == *s || k.ends_with(&format!("_{s}")))
}

/// Redacts a JSON value in place: sensitive keys at any depth, and string values that are
/// themselves JSON or contain `key=value` / `key: value` pairs.
pub fn redact_value(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for (k, v) in map.iter_mut() {
                if is_sensitive_key(k) {
                    *v = Value::String(REDACTED.into());
                } else {
                    redact_value(v);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(redact_value),
        Value::String(s) => {
            if let Some(r) = redact_text(s) {
                *s = r;
            }
        }
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

/// Redacts one JSON log line; a line that is not JSON is treated as free text.
#[must_use]
pub fn redact_json_line(line: &str) -> String {
    match serde_json::from_str::<Value>(line) {
        Ok(mut v) => {
            redact_value(&mut v);
            v.to_string()
        }
        Err(_) => redact_text(line).unwrap_or_else(|| line.to_owned()),
    }
}

/// Redacts free text; `None` when nothing needed redacting.
#[must_use]
pub fn redact_text(text: &str) -> Option<String> {
    let trimmed = text.trim_start();
    if (trimmed.starts_with('{') || trimmed.starts_with('['))
        && let Ok(mut v) = serde_json::from_str::<Value>(text)
    {
        let before = v.clone();
        redact_value(&mut v);
        return (v != before).then(|| v.to_string());
    }
    redact_pairs(text)
}

/// Finds `key: value`, `key=value`, `"key": value` and `key: "value"` where `key` is sensitive,
/// and replaces the value (quoted string or bare word) with the marker.
fn redact_pairs(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut changed = false;
    let mut i = 0;
    let mut copied = 0;
    while i < bytes.len() {
        let is_word = |b: u8| b.is_ascii_alphanumeric() || b == b'_' || b == b'-';
        if !is_word(bytes.get(i).copied().unwrap_or(0))
            || (i > 0 && is_word(bytes.get(i - 1).copied().unwrap_or(0)))
        {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && is_word(bytes.get(i).copied().unwrap_or(0)) {
            i += 1;
        }
        let key = text.get(start..i).unwrap_or("");
        let quoted = start > 0 && matches!(bytes.get(start - 1), Some(b'"' | b'\''));
        let mut j = i;
        if quoted && matches!(bytes.get(j), Some(b'"' | b'\'')) {
            j += 1;
        }
        while bytes.get(j) == Some(&b' ') {
            j += 1;
        }
        let sep = bytes.get(j).copied();
        // `key: v`, `key=v`, and for a quoted key also `("key", "v")` (Debug of header pairs).
        let sep_ok = matches!(sep, Some(b':' | b'=')) || (quoted && sep == Some(b','));
        if !sep_ok || !is_sensitive_key(key) {
            continue;
        }
        j += 1;
        while bytes.get(j) == Some(&b' ') {
            j += 1;
        }
        let value_start = j;
        let value_end = value_end(bytes, value_start);
        if value_end == value_start {
            continue;
        }
        // `a: "b": c` — the quoted "value" is itself a key: scan it as one instead.
        let mut after = value_end;
        while bytes.get(after) == Some(&b' ') {
            after += 1;
        }
        let quoted_value = matches!(bytes.get(value_start), Some(b'"' | b'\''));
        if quoted_value && matches!(bytes.get(after), Some(b':' | b'=')) {
            i = value_start + 1;
            continue;
        }
        out.push_str(text.get(copied..value_start).unwrap_or(""));
        out.push_str(REDACTED);
        copied = value_end;
        i = value_end;
        changed = true;
    }
    if !changed {
        return None;
    }
    out.push_str(text.get(copied..).unwrap_or(""));
    Some(out)
}

/// End of a value starting at `start`: a quoted string (with escapes) or a run up to a
/// delimiter.
fn value_end(bytes: &[u8], start: usize) -> usize {
    match bytes.get(start) {
        Some(&q @ (b'"' | b'\'')) => {
            let mut k = start + 1;
            while let Some(&b) = bytes.get(k) {
                if b == b'\\' {
                    k += 2;
                    continue;
                }
                if b == q {
                    return k + 1;
                }
                k += 1;
            }
            bytes.len()
        }
        _ => {
            let mut k = start;
            while let Some(&b) = bytes.get(k) {
                if matches!(b, b' ' | b',' | b'}' | b')' | b']' | b';' | b'&' | b'\n') {
                    break;
                }
                k += 1;
            }
            k
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const SECRET: &str = "hunter2-very-secret-value";

    #[test]
    fn sensitive_keys_are_redacted_at_any_depth_and_case() {
        let mut v = json!({
            "user": "ada",
            "Password": SECRET,
            "nested": {"deeper": [{"API-KEY": SECRET}, {"Set-Cookie": SECRET}]},
            "headers": {"Authorization": format!("Bearer {SECRET}"), "x_refresh_token": SECRET},
            "seed": SECRET, "db_password_hash": SECRET, "Secret": SECRET, "cookie": SECRET,
        });
        redact_value(&mut v);
        let s = v.to_string();
        assert!(!s.contains(SECRET), "{s}");
        assert!(s.contains("ada"));
    }

    #[test]
    fn secrets_inside_string_values_are_redacted() {
        for text in [
            format!("Login {{ email: \"a@b.c\", password: \"{SECRET}\" }}"),
            format!("token={SECRET}&next=/"),
            format!("{{\"inner\": {{\"token\": \"{SECRET}\"}}}}"),
            format!("authorization: {SECRET}"),
            format!("SECRET = '{SECRET}'"),
            format!("with \"escaped \\\" quote\" then password: \"a\\\"{SECRET}\""),
            format!("headers: [(\"cookie\", \"{SECRET}\"), (\"accept\", \"*/*\")]"),
            format!("bad_password: \"password\": \"{SECRET}\""),
        ] {
            let line = json!({"message": text}).to_string();
            let out = redact_json_line(&line);
            assert!(!out.contains(SECRET), "{text} → {out}");
        }
    }

    #[test]
    fn innocent_text_is_left_alone() {
        let line = json!({"message": "tokens issued: 3", "path": "/v1/setup"}).to_string();
        assert_eq!(
            redact_json_line(&line),
            json!({"message": "tokens issued: 3", "path": "/v1/setup"}).to_string()
        );
        assert_eq!(redact_text("secretary: ada"), None);
        assert!(!is_sensitive_key("tokens_issued"));
        assert!(is_sensitive_key("x-api-key"));
    }
}
