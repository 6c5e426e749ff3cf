//! Email addresses, normalised so that one mailbox has one spelling.
//!
//! Parsing, in order: trim; NFKC (fullwidth `ｍ` becomes `m`, ligatures split); refuse control,
//! whitespace, invisible (default-ignorable, e.g. zero-width space) and bidirectional control
//! characters; split at the last `@`; the local part keeps its case, the domain goes through IDNA
//! (UTS #46 with STD3 rules and DNS lengths; no label may start or end with a hyphen) to its
//! lower-case ASCII form (`xn--…`).
//! Each part, and each domain label, must then be at most "highly restrictive" in the sense of
//! UTS #39: one script, or Latin with Han/Hiragana/Katakana or Han/Hangul, so `exam`+Cyrillic
//! `р`+`le` is refused while a wholly Cyrillic label is not. Non-ASCII characters of the local
//! part must also be allowed in identifiers (UTS #39 General Security Profile), which excludes
//! symbols, obsolete scripts and the like.
//!
//! Two addresses are the same mailbox when their [`Email::key`]s are equal: the stored form
//! with its local part lower-cased (the domain is lower-case already).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use unicode_normalization::UnicodeNormalization as _;
use unicode_security::{
    GeneralSecurityProfile as _, RestrictionLevel, RestrictionLevelDetection as _,
};

use super::ValueError;

/// An email address in its normal form: NFKC, no invisible or bidirectional control characters,
/// the domain in lower-case ASCII (IDNA), no mixed-script confusables. The local part keeps the
/// case it was given; compare addresses by [`Email::key`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Email(String);

string_value!(Email, parse_email);

impl Email {
    /// The part before the `@`, as given (after NFKC).
    #[must_use]
    pub fn local(&self) -> &str {
        self.0.rsplit_once('@').map_or("", |(local, _)| local)
    }

    /// The domain, in lower-case ASCII (`xn--…` for internationalised labels).
    #[must_use]
    pub fn domain(&self) -> &str {
        self.0.rsplit_once('@').map_or("", |(_, domain)| domain)
    }

    /// An address read back from storage, kept as stored. It passed the parser of the release
    /// that wrote it; releases before this one kept non-ASCII spellings that this one normalises
    /// or refuses, and the stores re-key the ones it normalises when they open. Never for input:
    /// whatever crosses a trust boundary is parsed.
    #[must_use]
    pub fn from_stored(stored: String) -> Self {
        Self(stored)
    }

    /// The comparison key: the address with its local part lower-cased. Accounts, invitations
    /// and sign-in throttling are keyed by it, so `Ada@x.example` and `ada@x.example` are one
    /// mailbox.
    #[must_use]
    pub fn key(&self) -> String {
        format!("{}@{}", self.local().to_lowercase(), self.domain())
    }
}

fn parse_email(s: &str) -> Result<String, ValueError> {
    let s: String = s.trim().nfkc().collect();
    if s.chars()
        .any(|c| c.is_control() || c.is_whitespace() || is_invisible(c))
    {
        return Err(ValueError::EmailInvisible);
    }
    let (local, domain) = s.rsplit_once('@').ok_or(ValueError::Email)?;
    let local_ok = !local.is_empty() && local.len() <= 64 && !local.contains('@');
    if !local_ok {
        return Err(ValueError::Email);
    }
    if !local
        .chars()
        .all(|c| c.is_ascii() || c.identifier_allowed())
        || !single_script(local)
    {
        return Err(ValueError::EmailScript);
    }
    let domain = ascii_domain(domain)?;
    let out = format!("{local}@{domain}");
    if out.len() > 254 {
        return Err(ValueError::Email);
    }
    Ok(out)
}

/// The domain's lower-case ASCII form, after checking its structure and each label's scripts.
fn ascii_domain(domain: &str) -> Result<String, ValueError> {
    let ascii = idna::uts46::Uts46::new()
        .to_ascii(
            domain.as_bytes(),
            idna::uts46::AsciiDenyList::STD3,
            idna::uts46::Hyphens::Allow,
            idna::uts46::DnsLength::Verify,
        )
        .map_err(|_| ValueError::EmailDomain)?
        .into_owned();
    let structure_ok = ascii.len() <= 253
        && ascii.contains('.')
        && ascii.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        });
    if !structure_ok {
        return Err(ValueError::Email);
    }
    let (unicode, checked) = idna::domain_to_unicode(&ascii);
    checked.map_err(|_| ValueError::EmailDomain)?;
    if !unicode.split('.').all(single_script) {
        return Err(ValueError::EmailScript);
    }
    Ok(ascii)
}

/// Whether `part` (a local part or one domain label) is at most "highly restrictive" (UTS #39):
/// ASCII punctuation, which belongs to no script, is left out of the count.
fn single_script(part: &str) -> bool {
    let letters: String = part.chars().filter(|c| !c.is_ascii_punctuation()).collect();
    letters
        .as_str()
        .check_restriction_level(RestrictionLevel::HighlyRestrictive)
}

/// Default-ignorable code points (Unicode `DerivedCoreProperties.txt`), which render as nothing:
/// zero-width spaces and joiners, the bidirectional controls (marks, embeddings, overrides,
/// isolates), variation selectors, the soft hyphen, Hangul fillers, tags. Other format
/// characters are refused by the identifier check or by IDNA.
const fn is_invisible(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}'
            | '\u{034F}'
            | '\u{061C}'
            | '\u{115F}'..='\u{1160}'
            | '\u{17B4}'..='\u{17B5}'
            | '\u{180B}'..='\u{180F}'
            | '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{206F}'
            | '\u{3164}'
            | '\u{FE00}'..='\u{FE0F}'
            | '\u{FEFF}'
            | '\u{FFA0}'
            | '\u{FFF0}'..='\u{FFF8}'
            | '\u{1BCA0}'..='\u{1BCA3}'
            | '\u{1D173}'..='\u{1D17A}'
            | '\u{E0000}'..='\u{E0FFF}'
    )
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn email(s: &str) -> Result<Email, ValueError> {
        s.parse()
    }

    #[test]
    fn emails_are_normalised_and_checked() {
        let e = email("  Ada.Lovelace@Example.COM ").unwrap();
        assert_eq!(e.as_str(), "Ada.Lovelace@example.com");
        assert_eq!(e.key(), "ada.lovelace@example.com");
        assert_eq!(
            email("a+tag_x@b.example").unwrap().as_str(),
            "a+tag_x@b.example"
        );
        for bad in [
            "",
            "a",
            "a@",
            "@b.c",
            "a@b",
            "a b@c.d",
            "a@-b.c",
            "a@b..c",
            "a\n@b.c",
            "a@b_c.d",
            "a@b.c.",
            "a@b-.example",
        ] {
            assert!(bad.parse::<Email>().is_err(), "{bad:?} must be refused");
        }
    }

    /// The three spellings from the review, next to `memberB@b.example`.
    #[test]
    fn lookalikes_of_an_address_are_refused_or_become_it() {
        let real = email("memberB@b.example").unwrap();
        let fullwidth = email("\u{FF4D}emberB@b.example").unwrap();
        assert_eq!(fullwidth, real);
        assert_eq!(fullwidth.key(), real.key());
        let fullwidth_domain = email("memberB@\u{FF42}.example").unwrap();
        assert_eq!(fullwidth_domain, real);
        assert_eq!(
            email("member\u{200B}B@b.example"),
            Err(ValueError::EmailInvisible)
        );
        assert_eq!(
            email("memberB@b.exam\u{0440}le"),
            Err(ValueError::EmailScript)
        );
    }

    #[test]
    fn invisible_and_bidi_characters_are_refused() {
        for c in [
            '\u{200B}',
            '\u{200C}',
            '\u{200D}',
            '\u{2060}',
            '\u{FEFF}',
            '\u{00AD}',
            '\u{200E}',
            '\u{200F}',
            '\u{202A}',
            '\u{202E}',
            '\u{2066}',
            '\u{2069}',
            '\u{061C}',
            '\u{FE0F}',
            '\u{E0041}',
            '\u{0007}',
        ] {
            for s in [format!("ab{c}c@b.example"), format!("abc@b{c}x.example")] {
                assert_eq!(email(&s), Err(ValueError::EmailInvisible), "{s:?}");
            }
        }
    }

    #[test]
    fn domains_are_idna_encoded_and_scripts_checked() {
        let e = email("José@Bücher.Example").unwrap();
        assert_eq!(e.as_str(), "José@xn--bcher-kva.example");
        assert_eq!(e.key(), "josé@xn--bcher-kva.example");
        // Entered already encoded, it is the same address.
        assert_eq!(email("josé@xn--bcher-kva.example").unwrap().key(), e.key());
        // NFD and NFC spell one address.
        assert_eq!(email("Jose\u{301}@bücher.example").unwrap(), e);
        // A wholly Cyrillic label, and a wholly Cyrillic address, are one script each.
        assert_eq!(
            email("user@\u{043f}\u{0440}\u{0438}\u{043c}\u{0435}\u{0440}.example")
                .unwrap()
                .domain(),
            "xn--e1afmkfd.example"
        );
        assert!(email("\u{0438}\u{0432}\u{0430}\u{043d}@\u{043f}\u{0440}\u{0438}\u{043c}\u{0435}\u{0440}.\u{0440}\u{0444}").is_ok());
        // Latin with Japanese scripts is "highly restrictive", and allowed.
        assert!(email("tanaka\u{5C71}\u{7530}@example.jp").is_ok());
        // Latin mixed with Cyrillic or Greek in one part is not, wherever it is.
        for bad in [
            "p\u{0430}ypal@b.example",
            "a@p\u{0430}ypal.example",
            "a@xn--pypal-4ve.example",
            "\u{03BF}mega@b.example",
        ] {
            assert_eq!(email(bad), Err(ValueError::EmailScript), "{bad:?}");
        }
        // Symbols are not identifier characters.
        assert_eq!(
            email("snow\u{2603}@b.example"),
            Err(ValueError::EmailScript)
        );
        // An invalid punycode label is not a domain.
        assert_eq!(email("a@xn--a.example"), Err(ValueError::EmailDomain));
    }

    #[test]
    fn lengths_are_checked_after_normalisation() {
        assert!(email(&format!("{}@b.example", "a".repeat(64))).is_ok());
        assert!(email(&format!("{}@b.example", "a".repeat(65))).is_err());
        // Each fullwidth letter is three bytes; NFKC makes it one.
        assert!(email(&format!("{}@b.example", "\u{FF41}".repeat(64))).is_ok());
    }

    proptest! {
        #[test]
        fn normalisation_is_idempotent(s in "[ -~\u{a0}-\u{2fff}\u{ff00}-\u{ffef}]{1,12}@[a-zA-Z0-9\u{e0}-\u{24f}\u{400}-\u{44f}\u{ff41}-\u{ff5a}.-]{1,20}") {
            if let Ok(once) = email(&s) {
                let twice = email(once.as_str());
                prop_assert_eq!(twice.as_ref(), Ok(&once));
                prop_assert_eq!(twice.map(|e| e.key()), Ok(once.key()));
            }
        }

        #[test]
        fn plain_ascii_addresses_keep_their_spelling(local in "[A-Za-z0-9][A-Za-z0-9._+-]{0,20}", domain in "[a-z][a-z0-9]{0,10}\\.[a-z]{2,6}") {
            let s = format!("{local}@{domain}");
            let parsed = email(&s);
            prop_assert_eq!(parsed.map(|e| e.as_str().to_owned()), Ok(s));
        }
    }
}
