//! Offline licenses: the license document, its canonical bytes, the
//! detached Ed25519 signature over them, and the time rules. No network is ever involved.
//!
//! A license file is `{"license": {claims}, "signature": {"alg": "Ed25519", "key_id", "value"}}`.
//! The signature covers the *canonical bytes* of the claims: the claims are parsed strictly
//! (known fields only, each once, typed), then written back by this module in one fixed form.
//! So reordered keys, whitespace and `\u` escapes in a file change nothing (they mean the same
//! claims), while a duplicate key — which parsers resolve differently — is refused outright.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use bulwark_crypto::Ed25519Signer;

/// The vendor's license-signing public keys, compiled in. The private halves never enter the
/// repository (docs/licensing.md, "Vendor key ceremony"); deployments add keys for self-issued
/// licenses with `license.extra_public_keys`.
pub const VENDOR_PUBLIC_KEYS: &[[u8; 32]] = &[
    // lk_f09a5bab9b5b1d3f, made 2026-12-01 (base64 qmf1Yy721pcVfXWZGoga1LUd2ZNs2ywynv7LDb4VwjE=).
    [
        0xaa, 0x67, 0xf5, 0x63, 0x2e, 0xf6, 0xd6, 0x97, 0x15, 0x7d, 0x75, 0x99, 0x1a, 0x88, 0x1a,
        0xd4, 0xb5, 0x1d, 0xd9, 0x93, 0x6c, 0xdb, 0x2c, 0x32, 0x9e, 0xfe, 0xcb, 0x0d, 0xbe, 0x15,
        0xc2, 0x31,
    ],
];

/// The only format this build reads.
pub const FORMAT: u32 = 1;
/// The longest grace period after expiry.
pub const MAX_GRACE_DAYS: u32 = 90;
/// The largest license file read.
pub const MAX_FILE_BYTES: usize = 64 * 1024;

/// Why a license is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LicenseError {
    /// Not a license document (the text names the first problem, never echoes values).
    #[error("not a valid license file: {0}")]
    Malformed(String),
    /// No trusted key has this key id.
    #[error("the license is signed by a key this deployment does not trust")]
    UnknownKey,
    /// The signature does not match the claims.
    #[error("the license signature does not match its contents")]
    BadSignature,
}

/// Deployment limits; absent means unlimited.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Organisations at most.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub orgs: Option<u32>,
    /// Seats (members across orgs) at most.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seats: Option<u32>,
}

/// What a license grants.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Claims {
    /// [`FORMAT`].
    pub format: u32,
    /// The license's id: 1–64 of `A-Za-z0-9_-`. A re-issue keeps it and raises `serial`.
    pub license_id: String,
    /// Who holds it, 1–200 characters.
    pub licensee: String,
    /// Raised by every re-issue of the same license id (an older one is then refused).
    pub serial: u32,
    /// The deployment it is issued for (`dep_…`), or absent for the first activation anywhere.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployment: Option<String>,
    /// When it was issued.
    #[serde(with = "time::serde::rfc3339")]
    pub issued_at: OffsetDateTime,
    /// Not valid before.
    #[serde(with = "time::serde::rfc3339")]
    pub not_before: OffsetDateTime,
    /// Valid until; then the grace period, then read-only.
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    /// Days after `expires_at` before read-only mode (0–90).
    pub grace_days: u32,
    /// Limits.
    pub limits: Limits,
    /// Feature names (`a-z0-9_.-`, sorted, each once).
    pub features: Vec<String>,
}

/// The detached signature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Signature {
    /// `Ed25519`.
    pub alg: String,
    /// [`key_id`] of the signing key.
    pub key_id: String,
    /// Base64 (standard, padded) of the 64-byte signature.
    pub value: String,
}

/// A license file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LicenseFile {
    /// The claims.
    pub license: Claims,
    /// Over [`canonical_bytes`] of the claims.
    pub signature: Signature,
}

/// Where a license stands at a moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    /// Before `not_before`.
    NotYetValid,
    /// In force.
    Valid,
    /// Expired, in the grace period until the given time.
    Grace(OffsetDateTime),
    /// Past the grace period: read-only (never data loss; the audit log and export stay open).
    Expired,
}

fn bad(what: &str) -> LicenseError {
    LicenseError::Malformed(what.to_owned())
}

/// `lk_` and the first 16 hex digits of SHA-256 of a public key.
#[must_use]
pub fn key_id(public: &[u8; 32]) -> String {
    let digest = bulwark_crypto::sha256(public);
    let hex: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
    format!("lk_{hex}")
}

impl Claims {
    /// The rules beyond types: ids, lengths, time order, grace, features.
    ///
    /// # Errors
    /// [`LicenseError::Malformed`] naming the field.
    pub fn check(&self) -> Result<(), LicenseError> {
        if self.format != FORMAT {
            return Err(bad("`format` is not 1"));
        }
        let id_ok = |s: &str| {
            !s.is_empty()
                && s.len() <= 64
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        };
        if !id_ok(&self.license_id) {
            return Err(bad("`license_id` must be 1 to 64 of A-Z a-z 0-9 _ -"));
        }
        let n = self.licensee.chars().count();
        if n == 0 || n > 200 || self.licensee.chars().any(char::is_control) {
            return Err(bad("`licensee` must be 1 to 200 characters"));
        }
        if let Some(d) = &self.deployment
            && !(d.starts_with("dep_") && id_ok(d))
        {
            return Err(bad("`deployment` must be a deployment id (`dep_…`)"));
        }
        if [self.issued_at, self.not_before, self.expires_at]
            .iter()
            .any(|t| !t.offset().is_utc())
        {
            // One written form per instant: the canonical bytes must not depend on an offset.
            return Err(bad("times must be in UTC (`Z`)"));
        }
        if self.issued_at > self.not_before {
            return Err(bad("`issued_at` must not be after `not_before`"));
        }
        if self.not_before >= self.expires_at {
            return Err(bad("`expires_at` must be after `not_before`"));
        }
        if self
            .expires_at
            .checked_add(time::Duration::days(i64::from(MAX_GRACE_DAYS)))
            .is_none()
        {
            return Err(bad("`expires_at` is too far in the future"));
        }
        if self.grace_days > MAX_GRACE_DAYS {
            return Err(bad("`grace_days` must be 0 to 90"));
        }
        let mut sorted = self.features.clone();
        sorted.sort();
        sorted.dedup();
        let feature_ok = |f: &String| {
            !f.is_empty()
                && f.len() <= 64
                && f.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_.-".contains(&b))
        };
        if sorted != self.features || !self.features.iter().all(feature_ok) {
            return Err(bad(
                "`features` must be sorted, each once, of a-z 0-9 _ . -",
            ));
        }
        Ok(())
    }

    /// When the grace period ends and the deployment becomes read-only.
    #[must_use]
    pub fn read_only_at(&self) -> OffsetDateTime {
        // `check` keeps `expires_at` 90 days short of the end of time.
        self.expires_at
            .checked_add(time::Duration::days(i64::from(self.grace_days)))
            .unwrap_or(self.expires_at)
    }

    /// Where the license stands at `now`.
    #[must_use]
    pub fn standing(&self, now: OffsetDateTime) -> Standing {
        if now < self.not_before {
            return Standing::NotYetValid;
        }
        if now <= self.expires_at {
            return Standing::Valid;
        }
        let grace_end = self.read_only_at();
        if now <= grace_end {
            Standing::Grace(grace_end)
        } else {
            Standing::Expired
        }
    }
}

/// The bytes the signature covers: the claims written in this module's one form (JSON, keys
/// sorted, no whitespace, times in RFC 3339 UTC).
///
/// # Errors
/// [`LicenseError::Malformed`] when a time cannot be written.
pub fn canonical_bytes(claims: &Claims) -> Result<Vec<u8>, LicenseError> {
    let value = serde_json::to_value(claims).map_err(|_| bad("the claims cannot be written"))?;
    sorted(&value)
}

/// JSON with object keys sorted at every level, whatever the map type in use.
fn sorted(value: &serde_json::Value) -> Result<Vec<u8>, LicenseError> {
    use serde_json::Value;
    let mut out = Vec::new();
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push(b'{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                out.extend(serde_json::to_vec(k).map_err(|_| bad("key"))?);
                out.push(b':');
                out.extend(sorted(map.get(k).ok_or_else(|| bad("key"))?)?);
            }
            out.push(b'}');
        }
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                out.extend(sorted(item)?);
            }
            out.push(b']');
        }
        other => out.extend(serde_json::to_vec(other).map_err(|_| bad("value"))?),
    }
    Ok(out)
}

/// Parses a license file strictly: at most [`MAX_FILE_BYTES`], known fields only, each once,
/// nothing after the document, and the claims' own rules.
///
/// # Errors
/// [`LicenseError::Malformed`].
pub fn parse(text: &[u8]) -> Result<LicenseFile, LicenseError> {
    if text.len() > MAX_FILE_BYTES {
        return Err(bad("larger than 64 KiB"));
    }
    let file: LicenseFile = serde_json::from_slice(text).map_err(|e| {
        // serde names the field or the position; values are never in these messages.
        LicenseError::Malformed(match e.classify() {
            serde_json::error::Category::Data => {
                let msg = e.to_string();
                if msg.contains("duplicate field") {
                    "a field appears twice".into()
                } else if msg.contains("unknown field") {
                    "an unknown field".into()
                } else if msg.contains("missing field") {
                    "a required field is missing".into()
                } else {
                    "a field has the wrong type or form".into()
                }
            }
            _ => format!("not JSON (line {}, column {})", e.line(), e.column()),
        })
    })?;
    file.license.check()?;
    if file.signature.alg != "Ed25519" {
        return Err(bad("`signature.alg` must be Ed25519"));
    }
    let id = &file.signature.key_id;
    if id.len() != 19
        || !id.starts_with("lk_")
        || !id
            .bytes()
            .skip(3)
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return Err(bad(
            "`signature.key_id` must be `lk_` and 16 lowercase hex digits",
        ));
    }
    Ok(file)
}

/// Checks the signature with the key of `trusted` whose id the file names.
///
/// # Errors
/// [`LicenseError::UnknownKey`], [`LicenseError::BadSignature`], [`LicenseError::Malformed`].
pub fn verify<'a>(file: &'a LicenseFile, trusted: &[[u8; 32]]) -> Result<&'a Claims, LicenseError> {
    use base64::Engine as _;
    let key = trusted
        .iter()
        .find(|k| key_id(k) == file.signature.key_id)
        .ok_or(LicenseError::UnknownKey)?;
    let signature = base64::engine::general_purpose::STANDARD
        .decode(&file.signature.value)
        .map_err(|_| bad("`signature.value` is not base64"))?;
    if signature.len() != 64 {
        return Err(bad("`signature.value` is not 64 bytes"));
    }
    let msg = canonical_bytes(&file.license)?;
    if bulwark_crypto::verify_ed25519(key, &msg, &signature) {
        Ok(&file.license)
    } else {
        Err(LicenseError::BadSignature)
    }
}

/// Signs `claims` (checked first) with `signer`.
///
/// # Errors
/// [`LicenseError::Malformed`] when the claims break a rule.
pub fn issue(claims: Claims, signer: &Ed25519Signer) -> Result<LicenseFile, LicenseError> {
    use base64::Engine as _;
    claims.check()?;
    let msg = canonical_bytes(&claims)?;
    let value = base64::engine::general_purpose::STANDARD.encode(signer.sign(&msg));
    Ok(LicenseFile {
        license: claims,
        signature: Signature {
            alg: "Ed25519".into(),
            key_id: key_id(&signer.public_key()),
            value,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_compiled_in_vendor_key_has_its_documented_id() {
        assert_eq!(key_id(&VENDOR_PUBLIC_KEYS[0]), "lk_f09a5bab9b5b1d3f");
    }
    use zeroize::Zeroizing;

    fn signer(byte: u8) -> Ed25519Signer {
        Ed25519Signer::from_seed(&Zeroizing::new([byte; 32])).unwrap()
    }

    fn claims() -> Claims {
        let t = |s: &str| {
            OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).unwrap()
        };
        Claims {
            format: 1,
            license_id: "lic_acme_2027".into(),
            licensee: "Acme Corp".into(),
            serial: 1,
            deployment: None,
            issued_at: t("2026-12-01T00:00:00Z"),
            not_before: t("2026-12-01T00:00:00Z"),
            expires_at: t("2027-12-01T00:00:00Z"),
            grace_days: 14,
            limits: Limits {
                orgs: Some(5),
                seats: Some(200),
            },
            features: vec!["audit.export".into(), "sso".into()],
        }
    }

    fn text(file: &LicenseFile) -> String {
        serde_json::to_string_pretty(file).unwrap()
    }

    #[test]
    fn times_are_utc_ordered_and_far_from_the_end_of_time() {
        let t = |s: &str| {
            OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).unwrap()
        };
        let refused = |c: Claims| issue(c, &signer(1)).unwrap_err().to_string();
        // An offset writes the same instant differently: one form only.
        let mut c = claims();
        c.expires_at = t("2027-12-01T01:00:00+01:00");
        assert!(refused(c).contains("UTC"));
        let mut c = claims();
        c.issued_at = c.not_before + time::Duration::days(1);
        assert!(refused(c).contains("issued_at"));
        // A "perpetual" license whose grace end is past the last representable time.
        let mut c = claims();
        c.expires_at = t("9999-12-31T23:59:59Z");
        assert!(refused(c).contains("too far"));
        // Near the limit, the read-only time is computed without overflow.
        let mut c = claims();
        c.expires_at = t("9999-10-01T00:00:00Z");
        c.grace_days = MAX_GRACE_DAYS;
        let file = issue(c.clone(), &signer(1)).unwrap();
        assert_eq!(c.read_only_at(), t("9999-12-30T00:00:00Z"));
        assert_eq!(
            file.license.standing(t("9999-12-31T00:00:00Z")),
            Standing::Expired
        );
    }

    #[test]
    fn a_key_id_is_lk_and_sixteen_hex_digits() {
        let file = issue(claims(), &signer(1)).unwrap();
        for bad in [
            "",
            "lk_",
            "lk_F09A5BAB9B5B1D3F",
            "xx_f09a5bab9b5b1d3f",
            "lk_f09a5bab9b5b1d3f0",
        ] {
            let mut f = file.clone();
            f.signature.key_id = bad.into();
            let err = parse(text(&f).as_bytes()).unwrap_err();
            assert!(err.to_string().contains("key_id"), "{bad}: {err}");
        }
        let long = "a".repeat(60_000);
        let mut f = file;
        f.signature.key_id = long;
        assert!(parse(text(&f).as_bytes()).is_err());
    }

    #[test]
    fn an_issued_license_verifies_with_its_key_only() {
        let vendor = signer(7);
        let file = issue(claims(), &vendor).unwrap();
        let parsed = parse(text(&file).as_bytes()).unwrap();
        assert_eq!(verify(&parsed, &[vendor.public_key()]).unwrap(), &claims());
        // Another key, even one that claims the right id, is refused.
        let other = signer(8);
        assert_eq!(
            verify(&parsed, &[other.public_key()]),
            Err(LicenseError::UnknownKey)
        );
        let mut forged = issue(claims(), &other).unwrap();
        forged.signature.key_id = key_id(&vendor.public_key());
        assert_eq!(
            verify(&forged, &[vendor.public_key()]),
            Err(LicenseError::BadSignature)
        );
    }

    #[test]
    fn tampered_claims_fail() {
        let vendor = signer(7);
        let file = issue(claims(), &vendor).unwrap();
        let original = text(&file);
        for (from, to) in [
            ("\"seats\": 200", "\"seats\": 2000"),
            ("\"Acme Corp\"", "\"Acme Corq\""),
            ("2027-12-01T00:00:00Z", "2037-12-01T00:00:00Z"),
            ("\"grace_days\": 14", "\"grace_days\": 15"),
            ("\"serial\": 1", "\"serial\": 2"),
        ] {
            assert!(original.contains(from), "{from}");
            let tampered = original.replace(from, to);
            let parsed = parse(tampered.as_bytes()).unwrap();
            assert_eq!(
                verify(&parsed, &[vendor.public_key()]),
                Err(LicenseError::BadSignature),
                "{from} → {to}"
            );
        }
        // A feature added in place.
        let tampered = original.replace("\"sso\"", "\"sso\",\n      \"white_label\"");
        let parsed = parse(tampered.as_bytes()).unwrap();
        assert_eq!(
            verify(&parsed, &[vendor.public_key()]),
            Err(LicenseError::BadSignature)
        );
    }

    #[test]
    fn canonicalisation_tricks() {
        let vendor = signer(7);
        let file = issue(claims(), &vendor).unwrap();
        let compact = serde_json::to_string(&file).unwrap();
        // Reordered keys, other whitespace and \u escapes mean the same claims: they verify.
        let reordered = format!(
            "{{ \"signature\": {} ,\n \"license\": {} }}",
            serde_json::to_string(&file.signature).unwrap(),
            serde_json::to_string(&file.license).unwrap()
        );
        let escaped = compact.replace("Acme Corp", "\\u0041cme\\u0020Corp");
        for same in [compact.clone(), reordered, escaped] {
            let parsed = parse(same.as_bytes()).unwrap();
            assert!(verify(&parsed, &[vendor.public_key()]).is_ok(), "{same}");
        }
        // A duplicate key is refused, wherever it is, whichever value comes last.
        for dup in [
            compact.replacen("\"licensee\":", "\"licensee\":\"Evil\",\"licensee\":", 1),
            compact.replacen("\"seats\":", "\"seats\":99999,\"seats\":", 1),
            compact.replacen(
                "{\"license\":",
                &format!(
                    "{{\"license\":{},\"license\":",
                    serde_json::to_string(&file.license).unwrap()
                ),
                1,
            ),
        ] {
            assert_eq!(
                parse(dup.as_bytes()),
                Err(LicenseError::Malformed("a field appears twice".into())),
                "{dup}"
            );
        }
        // Unknown fields, trailing data, wrong types, unsorted features, lookalike escapes.
        for broken in [
            compact.replacen("\"serial\":", "\"admin\":true,\"serial\":", 1),
            format!("{compact} {{}}"),
            compact.replacen("\"grace_days\":14", "\"grace_days\":14.0", 1),
            compact.replacen("\"grace_days\":14", "\"grace_days\":\"14\"", 1),
            compact.replacen(
                "[\"audit.export\",\"sso\"]",
                "[\"sso\",\"audit.export\"]",
                1,
            ),
            compact.replacen("\"format\":1", "\"format\":2", 1),
            "\u{feff}".to_owned() + &compact,
        ] {
            assert!(parse(broken.as_bytes()).is_err(), "{broken}");
        }
        // The canonical form is fixed: sorted keys, no whitespace.
        let bytes = canonical_bytes(&claims()).unwrap();
        let text = String::from_utf8(bytes).unwrap();
        assert!(
            text.starts_with("{\"expires_at\":\"2027-12-01T00:00:00Z\",\"features\":"),
            "{text}"
        );
        assert!(!text.contains(' ') || text.contains("Acme Corp"));
    }

    #[test]
    fn standing_follows_the_dates_and_the_grace() {
        let c = claims();
        let day = time::Duration::days(1);
        assert_eq!(c.standing(c.not_before - day), Standing::NotYetValid);
        assert_eq!(c.standing(c.not_before), Standing::Valid);
        assert_eq!(c.standing(c.expires_at), Standing::Valid);
        let grace_end = c.expires_at + time::Duration::days(14);
        assert_eq!(c.standing(c.expires_at + day), Standing::Grace(grace_end));
        assert_eq!(c.standing(grace_end + day), Standing::Expired);
    }

    #[test]
    fn claim_rules_are_checked_at_issue() {
        let vendor = signer(7);
        let mut c = claims();
        c.expires_at = c.not_before;
        assert!(issue(c, &vendor).is_err());
        let mut c = claims();
        c.grace_days = 91;
        assert!(issue(c, &vendor).is_err());
        let mut c = claims();
        c.license_id = "lic with spaces".into();
        assert!(issue(c, &vendor).is_err());
        let mut c = claims();
        c.deployment = Some("not-a-deployment".into());
        assert!(issue(c, &vendor).is_err());
        assert!(parse(&vec![b' '; MAX_FILE_BYTES + 1]).is_err());
    }
}
