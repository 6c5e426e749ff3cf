//! The credential vault: integration credentials that Bulwark can use but nobody can read back.
//!
//! A credential's value is sealed under its own data key, wrapped by the active key version's
//! KEK (`bulwark_crypto::vault`). People create, list (metadata only), replace and delete
//! credentials; Bulwark itself *uses* them ([`use_value`]), only towards the destinations the
//! credential allows. Every addition, replacement, use and removal is audited in the org's log.
//!
//! INVARIANT: a value is sealed with its credential's kind and destinations bound into its
//! associated data ([`attributes`]), so a row whose kind or destinations were edited outside
//! this module does not open; whatever changes them here seals the value again in the same
//! transaction.
//!
//! Key versions: [`rotate`] makes a new active version; [`rewrap_batch`] (the background job)
//! moves credentials to it a batch at a time, each batch in its own transaction, so a crash
//! loses nothing and the next run resumes; [`retire_unused`] retires versions no credential uses.

use bulwark_audit::event::{Context, Payload};
use bulwark_authz::Action;
use bulwark_crypto::vault::{
    self as envelope, Binding, KeyWrapper, OrgKey, OrgMasked, SealedValue, VaultError,
};
use bulwark_types::{Clock, CredentialId, OrgId};
use zeroize::Zeroizing;

use crate::CoreError;
use crate::audit::{self, Draft, Log};
use crate::authz::Authorized;
use crate::model::{Credential, VaultKey, VaultKeyState};
use crate::ports::Store;

/// What a credential can be.
pub const KINDS: [&str; 5] = [
    "bearer_token",
    "basic_password",
    "webhook_secret",
    "smtp_password",
    "generic",
];
/// The most destinations one credential may allow.
pub const MAX_DESTINATIONS: usize = 20;
/// The longest destination URL.
pub const MAX_DESTINATION_LEN: usize = 2048;
/// Above every key version the stores can hold (they keep versions as 32-bit signed integers):
/// "stale against it" means every credential.
pub const ABOVE_EVERY_VERSION: u32 = 0x7fff_ffff;
/// The field name bound into every sealed value.
const VALUE_FIELD: &str = "value";

/// A credential to create.
pub struct NewCredential {
    /// A name for people, unique in the org (1–100 characters).
    pub name: String,
    /// One of [`KINDS`].
    pub kind: String,
    /// The secret (1 byte to 64 KiB). Zeroized when dropped.
    pub value: Zeroizing<Vec<u8>>,
    /// URL prefixes it may be sent to (1 to [`MAX_DESTINATIONS`]).
    pub destinations: Vec<String>,
}

fn invalid(field: &'static str, message: impl Into<String>) -> CoreError {
    CoreError::Validation {
        field,
        message: message.into(),
    }
}

fn check_name(name: &str) -> Result<String, CoreError> {
    if !bulwark_types::is_plain_text(name, 100) {
        return Err(invalid(
            "/name",
            "must be 1 to 100 characters, without control characters or space at either end",
        ));
    }
    Ok(name.to_owned())
}

fn check_value(value: &[u8]) -> Result<(), CoreError> {
    if value.is_empty() || value.len() > envelope::MAX_VALUE_LEN {
        return Err(invalid(
            "/value",
            format!("must be 1 to {} bytes", envelope::MAX_VALUE_LEN),
        ));
    }
    Ok(())
}

/// Checks and normalises destinations: absolute `https://` or `http://` URLs with a host, no
/// user name or password (a secret in a URL leaks through every log), no query or fragment.
/// Each is kept as a prefix: scheme, host, port and path.
///
/// # Errors
/// `Validation` on `/destinations` naming the first bad entry by position.
pub fn check_destinations(destinations: &[String]) -> Result<Vec<String>, CoreError> {
    if destinations.is_empty() || destinations.len() > MAX_DESTINATIONS {
        return Err(invalid(
            "/destinations",
            format!("must list 1 to {MAX_DESTINATIONS} URLs"),
        ));
    }
    let mut out = Vec::with_capacity(destinations.len());
    for (i, raw) in destinations.iter().enumerate() {
        let url = parse_destination(raw).map_err(|why| {
            invalid(
                "/destinations",
                format!("entry {i} is not an allowed destination: {why}"),
            )
        })?;
        if !out.contains(&url) {
            out.push(url);
        }
    }
    Ok(out)
}

fn parse_destination(raw: &str) -> Result<String, &'static str> {
    if raw.len() > MAX_DESTINATION_LEN {
        return Err("longer than 2048 characters");
    }
    let url = url::Url::parse(raw).map_err(|_| "not an absolute URL")?;
    if !matches!(url.scheme(), "https" | "http") {
        return Err("the scheme must be https or http");
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err("no host");
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("credentials in the URL are not allowed");
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err("a query or fragment is not allowed");
    }
    if url.scheme() == "http" && !is_loopback(&url) {
        return Err("http is allowed for loopback hosts only; use https");
    }
    if ambiguous_path(url.path()) {
        return Err("the path has `;`, a backslash or an encoded `.`, `/` or `\\`");
    }
    Ok(url.to_string())
}

fn is_loopback(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d == "localhost",
        None => false,
    }
}

/// Path spellings that servers resolve differently from a URL parser (`..;` on Tomcat, encoded
/// separators and dots): a prefix check over them proves nothing, so they are refused.
pub(crate) fn ambiguous_path(path: &str) -> bool {
    let lower = path.to_ascii_lowercase();
    lower.contains(';')
        || lower.contains('\\')
        || ["%2e", "%2f", "%5c"].iter().any(|e| lower.contains(e))
}

/// Whether `target` falls under one of `allowed` (same scheme, host and port; the path equal
/// to the prefix's or below it at a `/` boundary). Both sides are parsed, so spelling tricks
/// (`HTTPS://Host:443/a/../b`) compare by meaning.
#[must_use]
pub fn destination_allowed(allowed: &[String], target: &str) -> bool {
    let Ok(target) = url::Url::parse(target) else {
        return false;
    };
    if !target.username().is_empty() || target.password().is_some() || ambiguous_path(target.path())
    {
        return false;
    }
    allowed.iter().any(|prefix| {
        let Ok(prefix) = url::Url::parse(prefix) else {
            return false;
        };
        let same_origin = prefix.scheme() == target.scheme()
            && prefix.host_str() == target.host_str()
            && prefix.port_or_known_default() == target.port_or_known_default();
        let (p, t) = (prefix.path(), target.path());
        same_origin
            && (p == t
                || (t.starts_with(p)
                    && (p.ends_with('/') || t.as_bytes().get(p.len()) == Some(&b'/'))))
    })
}

fn binding<'a>(org: &'a str, id: &'a str, attributes: &'a [u8]) -> Binding<'a> {
    Binding {
        org,
        record: id,
        field: VALUE_FIELD,
        attributes,
    }
}

/// The attributes a credential's value is bound to: its kind, then its destinations in sorted
/// order (a set: the order they were given in does not matter), each length-prefixed.
#[must_use]
pub fn attributes(kind: &str, destinations: &[String]) -> Vec<u8> {
    let mut sorted: Vec<&str> = destinations.iter().map(String::as_str).collect();
    sorted.sort_unstable();
    sorted.dedup();
    let mut out = Vec::new();
    let mut push = |part: &[u8]| {
        out.extend_from_slice(&u32::try_from(part.len()).unwrap_or(u32::MAX).to_be_bytes());
        out.extend_from_slice(part);
    };
    push(kind.as_bytes());
    push(
        &u32::try_from(sorted.len())
            .unwrap_or(u32::MAX)
            .to_be_bytes(),
    );
    for d in sorted {
        push(d.as_bytes());
    }
    out
}

/// Seals `value` for credential `id` of `org`, of `kind` and allowed to `destinations`, under
/// key version `version`: the binding every credential value uses (field `value`, the kind and
/// destinations as [`attributes`]). For callers that store credentials themselves (imports,
/// benchmarks, tests).
///
/// # Errors
/// `Validation` on `/value` when too large; `KeyProvider`.
pub fn seal(
    wrapper: &dyn KeyWrapper,
    org: OrgId,
    id: CredentialId,
    kind: &str,
    destinations: &[String],
    version: u32,
    value: &[u8],
) -> Result<SealedValue, CoreError> {
    let (org, id) = (org.to_string(), id.to_string());
    let attributes = attributes(kind, destinations);
    let sealed = envelope::seal(wrapper, &binding(&org, &id, &attributes), version, value);
    count_operation("seal", sealed.is_ok());
    sealed.map_err(vault_error)
}

fn count_operation(operation: &str, ok: bool) {
    crate::metrics::metrics()
        .vault_operations
        .inc(&[operation, if ok { "ok" } else { "error" }]);
}

fn vault_error(e: VaultError) -> CoreError {
    match e {
        VaultError::TooLarge => invalid(
            "/value",
            format!("must be 1 to {} bytes", envelope::MAX_VALUE_LEN),
        ),
        VaultError::Wrap(envelope::WrapError::Provider(_) | envelope::WrapError::NoKey(_)) => {
            CoreError::KeyProvider
        }
        VaultError::Truncated
        | VaultError::UnknownFormat(_)
        | VaultError::Legacy
        | VaultError::Rejected
        | VaultError::Wrap(envelope::WrapError::Rejected) => CoreError::Sealed,
    }
}

/// The active key version, held by `tx` until it ends (a rotation waits for it), and checked to
/// be held by `wrapper`'s provider.
async fn active_version(
    tx: &mut dyn crate::ports::OrgTx,
    wrapper: &dyn KeyWrapper,
) -> Result<u32, CoreError> {
    // On PostgreSQL a read that waited for a rotation finds the old row no longer active and,
    // in its snapshot, no new one yet: the second read sees the new version.
    let key = match tx.active_vault_key().await? {
        Some(k) => k,
        None => tx
            .active_vault_key()
            .await?
            .ok_or(CoreError::State("the vault has no active key version"))?,
    };
    same_provider(&key, wrapper)?;
    Ok(key.version)
}

fn same_provider(key: &VaultKey, wrapper: &dyn KeyWrapper) -> Result<(), CoreError> {
    if key.provider == wrapper.provider() {
        Ok(())
    } else {
        Err(CoreError::State(
            "the vault key version is held by another key provider than the configured one",
        ))
    }
}

async fn record(
    mut tx: Box<dyn crate::ports::OrgTx>,
    clock: &dyn Clock,
    org: OrgId,
    payload: Payload,
    id: CredentialId,
    context: Context,
) -> Result<(), CoreError> {
    let draft = Draft::success(payload, "credential", id.to_string(), context);
    audit::append(&mut *tx, Log::Org(org), draft, clock).await?;
    tx.commit().await?;
    Ok(())
}

/// Creates a credential (`credential.created`); the value is sealed before it is stored.
///
/// # Errors
/// `Validation`, `Conflict("credentials.name")`, `KeyProvider`, storage failures.
pub async fn create(
    store: &dyn Store,
    clock: &dyn Clock,
    wrapper: &dyn KeyWrapper,
    authorized: &Authorized,
    new: NewCredential,
) -> Result<Credential, CoreError> {
    let org = authorized.org_for(Action::CredentialsWrite)?;
    let name = check_name(&new.name)?;
    if !KINDS.contains(&new.kind.as_str()) {
        return Err(invalid(
            "/kind",
            format!("must be one of: {}", KINDS.join(", ")),
        ));
    }
    check_value(&new.value)?;
    let destinations = check_destinations(&new.destinations)?;
    let mut tx = store.org(org).await?;
    let version = active_version(&mut *tx, wrapper).await?;
    let id = CredentialId::new();
    let now = clock.now();
    let key = org_key(&mut *tx, now).await?;
    let wrapper = &OrgMasked::new(wrapper, &key);
    let sealed = seal(
        wrapper,
        org,
        id,
        &new.kind,
        &destinations,
        version,
        &new.value,
    )?;
    let credential = Credential {
        id,
        org,
        name,
        kind: new.kind,
        destinations,
        sealed,
        created_by: authorized.user(),
        created_at: now,
        updated_at: now,
        last_used_at: None,
    };
    tx.create_credential(&credential).await?;
    record(
        tx,
        clock,
        org,
        created_payload(&credential),
        id,
        authorized.context(),
    )
    .await?;
    Ok(credential)
}

fn created_payload(credential: &Credential) -> Payload {
    Payload::CredentialCreated {
        credential_id: credential.id.to_string(),
        name: credential.name.clone(),
        kind: credential.kind.clone(),
        destinations: credential.destinations.clone(),
    }
}

/// The `credential.created` event of a credential a feature stored itself
/// ([`store_managed`]), for the caller to append in the same transaction.
#[must_use]
pub fn created(credential: &Credential, context: Context) -> Draft {
    Draft::success(
        created_payload(credential),
        "credential",
        credential.id.to_string(),
        context,
    )
}

/// Seals and stores a credential inside `tx` for a feature that manages its own secrets
/// (webhook signing secrets): no authorization here (the caller's action covers it) and no
/// audit event (the caller records one in the same transaction).
///
/// # Errors
/// `Validation`, `Conflict("credentials.name")`, `KeyProvider`, storage failures.
pub(crate) async fn store_managed(
    tx: &mut dyn crate::ports::OrgTx,
    clock: &dyn Clock,
    wrapper: &dyn KeyWrapper,
    org: OrgId,
    new: NewCredential,
    by: Option<bulwark_types::UserId>,
) -> Result<Credential, CoreError> {
    let name = check_name(&new.name)?;
    check_value(&new.value)?;
    let version = active_version(tx, wrapper).await?;
    let id = CredentialId::new();
    let now = clock.now();
    let key = org_key(tx, now).await?;
    let wrapper = &OrgMasked::new(wrapper, &key);
    let sealed = seal(
        wrapper,
        org,
        id,
        &new.kind,
        &new.destinations,
        version,
        &new.value,
    )?;
    let credential = Credential {
        id,
        org,
        name,
        kind: new.kind,
        destinations: new.destinations,
        sealed,
        created_by: by,
        created_at: now,
        updated_at: now,
        last_used_at: None,
    };
    tx.create_credential(&credential).await?;
    Ok(credential)
}

/// The org's credentials, metadata only (the sealed bytes stay in the record; no caller
/// outside this module opens them).
///
/// # Errors
/// Storage failures.
pub async fn list(
    store: &dyn Store,
    authorized: &Authorized,
) -> Result<Vec<Credential>, CoreError> {
    let mut read = authorized
        .org_reader(store, Action::CredentialsRead)
        .await?;
    Ok(read.credentials().await?)
}

/// One credential's metadata.
///
/// # Errors
/// `NotFound` (also for another org's credential), storage failures.
pub async fn get(
    store: &dyn Store,
    authorized: &Authorized,
    id: CredentialId,
) -> Result<Credential, CoreError> {
    let mut read = authorized
        .org_reader(store, Action::CredentialsRead)
        .await?;
    read.credential(id).await?.ok_or(CoreError::NotFound)
}

/// Replaces a credential's value (`credential.replaced`) under a fresh data key and the active
/// key version; the old sealed value and data key are overwritten.
///
/// # Errors
/// `Validation`, `NotFound`, `KeyProvider`, storage failures.
pub async fn replace(
    store: &dyn Store,
    clock: &dyn Clock,
    wrapper: &dyn KeyWrapper,
    authorized: &Authorized,
    id: CredentialId,
    value: Zeroizing<Vec<u8>>,
) -> Result<Credential, CoreError> {
    let org = authorized.org_for(Action::CredentialsWrite)?;
    check_value(&value)?;
    let mut tx = store.org(org).await?;
    refuse_managed(&mut *tx, id).await?;
    let version = active_version(&mut *tx, wrapper).await?;
    let mut credential = tx.credential(id).await?.ok_or(CoreError::NotFound)?;
    let now = clock.now();
    let key = org_key(&mut *tx, now).await?;
    let wrapper = &OrgMasked::new(wrapper, &key);
    credential.sealed = seal(
        wrapper,
        org,
        id,
        &credential.kind,
        &credential.destinations,
        version,
        &value,
    )?;
    credential.updated_at = now;
    if !tx.replace_credential(id, &credential.sealed, now).await? {
        return Err(CoreError::NotFound);
    }
    let payload = Payload::CredentialReplaced {
        credential_id: id.to_string(),
    };
    record(tx, clock, org, payload, id, authorized.context()).await?;
    Ok(credential)
}

/// Deletes a credential (`credential.deleted`): its wrapped data key goes with the row, so
/// the value cannot be opened from this database again (crypto-shredding; see `docs/vault.md`
/// for copies in backups).
///
/// # Errors
/// `NotFound`, storage failures.
pub async fn delete(
    store: &dyn Store,
    clock: &dyn Clock,
    authorized: &Authorized,
    id: CredentialId,
) -> Result<(), CoreError> {
    let org = authorized.org_for(Action::CredentialsWrite)?;
    let mut tx = store.org(org).await?;
    refuse_managed(&mut *tx, id).await?;
    if !tx.delete_credential(id).await? {
        return Err(CoreError::NotFound);
    }
    let payload = Payload::CredentialDeleted {
        credential_id: id.to_string(),
    };
    record(tx, clock, org, payload, id, authorized.context()).await
}

/// A webhook endpoint's signing secret is changed only through the endpoint (rotation keeps
/// the old one signing during the overlap; a replaced or deleted value would break delivery),
/// and a single sign-on connection's secret only through the connection.
async fn refuse_managed(
    tx: &mut dyn crate::ports::OrgTx,
    id: CredentialId,
) -> Result<(), CoreError> {
    let managed = tx
        .webhook_endpoints()
        .await?
        .iter()
        .any(|e| e.secret == id || e.previous_secret == Some(id));
    if managed {
        return Err(CoreError::State(
            "this credential is a webhook endpoint's signing secret: rotate or delete it through the endpoint",
        ));
    }
    // A single sign-on connection's client secret or decryption key belongs to the connection,
    // which only owners change (`sso.write`): an admin's `credentials.write` must not reach it.
    if tx
        .sso_connections()
        .await?
        .iter()
        .any(|c| c.secret_id == Some(id))
    {
        return Err(CoreError::State(
            "this credential is a single sign-on connection's secret: replace it through the connection",
        ));
    }
    Ok(())
}

/// Bulwark uses a credential: opens its value to send it to `destination` for `purpose`
/// (e.g. `webhook.delivery`). A destination the credential does not allow is refused and the
/// refusal audited; a use is audited (`credential.used`) in the same transaction that records
/// it, before the value is handed out.
///
/// # Errors
/// `NotFound`; `Forbidden`-like `Validation` on `/destination` when not allowed; `Sealed` when
/// the stored value does not open (tampered, or sealed under a retired key version);
/// `KeyProvider`; storage failures.
pub async fn use_value(
    store: &dyn Store,
    clock: &dyn Clock,
    wrapper: &dyn KeyWrapper,
    org: OrgId,
    id: CredentialId,
    destination: &str,
    purpose: &str,
) -> Result<Zeroizing<Vec<u8>>, CoreError> {
    let mut tx = store.org(org).await?;
    let credential = tx.credential(id).await?.ok_or(CoreError::NotFound)?;
    let payload = Payload::CredentialUsed {
        credential_id: id.to_string(),
        destination: audited_destination(destination),
        purpose: purpose.to_owned(),
    };
    let refused = if destination_allowed(&credential.destinations, destination) {
        match tx.vault_key(credential.sealed.key_version).await? {
            Some(k) if k.state == VaultKeyState::Retired => {
                Err(("retired_key_version", CoreError::Sealed))
            }
            Some(k) if same_provider(&k, wrapper).is_err() => {
                Err(("key_provider_mismatch", CoreError::KeyProvider))
            }
            Some(_) if envelope::is_legacy(&credential.sealed) => {
                // Not yet moved to the envelope that binds kind and destinations (the rewrap
                // job does, after the upgrade's rotation): not sent until it is.
                Err(("legacy_envelope", CoreError::Sealed))
            }
            Some(_) => match open(
                wrapper,
                tx.org_key().await?.map(|(_, k)| k).as_ref(),
                &credential,
            ) {
                Ok(value) => Ok(value),
                Err(CoreError::KeyProvider) => {
                    Err(("key_provider_unavailable", CoreError::KeyProvider))
                }
                Err(e) => Err(("sealed_value_rejected", e)),
            },
            None => Err(("unknown_key_version", CoreError::Sealed)),
        }
    } else {
        Err((
            "destination_not_allowed",
            invalid("/destination", "the credential may not be sent there"),
        ))
    };
    match refused {
        Ok(value) => {
            tx.touch_credential(id, clock.now()).await?;
            record(tx, clock, org, payload, id, Context::system(None)).await?;
            Ok(value)
        }
        Err((reason, error)) => {
            // The refusal is evidence (a tampered row, a retired key, a wrong destination):
            // recorded before the error is returned.
            let draft = Draft {
                outcome: bulwark_audit::event::Outcome {
                    result: bulwark_audit::event::Result_::Failure,
                    reason: Some(reason.into()),
                },
                ..Draft::success(payload, "credential", id.to_string(), Context::system(None))
            };
            audit::append(&mut *tx, Log::Org(org), draft, clock).await?;
            tx.commit().await?;
            Err(error)
        }
    }
}

/// A destination as recorded in the audit log: scheme, host, port and path of the parsed URL
/// (never its user info, query or fragment, which may carry secrets), at most 512 characters.
fn audited_destination(target: &str) -> String {
    let Ok(mut url) = url::Url::parse(target) else {
        return "(not a URL)".into();
    };
    url.set_query(None);
    url.set_fragment(None);
    let _ = url.set_username("");
    let _ = url.set_password(None);
    url.as_str().chars().take(512).collect()
}

fn open(
    wrapper: &dyn KeyWrapper,
    key: Option<&OrgKey>,
    credential: &Credential,
) -> Result<Zeroizing<Vec<u8>>, CoreError> {
    open_sealed(wrapper, key, credential, false).map_err(vault_error)
}

/// The org's vault secret, made (random, stored in the org's rows) on first use. Every value
/// sealed for the org is masked with it ([`OrgMasked`]); a purge deletes it.
///
/// # Errors
/// `KeyProvider` when the random generator fails; storage failures.
async fn org_key(
    tx: &mut dyn crate::ports::OrgTx,
    now: time::OffsetDateTime,
) -> Result<OrgKey, CoreError> {
    if let Some((_, key)) = tx.org_key().await? {
        return Ok(key);
    }
    let key = OrgKey::generate().map_err(|_| CoreError::KeyProvider)?;
    // Another transaction may have made one meanwhile: then its key is the org's.
    tx.create_org_key(uuid::Uuid::now_v7(), &key, now).await?;
    tx.org_key()
        .await?
        .map(|(_, k)| k)
        .ok_or(CoreError::Store(crate::StoreError::NotFound))
}

/// Opens `credential`'s value for its own org, id, kind and destinations; with `legacy`, a value
/// in envelope v1 (which bound no kind or destinations) is opened too: only for moving it under
/// a key version sealed values of which bind them, trusting the row's kind and destinations.
///
/// With the org's secret `key`, the data key is unmasked with it; a value sealed before the org
/// had one (by an earlier release, or by a tool sealing with the bare wrapper) opens with the bare
/// wrapper, until a rotation moves it under the org's secret.
fn open_sealed(
    wrapper: &dyn KeyWrapper,
    key: Option<&OrgKey>,
    credential: &Credential,
    legacy: bool,
) -> Result<Zeroizing<Vec<u8>>, VaultError> {
    let (org, id) = (credential.org.to_string(), credential.id.to_string());
    let attributes = attributes(&credential.kind, &credential.destinations);
    let binding = binding(&org, &id, &attributes);
    let open_with = |w: &dyn KeyWrapper| {
        if legacy && envelope::is_legacy(&credential.sealed) {
            envelope::open_legacy(w, &binding, &credential.sealed)
        } else {
            envelope::open(w, &binding, &credential.sealed)
        }
    };
    let opened = match key {
        Some(key) => match open_with(&OrgMasked::new(wrapper, key)) {
            Err(VaultError::Rejected | VaultError::Wrap(envelope::WrapError::Rejected)) => {
                open_with(wrapper)
            }
            other => other,
        },
        None => open_with(wrapper),
    };
    count_operation("open", opened.is_ok());
    opened
}

/// Changes where a managed credential (a webhook endpoint's signing secret) may be sent, and
/// seals its value again, bound to the new destinations, under the active key version, inside
/// `tx`. No authorization (the caller's action covers it) and no audit event (the caller records
/// one in the same transaction).
///
/// # Errors
/// `NotFound`; `Sealed` when the stored value does not open (it is left as it is);
/// `KeyProvider`; storage failures.
pub(crate) async fn set_managed_destinations(
    tx: &mut dyn crate::ports::OrgTx,
    clock: &dyn Clock,
    wrapper: &dyn KeyWrapper,
    id: CredentialId,
    destinations: Vec<String>,
) -> Result<(), CoreError> {
    let version = active_version(tx, wrapper).await?;
    let credential = tx.credential(id).await?.ok_or(CoreError::NotFound)?;
    let legacy = legacy_version(tx, credential.sealed.key_version).await?;
    let key = org_key(tx, clock.now()).await?;
    let value = open_sealed(wrapper, Some(&key), &credential, legacy).map_err(vault_error)?;
    let wrapper = &OrgMasked::new(wrapper, &key);
    let sealed = seal(
        wrapper,
        credential.org,
        id,
        &credential.kind,
        &destinations,
        version,
        &value,
    )?;
    if !tx.set_credential_destinations(id, &destinations).await?
        || !tx.replace_credential(id, &sealed, clock.now()).await?
    {
        return Err(CoreError::NotFound);
    }
    Ok(())
}

/// Whether `version` was created before values bound their kind and destinations (so a value
/// under it may be in envelope v1).
async fn legacy_version(tx: &mut dyn crate::ports::OrgTx, version: u32) -> Result<bool, CoreError> {
    Ok(tx
        .vault_key(version)
        .await?
        .is_some_and(|k| !k.binds_attributes))
}

/// The vault's key versions and how many credentials each seals.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyStatus {
    /// Every version, oldest first.
    pub keys: Vec<VaultKey>,
    /// (version, credentials sealed under it).
    pub counts: Vec<(u32, u64)>,
}

impl KeyStatus {
    /// The active version.
    #[must_use]
    pub fn active(&self) -> Option<u32> {
        self.keys
            .iter()
            .find(|k| k.state == VaultKeyState::Active)
            .map(|k| k.version)
    }

    /// Credentials not yet under the active version.
    #[must_use]
    pub fn remaining(&self) -> u64 {
        let active = self.active();
        self.counts
            .iter()
            .filter(|(v, _)| Some(*v) != active)
            .map(|(_, n)| n)
            .sum()
    }

    /// All credentials.
    #[must_use]
    pub fn total(&self) -> u64 {
        self.counts.iter().map(|(_, n)| n).sum()
    }
}

/// The key versions and counts.
///
/// # Errors
/// Storage failures.
pub async fn status(store: &dyn Store) -> Result<KeyStatus, CoreError> {
    let mut tx = store.system().await?;
    let keys = tx.vault_keys().await?;
    drop(tx);
    Ok(KeyStatus {
        keys,
        counts: store.vault_counts().await?,
    })
}

/// Makes sure a first key version exists (at first start): version 1 of `wrapper`'s provider,
/// created in the provider if it has to be (an HSM key). Returns the active version.
///
/// # Errors
/// `KeyProvider` when the provider cannot create the key, storage failures.
pub async fn ensure_initial_key(
    store: &dyn Store,
    clock: &dyn Clock,
    wrapper: &dyn KeyWrapper,
) -> Result<VaultKey, CoreError> {
    let mut tx = store.system().await?;
    let keys = tx.vault_keys().await?;
    if let Some(active) = keys.iter().find(|k| k.state == VaultKeyState::Active) {
        return Ok(active.clone());
    }
    if !keys.is_empty() {
        return Err(CoreError::State(
            "the vault has key versions but none is active",
        ));
    }
    wrapper
        .create_version(1)
        .map_err(|_| CoreError::KeyProvider)?;
    let key = VaultKey {
        version: 1,
        provider: wrapper.provider().to_owned(),
        state: VaultKeyState::Active,
        created_at: clock.now(),
        retired_at: None,
        binds_attributes: true,
    };
    tx.insert_vault_key(&key).await?;
    tx.commit().await?;
    Ok(key)
}

/// Starts a rotation (`vault.key_rotated` in the system log): a new key version becomes active
/// and the old one `previous`, still opened until the rewrap job has moved every credential.
///
/// # Errors
/// `State` when the vault has no active version; `KeyProvider`; `Conflict` when another rotation
/// won the race; storage failures.
pub async fn rotate(
    store: &dyn Store,
    clock: &dyn Clock,
    wrapper: &dyn KeyWrapper,
    actor: Context,
) -> Result<VaultKey, CoreError> {
    let mut tx = store.system().await?;
    let keys = tx.vault_keys().await?;
    let active = keys
        .iter()
        .find(|k| k.state == VaultKeyState::Active)
        .ok_or(CoreError::State("the vault has no active key version"))?;
    same_provider(active, wrapper)?;
    let next = keys.iter().map(|k| k.version).max().unwrap_or(0) + 1;
    wrapper
        .create_version(next)
        .map_err(|_| CoreError::KeyProvider)?;
    let now = clock.now();
    tx.set_vault_key_state(active.version, VaultKeyState::Previous, now)
        .await?;
    let key = VaultKey {
        version: next,
        provider: wrapper.provider().to_owned(),
        state: VaultKeyState::Active,
        created_at: now,
        retired_at: None,
        binds_attributes: true,
    };
    tx.insert_vault_key(&key).await?;
    let draft = Draft::success(
        Payload::VaultKeyRotated {
            from_version: active.version,
            to_version: next,
            provider: key.provider.clone(),
        },
        "vault_key",
        next.to_string(),
        actor,
    );
    audit::append(&mut *tx, Log::System, draft, clock).await?;
    tx.commit().await?;
    Ok(key)
}

/// Moves a vault from before value envelope v2 onto it, once: when the active key version
/// predates it (its values may not bind their kind and destinations), rotates to a new version
/// (`vault.key_rotated`, by the system), so the rewrap job moves every credential into envelope
/// v2, binding each row's kind and destinations as they are then. Returns the new version, or
/// `None` when there was nothing to do. Run at start, before serving.
///
/// # Errors
/// As [`rotate`], unless another replica did the same rotation meanwhile.
pub async fn upgrade_envelopes(
    store: &dyn Store,
    clock: &dyn Clock,
    wrapper: &dyn KeyWrapper,
) -> Result<Option<VaultKey>, CoreError> {
    let upgraded = |keys: &[VaultKey]| {
        keys.iter()
            .any(|k| k.state == VaultKeyState::Active && k.binds_attributes)
    };
    if upgraded(&store.system().await?.vault_keys().await?) {
        return Ok(None);
    }
    match rotate(store, clock, wrapper, Context::system(None)).await {
        Ok(key) => Ok(Some(key)),
        Err(e) => {
            // Another replica starting at the same time may have won the race.
            if upgraded(&store.system().await?.vault_keys().await?) {
                tracing::debug!(error = %e, "another process moved the vault to envelope v2");
                Ok(None)
            } else {
                Err(e)
            }
        }
    }
}

/// What one rewrap batch did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Rewrapped {
    /// Credentials moved to the active version.
    pub moved: u64,
    /// Credentials that did not open (tampered, or their version's key is gone): left as they
    /// are, and their version is not retired.
    pub failed: u64,
    /// Whether credentials remain on older versions (beyond the failed ones).
    pub more: bool,
}

/// Moves up to `batch` credentials of one org to the active key version, in one transaction
/// that holds the active version (a rotation waits for it to commit, so nothing is ever moved to
/// a version that stopped being active). Safe to run on several replicas at once (rows are held;
/// each update checks the version it read and that its target is still active) and to
/// interrupt at any point. Credentials that do not open are skipped (paging past them), so they
/// never stall the others.
///
/// # Errors
/// `KeyProvider` when the provider fails (the job retries later); storage failures.
pub async fn rewrap_batch(
    store: &dyn Store,
    wrapper: &dyn KeyWrapper,
    batch: u32,
) -> Result<Rewrapped, CoreError> {
    // Key versions only (no per-version counts, which would scan every row each batch).
    let keys = store.system().await?.vault_keys().await?;
    let Some(active) = keys
        .iter()
        .find(|k| k.state == VaultKeyState::Active)
        .map(|k| k.version)
    else {
        return Ok(Rewrapped::default());
    };
    let retired = |v: u32| {
        keys.iter()
            .any(|k| k.version == v && k.state == VaultKeyState::Retired)
    };
    let legacy = |v: u32| keys.iter().any(|k| k.version == v && !k.binds_attributes);
    let mut out = Rewrapped::default();
    for org in store.vault_stale_orgs(active).await? {
        let mut after = None;
        loop {
            let mut tx = store.org(org).await?;
            let target = active_version(&mut *tx, wrapper).await?;
            let stale = tx.stale_credentials(target, batch, after).await?;
            // The job has no clock: the secret's creation time is the host's.
            let key = org_key(&mut *tx, time::OffsetDateTime::now_utc()).await?;
            let masked = OrgMasked::new(wrapper, &key);
            let Some(last) = stale.last() else {
                break;
            };
            after = Some((last.sealed.key_version, last.id));
            let mut failed = Vec::new();
            for c in &stale {
                // A value in envelope v1 is moved into v2 binding the row's kind and
                // destinations as they are now: trusted once, at the upgrade (ADR 0007).
                let moved = if retired(c.sealed.key_version) {
                    Err(VaultError::Rejected)
                } else {
                    open_sealed(wrapper, Some(&key), c, legacy(c.sealed.key_version)).and_then(
                        |plain| {
                            let (o, i) = (org.to_string(), c.id.to_string());
                            let attributes = attributes(&c.kind, &c.destinations);
                            envelope::seal(&masked, &binding(&o, &i, &attributes), target, &plain)
                        },
                    )
                };
                count_operation("rewrap", moved.is_ok());
                match moved {
                    Ok(sealed) => {
                        if tx
                            .rewrap_credential(c.id, c.sealed.key_version, &sealed)
                            .await?
                        {
                            out.moved += 1;
                            crate::metrics::metrics().vault_rewrapped.inc(&[]);
                        }
                    }
                    Err(VaultError::Wrap(
                        envelope::WrapError::Provider(_) | envelope::WrapError::NoKey(_),
                    )) => return Err(CoreError::KeyProvider),
                    Err(_) => failed.push(c.id),
                }
            }
            tx.commit().await?;
            if let Some(first) = failed.first() {
                out.failed += failed.len() as u64;
                tracing::warn!(
                    org = %org, count = failed.len(), first = %first,
                    "credentials did not open for rewrapping; they stay on their key version (bulwark keys check lists them)"
                );
            }
            if out.moved > 0 {
                out.more = true;
                return Ok(out);
            }
            if stale.len() < usize::try_from(batch).unwrap_or(usize::MAX) {
                break;
            }
        }
    }
    Ok(out)
}

/// Retires every `previous` version no credential uses any more (`vault.key_retired` in the
/// system log), then destroys its KEK where the provider can. Returns the versions retired.
///
/// # Errors
/// Storage failures. A provider that fails to destroy a key is logged, not an error: the
/// version is retired (refused) all the same, and destruction is retried on the next run.
pub async fn retire_unused(
    store: &dyn Store,
    clock: &dyn Clock,
    wrapper: &dyn KeyWrapper,
) -> Result<Vec<u32>, CoreError> {
    let mut tx = store.system().await?;
    let keys = tx.vault_keys().await?;
    let now = clock.now();
    let mut retired = Vec::new();
    for k in keys.iter().filter(|k| k.state == VaultKeyState::Previous) {
        if tx
            .set_vault_key_state(k.version, VaultKeyState::Retired, now)
            .await?
        {
            let draft = Draft::success(
                Payload::VaultKeyRetired {
                    version: k.version,
                    provider: k.provider.clone(),
                },
                "vault_key",
                k.version.to_string(),
                Context::system(None),
            );
            audit::append(&mut *tx, Log::System, draft, clock).await?;
            retired.push(k.version);
        }
    }
    tx.commit().await?;
    for k in keys
        .iter()
        .filter(|k| retired.contains(&k.version) || k.state == VaultKeyState::Retired)
    {
        // Retried on every run until the provider no longer holds it (a token that failed
        // once); a no-op for derived keys.
        if k.provider != wrapper.provider() || !wrapper.holds_version(k.version).unwrap_or(true) {
            continue;
        }
        if let Err(e) = wrapper.destroy_version(k.version) {
            tracing::warn!(version = k.version, error = %e, "a retired key version could not be destroyed; retrying on the next run");
        }
    }
    Ok(retired)
}

/// The result of opening every credential ([`check_all`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CheckReport {
    /// Credentials that opened.
    pub opened: u64,
    /// Credentials that did not: (org, credential, key version).
    pub failed: Vec<(OrgId, CredentialId, u32)>,
}

/// Opens every credential of every org and reports which do not (after a restore, a rotation
/// or a crash). Values are opened in memory and dropped; nothing is audited as a use.
///
/// # Errors
/// Storage failures.
pub async fn check_all(
    store: &dyn Store,
    wrapper: &dyn KeyWrapper,
) -> Result<CheckReport, CoreError> {
    let status = status(store).await?;
    let mut report = CheckReport::default();
    for org in store.vault_stale_orgs(ABOVE_EVERY_VERSION).await? {
        let mut read = store.org_read(org).await?;
        let org_key = read.org_key().await?.map(|(_, k)| k);
        for c in read.credentials().await? {
            let key = status
                .keys
                .iter()
                .find(|k| k.version == c.sealed.key_version && k.state != VaultKeyState::Retired);
            // A v1 value under a version from before the upgrade opens for the rewrap job.
            if key.is_some_and(|k| {
                open_sealed(wrapper, org_key.as_ref(), &c, !k.binds_attributes).is_ok()
            }) {
                report.opened += 1;
            } else {
                report.failed.push((org, c.id, c.sealed.key_version));
            }
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allowed() -> Vec<String> {
        check_destinations(&[
            "https://api.github.com/repos/acme/".into(),
            "https://hooks.example.com/in".into(),
            "http://127.0.0.1:8080".into(),
        ])
        .unwrap()
    }

    #[test]
    fn destinations_must_be_plain_http_urls() {
        for bad in [
            "not a url",
            "/relative/path",
            "ftp://example.com/",
            "https://user:pw@example.com/",
            "https://user@example.com/",
            "https://example.com/?token=1",
            "https://example.com/#frag",
            "file:///etc/passwd",
            "javascript:alert(1)",
            "https://",
            "http://hooks.example.com/in",
            "https://example.com/a;b",
            "https://example.com/a%2Fb",
        ] {
            let err = check_destinations(&[bad.into()]).unwrap_err();
            assert!(
                matches!(
                    err,
                    CoreError::Validation {
                        field: "/destinations",
                        ..
                    }
                ),
                "{bad}"
            );
        }
        assert!(check_destinations(&[]).is_err());
        let many: Vec<String> = (0..=MAX_DESTINATIONS)
            .map(|i| format!("https://h{i}.example.com/"))
            .collect();
        assert!(check_destinations(&many).is_err());
        let long = format!("https://example.com/{}", "a".repeat(MAX_DESTINATION_LEN));
        assert!(check_destinations(&[long]).is_err());
        assert_eq!(
            check_destinations(&[
                "HTTPS://Example.COM:443/a".into(),
                "https://example.com/a".into()
            ])
            .unwrap(),
            vec!["https://example.com/a".to_owned()]
        );
    }

    #[test]
    fn a_destination_is_a_prefix_by_origin_and_path_segment() {
        let a = allowed();
        for ok in [
            "https://api.github.com/repos/acme/widgets/issues",
            "https://hooks.example.com/in",
            "https://hooks.example.com/in/deep",
            "https://HOOKS.example.com:443/in",
            "http://127.0.0.1:8080/anything",
        ] {
            assert!(destination_allowed(&a, ok), "{ok}");
        }
        for refused in [
            "https://api.github.com/repos/acme-evil/x",
            "https://api.github.com/repos/acm",
            "https://hooks.example.com/inbox",
            "https://hooks.example.com/",
            "http://hooks.example.com/in",
            "https://hooks.example.com:8443/in",
            "https://hooks.example.com.evil.net/in",
            "https://evil.net/https://hooks.example.com/in",
            "https://user@hooks.example.com/in",
            "http://127.0.0.1:8081/",
            "http://localhost:8080/",
            "https://api.github.com/repos/acme/../other/x",
            "https://api.github.com/repos/acme/..;/evil",
            "https://api.github.com/repos/acme/%2e%2e%2fevil",
            "https://api.github.com/repos/acme/..%5cevil",
            "https://api.github.com/repos/acme/x%2Fy",
            "https://api.github.com./repos/acme/x",
            "https://[::1]/repos/acme/x",
            "not a url",
        ] {
            assert!(!destination_allowed(&a, refused), "{refused}");
        }
    }
}
