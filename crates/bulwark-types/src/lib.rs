//! Typed, prefixed identifiers and parsed value types ("parse, don't validate").
//!
//! Every value that crosses a trust boundary is parsed once into one of these types; code past the
//! boundary never re-checks it. Nothing here performs I/O.

mod id;
pub mod redact;
mod value;

pub use id::{
    ApiKeyId, ConnectionId, CredentialId, DeliveryId, EndpointId, EventId, IdError, InvitationId,
    MessageId, OrgId, RequestId, SessionId, TeamId, UserId,
};
pub use value::{Email, OrgName, PLAIN_TEXT_PATTERN, Role, Slug, ValueError, is_plain_text};

/// A source of the current time, so services and tests can agree on "now".
pub trait Clock: Send + Sync {
    /// The current UTC time.
    fn now(&self) -> time::OffsetDateTime;
}

/// The real clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    /// Truncated to whole microseconds, the precision both storage engines keep, so a record
    /// read back equals the one written.
    fn now(&self) -> time::OffsetDateTime {
        let now = time::OffsetDateTime::now_utc();
        now.replace_nanosecond(now.nanosecond() / 1_000 * 1_000)
            .unwrap_or(now)
    }
}
