//! What a failed or ended session step leaves behind: the audit draft of a failed sign-in step,
//! the answer for a throttled attempt, and ending a session with its audit event. Below both
//! `session` and `throttle` (which ends a session after too many wrong answers in it), so the
//! two do not depend on each other; `session` re-exports these.

use bulwark_audit::event::{Context, Outcome, Payload, Resource, Result_};
use bulwark_types::Clock;
use time::Duration;

use crate::CoreError;
use crate::audit::{self, Draft, Log};
use crate::model::Session;
use crate::ports::Store;

/// A failed sign-in step (`method`: `password`, `totp`, `backup_code`).
pub(crate) fn failure(method: &str, reason: &str, resource_id: String, context: Context) -> Draft {
    Draft {
        payload: Payload::AuthLoginFailed {
            method: method.into(),
        },
        resource: Resource {
            kind: "user".into(),
            id: resource_id,
        },
        outcome: Outcome {
            result: Result_::Failure,
            reason: Some(reason.into()),
        },
        context,
    }
}

/// The answer for a throttled attempt: at least one second. Every refusal of a secret check
/// while its throttle is closed is made here, and counted.
#[must_use]
pub fn throttled(wait: Duration) -> CoreError {
    crate::metrics::metrics().throttled.inc(&[]);
    let secs = u64::try_from(wait.whole_seconds()).unwrap_or(0);
    let rounded_up = if wait.subsec_nanoseconds() > 0 {
        secs + 1
    } else {
        secs
    };
    CoreError::Throttled {
        retry_after_secs: rounded_up.max(1),
    }
}

/// Ends `session` server-side, recording `auth.session.ended` with `cause` in the same
/// transaction. Ending an already-ended session changes nothing and records nothing.
///
/// # Errors
/// Storage failures.
pub async fn end(
    store: &dyn Store,
    clock: &dyn Clock,
    session: &Session,
    cause: &str,
    context: Context,
) -> Result<bool, CoreError> {
    let mut tx = store.system().await?;
    if !tx.revoke_session(session.id, clock.now()).await? {
        return Ok(false);
    }
    let draft = Draft {
        payload: Payload::AuthSessionEnded {
            session_id: session.id.to_string(),
            cause: cause.into(),
        },
        resource: Resource {
            kind: "session".into(),
            id: session.id.to_string(),
        },
        outcome: Outcome {
            result: Result_::Success,
            reason: None,
        },
        context,
    };
    audit::append(&mut *tx, Log::System, draft, clock).await?;
    tx.commit().await?;
    Ok(true)
}
