-- Outbound webhooks (issue 7). Same meaning as bulwark-store-sqlite/migrations/0014:
-- webhook_endpoints: an org's receivers (signing secrets are vault credentials, referenced);
-- webhook_messages: the outbox, written in the transaction of the change it reports;
-- webhook_deliveries: one per message and endpoint, with its retry schedule and worker lease
-- (Unix milliseconds; 0 = not held). Replicas claim due deliveries with FOR UPDATE SKIP
-- LOCKED under a lock on the endpoint row, so an endpoint's in-flight cap holds across them;
-- webhook_attempts: the attempt log.

CREATE TABLE webhook_endpoints (
    org_id               UUID        NOT NULL REFERENCES orgs (id),
    id                   UUID        NOT NULL PRIMARY KEY,
    url                  TEXT        NOT NULL CHECK (length(url) BETWEEN 1 AND 2048),
    description          TEXT        NOT NULL CHECK (length(description) <= 500),
    event_types          TEXT        NOT NULL,
    scheme               TEXT        NOT NULL CHECK (scheme IN ('standard', 'stripe')),
    enabled              BOOLEAN     NOT NULL,
    disabled_reason      TEXT,
    rate_limit           BIGINT      NOT NULL CHECK (rate_limit >= 1),
    max_in_flight        BIGINT      NOT NULL CHECK (max_in_flight >= 1),
    secret_id            UUID        NOT NULL REFERENCES credentials (id),
    previous_secret_id   UUID        REFERENCES credentials (id),
    previous_until       TIMESTAMPTZ,
    failing_since        TIMESTAMPTZ,
    consecutive_failures BIGINT      NOT NULL DEFAULT 0,
    created_at           TIMESTAMPTZ NOT NULL,
    updated_at           TIMESTAMPTZ NOT NULL
);
CREATE INDEX webhook_endpoints_org_idx ON webhook_endpoints (org_id);

CREATE TABLE webhook_messages (
    org_id          UUID        NOT NULL REFERENCES orgs (id),
    id              UUID        NOT NULL PRIMARY KEY,
    event_type      TEXT        NOT NULL,
    payload         TEXT        NOT NULL,
    idempotency_key TEXT,
    request_hash    BYTEA,
    created_at      TIMESTAMPTZ NOT NULL,
    created_ms      BIGINT      NOT NULL,
    CONSTRAINT webhook_messages_org_id_idempotency_key_key UNIQUE (org_id, idempotency_key)
);
CREATE INDEX webhook_messages_time_idx ON webhook_messages (org_id, created_ms, id);

CREATE TABLE webhook_deliveries (
    org_id          UUID        NOT NULL REFERENCES orgs (id),
    id              UUID        NOT NULL PRIMARY KEY,
    message_id      UUID        NOT NULL REFERENCES webhook_messages (id),
    endpoint_id     UUID        NOT NULL REFERENCES webhook_endpoints (id),
    state           TEXT        NOT NULL CHECK (state IN ('pending', 'delivered', 'failed')),
    attempts        BIGINT      NOT NULL DEFAULT 0,
    next_attempt_ms BIGINT,
    lease_until_ms  BIGINT      NOT NULL DEFAULT 0,
    created_at      TIMESTAMPTZ NOT NULL,
    CHECK ((state = 'pending') = (next_attempt_ms IS NOT NULL))
);
-- Claims walk an endpoint's pending rows in due order; the in-flight count reads live leases.
CREATE INDEX webhook_deliveries_due_idx ON webhook_deliveries (endpoint_id, next_attempt_ms, id)
    WHERE state = 'pending';
CREATE INDEX webhook_deliveries_lease_idx ON webhook_deliveries (endpoint_id, lease_until_ms)
    WHERE state = 'pending';
CREATE INDEX webhook_deliveries_endpoint_idx ON webhook_deliveries (endpoint_id, created_at);

CREATE TABLE webhook_attempts (
    org_id      UUID        NOT NULL REFERENCES orgs (id),
    id          BIGINT      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    delivery_id UUID        NOT NULL REFERENCES webhook_deliveries (id),
    message_id  UUID        NOT NULL,
    endpoint_id UUID        NOT NULL,
    attempt     BIGINT      NOT NULL,
    at          TIMESTAMPTZ NOT NULL,
    status      BIGINT,
    latency_ms  BIGINT      NOT NULL,
    error       TEXT,
    response    TEXT,
    delivered   BOOLEAN     NOT NULL
);
CREATE INDEX webhook_attempts_endpoint_idx ON webhook_attempts (endpoint_id, id);
CREATE INDEX webhook_attempts_delivery_idx ON webhook_attempts (delivery_id);

ALTER TABLE webhook_endpoints ENABLE ROW LEVEL SECURITY;
ALTER TABLE webhook_endpoints FORCE ROW LEVEL SECURITY;
CREATE POLICY webhook_endpoints_current_org ON webhook_endpoints
    USING (org_id = NULLIF(current_setting('app.current_org_id', true), '')::uuid)
    WITH CHECK (org_id = NULLIF(current_setting('app.current_org_id', true), '')::uuid);
CREATE POLICY webhook_endpoints_owner_lookup ON webhook_endpoints FOR SELECT TO CURRENT_USER
    USING (true);

ALTER TABLE webhook_messages ENABLE ROW LEVEL SECURITY;
ALTER TABLE webhook_messages FORCE ROW LEVEL SECURITY;
CREATE POLICY webhook_messages_current_org ON webhook_messages
    USING (org_id = NULLIF(current_setting('app.current_org_id', true), '')::uuid)
    WITH CHECK (org_id = NULLIF(current_setting('app.current_org_id', true), '')::uuid);
CREATE POLICY webhook_messages_owner_lookup ON webhook_messages FOR SELECT TO CURRENT_USER
    USING (true);

ALTER TABLE webhook_deliveries ENABLE ROW LEVEL SECURITY;
ALTER TABLE webhook_deliveries FORCE ROW LEVEL SECURITY;
CREATE POLICY webhook_deliveries_current_org ON webhook_deliveries
    USING (org_id = NULLIF(current_setting('app.current_org_id', true), '')::uuid)
    WITH CHECK (org_id = NULLIF(current_setting('app.current_org_id', true), '')::uuid);
CREATE POLICY webhook_deliveries_owner_lookup ON webhook_deliveries FOR SELECT TO CURRENT_USER
    USING (true);

ALTER TABLE webhook_attempts ENABLE ROW LEVEL SECURITY;
ALTER TABLE webhook_attempts FORCE ROW LEVEL SECURITY;
CREATE POLICY webhook_attempts_current_org ON webhook_attempts
    USING (org_id = NULLIF(current_setting('app.current_org_id', true), '')::uuid)
    WITH CHECK (org_id = NULLIF(current_setting('app.current_org_id', true), '')::uuid);

-- Org ids only: the workers then claim inside each org's own transaction.
CREATE FUNCTION bulwark_webhook_due_orgs(p_now bigint) RETURNS SETOF uuid
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
    SELECT DISTINCT e.org_id FROM webhook_endpoints e
    WHERE e.enabled AND EXISTS (SELECT 1 FROM webhook_deliveries d
        WHERE d.endpoint_id = e.id AND d.state = 'pending' AND d.next_attempt_ms <= p_now
        AND d.lease_until_ms <= p_now)
$$;
REVOKE ALL ON FUNCTION bulwark_webhook_due_orgs(bigint) FROM PUBLIC;

-- Org ids only: the worker prunes old messages inside each org's own transaction.
CREATE FUNCTION bulwark_webhook_prunable_orgs(p_before bigint) RETURNS SETOF uuid
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
    SELECT DISTINCT org_id FROM webhook_messages WHERE created_ms < p_before
$$;
REVOKE ALL ON FUNCTION bulwark_webhook_prunable_orgs(bigint) FROM PUBLIC;
