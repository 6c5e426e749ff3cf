//! Signing in and out, and recognising a session on each request.
//!
//! A session token is 256 random bits (`bwsess_…`), handed to the client once (in a cookie) and
//! stored only as its SHA-256. A session ends at the first of: logout (revoked server-side, so
//! every replica refuses it on its next request), the idle timeout since the last request, or
//! the absolute timeout since sign-in.
//!
//! No enumeration: an unknown email is checked against a sentinel hash of the same cost as a
//! real one, and both failures give the same error and the same audit reason.

use bulwark_audit::event::{Actor, ActorKind, Context, Payload};
use bulwark_crypto::SecretToken;
use bulwark_types::{Clock, Email, SessionId, UserId};
use secrecy::{ExposeSecret, SecretString};
use time::{Duration, OffsetDateTime};

use crate::audit::{self, Draft, Log};
use crate::hashing::HashPool;
use crate::model::{Session, SessionStage, User};
use crate::password_policy::MAX_PASSWORD_CHARS;
use crate::ports::{Store, SystemTx};
use crate::session_cache::SessionCache;
pub(crate) use crate::session_end::failure;
pub use crate::session_end::{end, throttled};
use crate::throttle::{self, Attempt, Keys, ThrottlePolicy};
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

impl SessionPolicy {
    /// This policy tightened by an org's own timeouts (an org can shorten, never lengthen).
    #[must_use]
    pub fn within(self, org: &crate::model::OrgPolicy) -> Self {
        let secs = |v: Option<u32>| v.map(|s| Duration::seconds(i64::from(s)));
        Self {
            idle: secs(org.session_idle_secs).map_or(self.idle, |d| d.min(self.idle)),
            absolute: secs(org.session_absolute_secs)
                .map_or(self.absolute, |d| d.min(self.absolute)),
        }
    }
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

/// How long a session that still owes its second factor lives.
pub const MFA_PENDING_FOR: Duration = Duration::minutes(5);

/// Checks the email and password and, when they match, starts a session: an active one, or,
/// when the user has enrolled a second factor, one that can only complete it
/// ([`SessionStage::MfaPending`]). Every outcome is recorded in the system audit log (a success
/// in the same transaction as the new session).
///
/// # Errors
/// `Throttled` while the account or address must wait (checked before any hashing);
/// `InvalidCredentials` for an unknown email, a wrong password or a disabled account alike;
/// `Validation` for a password over the length limit (refused before hashing); storage and
/// crypto failures.
pub async fn login(
    store: &dyn Store,
    hasher: &HashPool,
    clock: &dyn Clock,
    policy: SessionPolicy,
    throttle: &ThrottlePolicy,
    input: LoginInput,
) -> Result<SignedIn, CoreError> {
    // Normalised first, then capped, exactly as when the password was set.
    let password = normalize(&input.password);
    if password.expose_secret().chars().count() > MAX_PASSWORD_CHARS {
        return Err(CoreError::Validation {
            field: "/password",
            message: format!("must be at most {MAX_PASSWORD_CHARS} characters"),
        });
    }
    let keys = Keys::new(&input.email, input.context.source_ip.as_deref());
    let attempt = Attempt {
        keys,
        session: None,
        method: "password",
        subject: "unknown".into(),
        context: input.context.clone(),
    };
    let checked = async {
        let user = check_password(store, hasher, clock, &input, password.clone()).await?;
        let mut tx = store.system().await?;
        let second_factor = tx.totp(user.id).await?.is_some_and(|t| t.is_enabled());
        Ok((user, second_factor))
    };
    // A right password clears the account's count only when it completes the sign-in: with a
    // second factor, the code does (`mfa::verify_login`).
    let (user, mfa) =
        throttle::guard_then(store, clock, throttle, attempt, checked, |(_, mfa)| !*mfa).await?;
    let mut context = input.context;
    sso_rule(store, clock, &user, &context).await?;
    let rehashed = if user.password_hash.needs_rehash(hasher.params()) {
        Some(hasher.hash(password).await?)
    } else {
        None
    };
    context.actor = Actor {
        kind: ActorKind::User,
        id: Some(user.id.to_string()),
    };
    let mut tx = store.system().await?;
    let now = clock.now();
    let (stage, lifetime) = if mfa {
        (
            SessionStage::MfaPending,
            MFA_PENDING_FOR.min(policy.absolute),
        )
    } else {
        (SessionStage::Active, policy.absolute)
    };
    let (token, session) = new_session(&user, stage, None, now, lifetime, &context)?;
    if let Some(hash) = rehashed {
        // Parameters were raised since this hash was made: store a fresh one now that the
        // password is known. Same transaction as the session, so both or neither.
        let mut upgraded = user.clone();
        upgraded.password_hash = hash;
        tx.update_user(&upgraded).await?;
    }
    tx.create_session(&session).await?;
    crate::metrics::signin(
        "password",
        if mfa {
            "second_factor_required"
        } else {
            "success"
        },
    );
    let payload = if mfa {
        Payload::AuthMfaChallenged {
            method: "totp".into(),
        }
    } else {
        Payload::AuthLoginSucceeded {
            method: "password".into(),
            mfa: false,
        }
    };
    let draft = success(payload, &session, context);
    audit::append(&mut *tx, Log::System, draft.clone(), clock).await?;
    tx.commit().await?;
    if !mfa {
        audit::to_member_orgs(store, clock, user.id, draft).await?;
    }
    Ok(SignedIn { token, session })
}

/// Records an owner's password sign-in as `sso.break_glass` in every org of theirs that
/// requires single sign-on: the org's routes accept such a session only from an owner, and only
/// once it passed a second factor (`authz::authorize`); members are refused there, not here, so
/// a password still works for their other orgs.
async fn sso_rule(
    store: &dyn Store,
    clock: &dyn Clock,
    user: &User,
    context: &Context,
) -> Result<(), CoreError> {
    let mut actor = context.clone();
    actor.actor = Actor {
        kind: ActorKind::User,
        id: Some(user.id.to_string()),
    };
    for (org, role) in store.user_orgs(user.id).await? {
        if role != bulwark_types::Role::Owner {
            continue;
        }
        let mut read = store.org_read(org.id).await?;
        if !read.sso_settings().await?.sso_required {
            continue;
        }
        drop(read);
        let draft = Draft::success(
            Payload::SsoBreakGlass {
                user_id: user.id.to_string(),
            },
            "user",
            user.id.to_string(),
            actor.clone(),
        );
        let mut tx = store.org(org.id).await?;
        audit::append(&mut *tx, Log::Org(org.id), draft, clock).await?;
        tx.commit().await?;
    }
    Ok(())
}

/// The user whose email and password `input` names, if the password is right and the account
/// enabled; every refusal is recorded in the system audit log with one reason for an unknown
/// email and a wrong password, so the log is no oracle for which emails have accounts.
async fn check_password(
    store: &dyn Store,
    hasher: &HashPool,
    clock: &dyn Clock,
    input: &LoginInput,
    password: SecretString,
) -> Result<User, CoreError> {
    let user = {
        let mut tx = store.system().await?;
        tx.user_by_email(&input.email).await?
    };
    let matched = hasher
        .verify(password, user.as_ref().map(|u| u.password_hash.clone()))
        .await?;
    let (id, reason) = match user {
        Some(user) if matched && user.disabled_at.is_none() => return Ok(user),
        Some(u) if matched => (u.id.to_string(), "account_disabled"),
        Some(u) => (u.id.to_string(), "invalid_credentials"),
        None => ("unknown".to_owned(), "invalid_credentials"),
    };
    crate::metrics::signin("password", "failure");
    // INVARIANT: a wrong password costs the same work for a known account as for an unknown
    // email, so it is recorded in the system log only: copying it into the account's orgs'
    // logs would make known accounts answer later (a timing oracle).
    let mut tx = store.system().await?;
    let draft = failure("password", reason, id, input.context.clone());
    audit::append(&mut *tx, Log::System, draft, clock).await?;
    tx.commit().await?;
    Err(CoreError::InvalidCredentials)
}

/// Ends `current` and starts a new active session for `user` in the same transaction (after a
/// step that changes what protects the account: the old session id is worth nothing after it).
pub(crate) async fn rotate(
    tx: &mut dyn SystemTx,
    clock: &dyn Clock,
    policy: SessionPolicy,
    current: &Session,
    user: &User,
    mfa_at: Option<time::OffsetDateTime>,
    context: &Context,
) -> Result<SignedIn, CoreError> {
    let now = clock.now();
    if !tx.revoke_session(current.id, now).await? {
        // A concurrent request already used this session for the same step.
        return Err(CoreError::InvalidCode);
    }
    let (token, session) = new_session(
        user,
        SessionStage::Active,
        mfa_at.or(current.mfa_at),
        now,
        policy.absolute,
        context,
    )?;
    tx.create_session(&session).await?;
    // A session made by a single sign-on stays known as such (the provider's logout ends it).
    tx.carry_sso_session(current.id, session.id).await?;
    Ok(SignedIn { token, session })
}

/// A new session for `user` and its token.
pub(crate) fn new_session(
    user: &User,
    stage: SessionStage,
    mfa_at: Option<OffsetDateTime>,
    now: OffsetDateTime,
    lifetime: Duration,
    context: &Context,
) -> Result<(SecretToken, Session), CoreError> {
    let token = SecretToken::generate(TOKEN_PREFIX).map_err(|_| CoreError::Crypto)?;
    let session = Session {
        id: SessionId::new(),
        token_hash: token.hash(),
        user_id: user.id,
        email: user.email.clone(),
        created_at: now,
        last_seen_at: now,
        expires_at: now + lifetime,
        revoked_at: None,
        source_ip: context.source_ip.clone(),
        user_agent: context
            .user_agent
            .as_deref()
            .map(|ua| ua.chars().take(500).collect()),
        stage,
        mfa_at,
        user_disabled: false,
    };
    Ok((token, session))
}

/// A successful step on `session`.
pub(crate) fn success(payload: Payload, session: &Session, context: Context) -> Draft {
    Draft::success(payload, "session", session.id.to_string(), context)
}

/// Passwords are compared and stored in Unicode NFKC form, so the same password typed on
/// different keyboards (full-width, composed or decomposed accents) matches.
#[must_use]
pub fn normalize(password: &SecretString) -> SecretString {
    crate::password_policy::normalize(password)
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
    /// The user's account is disabled.
    Disabled,
}

/// Whether `session` may be used at `now`.
///
/// # Errors
/// The refusal.
pub fn check(session: &Session, policy: SessionPolicy, now: OffsetDateTime) -> Result<(), Refusal> {
    if session.revoked_at.is_some() {
        Err(Refusal::Revoked)
    } else if session.user_disabled {
        Err(Refusal::Disabled)
    } else if now >= session.expires_at || now - session.created_at >= policy.absolute {
        // `expires_at` holds the deployment's lifetime from sign-in; an org's shorter one
        // (or a lowered deployment setting) counts from the same moment.
        Err(Refusal::Expired)
    } else if now - session.last_seen_at >= policy.idle {
        Err(Refusal::Idle)
    } else {
        Ok(())
    }
}

/// The live session behind `token`, recording the activity (at most once a minute). A session
/// accepted within the cache's TTL, with no session change committed since, is answered from
/// `cache`; anything else, and every refusal, from a fresh read.
///
/// # Errors
/// `Ok(Err(refusal))` for a token that must be refused; `Err` for storage failures.
pub async fn authenticate(
    store: &dyn Store,
    clock: &dyn Clock,
    policy: SessionPolicy,
    cache: &SessionCache,
    token: &SecretToken,
) -> Result<Result<Session, Refusal>, StoreError> {
    let hash = token.hash();
    let now = clock.now();
    // Read before the row: a change committed after this point moves it and voids the entry.
    let epoch = store.session_epoch();
    let cached = cache
        .session(&hash, epoch)
        .filter(|s| check(s, policy, now).is_ok());
    let mut session = match cached {
        Some(s) => s,
        None => {
            let Some(session) = store.session_by_token(&hash).await? else {
                cache.forget(&hash);
                return Ok(Err(Refusal::Unknown));
            };
            if let Err(refusal) = check(&session, policy, now) {
                cache.forget(&hash);
                return Ok(Err(refusal));
            }
            cache.accept(&session, epoch);
            session
        }
    };
    if now - session.last_seen_at >= TOUCH_EVERY {
        store.session_touch(session.id, now).await?;
        session.last_seen_at = now;
        cache.touched(&session);
    }
    Ok(Ok(session))
}

/// The user's live sessions, newest first.
///
/// # Errors
/// Storage failures.
pub async fn list(
    store: &dyn Store,
    clock: &dyn Clock,
    policy: SessionPolicy,
    user: UserId,
) -> Result<Vec<Session>, CoreError> {
    let now = clock.now();
    let mut tx = store.system().await?;
    let sessions = tx.user_sessions(user, now).await?;
    Ok(sessions
        .into_iter()
        .filter(|s| check(s, policy, now).is_ok())
        .collect())
}

/// Ends one of `user`'s own sessions by id.
///
/// # Errors
/// `NotFound` when `id` is not a live session of `user` (another user's looks the same);
/// storage failures.
pub async fn revoke_own(
    store: &dyn Store,
    clock: &dyn Clock,
    user: UserId,
    id: SessionId,
    context: Context,
) -> Result<(), CoreError> {
    let target = {
        let mut tx = store.system().await?;
        tx.user_sessions(user, clock.now())
            .await?
            .into_iter()
            .find(|s| s.id == id)
            .ok_or(CoreError::NotFound)?
    };
    if end(store, clock, &target, "revoked_by_user", context).await? {
        Ok(())
    } else {
        Err(CoreError::NotFound)
    }
}

/// Ends every session of `user` but `current`, at the user's own request (after they proved
/// a factor again): `auth.sessions.revoked` with cause `revoked_by_user`; returns how many
/// ended.
///
/// # Errors
/// Storage failures.
pub async fn revoke_others(
    store: &dyn Store,
    clock: &dyn Clock,
    user: UserId,
    current: SessionId,
    context: Context,
) -> Result<u64, CoreError> {
    let mut tx = store.system().await?;
    let count = revoke_all(
        &mut *tx,
        clock,
        user,
        Some(current),
        "revoked_by_user",
        context,
    )
    .await?;
    tx.commit().await?;
    Ok(count)
}

/// Revokes every session of `user` but `except`, recording `auth.sessions.revoked` with
/// `cause` in the same transaction; returns how many ended.
///
/// # Errors
/// Storage failures.
pub async fn revoke_all(
    tx: &mut dyn crate::ports::SystemTx,
    clock: &dyn Clock,
    user: UserId,
    except: Option<SessionId>,
    cause: &str,
    context: Context,
) -> Result<u64, CoreError> {
    let count = tx.revoke_user_sessions(user, except, clock.now()).await?;
    let payload = Payload::AuthSessionsRevoked {
        user_id: user.to_string(),
        count,
        cause: cause.into(),
    };
    let draft = Draft::success(payload, "user", user.to_string(), context);
    audit::append(tx, Log::System, draft, clock).await?;
    Ok(count)
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
            stage: SessionStage::Active,
            mfa_at: None,
            user_disabled: false,
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

    /// An org's shorter absolute timeout ends a session that is busy and within the
    /// deployment's lifetime; a longer one cannot extend it.
    #[test]
    fn an_orgs_shorter_absolute_timeout_ends_an_active_session() {
        let t0 = OffsetDateTime::UNIX_EPOCH + Duration::days(20_000);
        let org = |absolute: Option<u32>| crate::model::OrgPolicy {
            session_absolute_secs: absolute,
            ..crate::model::OrgPolicy::default()
        };
        let strict = SessionPolicy::default().within(&org(Some(600)));
        let mut s = session(t0);
        s.last_seen_at = t0 + Duration::minutes(9);
        assert_eq!(check(&s, strict, t0 + Duration::minutes(9)), Ok(()));
        s.last_seen_at = t0 + Duration::minutes(10);
        assert_eq!(
            check(&s, strict, t0 + Duration::minutes(10)),
            Err(Refusal::Expired)
        );
        let lax = SessionPolicy::default().within(&org(Some(2_592_000)));
        s.last_seen_at = t0 + Duration::hours(12);
        assert_eq!(
            check(&s, lax, t0 + Duration::hours(12)),
            Err(Refusal::Expired)
        );
    }
}
