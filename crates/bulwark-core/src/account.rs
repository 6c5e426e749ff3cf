//! A signed-in user managing their own account: changing the password.

use bulwark_audit::event::{Context, Payload};
use bulwark_types::Clock;
use secrecy::SecretString;

use crate::CoreError;
use crate::audit::{self, Log};
use crate::hashing::HashPool;
use crate::model::Session;
use crate::password_policy::{PasswordContext, PasswordPolicy};
use crate::ports::Store;
use crate::session::{self, failure, normalize, success};

/// Checks `new` against `policy` for the user with `email`.
///
/// # Errors
/// `WeakPassword` naming `field` and every rule broken.
pub fn check_new_password(
    policy: &PasswordPolicy,
    field: &'static str,
    new: &SecretString,
    email: &str,
    mfa_enrolled: bool,
) -> Result<(), CoreError> {
    policy
        .check(
            new,
            &PasswordContext {
                mfa_enrolled,
                email,
                other_words: &["bulwark"],
            },
        )
        .map_err(|weaknesses| CoreError::WeakPassword { field, weaknesses })
}

/// Replaces the signed-in user's password after re-checking the current one, and revokes every
/// other session of theirs (this one stays). Returns how many sessions ended.
///
/// # Errors
/// `InvalidCredentials` for a wrong current password (recorded as a failed sign-in step);
/// `WeakPassword`; storage and crypto failures.
#[allow(clippy::too_many_arguments)]
pub async fn change_password(
    store: &dyn Store,
    hasher: &HashPool,
    clock: &dyn Clock,
    policy: &PasswordPolicy,
    current: &Session,
    old: SecretString,
    new: SecretString,
    context: Context,
) -> Result<u64, CoreError> {
    let (user, mfa) = {
        let mut tx = store.system().await?;
        let user = tx
            .user_by_id(current.user_id)
            .await?
            .ok_or(CoreError::NotFound)?;
        let mfa = tx.totp(user.id).await?.is_some_and(|t| t.is_enabled());
        (user, mfa)
    };
    if !hasher
        .verify(normalize(&old), Some(user.password_hash.clone()))
        .await?
    {
        let mut tx = store.system().await?;
        let draft = failure("password", "reauth_failed", user.id.to_string(), context);
        audit::append(&mut *tx, Log::System, draft, clock).await?;
        tx.commit().await?;
        return Err(CoreError::InvalidCredentials);
    }
    check_new_password(policy, "/new_password", &new, user.email.as_str(), mfa)?;
    let hash = hasher.hash(normalize(&new)).await?;
    let mut tx = store.system().await?;
    let mut updated = user;
    updated.password_hash = hash;
    tx.update_user(&updated).await?;
    let payload = Payload::AuthPasswordChanged {
        cause: "change".into(),
    };
    audit::append(
        &mut *tx,
        Log::System,
        success(payload, current, context.clone()),
        clock,
    )
    .await?;
    let ended = session::revoke_all(
        &mut *tx,
        clock,
        updated.id,
        Some(current.id),
        "password_changed",
        context,
    )
    .await?;
    tx.commit().await?;
    Ok(ended)
}
