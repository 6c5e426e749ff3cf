//! An org's webhook endpoints: creating, listing, changing and deleting them, and their signing
//! secrets (stored sealed in the vault, rotated with an overlap).

use bulwark_audit::event::{Context, Payload};
use bulwark_authz::Action;
use bulwark_crypto::vault::KeyWrapper;
use bulwark_crypto::webhook::WebhookSecret;
use bulwark_types::{Clock, CredentialId, EndpointId, OrgId};
use zeroize::Zeroizing;

use super::{invalid, valid_pattern};
use crate::audit::{self, Draft, Log};
use crate::authz::Authorized;
use crate::egress::{EgressError, EgressPolicy};
use crate::model::{SignatureScheme, WebhookAttempt, WebhookDelivery, WebhookEndpoint};
use crate::ports::{OrgTx, Store};
use crate::vault::{self, NewCredential};
use crate::{CoreError, StoreError};

/// Event type patterns per endpoint at most.
pub const MAX_EVENT_TYPES: usize = 50;
/// The longest rotation overlap (the old secret signs at most this long).
pub const MAX_OVERLAP_SECS: u32 = 7 * 24 * 3600;
/// The overlap when none is given.
pub const DEFAULT_OVERLAP_SECS: u32 = 24 * 3600;
/// Deliveries per second per endpoint, at most and by default.
pub const MAX_RATE: u32 = 10_000;
const DEFAULT_RATE: u32 = 50;
/// Deliveries in flight per endpoint, at most and by default.
pub const MAX_IN_FLIGHT: u32 = 256;
const DEFAULT_IN_FLIGHT: u32 = 10;
/// Endpoints per org at most.
pub const MAX_ENDPOINTS: usize = 50;

fn check_patterns(patterns: Vec<String>) -> Result<Vec<String>, CoreError> {
    if patterns.is_empty() || patterns.len() > MAX_EVENT_TYPES {
        return Err(invalid(
            "/event_types",
            format!("must list 1 to {MAX_EVENT_TYPES} event types or patterns (`*` for all)"),
        ));
    }
    let mut out: Vec<String> = Vec::with_capacity(patterns.len());
    for p in patterns {
        if !valid_pattern(&p) {
            return Err(invalid(
                "/event_types",
                format!(
                    "unknown event type `{}`, or one that never reaches an org (system log only): use a type of the event catalog that orgs receive, `app.<name>`, `<prefix>.*` or `*`",
                    p.chars().take(100).collect::<String>()
                ),
            ));
        }
        if !out.contains(&p) {
            out.push(p);
        }
    }
    Ok(out)
}

/// An endpoint to create.
pub struct NewEndpoint {
    /// Where to POST.
    pub url: String,
    /// Free text.
    pub description: Option<String>,
    /// Patterns; `["*"]` when absent.
    pub event_types: Option<Vec<String>>,
    /// `standard` (default) or `stripe`.
    pub scheme: Option<String>,
    /// Deliveries per second.
    pub rate_limit: Option<u32>,
    /// Deliveries at once.
    pub max_in_flight: Option<u32>,
}

/// Changes to an endpoint (absent fields stay).
#[derive(Default)]
pub struct EndpointPatch {
    /// Where to POST.
    pub url: Option<String>,
    /// Free text.
    pub description: Option<String>,
    /// Patterns.
    pub event_types: Option<Vec<String>>,
    /// `standard` or `stripe`.
    pub scheme: Option<String>,
    /// Deliveries per second.
    pub rate_limit: Option<u32>,
    /// Deliveries at once.
    pub max_in_flight: Option<u32>,
    /// Enable (resets the failure count) or disable.
    pub enabled: Option<bool>,
}

/// Checks an endpoint URL: absolute, `https` (or `http` where the deployment allows it), no
/// credentials, no fragment, no ambiguous path, on the allowlist, and not resolving to a denied
/// address (a name that does not resolve yet is accepted: it is vetted again at every send).
///
/// # Errors
/// `Validation` on `/url`.
pub async fn check_url(raw: &str, policy: &EgressPolicy) -> Result<url::Url, CoreError> {
    let bad = |why: &str| invalid("/url", format!("not an allowed webhook URL: {why}"));
    if raw.len() > 2048 {
        return Err(bad("longer than 2048 characters"));
    }
    let url = url::Url::parse(raw).map_err(|_| bad("not an absolute URL"))?;
    if url.fragment().is_some() {
        return Err(bad("a fragment is not allowed"));
    }
    if vault::ambiguous_path(url.path()) {
        return Err(bad(
            "the path has `;`, a backslash or an encoded `.`, `/` or `\\`",
        ));
    }
    match crate::egress::vetted_addresses(&url, policy).await {
        Ok(_) | Err(EgressError::Unresolved) => Ok(url),
        Err(e) => Err(bad(&e.to_string())),
    }
}

/// Where the signing secret may be used: the endpoint's origin. The secret never leaves
/// Bulwark (it signs), and the path of a hook URL often carries a token of its own, which must
/// not reach the vault's metadata or the audit log.
pub(super) fn destination(url: &url::Url) -> String {
    format!("{}/", url.origin().ascii_serialization())
}

fn check_description(d: Option<String>) -> Result<String, CoreError> {
    let d = d.unwrap_or_default();
    if d.chars().count() > 500 || d.chars().any(|c| c.is_control() && c != '\n') {
        return Err(invalid(
            "/description",
            "must be at most 500 characters, without control characters",
        ));
    }
    Ok(d)
}

fn check_scheme(s: Option<&str>) -> Result<Option<SignatureScheme>, CoreError> {
    s.map(|s| {
        SignatureScheme::parse(s)
            .ok_or_else(|| invalid("/scheme", "must be `standard` or `stripe`"))
    })
    .transpose()
}

fn check_range(field: &'static str, v: Option<u32>, max: u32) -> Result<Option<u32>, CoreError> {
    match v {
        Some(n) if n == 0 || n > max => Err(invalid(field, format!("must be 1 to {max}"))),
        other => Ok(other),
    }
}

/// Stores a fresh signing secret as a vault credential of the endpoint.
async fn new_secret(
    tx: &mut dyn OrgTx,
    clock: &dyn Clock,
    wrapper: &dyn KeyWrapper,
    org: OrgId,
    endpoint: EndpointId,
    url: &url::Url,
    by: Option<bulwark_types::UserId>,
) -> Result<(CredentialId, WebhookSecret, Draft), CoreError> {
    let secret = WebhookSecret::generate().map_err(|_| CoreError::Crypto)?;
    let tag = uuid::Uuid::new_v4().simple().to_string();
    let credential = vault::store_managed(
        tx,
        clock,
        wrapper,
        org,
        NewCredential {
            name: format!("webhook {endpoint} signing {}", tag.get(..8).unwrap_or("")),
            kind: "webhook_secret".into(),
            value: Zeroizing::new(secret.expose().as_bytes().to_vec()),
            destinations: vec![destination(url)],
        },
        by,
    )
    .await?;
    let draft = vault::created(&credential, Context::system(None));
    Ok((credential.id, secret, draft))
}

pub(super) fn endpoint_draft(payload: Payload, id: EndpointId, context: Context) -> Draft {
    Draft::success(payload, "webhook_endpoint", id.to_string(), context)
}

/// Creates an endpoint (`webhook.endpoint_created`) with a fresh signing secret, returned here
/// once and stored only sealed in the vault.
///
/// # Errors
/// `Validation`, `KeyProvider`, storage failures.
pub async fn create_endpoint(
    store: &dyn Store,
    clock: &dyn Clock,
    wrapper: &dyn KeyWrapper,
    policy: &EgressPolicy,
    authorized: &Authorized,
    new: NewEndpoint,
) -> Result<(WebhookEndpoint, WebhookSecret), CoreError> {
    let org = authorized.org_for(Action::WebhooksWrite)?;
    let url = check_url(&new.url, policy).await?;
    let description = check_description(new.description)?;
    let event_types = check_patterns(new.event_types.unwrap_or_else(|| vec!["*".into()]))?;
    let scheme = check_scheme(new.scheme.as_deref())?.unwrap_or(SignatureScheme::Standard);
    let rate_limit = check_range("/rate_limit", new.rate_limit, MAX_RATE)?.unwrap_or(DEFAULT_RATE);
    let max_in_flight = check_range("/max_in_flight", new.max_in_flight, MAX_IN_FLIGHT)?
        .unwrap_or(DEFAULT_IN_FLIGHT);
    let id = EndpointId::new();
    let mut tx = store.org(org).await?;
    if tx.webhook_endpoints().await?.len() >= MAX_ENDPOINTS {
        return Err(CoreError::State(
            "the org has 50 webhook endpoints, the most it may have: delete one first",
        ));
    }
    let (secret_id, secret, secret_draft) =
        new_secret(&mut *tx, clock, wrapper, org, id, &url, authorized.user()).await?;
    let now = clock.now();
    let endpoint = WebhookEndpoint {
        id,
        org,
        url: url.to_string(),
        description,
        event_types,
        scheme,
        enabled: true,
        disabled_reason: None,
        rate_limit,
        max_in_flight,
        secret: secret_id,
        previous_secret: None,
        previous_until: None,
        failing_since: None,
        consecutive_failures: 0,
        created_at: now,
        updated_at: now,
    };
    tx.create_webhook_endpoint(&endpoint).await?;
    let created = endpoint_draft(
        Payload::WebhookEndpointCreated {
            endpoint_id: id.to_string(),
            url: audited_url(&url),
            event_types: endpoint.event_types.clone(),
            scheme: scheme.as_str().into(),
        },
        id,
        authorized.context(),
    );
    let secret_draft = Draft {
        context: authorized.context(),
        ..secret_draft
    };
    audit::append_many(&mut *tx, Log::Org(org), vec![secret_draft, created], clock).await?;
    tx.commit().await?;
    Ok((endpoint, secret))
}

/// A URL as recorded in the audit log: its origin only (the path and query of a hook URL
/// often carry a token, as Slack's and Teams' do).
fn audited_url(url: &url::Url) -> String {
    let rest = if url.path() == "/" && url.query().is_none() {
        ""
    } else {
        "…"
    };
    format!("{}/{rest}", url.origin().ascii_serialization())
}

/// Whether `patterns` can match one of Bulwark's own (audit) event types: subscribing to those
/// reads the audit log, so it needs `audit.read` as well.
#[must_use]
pub fn reads_audit_events(patterns: &[String]) -> bool {
    patterns
        .iter()
        .any(|p| !(p == "app.*" || p.starts_with("app.")))
}

/// The org's endpoints.
///
/// # Errors
/// Storage failures.
pub async fn list_endpoints(
    store: &dyn Store,
    authorized: &Authorized,
) -> Result<Vec<WebhookEndpoint>, CoreError> {
    let mut read = authorized.org_reader(store, Action::WebhooksRead).await?;
    Ok(read.webhook_endpoints().await?)
}

/// One endpoint with its latest deliveries and attempts (at most `limit` of each).
///
/// # Errors
/// `NotFound`, storage failures.
pub async fn endpoint_log(
    store: &dyn Store,
    authorized: &Authorized,
    id: EndpointId,
    limit: u32,
) -> Result<(WebhookEndpoint, Vec<WebhookDelivery>, Vec<WebhookAttempt>), CoreError> {
    let mut read = authorized.org_reader(store, Action::WebhooksRead).await?;
    let endpoint = read
        .webhook_endpoint(id)
        .await?
        .ok_or(CoreError::NotFound)?;
    let deliveries = read.webhook_deliveries(id, limit).await?;
    let attempts = read.webhook_attempts(id, limit).await?;
    Ok((endpoint, deliveries, attempts))
}

/// Changes an endpoint (`webhook.endpoint_updated`). Enabling it clears its failure count. A
/// new URL moves its signing secrets' destination, and their values are sealed again for it.
///
/// # Errors
/// `Validation`, `NotFound`, `Sealed` (a signing secret that does not open: nothing changes),
/// `KeyProvider`, storage failures.
pub async fn update_endpoint(
    store: &dyn Store,
    clock: &dyn Clock,
    wrapper: &dyn KeyWrapper,
    policy: &EgressPolicy,
    authorized: &Authorized,
    id: EndpointId,
    patch: EndpointPatch,
) -> Result<WebhookEndpoint, CoreError> {
    let org = authorized.org_for(Action::WebhooksWrite)?;
    let url = match &patch.url {
        Some(raw) => Some(check_url(raw, policy).await?),
        None => None,
    };
    let description = patch
        .description
        .map(|d| check_description(Some(d)))
        .transpose()?;
    let event_types = patch.event_types.map(check_patterns).transpose()?;
    let scheme = check_scheme(patch.scheme.as_deref())?;
    let rate_limit = check_range("/rate_limit", patch.rate_limit, MAX_RATE)?;
    let max_in_flight = check_range("/max_in_flight", patch.max_in_flight, MAX_IN_FLIGHT)?;
    let mut tx = store.org(org).await?;
    let mut e = tx
        .lock_webhook_endpoint(id)
        .await?
        .ok_or(CoreError::NotFound)?;
    if let Some(url) = &url {
        e.url = url.to_string();
        // The secrets' values are bound to their destinations: sealed again for the new one.
        for secret in [Some(e.secret), e.previous_secret].into_iter().flatten() {
            vault::set_managed_destinations(
                &mut *tx,
                clock,
                wrapper,
                secret,
                vec![destination(url)],
            )
            .await?;
        }
    }
    e.description = description.unwrap_or(e.description);
    e.event_types = event_types.unwrap_or(e.event_types);
    e.scheme = scheme.unwrap_or(e.scheme);
    e.rate_limit = rate_limit.unwrap_or(e.rate_limit);
    e.max_in_flight = max_in_flight.unwrap_or(e.max_in_flight);
    match patch.enabled {
        Some(true) if !e.enabled => {
            e.enabled = true;
            e.disabled_reason = None;
            e.failing_since = None;
            e.consecutive_failures = 0;
        }
        Some(false) => {
            e.enabled = false;
            e.disabled_reason = None;
        }
        _ => {}
    }
    e.updated_at = clock.now();
    if !tx.update_webhook_endpoint(&e).await? {
        return Err(CoreError::NotFound);
    }
    let url = url::Url::parse(&e.url)
        .map_err(|_| CoreError::Store(StoreError::Corrupt("endpoint url".into())))?;
    let draft = endpoint_draft(
        Payload::WebhookEndpointUpdated {
            endpoint_id: id.to_string(),
            url: audited_url(&url),
            event_types: e.event_types.clone(),
            enabled: e.enabled,
        },
        id,
        authorized.context(),
    );
    audit::append(&mut *tx, Log::Org(org), draft, clock).await?;
    tx.commit().await?;
    Ok(e)
}

/// Deletes an endpoint with its queue, attempt log and signing secrets
/// (`webhook.endpoint_deleted`, `credential.deleted`).
///
/// # Errors
/// `NotFound`, storage failures.
pub async fn delete_endpoint(
    store: &dyn Store,
    clock: &dyn Clock,
    authorized: &Authorized,
    id: EndpointId,
) -> Result<(), CoreError> {
    let org = authorized.org_for(Action::WebhooksWrite)?;
    let mut tx = store.org(org).await?;
    let e = tx
        .lock_webhook_endpoint(id)
        .await?
        .ok_or(CoreError::NotFound)?;
    tx.delete_webhook_endpoint(id).await?;
    let mut drafts = vec![endpoint_draft(
        Payload::WebhookEndpointDeleted {
            endpoint_id: id.to_string(),
        },
        id,
        authorized.context(),
    )];
    for secret in [Some(e.secret), e.previous_secret].into_iter().flatten() {
        tx.delete_credential(secret).await?;
        drafts.push(Draft::success(
            Payload::CredentialDeleted {
                credential_id: secret.to_string(),
            },
            "credential",
            secret.to_string(),
            authorized.context(),
        ));
    }
    audit::append_many(&mut *tx, Log::Org(org), drafts, clock).await?;
    tx.commit().await?;
    Ok(())
}

/// Replaces the signing secret (`webhook.secret_rotated`); the old one keeps signing for
/// `overlap_secs` (a secret older than that is deleted now). The new secret is returned once.
///
/// # Errors
/// `Validation` on `/overlap_secs`, `NotFound`, `KeyProvider`, storage failures.
pub async fn rotate_secret(
    store: &dyn Store,
    clock: &dyn Clock,
    wrapper: &dyn KeyWrapper,
    authorized: &Authorized,
    id: EndpointId,
    overlap_secs: Option<u32>,
) -> Result<(WebhookEndpoint, WebhookSecret), CoreError> {
    let org = authorized.org_for(Action::WebhooksWrite)?;
    let overlap = overlap_secs.unwrap_or(DEFAULT_OVERLAP_SECS);
    if overlap > MAX_OVERLAP_SECS {
        return Err(invalid(
            "/overlap_secs",
            format!("must be 0 to {MAX_OVERLAP_SECS}"),
        ));
    }
    let mut tx = store.org(org).await?;
    let mut e = tx
        .lock_webhook_endpoint(id)
        .await?
        .ok_or(CoreError::NotFound)?;
    let url = url::Url::parse(&e.url)
        .map_err(|_| CoreError::Store(StoreError::Corrupt("endpoint url".into())))?;
    let (secret_id, secret, secret_draft) =
        new_secret(&mut *tx, clock, wrapper, org, id, &url, authorized.user()).await?;
    let mut drafts = vec![Draft {
        context: authorized.context(),
        ..secret_draft
    }];
    // Only one old secret signs at a time: one still in its overlap is dropped now (after the
    // endpoint stops pointing at it).
    let mut dropped: Vec<CredentialId> = e.previous_secret.take().into_iter().collect();
    let now = clock.now();
    if overlap == 0 {
        dropped.push(e.secret);
        e.previous_until = None;
    } else {
        e.previous_secret = Some(e.secret);
        e.previous_until = Some(now + time::Duration::seconds(i64::from(overlap)));
    }
    e.secret = secret_id;
    e.updated_at = now;
    tx.update_webhook_endpoint(&e).await?;
    for old in dropped {
        drafts.push(deleted_secret(&mut *tx, old, authorized.context()).await?);
    }
    drafts.push(endpoint_draft(
        Payload::WebhookSecretRotated {
            endpoint_id: id.to_string(),
            overlap_secs: overlap,
        },
        id,
        authorized.context(),
    ));
    audit::append_many(&mut *tx, Log::Org(org), drafts, clock).await?;
    tx.commit().await?;
    Ok((e, secret))
}

pub(super) async fn deleted_secret(
    tx: &mut dyn OrgTx,
    id: CredentialId,
    context: Context,
) -> Result<Draft, CoreError> {
    tx.delete_credential(id).await?;
    Ok(Draft::success(
        Payload::CredentialDeleted {
            credential_id: id.to_string(),
        },
        "credential",
        id.to_string(),
        context,
    ))
}
