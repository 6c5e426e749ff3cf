-- API-key rate limits (issue 5): token buckets shared by every replica. Keys are
-- `key:<key id>` and `org:<org id>`; a row holds the tokens left after the last take.
-- bulwark_refill() is the refill rule, in one place: tokens plus the seconds since the last take
-- times the rate, capped at the burst.

CREATE TABLE rate_buckets (
    key        TEXT             PRIMARY KEY,
    tokens     DOUBLE PRECISION NOT NULL,
    allowed    BOOLEAN          NOT NULL,
    updated_at TIMESTAMPTZ      NOT NULL
);

CREATE FUNCTION bulwark_refill(tokens double precision, since timestamptz, burst double precision,
                               per_sec double precision) RETURNS double precision
LANGUAGE sql STABLE AS $$
    SELECT LEAST(burst, tokens + GREATEST(0, EXTRACT(EPOCH FROM (now() - since))) * per_sec)
$$;
