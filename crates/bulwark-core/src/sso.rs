//! Enterprise single sign-on (issue 21): an org's connections to its identity providers, the
//! email domains it claims, its sign-in rules, and what a sign-in the protocol layer has
//! verified does here: find or bind the account, provision it just in time, map groups to a
//! role and teams under the admin-email binding, and start a session under the org's MFA rules.
//!
//! The protocol layer (OpenID Connect and SAML, in the server) proves *who the identity provider
//! says this is*; everything after that, and every refusal, is decided here, the same way for
//! both protocols. Every refusal is audited with its code and starts no session.

use std::collections::BTreeMap;

use bulwark_audit::event::{Actor, ActorKind, Context, Payload};
use bulwark_crypto::vault::KeyWrapper;
use bulwark_types::{Clock, ConnectionId, CredentialId, Email, OrgId, Role, TeamId, UserId};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::audit::{self, Draft, Log};
use crate::authz::Authorized;
use crate::hashing::HashPool;
use crate::model::{SessionStage, SsoConnection, SsoDomain, SsoSettings, User};
use crate::ports::{OrgTx, Store};
use crate::session::{self, SessionPolicy, SignedIn};
use crate::vault::{self, NewCredential};
use crate::{CoreError, StoreError};
use bulwark_authz::Action;

/// The most connections an org may have.
pub const MAX_CONNECTIONS: usize = 20;
/// The most domains an org may claim.
pub const MAX_DOMAINS: usize = 50;
/// The most admin emails an org may list.
pub const MAX_ADMIN_EMAILS: usize = 100;
/// The most group mappings (roles plus teams) a connection may have.
pub const MAX_GROUP_MAPPINGS: usize = 200;

/// Who an identity provider may make, and how (shared by both protocols).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mapping {
    /// Create an account and a membership on a first sign-in (just-in-time provisioning).
    pub jit: bool,
    /// The role of a person no group maps, and of anyone a group would make owner or admin
    /// whose email is not on the org's admin list.
    pub default_role: Role,
    /// Bind a first sign-in to an existing account with the same (verified) email.
    pub allow_linking: bool,
    /// Group → role; the highest role among a person's groups wins. When not empty, the role
    /// of an existing member is set from it at every sign-in.
    pub group_roles: BTreeMap<String, Role>,
    /// Group → team: a person is in each mapped team whose group they have, and taken out of
    /// the others, at every sign-in.
    pub group_teams: BTreeMap<String, TeamId>,
}

impl Default for Mapping {
    fn default() -> Self {
        Self {
            jit: true,
            default_role: Role::Member,
            allow_linking: false,
            group_roles: BTreeMap::new(),
            group_teams: BTreeMap::new(),
        }
    }
}

/// A new connection: protocol settings checked by the protocol layer, the mapping, and the
/// secret to seal.
pub struct NewConnection {
    /// Its id (made before, when settings name it: a SAML connection's ACS URL).
    pub id: ConnectionId,
    /// Unique in the org, 1–100 characters.
    pub name: String,
    /// `oidc` or `saml`.
    pub protocol: &'static str,
    /// The protocol's settings, JSON (includes the mapping).
    pub config: String,
    /// The issuer or IdP entity id (audited).
    pub issuer: String,
    /// The mapping, to check against the org's teams.
    pub mapping: Mapping,
    /// The client secret or private key, sealed in the vault; destinations it may go to.
    pub secret: Option<(Zeroizing<Vec<u8>>, Vec<String>)>,
    /// `client_secret_basic`, `private_key_jwt`, … (audited on rotation).
    pub auth_method: String,
}

fn invalid(field: &'static str, message: impl Into<String>) -> CoreError {
    CoreError::Validation {
        field,
        message: message.into(),
    }
}

fn ms(at: time::OffsetDateTime) -> i64 {
    i64::try_from(at.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

fn check_name(name: &str) -> Result<(), CoreError> {
    if bulwark_types::is_plain_text(name, 100) && !name.trim().is_empty() {
        Ok(())
    } else {
        Err(invalid(
            "/name",
            "must be 1 to 100 characters of plain text",
        ))
    }
}

async fn check_mapping(tx: &mut dyn OrgTx, mapping: &Mapping) -> Result<(), CoreError> {
    if mapping.group_roles.len() + mapping.group_teams.len() > MAX_GROUP_MAPPINGS {
        return Err(invalid(
            "/mapping",
            format!("at most {MAX_GROUP_MAPPINGS} group mappings"),
        ));
    }
    if mapping
        .group_roles
        .keys()
        .chain(mapping.group_teams.keys())
        .any(|g| g.is_empty() || g.len() > 256)
    {
        return Err(invalid("/mapping", "group names must be 1 to 256 bytes"));
    }
    if !mapping.group_teams.is_empty() {
        let teams: Vec<TeamId> = tx.teams().await?.into_iter().map(|t| t.id).collect();
        if let Some(missing) = mapping.group_teams.values().find(|t| !teams.contains(t)) {
            return Err(invalid(
                "/mapping/group_teams",
                format!("no team {missing} in this org"),
            ));
        }
    }
    Ok(())
}

async fn seal_secret(
    tx: &mut dyn OrgTx,
    clock: &dyn Clock,
    wrapper: &dyn KeyWrapper,
    org: OrgId,
    connection: ConnectionId,
    secret: (Zeroizing<Vec<u8>>, Vec<String>),
    by: Option<UserId>,
) -> Result<(CredentialId, Draft), CoreError> {
    let tag = uuid::Uuid::new_v4().simple().to_string();
    let (value, destinations) = secret;
    let credential = vault::store_managed(
        tx,
        clock,
        wrapper,
        org,
        NewCredential {
            name: format!("sso {connection} secret {}", tag.get(..8).unwrap_or("")),
            kind: "sso_secret".into(),
            value,
            destinations,
        },
        by,
    )
    .await?;
    let draft = vault::created(&credential, Context::system(None));
    Ok((credential.id, draft))
}

fn connection_draft(payload: Payload, id: ConnectionId, context: Context) -> Draft {
    Draft::success(payload, "sso_connection", id.to_string(), context)
}

/// Adds a connection (`sso.connection_created`), sealing its secret in the vault.
///
/// # Errors
/// `Validation` (name, mapping, too many), `Conflict` for a name in use, vault and storage
/// failures.
pub async fn create_connection(
    store: &dyn Store,
    clock: &dyn Clock,
    wrapper: &dyn KeyWrapper,
    authorized: &Authorized,
    new: NewConnection,
) -> Result<SsoConnection, CoreError> {
    let org = authorized.org_for(Action::SsoWrite)?;
    check_name(&new.name)?;
    let mut tx = store.org(org).await?;
    if tx.sso_connections().await?.len() >= MAX_CONNECTIONS {
        return Err(invalid(
            "/name",
            format!("an org has at most {MAX_CONNECTIONS} connections"),
        ));
    }
    check_mapping(&mut *tx, &new.mapping).await?;
    let id = new.id;
    let mut drafts = Vec::new();
    let secret_id = match new.secret {
        Some(secret) => {
            let (cred, draft) =
                seal_secret(&mut *tx, clock, wrapper, org, id, secret, authorized.user()).await?;
            drafts.push(draft);
            Some(cred)
        }
        None => None,
    };
    let now = ms(clock.now());
    let connection = SsoConnection {
        id,
        org,
        protocol: new.protocol.into(),
        name: new.name,
        config: new.config,
        secret_id,
        enabled: true,
        created_ms: now,
        updated_ms: now,
    };
    tx.create_sso_connection(&connection)
        .await
        .map_err(name_taken)?;
    drafts.push(connection_draft(
        Payload::SsoConnectionCreated {
            connection_id: id.to_string(),
            protocol: connection.protocol.clone(),
            name: connection.name.clone(),
            issuer: new.issuer,
        },
        id,
        authorized.context(),
    ));
    for mut draft in drafts {
        draft.context = authorized.context();
        audit::append(&mut *tx, Log::Org(org), draft, clock).await?;
    }
    tx.commit().await?;
    Ok(connection)
}

fn name_taken(e: StoreError) -> CoreError {
    match e {
        StoreError::Conflict(_) => CoreError::Conflict("sso_connections.name"),
        other => other.into(),
    }
}

/// The org's connections (owners and admins).
///
/// # Errors
/// Storage failures.
pub async fn connections(
    store: &dyn Store,
    authorized: &Authorized,
) -> Result<Vec<SsoConnection>, CoreError> {
    let mut read = authorized.org_reader(store, Action::SsoRead).await?;
    Ok(read.sso_connections().await?)
}

/// One connection.
///
/// # Errors
/// `NotFound`; storage failures.
pub async fn connection(
    store: &dyn Store,
    authorized: &Authorized,
    id: ConnectionId,
) -> Result<SsoConnection, CoreError> {
    let mut read = authorized.org_reader(store, Action::SsoRead).await?;
    read.sso_connection(id).await?.ok_or(CoreError::NotFound)
}

/// A change to a connection: what the protocol layer rebuilt, and an optional new secret.
pub struct ConnectionChange {
    /// New name.
    pub name: String,
    /// New settings JSON.
    pub config: String,
    /// The issuer (audited).
    pub issuer: String,
    /// The mapping, to check.
    pub mapping: Mapping,
    /// Whether sign-ins are accepted.
    pub enabled: bool,
    /// Whether the issuer changed (the identities bound under the old one are dropped).
    pub issuer_changed: bool,
}

/// Changes a connection (`sso.connection_updated`).
///
/// # Errors
/// `NotFound`, `Validation`, `Conflict`; storage failures.
pub async fn update_connection(
    store: &dyn Store,
    clock: &dyn Clock,
    authorized: &Authorized,
    id: ConnectionId,
    change: ConnectionChange,
) -> Result<SsoConnection, CoreError> {
    let org = authorized.org_for(Action::SsoWrite)?;
    check_name(&change.name)?;
    let mut tx = store.org(org).await?;
    let mut connection = tx.sso_connection(id).await?.ok_or(CoreError::NotFound)?;
    check_mapping(&mut *tx, &change.mapping).await?;
    if change.issuer_changed {
        // A subject is only unique under its issuer: the old bindings mean nothing now.
        tx.clear_sso_identities(id).await?;
    }
    connection.name = change.name;
    connection.config = change.config;
    connection.enabled = change.enabled;
    connection.updated_ms = ms(clock.now());
    tx.update_sso_connection(&connection)
        .await
        .map_err(name_taken)?;
    let draft = connection_draft(
        Payload::SsoConnectionUpdated {
            connection_id: id.to_string(),
            issuer: change.issuer,
            enabled: connection.enabled,
        },
        id,
        authorized.context(),
    );
    audit::append(&mut *tx, Log::Org(org), draft, clock).await?;
    tx.commit().await?;
    Ok(connection)
}

/// A connection's new secret.
pub struct NewSecret {
    /// The client secret or private key, to seal.
    pub value: Zeroizing<Vec<u8>>,
    /// Where it may be sent (the token endpoint).
    pub destinations: Vec<String>,
    /// Settings that change with it (a new public key), JSON.
    pub config: Option<String>,
    /// The authentication method (audited).
    pub auth_method: String,
}

/// Replaces a connection's secret (`sso.secret_rotated`); the old one is deleted with its data
/// key. `config` carries settings that change with it (a new public key).
///
/// # Errors
/// `NotFound`; vault and storage failures.
pub async fn rotate_secret(
    store: &dyn Store,
    clock: &dyn Clock,
    wrapper: &dyn KeyWrapper,
    authorized: &Authorized,
    id: ConnectionId,
    new: NewSecret,
) -> Result<SsoConnection, CoreError> {
    let org = authorized.org_for(Action::SsoWrite)?;
    let mut tx = store.org(org).await?;
    let mut connection = tx.sso_connection(id).await?.ok_or(CoreError::NotFound)?;
    let secret = (new.value, new.destinations);
    let (cred, created) =
        seal_secret(&mut *tx, clock, wrapper, org, id, secret, authorized.user()).await?;
    let old = connection.secret_id.replace(cred);
    if let Some(config) = new.config {
        connection.config = config;
    }
    connection.updated_ms = ms(clock.now());
    tx.update_sso_connection(&connection).await?;
    let mut drafts = vec![created];
    if let Some(old) = old {
        tx.delete_credential(old).await?;
        drafts.push(Draft::success(
            Payload::CredentialDeleted {
                credential_id: old.to_string(),
            },
            "credential",
            old.to_string(),
            authorized.context(),
        ));
    }
    drafts.push(connection_draft(
        Payload::SsoSecretRotated {
            connection_id: id.to_string(),
            auth_method: new.auth_method,
        },
        id,
        authorized.context(),
    ));
    for mut draft in drafts {
        draft.context = authorized.context();
        audit::append(&mut *tx, Log::Org(org), draft, clock).await?;
    }
    tx.commit().await?;
    Ok(connection)
}

/// Deletes a connection, the identities bound through it and its secret
/// (`sso.connection_deleted`). Sessions made through it keep running to their end.
///
/// # Errors
/// `NotFound`; storage failures.
pub async fn delete_connection(
    store: &dyn Store,
    clock: &dyn Clock,
    authorized: &Authorized,
    id: ConnectionId,
) -> Result<(), CoreError> {
    let org = authorized.org_for(Action::SsoWrite)?;
    let mut tx = store.org(org).await?;
    let connection = tx.sso_connection(id).await?.ok_or(CoreError::NotFound)?;
    if !tx.delete_sso_connection(id).await? {
        return Err(CoreError::NotFound);
    }
    if let Some(secret) = connection.secret_id {
        tx.delete_credential(secret).await?;
    }
    let draft = connection_draft(
        Payload::SsoConnectionDeleted {
            connection_id: id.to_string(),
        },
        id,
        authorized.context(),
    );
    audit::append(&mut *tx, Log::Org(org), draft, clock).await?;
    tx.commit().await?;
    Ok(())
}

/// A domain in its normal form (lower-case ASCII, IDNA), or `Validation` on `/domain`.
///
/// # Errors
/// Not a domain name.
pub fn normal_domain(raw: &str) -> Result<String, CoreError> {
    let probe: Email = format!("x@{}", raw.trim().trim_end_matches('.'))
        .parse()
        .map_err(|_| invalid("/domain", "must be a domain name (example.com)"))?;
    let domain = probe.domain().to_owned();
    if domain.len() > 253 {
        return Err(invalid("/domain", "must be a domain name (example.com)"));
    }
    Ok(domain)
}

/// The org's claimed domains.
///
/// # Errors
/// Storage failures.
pub async fn domains(
    store: &dyn Store,
    authorized: &Authorized,
) -> Result<Vec<SsoDomain>, CoreError> {
    let mut read = authorized.org_reader(store, Action::SsoRead).await?;
    Ok(read.sso_domains().await?)
}

/// Claims a domain (`sso.domain_claimed`); unverified until an operator-org owner confirms it.
///
/// # Errors
/// `Validation`; `Conflict` (`sso_domains.domain`) when any org has claimed it.
pub async fn claim_domain(
    store: &dyn Store,
    clock: &dyn Clock,
    authorized: &Authorized,
    raw: &str,
) -> Result<SsoDomain, CoreError> {
    let org = authorized.org_for(Action::SsoWrite)?;
    let domain = normal_domain(raw)?;
    let mut tx = store.org(org).await?;
    if tx.sso_domains().await?.len() >= MAX_DOMAINS {
        return Err(invalid(
            "/domain",
            format!("an org claims at most {MAX_DOMAINS} domains"),
        ));
    }
    let claim = SsoDomain {
        domain: domain.clone(),
        org,
        created_ms: ms(clock.now()),
        verified_ms: None,
        verified_by: None,
    };
    tx.create_sso_domain(&claim).await.map_err(|e| match e {
        StoreError::Conflict(_) => CoreError::Conflict("sso_domains.domain"),
        other => other.into(),
    })?;
    let draft = Draft::success(
        Payload::SsoDomainClaimed {
            domain: domain.clone(),
        },
        "sso_domain",
        domain,
        authorized.context(),
    );
    audit::append(&mut *tx, Log::Org(org), draft, clock).await?;
    tx.commit().await?;
    Ok(claim)
}

/// Marks `org`'s claim of `raw` verified, confirmed by an owner of the operator org
/// (`operator` is that decision: `sso.domains.verify` on the operator org). Audited in both
/// orgs' logs.
///
/// # Errors
/// `NotFound` when `org` has not claimed it; storage failures.
pub async fn verify_domain(
    store: &dyn Store,
    clock: &dyn Clock,
    operator: &Authorized,
    org: OrgId,
    raw: &str,
) -> Result<SsoDomain, CoreError> {
    let operator_org = operator.org_for(Action::SsoDomainsVerify)?;
    let domain = normal_domain(raw)?;
    let by = format!(
        "operator:{}",
        operator
            .user()
            .map_or_else(|| "unknown".to_owned(), |u| u.to_string())
    );
    let now = ms(clock.now());
    let mut tx = store.org(org).await?;
    if !tx.verify_sso_domain(&domain, now, &by).await? {
        return Err(CoreError::NotFound);
    }
    let draft = Draft::success(
        Payload::SsoDomainVerified {
            domain: domain.clone(),
            by: by.clone(),
        },
        "sso_domain",
        domain.clone(),
        operator.context(),
    );
    audit::append(&mut *tx, Log::Org(org), draft.clone(), clock).await?;
    let claim = tx
        .sso_domains()
        .await?
        .into_iter()
        .find(|d| d.domain == domain)
        .ok_or(CoreError::NotFound)?;
    tx.commit().await?;
    if operator_org != org {
        let mut tx = store.org(operator_org).await?;
        audit::append(&mut *tx, Log::Org(operator_org), draft, clock).await?;
        tx.commit().await?;
    }
    Ok(claim)
}

/// Drops a claim (`sso.domain_removed`).
///
/// # Errors
/// `NotFound`; storage failures.
pub async fn remove_domain(
    store: &dyn Store,
    clock: &dyn Clock,
    authorized: &Authorized,
    raw: &str,
) -> Result<(), CoreError> {
    let org = authorized.org_for(Action::SsoWrite)?;
    let domain = normal_domain(raw).map_err(|_| CoreError::NotFound)?;
    let mut tx = store.org(org).await?;
    if !tx.delete_sso_domain(&domain).await? {
        return Err(CoreError::NotFound);
    }
    let draft = Draft::success(
        Payload::SsoDomainRemoved {
            domain: domain.clone(),
        },
        "sso_domain",
        domain,
        authorized.context(),
    );
    audit::append(&mut *tx, Log::Org(org), draft, clock).await?;
    tx.commit().await?;
    Ok(())
}

/// The org's single sign-on rules.
///
/// # Errors
/// Storage failures.
pub async fn settings(
    store: &dyn Store,
    authorized: &Authorized,
) -> Result<SsoSettings, CoreError> {
    let mut read = authorized.org_reader(store, Action::SsoRead).await?;
    Ok(read.sso_settings().await?)
}

/// Replaces the org's single sign-on rules (`sso.settings_changed`). Admin emails are kept in
/// their comparison form, without duplicates.
///
/// # Errors
/// `Validation`; `State` when SSO would be required with no enabled connection; storage
/// failures.
pub async fn set_settings(
    store: &dyn Store,
    clock: &dyn Clock,
    authorized: &Authorized,
    sso_required: bool,
    admin_emails: &[Email],
    idp_mfa: bool,
) -> Result<SsoSettings, CoreError> {
    let org = authorized.org_for(Action::SsoWrite)?;
    if admin_emails.len() > MAX_ADMIN_EMAILS {
        return Err(invalid(
            "/admin_emails",
            format!("at most {MAX_ADMIN_EMAILS} emails"),
        ));
    }
    let mut keys: Vec<String> = admin_emails.iter().map(Email::key).collect();
    keys.sort();
    keys.dedup();
    let settings = SsoSettings {
        sso_required,
        admin_emails: keys,
        idp_mfa,
    };
    let mut tx = store.org(org).await?;
    if sso_required && tx.sso_connections().await?.iter().all(|c| !c.enabled) {
        return Err(CoreError::State(
            "add and enable a connection before requiring single sign-on",
        ));
    }
    tx.set_sso_settings(&settings, ms(clock.now())).await?;
    let draft = Draft::success(
        Payload::SsoSettingsChanged {
            sso_required,
            admin_emails: settings.admin_emails.clone(),
            idp_mfa,
        },
        "org",
        org.to_string(),
        authorized.context(),
    );
    audit::append(&mut *tx, Log::Org(org), draft, clock).await?;
    tx.commit().await?;
    Ok(settings)
}

/// The org a verified domain routes to, for home-realm discovery; `None` for an unclaimed or
/// unverified domain.
///
/// # Errors
/// Storage failures.
pub async fn route(store: &dyn Store, email: &Email) -> Result<Option<OrgId>, CoreError> {
    Ok(match store.sso_domain_org(email.domain()).await? {
        Some((org, true)) => Some(org),
        _ => None,
    })
}

/// What an identity provider asserted, once the protocol layer verified it.
#[derive(Debug, Clone)]
pub struct Asserted {
    /// `oidc` or `saml` (audited as the sign-in method).
    pub method: &'static str,
    /// The provider's subject (OIDC `sub`, SAML NameID), under the connection's pinned issuer.
    pub subject: String,
    /// The email, if asserted.
    pub email: Option<Email>,
    /// Whether the provider says it verified the email (OIDC `email_verified`; SAML: the
    /// connection's setting).
    pub email_verified: bool,
    /// Group names.
    pub groups: Vec<String>,
    /// Whether the provider says the person passed a second factor (`amr`, `acr`,
    /// `AuthnContextClassRef`).
    pub idp_mfa: bool,
    /// The provider's session id (OIDC `sid`), for back-channel logout.
    pub sid: Option<String>,
}

/// Refuses a sign-in: audited in the org's log with `code` as the reason, no session.
async fn refuse(
    store: &dyn Store,
    clock: &dyn Clock,
    org: OrgId,
    method: &str,
    code: &'static str,
    subject: String,
    context: Context,
) -> CoreError {
    crate::metrics::signin(method, "failure");
    let draft = session::failure(method, code, subject, context);
    let recorded = async {
        let mut tx = store.org(org).await?;
        audit::append(&mut *tx, Log::Org(org), draft, clock).await?;
        tx.commit().await?;
        Ok::<(), CoreError>(())
    };
    match recorded.await {
        Ok(()) => CoreError::SsoRefused {
            code,
            secret: false,
        },
        Err(e) => e,
    }
}

/// Records a refusal by the protocol layer (bad state, token, signature …) in the org's log.
///
/// # Errors
/// Always: the refusal (or a storage failure recording it).
pub async fn refused(
    store: &dyn Store,
    clock: &dyn Clock,
    org: OrgId,
    method: &'static str,
    code: &'static str,
    context: Context,
) -> CoreError {
    match refuse(store, clock, org, method, code, "unknown".into(), context).await {
        CoreError::SsoRefused { code, .. } => CoreError::SsoRefused { code, secret: true },
        other => other,
    }
}

/// The role `groups` give, capped by the admin-email binding.
fn mapped_role(
    mapping: &Mapping,
    settings: &SsoSettings,
    email: Option<&Email>,
    groups: &[String],
) -> Role {
    let rank = |r: Role| match r {
        Role::Owner => 4,
        Role::Admin => 3,
        Role::Member => 2,
        Role::Auditor => 1,
    };
    let wanted = groups
        .iter()
        .filter_map(|g| mapping.group_roles.get(g).copied())
        .max_by_key(|r| rank(*r))
        .unwrap_or(mapping.default_role);
    cap(wanted, mapping, settings, email)
}

/// `role`, unless it is owner or admin and `email` is not on the org's admin list: then the
/// connection's default role (itself capped to member).
fn cap(role: Role, mapping: &Mapping, settings: &SsoSettings, email: Option<&Email>) -> Role {
    let listed = email.is_some_and(|e| settings.admin_emails.contains(&e.key()));
    let privileged = |r: Role| matches!(r, Role::Owner | Role::Admin);
    if !privileged(role) || listed {
        role
    } else if privileged(mapping.default_role) {
        Role::Member
    } else {
        mapping.default_role
    }
}

/// The tools a sign-in needs.
pub struct SignInDeps<'a> {
    /// Storage.
    pub store: &'a dyn Store,
    /// Time.
    pub clock: &'a dyn Clock,
    /// Hashes the unusable password of a provisioned account.
    pub hasher: &'a HashPool,
    /// Seats.
    pub licensing: &'a crate::licensing::Licensing,
    /// Session lifetimes.
    pub policy: SessionPolicy,
}

enum Found {
    Bound(User),
    Linked(User),
    New(User),
}

/// Signs in the person `asserted` names through `connection` (enabled, of `org`), under
/// `mapping`: the account bound to the subject, else (verified email required) an existing
/// account when the org allows linking and the domain is the org's, else a new account when
/// just-in-time provisioning is on or the email has an open invitation. Then the role and
/// teams are mapped, and a session starts: `mfa_pending` when the person has Bulwark's second
/// factor and the org does not count the provider's MFA (or the provider asserted none).
///
/// # Errors
/// `SsoRefused` with its code (audited); `Entitlement` (seats); storage failures.
pub async fn sign_in(
    deps: &SignInDeps<'_>,
    connection: &SsoConnection,
    mapping: &Mapping,
    asserted: Asserted,
    mut context: Context,
) -> Result<SignedIn, CoreError> {
    let (store, clock) = (deps.store, deps.clock);
    let org = connection.org;
    let method = asserted.method;
    let deny = |code: &'static str, subject: String, context: Context| {
        refuse(store, clock, org, method, code, subject, context)
    };
    if !connection.enabled {
        return Err(deny("sso_connection_disabled", "unknown".into(), context).await);
    }
    let mut tx = store.org(org).await?;
    let settings = tx.sso_settings().await?;
    let bound = tx.sso_identity(connection.id, &asserted.subject).await?;
    let verified_domains: Vec<String> = tx
        .sso_domains()
        .await?
        .into_iter()
        .filter(|d| d.verified_ms.is_some())
        .map(|d| d.domain)
        .collect();
    let invitation = match &asserted.email {
        Some(email) if asserted.email_verified => tx
            .open_invitations()
            .await?
            .into_iter()
            .find(|i| i.email.key() == email.key() && i.expires_at > clock.now()),
        _ => None,
    };
    drop(tx);
    let existing = match &asserted.email {
        Some(email) => store.system().await?.user_by_email(email).await?,
        None => None,
    };
    let bound_user = match bound {
        Some(id) => store.system().await?.user_by_id(id).await?,
        None => None,
    };
    let found = if let Some(user) = bound_user {
        Found::Bound(user)
    } else {
        let Some(email) = asserted.email.clone().filter(|_| asserted.email_verified) else {
            let code = if asserted.email.is_some() {
                "sso_email_unverified"
            } else {
                "sso_email_missing"
            };
            return Err(deny(code, "unknown".into(), context).await);
        };
        let in_domain = verified_domains.iter().any(|d| d == email.domain());
        if !in_domain && invitation.is_none() {
            return Err(deny("sso_email_domain", "unknown".into(), context).await);
        }
        match existing {
            Some(user) if mapping.allow_linking && in_domain => Found::Linked(user),
            Some(user) => {
                return Err(deny("sso_link_refused", user.id.to_string(), context).await);
            }
            None if (mapping.jit && in_domain) || invitation.is_some() => {
                let now = clock.now();
                let unusable = bulwark_crypto::SecretToken::generate("unusable")
                    .map_err(|_| CoreError::Crypto)?;
                let password_hash = deps
                    .hasher
                    .hash(SecretString::from(unusable.expose().to_owned()))
                    .await?;
                Found::New(User {
                    id: UserId::new(),
                    email,
                    password_hash,
                    created_at: now,
                    // The provider asserted it verified the address; that is trusted only in a
                    // domain the org verified (an invited foreign address proves nothing).
                    email_verified_at: in_domain.then_some(now),
                    disabled_at: None,
                })
            }
            None => return Err(deny("sso_jit_disabled", "unknown".into(), context).await),
        }
    };
    // An invitation is redeemed only by a new account with its address: never by a subject
    // already bound (whose membership was removed) or an existing account.
    let invitation = invitation.filter(|_| matches!(found, Found::New(_)));
    let (user, how) = match found {
        Found::Bound(u) => (u, None),
        Found::Linked(u) => (u, Some("linked")),
        Found::New(u) => (
            u,
            Some(if invitation.is_some() {
                "invited"
            } else {
                "provisioned"
            }),
        ),
    };
    if user.disabled_at.is_some() {
        return Err(deny("account_disabled", user.id.to_string(), context).await);
    }
    context.actor = Actor {
        kind: ActorKind::User,
        id: Some(user.id.to_string()),
    };
    // INVARIANT: the admin-email binding is about the account's own address, never the one the
    // provider sends now (a bound person's claim can be changed at the provider).
    let email = Some(&user.email);
    provision(
        deps, connection, mapping, &settings, &asserted, &user, how, invitation, email, &context,
    )
    .await?;
    start_session(deps, connection, &settings, &asserted, &user, context).await
}

/// Membership, role, teams and binding, in one org transaction.
#[expect(
    clippy::too_many_arguments,
    reason = "one sign-in's facts, passed once"
)]
async fn provision(
    deps: &SignInDeps<'_>,
    connection: &SsoConnection,
    mapping: &Mapping,
    settings: &SsoSettings,
    asserted: &Asserted,
    user: &User,
    how: Option<&'static str>,
    invitation: Option<crate::model::Invitation>,
    email: Option<&Email>,
    context: &Context,
) -> Result<(), CoreError> {
    let (store, clock) = (deps.store, deps.clock);
    let org = connection.org;
    let now = clock.now();
    let mut tx = store.org(org).await?;
    let mut drafts = Vec::new();
    let event = |payload: Payload, kind: &str, id: String| {
        Draft::success(payload, kind, id, context.clone())
    };
    if how == Some("provisioned") || how == Some("invited") {
        tx.create_user(user).await?;
    }
    let member = tx.member(user.id).await?;
    let role = match &invitation {
        Some(i) if member.is_none() => cap(i.role, mapping, settings, email),
        _ => mapped_role(mapping, settings, email, &asserted.groups),
    };
    match member {
        None => {
            if !mapping.jit && invitation.is_none() {
                drop(tx);
                return Err(refuse(
                    store,
                    clock,
                    org,
                    asserted.method,
                    "sso_jit_disabled",
                    user.id.to_string(),
                    context.clone(),
                )
                .await);
            }
            let usage = tx.lock_license_usage().await?;
            let denial = if deps.licensing.read_only(clock) {
                Some(crate::licensing::read_only_denial(Some(org)))
            } else {
                deps.licensing
                    .exceeded(&usage, crate::licensing::Adding::Seat(org))
            };
            if let Some(denial) = denial {
                drop(tx);
                return Err(deps
                    .licensing
                    .deny(store, clock, denial, context.clone())
                    .await);
            }
            tx.add_member(user.id, role, now).await?;
            if let Some(i) = &invitation {
                tx.revoke_invitation(i.id, now).await?;
            }
            drafts.push(event(
                Payload::MemberAdded {
                    user_id: user.id.to_string(),
                    role: role.as_str().into(),
                },
                "member",
                user.id.to_string(),
            ));
        }
        Some(m) if !mapping.group_roles.is_empty() && m.role != role => {
            // An IdP may lower a role, never strand the org without an owner.
            tx.lock_owners().await?;
            let owners = tx
                .members()
                .await?
                .iter()
                .filter(|x| x.role == Role::Owner)
                .count();
            if m.role != Role::Owner || owners > 1 {
                tx.set_role(user.id, role).await?;
                drafts.push(event(
                    Payload::MemberRoleChanged {
                        user_id: user.id.to_string(),
                        from: m.role.as_str().into(),
                        to: role.as_str().into(),
                    },
                    "member",
                    user.id.to_string(),
                ));
            }
        }
        Some(_) => {}
    }
    for (group, team) in &mapping.group_teams {
        // A team the org's SCIM provisioning manages follows SCIM alone.
        if tx.scim_group(*team).await?.is_some() {
            continue;
        }
        let present = asserted.groups.contains(group);
        let changed = match tx.set_team_member(*team, user.id, present).await {
            Ok(changed) => changed,
            // The team was deleted since the mapping named it: skipped, the sign-in goes on.
            Err(StoreError::NotFound) => false,
            Err(e) => return Err(e.into()),
        };
        if changed {
            drafts.push(event(
                Payload::TeamMembershipChanged {
                    team_id: team.to_string(),
                    user_id: user.id.to_string(),
                    added: present,
                },
                "team",
                team.to_string(),
            ));
        }
    }
    if let Some(how) = how {
        tx.bind_sso_identity(connection.id, &asserted.subject, user.id, ms(now))
            .await?;
        drafts.push(event(
            Payload::SsoIdentityBound {
                connection_id: connection.id.to_string(),
                user_id: user.id.to_string(),
                how: how.into(),
            },
            "user",
            user.id.to_string(),
        ));
    }
    if drafts.is_empty() {
        // A returning member whose role and teams are as mapped: nothing to write.
        return Ok(());
    }
    for draft in drafts {
        audit::append(&mut *tx, Log::Org(org), draft, clock).await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Whether an org other than `org` requires MFA of `user` in their role there.
async fn mfa_needed_elsewhere(
    store: &dyn Store,
    user: UserId,
    org: OrgId,
) -> Result<bool, CoreError> {
    for (other, role) in store.user_orgs(user).await? {
        if other.id == org {
            continue;
        }
        let mut read = store.org_read(other.id).await?;
        if read.policy().await?.mfa_required.applies_to(role) {
            return Ok(true);
        }
    }
    Ok(false)
}

async fn start_session(
    deps: &SignInDeps<'_>,
    connection: &SsoConnection,
    settings: &SsoSettings,
    asserted: &Asserted,
    user: &User,
    context: Context,
) -> Result<SignedIn, CoreError> {
    let (store, clock) = (deps.store, deps.clock);
    let now = clock.now();
    let mut tx = store.system().await?;
    let has_totp = tx.totp(user.id).await?.is_some_and(|t| t.is_enabled());
    // The provider's MFA counts only when this org trusts it, the person has no Bulwark second
    // factor (which is then always asked), and no other org of theirs requires MFA of them: a
    // session is deployment-wide, and another org never chose to trust this provider.
    let idp_mfa = settings.idp_mfa
        && asserted.idp_mfa
        && !has_totp
        && !mfa_needed_elsewhere(store, user.id, connection.org).await?;
    let (stage, mfa_at, lifetime) = if idp_mfa {
        (SessionStage::Active, Some(now), deps.policy.absolute)
    } else if has_totp {
        (
            SessionStage::MfaPending,
            None,
            session::MFA_PENDING_FOR.min(deps.policy.absolute),
        )
    } else {
        (SessionStage::Active, None, deps.policy.absolute)
    };
    let (token, session) = session::new_session(user, stage, mfa_at, now, lifetime, &context)?;
    tx.create_session(&session).await?;
    tx.record_sso_session(
        session.id,
        connection.id,
        &asserted.subject,
        asserted.sid.as_deref(),
    )
    .await?;
    crate::metrics::signin(
        asserted.method,
        if stage == SessionStage::MfaPending {
            "second_factor_required"
        } else {
            "success"
        },
    );
    let payload = if stage == SessionStage::MfaPending {
        Payload::AuthMfaChallenged {
            method: "totp".into(),
        }
    } else {
        Payload::AuthLoginSucceeded {
            method: asserted.method.into(),
            mfa: idp_mfa,
        }
    };
    let draft = session::success(payload, &session, context);
    audit::append(&mut *tx, Log::System, draft.clone(), clock).await?;
    tx.commit().await?;
    if stage != SessionStage::MfaPending {
        audit::to_member_orgs(store, clock, user.id, draft).await?;
    }
    Ok(SignedIn { token, session })
}

/// Ends the sessions a provider's logout names (back-channel logout): those made through
/// `connection` for `subject` and/or provider session `sid`. Audited in the org's log.
///
/// # Errors
/// Storage failures.
pub async fn logged_out(
    store: &dyn Store,
    clock: &dyn Clock,
    connection: &SsoConnection,
    subject: Option<&str>,
    sid: Option<&str>,
    context: Context,
) -> Result<u64, CoreError> {
    let now = clock.now();
    let mut tx = store.system().await?;
    let ids = tx.sso_sessions(connection.id, subject, sid, now).await?;
    let mut ended = 0u64;
    for id in &ids {
        if tx.revoke_session(*id, now).await? {
            ended += 1;
        }
    }
    tx.commit().await?;
    let mut tx = store.org(connection.org).await?;
    let draft = Draft::success(
        Payload::SsoLoggedOut {
            connection_id: connection.id.to_string(),
            sessions: ended,
        },
        "sso_connection",
        connection.id.to_string(),
        context,
    );
    audit::append(&mut *tx, Log::Org(connection.org), draft, clock).await?;
    tx.commit().await?;
    Ok(ended)
}
