//! Typed, prefixed identifiers and parsed value types ("parse, don't validate").
//!
//! Every value that crosses a trust boundary is parsed once into one of these types; code past the
//! boundary never re-checks it. Nothing here performs I/O.

mod id;
mod value;

pub use id::{IdError, OrgId, RequestId, UserId};
pub use value::{Email, OrgName, Role, Slug, ValueError};

/// A source of the current time, so services and tests can agree on "now".
pub trait Clock: Send + Sync {
    /// The current UTC time.
    fn now(&self) -> time::OffsetDateTime;
}

/// The real clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> time::OffsetDateTime {
        time::OffsetDateTime::now_utc()
    }
}
