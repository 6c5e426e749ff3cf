//! Self-service sign-up (off unless the operator enables it), email verification and password
//! reset by emailed single-use tokens (stored as SHA-256; 24 h
//! for verification, 30 min for a reset). A reset revokes every session of the account.
//!
//! No enumeration: a reset request answers the same whether or not the address has an account,
//! and the email for an existing one is sent in the background so the answer takes the same
//! time either way.

use std::sync::Arc;

use bulwark_audit::event::{Actor, ActorKind, Context, Payload};
use bulwark_crypto::SecretToken;
use bulwark_types::{Clock, Email, UserId};
use secrecy::SecretString;
use time::Duration;

use crate::CoreError;
use crate::account::check_new_password;
use crate::audit::{self, Draft, Log};
use crate::hashing::HashPool;
use crate::model::{TokenPurpose, UserToken};
use crate::password_policy::PasswordPolicy;
use crate::ports::{Mailer, Store};
use crate::session::{self, normalize};

/// How long an email verification token works.
pub const VERIFY_FOR: Duration = Duration::hours(24);
/// How long a password reset token works.
pub const RESET_FOR: Duration = Duration::minutes(30);
/// The prefix of email verification tokens (`bwverify_…`).
pub const VERIFY_TOKEN_PREFIX: &str = "bwverify";
/// The prefix of password reset tokens (`bwreset_…`).
pub const RESET_TOKEN_PREFIX: &str = "bwreset";

fn security(payload: Payload, user: UserId, context: Context) -> Draft {
    Draft::success(payload, "user", user.to_string(), context)
}

async fn issue(
    store: &dyn Store,
    clock: &dyn Clock,
    user: UserId,
    purpose: TokenPurpose,
    lifetime: Duration,
    prefix: &str,
) -> Result<SecretToken, CoreError> {
    let token = SecretToken::generate(prefix).map_err(|_| CoreError::Crypto)?;
    let now = clock.now();
    let mut tx = store.system().await?;
    tx.create_user_token(&UserToken {
        hash: token.hash(),
        purpose,
        user_id: user,
        created_at: now,
        expires_at: now + lifetime,
    })
    .await?;
    tx.commit().await?;
    Ok(token)
}

/// Emails the signed-in user a verification token.
///
/// # Errors
/// `State` when already verified; `Mail`; storage failures.
pub async fn send_verification(
    store: &dyn Store,
    clock: &dyn Clock,
    mailer: &dyn Mailer,
    user: UserId,
) -> Result<(), CoreError> {
    let account = store
        .system()
        .await?
        .user_by_id(user)
        .await?
        .ok_or(CoreError::NotFound)?;
    if account.email_verified_at.is_some() {
        return Err(CoreError::State("this email address is already verified"));
    }
    let token = issue(
        store,
        clock,
        user,
        TokenPurpose::VerifyEmail,
        VERIFY_FOR,
        VERIFY_TOKEN_PREFIX,
    )
    .await?;
    let body = SecretString::from(format!(
        "Confirm that this is your address by sending this token to \
         POST /v1/auth/email/verify within 24 hours:\n\n{}\n",
        token.expose()
    ));
    mailer
        .send(&account.email, "Confirm your email address", body)
        .await
        .map_err(|_| CoreError::Mail)
}

/// Marks the token's user's email verified.
///
/// # Errors
/// `InvalidCode` for an unknown, used or expired token; storage failures.
pub async fn verify_email(
    store: &dyn Store,
    clock: &dyn Clock,
    token: &SecretToken,
    context: Context,
) -> Result<UserId, CoreError> {
    let now = clock.now();
    let mut tx = store.system().await?;
    let user = tx
        .redeem_user_token(&token.hash(), TokenPurpose::VerifyEmail, now)
        .await?
        .ok_or(CoreError::InvalidCode)?;
    let mut account = tx.user_by_id(user).await?.ok_or(CoreError::NotFound)?;
    account.email_verified_at.get_or_insert(now);
    tx.update_user(&account).await?;
    let payload = Payload::AuthEmailVerified {
        user_id: user.to_string(),
    };
    audit::append(
        &mut *tx,
        Log::System,
        security(payload, user, context),
        clock,
    )
    .await?;
    tx.commit().await?;
    Ok(user)
}

/// Starts a password reset for `email`: when an account has this address, a 30-minute token is
/// emailed in the background. The caller answers the same way in every case.
///
/// # Errors
/// Storage failures only (never whether the account exists).
pub async fn request_reset(
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    mailer: Arc<dyn Mailer>,
    email: Email,
    context: Context,
) -> Result<(), CoreError> {
    let account = store.system().await?.user_by_email(&email).await?;
    let Some(account) = account.filter(|a| a.disabled_at.is_none()) else {
        return Ok(());
    };
    // Token, audit event and email after the answer, so an existing account costs the caller
    // no more time than an unknown address.
    tokio::spawn(async move {
        let sent = async {
            let token = issue(
                &*store,
                &*clock,
                account.id,
                TokenPurpose::ResetPassword,
                RESET_FOR,
                RESET_TOKEN_PREFIX,
            )
            .await?;
            let body = SecretString::from(format!(
                "Someone asked to reset the password of your Bulwark account. To choose a new \
                 one, send this token with it to POST /v1/auth/password/reset within 30 \
                 minutes:\n\n{}\n\nIf it was not you, ignore this message: your password stays \
                 as it is.\n",
                token.expose()
            ));
            mailer
                .send(&account.email, "Reset your password", body)
                .await
                .map_err(|_| CoreError::Mail)?;
            let mut tx = store.system().await?;
            let payload = Payload::AuthPasswordResetRequested {
                user_id: account.id.to_string(),
            };
            audit::append(
                &mut *tx,
                Log::System,
                security(payload, account.id, context),
                &*clock,
            )
            .await?;
            tx.commit().await?;
            Ok::<_, CoreError>(())
        };
        // Nothing to tell the caller either way; the mailer logs its failures.
        drop(sent.await);
    });
    Ok(())
}

/// Sets a new password with a reset token and revokes every session of the account.
///
/// # Errors
/// `WeakPassword` (checked before the token is spent); `InvalidCode` for an unknown, used or
/// expired token; storage failures.
pub async fn reset_password(
    store: &dyn Store,
    hasher: &HashPool,
    clock: &dyn Clock,
    policy: &PasswordPolicy,
    token: &SecretToken,
    new: SecretString,
    context: Context,
) -> Result<UserId, CoreError> {
    check_new_password(policy, "/new_password", &new, "", false)?;
    let hash = hasher.hash(normalize(&new)).await?;
    let mut tx = store.system().await?;
    let now = clock.now();
    let user = tx
        .redeem_user_token(&token.hash(), TokenPurpose::ResetPassword, now)
        .await?
        .ok_or(CoreError::InvalidCode)?;
    let mut account = tx.user_by_id(user).await?.ok_or(CoreError::NotFound)?;
    let mfa = tx.totp(user).await?.is_some_and(|t| t.is_enabled());
    check_new_password(policy, "/new_password", &new, account.email.as_str(), mfa)?;
    account.password_hash = hash;
    // The token reached the address: it is verified now if it was not before.
    account.email_verified_at.get_or_insert(now);
    tx.update_user(&account).await?;
    let mut context = context;
    context.actor = Actor {
        kind: ActorKind::User,
        id: Some(user.to_string()),
    };
    let payload = Payload::AuthPasswordChanged {
        cause: "reset".into(),
    };
    audit::append(
        &mut *tx,
        Log::System,
        security(payload, user, context.clone()),
        clock,
    )
    .await?;
    session::revoke_all(&mut *tx, clock, user, None, "password_reset", context).await?;
    tx.commit().await?;
    Ok(user)
}

/// Self-service sign-up (when the deployment enables it): answers the same whether or not the
/// address has an account. A new address gets an unverified account and a verification email;
/// an existing one gets a note that someone tried to sign up with it, and nothing changes. Both
/// paths hash a password and send mail in the background, so they take the same time.
///
/// # Errors
/// `WeakPassword` (checked before the address is looked up, so it reveals nothing); storage
/// failures.
#[allow(clippy::too_many_arguments)]
pub async fn sign_up(
    store: Arc<dyn Store>,
    hasher: &HashPool,
    clock: Arc<dyn Clock>,
    mailer: Arc<dyn Mailer>,
    policy: &PasswordPolicy,
    email: Email,
    password: SecretString,
    context: Context,
) -> Result<(), CoreError> {
    check_new_password(policy, "/password", &password, email.as_str(), false)?;
    let hash = hasher.hash(normalize(&password)).await?;
    let existing = store.system().await?.user_by_email(&email).await?;
    if existing.is_some() {
        tokio::spawn(async move {
            let body = SecretString::from(
                "Someone tried to create a Bulwark account with this address, which already has \
                 one. Nothing was changed. If you forgot your password, ask for a reset.\n"
                    .to_owned(),
            );
            drop(mailer.send(&email, "Sign-up attempt", body).await);
        });
        return Ok(());
    }
    let now = clock.now();
    let user = crate::model::User {
        id: UserId::new(),
        email: email.clone(),
        password_hash: hash,
        created_at: now,
        email_verified_at: None,
        disabled_at: None,
    };
    let mut tx = store.system().await?;
    match tx.create_user(&user).await {
        // A concurrent sign-up for the same address won: same answer.
        Err(crate::StoreError::Conflict(_)) => return Ok(()),
        other => other?,
    }
    let mut context = context;
    context.actor = Actor {
        kind: ActorKind::User,
        id: Some(user.id.to_string()),
    };
    let payload = Payload::AuthSignedUp {
        user_id: user.id.to_string(),
    };
    audit::append(
        &mut *tx,
        Log::System,
        security(payload, user.id, context),
        &*clock,
    )
    .await?;
    tx.commit().await?;
    tokio::spawn(async move {
        drop(send_verification(&*store, &*clock, &*mailer, user.id).await);
    });
    Ok(())
}
