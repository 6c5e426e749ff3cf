//! The audit log of an org over HTTP: events (filtered, cursor-paginated), the latest signed
//! checkpoint, inclusion and consistency proofs, and verifiable exports. Readable by the org's
//! owners, admins and auditors only.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use bulwark_audit::event::{Event, Result_};
use bulwark_audit::merkle::{self, Hash};
use bulwark_core::audit::Log;
use bulwark_core::ports::AuditRead;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use bulwark_authz::Action;
use bulwark_core::authz::Authorized;

use crate::error::{ApiError, Problem};
use crate::extract::{ValidJson, ValidQuery};
use crate::org_route::{OrgAuthorized, OrgCaller, act};
use crate::state::AppState;

/// Events returned per page by default, and at most.
const DEFAULT_LIMIT: u32 = 100;
const MAX_LIMIT: u32 = 1000;
/// Rows examined per page at most: a filter that matches rarely answers with a cursor instead
/// of scanning the whole log in one request.
const MAX_SCAN: u64 = 10_000;
/// Rows read from the store per round trip.
const BATCH: u32 = 500;
/// Largest tree a proof request reads in one go (leaf hashes, 32 bytes each).
const MAX_PROOF_TREE: u64 = 20_000_000;

fn bad(code: &'static str, detail: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, code, detail)
}

/// Filters and paging for the event list.
#[derive(Deserialize, Default, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only events at or after this time (RFC 3339).
    #[param(format = DateTime)]
    pub(crate) since: Option<String>,
    /// Only events before this time (RFC 3339).
    #[param(format = DateTime)]
    pub(crate) until: Option<String>,
    /// Only events by this actor id (`usr_…`, `key_…`).
    #[param(min_length = 1, max_length = 200)]
    pub(crate) actor: Option<String>,
    /// Only events of this type (`auth.login.failed`), or of a family (`auth.*`).
    #[param(min_length = 1, max_length = 200)]
    pub(crate) action: Option<String>,
    /// Only events on this resource type (`session`, `org`, …).
    #[param(min_length = 1, max_length = 200)]
    pub(crate) resource_type: Option<String>,
    /// Only events on this resource id.
    #[param(min_length = 1, max_length = 200)]
    pub(crate) resource_id: Option<String>,
    /// `success` or `failure`.
    pub(crate) outcome: Option<String>,
    /// Events per page, 1–1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub(crate) limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    #[param(pattern = "^[A-Za-z0-9_-]{32}$")]
    pub(crate) cursor: Option<String>,
}

struct Filter {
    since: Option<OffsetDateTime>,
    until: Option<OffsetDateTime>,
    actor: Option<String>,
    action: Option<String>,
    resource_type: Option<String>,
    resource_id: Option<String>,
    outcome: Option<Result_>,
}

fn time_param(name: &'static str, v: Option<&str>) -> Result<Option<OffsetDateTime>, ApiError> {
    v.map(|t| {
        OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).map_err(|_| {
            ApiError::invalid_field(format!("/{name}"), "must be an RFC 3339 date-time")
        })
    })
    .transpose()
}

impl Filter {
    fn parse(q: &ListQuery) -> Result<Self, ApiError> {
        let outcome = match q.outcome.as_deref() {
            None => None,
            Some("success") => Some(Result_::Success),
            Some("failure") => Some(Result_::Failure),
            Some(_) => {
                return Err(ApiError::invalid_field(
                    "/outcome",
                    "must be `success` or `failure`",
                ));
            }
        };
        for (name, v) in [
            ("actor", &q.actor),
            ("action", &q.action),
            ("resource_type", &q.resource_type),
            ("resource_id", &q.resource_id),
        ] {
            if v.as_ref().is_some_and(|s| s.is_empty() || s.len() > 200) {
                return Err(ApiError::invalid_field(
                    format!("/{name}"),
                    "must be 1–200 characters",
                ));
            }
        }
        Ok(Self {
            since: time_param("since", q.since.as_deref())?,
            until: time_param("until", q.until.as_deref())?,
            actor: q.actor.clone(),
            action: q.action.clone(),
            resource_type: q.resource_type.clone(),
            resource_id: q.resource_id.clone(),
            outcome,
        })
    }

    fn is_empty(&self) -> bool {
        self.since.is_none()
            && self.until.is_none()
            && self.actor.is_none()
            && self.action.is_none()
            && self.resource_type.is_none()
            && self.resource_id.is_none()
            && self.outcome.is_none()
    }

    fn matches(&self, e: &Event) -> bool {
        let action = e.payload.name();
        self.since.is_none_or(|t| e.time >= t)
            && self.until.is_none_or(|t| e.time < t)
            && self
                .actor
                .as_deref()
                .is_none_or(|a| e.actor.id.as_deref() == Some(a))
            && self
                .action
                .as_deref()
                .is_none_or(|a| match a.strip_suffix('*') {
                    Some(prefix) => action.starts_with(prefix),
                    None => action == a,
                })
            && self
                .resource_type
                .as_deref()
                .is_none_or(|r| e.resource.kind == r)
            && self
                .resource_id
                .as_deref()
                .is_none_or(|r| e.resource.id == r)
            && self.outcome.is_none_or(|o| e.outcome.result == o)
    }
}

/// A cursor is `base64url(seq ‖ HMAC(log ‖ seq)[..16])`: opaque, bound to one log, unforgeable.
pub(crate) fn cursor_for(state: &AppState, log: &str, seq: u64) -> String {
    let mut out = seq.to_be_bytes().to_vec();
    out.extend_from_slice(&cursor_tag(state, log, seq)[..16]);
    URL_SAFE_NO_PAD.encode(out)
}

fn cursor_tag(state: &AppState, log: &str, seq: u64) -> [u8; 32] {
    state.macs.cursor.tag(format!("{log}\n{seq}").as_bytes())
}

fn seq_of_cursor(state: &AppState, log: &str, cursor: &str) -> Result<u64, ApiError> {
    let invalid = || {
        bad(
            "invalid_cursor",
            "the cursor is not one this server issued for this log; start again without it",
        )
    };
    let raw = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| invalid())?;
    let (seq, tag) = raw.split_at_checked(8).ok_or_else(invalid)?;
    let seq = u64::from_be_bytes(seq.try_into().map_err(|_| invalid())?);
    let expected = cursor_tag(state, log, seq);
    if tag.len() == 16 && bulwark_crypto::constant_time_eq(tag, &expected[..16]) {
        Ok(seq)
    } else {
        Err(invalid())
    }
}

/// A page of events.
#[derive(Serialize, utoipa::ToSchema)]
pub struct EventPage {
    /// Matching events, oldest first, as stored (see `docs/audit-events.md`).
    #[schema(value_type = Vec<Object>)]
    pub events: Vec<serde_json::Value>,
    /// Pass as `cursor` for the next page; absent at the end of the log.
    pub next_cursor: Option<String>,
}

/// Lists events, oldest first, filtered. A page ends after `limit` matches or 10,000 examined
/// events; `next_cursor` continues from there.
#[utoipa::path(get, path = "/v1/orgs/{org}/audit/events", tag = "audit", security(("session" = []), ("api_key" = [])),
    params(("org" = String, Path, description = "`org_…`"), ListQuery),
    responses(
        (status = 200, body = EventPage),
        (status = 401, body = Problem, description = "`unauthenticated`"),
        (status = 403, body = Problem, description = "`forbidden`: not an owner, admin or auditor"),
        (status = 404, body = Problem, description = "`not_found`: no such org, or not a member"),
        (status = 422, body = Problem, description = "`invalid_cursor`, `validation_failed`"),
    ))]
pub(crate) async fn list(
    State(state): State<AppState>,
    OrgCaller {
        org, authorized, ..
    }: OrgCaller<act::AuditRead>,
    ValidQuery(q): ValidQuery<ListQuery>,
) -> Result<Json<EventPage>, ApiError> {
    let log = Log::Org(org).name();
    let filter = Filter::parse(&q)?;
    let limit = q.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::invalid_field("/limit", "must be 1–1000"));
    }
    let mut next = match q.cursor.as_deref() {
        Some(c) => seq_of_cursor(&state, &log, c)?,
        None => 0,
    };
    let start = next;
    let mut reader = authorized
        .org_reader(&*state.store, Action::AuditRead)
        .await?;
    let mut events = Vec::new();
    let mut exhausted = false;
    // Without a filter every row matches: read no more rows than the page still needs.
    let unfiltered = filter.is_empty();
    'scan: while next - start < MAX_SCAN {
        let mut want =
            u32::try_from((MAX_SCAN - (next - start)).min(u64::from(BATCH))).unwrap_or(BATCH);
        if unfiltered {
            let still = limit.saturating_sub(u32::try_from(events.len()).unwrap_or(u32::MAX));
            want = want.min(still.max(1));
        }
        let rows = reader
            .audit_events(next, want)
            .await
            .map_err(ApiError::from_store)?;
        for row in &rows {
            next = row.seq + 1;
            // A pruned event has no content left to match or show.
            let Some(body) = &row.body else { continue };
            let event = Event::from_canonical(body)
                .map_err(|e| ApiError::internal(format!("stored audit event {}: {e}", row.seq)))?;
            if filter.matches(&event) {
                let value = serde_json::from_slice(body)
                    .map_err(|e| ApiError::internal(format!("stored audit event: {e}")))?;
                events.push(value);
                if events.len() >= limit as usize {
                    break 'scan;
                }
            }
        }
        if rows.len() < want as usize {
            exhausted = true;
            break;
        }
    }
    let more = !exhausted
        && !reader
            .audit_leaves(next, 1)
            .await
            .map_err(ApiError::from_store)?
            .is_empty();
    Ok(Json(EventPage {
        events,
        next_cursor: more.then(|| cursor_for(&state, &log, next)),
    }))
}

/// The latest signed checkpoint.
#[derive(Serialize, utoipa::ToSchema)]
pub struct CheckpointOut {
    /// The C2SP signed note, verbatim.
    pub note: String,
    /// Tree size.
    pub size: u64,
    /// Root hash, base64.
    pub root: String,
    /// Unix seconds when it was signed.
    pub time: u64,
    /// The verifier key (`name+id+key`) that signed it. Compare it with the key you obtained
    /// out of band (`bulwark audit key`); never trust a key only because this answer says so.
    pub verifier_key: String,
}

/// Signs a checkpoint of the log's current head (if any event is not yet covered) and returns
/// the latest one.
#[utoipa::path(get, path = "/v1/orgs/{org}/audit/checkpoint", tag = "audit", security(("session" = []), ("api_key" = [])),
    params(("org" = String, Path, description = "`org_…`")),
    responses(
        (status = 200, body = CheckpointOut),
        (status = 404, body = Problem, description = "`not_found`, or `empty_log` when the log has no events"),
    ))]
pub(crate) async fn checkpoint(
    State(state): State<AppState>,
    OrgCaller { authorized, .. }: OrgCaller<act::AuditRead>,
) -> Result<Json<CheckpointOut>, ApiError> {
    let (_, note) = latest_checkpoint(&state, &authorized).await?;
    let parsed = bulwark_audit::checkpoint::NoteVerifier::parse(&state.checkpointer.verifier_key())
        .and_then(|v| v.verify(&note))
        .map_err(|e| ApiError::internal(format!("stored checkpoint does not verify: {e}")))?;
    Ok(Json(CheckpointOut {
        size: parsed.size,
        root: STANDARD.encode(parsed.root),
        time: parsed.time,
        note,
        verifier_key: state.checkpointer.verifier_key(),
    }))
}

pub(crate) async fn latest_checkpoint(
    state: &AppState,
    authorized: &Authorized,
) -> Result<(u64, String), ApiError> {
    let org = authorized.org_for(Action::AuditRead)?;
    state
        .checkpointer
        .checkpoint_now(Log::Org(org))
        .await
        .map_err(ApiError::from)?;
    let mut reader = authorized
        .org_reader(&*state.store, Action::AuditRead)
        .await?;
    reader
        .audit_latest_checkpoint()
        .await
        .map_err(ApiError::from_store)?
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "empty_log",
                "this log has no events yet",
            )
        })
}

/// The first `size` leaf hashes of the org's log.
pub(crate) async fn leaves(reader: &mut dyn AuditRead, size: u64) -> Result<Vec<Hash>, ApiError> {
    let mut out = Vec::with_capacity(usize::try_from(size.min(1 << 20)).unwrap_or(0));
    while (out.len() as u64) < size {
        let want = u32::try_from((size - out.len() as u64).min(10_000)).unwrap_or(10_000);
        let batch = reader
            .audit_leaves(out.len() as u64, want)
            .await
            .map_err(ApiError::from_store)?;
        if batch.is_empty() {
            return Err(ApiError::internal("audit log shorter than its checkpoint"));
        }
        out.extend(batch);
    }
    Ok(out)
}

/// An inclusion proof request.
#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct InclusionQuery {
    /// The event's position (`seq`).
    pub(crate) seq: u64,
    /// The tree size to prove against; default the latest checkpoint's.
    #[param(minimum = 1)]
    pub(crate) size: Option<u64>,
}

/// An inclusion proof (RFC 9162 §2.1.3).
#[derive(Serialize, utoipa::ToSchema)]
pub struct InclusionOut {
    /// The event's position.
    pub seq: u64,
    /// Tree size.
    pub size: u64,
    /// The event's leaf hash, base64.
    pub leaf_hash: String,
    /// The audit path, bottom up, base64.
    pub proof: Vec<String>,
    /// The root at `size`, base64 (compare with a signed checkpoint of that size).
    pub root: String,
}

fn b64_all(hashes: &[Hash]) -> Vec<String> {
    hashes.iter().map(|h| STANDARD.encode(h)).collect()
}

/// Proves that event `seq` is in the tree of `size` events.
#[utoipa::path(get, path = "/v1/orgs/{org}/audit/proofs/inclusion", tag = "audit", security(("session" = []), ("api_key" = [])),
    params(("org" = String, Path, description = "`org_…`"), InclusionQuery),
    responses(
        (status = 200, body = InclusionOut),
        (status = 422, body = Problem, description = "`beyond_tree`: `seq ≥ size` or `size` beyond the latest checkpoint"),
    ))]
pub(crate) async fn inclusion(
    State(state): State<AppState>,
    OrgCaller { authorized, .. }: OrgCaller<act::AuditRead>,
    ValidQuery(q): ValidQuery<InclusionQuery>,
) -> Result<Json<InclusionOut>, ApiError> {
    let (signed_size, _) = latest_checkpoint(&state, &authorized).await?;
    let size = q.size.unwrap_or(signed_size);
    if size > signed_size || q.seq >= size || size > MAX_PROOF_TREE {
        return Err(bad(
            "beyond_tree",
            format!(
                "need seq < size ≤ {signed_size} (the latest signed tree size); got seq {} and size {size}",
                q.seq
            ),
        ));
    }
    let mut reader = authorized
        .org_reader(&*state.store, Action::AuditRead)
        .await?;
    let all = leaves(&mut *reader, size).await?;
    let proof = merkle::inclusion_proof(&all, q.seq, size)
        .map_err(|e| bad("beyond_tree", e.to_string()))?;
    let leaf = all
        .get(usize::try_from(q.seq).unwrap_or(usize::MAX))
        .ok_or_else(|| bad("beyond_tree", "no such event"))?;
    Ok(Json(InclusionOut {
        seq: q.seq,
        size,
        leaf_hash: STANDARD.encode(leaf),
        proof: b64_all(&proof),
        root: STANDARD.encode(merkle::root(&all)),
    }))
}

/// A consistency proof request.
#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ConsistencyQuery {
    /// The older tree size (≥ 1).
    #[param(minimum = 1)]
    from: u64,
    /// The newer tree size; default the latest checkpoint's.
    #[param(minimum = 1)]
    to: Option<u64>,
}

/// A consistency proof (RFC 9162 §2.1.4).
#[derive(Serialize, utoipa::ToSchema)]
pub struct ConsistencyOut {
    /// Older size.
    pub from: u64,
    /// Newer size.
    pub to: u64,
    /// The proof, base64.
    pub proof: Vec<String>,
    /// The root at `from`, base64.
    pub from_root: String,
    /// The root at `to`, base64.
    pub to_root: String,
}

/// Proves that the tree of `from` events is a prefix of the tree of `to` events: nothing
/// acknowledged before was changed or dropped.
#[utoipa::path(get, path = "/v1/orgs/{org}/audit/proofs/consistency", tag = "audit", security(("session" = []), ("api_key" = [])),
    params(("org" = String, Path, description = "`org_…`"), ConsistencyQuery),
    responses(
        (status = 200, body = ConsistencyOut),
        (status = 422, body = Problem, description = "`beyond_tree`: sizes out of order, zero, or beyond the latest checkpoint"),
    ))]
pub(crate) async fn consistency(
    State(state): State<AppState>,
    OrgCaller { authorized, .. }: OrgCaller<act::AuditRead>,
    ValidQuery(q): ValidQuery<ConsistencyQuery>,
) -> Result<Json<ConsistencyOut>, ApiError> {
    let (signed_size, _) = latest_checkpoint(&state, &authorized).await?;
    let to = q.to.unwrap_or(signed_size);
    if q.from == 0 || q.from > to || to > signed_size || to > MAX_PROOF_TREE {
        return Err(bad(
            "beyond_tree",
            format!(
                "need 1 ≤ from ≤ to ≤ {signed_size} (the latest signed tree size); got from {} and to {to}",
                q.from
            ),
        ));
    }
    let mut reader = authorized
        .org_reader(&*state.store, Action::AuditRead)
        .await?;
    let all = leaves(&mut *reader, to).await?;
    let proof = merkle::consistency_proof(&all, q.from, to)
        .map_err(|e| bad("beyond_tree", e.to_string()))?;
    let first = all
        .get(..usize::try_from(q.from).unwrap_or(usize::MAX))
        .ok_or_else(|| bad("beyond_tree", "no such size"))?;
    Ok(Json(ConsistencyOut {
        from: q.from,
        to,
        proof: b64_all(&proof),
        from_root: STANDARD.encode(merkle::root(first)),
        to_root: STANDARD.encode(merkle::root(&all)),
    }))
}

/// An export request.
#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ExportQuery {
    /// `jsonl` (default) or `cloudevents` (a CloudEvents 1.0 JSON batch).
    pub(crate) format: Option<String>,
}

/// Exports the whole log up to a fresh signed checkpoint, in a form `bulwark audit verify`
/// checks offline. The export itself is recorded (`audit.exported`).
#[utoipa::path(get, path = "/v1/orgs/{org}/audit/export", tag = "audit", security(("session" = []), ("api_key" = [])),
    params(("org" = String, Path, description = "`org_…`"), ExportQuery),
    responses(
        (status = 200, description = "`application/jsonl` or `application/cloudevents-batch+json`"),
        (status = 422, body = Problem, description = "`validation_failed`: unknown format"),
    ))]
pub(crate) async fn export(
    State(state): State<AppState>,
    OrgCaller {
        org, authorized, ..
    }: OrgCaller<act::AuditRead>,
    ValidQuery(q): ValidQuery<ExportQuery>,
) -> Result<Response, ApiError> {
    let cloudevents = match q.format.as_deref() {
        None | Some("jsonl") => false,
        Some("cloudevents") => true,
        Some(_) => {
            return Err(ApiError::invalid_field(
                "/format",
                "must be `jsonl` or `cloudevents`",
            ));
        }
    };
    let log = Log::Org(org);
    let (size, _) = latest_checkpoint(&state, &authorized).await?;
    let text = {
        let mut reader = authorized
            .org_reader(&*state.store, Action::AuditRead)
            .await?;
        bulwark_core::audit::export_jsonl(&mut *reader, &state.checkpointer.origin(log))
            .await
            .map_err(ApiError::from_store)?
    };
    bulwark_core::audit::record_export(
        &*state.store,
        &*state.clock,
        org,
        if cloudevents { "cloudevents" } else { "jsonl" },
        size,
        authorized.context(),
    )
    .await?;
    state.checkpointer.note(log, 1);
    let (body, media) = if cloudevents {
        let batch = bulwark_audit::cloudevents::to_cloudevents(&text)
            .map_err(|e| ApiError::internal(format!("export conversion: {e}")))?;
        (batch, "application/cloudevents-batch+json")
    } else {
        (text, "application/jsonl")
    };
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(media));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    // A download under a name made here (the org id only), never rendered in place.
    let name = format!(
        "attachment; filename=\"audit-{org}.{}\"",
        if cloudevents { "json" } else { "jsonl" }
    );
    if let Ok(value) = HeaderValue::from_str(&name) {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    Ok(response)
}

/// An org's audit retention.
#[derive(Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RetentionBody {
    /// Days event bodies are kept (30–36500); `null` keeps them forever. Older bodies are
    /// pruned; their leaf hashes stay, so proofs and exports still verify.
    #[schema(minimum = 30, maximum = 36500)]
    pub days: Option<u32>,
}

/// The audit retention after a change.
#[derive(Serialize, utoipa::ToSchema)]
pub struct RetentionOut {
    /// Days, or `null` for forever.
    pub days: Option<u32>,
    /// Event bodies pruned right away under the new retention.
    pub pruned: u64,
}

/// The org's audit retention.
#[utoipa::path(get, path = "/v1/orgs/{org}/audit/retention", tag = "audit", security(("session" = []), ("api_key" = [])),
    params(("org" = String, Path, description = "`org_…`")),
    responses((status = 200, body = RetentionBody)))]
pub(crate) async fn retention(
    State(state): State<AppState>,
    OrgCaller { authorized, .. }: OrgCaller<act::AuditRead>,
) -> Result<Json<RetentionBody>, ApiError> {
    let mut reader = authorized
        .org_reader(&*state.store, Action::AuditRead)
        .await?;
    let days = reader
        .audit_retention()
        .await
        .map_err(ApiError::from_store)?;
    Ok(Json(RetentionBody { days }))
}

/// Sets the org's audit retention (owners only) and applies it at once. Recorded as
/// `audit.retention_changed`, and any pruning as `audit.pruned`.
#[utoipa::path(put, path = "/v1/orgs/{org}/audit/retention", tag = "audit",
    params(("org" = String, Path, description = "`org_…`")),
    request_body = RetentionBody,
    responses(
        (status = 200, body = RetentionOut),
        (status = 403, body = Problem, description = "`forbidden` (not an owner), `csrf_failed`, `license_read_only` (read-only mode allows only `null`: keep everything)"),
        (status = 422, body = Problem, description = "`validation_failed`: outside 30–36500 days"),
    ))]
pub(crate) async fn set_retention(
    State(state): State<AppState>,
    OrgAuthorized {
        org, authorized, ..
    }: OrgAuthorized<act::AuditRetentionWrite>,
    ValidJson(body): ValidJson<RetentionBody>,
) -> Result<Json<RetentionOut>, ApiError> {
    // Read-only mode keeps every event: the retention may only be set to keep everything
    // (a comparison with the current value would race a concurrent change, and pruning follows).
    if body.days.is_some() && state.licensing.read_only(&*state.clock) {
        return Err(state
            .licensing
            .deny(
                &*state.store,
                &*state.clock,
                bulwark_core::licensing::read_only_denial(Some(org)),
                authorized.context(),
            )
            .await
            .into());
    }
    bulwark_core::audit::set_retention(
        &*state.store,
        &*state.clock,
        org,
        body.days,
        authorized.context(),
    )
    .await?;
    let pruned = state.checkpointer.prune_now(org).await?;
    state.checkpointer.note(Log::Org(org), 1);
    Ok(Json(RetentionOut {
        days: body.days,
        pruned,
    }))
}

/// The routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(checkpoint))
        .routes(routes!(inclusion))
        .routes(routes!(consistency))
        .routes(routes!(export))
        .routes(routes!(retention, set_retention))
}
