-- Outbound webhooks (issue 7). Same meaning as bulwark-store-postgres/migrations/0014:
-- webhook_endpoints: an org's receivers (signing secrets are vault credentials, referenced);
-- webhook_messages: the outbox, written in the transaction of the change it reports;
-- webhook_deliveries: one per message and endpoint, with its retry schedule and worker lease
-- (Unix milliseconds; 0 = not held); webhook_attempts: the attempt log.

CREATE TABLE webhook_endpoints (
    org_id               BLOB    NOT NULL REFERENCES orgs (id),
    id                   BLOB    NOT NULL PRIMARY KEY,
    url                  TEXT    NOT NULL CHECK (length(url) BETWEEN 1 AND 2048),
    description          TEXT    NOT NULL CHECK (length(description) <= 500),
    event_types          TEXT    NOT NULL,
    scheme               TEXT    NOT NULL CHECK (scheme IN ('standard', 'stripe')),
    enabled              INTEGER NOT NULL CHECK (enabled IN (0, 1)),
    disabled_reason      TEXT,
    rate_limit           INTEGER NOT NULL CHECK (rate_limit >= 1),
    max_in_flight        INTEGER NOT NULL CHECK (max_in_flight >= 1),
    secret_id            BLOB    NOT NULL REFERENCES credentials (id),
    previous_secret_id   BLOB    REFERENCES credentials (id),
    previous_until       TEXT,
    failing_since        TEXT,
    consecutive_failures INTEGER NOT NULL DEFAULT 0,
    created_at           TEXT    NOT NULL,
    updated_at           TEXT    NOT NULL
) STRICT;
CREATE INDEX webhook_endpoints_org_idx ON webhook_endpoints (org_id);

CREATE TABLE webhook_messages (
    org_id          BLOB NOT NULL REFERENCES orgs (id),
    id              BLOB NOT NULL PRIMARY KEY,
    event_type      TEXT NOT NULL,
    payload         TEXT NOT NULL,
    idempotency_key TEXT,
    request_hash    BLOB,
    created_at      TEXT NOT NULL,
    created_ms      INTEGER NOT NULL,
    UNIQUE (org_id, idempotency_key)
) STRICT;
CREATE INDEX webhook_messages_time_idx ON webhook_messages (org_id, created_ms, id);

CREATE TABLE webhook_deliveries (
    org_id          BLOB    NOT NULL REFERENCES orgs (id),
    id              BLOB    NOT NULL PRIMARY KEY,
    message_id      BLOB    NOT NULL REFERENCES webhook_messages (id),
    endpoint_id     BLOB    NOT NULL REFERENCES webhook_endpoints (id),
    state           TEXT    NOT NULL CHECK (state IN ('pending', 'delivered', 'failed')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_ms INTEGER,
    lease_until_ms  INTEGER NOT NULL DEFAULT 0,
    created_at      TEXT    NOT NULL,
    CHECK ((state = 'pending') = (next_attempt_ms IS NOT NULL))
) STRICT;
-- Claims walk an endpoint's pending rows in due order; the in-flight count reads live leases.
CREATE INDEX webhook_deliveries_due_idx ON webhook_deliveries (endpoint_id, next_attempt_ms, id)
    WHERE state = 'pending';
CREATE INDEX webhook_deliveries_lease_idx ON webhook_deliveries (endpoint_id, lease_until_ms)
    WHERE state = 'pending';
CREATE INDEX webhook_deliveries_endpoint_idx ON webhook_deliveries (endpoint_id, created_at);

CREATE TABLE webhook_attempts (
    org_id      BLOB    NOT NULL REFERENCES orgs (id),
    id          INTEGER PRIMARY KEY,
    delivery_id BLOB    NOT NULL REFERENCES webhook_deliveries (id),
    message_id  BLOB    NOT NULL,
    endpoint_id BLOB    NOT NULL,
    attempt     INTEGER NOT NULL,
    at          TEXT    NOT NULL,
    status      INTEGER,
    latency_ms  INTEGER NOT NULL,
    error       TEXT,
    response    TEXT,
    delivered   INTEGER NOT NULL CHECK (delivered IN (0, 1))
) STRICT;
CREATE INDEX webhook_attempts_endpoint_idx ON webhook_attempts (endpoint_id, id);
CREATE INDEX webhook_attempts_delivery_idx ON webhook_attempts (delivery_id);
