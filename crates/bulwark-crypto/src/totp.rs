//! Time-based one-time passwords (RFC 6238 over RFC 4226 HOTP) and the enrolment material an
//! authenticator app reads: the `otpauth://` URI (Key Uri Format) and its QR code as SVG.
//!
//! The caller owns time and replay state: it passes the Unix time, and stores the step that
//! [`verify_totp`] returns so that the same or an earlier code is refused next time.

use std::num::NonZeroU64;

use aws_lc_rs::hmac;
use aws_lc_rs::rand::{SecureRandom as _, SystemRandom};
use qrcode::render::svg;
use qrcode::{EcLevel, QrCode};
use zeroize::Zeroizing;

use crate::{CryptoError, base32, constant_time_eq};

/// How many steps either side of now [`verify_totp`] should accept by default: one 30-second
/// step covers clock drift and a code typed just as it rolled over (RFC 6238 §5.2).
pub const DEFAULT_TOTP_SKEW: u8 = 1;

/// RFC 4226 §4 R6: a shared secret has at least 128 bits.
const MIN_SECRET_LEN: usize = 16;
const DEFAULT_STEP: NonZeroU64 = match NonZeroU64::new(30) {
    Some(step) => step,
    None => NonZeroU64::MIN,
};

/// Why TOTP parameters, a secret or a QR code were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TotpError {
    /// The code length is outside 6 to 8 digits.
    #[error("a one-time code has 6 to 8 digits, not `{0}`")]
    Digits(u8),
    /// The time step is zero.
    #[error("the one-time code time step must be at least one second")]
    Step,
    /// The secret is shorter than 128 bits.
    #[error("a one-time code secret must be at least 16 bytes long")]
    SecretLength,
    /// The text is not unpadded RFC 4648 base32.
    #[error("the one-time code secret is not valid base32")]
    Base32,
    /// The text does not fit in a QR code.
    #[error("the text cannot be drawn as a QR code")]
    Qr(#[source] qrcode::types::QrError),
}

/// The HMAC hash of a TOTP. SHA-1 is what nearly every authenticator app supports; HMAC-SHA-1
/// is not affected by SHA-1's collision attacks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TotpAlgorithm {
    /// HMAC-SHA-1 (the default of RFC 6238 and of authenticator apps).
    #[default]
    Sha1,
    /// HMAC-SHA-256.
    Sha256,
    /// HMAC-SHA-512.
    Sha512,
}

impl TotpAlgorithm {
    /// The name used by the Key Uri Format's `algorithm` parameter (`SHA1`, `SHA256`, `SHA512`).
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::Sha1 => "SHA1",
            Self::Sha256 => "SHA256",
            Self::Sha512 => "SHA512",
        }
    }

    /// The algorithm called `name` (as returned by [`Self::name`]).
    #[must_use]
    pub fn from_name(name: &str) -> Option<Self> {
        [Self::Sha1, Self::Sha256, Self::Sha512]
            .into_iter()
            .find(|a| a.name() == name)
    }

    /// The hash output length, which is also the secret length [`TotpSecret::generate_for`] uses.
    #[must_use]
    pub const fn output_len(self) -> usize {
        match self {
            Self::Sha1 => 20,
            Self::Sha256 => 32,
            Self::Sha512 => 64,
        }
    }

    const fn hmac(self) -> hmac::Algorithm {
        match self {
            Self::Sha1 => hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY,
            Self::Sha256 => hmac::HMAC_SHA256,
            Self::Sha512 => hmac::HMAC_SHA512,
        }
    }
}

/// Checked TOTP parameters: 6 to 8 digits and a non-zero step. The default (SHA-1, 6 digits,
/// 30 seconds) is the only combination every authenticator app honours.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TotpParams {
    algorithm: TotpAlgorithm,
    digits: u8,
    step: NonZeroU64,
}

impl TotpParams {
    /// Parameters for `digits`-digit codes changing every `step_secs` seconds.
    ///
    /// # Errors
    /// When `digits` is outside 6..=8 or `step_secs` is zero.
    pub fn new(algorithm: TotpAlgorithm, digits: u8, step_secs: u64) -> Result<Self, TotpError> {
        if !(6..=8).contains(&digits) {
            return Err(TotpError::Digits(digits));
        }
        let step = NonZeroU64::new(step_secs).ok_or(TotpError::Step)?;
        Ok(Self {
            algorithm,
            digits,
            step,
        })
    }

    /// The HMAC hash.
    #[must_use]
    pub const fn algorithm(self) -> TotpAlgorithm {
        self.algorithm
    }

    /// The number of digits of a code (6 to 8).
    #[must_use]
    pub const fn digits(self) -> u8 {
        self.digits
    }

    /// The length of a time step in seconds (at least 1).
    #[must_use]
    pub const fn step_secs(self) -> u64 {
        self.step.get()
    }
}

impl Default for TotpParams {
    fn default() -> Self {
        Self {
            algorithm: TotpAlgorithm::Sha1,
            digits: 6,
            step: DEFAULT_STEP,
        }
    }
}

/// A TOTP shared secret. Zeroized on drop; no `Debug`, `Display` or `Serialize`. Store it only
/// sealed (see `SecretBox`).
pub struct TotpSecret(Zeroizing<Vec<u8>>);

impl TotpSecret {
    /// 20 random bytes, the length RFC 4226 recommends and the one matching the default SHA-1.
    ///
    /// # Errors
    /// When the system random generator fails.
    pub fn generate() -> Result<Self, CryptoError> {
        Self::generate_for(TotpAlgorithm::Sha1)
    }

    /// As many random bytes as `algorithm`'s hash output.
    ///
    /// # Errors
    /// When the system random generator fails.
    pub fn generate_for(algorithm: TotpAlgorithm) -> Result<Self, CryptoError> {
        let mut bytes = Zeroizing::new(vec![0u8; algorithm.output_len()]);
        SystemRandom::new()
            .fill(&mut bytes)
            .map_err(|_| CryptoError::Rng)?;
        Ok(Self(bytes))
    }

    /// Wraps stored or imported secret bytes.
    ///
    /// # Errors
    /// When `bytes` is shorter than 16 bytes (128 bits).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, TotpError> {
        if bytes.len() < MIN_SECRET_LEN {
            return Err(TotpError::SecretLength);
        }
        Ok(Self(Zeroizing::new(bytes.to_vec())))
    }

    /// Parses unpadded RFC 4648 base32 (either case), as shown to users.
    ///
    /// # Errors
    /// When `text` is not canonical base32 or decodes to fewer than 16 bytes.
    pub fn from_base32(text: &str) -> Result<Self, TotpError> {
        let bytes = base32::decode(text).ok_or(TotpError::Base32)?;
        if bytes.len() < MIN_SECRET_LEN {
            return Err(TotpError::SecretLength);
        }
        Ok(Self(bytes))
    }

    /// The raw bytes, for sealing before storage.
    #[must_use]
    pub fn expose_bytes(&self) -> &[u8] {
        &self.0
    }

    /// Unpadded RFC 4648 base32, for a user who types the secret instead of scanning the QR code.
    #[must_use]
    pub fn to_base32(&self) -> Zeroizing<String> {
        base32::encode(&self.0)
    }
}

/// The time step holding `unix_time` (RFC 6238 `T`, with `T0` = 0).
#[must_use]
pub fn totp_step(params: TotpParams, unix_time: u64) -> u64 {
    unix_time / params.step
}

/// The code of `secret` at `unix_time`, zero-padded to `params.digits()`.
#[must_use]
pub fn totp_code_at(secret: &TotpSecret, params: TotpParams, unix_time: u64) -> Zeroizing<String> {
    let key = hmac::Key::new(params.algorithm.hmac(), secret.expose_bytes());
    hotp(&key, params.digits, totp_step(params, unix_time))
}

/// Checks a presented code. Returns the time step it belongs to when it is the code of a step
/// within `skew_steps` of `unix_time` **and** that step is later than `last_used_step`; the
/// caller stores the returned step as the new `last_used_step`, so a code is accepted once and
/// never after a later one. Anything but exactly `params.digits()` ASCII digits is refused.
#[must_use]
pub fn verify_totp(
    secret: &TotpSecret,
    params: TotpParams,
    presented: &str,
    unix_time: u64,
    skew_steps: u8,
    last_used_step: Option<u64>,
) -> Option<u64> {
    if presented.len() != usize::from(params.digits)
        || !presented.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let key = hmac::Key::new(params.algorithm.hmac(), secret.expose_bytes());
    let now = totp_step(params, unix_time);
    let skew = u64::from(skew_steps);
    let mut matched = None;
    // Every step in the window is computed and compared, whatever matched before it.
    for step in now.saturating_sub(skew)..=now.saturating_add(skew) {
        let code = hotp(&key, params.digits, step);
        let fresh = last_used_step.is_none_or(|last| step > last);
        if constant_time_eq(code.as_bytes(), presented.as_bytes()) && fresh {
            matched = Some(step);
        }
    }
    matched
}

/// RFC 4226 §5.3: HMAC of the big-endian counter, dynamic truncation, `digits` decimal digits.
fn hotp(key: &hmac::Key, digits: u8, counter: u64) -> Zeroizing<String> {
    let tag = hmac::sign(key, &counter.to_be_bytes());
    let mac = tag.as_ref();
    let offset = usize::from(mac.last().map_or(0, |b| b & 0x0f));
    // INVARIANT: offset + 4 <= 19 < every MAC length (20, 32, 64), so all four bytes exist.
    let truncated = mac
        .iter()
        .skip(offset)
        .take(4)
        .fold(0u32, |acc, &b| (acc << 8) | u32::from(b))
        & 0x7fff_ffff;
    let code = truncated % 10u32.pow(u32::from(digits));
    Zeroizing::new(format!("{code:0width$}", width = usize::from(digits)))
}

/// The Key Uri Format enrolment URI:
/// `otpauth://totp/Issuer:account?secret=…&issuer=Issuer&algorithm=SHA1&digits=6&period=30`,
/// with the issuer and account percent-encoded. It holds the secret.
#[must_use]
pub fn otpauth_uri(
    secret: &TotpSecret,
    params: TotpParams,
    issuer: &str,
    account: &str,
) -> Zeroizing<String> {
    let encoded_secret = secret.to_base32();
    let digits = params.digits.to_string();
    let period = params.step_secs().to_string();
    // Sized up front so that no reallocation leaves a copy of the secret behind.
    let capacity = 96 + 6 * issuer.len() + 3 * account.len() + encoded_secret.len();
    let mut uri = Zeroizing::new(String::with_capacity(capacity));
    for part in [
        "otpauth://totp/",
        &percent_encode(issuer),
        ":",
        &percent_encode(account),
        "?secret=",
        &encoded_secret,
        "&issuer=",
        &percent_encode(issuer),
        "&algorithm=",
        params.algorithm.name(),
        "&digits=",
        &digits,
        "&period=",
        &period,
    ] {
        uri.push_str(part);
    }
    uri
}

/// Every byte of `text` outside RFC 3986's unreserved set as `%XX`.
fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len() * 3);
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(hex_digit(b >> 4));
            out.push(hex_digit(b & 0x0f));
        }
    }
    out
}

fn hex_digit(nibble: u8) -> char {
    char::from(if nibble < 10 {
        b'0' + nibble
    } else {
        b'A' + nibble - 10
    })
}

/// `text` (usually an [`otpauth_uri`]) as a black-on-white QR code in a standalone SVG document.
/// The drawing encodes the text, so treat it as a secret when the text is one.
///
/// # Errors
/// When the text is too long for the largest QR code.
pub fn qr_svg(text: &str) -> Result<Zeroizing<String>, TotpError> {
    let code =
        QrCode::with_error_correction_level(text.as_bytes(), EcLevel::M).map_err(TotpError::Qr)?;
    let svg = code
        .render::<svg::Color<'_>>()
        .min_dimensions(256, 256)
        .quiet_zone(true)
        .build();
    Ok(Zeroizing::new(svg))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The RFC 6238 SHA-1 secret, at a fixed time, so that no test depends on chance.
    fn rfc_secret() -> TotpSecret {
        TotpSecret::from_bytes(b"12345678901234567890").unwrap()
    }

    const NOW: u64 = 1_111_111_111;

    fn code_at_step(step: u64) -> Zeroizing<String> {
        totp_code_at(&rfc_secret(), TotpParams::default(), step * 30)
    }

    #[test]
    fn the_current_code_is_accepted_once() {
        let params = TotpParams::default();
        let secret = rfc_secret();
        let now = totp_step(params, NOW);
        assert_eq!(now, 37_037_037);
        let code = totp_code_at(&secret, params, NOW);
        assert_eq!(code.as_str(), "050471");
        let used = verify_totp(&secret, params, &code, NOW, DEFAULT_TOTP_SKEW, None);
        assert_eq!(used, Some(now));
        assert_eq!(
            verify_totp(&secret, params, &code, NOW, DEFAULT_TOTP_SKEW, used),
            None
        );
        assert_eq!(
            verify_totp(&secret, params, &code, NOW + 1, DEFAULT_TOTP_SKEW, used),
            None
        );
    }

    #[test]
    fn an_earlier_code_is_refused_after_a_later_one_was_used() {
        let params = TotpParams::default();
        let now = totp_step(params, NOW);
        let earlier = code_at_step(now - 1);
        let later = code_at_step(now);
        let skew = DEFAULT_TOTP_SKEW;
        assert_eq!(
            verify_totp(&rfc_secret(), params, &earlier, NOW, skew, None),
            Some(now - 1)
        );
        let used = verify_totp(&rfc_secret(), params, &later, NOW, skew, None);
        assert_eq!(used, Some(now));
        assert_eq!(
            verify_totp(&rfc_secret(), params, &earlier, NOW, skew, used),
            None
        );
    }

    #[test]
    fn one_step_of_skew_is_accepted_and_two_are_refused() {
        let params = TotpParams::default();
        let now = totp_step(params, NOW);
        let check = |step: u64| {
            verify_totp(
                &rfc_secret(),
                params,
                &code_at_step(step),
                NOW,
                DEFAULT_TOTP_SKEW,
                None,
            )
        };
        assert_eq!(check(now - 1), Some(now - 1));
        assert_eq!(check(now + 1), Some(now + 1));
        assert_eq!(check(now - 2), None);
        assert_eq!(check(now + 2), None);
        let code = code_at_step(now + 1);
        assert_eq!(
            verify_totp(&rfc_secret(), params, &code, NOW, 0, None),
            None
        );
    }

    #[test]
    fn the_window_saturates_at_the_ends_of_time() {
        let params = TotpParams::default();
        let code = totp_code_at(&rfc_secret(), params, 0);
        assert_eq!(
            verify_totp(&rfc_secret(), params, &code, 0, u8::MAX, None),
            Some(0)
        );
        let last = totp_code_at(&rfc_secret(), params, u64::MAX);
        let step = verify_totp(&rfc_secret(), params, &last, u64::MAX, 1, None);
        assert_eq!(step, Some(u64::MAX / 30));
    }

    #[test]
    fn malformed_codes_are_refused_without_panicking() {
        let params = TotpParams::default();
        let good = totp_code_at(&rfc_secret(), params, NOW);
        let with_space = format!("{} ", good.as_str());
        let signed = format!("+{}", &good[1..]);
        let cases = [
            "",
            "abcdef",
            "05047a",
            "05047",
            "0504710",
            "١٢٣٤٥٦",
            "０５０４７１",
            with_space.as_str(),
            signed.as_str(),
            " 50471",
        ];
        for bad in cases {
            assert_eq!(
                verify_totp(&rfc_secret(), params, bad, NOW, DEFAULT_TOTP_SKEW, None),
                None,
                "{bad:?}"
            );
        }
        let eight = TotpParams::new(TotpAlgorithm::Sha1, 8, 30).unwrap();
        assert_eq!(
            verify_totp(&rfc_secret(), eight, &good, NOW, DEFAULT_TOTP_SKEW, None),
            None
        );
    }

    #[test]
    fn parameters_and_secrets_are_checked_on_construction() {
        assert_eq!(
            TotpParams::new(TotpAlgorithm::Sha1, 5, 30),
            Err(TotpError::Digits(5))
        );
        assert_eq!(
            TotpParams::new(TotpAlgorithm::Sha1, 9, 30),
            Err(TotpError::Digits(9))
        );
        assert_eq!(
            TotpParams::new(TotpAlgorithm::Sha1, 6, 0),
            Err(TotpError::Step)
        );
        let default = TotpParams::default();
        assert_eq!(
            default,
            TotpParams::new(TotpAlgorithm::Sha1, 6, 30).unwrap()
        );
        assert!(TotpSecret::from_bytes(&[0; 15]).is_err());
        assert!(matches!(
            TotpSecret::from_base32("MZXW6YTBOI"),
            Err(TotpError::SecretLength)
        ));
        assert!(matches!(
            TotpSecret::from_base32("MZXW6YTBO1"),
            Err(TotpError::Base32)
        ));
        for a in [
            TotpAlgorithm::Sha1,
            TotpAlgorithm::Sha256,
            TotpAlgorithm::Sha512,
        ] {
            assert_eq!(TotpAlgorithm::from_name(a.name()), Some(a));
            let s = TotpSecret::generate_for(a).unwrap();
            assert_eq!(s.expose_bytes().len(), a.output_len());
        }
        assert_eq!(TotpAlgorithm::from_name("sha1"), None);
    }

    #[test]
    fn generated_secrets_are_random_and_round_trip_through_base32() {
        let a = TotpSecret::generate().unwrap();
        let b = TotpSecret::generate().unwrap();
        assert_eq!(a.expose_bytes().len(), 20);
        assert_ne!(a.expose_bytes(), b.expose_bytes());
        let text = a.to_base32();
        assert_eq!(text.len(), 32);
        let back = TotpSecret::from_base32(&text).unwrap();
        assert_eq!(back.expose_bytes(), a.expose_bytes());
        let lower = TotpSecret::from_base32(&text.to_lowercase()).unwrap();
        assert_eq!(lower.expose_bytes(), a.expose_bytes());
    }

    #[test]
    fn the_otpauth_uri_escapes_issuer_and_account() {
        let params = TotpParams::new(TotpAlgorithm::Sha256, 8, 60).unwrap();
        let uri = otpauth_uri(
            &rfc_secret(),
            params,
            "ACME Co: Ops",
            "alice+mfa@example.com",
        );
        assert_eq!(
            uri.as_str(),
            "otpauth://totp/ACME%20Co%3A%20Ops:alice%2Bmfa%40example.com\
             ?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=ACME%20Co%3A%20Ops\
             &algorithm=SHA256&digits=8&period=60"
        );
        let plain = otpauth_uri(&rfc_secret(), TotpParams::default(), "Bulwark", "ö/&?=#");
        assert_eq!(
            plain.as_str(),
            "otpauth://totp/Bulwark:%C3%B6%2F%26%3F%3D%23\
             ?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=Bulwark\
             &algorithm=SHA1&digits=6&period=30"
        );
    }

    #[test]
    fn the_qr_svg_draws_the_uri_without_spelling_it_out() {
        let secret = rfc_secret();
        let uri = otpauth_uri(
            &secret,
            TotpParams::default(),
            "Bulwark",
            "alice@example.com",
        );
        let svg = qr_svg(&uri).unwrap();
        assert!(svg.starts_with("<?xml") || svg.starts_with("<svg"));
        assert!(svg.contains("<svg") && svg.trim_end().ends_with("</svg>"));
        for leak in [
            secret.to_base32().as_str(),
            "GEZDGNBV",
            "otpauth",
            "Bulwark",
            "alice",
        ] {
            assert!(!svg.contains(leak), "{leak}");
        }
        let too_long = "x".repeat(8000);
        assert!(matches!(qr_svg(&too_long), Err(TotpError::Qr(_))));
    }
}
