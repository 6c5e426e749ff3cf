//! Invitations: an owner or admin invites an email address to the org with a role; the invitee
//! accepts with the emailed single-use token (7 days), which also proves they receive mail there.

use bulwark_audit::event::{Context, Payload};
use bulwark_authz::Action;
use bulwark_crypto::SecretToken;
use bulwark_types::{Clock, Email, InvitationId, OrgId, Role, UserId};
use secrecy::SecretString;
use time::Duration;

use crate::CoreError;
use crate::account::check_new_password;
use crate::audit::{self, Draft, Log};
use crate::authz::Authorized;
use crate::model::{Invitation, User};
use crate::password_policy::PasswordPolicy;
use crate::ports::{Mailer, Store};
use crate::session::normalize;

/// How long an invitation stays valid.
pub const VALID_FOR: Duration = Duration::days(7);
/// The token prefix.
pub const TOKEN_PREFIX: &str = "bwinvite";

fn change(payload: Payload, resource_id: String, context: Context) -> Draft {
    Draft::success(payload, "invitation", resource_id, context)
}

/// Invites `email` to the org with `role` and emails the token, under a decision for
/// `invitations.create` (made on an invitation with this very role). If the email cannot be
/// sent, the invitation is withdrawn again.
///
/// # Errors
/// `Mail` when sending failed; storage failures.
pub async fn invite(
    store: &dyn Store,
    clock: &dyn Clock,
    mailer: &dyn Mailer,
    authorized: &Authorized,
    email: Email,
    role: Role,
) -> Result<Invitation, CoreError> {
    let org = authorized.org_for(Action::InvitationsCreate)?;
    let inviter = authorized
        .user()
        .ok_or(CoreError::State("only a person can invite"))?;
    let context = authorized.context();
    let token = SecretToken::generate(TOKEN_PREFIX).map_err(|_| CoreError::Crypto)?;
    let now = clock.now();
    let invitation = Invitation {
        id: InvitationId::new(),
        org_id: org,
        token_hash: token.hash(),
        email,
        role,
        invited_by: inviter,
        created_at: now,
        expires_at: now + VALID_FOR,
        accepted_at: None,
        revoked_at: None,
    };
    let mut tx = store.org(org).await?;
    let org_name = tx.get().await?.name;
    tx.create_invitation(&invitation).await?;
    let payload = Payload::MemberInvited {
        invitation_id: invitation.id.to_string(),
        role: role.as_str().into(),
    };
    let draft = change(payload, invitation.id.to_string(), context.clone());
    audit::append(&mut *tx, Log::Org(org), draft, clock).await?;
    tx.commit().await?;
    let body = SecretString::from(format!(
        "You are invited to join {} on Bulwark as {}.\n\n\
         Accept within 7 days by sending this token to POST /v1/invitations/accept:\n\n{}\n\n\
         If you did not expect this, ignore this message.\n",
        org_name.as_str(),
        role.as_str(),
        token.expose()
    ));
    let subject = format!("Invitation to {}", org_name.as_str());
    if mailer
        .send(&invitation.email, &subject, body)
        .await
        .is_err()
    {
        // The mailer logged why; an invitation nobody received must not stay open.
        withdraw(store, clock, org, invitation.id, context).await?;
        return Err(CoreError::Mail);
    }
    Ok(invitation)
}

/// The org's open invitations (neither accepted nor withdrawn), newest first.
///
/// # Errors
/// A decision for another action (a bug), storage failures.
pub async fn open(
    store: &dyn Store,
    authorized: &Authorized,
) -> Result<Vec<Invitation>, CoreError> {
    let mut read = authorized
        .org_reader(store, Action::InvitationsRead)
        .await?;
    Ok(read.open_invitations().await?)
}

/// Withdraws an open invitation, under a decision for `invitations.revoke`.
///
/// # Errors
/// `NotFound` when there is no open invitation with this id in the org; storage failures.
pub async fn revoke(
    store: &dyn Store,
    clock: &dyn Clock,
    authorized: &Authorized,
    id: InvitationId,
) -> Result<(), CoreError> {
    let org = authorized.org_for(Action::InvitationsRevoke)?;
    withdraw(store, clock, org, id, authorized.context()).await
}

async fn withdraw(
    store: &dyn Store,
    clock: &dyn Clock,
    org: OrgId,
    id: InvitationId,
    context: Context,
) -> Result<(), CoreError> {
    let mut tx = store.org(org).await?;
    if !tx.revoke_invitation(id, clock.now()).await? {
        return Err(CoreError::NotFound);
    }
    let payload = Payload::MemberInvitationRevoked {
        invitation_id: id.to_string(),
    };
    audit::append(
        &mut *tx,
        Log::Org(org),
        change(payload, id.to_string(), context),
        clock,
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// What an invitee sends.
pub struct Acceptance {
    /// The emailed token.
    pub token: SecretToken,
    /// A new password (new account) or the account's current password (existing account).
    pub password: SecretString,
    /// Client address, user agent, request id.
    pub context: Context,
}

/// Accepts an invitation. A new address gets an account with `password` (checked against the
/// policy, and the org's composition rule) whose email counts as verified; an existing account
/// must prove itself with its current password. Account, membership, acceptance and the audit
/// event commit together.
///
/// # Errors
/// `InvalidCode` for an unknown, used, withdrawn or expired token (all alike);
/// `InvalidCredentials` for an existing account's wrong password; `WeakPassword`;
/// `Conflict("memberships")` when already a member; `Entitlement` (audited) when the license
/// is read-only or every seat is taken, checked once the token is known good; storage failures.
pub async fn accept(
    services: crate::account::Reauth<'_>,
    policy: &PasswordPolicy,
    licensing: &crate::licensing::Licensing,
    input: Acceptance,
) -> Result<(OrgId, UserId), CoreError> {
    let (store, hasher, clock) = (services.store, services.hasher, services.clock);
    let hash = input.token.hash();
    let org = store
        .invitation_org(&hash)
        .await?
        .ok_or(CoreError::InvalidCode)?;
    let (org_policy, pending, org_words) = {
        let mut read = store.org_read(org).await?;
        let this = read.get().await?;
        let org_words = vec![this.name.as_str().to_owned(), this.slug.as_str().to_owned()];
        let pending = read
            .open_invitations()
            .await?
            .into_iter()
            .find(|i| i.token_hash == hash && i.expires_at > clock.now())
            .ok_or(CoreError::InvalidCode)?;
        (read.policy().await?, pending, org_words)
    };
    // INVARIANT: the account is looked up and created under the address's normal form. An
    // invitation stored by an older release may hold a spelling this one normalises or refuses.
    let email: Email = pending
        .email
        .as_str()
        .parse()
        .map_err(|_| CoreError::InvalidCode)?;
    let existing = {
        let mut tx = store.system().await?;
        tx.user_by_email(&email).await?
    };
    let new_user = match existing {
        Some(user) => {
            // The account's own counter, as at sign-in (the caller charges the address).
            let attempt = crate::throttle::Attempt {
                keys: crate::throttle::Keys::account_only(&user.email),
                session: None,
                method: "password",
                subject: user.id.to_string(),
                context: input.context.clone(),
            };
            let check = async {
                let ok = hasher
                    .verify(normalize(&input.password), Some(user.password_hash.clone()))
                    .await?;
                if !ok || user.disabled_at.is_some() {
                    return Err(CoreError::InvalidCredentials);
                }
                Ok(())
            };
            crate::throttle::guard(store, clock, services.throttle, attempt, check).await?;
            Err(user.id)
        }
        None => {
            let rules = PasswordPolicy {
                composition: policy.composition || org_policy.password_composition,
                ..policy.clone()
            };
            check_new_password(
                &rules,
                "/password",
                &input.password,
                email.as_str(),
                false,
                &org_words,
            )?;
            let now = clock.now();
            Ok(User {
                id: UserId::new(),
                email,
                password_hash: hasher.hash(normalize(&input.password)).await?,
                created_at: now,
                // The token reached this address: it is verified.
                email_verified_at: Some(now),
                disabled_at: None,
            })
        }
    };
    let mut tx = store.org(org).await?;
    let now = clock.now();
    let accepted = tx
        .accept_invitation(&hash, now)
        .await?
        .ok_or(CoreError::InvalidCode)?;
    // The license, counted under its lock in this transaction so that concurrent acceptances
    // cannot overshoot the seats.
    let usage = tx.lock_license_usage().await?;
    let denial = if licensing.read_only(clock) {
        Some(crate::licensing::read_only_denial(Some(org)))
    } else {
        licensing.exceeded(&usage, crate::licensing::Adding::Seat(org))
    };
    if let Some(denial) = denial {
        drop(tx);
        return Err(licensing.deny(store, clock, denial, input.context).await);
    }
    let user_id = match &new_user {
        Ok(user) => {
            tx.create_user(user).await?;
            user.id
        }
        Err(id) => *id,
    };
    tx.add_member(user_id, accepted.role, now).await?;
    let mut context = input.context;
    context.actor = bulwark_audit::event::Actor {
        kind: bulwark_audit::event::ActorKind::User,
        id: Some(user_id.to_string()),
    };
    let payload = Payload::MemberAdded {
        user_id: user_id.to_string(),
        role: accepted.role.as_str().into(),
    };
    let draft = Draft::success(payload, "member", user_id.to_string(), context);
    audit::append(&mut *tx, Log::Org(org), draft, clock).await?;
    tx.commit().await?;
    Ok((org, user_id))
}
