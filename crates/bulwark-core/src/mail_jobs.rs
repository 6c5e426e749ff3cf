//! The mail queue's worker side: a queued request for a password-reset or verification email
//! ([`MailJob`]) becomes a token and a message, at most once per account per cooldown and a few
//! times a day.
//!
//! The asking request only queues the address ([`enqueue`]), the same statement whether or not
//! it has an account, so its answer takes the same time either way. The worker looks the
//! address up: with no (enabled) account, or a verification for an address already verified, it
//! deletes the job and does nothing else. Otherwise it applies the account's [`MailLimit`]:
//! outside the cooldown and under the daily cap it issues a token (only its hash is stored) and
//! sends the mail; inside them it sends nothing, and records the refusal once until the next
//! mail (a password reset as a failed `auth.password.reset_requested`), never per request.
//!
//! INVARIANT: the queue never holds a token; the worker creates it, stores its hash and puts it
//! in the mail only.

use bulwark_audit::event::{Actor, ActorKind, Context, Outcome, Payload, Resource, Result_};
use bulwark_crypto::SecretToken;
use bulwark_types::{Clock, Email};
use secrecy::SecretString;
use time::Duration;

use crate::CoreError;
use crate::audit::{self, Draft, Log};
use crate::model::{MailJob, MailLimit, TokenPurpose, User, UserToken};
use crate::ports::{Mailer, Store};

/// How long an email verification token works.
pub const VERIFY_FOR: Duration = Duration::hours(24);
/// How long a password reset token works.
pub const RESET_FOR: Duration = Duration::minutes(30);
/// The prefix of email verification tokens (`bwverify_…`).
pub const VERIFY_TOKEN_PREFIX: &str = "bwverify";
/// The prefix of password reset tokens (`bwreset_…`).
pub const RESET_TOKEN_PREFIX: &str = "bwreset";
/// The daily cap's window.
const DAY_MS: i64 = 86_400_000;
/// The longest user agent kept with a job (the audit event keeps no more).
const MAX_USER_AGENT: usize = 500;

/// How many token emails one account may get for one purpose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MailPolicy {
    /// At least this long between two mails.
    pub cooldown: std::time::Duration,
    /// At most this many mails in 24 hours.
    pub per_day: u32,
}

impl Default for MailPolicy {
    fn default() -> Self {
        Self {
            cooldown: std::time::Duration::from_secs(300),
            per_day: 5,
        }
    }
}

/// What the policy says about one more mail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Send it.
    Send,
    /// Send nothing; `reason` is `cooldown` or `daily_limit`; `first` when no refusal was
    /// recorded since the latest mail.
    Refuse {
        /// The stable reason code.
        reason: &'static str,
        /// Whether to record this refusal.
        first: bool,
    },
}

impl MailPolicy {
    /// The verdict on a mail at `now_ms` for an account whose limit is `limit` (`None`: never
    /// mailed), and the limit to store afterwards.
    #[must_use]
    pub fn decide(&self, limit: Option<MailLimit>, now_ms: i64) -> (Verdict, MailLimit) {
        let mut next = limit.unwrap_or_default();
        if limit.is_none() || now_ms.saturating_sub(next.window_start_ms) >= DAY_MS {
            next.window_start_ms = now_ms;
            next.sent_in_window = 0;
        }
        let cooldown_ms = i64::try_from(self.cooldown.as_millis()).unwrap_or(i64::MAX);
        let reason = if limit.is_some() && now_ms.saturating_sub(next.last_sent_ms) < cooldown_ms {
            Some("cooldown")
        } else if next.sent_in_window >= self.per_day {
            Some("daily_limit")
        } else {
            None
        };
        match reason {
            Some(reason) => {
                let first = !next.noted;
                next.noted = true;
                (Verdict::Refuse { reason, first }, next)
            }
            None => {
                next.last_sent_ms = now_ms;
                next.sent_in_window = next.sent_in_window.saturating_add(1);
                next.noted = false;
                (Verdict::Send, next)
            }
        }
    }
}

/// What the worker did with a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivered {
    /// No enabled account has the address (or it is verified already): nothing was done.
    NoAccount,
    /// The token was issued and the mail handed over.
    Sent,
    /// The account's cooldown or daily cap refused it; nothing was sent.
    Refused(&'static str),
    /// The mailer refused the message; the account's limit was restored, so asking again works.
    MailFailed,
}

/// Unix milliseconds of `at`.
fn unix_ms(at: time::OffsetDateTime) -> i64 {
    i64::try_from(at.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

/// Queues a `purpose` mail for `email`, with the asking request's `context` for the audit
/// event. The same work whether or not the address has an account.
///
/// # Errors
/// Storage failures.
pub async fn enqueue(
    store: &dyn Store,
    clock: &dyn Clock,
    purpose: TokenPurpose,
    email: Email,
    context: &Context,
) -> Result<(), CoreError> {
    let job = MailJob {
        id: uuid::Uuid::now_v7(),
        purpose,
        email,
        source_ip: context.source_ip.clone(),
        user_agent: context
            .user_agent
            .as_deref()
            .map(|ua| ua.chars().take(MAX_USER_AGENT).collect()),
        request_id: context.request_id.clone(),
        created_ms: unix_ms(clock.now()),
    };
    Ok(store.mail_enqueue(&job).await?)
}

fn context_of(job: &MailJob) -> Context {
    Context {
        actor: Actor {
            kind: ActorKind::System,
            id: None,
        },
        source_ip: job.source_ip.clone(),
        user_agent: job.user_agent.clone(),
        request_id: job.request_id.clone(),
        decision: None,
    }
}

/// The `auth.password.reset_requested` event for `account`: success, or failure with `reason`.
fn reset_requested(account: &User, job: &MailJob, reason: Option<&'static str>) -> Draft {
    Draft {
        payload: Payload::AuthPasswordResetRequested {
            user_id: account.id.to_string(),
        },
        resource: Resource {
            kind: "user".into(),
            id: account.id.to_string(),
        },
        outcome: Outcome {
            result: if reason.is_some() {
                Result_::Failure
            } else {
                Result_::Success
            },
            reason: reason.map(str::to_owned),
        },
        context: context_of(job),
    }
}

fn message(purpose: TokenPurpose, token: &SecretToken) -> (&'static str, SecretString) {
    match purpose {
        TokenPurpose::VerifyEmail => (
            "Confirm your email address",
            SecretString::from(format!(
                "Confirm that this is your address by sending this token to \
                 POST /v1/auth/email/verify within 24 hours:\n\n{}\n",
                token.expose()
            )),
        ),
        TokenPurpose::ResetPassword => (
            "Reset your password",
            SecretString::from(format!(
                "Someone asked to reset the password of your Bulwark account. To choose a new \
                 one, send this token with it to POST /v1/auth/password/reset within 30 \
                 minutes:\n\n{}\n\nIf it was not you, ignore this message: your password stays \
                 as it is.\n",
                token.expose()
            )),
        ),
    }
}

/// The token prefix and lifetime of `purpose`.
const fn token_kind(purpose: TokenPurpose) -> (&'static str, Duration) {
    match purpose {
        TokenPurpose::VerifyEmail => (VERIFY_TOKEN_PREFIX, VERIFY_FOR),
        TokenPurpose::ResetPassword => (RESET_TOKEN_PREFIX, RESET_FOR),
    }
}

/// Carries out one claimed job (see the module documentation) and deletes it.
///
/// # Errors
/// Storage failures (the job stays queued and is claimed again when its lease ends).
pub async fn deliver(
    store: &dyn Store,
    clock: &dyn Clock,
    mailer: &dyn Mailer,
    policy: &MailPolicy,
    job: &MailJob,
) -> Result<Delivered, CoreError> {
    let now = clock.now();
    let mut tx = store.system().await?;
    let account = tx
        .user_by_email(&job.email)
        .await?
        .filter(|a| a.disabled_at.is_none())
        .filter(|a| job.purpose != TokenPurpose::VerifyEmail || a.email_verified_at.is_none());
    let Some(account) = account else {
        tx.mail_done(job.id).await?;
        tx.commit().await?;
        return Ok(Delivered::NoAccount);
    };
    let before = tx.lock_mail_limit(account.id, job.purpose).await?;
    let (verdict, after) = policy.decide(before, unix_ms(now));
    tx.set_mail_limit(account.id, job.purpose, &after).await?;
    if let Verdict::Refuse { reason, first } = verdict {
        tx.mail_done(job.id).await?;
        if first && job.purpose == TokenPurpose::ResetPassword {
            let draft = reset_requested(&account, job, Some(reason));
            audit::append(&mut *tx, Log::System, draft, clock).await?;
        } else if first {
            tracing::info!(user = %account.id, purpose = job.purpose.as_str(), reason,
                "token email not sent: the account's limit is reached");
        }
        tx.commit().await?;
        return Ok(Delivered::Refused(reason));
    }
    let (prefix, lifetime) = token_kind(job.purpose);
    let token = SecretToken::generate(prefix).map_err(|_| CoreError::Crypto)?;
    tx.create_user_token(&UserToken {
        hash: token.hash(),
        purpose: job.purpose,
        user_id: account.id,
        created_at: now,
        expires_at: now + lifetime,
    })
    .await?;
    tx.commit().await?;
    let (subject, body) = message(job.purpose, &token);
    let sent = mailer.send(&account.email, subject, body).await;
    let mut tx = store.system().await?;
    let delivered = if sent.is_ok() {
        if job.purpose == TokenPurpose::ResetPassword {
            let draft = reset_requested(&account, job, None);
            audit::append(&mut *tx, Log::System, draft, clock).await?;
        }
        Delivered::Sent
    } else {
        // The mailer logged why. The unused token expires; the account may ask again at once.
        tx.set_mail_limit(account.id, job.purpose, &before.unwrap_or_default())
            .await?;
        Delivered::MailFailed
    };
    // Done only now: while the mail is sent, requests for the address coalesce into this job,
    // and a queue seen empty has no mail in flight.
    tx.mail_done(job.id).await?;
    tx.commit().await?;
    Ok(delivered)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000;

    fn policy() -> MailPolicy {
        MailPolicy {
            cooldown: std::time::Duration::from_secs(300),
            per_day: 3,
        }
    }

    #[test]
    fn the_first_mail_is_sent_and_starts_the_window() {
        let (v, l) = policy().decide(None, 1_000 * MIN);
        assert_eq!(v, Verdict::Send);
        assert_eq!(
            l,
            MailLimit {
                last_sent_ms: 1_000 * MIN,
                window_start_ms: 1_000 * MIN,
                sent_in_window: 1,
                noted: false
            }
        );
    }

    #[test]
    fn inside_the_cooldown_nothing_is_sent_and_the_refusal_is_noted_once() {
        let p = policy();
        let (_, l) = p.decide(None, 1_000 * MIN);
        let (v, l) = p.decide(Some(l), 1_001 * MIN);
        assert_eq!(
            v,
            Verdict::Refuse {
                reason: "cooldown",
                first: true
            }
        );
        let (v, l) = p.decide(Some(l), 1_004 * MIN);
        assert_eq!(
            v,
            Verdict::Refuse {
                reason: "cooldown",
                first: false
            }
        );
        let (v, l) = p.decide(Some(l), 1_005 * MIN);
        assert_eq!(v, Verdict::Send, "the cooldown is over");
        assert!(!l.noted, "a mail re-arms the note");
    }

    #[test]
    fn the_daily_cap_holds_until_the_window_ends() {
        let p = policy();
        let mut limit = None;
        for i in 0..3 {
            let (v, l) = p.decide(limit, 1_000 * MIN + i * 10 * MIN);
            assert_eq!(v, Verdict::Send);
            limit = Some(l);
        }
        let (v, l) = p.decide(limit, 1_040 * MIN);
        assert_eq!(
            v,
            Verdict::Refuse {
                reason: "daily_limit",
                first: true
            }
        );
        let (v, _) = p.decide(Some(l), 1_000 * MIN + 24 * 60 * MIN);
        assert_eq!(v, Verdict::Send, "a new window");
    }
}
