//! Webhook signing secrets and the two signature schemes Bulwark sends (issue 7).
//!
//! - **Standard Webhooks**: headers `webhook-id`, `webhook-timestamp` and
//!   `webhook-signature: v1,<base64>` where the signature is
//!   `HMAC-SHA-256(base64decode(secret without "whsec_"), id "." timestamp "." body)`. Several
//!   space-separated signatures may be sent (one per live secret during a rotation overlap).
//! - **Stripe-style**: `Bulwark-Signature: t=<timestamp>,v1=<hex>` where the signature is
//!   `HMAC-SHA-256(secret as UTF-8 bytes, timestamp "." body)`; several `v1=` may follow.
//!
//! Verification (for receivers and Bulwark's own tests) compares in constant time and refuses
//! timestamps further than the tolerance from now, in either direction.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use zeroize::Zeroizing;

use crate::hex::{from_hex, to_hex};
use crate::{CryptoError, hmac_sha256, hmac_sha256_verify, random_bytes};

const PREFIX: &str = "whsec_";
/// The longest secret text accepted.
const MAX_SECRET_CHARS: usize = 256;

/// Why a secret or a signature header was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookError {
    /// Not `whsec_` followed by 1–250 characters (or, for Standard Webhooks, not base64).
    #[error("not a webhook secret (`whsec_…`)")]
    Secret,
    /// The header is not in the scheme's format.
    #[error("the signature header is malformed")]
    Malformed,
    /// The timestamp is further from now than the tolerance.
    #[error("the timestamp is outside the tolerance")]
    Stale,
    /// No signature in the header matches.
    #[error("no signature matches")]
    Mismatch,
}

/// A webhook signing secret, `whsec_…`. Zeroized on drop; no `Debug`, `Display` or `Serialize`:
/// it is shown once, at creation, and stored in the vault.
pub struct WebhookSecret(Zeroizing<String>);

impl WebhookSecret {
    /// A fresh secret: `whsec_` and the standard base64 of 32 random bytes.
    ///
    /// # Errors
    /// When the system random generator fails.
    pub fn generate() -> Result<Self, CryptoError> {
        let bytes = Zeroizing::new(random_bytes::<32>()?);
        let mut text = Zeroizing::new(String::with_capacity(PREFIX.len() + 44));
        text.push_str(PREFIX);
        STANDARD.encode_string(bytes.as_ref(), &mut text);
        Ok(Self(text))
    }

    /// A secret from its text (as stored, or given by an operator).
    ///
    /// # Errors
    /// [`WebhookError::Secret`] without the prefix, empty after it, or too long.
    pub fn parse(text: &str) -> Result<Self, WebhookError> {
        let rest = text.strip_prefix(PREFIX).ok_or(WebhookError::Secret)?;
        if rest.is_empty() || text.len() > MAX_SECRET_CHARS || rest.chars().any(char::is_whitespace)
        {
            return Err(WebhookError::Secret);
        }
        Ok(Self(Zeroizing::new(text.to_owned())))
    }

    /// The secret's text, to show once or to seal in the vault.
    #[must_use]
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The Standard Webhooks key: the base64 after the prefix, decoded.
    fn standard_key(&self) -> Result<Zeroizing<Vec<u8>>, WebhookError> {
        let rest = self.0.strip_prefix(PREFIX).ok_or(WebhookError::Secret)?;
        STANDARD
            .decode(rest)
            .map(Zeroizing::new)
            .map_err(|_| WebhookError::Secret)
    }
}

fn standard_message(id: &str, timestamp: i64, body: &[u8]) -> Vec<u8> {
    let mut msg = Vec::with_capacity(id.len() + body.len() + 24);
    msg.extend_from_slice(id.as_bytes());
    msg.push(b'.');
    msg.extend_from_slice(timestamp.to_string().as_bytes());
    msg.push(b'.');
    msg.extend_from_slice(body);
    msg
}

fn stripe_message(timestamp: i64, body: &[u8]) -> Vec<u8> {
    let mut msg = Vec::with_capacity(body.len() + 24);
    msg.extend_from_slice(timestamp.to_string().as_bytes());
    msg.push(b'.');
    msg.extend_from_slice(body);
    msg
}

/// The `webhook-signature` header value for `secrets` (one `v1,<base64>` per secret, space
/// separated: all live secrets sign during a rotation overlap).
///
/// # Errors
/// [`WebhookError::Secret`] when a secret is not base64 after its prefix.
pub fn sign_standard(
    secrets: &[&WebhookSecret],
    id: &str,
    timestamp: i64,
    body: &[u8],
) -> Result<String, WebhookError> {
    let msg = standard_message(id, timestamp, body);
    let mut parts = Vec::with_capacity(secrets.len());
    for secret in secrets {
        let tag = hmac_sha256(&secret.standard_key()?, &msg);
        parts.push(format!("v1,{}", STANDARD.encode(tag)));
    }
    Ok(parts.join(" "))
}

/// The `Bulwark-Signature` header value: `t=<timestamp>` then one `v1=<hex>` per secret.
#[must_use]
pub fn sign_stripe(secrets: &[&WebhookSecret], timestamp: i64, body: &[u8]) -> String {
    let msg = stripe_message(timestamp, body);
    let mut out = format!("t={timestamp}");
    for secret in secrets {
        out.push_str(",v1=");
        out.push_str(&to_hex(&hmac_sha256(secret.expose().as_bytes(), &msg)));
    }
    out
}

fn fresh(timestamp: i64, now: i64, tolerance_secs: i64) -> Result<(), WebhookError> {
    if now.abs_diff(timestamp) > tolerance_secs.unsigned_abs() {
        return Err(WebhookError::Stale);
    }
    Ok(())
}

/// Checks a Standard Webhooks delivery: the timestamp within `tolerance_secs` of `now`, and one
/// `v1` signature in `header` made with `secret`.
///
/// # Errors
/// [`WebhookError::Stale`], [`WebhookError::Malformed`], [`WebhookError::Mismatch`].
pub fn verify_standard(
    secret: &WebhookSecret,
    id: &str,
    timestamp: i64,
    header: &str,
    body: &[u8],
    now: i64,
    tolerance_secs: i64,
) -> Result<(), WebhookError> {
    fresh(timestamp, now, tolerance_secs)?;
    let key = secret.standard_key()?;
    let msg = standard_message(id, timestamp, body);
    let mut seen = false;
    for part in header.split(' ').filter(|p| !p.is_empty()) {
        let (version, sig) = part.split_once(',').ok_or(WebhookError::Malformed)?;
        if version != "v1" {
            continue;
        }
        seen = true;
        let Ok(tag) = STANDARD.decode(sig) else {
            continue;
        };
        if hmac_sha256_verify(&key, &msg, &tag) {
            return Ok(());
        }
    }
    Err(if seen {
        WebhookError::Mismatch
    } else {
        WebhookError::Malformed
    })
}

/// Checks a Stripe-style `Bulwark-Signature` header: its `t=` within `tolerance_secs` of `now`,
/// and one `v1=` made with `secret`.
///
/// # Errors
/// [`WebhookError::Stale`], [`WebhookError::Malformed`], [`WebhookError::Mismatch`].
pub fn verify_stripe(
    secret: &WebhookSecret,
    header: &str,
    body: &[u8],
    now: i64,
    tolerance_secs: i64,
) -> Result<(), WebhookError> {
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for item in header.split(',') {
        match item.split_once('=') {
            Some(("t", t)) if timestamp.is_none() => {
                timestamp = Some(t.parse::<i64>().map_err(|_| WebhookError::Malformed)?);
            }
            Some(("v1", sig)) => signatures.push(sig),
            Some(_) => {}
            None => return Err(WebhookError::Malformed),
        }
    }
    let timestamp = timestamp.ok_or(WebhookError::Malformed)?;
    if signatures.is_empty() {
        return Err(WebhookError::Malformed);
    }
    fresh(timestamp, now, tolerance_secs)?;
    let msg = stripe_message(timestamp, body);
    for sig in signatures {
        let Some(tag) = from_hex(sig) else {
            continue;
        };
        if hmac_sha256_verify(secret.expose().as_bytes(), &msg, &tag) {
            return Ok(());
        }
    }
    Err(WebhookError::Mismatch)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_700_000_000;

    fn vectors() -> serde_json::Value {
        serde_json::from_str(include_str!("../tests/vectors/webhook-signatures.json")).unwrap()
    }

    #[test]
    fn standard_webhooks_matches_the_published_vector() {
        let v = vectors();
        let cases = v["standard_webhooks"]["cases"].as_array().unwrap();
        assert!(!cases.is_empty());
        for c in cases {
            let secret = WebhookSecret::parse(c["secret"].as_str().unwrap()).unwrap();
            let (id, ts) = (
                c["webhook_id"].as_str().unwrap(),
                c["webhook_timestamp"].as_i64().unwrap(),
            );
            let body = c["body"].as_str().unwrap().as_bytes();
            let header = sign_standard(&[&secret], id, ts, body).unwrap();
            assert_eq!(header, c["webhook_signature"].as_str().unwrap());
            verify_standard(&secret, id, ts, &header, body, ts + 10, 300).unwrap();
        }
    }

    #[test]
    fn stripe_style_matches_the_vector() {
        let v = vectors();
        let cases = v["stripe_style"]["cases"].as_array().unwrap();
        assert!(!cases.is_empty());
        for c in cases {
            let secret = WebhookSecret::parse(c["secret"].as_str().unwrap()).unwrap();
            let ts = c["timestamp"].as_i64().unwrap();
            let body = c["body"].as_str().unwrap().as_bytes();
            let header = sign_stripe(&[&secret], ts, body);
            assert_eq!(header, c["header"].as_str().unwrap());
            verify_stripe(&secret, &header, body, ts, 300).unwrap();
        }
    }

    #[test]
    fn forged_stale_and_malformed_deliveries_are_refused() {
        let secret = WebhookSecret::generate().unwrap();
        let other = WebhookSecret::generate().unwrap();
        let body = br#"{"type":"user.created"}"#;
        let header = sign_standard(&[&secret], "msg_1", NOW, body).unwrap();
        assert_eq!(
            verify_standard(&other, "msg_1", NOW, &header, body, NOW, 300),
            Err(WebhookError::Mismatch)
        );
        assert_eq!(
            verify_standard(&secret, "msg_2", NOW, &header, body, NOW, 300),
            Err(WebhookError::Mismatch)
        );
        assert_eq!(
            verify_standard(&secret, "msg_1", NOW, &header, b"{}", NOW, 300),
            Err(WebhookError::Mismatch)
        );
        assert_eq!(
            verify_standard(&secret, "msg_1", NOW + 1, &header, body, NOW, 300),
            Err(WebhookError::Mismatch)
        );
        assert_eq!(
            verify_standard(&secret, "msg_1", NOW, &header, body, NOW + 301, 300),
            Err(WebhookError::Stale)
        );
        assert_eq!(
            verify_standard(&secret, "msg_1", NOW, &header, body, NOW - 301, 300),
            Err(WebhookError::Stale)
        );
        for bad in ["", "v1", "nonsense", "v2,abc"] {
            assert_eq!(
                verify_standard(&secret, "msg_1", NOW, bad, body, NOW, 300),
                Err(WebhookError::Malformed),
                "{bad}"
            );
        }
        let stripe = sign_stripe(&[&secret], NOW, body);
        assert_eq!(
            verify_stripe(&other, &stripe, body, NOW, 300),
            Err(WebhookError::Mismatch)
        );
        assert_eq!(
            verify_stripe(&secret, &stripe, b"{}", NOW, 300),
            Err(WebhookError::Mismatch)
        );
        assert_eq!(
            verify_stripe(&secret, &stripe, body, NOW + 301, 300),
            Err(WebhookError::Stale)
        );
        let replayed = stripe.replacen(&format!("t={NOW}"), &format!("t={}", NOW + 100), 1);
        assert_eq!(
            verify_stripe(&secret, &replayed, body, NOW + 100, 300),
            Err(WebhookError::Mismatch)
        );
        for bad in ["", "t=1", "v1=00", "t=x,v1=00", "garbage"] {
            assert_eq!(
                verify_stripe(&secret, bad, body, NOW, 300),
                Err(WebhookError::Malformed),
                "{bad}"
            );
        }
    }

    #[test]
    fn during_a_rotation_both_secrets_sign_and_either_verifies() {
        let old = WebhookSecret::generate().unwrap();
        let new = WebhookSecret::generate().unwrap();
        let body = b"{}";
        let header = sign_standard(&[&new, &old], "msg_1", NOW, body).unwrap();
        assert_eq!(header.split(' ').count(), 2);
        verify_standard(&old, "msg_1", NOW, &header, body, NOW, 300).unwrap();
        verify_standard(&new, "msg_1", NOW, &header, body, NOW, 300).unwrap();
        let stripe = sign_stripe(&[&new, &old], NOW, body);
        verify_stripe(&old, &stripe, body, NOW, 300).unwrap();
        verify_stripe(&new, &stripe, body, NOW, 300).unwrap();
    }

    #[test]
    fn secrets_are_generated_fresh_and_parsed_strictly() {
        let a = WebhookSecret::generate().unwrap();
        let b = WebhookSecret::generate().unwrap();
        assert_ne!(a.expose(), b.expose());
        assert!(a.expose().starts_with("whsec_"));
        assert_eq!(a.standard_key().unwrap().len(), 32);
        assert!(WebhookSecret::parse(a.expose()).is_ok());
        for bad in [
            "",
            "whsec_",
            "secret",
            "whsec_a b",
            &format!("whsec_{}", "a".repeat(300)),
        ] {
            assert!(WebhookSecret::parse(bad).is_err(), "{bad}");
        }
        // Standard Webhooks needs base64 after the prefix.
        let not_b64 = WebhookSecret::parse("whsec_not*base64").unwrap();
        assert_eq!(
            sign_standard(&[&not_b64], "m", NOW, b"").err(),
            Some(WebhookError::Secret)
        );
    }
}
