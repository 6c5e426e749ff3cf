//! Outbound webhooks: an org's endpoints, the outbox of messages, deliveries with their retry
//! schedule and worker lease, and the attempt log. A claimer holds the endpoints it fills and the
//! deliveries it takes, so another replica skips them (row locks on PostgreSQL; SQLite
//! serialises writers).

use std::collections::HashMap;

use bulwark_core::StoreError;
use bulwark_core::model::{
    ClaimedDelivery, SignatureScheme, WebhookAttempt, WebhookDelivery, WebhookEndpoint,
    WebhookMessage,
};
use bulwark_core::webhooks::unix_ms;
use bulwark_types::{CredentialId, DeliveryId, EndpointId, MessageId, OrgId};
use sqlx::Row as _;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::dialect::{
    Conn, DbRow, FOR_UPDATE, FOR_UPDATE_SKIP_LOCKED, Pool, WEBHOOK_DUE_ORGS, WEBHOOK_PRUNABLE_ORGS,
};
use crate::map_err;

const ENDPOINT_COLUMNS: &str = "id, url, description, event_types, scheme, enabled, \
    disabled_reason, rate_limit, max_in_flight, secret_id, previous_secret_id, previous_until, \
    failing_since, consecutive_failures, created_at, updated_at";

const MESSAGE_COLUMNS: &str =
    "m.id, m.event_type, m.payload, m.idempotency_key, m.request_hash, m.created_at";

fn count(what: &str, v: i64) -> Result<u32, StoreError> {
    u32::try_from(v).map_err(|_| StoreError::Corrupt(format!("webhook {what}")))
}

fn json_list(what: &str, s: &str) -> Result<Vec<String>, StoreError> {
    serde_json::from_str(s).map_err(|_| StoreError::Corrupt(format!("webhook {what}")))
}

fn endpoint(org: OrgId, row: &DbRow) -> Result<WebhookEndpoint, StoreError> {
    let scheme: String = row.try_get("scheme").map_err(map_err)?;
    let previous: Option<Uuid> = row.try_get("previous_secret_id").map_err(map_err)?;
    Ok(WebhookEndpoint {
        id: EndpointId::from_uuid(row.try_get("id").map_err(map_err)?),
        org,
        url: row.try_get("url").map_err(map_err)?,
        description: row.try_get("description").map_err(map_err)?,
        event_types: json_list("event types", row.try_get("event_types").map_err(map_err)?)?,
        scheme: SignatureScheme::parse(&scheme)
            .ok_or_else(|| StoreError::Corrupt("webhook scheme".into()))?,
        enabled: row.try_get("enabled").map_err(map_err)?,
        disabled_reason: row.try_get("disabled_reason").map_err(map_err)?,
        rate_limit: count("rate", row.try_get("rate_limit").map_err(map_err)?)?,
        max_in_flight: count("cap", row.try_get("max_in_flight").map_err(map_err)?)?,
        secret: CredentialId::from_uuid(row.try_get("secret_id").map_err(map_err)?),
        previous_secret: previous.map(CredentialId::from_uuid),
        previous_until: row.try_get("previous_until").map_err(map_err)?,
        failing_since: row.try_get("failing_since").map_err(map_err)?,
        consecutive_failures: count(
            "failures",
            row.try_get("consecutive_failures").map_err(map_err)?,
        )?,
        created_at: row.try_get("created_at").map_err(map_err)?,
        updated_at: row.try_get("updated_at").map_err(map_err)?,
    })
}

fn message(row: &DbRow) -> Result<WebhookMessage, StoreError> {
    Ok(WebhookMessage {
        id: MessageId::from_uuid(row.try_get("id").map_err(map_err)?),
        event_type: row.try_get("event_type").map_err(map_err)?,
        payload: row.try_get("payload").map_err(map_err)?,
        idempotency_key: row.try_get("idempotency_key").map_err(map_err)?,
        request_hash: row.try_get("request_hash").map_err(map_err)?,
        created_at: row.try_get("created_at").map_err(map_err)?,
    })
}

fn delivery(row: &DbRow) -> Result<WebhookDelivery, StoreError> {
    Ok(WebhookDelivery {
        id: DeliveryId::from_uuid(row.try_get("id").map_err(map_err)?),
        message: MessageId::from_uuid(row.try_get("message_id").map_err(map_err)?),
        endpoint: EndpointId::from_uuid(row.try_get("endpoint_id").map_err(map_err)?),
        state: row.try_get("state").map_err(map_err)?,
        attempts: count("attempts", row.try_get("attempts").map_err(map_err)?)?,
        next_attempt_ms: row.try_get("next_attempt_ms").map_err(map_err)?,
        created_at: row.try_get("created_at").map_err(map_err)?,
    })
}

fn attempt(row: &DbRow) -> Result<WebhookAttempt, StoreError> {
    let status: Option<i64> = row.try_get("status").map_err(map_err)?;
    Ok(WebhookAttempt {
        delivery: DeliveryId::from_uuid(row.try_get("delivery_id").map_err(map_err)?),
        message: MessageId::from_uuid(row.try_get("message_id").map_err(map_err)?),
        endpoint: EndpointId::from_uuid(row.try_get("endpoint_id").map_err(map_err)?),
        attempt: count("attempt", row.try_get("attempt").map_err(map_err)?)?,
        at: row.try_get("at").map_err(map_err)?,
        status: status
            .map(|s| u16::try_from(s).map_err(|_| StoreError::Corrupt("webhook status".into())))
            .transpose()?,
        latency_ms: count("latency", row.try_get("latency_ms").map_err(map_err)?)?,
        error: row.try_get("error").map_err(map_err)?,
        response: row.try_get("response").map_err(map_err)?,
        delivered: row.try_get("delivered").map_err(map_err)?,
    })
}

pub(crate) async fn endpoints(
    conn: &mut Conn,
    org: OrgId,
) -> Result<Vec<WebhookEndpoint>, StoreError> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE org_id = $1 ORDER BY created_at, id"
    )))
    .bind(org.as_uuid())
    .fetch_all(conn)
    .await
    .map_err(map_err)?;
    rows.iter().map(|r| endpoint(org, r)).collect()
}

/// The deliveries due at `now_ms` to the org's enabled endpoints and not leased, and the
/// earliest due time among them (`Store::webhook_due_orgs` finds the orgs with any).
pub(crate) async fn backlog(
    conn: &mut Conn,
    org: OrgId,
    now_ms: i64,
) -> Result<(u64, Option<i64>), StoreError> {
    let (due, oldest): (i64, Option<i64>) = sqlx::query_as(
        "SELECT COUNT(*), MIN(d.next_attempt_ms) FROM webhook_deliveries d \
         JOIN webhook_endpoints e ON e.id = d.endpoint_id \
         WHERE d.org_id = $1 AND e.org_id = $1 AND e.enabled AND d.state = 'pending' \
         AND d.next_attempt_ms <= $2 AND d.lease_until_ms <= $2",
    )
    .bind(org.as_uuid())
    .bind(now_ms)
    .fetch_one(conn)
    .await
    .map_err(map_err)?;
    Ok((u64::try_from(due).unwrap_or(0), oldest))
}

pub(crate) async fn endpoint_by_id(
    conn: &mut Conn,
    org: OrgId,
    id: EndpointId,
) -> Result<Option<WebhookEndpoint>, StoreError> {
    select_endpoint(conn, org, id, "").await
}

/// One endpoint; `lock` is empty or this engine's row lock (a constant).
async fn select_endpoint(
    conn: &mut Conn,
    org: OrgId,
    id: EndpointId,
    lock: &'static str,
) -> Result<Option<WebhookEndpoint>, StoreError> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE org_id = $1 AND id = $2{lock}"
    )))
    .bind(org.as_uuid())
    .bind(id.as_uuid())
    .fetch_optional(conn)
    .await
    .map_err(map_err)?;
    row.as_ref().map(|r| endpoint(org, r)).transpose()
}

pub(crate) async fn subscribers(
    conn: &mut Conn,
    org: OrgId,
) -> Result<Vec<(EndpointId, Vec<String>)>, StoreError> {
    let rows: Vec<(Uuid, String)> = sqlx::query_as(
        "SELECT id, event_types FROM webhook_endpoints WHERE org_id = $1 AND enabled",
    )
    .bind(org.as_uuid())
    .fetch_all(conn)
    .await
    .map_err(map_err)?;
    rows.into_iter()
        .map(|(id, types)| Ok((EndpointId::from_uuid(id), json_list("event types", &types)?)))
        .collect()
}

pub(crate) async fn enqueue(
    conn: &mut Conn,
    org: OrgId,
    m: &WebhookMessage,
    endpoints: &[EndpointId],
    due_ms: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO webhook_messages (org_id, id, event_type, payload, idempotency_key, \
         request_hash, created_at, created_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(org.as_uuid())
    .bind(m.id.as_uuid())
    .bind(&m.event_type)
    .bind(&m.payload)
    .bind(m.idempotency_key.as_deref())
    .bind(m.request_hash.as_deref())
    .bind(m.created_at)
    .bind(unix_ms(m.created_at))
    .execute(&mut *conn)
    .await
    .map_err(map_err)?;
    for ep in endpoints {
        requeue(conn, org, m.id, *ep, due_ms, m.created_at).await?;
    }
    Ok(())
}

pub(crate) async fn requeue(
    conn: &mut Conn,
    org: OrgId,
    message: MessageId,
    endpoint: EndpointId,
    due_ms: i64,
    at: OffsetDateTime,
) -> Result<DeliveryId, StoreError> {
    let id = DeliveryId::new();
    // Only the org's own message to the org's own endpoint: the foreign keys name rows of any
    // org, so the statement checks both.
    let done = sqlx::query(
        "INSERT INTO webhook_deliveries (org_id, id, message_id, endpoint_id, state, \
         next_attempt_ms, created_at) SELECT $1, $2, $3, $4, 'pending', $5, $6 \
         WHERE EXISTS (SELECT 1 FROM webhook_messages WHERE org_id = $1 AND id = $3) \
         AND EXISTS (SELECT 1 FROM webhook_endpoints WHERE org_id = $1 AND id = $4)",
    )
    .bind(org.as_uuid())
    .bind(id.as_uuid())
    .bind(message.as_uuid())
    .bind(endpoint.as_uuid())
    .bind(due_ms)
    .bind(at)
    .execute(conn)
    .await
    .map_err(map_err)?;
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(id)
}

/// Binds `$1`…`$15` of an endpoint statement: the org, then the columns of
/// [`ENDPOINT_COLUMNS`] up to `consecutive_failures` (the statement adds the times).
macro_rules! bind_endpoint {
    ($query:expr, $org:expr, $e:expr) => {
        $query
            .bind($org.as_uuid())
            .bind($e.id.as_uuid())
            .bind(&$e.url)
            .bind(&$e.description)
            .bind(
                serde_json::to_string(&$e.event_types)
                    .map_err(|_| StoreError::Corrupt("event types".into()))?,
            )
            .bind($e.scheme.as_str())
            .bind($e.enabled)
            .bind($e.disabled_reason.as_deref())
            .bind(i64::from($e.rate_limit))
            .bind(i64::from($e.max_in_flight))
            .bind($e.secret.as_uuid())
            .bind($e.previous_secret.map(|c| c.as_uuid()))
            .bind($e.previous_until)
            .bind($e.failing_since)
            .bind(i64::from($e.consecutive_failures))
    };
}

/// Refuses (`NotFound`) an endpoint whose signing secrets are not credentials of `org`: the
/// foreign keys name credentials of any org, so the check is here.
async fn secrets_are_the_orgs(
    conn: &mut Conn,
    org: OrgId,
    e: &WebhookEndpoint,
) -> Result<(), StoreError> {
    for secret in std::iter::once(e.secret).chain(e.previous_secret) {
        let found: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM credentials WHERE org_id = $1 AND id = $2)",
        )
        .bind(org.as_uuid())
        .bind(secret.as_uuid())
        .fetch_one(&mut *conn)
        .await
        .map_err(map_err)?;
        if !found {
            return Err(StoreError::NotFound);
        }
    }
    Ok(())
}

pub(crate) async fn create_endpoint(
    conn: &mut Conn,
    org: OrgId,
    e: &WebhookEndpoint,
) -> Result<(), StoreError> {
    secrets_are_the_orgs(&mut *conn, org, e).await?;
    let insert = sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO webhook_endpoints (org_id, {ENDPOINT_COLUMNS}) VALUES \
         ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)"
    )));
    bind_endpoint!(insert, org, e)
        .bind(e.created_at)
        .bind(e.updated_at)
        .execute(conn)
        .await
        .map_err(map_err)?;
    Ok(())
}

pub(crate) async fn update_endpoint(
    conn: &mut Conn,
    org: OrgId,
    e: &WebhookEndpoint,
) -> Result<bool, StoreError> {
    secrets_are_the_orgs(&mut *conn, org, e).await?;
    let update = sqlx::query(
        "UPDATE webhook_endpoints SET url = $3, description = $4, event_types = $5, scheme = $6, \
         enabled = $7, disabled_reason = $8, rate_limit = $9, max_in_flight = $10, \
         secret_id = $11, previous_secret_id = $12, previous_until = $13, failing_since = $14, \
         consecutive_failures = $15, updated_at = $16 WHERE org_id = $1 AND id = $2",
    );
    let done = bind_endpoint!(update, org, e)
        .bind(e.updated_at)
        .execute(conn)
        .await
        .map_err(map_err)?;
    Ok(done.rows_affected() == 1)
}

pub(crate) async fn delete_endpoint(
    conn: &mut Conn,
    org: OrgId,
    id: EndpointId,
) -> Result<bool, StoreError> {
    for table in ["webhook_attempts", "webhook_deliveries"] {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DELETE FROM {table} WHERE org_id = $1 AND endpoint_id = $2"
        )))
        .bind(org.as_uuid())
        .bind(id.as_uuid())
        .execute(&mut *conn)
        .await
        .map_err(map_err)?;
    }
    let done = sqlx::query("DELETE FROM webhook_endpoints WHERE org_id = $1 AND id = $2")
        .bind(org.as_uuid())
        .bind(id.as_uuid())
        .execute(conn)
        .await
        .map_err(map_err)?;
    Ok(done.rows_affected() == 1)
}

pub(crate) async fn attempts(
    conn: &mut Conn,
    org: OrgId,
    endpoint: EndpointId,
    limit: u32,
) -> Result<Vec<WebhookAttempt>, StoreError> {
    let rows = sqlx::query(
        "SELECT delivery_id, message_id, endpoint_id, attempt, at, status, latency_ms, error, \
         response, delivered FROM webhook_attempts WHERE org_id = $1 AND endpoint_id = $2 \
         ORDER BY id DESC LIMIT $3",
    )
    .bind(org.as_uuid())
    .bind(endpoint.as_uuid())
    .bind(i64::from(limit))
    .fetch_all(conn)
    .await
    .map_err(map_err)?;
    rows.iter().map(attempt).collect()
}

const DELIVERY_COLUMNS: &str =
    "id, message_id, endpoint_id, state, attempts, next_attempt_ms, created_at";

pub(crate) async fn deliveries(
    conn: &mut Conn,
    org: OrgId,
    endpoint: EndpointId,
    limit: u32,
) -> Result<Vec<WebhookDelivery>, StoreError> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries WHERE org_id = $1 AND endpoint_id = $2 \
         ORDER BY created_at DESC, id DESC LIMIT $3"
    )))
    .bind(org.as_uuid())
    .bind(endpoint.as_uuid())
    .bind(i64::from(limit))
    .fetch_all(conn)
    .await
    .map_err(map_err)?;
    rows.iter().map(delivery).collect()
}

pub(crate) async fn delivery_by_id(
    conn: &mut Conn,
    org: OrgId,
    id: DeliveryId,
) -> Result<Option<WebhookDelivery>, StoreError> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries WHERE org_id = $1 AND id = $2"
    )))
    .bind(org.as_uuid())
    .bind(id.as_uuid())
    .fetch_optional(conn)
    .await
    .map_err(map_err)?;
    row.as_ref().map(delivery).transpose()
}

pub(crate) async fn message_by_key(
    conn: &mut Conn,
    org: OrgId,
    key: &str,
) -> Result<Option<WebhookMessage>, StoreError> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {MESSAGE_COLUMNS} FROM webhook_messages m WHERE m.org_id = $1 AND m.idempotency_key = $2"
    )))
    .bind(org.as_uuid())
    .bind(key)
    .fetch_optional(conn)
    .await
    .map_err(map_err)?;
    row.as_ref().map(message).transpose()
}

pub(crate) async fn messages_between(
    conn: &mut Conn,
    org: OrgId,
    since: OffsetDateTime,
    until: OffsetDateTime,
    after: Option<MessageId>,
    limit: u32,
) -> Result<Vec<WebhookMessage>, StoreError> {
    // Walked in (created_ms, id) order; `after` is the last message of the previous page.
    let after_clause = if after.is_some() {
        " AND (m.created_ms, m.id) > ((SELECT created_ms FROM webhook_messages \
         WHERE org_id = $1 AND id = $5), $5)"
    } else {
        ""
    };
    let mut query = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {MESSAGE_COLUMNS} FROM webhook_messages m WHERE m.org_id = $1 \
         AND m.created_ms >= $2 AND m.created_ms < $3{after_clause} \
         ORDER BY m.created_ms, m.id LIMIT $4"
    )))
    .bind(org.as_uuid())
    .bind(unix_ms(since))
    .bind(unix_ms(until))
    .bind(i64::from(limit));
    if let Some(after) = after {
        query = query.bind(after.as_uuid());
    }
    let rows = query.fetch_all(conn).await.map_err(map_err)?;
    rows.iter().map(message).collect()
}

pub(crate) async fn due_endpoints(
    conn: &mut Conn,
    org: OrgId,
    now_ms: i64,
) -> Result<Vec<(EndpointId, u32)>, StoreError> {
    let rows: Vec<(Uuid, i64)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT e.id, e.max_in_flight FROM webhook_endpoints e WHERE e.org_id = $1 AND e.enabled \
         AND EXISTS (SELECT 1 FROM webhook_deliveries d WHERE d.org_id = $1 \
         AND d.endpoint_id = e.id AND d.state = 'pending' AND d.next_attempt_ms <= $2 \
         AND d.lease_until_ms <= $2) ORDER BY e.id{FOR_UPDATE_SKIP_LOCKED}"
    )))
    .bind(org.as_uuid())
    .bind(now_ms)
    .fetch_all(conn)
    .await
    .map_err(map_err)?;
    rows.into_iter()
        .map(|(id, cap)| Ok((EndpointId::from_uuid(id), count("cap", cap)?)))
        .collect()
}

pub(crate) async fn in_flight(
    conn: &mut Conn,
    org: OrgId,
    endpoint: EndpointId,
    now_ms: i64,
) -> Result<u32, StoreError> {
    let n: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM webhook_deliveries WHERE org_id = $1 AND endpoint_id = $2 \
         AND state = 'pending' AND lease_until_ms > $3",
    )
    .bind(org.as_uuid())
    .bind(endpoint.as_uuid())
    .bind(now_ms)
    .fetch_one(conn)
    .await
    .map_err(map_err)?;
    count("in flight", n)
}

pub(crate) async fn claim(
    conn: &mut Conn,
    org: OrgId,
    endpoint: EndpointId,
    now_ms: i64,
    lease_until_ms: i64,
    limit: u32,
) -> Result<Vec<ClaimedDelivery>, StoreError> {
    // The due rows first, from the endpoint's index in due order (held, skipping rows another
    // claimer holds), then their messages by id.
    let due: Vec<(Uuid, Uuid, i64)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT id, message_id, attempts FROM webhook_deliveries \
         WHERE org_id = $1 AND endpoint_id = $2 AND state = 'pending' \
         AND next_attempt_ms <= $3 AND lease_until_ms <= $3 \
         ORDER BY next_attempt_ms, id LIMIT $4{FOR_UPDATE_SKIP_LOCKED}"
    )))
    .bind(org.as_uuid())
    .bind(endpoint.as_uuid())
    .bind(now_ms)
    .bind(i64::from(limit))
    .fetch_all(&mut *conn)
    .await
    .map_err(map_err)?;
    if due.is_empty() {
        return Ok(Vec::new());
    }
    // Placeholders for the claimed ids: numbered in code, never from input.
    let list = |from: usize| -> String {
        (0..due.len())
            .map(|i| format!("${}", i + from))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut update = sqlx::query(sqlx::AssertSqlSafe(format!(
        "UPDATE webhook_deliveries SET lease_until_ms = $2, attempts = attempts + 1 \
         WHERE org_id = $1 AND id IN ({})",
        list(3)
    )))
    .bind(org.as_uuid())
    .bind(lease_until_ms);
    for (id, _, _) in &due {
        update = update.bind(*id);
    }
    update.execute(&mut *conn).await.map_err(map_err)?;
    let mut select = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {MESSAGE_COLUMNS} FROM webhook_messages m WHERE m.org_id = $1 AND m.id IN ({})",
        list(2)
    )))
    .bind(org.as_uuid());
    for (_, message, _) in &due {
        select = select.bind(*message);
    }
    let rows = select.fetch_all(&mut *conn).await.map_err(map_err)?;
    let mut messages = HashMap::with_capacity(rows.len());
    for row in &rows {
        let m = message(row)?;
        messages.insert(m.id, m);
    }
    let mut claimed = Vec::with_capacity(due.len());
    for (id, message_id, attempts) in due {
        // A message is shared by its deliveries to several endpoints, so it is cloned.
        let message = messages
            .get(&MessageId::from_uuid(message_id))
            .cloned()
            .ok_or_else(|| StoreError::Corrupt("webhook delivery without its message".into()))?;
        claimed.push(ClaimedDelivery {
            id: DeliveryId::from_uuid(id),
            endpoint,
            attempt: count("attempts", attempts + 1)?,
            message,
        });
    }
    Ok(claimed)
}

pub(crate) async fn set_destinations(
    conn: &mut Conn,
    org: OrgId,
    id: CredentialId,
    destinations: &[String],
) -> Result<bool, StoreError> {
    let list = serde_json::to_string(destinations)
        .map_err(|_| StoreError::Corrupt("credential destinations".into()))?;
    let done =
        sqlx::query("UPDATE credentials SET destinations = $3 WHERE org_id = $1 AND id = $2")
            .bind(org.as_uuid())
            .bind(id.as_uuid())
            .bind(list)
            .execute(conn)
            .await
            .map_err(map_err)?;
    Ok(done.rows_affected() == 1)
}

/// Orgs with a delivery due at `now_ms` (only their ids cross the org boundary).
pub(crate) async fn due_orgs(pool: &Pool, now_ms: i64) -> Result<Vec<OrgId>, StoreError> {
    let rows: Vec<Uuid> = sqlx::query_scalar(WEBHOOK_DUE_ORGS)
        .bind(now_ms)
        .fetch_all(pool)
        .await
        .map_err(map_err)?;
    Ok(rows.into_iter().map(OrgId::from_uuid).collect())
}

/// One endpoint, held for update until the transaction ends (admin changes and the worker's
/// bookkeeping then apply one after the other, never over a stale copy).
pub(crate) async fn lock_endpoint(
    conn: &mut Conn,
    org: OrgId,
    id: EndpointId,
) -> Result<Option<WebhookEndpoint>, StoreError> {
    select_endpoint(conn, org, id, FOR_UPDATE).await
}

/// Adds a run of attempt outcomes to an endpoint's failure count in one statement (never a
/// stale read written back): after a success (`reset`) the count is the failures since it.
/// Returns whether it is enabled, the count and since when it has been failing.
pub(crate) async fn health(
    conn: &mut Conn,
    org: OrgId,
    id: EndpointId,
    reset: bool,
    failures: u32,
    first_failure: Option<OffsetDateTime>,
) -> Result<Option<(bool, u32, Option<OffsetDateTime>)>, StoreError> {
    let row: Option<(bool, i64, Option<OffsetDateTime>)> = sqlx::query_as(
        "UPDATE webhook_endpoints SET \
         consecutive_failures = CASE WHEN $3 THEN $4 ELSE consecutive_failures + $4 END, \
         failing_since = CASE WHEN $3 THEN $5 ELSE COALESCE(failing_since, $5) END \
         WHERE org_id = $1 AND id = $2 \
         RETURNING enabled, consecutive_failures, failing_since",
    )
    .bind(org.as_uuid())
    .bind(id.as_uuid())
    .bind(reset)
    .bind(i64::from(failures))
    .bind(first_failure)
    .fetch_optional(conn)
    .await
    .map_err(map_err)?;
    row.map(|(enabled, n, since)| Ok((enabled, count("failures", n)?, since)))
        .transpose()
}

/// Disables an enabled endpoint for `reason`; false when it was disabled already.
pub(crate) async fn disable(
    conn: &mut Conn,
    org: OrgId,
    id: EndpointId,
    reason: &str,
) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "UPDATE webhook_endpoints SET enabled = false, disabled_reason = $3 \
         WHERE org_id = $1 AND id = $2 AND enabled",
    )
    .bind(org.as_uuid())
    .bind(id.as_uuid())
    .bind(reason)
    .execute(conn)
    .await
    .map_err(map_err)?;
    Ok(done.rows_affected() == 1)
}

/// Deletes the org's messages created before `before_ms`, with their deliveries (pending
/// ones too) and attempts; returns how many messages. The deliveries are held first, so a
/// worker recording an attempt for one of them waits and then finds it gone.
pub(crate) async fn prune(conn: &mut Conn, org: OrgId, before_ms: i64) -> Result<u64, StoreError> {
    const OLD: &str =
        "SELECT m.id FROM webhook_messages m WHERE m.org_id = $1 AND m.created_ms < $2";
    let mut pruned = 0;
    for sql in [
        format!(
            "SELECT id FROM webhook_deliveries WHERE org_id = $1 AND message_id IN ({OLD}){FOR_UPDATE}"
        ),
        format!("DELETE FROM webhook_attempts WHERE org_id = $1 AND message_id IN ({OLD})"),
        format!("DELETE FROM webhook_deliveries WHERE org_id = $1 AND message_id IN ({OLD})"),
        format!("DELETE FROM webhook_messages WHERE org_id = $1 AND id IN ({OLD})"),
    ] {
        pruned = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(org.as_uuid())
            .bind(before_ms)
            .execute(&mut *conn)
            .await
            .map_err(map_err)?
            .rows_affected();
    }
    Ok(pruned)
}

/// Orgs with messages older than `before_ms` (only their ids cross the org boundary).
pub(crate) async fn prunable_orgs(pool: &Pool, before_ms: i64) -> Result<Vec<OrgId>, StoreError> {
    let rows: Vec<Uuid> = sqlx::query_scalar(WEBHOOK_PRUNABLE_ORGS)
        .bind(before_ms)
        .fetch_all(pool)
        .await
        .map_err(map_err)?;
    Ok(rows.into_iter().map(OrgId::from_uuid).collect())
}
