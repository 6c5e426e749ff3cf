//! Field-level redaction of secrets in structured and semi-structured text.
//!
//! Used where text leaves the process: every log line is passed through [`redact_json_line`]
//! before it is written. Two nets, one after the other:
//!
//! - by field name, case-insensitive, at any nesting depth, including JSON documents and
//!   `key: "value"` / `key=value` pairs embedded in string values (the shape `Debug` output
//!   takes); an `authorization: Bearer X` pair loses the credential `X`, not just the scheme;
//! - by shape ([`redact_token_shapes`]): every secret kind Bulwark issues starts with a known
//!   prefix (`bwk_`, `bwsess_`, `whsec_`, …, [`TOKEN_SHAPES`]), so a token is recognised wherever
//!   it appears — a URL path, a query string, a message, a field of any name — and its body is
//!   replaced, whatever the field is called.

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

/// Redacts one log line (JSON, or free text when it is not JSON): sensitive fields by name,
/// then every issued token by shape, anywhere in the rendered line.
#[must_use]
pub fn redact_json_line(line: &str) -> String {
    let by_name = match serde_json::from_str::<Value>(line) {
        Ok(mut v) => {
            redact_value(&mut v);
            v.to_string()
        }
        Err(_) => redact_text(line).unwrap_or_else(|| line.to_owned()),
    };
    // The replacement keeps JSON valid: token alphabets hold no quote, backslash or control
    // character, so a match never crosses the end of a JSON string.
    redact_token_shapes(&by_name).unwrap_or(by_name)
}

/// Which characters a token's body is made of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alphabet {
    /// base64url without padding (`A–Z a–z 0–9 - _`); also covers the hex id and base62
    /// check of an API key.
    Base64Url,
    /// Standard base64 with padding (`A–Z a–z 0–9 + / =`).
    Base64,
    /// Hexadecimal digits.
    Hex,
}

impl Alphabet {
    fn contains(self, b: u8) -> bool {
        // `%` in every alphabet: a token copied into a URL may be percent-encoded (`%2B`, `%3D`).
        b == b'%'
            || match self {
                Self::Base64Url => b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_'),
                Self::Base64 => b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'='),
                Self::Hex => b.is_ascii_hexdigit(),
            }
    }
}

/// A secret Bulwark issues, recognised by its prefix and alphabet.
#[derive(Debug, Clone, Copy)]
pub struct TokenShape {
    /// The text before the separator (`bwk`); matched case-insensitively.
    pub stem: &'static str,
    /// The separator after the stem (`_`); its percent-encoded form matches too.
    pub separator: char,
    /// What the body is made of.
    pub alphabet: Alphabet,
}

const fn shape(stem: &'static str, separator: char, alphabet: Alphabet) -> TokenShape {
    TokenShape {
        stem,
        separator,
        alphabet,
    }
}

/// Every kind of secret Bulwark issues. A new token kind must be added here (a test in
/// `bulwark-core` generates each kind and checks it is redacted).
pub const TOKEN_SHAPES: &[TokenShape] = &[
    // API keys: `bwk_<hex id>_<base64url secret><base62 check>`.
    shape("bwk", '_', Alphabet::Base64Url),
    // Session tokens.
    shape("bwsess", '_', Alphabet::Base64Url),
    // The one-time setup token.
    shape("bwsetup", '_', Alphabet::Base64Url),
    // Email verification and password reset (account recovery) tokens.
    shape("bwverify", '_', Alphabet::Base64Url),
    shape("bwreset", '_', Alphabet::Base64Url),
    // Invitations.
    shape("bwinvite", '_', Alphabet::Base64Url),
    // Webhook signing secrets (Standard Webhooks: standard base64).
    shape("whsec", '_', Alphabet::Base64),
    // The workspace seed file's content.
    shape("bulwark-seed-v1", ':', Alphabet::Hex),
];

/// Replaces the body of every token of a [`TOKEN_SHAPES`] kind in `text` by [`REDACTED`],
/// keeping the prefix so a reader still sees which kind of secret was there
/// (`bwk_[REDACTED]`). `None` when nothing matched.
#[must_use]
pub fn redact_token_shapes(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = String::new();
    let mut copied = 0;
    let mut i = 0;
    while i < bytes.len() {
        let Some((shape, body_start)) = token_at(bytes, i) else {
            i += 1;
            continue;
        };
        let mut end = body_start;
        while bytes.get(end).is_some_and(|&b| shape.alphabet.contains(b)) {
            end += 1;
        }
        if end == body_start {
            i = body_start;
            continue;
        }
        out.push_str(text.get(copied..body_start).unwrap_or(""));
        out.push_str(REDACTED);
        copied = end;
        i = end;
    }
    if copied == 0 {
        return None;
    }
    out.push_str(text.get(copied..).unwrap_or(""));
    Some(out)
}

/// The shape whose stem and separator start at `i`, and where its body begins.
fn token_at(bytes: &[u8], i: usize) -> Option<(&'static TokenShape, usize)> {
    let rest = bytes.get(i..)?;
    TOKEN_SHAPES.iter().find_map(|shape| {
        let stem = shape.stem.as_bytes();
        let after = rest.get(stem.len()..)?;
        if !rest.get(..stem.len())?.eq_ignore_ascii_case(stem) {
            return None;
        }
        let mut sep = [0u8; 4];
        let sep = shape.separator.encode_utf8(&mut sep).as_bytes();
        let encoded = format!("%{:02X}", u32::from(shape.separator));
        let len = if after.starts_with(sep) {
            sep.len()
        } else if after
            .get(..encoded.len())
            .is_some_and(|a| a.eq_ignore_ascii_case(encoded.as_bytes()))
        {
            encoded.len()
        } else {
            return None;
        };
        Some((shape, i + stem.len() + len))
    })
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
        let value_end = past_credential(bytes, value_start, value_end(bytes, value_start));
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

/// HTTP authentication schemes: a bare value that is one of these is followed by the credential.
const AUTH_SCHEMES: &[&str] = &[
    "bearer",
    "basic",
    "digest",
    "token",
    "negotiate",
    "ntlm",
    "dpop",
    "hoba",
    "mutual",
    "aws4-hmac-sha256",
];

/// For a bare value that is an authentication scheme (`Bearer`), the end of the credential after
/// it; otherwise `end` unchanged. `authorization: Bearer X` must lose `X`, not only `Bearer`.
fn past_credential(bytes: &[u8], start: usize, end: usize) -> usize {
    let word = bytes.get(start..end).unwrap_or(&[]);
    if !AUTH_SCHEMES
        .iter()
        .any(|s| word.eq_ignore_ascii_case(s.as_bytes()))
    {
        return end;
    }
    let mut k = end;
    while bytes.get(k) == Some(&b' ') {
        k += 1;
    }
    if k == end {
        return end;
    }
    // The credential is the next word (token68 for Bearer and Basic).
    let mut stop = k;
    while let Some(&b) = bytes.get(stop) {
        if matches!(
            b,
            b' ' | b'"' | b'\'' | b'}' | b')' | b']' | b',' | b';' | b'&' | b'\n'
        ) {
            break;
        }
        stop += 1;
    }
    if stop == k { end } else { stop }
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
    use proptest::prelude::*;
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
    #[test]
    fn an_authorization_pair_loses_the_credential_not_only_the_scheme() {
        for text in [
            format!("authorization: Bearer {SECRET}"),
            format!("Authorization=Bearer {SECRET} status=401"),
            format!("proxy-authorization: basic {SECRET}, next"),
            format!("x_authorization: DPoP {SECRET}"),
        ] {
            let out = redact_text(&text).unwrap_or_default();
            assert!(!out.contains(SECRET), "{text} → {out}");
            let out = redact_json_line(&text);
            assert!(!out.contains(SECRET), "{text} → {out}");
        }
        // What follows the credential survives.
        let out = redact_json_line(&format!("authorization: Bearer {SECRET} status=401"));
        assert!(out.ends_with(" status=401"), "{out}");
    }

    /// Bodies in each shape's alphabet, long enough not to occur by chance elsewhere in a line.
    fn token() -> impl Strategy<Value = String> {
        (0..TOKEN_SHAPES.len()).prop_flat_map(|i| {
            let shape = TOKEN_SHAPES.get(i).copied().unwrap();
            let body = match shape.alphabet {
                Alphabet::Base64Url => "[A-Za-z0-9_-]{20,90}",
                Alphabet::Base64 => "[A-Za-z0-9+/]{20,60}={0,2}",
                Alphabet::Hex => "[0-9a-f]{64}",
            };
            (Just(shape), body, any::<bool>(), any::<bool>()).prop_map(
                |(shape, body, upper, encoded)| {
                    let stem = if upper {
                        shape.stem.to_ascii_uppercase()
                    } else {
                        shape.stem.to_owned()
                    };
                    let sep = if encoded {
                        format!("%{:02x}", u32::from(shape.separator))
                    } else {
                        shape.separator.to_string()
                    };
                    format!("{stem}{sep}{body}")
                },
            )
        })
    }

    /// What follows the separator: the first `_`, `:` or percent-encoded one (the body itself
    /// may hold `_`, so the first separator-like character decides).
    fn body_of(token: &str) -> &str {
        let at = token.find(['_', ':', '%']).unwrap();
        let skip = if token[at..].starts_with('%') { 3 } else { 1 };
        &token[at + skip..]
    }

    proptest! {
        #[test]
        fn every_token_shape_is_redacted_in_paths_queries_messages_and_fields(tok in token()) {
            let body = body_of(&tok);
            let path = format!("/v1/orgs/org_x/keys/{tok}/rotate");
            let query = format!("a=1&key={tok}&b=2");
            let json = json!({
                "message": format!("looked up {tok} for the caller"),
                "path": path,
                "query": query,
                "span": {"request_id": "r1", "note": tok},
                "harmless_name": tok,
            })
            .to_string();
            let out = redact_json_line(&json);
            prop_assert!(!out.contains(body), "{} → {}", json, out);
            prop_assert!(serde_json::from_str::<Value>(&out).is_ok(), "{}", out);
            prop_assert!(out.contains("\"request_id\":\"r1\""), "{}", out);
            let text = format!(
                "2026-01-01T00:00:00Z  INFO request{{request_id=r1}}: looked up {tok} method=GET path={path} query={query} status=404"
            );
            let out = redact_json_line(&text);
            prop_assert!(!out.contains(body), "{} → {}", text, out);
            prop_assert!(out.contains("status=404"), "{}", out);
        }

        #[test]
        fn redaction_never_panics(text in ".{0,200}") {
            let _ = redact_json_line(&text);
        }
    }

    #[test]
    fn token_prefixes_without_a_body_and_lookalikes_are_left_alone() {
        for text in [
            "send an API key (`bwk_…`) in Authorization",
            "whsec secrets are shown once",
            "bwsession_count=3",
            "path=/v1/orgs/org_x/keys/key_0123",
        ] {
            assert_eq!(redact_token_shapes(text), None, "{text}");
        }
        assert_eq!(
            redact_token_shapes("key bwk_abc_DEF-1 in /x").as_deref(),
            Some("key bwk_[REDACTED] in /x")
        );
    }
}
