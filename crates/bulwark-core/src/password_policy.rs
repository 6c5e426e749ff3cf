//! The rules a new password must meet, after NIST SP 800-63B-4: a minimum length (15 characters
//! for a password-only account, 8 once MFA is enrolled), room for at least 64, any Unicode
//! (normalised to NFKC and counted in code points), no value from a blocklist of breached
//! passwords, a strength estimate (zxcvbn) and, only if an org asks for it, composition rules.
//! Pure: the blocklist is compiled in and nothing here does I/O.
//!
//! INVARIANT: the length cap is checked on a bounded prefix before any other work, so the cost of
//! a check never grows with the size of the input.
//! INVARIANT: no [`Weakness`] and no error carries any part of the password.

use std::collections::HashSet;
use std::fmt;
use std::sync::LazyLock;

use secrecy::{ExposeSecret, SecretString};
use unicode_normalization::UnicodeNormalization;

use crate::CoreError;

/// Shortest password accepted for a password-only account (NIST SP 800-63B-4).
pub const MIN_PASSWORD_CHARS: usize = 15;
/// Longest password accepted; long enough for passphrases, short enough to bound hashing cost.
pub const MAX_PASSWORD_CHARS: usize = 256;

/// The lowest minimum a policy may set (NIST: at least 8 characters, even with MFA).
pub const FLOOR_MIN_CHARS: usize = 8;
/// The lowest maximum a policy may set (NIST: permit at least 64 characters).
pub const FLOOR_MAX_CHARS: usize = 64;
/// The highest zxcvbn score.
pub const MAX_STRENGTH: u8 = 4;

/// zxcvbn scores only the first 100 characters of its input (its own DoS guard); passing just
/// that prefix spares it a copy of the rest.
const STRENGTH_PREFIX_CHARS: usize = 100;
/// An email local part shorter than this is too likely to occur by chance to be forbidden.
const MIN_EMAIL_LOCAL_CHARS: usize = 4;

/// One entry a line, lowercase, most common first; `#` lines are comments (see data/README.md).
const COMMON_PASSWORDS_TXT: &str = include_str!("../data/common-passwords.txt");

static COMMON_PASSWORDS: LazyLock<HashSet<&'static str>> = LazyLock::new(|| {
    COMMON_PASSWORDS_TXT
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .collect()
});

/// An org's password rules. Build with [`Default`] and check with [`PasswordPolicy::validate`]
/// after reading one from configuration or from an org's settings.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PasswordPolicy {
    /// Fewest characters for an account whose only authenticator is its password (default 15).
    pub min_chars_password_only: usize,
    /// Fewest characters once a second factor is enrolled (default 8).
    pub min_chars_with_mfa: usize,
    /// Most characters accepted; at least 64 and at most the hashing cap of 256 (the default).
    pub max_chars: usize,
    /// Lowest zxcvbn score accepted, 0 to 4 (default 3; 0 turns the estimate off).
    pub min_strength: u8,
    /// Require a lowercase letter, an uppercase letter, a digit and a symbol (default off).
    /// NIST advises against composition rules; this exists for orgs whose auditors demand them.
    pub composition: bool,
}

impl Default for PasswordPolicy {
    fn default() -> Self {
        Self {
            min_chars_password_only: MIN_PASSWORD_CHARS,
            min_chars_with_mfa: FLOOR_MIN_CHARS,
            max_chars: MAX_PASSWORD_CHARS,
            min_strength: 3,
            composition: false,
        }
    }
}

/// What a check knows about the account besides the password.
#[derive(Debug, Clone, Copy)]
pub struct PasswordContext<'a> {
    /// Whether the account has a second factor enrolled (lowers the minimum length).
    pub mfa_enrolled: bool,
    /// The account's email address; its local part may not appear in the password.
    pub email: &'a str,
    /// Other guessable words (display name, org name, product name) the estimate should know.
    pub other_words: &'a [&'a str],
}

/// One reason a password was refused. Carries only policy numbers, never the password.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Weakness {
    /// Fewer characters than the applicable minimum.
    TooShort {
        /// The minimum that applied.
        min: usize,
    },
    /// More characters than the maximum (no other check ran).
    TooLong {
        /// The maximum.
        max: usize,
    },
    /// The password is on the blocklist of common and breached passwords.
    Common,
    /// The strength estimate is below the policy's minimum.
    Weak,
    /// The password contains the local part of the account's email address.
    ContainsEmail,
    /// Little of the password is left once its context words (the product's, the email's and
    /// the orgs' names) are taken out.
    ContextWords,
    /// Composition rules are on and a character class is missing.
    Composition,
}

impl Weakness {
    /// A stable snake_case code for API bodies and translations.
    #[must_use]
    pub fn code(&self) -> &'static str {
        match self {
            Self::TooShort { .. } => "too_short",
            Self::TooLong { .. } => "too_long",
            Self::Common => "common",
            Self::Weak => "weak",
            Self::ContainsEmail => "contains_email",
            Self::ContextWords => "context_words",
            Self::Composition => "composition",
        }
    }

    /// A message for the person choosing the password, lowercase, without a trailing period.
    #[must_use]
    pub fn message(&self) -> String {
        match self {
            Self::TooShort { min } => format!("must be at least {min} characters"),
            Self::TooLong { max } => format!("must be at most {max} characters"),
            Self::Common => "is too common: it appears in lists of breached passwords".to_owned(),
            Self::Weak => "is too easy to guess: try a longer phrase of unrelated words".to_owned(),
            Self::ContainsEmail => "must not contain your email address".to_owned(),
            Self::ContextWords => {
                "must not be built on the product's, your email's or your organisation's name"
                    .to_owned()
            }
            Self::Composition => {
                "must contain a lowercase letter, an uppercase letter, a digit and a symbol"
                    .to_owned()
            }
        }
    }
}

impl fmt::Display for Weakness {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message())
    }
}

/// Normalises a password to Unicode NFKC, as NIST asks before hashing. NFKC (compatibility
/// composition) rather than NFC so that inputs that look alike but come from different keyboards
/// or input methods (full-width Latin, ligatures, composed or decomposed accents) hash alike.
/// Callers hash the result when setting a password and normalise again at sign-in.
#[must_use]
pub fn normalize(password: &SecretString) -> SecretString {
    let raw = password.expose_secret();
    let mut out = String::with_capacity(raw.len());
    out.extend(raw.nfkc());
    SecretString::from(out)
}

impl PasswordPolicy {
    /// Checks the policy itself.
    ///
    /// # Errors
    /// `Validation` naming the field when a minimum is below 8, the maximum is outside 64 to
    /// 256, a minimum exceeds the maximum, or `min_strength` exceeds 4.
    pub fn validate(&self) -> Result<(), CoreError> {
        let invalid = |field, message: String| Err(CoreError::Validation { field, message });
        for (field, min) in [
            ("min_chars_password_only", self.min_chars_password_only),
            ("min_chars_with_mfa", self.min_chars_with_mfa),
        ] {
            if min < FLOOR_MIN_CHARS {
                return invalid(field, format!("must be at least {FLOOR_MIN_CHARS}"));
            }
            if min > self.max_chars {
                return invalid(field, "must not exceed `max_chars`".to_owned());
            }
        }
        if !(FLOOR_MAX_CHARS..=MAX_PASSWORD_CHARS).contains(&self.max_chars) {
            let message = format!("must be between {FLOOR_MAX_CHARS} and {MAX_PASSWORD_CHARS}");
            return invalid("max_chars", message);
        }
        if self.min_strength > MAX_STRENGTH {
            return invalid("min_strength", format!("must be at most {MAX_STRENGTH}"));
        }
        Ok(())
    }

    /// Checks a new password, already or not yet normalised (it is normalised here either way).
    ///
    /// # Errors
    /// Every rule the password breaks; a password over the maximum reports only `TooLong`.
    pub fn check(
        &self,
        password: &SecretString,
        ctx: &PasswordContext<'_>,
    ) -> Result<(), Vec<Weakness>> {
        // Normalise at most one character past the cap: enough to know it is too long.
        let cap = self.max_chars.saturating_add(1);
        let normalized = SecretString::from(
            password
                .expose_secret()
                .nfkc()
                .take(cap)
                .collect::<String>(),
        );
        let normalized = normalized.expose_secret();
        let chars = normalized.chars().count();
        if chars > self.max_chars {
            return Err(vec![Weakness::TooLong {
                max: self.max_chars,
            }]);
        }
        let mut weaknesses = Vec::new();
        let min = if ctx.mfa_enrolled {
            self.min_chars_with_mfa
        } else {
            self.min_chars_password_only
        };
        if chars < min {
            weaknesses.push(Weakness::TooShort { min });
        }
        if self.composition && !meets_composition(normalized) {
            weaknesses.push(Weakness::Composition);
        }
        let folded = SecretString::from(normalized.to_lowercase());
        let local = email_local_part(ctx.email);
        if contains_email(folded.expose_secret(), &local) {
            weaknesses.push(Weakness::ContainsEmail);
        }
        if built_on_context(folded.expose_secret(), ctx.other_words) {
            weaknesses.push(Weakness::ContextWords);
        }
        if COMMON_PASSWORDS.contains(folded.expose_secret()) {
            weaknesses.push(Weakness::Common);
        }
        if self.min_strength > 0 && strength(normalized, ctx, &local) < self.min_strength {
            weaknesses.push(Weakness::Weak);
        }
        if weaknesses.is_empty() {
            Ok(())
        } else {
            Err(weaknesses)
        }
    }
}

fn meets_composition(password: &str) -> bool {
    let has = |class: fn(&char) -> bool| password.chars().any(|c| class(&c));
    has(|c| c.is_lowercase())
        && has(|c| c.is_uppercase())
        && has(|c| c.is_numeric())
        && has(|c| !c.is_alphanumeric())
}

/// The email's local part, normalised and lowercased like the password.
fn email_local_part(email: &str) -> String {
    let local = email.rsplit_once('@').map_or(email, |(local, _)| local);
    local.nfkc().collect::<String>().to_lowercase()
}

fn contains_email(folded_password: &str, local: &str) -> bool {
    local.chars().count() >= MIN_EMAIL_LOCAL_CHARS && folded_password.contains(local)
}

/// Whether fewer than [`FLOOR_MIN_CHARS`] characters of the (folded) password are left once
/// every context word of at least [`MIN_EMAIL_LOCAL_CHARS`] characters is taken out.
fn built_on_context(folded_password: &str, words: &[&str]) -> bool {
    let mut rest = folded_password.to_owned();
    let mut took = false;
    for word in words {
        let word = word.nfkc().collect::<String>().to_lowercase();
        if word.chars().count() >= MIN_EMAIL_LOCAL_CHARS && rest.contains(&word) {
            rest = rest.replace(&word, "");
            took = true;
        }
    }
    took && rest.chars().filter(|c| c.is_alphanumeric()).count() < FLOOR_MIN_CHARS
}

/// The zxcvbn score, 0 to 4, of the password's first 100 characters.
fn strength(password: &str, ctx: &PasswordContext<'_>, local: &str) -> u8 {
    #[cfg(test)]
    tests::ESTIMATES.with(|n| n.set(n.get() + 1));
    let end = password
        .char_indices()
        .nth(STRENGTH_PREFIX_CHARS)
        .map_or(password.len(), |(at, _)| at);
    let prefix = password.get(..end).unwrap_or(password);
    let mut inputs = Vec::with_capacity(ctx.other_words.len() + 2);
    inputs.extend(
        [ctx.email, local]
            .into_iter()
            .chain(ctx.other_words.iter().copied()),
    );
    inputs.retain(|word| !word.is_empty());
    u8::from(zxcvbn::zxcvbn(prefix, &inputs).score())
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;
    use std::time::{Duration, Instant};

    use super::*;

    thread_local! {
        /// How many strength estimates ran on this test's thread.
        pub(super) static ESTIMATES: Cell<usize> = const { Cell::new(0) };
    }

    const EMAIL: &str = "margaret.hamilton@example.org";

    fn ctx(mfa_enrolled: bool) -> PasswordContext<'static> {
        PasswordContext {
            mfa_enrolled,
            email: EMAIL,
            other_words: &["Bulwark"],
        }
    }

    fn check(policy: &PasswordPolicy, password: &str, mfa: bool) -> Result<(), Vec<Weakness>> {
        policy.check(&SecretString::from(password), &ctx(mfa))
    }

    fn codes(result: Result<(), Vec<Weakness>>) -> Vec<&'static str> {
        result
            .err()
            .unwrap_or_default()
            .iter()
            .map(Weakness::code)
            .collect()
    }

    #[test]
    fn fifteen_characters_without_mfa_and_eight_with() {
        let policy = PasswordPolicy::default();
        // Random-looking, so only the length rule can object.
        assert_eq!(
            codes(check(&policy, "vK7#qpW2zR9!mTx", false)),
            Vec::<&str>::new()
        );
        assert!(codes(check(&policy, "vK7#qpW2zR9!mT", false)).contains(&"too_short"));
        assert_eq!(check(&policy, "vK7#qpW2zR9!mT", true), Ok(()));
        assert_eq!(check(&policy, "q7!Vz#4k", true), Err(vec![Weakness::Weak]));
        assert_eq!(
            check(&policy, "q7!Vz#4", true).unwrap_err()[0],
            Weakness::TooShort { min: 8 }
        );
        // zxcvbn rates any 8 characters at most 2 (≤ 10^8 guesses), so eight only passes with a
        // lower strength floor.
        let online = PasswordPolicy {
            min_strength: 2,
            ..PasswordPolicy::default()
        };
        assert_eq!(check(&online, "q7!Vz#4k", true), Ok(()));
    }

    #[test]
    fn long_passphrases_are_accepted() {
        let policy = PasswordPolicy::default();
        let words = [
            "quartz", "lantern", "meadow", "velvet", "orbit", "thistle", "copper", "fjord",
        ];
        let phrase = |len: usize| -> String {
            words
                .iter()
                .cycle()
                .flat_map(|w| w.chars().chain(['-']))
                .take(len)
                .collect()
        };
        for len in [64, 128, MAX_PASSWORD_CHARS] {
            assert_eq!(check(&policy, &phrase(len), false), Ok(()), "length {len}");
        }
    }

    #[test]
    fn overlong_is_refused_before_any_estimate() {
        let policy = PasswordPolicy::default();
        let over = "x".repeat(MAX_PASSWORD_CHARS + 1);
        ESTIMATES.with(|n| n.set(0));
        assert_eq!(
            check(&policy, &over, false),
            Err(vec![Weakness::TooLong { max: 256 }])
        );
        let megabyte = "é".repeat(512 * 1024);
        let started = Instant::now();
        assert_eq!(codes(check(&policy, &megabyte, false)), ["too_long"]);
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "{:?}",
            started.elapsed()
        );
        assert_eq!(ESTIMATES.with(Cell::get), 0);
        check(&policy, "vK7#qpW2zR9!mTx", false).unwrap();
        assert_eq!(ESTIMATES.with(Cell::get), 1);
    }

    #[test]
    fn common_and_guessable_passwords_are_refused() {
        let policy = PasswordPolicy::default();
        assert!(codes(check(&policy, "password123456789", false)).contains(&"weak"));
        assert!(codes(check(&policy, "aaaaaaaaaaaaaaaa", false)).contains(&"weak"));
        // On the list, in another case: refused whatever the estimate says.
        let lax = PasswordPolicy {
            min_strength: 0,
            ..PasswordPolicy::default()
        };
        assert_eq!(codes(check(&lax, "1QAZ2WSX3EDC4RFV", false)), ["common"]);
        assert_eq!(codes(check(&lax, "BaseBall", true)), ["common"]);
    }

    #[test]
    fn the_list_loads_lowercase_and_skips_its_header() {
        assert_eq!(COMMON_PASSWORDS.len(), 10_000);
        assert!(
            COMMON_PASSWORDS
                .iter()
                .all(|p| *p == p.to_lowercase() && !p.starts_with('#'))
        );
        assert!(COMMON_PASSWORDS.contains("password") && COMMON_PASSWORDS.contains("pic's"));
    }

    #[test]
    fn nfkc_folds_full_width_onto_the_list() {
        let full_width = SecretString::from("ｐａｓｓｗｏｒｄ１");
        assert_eq!(normalize(&full_width).expose_secret(), "password1");
        let lax = PasswordPolicy {
            min_strength: 0,
            ..PasswordPolicy::default()
        };
        assert_eq!(codes(lax.check(&full_width, &ctx(true))), ["common"]);
        // Composed and decomposed accents normalise alike.
        let composed = normalize(&SecretString::from("caf\u{e9}"));
        let decomposed = normalize(&SecretString::from("cafe\u{301}"));
        assert_eq!(composed.expose_secret(), decomposed.expose_secret());
    }

    #[test]
    fn unicode_passphrases_are_accepted() {
        let policy = PasswordPolicy::default();
        for phrase in [
            "ο γάτος κοιμάται στον ήλιο",
            "猫は日向で静かに眠っている午後",
            "🦊🌲🔥🎻🚲 ράφι 森 violin",
        ] {
            assert!(phrase.chars().count() >= 15);
            assert_eq!(check(&policy, phrase, false), Ok(()), "{phrase}");
        }
    }

    #[test]
    fn composition_is_off_by_default_and_enforced_when_on() {
        let lowercase = "quartz lantern meadow velvet";
        assert_eq!(check(&PasswordPolicy::default(), lowercase, false), Ok(()));
        let strict = PasswordPolicy {
            composition: true,
            ..PasswordPolicy::default()
        };
        assert_eq!(codes(check(&strict, lowercase, false)), ["composition"]);
        assert_eq!(check(&strict, "Quartz lantern 7 meadow!", false), Ok(()));
    }

    #[test]
    fn the_email_local_part_is_refused_in_any_case() {
        let policy = PasswordPolicy::default();
        let result = check(&policy, "Margaret.Hamilton-apollo-guidance", false);
        assert!(codes(result).contains(&"contains_email"));
        let short = PasswordContext {
            mfa_enrolled: false,
            email: "al@example.org",
            other_words: &[],
        };
        let policy = PasswordPolicy {
            min_strength: 0,
            ..PasswordPolicy::default()
        };
        assert_eq!(
            policy.check(&SecretString::from("totally-al-fresco-dinner"), &short),
            Ok(())
        );
    }

    #[test]
    fn weaknesses_never_show_the_password() {
        let secret = "Hamilton";
        let strict = PasswordPolicy {
            composition: true,
            ..PasswordPolicy::default()
        };
        let ctx = PasswordContext {
            mfa_enrolled: false,
            email: "hamilton@x.io",
            other_words: &[],
        };
        let weaknesses = strict.check(&SecretString::from(secret), &ctx).unwrap_err();
        assert!(weaknesses.len() >= 3, "{weaknesses:?}");
        let all = [
            Weakness::TooShort { min: 15 },
            Weakness::TooLong { max: 256 },
            Weakness::Common,
            Weakness::Weak,
            Weakness::ContainsEmail,
            Weakness::Composition,
        ];
        for weakness in weaknesses.iter().chain(&all) {
            for shown in [
                format!("{weakness}"),
                format!("{weakness:?}"),
                weakness.message(),
            ] {
                assert!(!shown.to_lowercase().contains("hamilton"), "{shown}");
            }
        }
        assert_eq!(all.map(|w| w.code()).len(), 6);
    }

    #[test]
    fn validate_names_the_offending_field() {
        assert!(PasswordPolicy::default().validate().is_ok());
        let base = PasswordPolicy::default();
        let cases = [
            (
                PasswordPolicy {
                    min_chars_password_only: 7,
                    ..base.clone()
                },
                "min_chars_password_only",
            ),
            (
                PasswordPolicy {
                    min_chars_with_mfa: 7,
                    ..base.clone()
                },
                "min_chars_with_mfa",
            ),
            (
                PasswordPolicy {
                    max_chars: 63,
                    ..base.clone()
                },
                "max_chars",
            ),
            (
                PasswordPolicy {
                    max_chars: 257,
                    ..base.clone()
                },
                "max_chars",
            ),
            (
                PasswordPolicy {
                    min_chars_with_mfa: 100,
                    max_chars: 64,
                    ..base.clone()
                },
                "min_chars_with_mfa",
            ),
            (
                PasswordPolicy {
                    min_strength: 5,
                    ..base.clone()
                },
                "min_strength",
            ),
        ];
        for (policy, expected) in cases {
            match policy.validate() {
                Err(CoreError::Validation { field, .. }) => assert_eq!(field, expected),
                other => panic!("{expected}: {other:?}"),
            }
        }
    }

    #[test]
    fn deserializes_with_defaults_and_rejects_unknown_keys() {
        let policy: PasswordPolicy = serde_json::from_str(r#"{"composition":true}"#).unwrap();
        assert_eq!(
            policy,
            PasswordPolicy {
                composition: true,
                ..PasswordPolicy::default()
            }
        );
        assert!(serde_json::from_str::<PasswordPolicy>(r#"{"min_length":9}"#).is_err());
    }
}
