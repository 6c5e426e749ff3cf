//! The audit log: a filtered list (100 per page, the API's own listing), an event with its
//! inclusion proof against the latest signed checkpoint, checked by the server and again in the
//! browser (`/assets/proof.*.js`, WebCrypto SHA-256 and Ed25519), and the export links.

use askama::Template;
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use axum::routing::get;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bulwark_audit::event::{ActorKind, Event, Result_};
use bulwark_audit::merkle::{self, Hash};
use bulwark_authz::Action;
use bulwark_core::audit::Log;
use bulwark_types::OrgId;
use serde::Deserialize;
use time::OffsetDateTime;

use crate::api::v1::audit::{self as api, InclusionQuery, ListQuery};
use crate::auth::Signed;
use crate::console::Routes;
use crate::console::page::{self, Chrome, When};
use crate::error::ApiError;
use crate::extract::ValidQuery;
use crate::org_route::{OrgAuthorized, OrgCaller, act};
use crate::state::AppState;

/// The routes.
pub fn router() -> Routes {
    Routes::new()
        .at("/orgs/{org}/audit", get(list))
        .at("/orgs/{org}/audit/{seq}", get(event))
}

/// One listed event.
pub struct Row {
    /// Position in the log.
    pub seq: u64,
    /// When.
    pub when: When,
    /// Event type.
    pub action: String,
    /// Who (kind and id).
    pub actor: String,
    /// `success` or `failure`.
    pub outcome: &'static str,
    /// What it was about.
    pub resource: String,
}

fn row(e: &Event) -> Row {
    Row {
        seq: e.seq,
        when: When(e.time),
        action: e.payload.name().to_owned(),
        actor: format!(
            "{} {}",
            match e.actor.kind {
                ActorKind::User => "user",
                ActorKind::ApiKey => "api_key",
                ActorKind::System => "system",
            },
            e.actor.id.as_deref().unwrap_or_default()
        ),
        outcome: match e.outcome.result {
            Result_::Success => "success",
            Result_::Failure => "failure",
        },
        resource: format!("{} {}", e.resource.kind, e.resource.id),
    }
}

fn rows(values: &[serde_json::Value]) -> Result<Vec<Row>, ApiError> {
    values
        .iter()
        .map(|v| {
            serde_json::from_value::<Event>(v.clone())
                .map(|e| row(&e))
                .map_err(|e| ApiError::internal(format!("listed audit event: {e}")))
        })
        .collect()
}

/// The `n` latest events of `org`'s log, newest first (for the overview).
///
/// # Errors
/// As the API listing.
pub async fn recent(
    state: &AppState,
    signed: &Signed,
    org: OrgId,
    n: u64,
) -> Result<Vec<Row>, ApiError> {
    let reader = OrgCaller::<act::AuditRead>::person(state, signed.clone(), org).await?;
    let size = {
        let mut read = reader
            .authorized
            .org_reader(&*state.store, Action::AuditRead)
            .await?;
        head(&mut *read).await?
    };
    let from = size.saturating_sub(n);
    let q = ListQuery {
        limit: Some(u32::try_from(n).unwrap_or(10)),
        cursor: (from > 0).then(|| api::cursor_for(state, &Log::Org(org).name(), from)),
        ..ListQuery::default()
    };
    let Json(found) = api::list(State(state.clone()), reader, ValidQuery(q)).await?;
    let mut out = rows(&found.events)?;
    out.reverse();
    Ok(out)
}

/// The number of events in the log: from the latest checkpoint's size (the checkpointer keeps
/// it close to the head), a gallop and a binary search over leaf positions for the rest; a few
/// point reads, no count query.
async fn head(read: &mut dyn bulwark_core::ports::AuditRead) -> Result<u64, ApiError> {
    async fn exists(
        read: &mut dyn bulwark_core::ports::AuditRead,
        seq: u64,
    ) -> Result<bool, ApiError> {
        read.audit_leaves(seq, 1)
            .await
            .map(|l| !l.is_empty())
            .map_err(ApiError::from_store)
    }
    let signed = read
        .audit_latest_checkpoint()
        .await
        .map_err(ApiError::from_store)?
        .map_or(0, |(size, _)| size);
    // Every position below `lo` exists; `hi` does not.
    let mut lo = signed;
    if !exists(read, lo).await? {
        return Ok(lo);
    }
    let mut step = 1u64;
    let mut hi = lo.saturating_add(step);
    while exists(read, hi).await? {
        lo = hi;
        step = step.saturating_mul(2);
        hi = hi.saturating_add(step);
    }
    while lo + 1 < hi {
        let mid = lo + (hi - lo) / 2;
        if exists(read, mid).await? {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    Ok(lo + 1)
}

/// The list's filters, as the API takes them (empty fields are left out).
#[derive(Deserialize, Default)]
pub struct Filters {
    since: Option<String>,
    until: Option<String>,
    actor: Option<String>,
    action: Option<String>,
    resource_type: Option<String>,
    resource_id: Option<String>,
    outcome: Option<String>,
    cursor: Option<String>,
}

fn some(v: Option<&String>) -> Option<String> {
    v.filter(|s| !s.trim().is_empty())
        .map(|s| s.trim().to_owned())
}

/// An RFC 3339 time from a `datetime-local` field (taken as UTC) or RFC 3339 itself.
fn when_param(v: Option<&String>) -> Option<String> {
    let v = some(v)?;
    if v.len() == 16 && v.as_bytes().get(10) == Some(&b'T') {
        return Some(format!("{v}:00Z"));
    }
    if v.len() == 19 && v.as_bytes().get(10) == Some(&b'T') {
        return Some(format!("{v}Z"));
    }
    Some(v)
}

#[derive(Template)]
#[template(path = "audit.html")]
struct ListPage {
    chrome: Chrome,
    rows: Vec<Row>,
    next: Option<String>,
    f: Filters,
    checkpoint: Option<api::CheckpointOut>,
    signed_at: Option<When>,
    verifier_key: String,
}

impl ListPage {
    fn next_link(&self, cursor: &str) -> String {
        let mut q = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in [
            ("since", &self.f.since),
            ("until", &self.f.until),
            ("actor", &self.f.actor),
            ("action", &self.f.action),
            ("resource_type", &self.f.resource_type),
            ("resource_id", &self.f.resource_id),
            ("outcome", &self.f.outcome),
        ] {
            if let Some(v) = some(v.as_ref()) {
                q.append_pair(k, &v);
            }
        }
        q.append_pair("cursor", cursor);
        format!("?{}", q.finish())
    }

    fn value<'a>(&self, v: &'a Option<String>) -> &'a str {
        v.as_deref().unwrap_or_default()
    }
}

async fn list(
    State(state): State<AppState>,
    reader: OrgCaller<act::AuditRead>,
    Query(f): Query<Filters>,
) -> Result<Response, ApiError> {
    let org = reader.org;
    let signed = person(&reader.caller)?.clone();
    let chrome = Chrome::new(&state, &signed, Some(org), "audit").await?;
    let q = ListQuery {
        since: when_param(f.since.as_ref()),
        until: when_param(f.until.as_ref()),
        actor: some(f.actor.as_ref()),
        action: some(f.action.as_ref()),
        resource_type: some(f.resource_type.as_ref()),
        resource_id: some(f.resource_id.as_ref()),
        outcome: some(f.outcome.as_ref()),
        limit: Some(100),
        cursor: some(f.cursor.as_ref()),
    };
    let Json(found) = api::list(State(state.clone()), reader, ValidQuery(q)).await?;
    let rows = rows(&found.events)?;
    // The latest checkpoint as stored (the checkpointer signs new heads within seconds); the
    // event page asks `GET …/audit/checkpoint`, which signs the head first, because its proof
    // must cover the event. A list view does not take the log's write lock.
    let again = OrgCaller::<act::AuditRead>::person(&state, signed, org).await?;
    let checkpoint = stored_checkpoint(&state, &again.authorized).await?;
    let signed_at = checkpoint
        .as_ref()
        .and_then(|c| OffsetDateTime::from_unix_timestamp(i64::try_from(c.time).ok()?).ok())
        .map(When);
    Ok(page::html(&ListPage {
        chrome,
        rows,
        next: found.next_cursor,
        f,
        checkpoint,
        signed_at,
        verifier_key: state.checkpointer.verifier_key(),
    }))
}

/// The latest stored checkpoint of the decided org's log, verified with this deployment's key.
async fn stored_checkpoint(
    state: &AppState,
    authorized: &bulwark_core::authz::Authorized,
) -> Result<Option<api::CheckpointOut>, ApiError> {
    let mut read = authorized
        .org_reader(&*state.store, Action::AuditRead)
        .await?;
    let Some((_, note)) = read
        .audit_latest_checkpoint()
        .await
        .map_err(ApiError::from_store)?
    else {
        return Ok(None);
    };
    let key = state.checkpointer.verifier_key();
    let parsed = bulwark_audit::checkpoint::NoteVerifier::parse(&key)
        .and_then(|v| v.verify(&note))
        .map_err(|e| ApiError::internal(format!("stored checkpoint does not verify: {e}")))?;
    Ok(Some(api::CheckpointOut {
        size: parsed.size,
        root: STANDARD.encode(parsed.root),
        time: parsed.time,
        note,
        verifier_key: key,
    }))
}

/// The signed-in person behind a console request (the console never takes API keys: see the
/// shell).
///
/// # Errors
/// 401 for an API key.
pub fn person(caller: &crate::auth::Caller) -> Result<&Signed, ApiError> {
    match caller {
        crate::auth::Caller::Person(signed) => Ok(signed),
        crate::auth::Caller::Key { .. } => Err(ApiError::new(
            axum::http::StatusCode::UNAUTHORIZED,
            "unauthenticated",
            "the console takes a session, not an API key",
        )),
    }
}

/// One step of an inclusion proof, for the page.
pub struct Step {
    /// Which side the sibling is on.
    pub side: &'static str,
    /// The sibling hash, base64.
    pub hash: String,
}

#[derive(Template)]
#[template(path = "audit_event.html")]
struct EventPage {
    chrome: Chrome,
    seq: u64,
    row: Row,
    pretty: String,
    canonical_b64: String,
    proof: Option<Proof>,
    /// The org's credentials (id, name) for the ticket form; `None` when the role cannot push.
    credentials: Option<Vec<(String, String)>>,
    ticket_fields: [&'static str; 8],
}

/// An event's inclusion proof and the checkpoint it leads to.
pub struct Proof {
    size: u64,
    leaf_hash: String,
    steps: Vec<Step>,
    root: String,
    note: String,
    verifier_key: String,
    server_ok: bool,
    hashes: String,
}

/// The sides of the siblings on the path from leaf `index` in a tree of `size` (RFC 9162
/// §2.1.3.2), for showing the steps.
fn sides(index: u64, size: u64, n: usize) -> Vec<&'static str> {
    let (mut fn_, mut sn) = (index, size.saturating_sub(1));
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        if fn_ & 1 == 1 || fn_ == sn {
            out.push("left");
            if fn_ & 1 == 0 {
                while fn_ & 1 == 0 && fn_ != 0 {
                    fn_ >>= 1;
                    sn >>= 1;
                }
            }
        } else {
            out.push("right");
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    out
}

fn hash_of(b64: &str) -> Option<Hash> {
    STANDARD.decode(b64).ok()?.try_into().ok()
}

async fn event(
    State(state): State<AppState>,
    reader: OrgCaller<act::AuditRead>,
    Path((_, seq)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let org = reader.org;
    let seq: u64 = seq.parse().map_err(|_| ApiError::not_found())?;
    let signed = person(&reader.caller)?.clone();
    let chrome = Chrome::new(&state, &signed, Some(org), "audit").await?;
    let body = {
        let mut read = reader
            .authorized
            .org_reader(&*state.store, Action::AuditRead)
            .await?;
        let rows = read
            .audit_events(seq, 1)
            .await
            .map_err(ApiError::from_store)?;
        rows.into_iter()
            .find(|r| r.seq == seq)
            .and_then(|r| r.body)
            .ok_or_else(ApiError::not_found)?
    };
    let event = Event::from_canonical(&body)
        .map_err(|e| ApiError::internal(format!("stored audit event {seq}: {e}")))?;
    let pretty = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| serde_json::to_string_pretty(&v).ok())
        .unwrap_or_default();
    let signed_again = signed.clone();
    let checkpoint = OrgCaller::<act::AuditRead>::person(&state, signed.clone(), org).await?;
    let Json(cp) = api::checkpoint(State(state.clone()), checkpoint).await?;
    let proof = if seq < cp.size {
        let asker = OrgCaller::<act::AuditRead>::person(&state, signed, org).await?;
        let q = InclusionQuery {
            seq,
            size: Some(cp.size),
        };
        let Json(p) = api::inclusion(State(state.clone()), asker, ValidQuery(q)).await?;
        let path: Vec<Hash> = p.proof.iter().filter_map(|h| hash_of(h)).collect();
        let leaf = merkle::leaf_hash(&body);
        let server_ok = path.len() == p.proof.len()
            && hash_of(&cp.root).is_some_and(|root| {
                merkle::verify_inclusion(&leaf, seq, cp.size, &path, &root).is_ok()
            })
            && STANDARD.encode(leaf) == p.leaf_hash;
        let steps = sides(seq, cp.size, p.proof.len())
            .into_iter()
            .zip(&p.proof)
            .map(|(side, hash)| Step {
                side,
                hash: hash.clone(),
            })
            .collect();
        Some(Proof {
            size: cp.size,
            leaf_hash: p.leaf_hash,
            hashes: p.proof.join(" "),
            steps,
            root: cp.root.clone(),
            note: cp.note.clone(),
            verifier_key: cp.verifier_key.clone(),
            server_ok,
        })
    } else {
        None
    };
    let credentials = if chrome.role_in(&["owner", "admin"]) {
        let reader =
            OrgAuthorized::<act::CredentialsRead>::decide(&state, signed_again, org).await?;
        let Json(list) = crate::api::v1::credentials::list(State(state.clone()), reader).await?;
        Some(
            list.credentials
                .into_iter()
                .map(|c| (c.id.to_string(), c.name))
                .collect(),
        )
    } else {
        None
    };
    Ok(page::html(&EventPage {
        chrome,
        seq,
        row: row(&event),
        pretty,
        canonical_b64: STANDARD.encode(&body),
        proof,
        credentials,
        ticket_fields: bulwark_core::tickets::FIELDS,
    }))
}
