-- The mail queue and per-account mail limits (issue 9: password-reset requests that are no
-- oracle and no mail cannon). Same tables and meaning as bulwark-store-sqlite/migrations/0016.
-- Deployment-wide data, like the users they belong to: no row-level security (GLOBAL_TABLES).
--
-- A request for a password-reset or verification email only queues the address here, the same
-- statement whether or not it has an account; the mail worker issues the token and sends it.
-- No token is ever stored here. Jobs for the same purpose and lower-cased address coalesce, and a
-- job is deleted once handled, so the table holds at most one row per address being handled.
-- `lease_until_ms`: the worker holding the job (Unix ms; 0 = free).
CREATE TABLE mail_jobs (
    id             UUID   PRIMARY KEY,
    purpose        TEXT   NOT NULL CHECK (purpose IN ('verify_email', 'reset_password')),
    email          TEXT   NOT NULL,
    email_key      TEXT   NOT NULL,
    source_ip      TEXT   NULL,
    user_agent     TEXT   NULL,
    request_id     TEXT   NULL,
    created_ms     BIGINT NOT NULL,
    lease_until_ms BIGINT NOT NULL DEFAULT 0,
    CONSTRAINT mail_jobs_purpose_email_key_key UNIQUE (purpose, email_key)
);

CREATE INDEX mail_jobs_due_idx ON mail_jobs (lease_until_ms, created_ms);

-- One row per account and purpose: the latest mail, the current 24-hour window and its count,
-- and whether a refused request was recorded since the latest mail (recorded once, not per
-- request).
CREATE TABLE mail_limits (
    user_id         UUID    NOT NULL REFERENCES users (id),
    purpose         TEXT    NOT NULL CHECK (purpose IN ('verify_email', 'reset_password')),
    last_sent_ms    BIGINT  NOT NULL,
    window_start_ms BIGINT  NOT NULL,
    sent_in_window  BIGINT  NOT NULL CHECK (sent_in_window >= 0),
    noted           BOOLEAN NOT NULL,
    CONSTRAINT mail_limits_pkey PRIMARY KEY (user_id, purpose)
);
