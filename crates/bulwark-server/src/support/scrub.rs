//! What keeps secrets and personal data out of a support bundle.
//!
//! Every file goes through, in order: the log redactor (`bulwark_types::redact`: secret field
//! names at any depth, and every token shape Bulwark issues); pseudonyms for personal data
//! (email addresses, IP addresses other than loopback and unspecified, and whole values of
//! fields that hold a user agent, a name or a request body), keyed with the seed's
//! `bulwark/v1/support-pseudonym` key, so one address is one `eml_…` across the bundle and
//! across bundles, and only the seed's holder can tell whom; and a last check for every secret
//! the tool knows (the seed, the configuration's secrets) in plain, base64, hex and
//! URL-encoded form, which refuses the bundle rather than write one.

use base64::Engine as _;
use serde_json::Value;
use zeroize::Zeroizing;

/// Field names whose whole value is personal data: replaced by a pseudonym of the value.
const PERSONAL_KEYS: &[&str] = &[
    "user_agent",
    "useragent",
    "email",
    "name",
    "display_name",
    "given_name",
    "family_name",
    "body",
    "request_body",
    "payload",
];

/// Pseudonymises and checks what goes into a bundle.
pub struct Scrubber {
    key: Zeroizing<[u8; 32]>,
    secrets: Vec<Zeroizing<String>>,
}

impl Scrubber {
    /// A scrubber with `key` for its pseudonyms and `secrets` to refuse in any form.
    #[must_use]
    pub fn new(key: Zeroizing<[u8; 32]>, secrets: Vec<Zeroizing<String>>) -> Self {
        Self {
            key,
            secrets: secrets.into_iter().filter(|s| s.len() >= 6).collect(),
        }
    }

    /// `kind_` and 12 hex digits of the keyed hash of `value` (lowercased).
    #[must_use]
    pub fn pseudonym(&self, kind: &str, value: &str) -> String {
        let mut message = kind.as_bytes().to_vec();
        message.push(0);
        message.extend_from_slice(value.trim().to_lowercase().as_bytes());
        let mac = bulwark_crypto::hmac_sha256(&*self.key, &message);
        format!(
            "{kind}_{}",
            bulwark_crypto::to_hex(mac.get(..6).unwrap_or_default())
        )
    }

    /// Text with its secrets redacted and its email and IP addresses pseudonymised.
    #[must_use]
    pub fn text(&self, text: &str) -> String {
        let redacted = bulwark_types::redact::redact_text(text).unwrap_or_else(|| text.to_owned());
        let redacted = bulwark_types::redact::redact_token_shapes(&redacted).unwrap_or(redacted);
        self.addresses(&self.emails(&redacted))
    }

    /// A Prometheus exposition scrubbed: token shapes, emails and addresses, but not the
    /// `key=value` heuristics of [`Self::text`], which read a label pair such as
    /// `method="password",outcome="failure"` as a credential and would break the format. Its
    /// label values come from closed sets (docs/metrics.md); the bundle's check for known
    /// secrets still runs on it.
    pub fn exposition(&self, text: &str) -> String {
        let redacted = bulwark_types::redact::redact_token_shapes(text).unwrap_or(text.to_owned());
        self.addresses(&self.emails(&redacted))
    }

    /// A JSON value scrubbed in place: secret fields redacted, personal fields replaced whole,
    /// every other string scrubbed as text.
    pub fn json(&self, value: &mut Value) {
        bulwark_types::redact::redact_value(value);
        self.personal(value);
    }

    fn personal(&self, value: &mut Value) {
        match value {
            Value::Object(map) => {
                for (k, v) in map.iter_mut() {
                    let key = k.to_ascii_lowercase().replace('-', "_");
                    let personal = PERSONAL_KEYS
                        .iter()
                        .any(|p| key == *p || key.ends_with(&format!("_{p}")));
                    match v {
                        Value::String(s) if personal && s != bulwark_types::redact::REDACTED => {
                            *s = self.pseudonym("pii", s);
                        }
                        Value::Object(_) | Value::Array(_) if personal => {
                            *v = Value::String(self.pseudonym("pii", &v.to_string()));
                        }
                        _ => self.personal(v),
                    }
                }
            }
            Value::Array(items) => items.iter_mut().for_each(|v| self.personal(v)),
            Value::String(s) => *s = self.text(s),
            _ => {}
        }
    }

    /// One log line: JSON lines field by field, other lines as text.
    #[must_use]
    pub fn log_line(&self, line: &str) -> String {
        match serde_json::from_str::<Value>(line) {
            Ok(mut v @ Value::Object(_)) => {
                self.json(&mut v);
                v.to_string()
            }
            _ => self.text(line),
        }
    }

    fn emails(&self, text: &str) -> String {
        let local = |c: char| c.is_ascii_alphanumeric() || "._%+-".contains(c);
        let domain = |c: char| c.is_ascii_alphanumeric() || c == '.' || c == '-' || !c.is_ascii();
        let chars: Vec<(usize, char)> = text.char_indices().collect();
        let mut out = String::with_capacity(text.len());
        let mut copied = 0;
        for (i, &(at, c)) in chars.iter().enumerate() {
            if c != '@' || at < copied {
                continue;
            }
            let start = chars
                .get(..i)
                .unwrap_or_default()
                .iter()
                .rev()
                .take_while(|(_, c)| local(*c))
                .last()
                .map_or(at, |(p, _)| *p);
            let end = chars
                .get(i + 1..)
                .unwrap_or_default()
                .iter()
                .take_while(|(_, c)| domain(*c))
                .last()
                .map_or(at + 1, |(p, c)| p + c.len_utf8());
            let host = text
                .get(at + 1..end)
                .unwrap_or_default()
                .trim_end_matches('.');
            if start == at || !host.contains('.') || start < copied {
                continue;
            }
            let end = at + 1 + host.len();
            out.push_str(text.get(copied..start).unwrap_or_default());
            out.push_str(&self.pseudonym("eml", text.get(start..end).unwrap_or_default()));
            copied = end;
        }
        out.push_str(text.get(copied..).unwrap_or_default());
        out
    }

    fn addresses(&self, text: &str) -> String {
        let part = |c: char| c.is_ascii_hexdigit() || c == ':' || c == '.';
        // A run touching a letter, digit or `_` is part of a word (`cache::db`, `v1.2.3.4`).
        let word = |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric() || c == '_');
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        while let Some(start) = rest.find(part) {
            let (before, from) = rest.split_at(start);
            out.push_str(before);
            let len = from.find(|c: char| !part(c)).unwrap_or(from.len());
            let (run, after) = from.split_at(len);
            if word(before.chars().next_back()) || word(after.chars().next()) {
                out.push_str(run);
            } else {
                out.push_str(&self.address_run(run));
            }
            rest = after;
        }
        out.push_str(rest);
        out
    }

    /// A run of hex digits, dots and colons: an address (perhaps with a port) or not.
    fn address_run(&self, run: &str) -> String {
        let trimmed = run.trim_end_matches(['.', ':']);
        let tail = run.get(trimmed.len()..).unwrap_or_default();
        let replace = |ip: std::net::IpAddr| match ip {
            std::net::IpAddr::V4(v4) => !(v4.is_loopback() || v4.is_unspecified()),
            // `::/96` (`::1`, `::a`) is no one's address.
            std::net::IpAddr::V6(v6) => v6.segments().iter().take(6).any(|s| *s != 0),
        };
        if let Ok(ip) = trimmed.parse::<std::net::IpAddr>() {
            if replace(ip) {
                return format!("{}{tail}", self.pseudonym("ip", &ip.to_string()));
            }
            return run.to_owned();
        }
        if let Some((host, port)) = trimmed.rsplit_once(':')
            && port.chars().all(|c| c.is_ascii_digit())
            && let Ok(ip) = host.parse::<std::net::Ipv4Addr>()
        {
            if replace(ip.into()) {
                return format!("{}:{port}{tail}", self.pseudonym("ip", &ip.to_string()));
            }
            return run.to_owned();
        }
        run.to_owned()
    }

    /// Refuses `data` when a known secret appears in it in any of its encodings.
    ///
    /// # Errors
    /// Which encoding appeared (never the secret).
    pub fn check(&self, data: &[u8]) -> Result<(), String> {
        let text = String::from_utf8_lossy(data);
        let lower = text.to_lowercase();
        for secret in &self.secrets {
            let forms = [
                ("as written", secret.to_string()),
                (
                    "in base64",
                    base64::engine::general_purpose::STANDARD.encode(secret.as_bytes()),
                ),
                (
                    "in URL-safe base64",
                    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret.as_bytes()),
                ),
                ("in hex", bulwark_crypto::to_hex(secret.as_bytes())),
            ];
            for (how, form) in forms {
                let form = Zeroizing::new(form);
                let found = if how == "in hex" {
                    lower.contains(form.as_str())
                } else {
                    text.contains(form.as_str())
                };
                if found {
                    return Err(format!("a secret appears {how}"));
                }
            }
            if percent_decoded(&text).contains(secret.as_str()) {
                return Err("a secret appears URL-encoded".into());
            }
        }
        Ok(())
    }
}

/// `text` with every `%XX` decoded (and `+` read as a space where it follows a form's `=`).
fn percent_decoded(text: &str) -> Zeroizing<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (b, hex) {
            (b'%', Some(v)) => {
                out.push(v);
                i += 3;
            }
            _ => {
                out.push(b);
                i += 1;
            }
        }
    }
    Zeroizing::new(String::from_utf8_lossy(&out).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scrubber() -> Scrubber {
        Scrubber::new(
            Zeroizing::new([7; 32]),
            vec![Zeroizing::new("hunter2-canary".into())],
        )
    }

    #[test]
    fn emails_and_addresses_become_stable_pseudonyms() {
        let s = scrubber();
        let out = s.text(
            "sign-in by Alice.Smith+x@Example.COM from 203.0.113.7:4431 and [2001:db8::1]:80; \
             alice.smith+x@example.com again; local 127.0.0.1:8420, version 0.1.0, time 13:53:10.02, \
             target bulwark_server::api::keys, cache::db, v1.2.3.4",
        );
        assert!(
            !out.contains("Alice") && !out.contains("example.com"),
            "{out}"
        );
        assert!(
            !out.contains("203.0.113.7") && !out.contains("2001:db8::1"),
            "{out}"
        );
        let eml = s.pseudonym("eml", "alice.smith+x@example.com");
        assert_eq!(out.matches(&eml).count(), 2, "{out}");
        assert!(
            out.contains(&format!("{}:4431", s.pseudonym("ip", "203.0.113.7"))),
            "{out}"
        );
        assert!(
            out.contains("127.0.0.1:8420") && out.contains("0.1.0"),
            "{out}"
        );
        assert!(out.contains("13:53:10.02"), "{out}");
        assert!(
            out.contains("bulwark_server::api::keys, cache::db, v1.2.3.4"),
            "{out}"
        );
    }

    #[test]
    fn personal_fields_are_replaced_whole_and_secrets_redacted() {
        let s = scrubber();
        let mut v = serde_json::json!({
            "user_agent": "Mozilla/5.0 (canary)",
            "password": "p",
            "nested": {"display_name": "Bob Canary", "note": "mail bob@corp.example"},
            "list": ["10.1.2.3"]
        });
        s.json(&mut v);
        let text = v.to_string();
        for gone in [
            "Mozilla",
            "Bob Canary",
            "bob@corp.example",
            "10.1.2.3",
            "\"p\"",
        ] {
            assert!(!text.contains(gone), "{gone} in {text}");
        }
    }

    #[test]
    fn issued_token_shapes_are_redacted_in_plain_text() {
        let out = scrubber().text("sent key bwk_0123abcd_c2VjcmV0c2VjcmV0 to whsec_QUJDREVG");
        assert!(
            !out.contains("c2VjcmV0") && !out.contains("QUJDREVG"),
            "{out}"
        );
    }

    #[test]
    fn a_known_secret_in_any_encoding_is_refused() {
        let s = scrubber();
        assert!(s.check(b"all clear").is_ok());
        for form in [
            "hunter2-canary".to_owned(),
            base64::engine::general_purpose::STANDARD.encode("hunter2-canary"),
            bulwark_crypto::to_hex(b"hunter2-canary").to_uppercase(),
            "hunter2-canary".replace('-', "%2D"),
        ] {
            assert!(s.check(format!("x {form} y").as_bytes()).is_err(), "{form}");
        }
    }
}
