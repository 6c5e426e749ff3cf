//! Prefixed identifiers: `org_…`, `usr_…`, `inv_…` wrap a UUIDv7 and render as `prefix_<32 hex>`.
//!
//! A prefix makes an id self-describing in logs and URLs, and parsing rejects an id of the wrong
//! kind (a user id where an org id is expected) before any lookup happens.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use uuid::Uuid;

/// Why a string is not a valid id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    /// The prefix is not the one this id kind expects.
    #[error("expected an id starting with `{expected}_`")]
    WrongPrefix {
        /// The prefix this id kind expects.
        expected: &'static str,
    },
    /// The part after the prefix is not 32 lowercase hex digits.
    #[error("malformed id")]
    Malformed,
}

macro_rules! prefixed_id {
    ($(#[$doc:meta])* $name:ident, $prefix:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(Uuid);

        impl $name {
            /// The prefix in the rendered form, without the underscore.
            pub const PREFIX: &'static str = $prefix;

            /// A new time-ordered id (UUIDv7).
            #[must_use]
            pub fn new() -> Self {
                Self(Uuid::now_v7())
            }

            /// Wraps a UUID read back from storage.
            #[must_use]
            pub const fn from_uuid(uuid: Uuid) -> Self {
                Self(uuid)
            }

            /// The underlying UUID, for storage.
            #[must_use]
            pub const fn as_uuid(&self) -> Uuid {
                self.0
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}_{}", $prefix, self.0.simple())
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(self, f)
            }
        }

        impl FromStr for $name {
            type Err = IdError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                parse_prefixed(s, $prefix).map(Self)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
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

fn parse_prefixed(s: &str, prefix: &'static str) -> Result<Uuid, IdError> {
    let rest = s
        .strip_prefix(prefix)
        .and_then(|r| r.strip_prefix('_'))
        .ok_or(IdError::WrongPrefix { expected: prefix })?;
    let well_formed = rest.len() == 32
        && rest
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if !well_formed {
        return Err(IdError::Malformed);
    }
    Uuid::try_parse(rest).map_err(|_| IdError::Malformed)
}

prefixed_id!(
    /// An organisation (tenant).
    OrgId,
    "org"
);
prefixed_id!(
    /// A human operator account.
    UserId,
    "usr"
);
prefixed_id!(
    /// An audit event.
    EventId,
    "evt"
);
prefixed_id!(
    /// A signed-in session (the id is public; the session token is the secret).
    SessionId,
    "ses"
);
prefixed_id!(
    /// A team within an organisation.
    TeamId,
    "team"
);

prefixed_id!(
    /// An API key's public id (the `<id>` in `bwk_<id>_…` is its 32 hex digits).
    ApiKeyId,
    "key"
);

prefixed_id!(
    /// A credential in an org's vault (the id is public; the value is sealed).
    CredentialId,
    "cred"
);

prefixed_id!(
    /// A webhook endpoint of an org.
    EndpointId,
    "ep"
);

prefixed_id!(
    /// A webhook message (an event to deliver): the `webhook-id` receivers deduplicate on.
    MessageId,
    "msg"
);

prefixed_id!(
    /// One message's delivery to one endpoint (its attempts share it).
    DeliveryId,
    "dlv"
);

prefixed_id!(
    /// An org's single sign-on connection (an OpenID provider or a SAML identity provider).
    ConnectionId,
    "sso"
);

prefixed_id!(
    /// An invitation to join an org (the id is public; the emailed token is the secret).
    InvitationId,
    "inv"
);

/// The id of one HTTP request: a caller-supplied id when well formed, else a fresh UUIDv7.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct RequestId(String);

impl RequestId {
    /// The longest caller-supplied request id we keep.
    pub const MAX_LEN: usize = 128;

    /// Keeps a caller's id only if it is 1–128 characters of `[A-Za-z0-9._:-]`; anything else
    /// (control characters, spaces, quotes, overlong values) is refused so it cannot forge log
    /// lines or headers.
    #[must_use]
    pub fn parse(candidate: &str) -> Option<Self> {
        let ok = !candidate.is_empty()
            && candidate.len() <= Self::MAX_LEN
            && candidate
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'));
        ok.then(|| Self(candidate.to_owned()))
    }

    /// A fresh UUIDv7 request id. Its 74 random bits come from a per-thread generator seeded
    /// once from the OS (a request id must be unique, not secret), so a request costs no system
    /// call for it.
    #[must_use]
    pub fn generate() -> Self {
        let millis = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        let mut random = [0u8; 10];
        let (high, low) = request_id_bits();
        random[..8].copy_from_slice(&high.to_le_bytes());
        random[8..].copy_from_slice(&low.to_le_bytes()[..2]);
        Self(
            uuid::Builder::from_unix_timestamp_millis(millis, &random)
                .into_uuid()
                .to_string(),
        )
    }

    /// The id as text.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Two 64-bit outputs of a per-thread SplitMix64 sequence seeded from the OS on first use.
fn request_id_bits() -> (u64, u64) {
    use std::cell::Cell;
    thread_local! {
        static STATE: Cell<u64> = Cell::new(Uuid::new_v4().as_u64_pair().0);
    }
    fn next(state: &Cell<u64>) -> u64 {
        let s = state.get().wrapping_add(0x9E37_79B9_7F4A_7C15);
        state.set(s);
        let mut z = s;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    STATE.with(|state| (next(state), next(state)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_through_text_and_json() {
        let id = OrgId::new();
        let text = id.to_string();
        assert!(text.starts_with("org_"));
        assert_eq!(text.len(), 4 + 32);
        assert_eq!(text.parse::<OrgId>().unwrap(), id);
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(serde_json::from_str::<OrgId>(&json).unwrap(), id);
    }

    #[test]
    fn an_id_of_another_kind_is_refused() {
        let user = UserId::new().to_string();
        assert_eq!(
            user.parse::<OrgId>(),
            Err(IdError::WrongPrefix { expected: "org" })
        );
    }

    #[test]
    fn invitation_ids_are_prefixed_and_a_bare_uuid_is_refused() {
        let id = InvitationId::new();
        assert!(id.to_string().starts_with("inv_"));
        assert_eq!(id.to_string().parse::<InvitationId>().unwrap(), id);
        assert_eq!(
            id.as_uuid().to_string().parse::<InvitationId>(),
            Err(IdError::WrongPrefix { expected: "inv" })
        );
    }

    #[test]
    fn malformed_ids_are_refused() {
        for bad in [
            "org_",
            "org_xyz",
            "org_0190c3e2-7b1a-7c3d-8e4f-0123456789ab",
            "org_0190C3E27B1A7C3D8E4F0123456789AB",
            "org_0190c3e27b1a7c3d8e4f0123456789ab0",
            "org0190c3e27b1a7c3d8e4f0123456789ab",
        ] {
            assert!(bad.parse::<OrgId>().is_err(), "{bad} must be refused");
        }
    }

    #[test]
    fn request_ids_keep_safe_values_and_refuse_the_rest() {
        assert!(RequestId::parse("abc-123_x.y:z").is_some());
        for bad in ["", "a b", "a\nb", "\"x\"", "ä", &"a".repeat(129)] {
            assert!(RequestId::parse(bad).is_none(), "{bad:?} must be refused");
        }
        assert_eq!(RequestId::generate().as_str().len(), 36);
        let ids: std::collections::HashSet<String> =
            (0..10_000).map(|_| RequestId::generate().0).collect();
        assert_eq!(ids.len(), 10_000, "request ids repeat");
        let id = Uuid::parse_str(RequestId::generate().as_str()).unwrap();
        assert_eq!(id.get_version_num(), 7);
    }
}
