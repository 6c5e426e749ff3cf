//! A signed-in user managing their own account: re-authentication before a sensitive change,
//! and changing the password.

use bulwark_audit::event::{Context, Payload};
use bulwark_types::Clock;
use secrecy::SecretString;

use crate::CoreError;
use crate::audit::{self, Log};
use crate::hashing::HashPool;
use crate::model::{Session, User};
use crate::password_policy::{PasswordContext, PasswordPolicy};
use crate::ports::Store;
use crate::session::{self, SessionPolicy, SignedIn, failure, normalize, success};
use crate::throttle::{self, Attempt, Keys, ThrottlePolicy};

/// The services a re-authentication needs.
#[derive(Clone, Copy)]
pub struct Reauth<'a> {
    /// The store.
    pub store: &'a dyn Store,
    /// The password hashing pool.
    pub hasher: &'a HashPool,
    /// The clock.
    pub clock: &'a dyn Clock,
    /// The throttle every check of a secret is charged to.
    pub throttle: &'a ThrottlePolicy,
}

/// Re-checks the signed-in user's password before a sensitive change, under the same throttle
/// as sign-in (account, address, and this session, which ends after
/// [`throttle::SESSION_FAILURES`] wrong answers). A wrong password is recorded as a failed
/// sign-in step (`reauth_failed`).
///
/// # Errors
/// `Throttled`, `InvalidCredentials`, storage and crypto failures.
pub async fn reauthenticate(
    services: Reauth<'_>,
    current: &Session,
    password: SecretString,
    context: &Context,
) -> Result<User, CoreError> {
    let attempt = Attempt {
        keys: Keys::in_session(current, context.source_ip.as_deref()),
        session: Some(current),
        method: "password",
        subject: current.user_id.to_string(),
        context: context.clone(),
    };
    let check = async {
        let user = services
            .store
            .system()
            .await?
            .user_by_id(current.user_id)
            .await?
            .ok_or(CoreError::NotFound)?;
        let matched = services
            .hasher
            .verify(normalize(&password), Some(user.password_hash.clone()))
            .await?;
        if matched {
            return Ok(user);
        }
        let mut tx = services.store.system().await?;
        let draft = failure(
            "password",
            "reauth_failed",
            user.id.to_string(),
            context.clone(),
        );
        audit::append(&mut *tx, Log::System, draft, services.clock).await?;
        tx.commit().await?;
        Err(CoreError::InvalidCredentials)
    };
    throttle::guard(
        services.store,
        services.clock,
        services.throttle,
        attempt,
        check,
    )
    .await
}

/// The orgs the authorized user belongs to, with their role in each (oldest membership first).
///
/// # Errors
/// `NotFound` for a capability without a user (an API key); storage failures.
pub async fn orgs(
    store: &dyn Store,
    me: &crate::authz::Authorized,
) -> Result<Vec<(crate::model::Org, bulwark_types::Role)>, CoreError> {
    let user = me.user().ok_or(CoreError::NotFound)?;
    Ok(store.user_orgs(user).await?)
}

/// The authorized user's own membership of `org` and the org's sign-in rules, read in one
/// transaction; `NotFound` when they are not a member (or the org does not exist).
///
/// # Errors
/// `NotFound`; storage failures.
pub async fn membership(
    store: &dyn Store,
    me: &crate::authz::Authorized,
    org: bulwark_types::OrgId,
) -> Result<(crate::model::Member, crate::model::OrgPolicy), CoreError> {
    let user = me.user().ok_or(CoreError::NotFound)?;
    let mut read = store.org_read(org).await?;
    let member = read.member(user).await?.ok_or(CoreError::NotFound)?;
    let policy = read.policy().await?;
    Ok((member, policy))
}

/// The product's own names: words of every deployment's context (ASVS V6.1.2).
pub const PRODUCT_WORDS: &[&str] = &["bulwark"];

/// The context words of a password (ASVS V6.1.2, docs/identity.md § Passwords): the product's
/// names, the email's local part and the labels of its domain, and `orgs` (the names and slugs
/// of the person's orgs). The strength estimate treats each as one guess, so a password built
/// around them is refused as too easy to guess.
#[must_use]
pub fn context_words<'a>(email: &'a str, orgs: &'a [String]) -> Vec<&'a str> {
    let mut words: Vec<&str> = PRODUCT_WORDS.to_vec();
    if let Some((local, domain)) = email.rsplit_once('@') {
        words.push(local);
        words.extend(domain.split('.').filter(|label| label.len() >= 3));
    }
    for org in orgs {
        words.push(org);
        // "Globex Widgets" and "globex-widgets" also as "globex" and "widgets".
        words.extend(
            org.split(|c: char| !c.is_alphanumeric())
                .filter(|part| part.chars().count() >= 3),
        );
    }
    words.retain(|w| !w.is_empty());
    words
}

/// The names and slugs of `user`'s orgs, for [`context_words`].
///
/// # Errors
/// Storage failures.
pub async fn org_words(
    store: &dyn Store,
    user: bulwark_types::UserId,
) -> Result<Vec<String>, CoreError> {
    Ok(store
        .user_orgs(user)
        .await?
        .into_iter()
        .flat_map(|(org, _)| [org.name.as_str().to_owned(), org.slug.as_str().to_owned()])
        .collect())
}

/// Checks `new` against `policy` for the user with `email`, whose orgs are named `orgs` (names
/// and slugs; see [`context_words`]).
///
/// # Errors
/// `WeakPassword` naming `field` and every rule broken.
pub fn check_new_password(
    policy: &PasswordPolicy,
    field: &'static str,
    new: &SecretString,
    email: &str,
    mfa_enrolled: bool,
    orgs: &[String],
) -> Result<(), CoreError> {
    policy
        .check(
            new,
            &PasswordContext {
                mfa_enrolled,
                email,
                other_words: &context_words(email, orgs),
            },
        )
        .map_err(|weaknesses| CoreError::WeakPassword { field, weaknesses })
}

/// Replaces the signed-in user's password after re-checking the current one (see
/// [`reauthenticate`]): this session is replaced by a new one (a new id and token, so a session
/// id known before the change is worth nothing after it) and every other session of the user is
/// revoked. Returns the new session and how many other sessions ended.
///
/// # Errors
/// `Throttled`; `InvalidCredentials` for a wrong current password; `WeakPassword`; storage and
/// crypto failures.
pub async fn change_password(
    services: Reauth<'_>,
    policy: &PasswordPolicy,
    sessions: SessionPolicy,
    current: &Session,
    old: SecretString,
    new: SecretString,
    context: Context,
) -> Result<(SignedIn, u64), CoreError> {
    let user = reauthenticate(services, current, old, &context).await?;
    let mfa = {
        let mut tx = services.store.system().await?;
        tx.totp(user.id).await?.is_some_and(|t| t.is_enabled())
    };
    let orgs = org_words(services.store, user.id).await?;
    check_new_password(
        policy,
        "/new_password",
        &new,
        user.email.as_str(),
        mfa,
        &orgs,
    )?;
    let hash = services.hasher.hash(normalize(&new)).await?;
    let clock = services.clock;
    let mut tx = services.store.system().await?;
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
    let signed =
        session::rotate(&mut *tx, clock, sessions, current, &updated, None, &context).await?;
    let ended = session::revoke_all(
        &mut *tx,
        clock,
        updated.id,
        Some(signed.session.id),
        "password_changed",
        context,
    )
    .await?;
    tx.commit().await?;
    Ok((signed, ended))
}

#[cfg(test)]
mod tests {
    use secrecy::SecretString;

    use super::{check_new_password, context_words};
    use crate::CoreError;
    use crate::password_policy::PasswordPolicy;

    fn weak(password: &str, email: &str, orgs: &[String]) -> bool {
        matches!(
            check_new_password(
                &PasswordPolicy::default(),
                "/password",
                &SecretString::from(password),
                email,
                false,
                orgs,
            ),
            Err(CoreError::WeakPassword { .. })
        )
    }

    /// ASVS V6.1.2 and V6.2.11: a password built on the product's name, the person's email
    /// domain or their org's name and slug is refused as too easy to guess, while the same
    /// shape of password without the context passes.
    #[test]
    fn passwords_built_on_context_words_are_refused() {
        let orgs = vec!["Globex Widgets".to_owned(), "globex-widgets".to_owned()];
        assert_eq!(
            context_words("jo@mail.globex.example", &orgs),
            [
                "bulwark",
                "jo",
                "mail",
                "globex",
                "example",
                "Globex Widgets",
                "Globex",
                "Widgets",
                "globex-widgets",
                "globex",
                "widgets"
            ]
        );
        let email = "jo@mail.example";
        for password in [
            "globexwidgets2026",
            "Globex-Widgets-2026!",
            "bulwarkglobex2026",
        ] {
            assert!(
                !weak(password, email, &[]),
                "{password}: no context, passes"
            );
            assert!(weak(password, email, &orgs), "{password}: the org's names");
        }
        assert!(
            weak("bulwark-bulwark-bulwark", email, &[]),
            "the product's name"
        );
        assert!(
            weak("acmecorp-widgets-2026", "jo@acmecorp-widgets.example", &[]),
            "the email's domain"
        );
        assert!(
            !weak("acmecorp-widgets-2026", email, &[]),
            "elsewhere: passes"
        );
        // A context word inside a long enough password of other words is fine.
        assert!(!weak("quiet violet harbour globex", email, &orgs));
    }
}
