//! Parsed value types: an instance of one of these is valid by construction.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Why a value was refused. Messages are written for the person who typed the value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValueError {
    /// Not a plausible email address.
    #[error("not a valid email address")]
    Email,
    /// An email address with a control, invisible (zero-width, default-ignorable) or
    /// bidirectional control character.
    #[error("must not contain control, invisible or bidirectional formatting characters")]
    EmailInvisible,
    /// An email address whose domain is not a valid (internationalised) domain name.
    #[error("the domain is not a valid domain name")]
    EmailDomain,
    /// An email address mixing scripts that can look alike within one part, or using symbols.
    #[error(
        "mixes scripts that look alike (such as Latin and Cyrillic) in one part, or uses symbols"
    )]
    EmailScript,
    /// Not a valid slug.
    #[error(
        "must be 3–63 characters of lowercase letters, digits and single hyphens, starting with a letter"
    )]
    Slug,
    /// Not a valid organisation name.
    #[error("must be 1–200 characters, with no control characters and no space at either end")]
    OrgName,
    /// Not one of the known roles.
    #[error("must be one of `owner`, `admin`, `member`, `auditor`")]
    Role,
}

macro_rules! string_value {
    ($name:ident, $parse:path) => {
        impl $name {
            /// The value as text.
            #[must_use]
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl FromStr for $name {
            type Err = ValueError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                $parse(s).map(Self)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

mod email;
pub use email::Email;

/// A URL-safe short name: `[a-z][a-z0-9-]{2,62}`, no double or trailing hyphen.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Slug(String);

fn parse_slug(s: &str) -> Result<String, ValueError> {
    let b = s.as_bytes();
    let ok = (3..=63).contains(&b.len())
        && b.first().is_some_and(u8::is_ascii_lowercase)
        && b.last().is_some_and(|c| *c != b'-')
        && !s.contains("--")
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-');
    if ok {
        Ok(s.to_owned())
    } else {
        Err(ValueError::Slug)
    }
}
string_value!(Slug, parse_slug);

impl Slug {
    /// Derives a slug from a display name (`"Acme Corp."` → `acme-corp`), if one can be made.
    #[must_use]
    pub fn from_name(name: &str) -> Option<Self> {
        let mut out = String::new();
        for c in name.chars().flat_map(char::to_lowercase) {
            if c.is_ascii_alphanumeric() {
                out.push(c);
            } else if !out.is_empty() && !out.ends_with('-') {
                out.push('-');
            }
        }
        let trimmed: String = out.trim_end_matches('-').chars().take(63).collect();
        trimmed.trim_end_matches('-').parse().ok()
    }
}

/// An organisation's display name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct OrgName(String);

/// A name or label people type: 1 to `max` characters, no control characters, and no white
/// space at either end (refused rather than trimmed, so that the value stored is the value sent
/// and the API description can state the rule exactly: [`PLAIN_TEXT_PATTERN`]).
#[must_use]
pub fn is_plain_text(s: &str, max: usize) -> bool {
    let count = s.chars().count();
    (1..=max).contains(&count) && !s.chars().any(char::is_control) && s.trim() == s
}

/// [`is_plain_text`] as an ECMA-262 regular expression for the API description (with its
/// `maxLength`).
pub const PLAIN_TEXT_PATTERN: &str =
    r"^[^\s\x00-\x1f\x7f-\x9f](?:[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f])?$";

fn parse_org_name(s: &str) -> Result<String, ValueError> {
    let ok = is_plain_text(s, 200);
    if ok {
        Ok(s.to_owned())
    } else {
        Err(ValueError::OrgName)
    }
}
string_value!(OrgName, parse_org_name);

/// A member's role in an organisation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Full control, including ownership transfer.
    Owner,
    /// Manages members and settings.
    Admin,
    /// Uses the product.
    Member,
    /// Read-only, including the audit log.
    Auditor,
}

impl Role {
    /// The stored and rendered name.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Owner => "owner",
            Self::Admin => "admin",
            Self::Member => "member",
            Self::Auditor => "auditor",
        }
    }
}

impl FromStr for Role {
    type Err = ValueError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "owner" => Ok(Self::Owner),
            "admin" => Ok(Self::Admin),
            "member" => Ok(Self::Member),
            "auditor" => Ok(Self::Auditor),
            _ => Err(ValueError::Role),
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_follow_the_rules() {
        assert!("acme".parse::<Slug>().is_ok());
        assert!("acme-2".parse::<Slug>().is_ok());
        for bad in [
            "ab",
            "1acme",
            "acme-",
            "ac--me",
            "Acme",
            "ac_me",
            &"a".repeat(64),
        ] {
            assert!(bad.parse::<Slug>().is_err(), "{bad:?} must be refused");
        }
        assert_eq!(Slug::from_name("Acme Corp.").unwrap().as_str(), "acme-corp");
        assert!(Slug::from_name("!!").is_none());
    }

    #[test]
    fn plain_text_is_refused_not_trimmed_at_either_end() {
        for ok in ["a", "ops team", "Équipe 7", &"x".repeat(100)] {
            assert!(is_plain_text(ok, 100), "{ok:?}");
        }
        for bad in [
            "",
            " ops",
            "ops ",
            "\u{a0}ops",
            "o\tps",
            "o\u{85}ps",
            &"x".repeat(101),
        ] {
            assert!(!is_plain_text(bad, 100), "{bad:?} must be refused");
        }
        assert!(" Acme".parse::<OrgName>().is_err());
    }

    #[test]
    fn org_names_refuse_control_characters() {
        assert!("Acme\u{0}".parse::<OrgName>().is_err());
        assert!("   ".parse::<OrgName>().is_err());
        assert!("  Acme ".parse::<OrgName>().is_err());
        assert_eq!(
            "Acme Corp".parse::<OrgName>().unwrap().as_str(),
            "Acme Corp"
        );
    }

    #[test]
    fn roles_parse_from_their_names_only() {
        for r in [Role::Owner, Role::Admin, Role::Member, Role::Auditor] {
            assert_eq!(r.as_str().parse::<Role>().unwrap(), r);
        }
        assert!("Owner".parse::<Role>().is_err());
    }
}
