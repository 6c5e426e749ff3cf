//! Self-service sign-up (off unless the operator enables it), email verification and password
//! reset by emailed single-use tokens (stored as SHA-256; 24 h
//! for verification, 30 min for a reset). A reset revokes every session of the account.
//!
//! No enumeration and no mail cannon: a reset request only queues the address (the mail queue,
//! [`crate::mail_jobs`]), the same work whether or not it has an account, so the answer is the
//! same and takes the same time; the mail worker issues the token and sends it, at most once
//! per account per cooldown and a few times a day.

use std::sync::Arc;

use bulwark_audit::event::{Actor, ActorKind, Context, Payload};
use bulwark_crypto::SecretToken;
use bulwark_types::{Clock, Email, UserId};
use secrecy::SecretString;

use crate::CoreError;
use crate::account::check_new_password;
use crate::audit::{self, Draft, Log};
use crate::hashing::HashPool;
use crate::mail_jobs;
pub use crate::mail_jobs::{RESET_FOR, RESET_TOKEN_PREFIX, VERIFY_FOR, VERIFY_TOKEN_PREFIX};
use crate::model::TokenPurpose;
use crate::password_policy::PasswordPolicy;
use crate::ports::{Mailer, Store};
use crate::session::{self, normalize};

fn security(payload: Payload, user: UserId, context: Context) -> Draft {
    Draft::success(payload, "user", user.to_string(), context)
}

/// Queues a verification email for the signed-in user (sent by the mail worker, within the
/// account's cooldown and daily cap).
///
/// # Errors
/// `State` when already verified; storage failures.
pub async fn send_verification(
    store: &dyn Store,
    clock: &dyn Clock,
    user: UserId,
    context: &Context,
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
    mail_jobs::enqueue(
        store,
        clock,
        TokenPurpose::VerifyEmail,
        account.email,
        context,
    )
    .await
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

/// Starts a password reset for `email`: queues it for the mail worker, which emails a
/// 30-minute token when an enabled account has this address and its cooldown and daily cap
/// allow. The same work, answer and time in every case.
///
/// # Errors
/// Storage failures only (never whether the account exists).
pub async fn request_reset(
    store: &dyn Store,
    clock: &dyn Clock,
    email: Email,
    context: &Context,
) -> Result<(), CoreError> {
    mail_jobs::enqueue(store, clock, TokenPurpose::ResetPassword, email, context).await
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
    check_new_password(policy, "/new_password", &new, "", false, &[])?;
    let hash = hasher.hash(normalize(&new)).await?;
    let mut tx = store.system().await?;
    let now = clock.now();
    let user = tx
        .redeem_user_token(&token.hash(), TokenPurpose::ResetPassword, now)
        .await?
        .ok_or(CoreError::InvalidCode)?;
    let mut account = tx.user_by_id(user).await?.ok_or(CoreError::NotFound)?;
    let mfa = tx.totp(user).await?.is_some_and(|t| t.is_enabled());
    let orgs = crate::account::org_words(store, user).await?;
    check_new_password(
        policy,
        "/new_password",
        &new,
        account.email.as_str(),
        mfa,
        &orgs,
    )?;
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
#[expect(
    clippy::too_many_arguments,
    reason = "the services and request parts a reset needs, each used"
)]
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
    check_new_password(policy, "/password", &password, email.as_str(), false, &[])?;
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
        security(payload, user.id, context.clone()),
        &*clock,
    )
    .await?;
    tx.commit().await?;
    mail_jobs::enqueue(
        &*store,
        &*clock,
        TokenPurpose::VerifyEmail,
        user.email,
        &context,
    )
    .await
}
