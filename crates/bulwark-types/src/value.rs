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
    /// Not a valid slug.
    #[error(
        "must be 3–63 characters of lowercase letters, digits and single hyphens, starting with a letter"
    )]
    Slug,
    /// Not a valid organisation name.
    #[error("must be 1–200 characters with no control characters")]
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

/// An email address, trimmed and with its domain lowercased. Deliberately permissive in the local
/// part (RFC 5321 allows much); strict about structure and length.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Email(String);

fn parse_email(s: &str) -> Result<String, ValueError> {
    let s = s.trim();
    let (local, domain) = s.rsplit_once('@').ok_or(ValueError::Email)?;
    let local_ok = !local.is_empty()
        && local.len() <= 64
        && !local.contains('@')
        && local.chars().all(|c| !c.is_control() && !c.is_whitespace());
    let domain_ok = domain.len() <= 253
        && domain.contains('.')
        && domain.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_alphanumeric() || c == '-')
        });
    if !(local_ok && domain_ok && s.len() <= 254) {
        return Err(ValueError::Email);
    }
    Ok(format!("{local}@{}", domain.to_lowercase()))
}
string_value!(Email, parse_email);

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

fn parse_org_name(s: &str) -> Result<String, ValueError> {
    let s = s.trim();
    let ok = !s.is_empty() && s.chars().count() <= 200 && !s.chars().any(char::is_control);
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
    fn emails_are_normalised_and_checked() {
        let e: Email = "  Ada.Lovelace@Example.COM ".parse().unwrap();
        assert_eq!(e.as_str(), "Ada.Lovelace@example.com");
        for bad in [
            "", "a", "a@", "@b.c", "a@b", "a b@c.d", "a@-b.c", "a@b..c", "a\n@b.c",
        ] {
            assert!(bad.parse::<Email>().is_err(), "{bad:?} must be refused");
        }
    }

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
    fn org_names_refuse_control_characters() {
        assert!("Acme\u{0}".parse::<OrgName>().is_err());
        assert!("   ".parse::<OrgName>().is_err());
        assert_eq!("  Acme ".parse::<OrgName>().unwrap().as_str(), "Acme");
    }

    #[test]
    fn roles_parse_from_their_names_only() {
        for r in [Role::Owner, Role::Admin, Role::Member, Role::Auditor] {
            assert_eq!(r.as_str().parse::<Role>().unwrap(), r);
        }
        assert!("Owner".parse::<Role>().is_err());
    }
}
