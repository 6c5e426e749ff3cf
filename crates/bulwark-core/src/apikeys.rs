//! An org's API keys: issued (shown once), listed with their rotation chain, rotated with an
//! overlap, revoked. Only a verifier is stored (`bulwark_crypto::ApiKey::verifier`: an HMAC of
//! the key's id and secret under a seed-derived pepper).
//!
//! Keys authenticate machines; they never create a session. Issuing, rotating and revoking are
//! decided for a signed-in member (`keys.write`) and recorded in the org's log.

use bulwark_audit::event::Payload;
use bulwark_authz::Action;
use bulwark_crypto::{ApiKey, KeyFormatError, MacKey};
use bulwark_types::{ApiKeyId, Clock, OrgId, TeamId};
use time::{Duration, OffsetDateTime};

use crate::CoreError;
use crate::audit::{self, Draft, Log};
use crate::authz::Authorized;
use crate::model::ApiKeyRecord;
use crate::ports::Store;

/// The scopes a key may carry: each names something a key can do today (scopes for features
/// that do not exist yet, such as writing audit events or managing webhook endpoints, are
/// refused until those features land, so a key never carries a scope that means nothing).
pub const SCOPES: [&str; 6] = [
    "audit:read",
    "members:read",
    "scim",
    "spaces:verify",
    "spaces:write",
    "webhooks:send",
];
/// The longest rotation overlap: the old key keeps working at most this long.
pub const MAX_OVERLAP_SECS: u32 = 7 * 24 * 3600;
/// The longest lifetime a key may be issued with.
pub const MAX_LIFETIME_DAYS: u32 = 3 * 366;

/// What to issue.
pub struct NewKey {
    /// A name for people (1–100 characters).
    pub name: String,
    /// Scopes from [`SCOPES`], at least one.
    pub scopes: Vec<String>,
    /// Days until it stops working (1 to [`MAX_LIFETIME_DAYS`]); `None` for never.
    pub expires_in_days: Option<u32>,
    /// The team of the org to issue it to, if any.
    pub team: Option<TeamId>,
}

fn check(new: &NewKey) -> Result<(String, Vec<String>), CoreError> {
    let name = name_and_lifetime(&new.name, new.expires_in_days)?;
    let mut scopes = new.scopes.clone();
    scopes.sort();
    scopes.dedup();
    if scopes.is_empty() || scopes.iter().any(|s| !SCOPES.contains(&s.as_str())) {
        return Err(CoreError::Validation {
            field: "/scopes",
            message: format!("must name at least one of: {}", SCOPES.join(", ")),
        });
    }
    Ok((name, scopes))
}

/// The rules every key's name and lifetime follow; returns the name.
fn name_and_lifetime(name: &str, expires_in_days: Option<u32>) -> Result<String, CoreError> {
    if !bulwark_types::is_plain_text(name, 100) {
        return Err(CoreError::Validation {
            field: "/name",
            message:
                "must be 1 to 100 characters, without control characters or space at either end"
                    .into(),
        });
    }
    if expires_in_days.is_some_and(|d| d == 0 || d > MAX_LIFETIME_DAYS) {
        return Err(CoreError::Validation {
            field: "/expires_in_days",
            message: format!("must be 1 to {MAX_LIFETIME_DAYS} days, or null for no expiry"),
        });
    }
    Ok(name.to_owned())
}

/// The id of a key.
#[must_use]
pub fn key_id(key: &ApiKey) -> ApiKeyId {
    ApiKeyId::from_uuid(uuid::Uuid::from_bytes(key.id()))
}

/// Issues a key (`apikey.created`). The plaintext is in the returned [`ApiKey`], to be shown
/// once.
///
/// # Errors
/// `Validation`, `Crypto` (no randomness), storage failures.
pub async fn issue(
    store: &dyn Store,
    clock: &dyn Clock,
    pepper: &MacKey,
    authorized: &Authorized,
    new: &NewKey,
) -> Result<(ApiKeyRecord, ApiKey), CoreError> {
    let org = authorized.org_for(Action::KeysWrite)?;
    let (name, scopes) = check(new)?;
    let fresh = Fresh {
        name,
        scopes,
        expires_in_days: new.expires_in_days,
        space: None,
        team: new.team,
    };
    issue_as(store, clock, pepper, authorized, org, fresh).await
}

/// A key about to be issued, checked.
struct Fresh {
    name: String,
    scopes: Vec<String>,
    expires_in_days: Option<u32>,
    /// The key space and owner, for a customer's key.
    space: Option<(String, String)>,
    /// The team, for an org's key issued to one.
    team: Option<TeamId>,
}

/// Stores a checked key and records `apikey.created` in one transaction.
async fn issue_as(
    store: &dyn Store,
    clock: &dyn Clock,
    pepper: &MacKey,
    authorized: &Authorized,
    org: OrgId,
    fresh: Fresh,
) -> Result<(ApiKeyRecord, ApiKey), CoreError> {
    let now = clock.now();
    let expires_at = fresh
        .expires_in_days
        .map(|d| now + Duration::days(i64::from(d)));
    let kind = if fresh.space.is_some() {
        "space_key"
    } else {
        "api_key"
    };
    let mut tx = store.org(org).await?;
    // The team is looked up in the org's own transaction: another org's team is not found.
    if let Some(team) = fresh.team
        && !tx.lock_team(team).await?
    {
        return Err(CoreError::Validation {
            field: "/team",
            message: "no such team in this org".into(),
        });
    }
    let (record, key) = create(
        &mut *tx,
        pepper,
        org,
        authorized,
        Named {
            name: fresh.name,
            scopes: fresh.scopes,
            space: fresh.space,
            team: fresh.team,
        },
        now,
        expires_at,
        None,
    )
    .await?;
    let payload = Payload::ApiKeyCreated {
        key_id: record.id.to_string(),
        scopes: record.scopes.clone(),
        expires_at: expires_at.map(rfc3339),
    };
    record_and_commit(tx, clock, authorized, payload, kind, record.id.to_string()).await?;
    Ok((record, key))
}

/// What a key is called and what it is for: kept by a rotation.
struct Named {
    name: String,
    scopes: Vec<String>,
    space: Option<(String, String)>,
    team: Option<TeamId>,
}

#[expect(
    clippy::too_many_arguments,
    reason = "one private constructor of the stored record"
)]
async fn create(
    tx: &mut dyn crate::ports::OrgTx,
    pepper: &MacKey,
    org: OrgId,
    authorized: &Authorized,
    named: Named,
    now: OffsetDateTime,
    expires_at: Option<OffsetDateTime>,
    rotated_from: Option<ApiKeyId>,
) -> Result<(ApiKeyRecord, ApiKey), CoreError> {
    let key = ApiKey::generate().map_err(|_| CoreError::Crypto)?;
    let (space, owner) = named.space.unzip();
    let record = ApiKeyRecord {
        id: key_id(&key),
        org,
        name: named.name,
        scopes: named.scopes,
        verifier: key.verifier(pepper),
        created_by: authorized.user(),
        created_at: now,
        expires_at,
        revoked_at: None,
        rotated_from,
        last_used_at: None,
        space,
        owner,
        team: named.team,
    };
    tx.create_api_key(&record).await?;
    Ok((record, key))
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// Whether a stored key works at `now`.
#[must_use]
pub fn is_live(key: &ApiKeyRecord, now: OffsetDateTime) -> bool {
    key.revoked_at.is_none() && key.expires_at.is_none_or(|t| now < t)
}

/// Replaces a live key with a new one of the same name, scopes and expiry (`apikey.rotated`);
/// the old one keeps working for `overlap_secs` (0: stops now). Returns the new key.
///
/// # Errors
/// `NotFound`, `State` (revoked or expired), `Validation` (overlap too long), storage failures.
pub async fn rotate(
    store: &dyn Store,
    clock: &dyn Clock,
    pepper: &MacKey,
    authorized: &Authorized,
    id: ApiKeyId,
    overlap_secs: u32,
) -> Result<(ApiKeyRecord, ApiKey), CoreError> {
    let org = authorized.org_for(Action::KeysWrite)?;
    if overlap_secs > MAX_OVERLAP_SECS {
        return Err(CoreError::Validation {
            field: "/overlap_secs",
            message: format!("must be 0 to {MAX_OVERLAP_SECS} seconds"),
        });
    }
    let now = clock.now();
    let mut tx = store.org(org).await?;
    let old = tx.api_key(id).await?.ok_or(CoreError::NotFound)?;
    if !is_live(&old, now) {
        return Err(CoreError::State("only a live key can be rotated"));
    }
    // A team key's team is held while its successor is made (see `issue_as`).
    if let Some(team) = old.team
        && !tx.lock_team(team).await?
    {
        return Err(CoreError::State("the key's team was deleted"));
    }
    let (record, key) = create(
        &mut *tx,
        pepper,
        org,
        authorized,
        Named {
            name: old.name.clone(),
            scopes: old.scopes.clone(),
            space: old.space.clone().zip(old.owner.clone()),
            team: old.team,
        },
        now,
        old.expires_at,
        Some(old.id),
    )
    .await?;
    tx.expire_api_key(old.id, now + Duration::seconds(i64::from(overlap_secs)))
        .await?;
    let payload = Payload::ApiKeyRotated {
        key_id: record.id.to_string(),
        from_key_id: old.id.to_string(),
        overlap_secs,
    };
    record_and_commit(
        tx,
        clock,
        authorized,
        payload,
        "api_key",
        record.id.to_string(),
    )
    .await?;
    Ok((record, key))
}

/// Revokes a key (`apikey.revoked`); it fails from the next request on.
///
/// # Errors
/// `NotFound` (no such live key), storage failures.
pub async fn revoke(
    store: &dyn Store,
    clock: &dyn Clock,
    authorized: &Authorized,
    id: ApiKeyId,
) -> Result<(), CoreError> {
    let org = authorized.org_for(Action::KeysWrite)?;
    let mut tx = store.org(org).await?;
    if !tx.revoke_api_key(id, clock.now()).await? {
        return Err(CoreError::NotFound);
    }
    let payload = Payload::ApiKeyRevoked {
        key_id: id.to_string(),
    };
    record_and_commit(tx, clock, authorized, payload, "api_key", id.to_string()).await?;
    Ok(())
}

/// The org's API keys, oldest first (revoked and expired ones too).
///
/// # Errors
/// A decision for another action (a bug), storage failures.
pub async fn list(
    store: &dyn Store,
    authorized: &Authorized,
) -> Result<Vec<ApiKeyRecord>, CoreError> {
    let mut read = authorized.org_reader(store, Action::KeysRead).await?;
    Ok(read.api_keys().await?)
}

/// The rotation chain through key `id` (see [`chain`]).
///
/// # Errors
/// `NotFound` when the org has no such key; storage failures.
pub async fn chain_of(
    store: &dyn Store,
    authorized: &Authorized,
    id: ApiKeyId,
) -> Result<Vec<ApiKeyRecord>, CoreError> {
    let found = chain(&list(store, authorized).await?, id);
    if found.is_empty() {
        return Err(CoreError::NotFound);
    }
    Ok(found)
}

/// The rotation chain a key belongs to, oldest first: the keys it replaced and the keys that
/// replaced it.
#[must_use]
pub fn chain(keys: &[ApiKeyRecord], id: ApiKeyId) -> Vec<ApiKeyRecord> {
    let by_id = |k: ApiKeyId| keys.iter().find(|r| r.id == k);
    let Some(mut first) = by_id(id) else {
        return Vec::new();
    };
    let mut seen = vec![first.id];
    while let Some(prev) = first.rotated_from.and_then(by_id) {
        if seen.contains(&prev.id) {
            break;
        }
        seen.push(prev.id);
        first = prev;
    }
    let mut out = vec![first.clone()];
    while let Some(next) = keys
        .iter()
        .find(|k| k.rotated_from == Some(out.last().map_or(first.id, |l| l.id)))
    {
        if out.iter().any(|k| k.id == next.id) {
            break;
        }
        out.push(next.clone());
    }
    out
}

/// The longest a replica may answer a key from memory.
pub const MAX_CACHE_TTL: std::time::Duration = std::time::Duration::from_secs(5);

/// Key records this replica read recently, for at most its TTL (≤ 5 s). The secret is still
/// checked against the verifier on every request, and revocation or expiry against the clock;
/// a revocation or rotation made through this replica drops the entry at once
/// ([`KeyCache::forget`]), so only changes made through another replica wait out the TTL.
pub struct KeyCache {
    ttl: std::time::Duration,
    entries:
        std::sync::Mutex<std::collections::HashMap<ApiKeyId, (ApiKeyRecord, std::time::Instant)>>,
}

impl KeyCache {
    /// A cache keeping records for `ttl` (capped at [`MAX_CACHE_TTL`]; zero disables it).
    #[must_use]
    pub fn new(ttl: std::time::Duration) -> Self {
        Self {
            ttl: ttl.min(MAX_CACHE_TTL),
            entries: std::sync::Mutex::default(),
        }
    }

    fn lock(
        &self,
    ) -> std::sync::MutexGuard<
        '_,
        std::collections::HashMap<ApiKeyId, (ApiKeyRecord, std::time::Instant)>,
    > {
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn get(&self, id: ApiKeyId) -> Option<ApiKeyRecord> {
        let found = {
            let entries = self.lock();
            entries
                .get(&id)
                .filter(|(_, at)| at.elapsed() < self.ttl)
                .map(|(record, _)| record.clone())
        };
        let result = if found.is_some() { "hit" } else { "miss" };
        crate::metrics::metrics()
            .cache_lookups
            .inc(&["api_key", result]);
        found
    }

    fn put(&self, record: &ApiKeyRecord) {
        if self.ttl.is_zero() {
            return;
        }
        let mut entries = self.lock();
        if entries.len() >= 100_000 {
            let ttl = self.ttl;
            entries.retain(|_, (_, at)| at.elapsed() < ttl);
        }
        entries.insert(record.id, (record.clone(), std::time::Instant::now()));
    }

    /// Records a use in a cached entry without extending its life.
    fn noted(&self, id: ApiKeyId, at: OffsetDateTime) {
        if let Some((record, _)) = self.lock().get_mut(&id) {
            record.last_used_at = Some(at);
        }
    }

    /// Drops a key's entry (after it was revoked or rotated through this replica).
    pub fn forget(&self, id: ApiKeyId) {
        self.lock().remove(&id);
    }
}

pub use crate::authz::KeyCaller;

/// Why a presented key is not accepted (all answered alike, as 401).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyRefusal {
    /// Not a key's shape.
    Malformed,
    /// The checksum does not match.
    Checksum,
    /// No key with that id, or the secret does not match.
    Unknown,
    /// Revoked.
    Revoked,
    /// Past its expiry (or its rotation overlap).
    Expired,
}

impl KeyRefusal {
    /// For logs.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Malformed => "malformed",
            Self::Checksum => "checksum",
            Self::Unknown => "unknown",
            Self::Revoked => "revoked",
            Self::Expired => "expired",
        }
    }
}

/// Checks a presented key: shape and checksum, then its record in its org, its verifier, and
/// whether it is live. Notes the use (at most once a minute).
///
/// # Errors
/// Storage failures; `Ok(Err(_))` for a refused key.
pub async fn authenticate(
    store: &dyn Store,
    clock: &dyn Clock,
    pepper: &MacKey,
    cache: &KeyCache,
    text: &str,
) -> Result<Result<KeyCaller, KeyRefusal>, CoreError> {
    let (record, fresh) = match lookup(store, clock, pepper, cache, text).await? {
        // A key of a key space is the host application's customer's: it is checked with
        // `verify`, and never authenticates to Bulwark.
        Ok((record, _)) if record.space.is_some() => return Ok(Err(KeyRefusal::Unknown)),
        Ok(found) => found,
        Err(refusal) => return Ok(Err(refusal)),
    };
    note_use(store, clock, cache, &record, fresh).await?;
    Ok(Ok(KeyCaller {
        key: record.id,
        org: record.org,
        scopes: record.scopes,
        team: record.team,
    }))
}

/// Finds a presented key's live record (any org, any space), and whether it was read from the
/// database just now (rather than from the cache).
async fn lookup(
    store: &dyn Store,
    clock: &dyn Clock,
    pepper: &MacKey,
    cache: &KeyCache,
    text: &str,
) -> Result<Result<(ApiKeyRecord, bool), KeyRefusal>, CoreError> {
    let key = match ApiKey::parse(text) {
        Ok(k) => k,
        Err(KeyFormatError::Malformed) => return Ok(Err(KeyRefusal::Malformed)),
        Err(KeyFormatError::Checksum) => return Ok(Err(KeyRefusal::Checksum)),
    };
    let id = key_id(&key);
    let now = clock.now();
    let cached = cache.get(id);
    let fresh = cached.is_none();
    let record = match cached {
        Some(record) => Some(record),
        None => {
            let Some(org) = store.api_key_org(id).await? else {
                return Ok(Err(KeyRefusal::Unknown));
            };
            let mut read = store.org_read(org).await?;
            let record = read.api_key(id).await?;
            if let Some(r) = &record {
                cache.put(r);
            }
            record
        }
    };
    let Some(record) = record.filter(|r| key.matches(pepper, &r.verifier)) else {
        return Ok(Err(KeyRefusal::Unknown));
    };
    if record.revoked_at.is_some() {
        return Ok(Err(KeyRefusal::Revoked));
    }
    if record.expires_at.is_some_and(|t| now >= t) {
        return Ok(Err(KeyRefusal::Expired));
    }
    Ok(Ok((record, fresh)))
}

/// Notes a use of a live key (at most once a minute). Only a record just read from the database
/// goes back into the cache, so a cached record never outlives its first read by more than the
/// cache's TTL.
async fn note_use(
    store: &dyn Store,
    clock: &dyn Clock,
    cache: &KeyCache,
    record: &ApiKeyRecord,
    fresh: bool,
) -> Result<(), CoreError> {
    let now = clock.now();
    if record
        .last_used_at
        .is_none_or(|t| now - t >= Duration::minutes(1))
    {
        let mut tx = store.org(record.org).await?;
        tx.touch_api_key(record.id, now).await?;
        tx.commit().await?;
        if fresh {
            let mut noted = record.clone();
            noted.last_used_at = Some(now);
            cache.put(&noted);
        } else {
            cache.noted(record.id, now);
        }
    }
    Ok(())
}

fn space_name(raw: &str) -> Result<String, CoreError> {
    let ok = (1..=63).contains(&raw.len())
        && raw
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !raw.starts_with('-');
    if ok {
        Ok(raw.to_owned())
    } else {
        Err(CoreError::Validation {
            field: "/space",
            message: "a key space is 1–63 of a–z, 0–9 and '-', not starting with '-'".into(),
        })
    }
}

/// What the host application issues to one of its customers.
pub struct SpaceKey {
    /// The key space (1–63 of `a-z0-9-`).
    pub space: String,
    /// The customer, as the application names them (1–200 characters).
    pub owner: String,
    /// A name for people.
    pub name: String,
    /// The application's own scopes (each 1–64 of `a-z0-9:._-`, at most 20; may be none).
    pub scopes: Vec<String>,
    /// Days until it stops working; `None` for never.
    pub expires_in_days: Option<u32>,
}

fn check_space_key(new: &SpaceKey) -> Result<(String, String, Vec<String>), CoreError> {
    let space = space_name(&new.space)?;
    let owner = new.owner.as_str();
    if !bulwark_types::is_plain_text(owner, 200) {
        return Err(CoreError::Validation {
            field: "/owner",
            message:
                "must be 1 to 200 characters, without control characters or space at either end"
                    .into(),
        });
    }
    let mut scopes = new.scopes.clone();
    scopes.sort();
    scopes.dedup();
    let scope_ok = |s: &String| {
        (1..=64).contains(&s.len())
            && s.bytes().all(|b| {
                b.is_ascii_lowercase()
                    || b.is_ascii_digit()
                    || matches!(b, b':' | b'.' | b'_' | b'-')
            })
    };
    if scopes.len() > 20 || !scopes.iter().all(scope_ok) {
        return Err(CoreError::Validation {
            field: "/scopes",
            message: "at most 20 scopes, each 1–64 of a–z, 0–9, ':', '.', '_' and '-'".into(),
        });
    }
    Ok((space, owner.to_owned(), scopes))
}

/// Issues a key in a key space for one of the host application's customers
/// (`apikey.created`). The plaintext is in the returned [`ApiKey`], to be passed on once.
///
/// # Errors
/// `Validation`, `Crypto`, storage failures.
pub async fn issue_in_space(
    store: &dyn Store,
    clock: &dyn Clock,
    pepper: &MacKey,
    authorized: &Authorized,
    new: &SpaceKey,
) -> Result<(ApiKeyRecord, ApiKey), CoreError> {
    let org = authorized.org_for(Action::SpaceKeysWrite)?;
    let (space, owner, scopes) = check_space_key(new)?;
    let fresh = Fresh {
        name: name_and_lifetime(&new.name, new.expires_in_days)?,
        scopes,
        expires_in_days: new.expires_in_days,
        space: Some((space, owner)),
        team: None,
    };
    issue_as(store, clock, pepper, authorized, org, fresh).await
}

/// The keys of one key space, oldest first.
///
/// # Errors
/// `Validation` for a bad space name; storage failures.
pub async fn list_space(
    store: &dyn Store,
    authorized: &Authorized,
    space: &str,
) -> Result<Vec<ApiKeyRecord>, CoreError> {
    let org = authorized.org_for(Action::SpaceKeysWrite)?;
    let space = space_name(space)?;
    let mut read = store.org_read(org).await?;
    let keys = read.api_keys().await?;
    Ok(keys
        .into_iter()
        .filter(|k| k.space.as_deref() == Some(space.as_str()))
        .collect())
}

/// Revokes a key of a key space (`apikey.revoked`).
///
/// # Errors
/// `NotFound` (no such live key in that space), storage failures.
pub async fn revoke_in_space(
    store: &dyn Store,
    clock: &dyn Clock,
    authorized: &Authorized,
    space: &str,
    id: ApiKeyId,
) -> Result<(), CoreError> {
    let org = authorized.org_for(Action::SpaceKeysWrite)?;
    let space = space_name(space)?;
    let mut tx = store.org(org).await?;
    let in_space = tx
        .api_key(id)
        .await?
        .is_some_and(|k| k.space.as_deref() == Some(space.as_str()));
    if !in_space || !tx.revoke_api_key(id, clock.now()).await? {
        return Err(CoreError::NotFound);
    }
    let payload = Payload::ApiKeyRevoked {
        key_id: id.to_string(),
    };
    record_and_commit(tx, clock, authorized, payload, "space_key", id.to_string()).await?;
    Ok(())
}

/// Checks a customer's key for the host application: `Some(record)` when it is a live key of
/// one of this org's key spaces; `None` for anything else (malformed, forged, unknown,
/// revoked, expired, another org's, or one of the org's own Bulwark keys) — the application
/// learns nothing about why.
///
/// # Errors
/// Storage failures.
pub async fn verify(
    store: &dyn Store,
    clock: &dyn Clock,
    pepper: &MacKey,
    cache: &KeyCache,
    authorized: &Authorized,
    text: &str,
) -> Result<Option<ApiKeyRecord>, CoreError> {
    let org = authorized.org_for(Action::SpaceKeysVerify)?;
    let found = lookup(store, clock, pepper, cache, text)
        .await?
        .ok()
        .filter(|(k, _)| k.org == org && k.space.is_some());
    let Some((record, fresh)) = found else {
        return Ok(None);
    };
    note_use(store, clock, cache, &record, fresh).await?;
    Ok(Some(record))
}

/// Records the change in the org's log, in the transaction that made it, and commits both.
async fn record_and_commit(
    mut tx: Box<dyn crate::ports::OrgTx>,
    clock: &dyn Clock,
    authorized: &Authorized,
    payload: Payload,
    kind: &str,
    id: String,
) -> Result<(), CoreError> {
    let org = authorized.org_for(authorized.decision().action)?;
    let draft = Draft::success(payload, kind, id, authorized.context());
    audit::append(&mut *tx, Log::Org(org), draft, clock).await?;
    tx.commit().await?;
    Ok(())
}
