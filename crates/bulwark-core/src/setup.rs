//! First start and first org: the instance row, the one-time setup token, and the creation of
//! the first organisation with its owner.

use bulwark_crypto::{SecretToken, Seed};
use bulwark_types::{Clock, Email, OrgId, OrgName, Role, Slug, UserId};
use secrecy::SecretString;
use uuid::Uuid;

use bulwark_audit::event::{Outcome, Payload, Resource, Result_};

use crate::hashing::HashPool;
use crate::licensing::Adding;
use crate::model::{Instance, Membership, Org, User};
use crate::ports::Store;
use crate::{CoreError, StoreError};

/// The prefix of the one-time setup token (`bwsetup_…`).
pub const SETUP_TOKEN_PREFIX: &str = "bwsetup";

/// Why the server must not start with this seed and database.
#[derive(Debug, thiserror::Error)]
pub enum BootError {
    /// The database was created with another seed.
    #[error(
        "the workspace seed does not match this database: it was created with a different seed, \
         and starting would orphan every encrypted record; restore the original seed file"
    )]
    SeedMismatch,
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The random generator or KDF failed.
    #[error("cryptographic failure during start-up")]
    Crypto,
}

/// What start-up learned and made.
pub struct Boot {
    /// This deployment's id.
    pub deployment_id: Uuid,
    /// A fresh setup token while setup is pending: print it once, never log it.
    pub setup_token: Option<SecretToken>,
}

/// Whether this database already belongs to a deployment (so a missing seed is fatal).
///
/// # Errors
/// When storage fails.
pub async fn instance_exists(store: &dyn Store) -> Result<bool, StoreError> {
    let mut tx = store.system().await?;
    Ok(tx.instance().await?.is_some())
}

/// Creates or checks the instance row against `seed`, and issues a new setup token while setup
/// is pending (only its hash is stored; the previous one stops working).
///
/// # Errors
/// `SeedMismatch` when the database was made with another seed; storage and crypto failures.
pub async fn bootstrap(
    store: &dyn Store,
    seed: &Seed,
    clock: &dyn Clock,
) -> Result<Boot, BootError> {
    let check = seed.check_value().map_err(|_| BootError::Crypto)?;
    let mut tx = store.system().await?;
    let instance = match tx.instance().await? {
        Some(existing) => {
            if !bulwark_crypto::constant_time_eq(&existing.seed_check, &check) {
                return Err(BootError::SeedMismatch);
            }
            existing
        }
        None => {
            let fresh = Instance {
                deployment_id: Uuid::now_v7(),
                seed_check: check,
                setup_token_hash: None,
                setup_completed_at: None,
                created_at: clock.now(),
            };
            tx.create_instance(&fresh).await?;
            fresh
        }
    };
    let setup_token = if instance.setup_completed_at.is_none() {
        let token = SecretToken::generate(SETUP_TOKEN_PREFIX).map_err(|_| BootError::Crypto)?;
        tx.set_setup_token(Some(&token.hash())).await?;
        Some(token)
    } else {
        None
    };
    tx.commit().await?;
    Ok(Boot {
        deployment_id: instance.deployment_id,
        setup_token,
    })
}

/// How the caller of setup proved it may run it.
pub enum SetupAuth {
    /// The one-time token printed at start (HTTP).
    Token(SecretToken),
    /// A local operator with access to the data directory and database (`bulwark setup`).
    LocalOperator,
}

/// What setup needs.
pub struct SetupInput {
    /// The first org's display name.
    pub org_name: OrgName,
    /// Its slug; derived from the name when absent.
    pub org_slug: Option<Slug>,
    /// The owner's email.
    pub owner_email: Email,
    /// The owner's password.
    pub owner_password: SecretString,
    /// Who asked, from where: recorded in the `setup.completed` audit event.
    pub context: bulwark_audit::event::Context,
}

/// What setup created.
#[derive(Debug, Clone)]
pub struct SetupOutcome {
    /// The new org.
    pub org: Org,
    /// The owner's user id.
    pub owner_id: UserId,
}

/// Checks a new password against the default password policy (length, common passwords,
/// strength), before anything is hashed or stored.
///
/// # Errors
/// `WeakPassword` naming `field` and every rule broken.
pub fn check_new_password(password: &SecretString, field: &'static str) -> Result<(), CoreError> {
    crate::account::check_new_password(
        &crate::password_policy::PasswordPolicy::default(),
        field,
        password,
        "",
        false,
        &[],
    )
}

fn authorize(instance: Option<&crate::model::Instance>, auth: &SetupAuth) -> Result<(), CoreError> {
    let instance = instance.ok_or(CoreError::Unavailable)?;
    if instance.setup_completed_at.is_some() {
        return Err(CoreError::SetupCompleted);
    }
    match auth {
        SetupAuth::LocalOperator => Ok(()),
        SetupAuth::Token(token) => match &instance.setup_token_hash {
            Some(stored) if stored.matches(token) => Ok(()),
            _ => Err(CoreError::InvalidSetupToken),
        },
    }
}

/// Creates the first org and its owner, exactly once.
///
/// The token is checked before the (expensive) password hash and again inside the transaction
/// that creates the org, so two racing calls cannot both succeed.
///
/// # Errors
/// `SetupCompleted`, `InvalidSetupToken`, `Validation`, `Conflict`, storage failures.
pub async fn complete_setup(
    store: &dyn Store,
    hasher: &HashPool,
    clock: &dyn Clock,
    auth: SetupAuth,
    input: SetupInput,
) -> Result<SetupOutcome, CoreError> {
    {
        let mut tx = store.system().await?;
        authorize(tx.instance().await?.as_ref(), &auth)?;
    }
    crate::account::check_new_password(
        &crate::password_policy::PasswordPolicy::default(),
        "/owner/password",
        &input.owner_password,
        input.owner_email.as_str(),
        false,
        &[input.org_name.as_str().to_owned()],
    )?;
    let slug = match input.org_slug {
        Some(s) => s,
        None => Slug::from_name(input.org_name.as_str()).ok_or(CoreError::Validation {
            field: "/org/slug",
            message: "cannot be derived from the name; give one".into(),
        })?,
    };
    let password_hash = hasher
        .hash(crate::session::normalize(&input.owner_password))
        .await?;
    let now = clock.now();
    let user = User {
        id: UserId::new(),
        email: input.owner_email,
        password_hash,
        created_at: now,
        email_verified_at: None,
        disabled_at: None,
    };
    let org = Org {
        id: OrgId::new(),
        slug,
        name: input.org_name,
        created_at: now,
    };
    let owner = Membership {
        org_id: org.id,
        user_id: user.id,
        role: Role::Owner,
        created_at: now,
    };

    let draft = crate::audit::Draft {
        payload: Payload::SetupCompleted {
            org_slug: org.slug.to_string(),
            owner_email: user.email.to_string(),
        },
        resource: Resource {
            kind: "org".into(),
            id: org.id.to_string(),
        },
        outcome: Outcome {
            result: Result_::Success,
            reason: None,
        },
        context: input.context,
    };
    let mut tx = store.system().await?;
    authorize(tx.instance().await?.as_ref(), &auth)?;
    // The system-log event first: on PostgreSQL `create_org` binds the transaction to the new org.
    crate::audit::append(&mut *tx, crate::audit::Log::System, draft, clock).await?;
    tx.create_user(&user).await?;
    tx.create_org(&org, &owner).await?;
    tx.complete_setup(now, org.id).await?;
    tx.commit().await?;
    Ok(SetupOutcome {
        org,
        owner_id: user.id,
    })
}

/// How the creator of another org proved they may.
pub enum OrgCreator<'a> {
    /// An owner of the operator org, decided for `orgs.create`.
    Operator(&'a crate::authz::Authorized),
    /// A host operator with the data directory and database (`bulwark orgs create`).
    LocalOperator,
}

/// Another organisation.
pub struct NewOrg {
    /// Display name.
    pub name: OrgName,
    /// Slug; derived from the name when absent.
    pub slug: Option<Slug>,
    /// Its first owner: an existing account.
    pub owner_email: Email,
    /// Who asked, from where (for a local operator: the command).
    pub context: bulwark_audit::event::Context,
}

/// Creates another organisation with an existing account as its owner, within the license's
/// `orgs` and `seats` limits; audited as `org.created` (naming the owner) in the system log.
///
/// # Errors
/// `Entitlement` (audited), `Validation` (no such account, no slug), `Conflict` (slug taken),
/// storage failures.
pub async fn create_org(
    store: &dyn Store,
    clock: &dyn Clock,
    licensing: &crate::licensing::Licensing,
    creator: OrgCreator<'_>,
    input: NewOrg,
) -> Result<Org, CoreError> {
    if let OrgCreator::Operator(authorized) = creator {
        authorized.org_for(bulwark_authz::Action::OrgsCreate)?;
    }
    let slug = match input.slug {
        Some(s) => s,
        None => Slug::from_name(input.name.as_str()).ok_or(CoreError::Validation {
            field: "/slug",
            message: "cannot be derived from the name; give one".into(),
        })?,
    };
    let owner = {
        let mut tx = store.system().await?;
        tx.user_by_email(&input.owner_email).await?
    }
    .ok_or(CoreError::Validation {
        field: "/owner_email",
        message: "no account has this email; invite the person to an org first".into(),
    })?;
    let now = clock.now();
    let org = Org {
        id: OrgId::new(),
        slug,
        name: input.name,
        created_at: now,
    };
    let membership = Membership {
        org_id: org.id,
        user_id: owner.id,
        role: Role::Owner,
        created_at: now,
    };
    let mut tx = store.system().await?;
    let usage = tx.lock_license_usage().await?;
    let denial = if licensing.read_only(clock) {
        Some(crate::licensing::read_only_denial(None))
    } else {
        [Adding::Org, Adding::Seat(org.id)]
            .into_iter()
            .find_map(|a| licensing.exceeded(&usage, a))
    };
    if let Some(denial) = denial {
        drop(tx);
        return Err(licensing.deny(store, clock, denial, input.context).await);
    }
    let created = crate::audit::Draft::success(
        Payload::OrgCreated {
            slug: org.slug.to_string(),
            name: org.name.to_string(),
            owner_id: Some(owner.id.to_string()),
        },
        "org",
        org.id.to_string(),
        input.context,
    );
    // The system-log event first: on PostgreSQL `create_org` binds the transaction to the org.
    crate::audit::append(&mut *tx, crate::audit::Log::System, created, clock).await?;
    tx.create_org(&org, &membership).await?;
    tx.commit().await?;
    Ok(org)
}
