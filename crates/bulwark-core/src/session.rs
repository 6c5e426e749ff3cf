//! Signing in and out, and recognising a session on each request.
//!
//! A session token is 256 random bits (`bwsess_…`), handed to the client once (in a cookie) and
//! stored only as its SHA-256. A session ends at the first of: logout (revoked server-side, so
//! every replica refuses it on its next request), the idle timeout since the last request, or
//! the absolute timeout since sign-in.
//!
//! No enumeration: an unknown email is checked against a sentinel hash of the same cost as a
//! real one, and both failures give the same error and the same audit reason.

use bulwark_audit::event::{Actor, ActorKind, Context, Outcome, Payload, Resource, Result_};
use bulwark_crypto::SecretToken;
use bulwark_types::{Clock, Email, SessionId};
use secrecy::{ExposeSecret, SecretString};
use time::{Duration, OffsetDateTime};

use crate::audit::{self, Draft, Log};
use crate::hashing::HashPool;
use crate::model::Session;
use crate::ports::Store;
use crate::setup::MAX_PASSWORD_CHARS;
use crate::{CoreError, StoreError};

/// How often at most a session's `last_seen_at` is written: the idle timeout is exact to this.
pub const TOUCH_EVERY: Duration = Duration::seconds(60);
/// The token prefix.
pub const TOKEN_PREFIX: &str = "bwsess";

/// Session lifetimes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionPolicy {
    /// Ends after this long without a request.
    pub idle: Duration,
    /// Ends this long after sign-in, whatever the activity.
    pub absolute: Duration,
}

impl Default for SessionPolicy {
    fn default() -> Self {
        Self {
            idle: Duration::minutes(30),
            absolute: Duration::hours(12),
        }
    }
}

/// A sign-in attempt.
pub struct LoginInput {
    /// The email given.
    pub email: Email,
    /// The password given.
    pub password: SecretString,
    /// Client address, user agent, request id (the actor is filled in here).
    pub context: Context,
}

/// A new session and its token, to be sent to the client once.
pub struct SignedIn {
    /// The token (secret; shown once, in the cookie).
    pub token: SecretToken,
    /// The stored session.
    pub session: Session,
}

fn failure(reason: &str, resource_id: String, context: Context) -> Draft {
    Draft {
        payload: Payload::AuthLoginFailed {
            method: "password".into(),
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

/// Checks the email and password and, when they match, starts a session. Both the success and
/// the failure are recorded in the system audit log (the success in the same transaction as the
/// new session).
///
/// # Errors
/// `InvalidCredentials` for an unknown email or a wrong password alike; `Validation` for a
/// password over the length limit (refused before hashing); storage and crypto failures.
pub async fn login(
    store: &dyn Store,
    hasher: &HashPool,
    clock: &dyn Clock,
    policy: SessionPolicy,
    input: LoginInput,
) -> Result<SignedIn, CoreError> {
    if input.password.expose_secret().chars().count() > MAX_PASSWORD_CHARS {
        return Err(CoreError::Validation {
            field: "/password",
            message: format!("must be at most {MAX_PASSWORD_CHARS} characters"),
        });
    }
    let user = {
        let mut tx = store.system().await?;
        tx.user_by_email(&input.email).await?
    };
    let matched = hasher
        .verify(
            input.password,
            user.as_ref().map(|u| u.password_hash.clone()),
        )
        .await?;
    let mut context = input.context;
    let user = match user {
        Some(user) if matched => user,
        other => {
            // The same reason for both: the audit log is readable by auditors, and must not
            // become an oracle for which emails have accounts.
            let id = other.map_or_else(|| "unknown".to_owned(), |u| u.id.to_string());
            let mut tx = store.system().await?;
            audit::append(
                &mut *tx,
                Log::System,
                failure("invalid_credentials", id, context),
                clock,
            )
            .await?;
            tx.commit().await?;
            return Err(CoreError::InvalidCredentials);
        }
    };
    let token = SecretToken::generate(TOKEN_PREFIX).map_err(|_| CoreError::Crypto)?;
    let now = clock.now();
    let session = Session {
        id: SessionId::new(),
        token_hash: token.hash(),
        user_id: user.id,
        email: user.email,
        created_at: now,
        last_seen_at: now,
        expires_at: now + policy.absolute,
        revoked_at: None,
        source_ip: context.source_ip.clone(),
        user_agent: context
            .user_agent
            .as_deref()
            .map(|ua| ua.chars().take(500).collect()),
    };
    context.actor = Actor {
        kind: ActorKind::User,
        id: Some(user.id.to_string()),
    };
    let draft = Draft {
        payload: Payload::AuthLoginSucceeded {
            method: "password".into(),
            mfa: false,
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
    let mut tx = store.system().await?;
    tx.create_session(&session).await?;
    audit::append(&mut *tx, Log::System, draft, clock).await?;
    tx.commit().await?;
    Ok(SignedIn { token, session })
}

/// Why a presented session token was refused. Clients all see one `unauthenticated` answer;
/// the reason is for logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// No session has this token.
    Unknown,
    /// The session was revoked.
    Revoked,
    /// The idle timeout passed.
    Idle,
    /// The absolute timeout passed.
    Expired,
}

/// Whether `session` may be used at `now`.
///
/// # Errors
/// The refusal.
pub fn check(session: &Session, policy: SessionPolicy, now: OffsetDateTime) -> Result<(), Refusal> {
    if session.revoked_at.is_some() {
        Err(Refusal::Revoked)
    } else if now >= session.expires_at {
        Err(Refusal::Expired)
    } else if now - session.last_seen_at >= policy.idle {
        Err(Refusal::Idle)
    } else {
        Ok(())
    }
}

/// The live session behind `token`, recording the activity (at most once a minute).
///
/// # Errors
/// `Ok(Err(refusal))` for a token that must be refused; `Err` for storage failures.
pub async fn authenticate(
    store: &dyn Store,
    clock: &dyn Clock,
    policy: SessionPolicy,
    token: &SecretToken,
) -> Result<Result<Session, Refusal>, StoreError> {
    let Some(session) = store.session_by_token(&token.hash()).await? else {
        return Ok(Err(Refusal::Unknown));
    };
    let now = clock.now();
    if let Err(refusal) = check(&session, policy, now) {
        return Ok(Err(refusal));
    }
    if now - session.last_seen_at >= TOUCH_EVERY {
        store.session_touch(session.id, now).await?;
    }
    Ok(Ok(session))
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

#[cfg(test)]
mod tests {
    use super::*;

    fn session(created: OffsetDateTime) -> Session {
        Session {
            id: SessionId::new(),
            token_hash: SecretToken::generate(TOKEN_PREFIX).unwrap().hash(),
            user_id: bulwark_types::UserId::new(),
            email: "a@b.test".parse().unwrap(),
            created_at: created,
            last_seen_at: created,
            expires_at: created + SessionPolicy::default().absolute,
            revoked_at: None,
            source_ip: None,
            user_agent: None,
        }
    }

    #[test]
    fn idle_absolute_and_revoked_sessions_are_refused() {
        let p = SessionPolicy::default();
        let t0 = OffsetDateTime::UNIX_EPOCH + Duration::days(20_000);
        let mut s = session(t0);
        assert_eq!(check(&s, p, t0), Ok(()));
        assert_eq!(check(&s, p, t0 + Duration::minutes(29)), Ok(()));
        assert_eq!(check(&s, p, t0 + Duration::minutes(30)), Err(Refusal::Idle));
        // Activity keeps it alive, but never past the absolute timeout.
        s.last_seen_at = t0 + Duration::hours(11) + Duration::minutes(59);
        assert_eq!(
            check(&s, p, t0 + Duration::hours(11) + Duration::minutes(59)),
            Ok(())
        );
        assert_eq!(
            check(&s, p, t0 + Duration::hours(12)),
            Err(Refusal::Expired)
        );
        s.revoked_at = Some(t0);
        assert_eq!(check(&s, p, t0), Err(Refusal::Revoked));
    }
}
