//! The storage port: what the domain needs from a database, implemented once per engine.
//!
//! Two kinds of handle exist. A [`SystemTx`] touches deployment-wide tables (the instance row,
//! global user accounts). An [`OrgTx`] is a transaction bound to one org: on PostgreSQL it sets
//! `app.current_org_id` with `set_config(…, true)` so row-level security holds even if a query
//! forgot its filter, and every query also filters on the org explicitly.

use async_trait::async_trait;
use bulwark_crypto::TokenHash;
use bulwark_crypto::vault::SealedValue;
use bulwark_types::{
    ApiKeyId, CredentialId, DeliveryId, Email, EndpointId, MessageId, OrgId, Role, SessionId,
    TeamId, UserId,
};
use secrecy::SecretString;
use time::OffsetDateTime;

use crate::StoreError;
use crate::model::{
    ApiKeyRecord, AuditRow, Credential, Instance, Invitation, LicenseActivation, LicenseClock,
    LicenseUsage, MailJob, MailLimit, Member, Membership, Org, OrgPolicy, ScimGroup, ScimUser,
    ScimUserQuery, Session, SsoConnection, SsoDomain, SsoSettings, Team, ThrottleRow, TokenPurpose,
    TotpRecord, User, UserToken, VaultKey, VaultKeyState,
};
use crate::model::{
    AttemptResult, ClaimedDelivery, WebhookAttempt, WebhookDelivery, WebhookEndpoint,
    WebhookMessage,
};

/// A transactional email could not be handed over (the text names the step, never the body).
#[derive(Debug, thiserror::Error)]
#[error("email not sent: {0}")]
pub struct MailFailed(pub String);

/// Sends transactional email: verification links, invitations, password resets. The body holds
/// a single-use token, so it is secret.
#[async_trait]
pub trait Mailer: Send + Sync + 'static {
    /// Sends one message; returns once the server (or the local outbox) has taken it.
    async fn send(&self, to: &Email, subject: &str, body: SecretString) -> Result<(), MailFailed>;
}

/// Health of the store as seen by `/readyz`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreHealth {
    /// The database answered a trivial query.
    pub reachable: bool,
    /// Every migration this binary knows is applied, and none it does not know.
    pub migrations_current: bool,
}

/// A connection pool's state (`Store::pool_stats`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PoolStats {
    /// Connections open (in use or idle).
    pub open: u32,
    /// Open connections not in use.
    pub idle: u32,
    /// The most connections the pool opens.
    pub max: u32,
}

/// How the database role that serves requests stands towards row-level security
/// (PostgreSQL; `bulwark doctor`). Every list is empty, and every flag false, on a sound
/// deployment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RolePosture {
    /// The role the store connects as.
    pub role: String,
    /// It is a superuser.
    pub superuser: bool,
    /// It has `BYPASSRLS`.
    pub bypass_rls: bool,
    /// Tables and views of schema `public` it owns.
    pub owned: Vec<String>,
    /// Roles it is a member of that own a table, are superusers or have `BYPASSRLS`.
    pub privileged_memberships: Vec<String>,
    /// Tenant tables without enabled and forced row-level security and a policy.
    pub unprotected_tables: Vec<String>,
    /// Expected table privileges it lacks (`table: PRIVILEGE`).
    pub grants_missing: Vec<String>,
    /// Table privileges it holds beyond the expected set (`table: PRIVILEGE`).
    pub grants_extra: Vec<String>,
}

/// A storage engine.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// `sqlite` or `postgres`, for logs and metrics.
    fn engine(&self) -> &'static str;

    /// The serving role's standing towards row-level security, on engines that have roles
    /// (`None` on SQLite, where the process's file permissions are the boundary).
    ///
    /// # Errors
    /// When the catalog cannot be read.
    async fn role_posture(&self) -> Result<Option<RolePosture>, StoreError> {
        Ok(None)
    }

    /// Reachability and schema state. Never fails: problems are reported in the result.
    async fn health(&self) -> StoreHealth;

    /// The connection pool's state now, for the metrics.
    fn pool_stats(&self) -> PoolStats {
        PoolStats::default()
    }

    /// A transaction over deployment-wide tables.
    async fn system(&self) -> Result<Box<dyn SystemTx>, StoreError>;

    /// A transaction bound to `org`. Every tenant read and write goes through one of these.
    async fn org(&self, org: OrgId) -> Result<Box<dyn OrgTx>, StoreError>;

    /// A read-only transaction bound to `org`: it cannot write (by type, and on PostgreSQL by
    /// `READ ONLY`), and on SQLite it does not take the write lock, so readers never queue behind
    /// each other.
    async fn org_read(&self, org: OrgId) -> Result<Box<dyn OrgRead>, StoreError>;

    /// The session whose token hashes to `hash`, revoked or not, with its user's email. A plain
    /// read outside any transaction: it runs on every authenticated request.
    async fn session_by_token(&self, hash: &TokenHash) -> Result<Option<Session>, StoreError>;

    /// A number that moves after every committed transaction that revokes a session or changes
    /// a user or their second factor ([`SystemTx`] methods that say so), in this process and, on
    /// an engine that can hear them, in other processes on the same database. Session caches
    /// trust an entry only while this number is the one read before the entry was loaded.
    fn session_epoch(&self) -> u64;

    /// Starts listening for such commits made by other processes, where the engine can (on
    /// PostgreSQL, `LISTEN`); a no-op elsewhere. Called once by the server at start.
    fn watch_session_changes(&self) {}

    /// The orgs whose audit log has events no stored checkpoint covers. Only ids cross org
    /// boundaries here (on PostgreSQL through an owner-run function).
    async fn audit_unsigned_orgs(&self) -> Result<Vec<OrgId>, StoreError>;

    /// Records activity on a live session: sets `last_seen_at` to `at`.
    async fn session_touch(&self, id: SessionId, at: OffsetDateTime) -> Result<(), StoreError>;

    /// The failure counters recorded under `keys` (absent keys are left out).
    async fn throttle_state(&self, keys: &[String]) -> Result<Vec<ThrottleRow>, StoreError>;

    /// Records a failed sign-in under `key` at `now`, atomically, and returns the new count. A
    /// counter whose last failure is older than `forget_before` starts again at 1.
    async fn throttle_fail(
        &self,
        key: &str,
        now: OffsetDateTime,
        forget_before: OffsetDateTime,
    ) -> Result<u32, StoreError>;

    /// Whether the user has an enabled TOTP authenticator, and how many unused backup codes: a
    /// plain read outside any transaction (it runs on session lookups).
    async fn mfa_status(&self, user: UserId) -> Result<(bool, u32), StoreError>;

    /// Deletes the counters whose last failure is older than `before` (they would start again
    /// anyway); returns how many.
    async fn throttle_forget(&self, before: OffsetDateTime) -> Result<u64, StoreError>;

    /// Clears the counter under `key` (after a successful sign-in).
    async fn throttle_clear(&self, key: &str) -> Result<(), StoreError>;

    /// The org of the invitation whose token hashes to `hash`, if any. Only the org id crosses
    /// org boundaries here (on PostgreSQL through an owner-run function); the invitation itself
    /// is then read and redeemed inside that org's transaction.
    async fn invitation_org(&self, hash: &TokenHash) -> Result<Option<OrgId>, StoreError>;

    /// The org of the API key with this public id, if any (only the org id crosses org
    /// boundaries; the key is then read inside that org's transaction).
    async fn api_key_org(&self, id: ApiKeyId) -> Result<Option<OrgId>, StoreError>;

    /// The org of a single sign-on connection (the callback URL names the connection).
    async fn sso_connection_org(
        &self,
        id: bulwark_types::ConnectionId,
    ) -> Result<Option<OrgId>, StoreError>;

    /// The connection a session was made through, if a single sign-on made it (read on every
    /// request to an org that requires single sign-on).
    async fn sso_session_connection(
        &self,
        session: SessionId,
    ) -> Result<Option<bulwark_types::ConnectionId>, StoreError>;

    /// The org that claimed `domain`, and whether the claim is verified.
    async fn sso_domain_org(&self, domain: &str) -> Result<Option<(OrgId, bool)>, StoreError>;

    /// Records `key` as used until `expires_ms`; false when it was already recorded (a replay).
    /// Expired keys are pruned on the way, now and then.
    async fn sso_use_once(
        &self,
        key: &str,
        expires_ms: i64,
        now_ms: i64,
    ) -> Result<bool, StoreError>;

    /// The orgs `user` is a member of, with their role in each, oldest membership first. One
    /// person's own memberships are the only thing that crosses org boundaries here (on
    /// PostgreSQL through an owner-run function).
    async fn user_orgs(&self, user: UserId) -> Result<Vec<(Org, Role)>, StoreError>;

    /// Queues `job` (the mail queue), unless a job for the same purpose and lower-cased address
    /// is queued already: then nothing changes (the two requests coalesce). One statement, the
    /// same whether or not the address has an account.
    async fn mail_enqueue(&self, job: &MailJob) -> Result<(), StoreError>;

    /// Claims up to `limit` queued jobs that no worker holds at `now_ms`, oldest first: each is
    /// held until `lease_until_ms` (a worker that dies leaves it to be claimed again then).
    async fn mail_claim(
        &self,
        now_ms: i64,
        lease_until_ms: i64,
        limit: u32,
    ) -> Result<Vec<MailJob>, StoreError>;

    /// How many jobs are queued (held or not).
    async fn mail_backlog(&self) -> Result<u64, StoreError>;

    /// Takes a token from the bucket `key` (refilled by the time elapsed since the last take),
    /// creating it full. Shared by every replica on PostgreSQL.
    /// The orgs holding credentials sealed under a key version below `active` (across
    /// orgs: on PostgreSQL through an owner-run function that returns org ids only).
    async fn vault_stale_orgs(&self, active: u32) -> Result<Vec<OrgId>, StoreError>;

    /// The orgs whose deletion is due at `now` and that are not yet purged, or purged without a
    /// stored certificate (ids only: on PostgreSQL through an owner-run function).
    async fn deletion_due_orgs(&self, now: OffsetDateTime) -> Result<Vec<OrgId>, StoreError>;

    /// The orgs with invitations accepted, withdrawn or expired before `before` (ids only).
    async fn retention_invitation_orgs(
        &self,
        before: OffsetDateTime,
    ) -> Result<Vec<OrgId>, StoreError>;

    /// Every org's id (purged ones too): an erasure looks for a person in every log.
    async fn all_orgs(&self) -> Result<Vec<OrgId>, StoreError>;

    /// The orgs whose audit event bodies have a retention (not purged; ids only).
    async fn retention_audit_orgs(&self) -> Result<Vec<OrgId>, StoreError>;

    /// How many credentials each key version seals, across orgs (version, count).
    async fn vault_counts(&self) -> Result<Vec<(u32, u64)>, StoreError>;

    /// The orgs with a webhook delivery due at `now_ms` (Unix ms) for an enabled endpoint and
    /// not held by a worker (across orgs: on PostgreSQL an owner-run function returning ids).
    async fn webhook_due_orgs(&self, now_ms: i64) -> Result<Vec<OrgId>, StoreError>;

    /// The orgs with webhook messages created before `before_ms` (ids only).
    async fn webhook_prunable_orgs(&self, before_ms: i64) -> Result<Vec<OrgId>, StoreError>;

    async fn rate_take(
        &self,
        key: &str,
        bucket: crate::rate::Bucket,
        now: OffsetDateTime,
    ) -> Result<crate::rate::Verdict, StoreError>;
}

/// Appending to the audit log of the handle's scope (the system log for [`SystemTx`], the org's
/// log for [`OrgTx`]), in the handle's transaction: the event commits or rolls back with the change
/// it records.
#[async_trait]
pub trait AuditWrite: Send {
    /// The stored head (a serialised compact range) of this scope's log, locked until the
    /// transaction ends so concurrent appenders serialise; `None` before the first event.
    async fn audit_head(&mut self) -> Result<Option<Vec<u8>>, StoreError>;
    /// Stores `rows` (consecutive, in order) and the new `head`. Every row's `log` and `org_id`
    /// must be this scope's.
    async fn audit_insert(&mut self, rows: &[AuditRow], head: &[u8]) -> Result<(), StoreError>;
    /// The enabled webhook endpoints of this scope, with their event type patterns: the
    /// subscribers of the events appended here (none for the system log).
    async fn webhook_subscribers(&mut self) -> Result<Vec<(EndpointId, Vec<String>)>, StoreError> {
        Ok(Vec::new())
    }
    /// Stores `message` and a pending delivery of it to each of `endpoints`, due at `due_ms`
    /// (Unix ms), in this transaction (the outbox). A no-op for the system log.
    async fn webhook_enqueue(
        &mut self,
        _message: &WebhookMessage,
        _endpoints: &[EndpointId],
        _due_ms: i64,
    ) -> Result<(), StoreError> {
        Ok(())
    }
    /// Replaces the body of event `seq` of this scope's log by `body`, a redacted body the
    /// caller records in an `audit.erased` event in the same transaction; the leaf hash and
    /// every other column stay. `false` when the event has no body (pruned) or does not exist.
    async fn audit_erase_body(&mut self, seq: u64, body: &[u8]) -> Result<bool, StoreError>;
    /// Stores a signed checkpoint of this scope's log at tree size `size`.
    async fn audit_checkpoint_insert(
        &mut self,
        size: u64,
        note: &str,
        at: OffsetDateTime,
    ) -> Result<(), StoreError>;
}

/// Reading the audit log of the handle's scope.
#[async_trait]
pub trait AuditRead: Send {
    /// Up to `limit` events from `from_seq` on, in order.
    async fn audit_events(
        &mut self,
        from_seq: u64,
        limit: u32,
    ) -> Result<Vec<AuditRow>, StoreError>;
    /// The leaf hashes of up to `limit` events from `from_seq` on, in order.
    async fn audit_leaves(
        &mut self,
        from_seq: u64,
        limit: u32,
    ) -> Result<Vec<[u8; 32]>, StoreError>;
    /// The latest signed checkpoint of this scope's log, as `(size, note)`.
    async fn audit_latest_checkpoint(&mut self) -> Result<Option<(u64, String)>, StoreError>;
}

/// Deployment-wide operations, in one transaction. Dropping it without `commit` rolls back.
#[async_trait]
pub trait SystemTx: AuditWrite + AuditRead {
    /// The instance row, locked for update where the engine supports it.
    async fn instance(&mut self) -> Result<Option<Instance>, StoreError>;
    /// Deletes the sessions that ended (revoked, expired, or unused) before `before`, with the
    /// single sign-on records that point at them; how many sessions.
    async fn delete_ended_sessions(&mut self, before: OffsetDateTime) -> Result<u64, StoreError>;
    /// Erases `user`'s personal data from the deployment-wide tables: deletes their sessions
    /// (with their single sign-on records), second factors, tokens, mail limits and queued mail
    /// and the sign-in throttle counter `throttle_key`, and turns their account into a tombstone
    /// (`tombstone_email`, an unusable password, disabled and erased at `now`). The rows
    /// deleted per table.
    async fn erase_user(
        &mut self,
        user: UserId,
        email_key: &str,
        throttle_key: &str,
        tombstone_email: &str,
        now: OffsetDateTime,
    ) -> Result<Vec<(String, u64)>, StoreError>;
    /// Stores the signed certificate of a purged org.
    async fn insert_deletion_certificate(
        &mut self,
        org: OrgId,
        purged_at: OffsetDateTime,
        body: &str,
    ) -> Result<(), StoreError>;
    /// The signed certificate of a purged org.
    async fn deletion_certificate(&mut self, org: OrgId) -> Result<Option<String>, StoreError>;
    /// Every purged org with a certificate, and when it was purged, oldest first.
    async fn deletion_certificates(&mut self) -> Result<Vec<(OrgId, OffsetDateTime)>, StoreError>;
    /// Creates the instance row (first start).
    async fn create_instance(&mut self, instance: &Instance) -> Result<(), StoreError>;
    /// Replaces (or clears) the pending setup token hash.
    async fn set_setup_token(&mut self, hash: Option<&TokenHash>) -> Result<(), StoreError>;
    /// Marks setup complete, clears the token and records the operator org.
    async fn complete_setup(
        &mut self,
        at: OffsetDateTime,
        operator_org: OrgId,
    ) -> Result<(), StoreError>;
    /// Creates a user account. Conflict `users.email` if the email exists.
    async fn create_user(&mut self, user: &User) -> Result<(), StoreError>;
    /// Finds a user by email.
    async fn user_by_email(&mut self, email: &Email) -> Result<Option<User>, StoreError>;
    /// Creates an org and its first membership. Conflict `orgs.slug` if the slug exists.
    async fn create_org(&mut self, org: &Org, owner: &Membership) -> Result<(), StoreError>;
    /// Stores a new session.
    async fn create_session(&mut self, session: &Session) -> Result<(), StoreError>;
    /// Revokes a live session at `at`; `false` when it was already revoked or does not exist.
    /// Moves the session epoch on commit.
    async fn revoke_session(
        &mut self,
        id: SessionId,
        at: OffsetDateTime,
    ) -> Result<bool, StoreError>;
    /// Finds a user by id.
    async fn user_by_id(&mut self, id: UserId) -> Result<Option<User>, StoreError>;
    /// Stores a user's password hash, verification and disabled state (email and id stay).
    /// Moves the session epoch on commit.
    async fn update_user(&mut self, user: &User) -> Result<(), StoreError>;
    /// The user's sessions that are neither revoked nor past `now`'s absolute timeout, newest
    /// first.
    async fn user_sessions(
        &mut self,
        user: UserId,
        now: OffsetDateTime,
    ) -> Result<Vec<Session>, StoreError>;
    /// Revokes every live session of `user` but `except`; returns how many. Moves the session
    /// epoch on commit.
    async fn revoke_user_sessions(
        &mut self,
        user: UserId,
        except: Option<SessionId>,
        at: OffsetDateTime,
    ) -> Result<u64, StoreError>;
    /// The user's TOTP authenticator, enabled or pending.
    async fn totp(&mut self, user: UserId) -> Result<Option<TotpRecord>, StoreError>;
    /// Replaces the user's TOTP authenticator. `None` removes it and every backup code (an MFA
    /// reset). Moves the session epoch on commit.
    async fn replace_totp(
        &mut self,
        user: UserId,
        record: Option<&TotpRecord>,
    ) -> Result<(), StoreError>;
    /// Records that a code for time step `step` was accepted, and enables the authenticator at
    /// `enable_at` if it is still pending. Atomic: `false` (nothing changed) when a code for
    /// this or a later step was already accepted, so each code works once. Moves the session
    /// epoch on commit.
    async fn use_totp_step(
        &mut self,
        user: UserId,
        step: u64,
        enable_at: OffsetDateTime,
    ) -> Result<bool, StoreError>;
    /// Replaces the user's backup codes with `hashes`. Moves the session epoch on commit.
    async fn replace_backup_codes(
        &mut self,
        user: UserId,
        hashes: &[TokenHash],
        at: OffsetDateTime,
    ) -> Result<(), StoreError>;
    /// Marks an unused backup code used; `false` when it does not exist or was used already.
    /// Moves the session epoch on commit.
    async fn use_backup_code(
        &mut self,
        user: UserId,
        hash: &TokenHash,
        at: OffsetDateTime,
    ) -> Result<bool, StoreError>;
    /// How many unused backup codes the user has.
    async fn backup_codes_left(&mut self, user: UserId) -> Result<u32, StoreError>;
    /// Stores a single-use emailed token.
    async fn create_user_token(&mut self, token: &UserToken) -> Result<(), StoreError>;
    /// Marks the token used at `now` and returns its user, if it exists for `purpose`, is
    /// unused and unexpired. Atomic: of concurrent redemptions exactly one gets `Some`.
    async fn redeem_user_token(
        &mut self,
        hash: &TokenHash,
        purpose: TokenPurpose,
        now: OffsetDateTime,
    ) -> Result<Option<UserId>, StoreError>;
    /// The mail limit of `user` for `purpose`, held (`FOR UPDATE` on PostgreSQL) until the
    /// transaction ends; `None` before the first mail.
    async fn lock_mail_limit(
        &mut self,
        user: UserId,
        purpose: TokenPurpose,
    ) -> Result<Option<MailLimit>, StoreError>;
    /// Stores the mail limit of `user` for `purpose`.
    async fn set_mail_limit(
        &mut self,
        user: UserId,
        purpose: TokenPurpose,
        limit: &MailLimit,
    ) -> Result<(), StoreError>;
    /// Deletes a queued mail job (done, whatever the outcome); a no-op when it is gone.
    async fn mail_done(&mut self, id: uuid::Uuid) -> Result<(), StoreError>;
    /// Commits.
    /// The vault's key versions, oldest first.
    async fn vault_keys(&mut self) -> Result<Vec<VaultKey>, StoreError>;
    /// Adds a key version.
    async fn insert_vault_key(&mut self, key: &VaultKey) -> Result<(), StoreError>;
    /// The license activation history, oldest first.
    async fn license_activations(&mut self) -> Result<Vec<LicenseActivation>, StoreError>;
    /// Appends an activation (its `seq` must be the next one).
    async fn insert_license_activation(&mut self, a: &LicenseActivation) -> Result<(), StoreError>;
    /// Reads the license clock, locking it until commit (activations and ticks serialise here).
    async fn lock_license_clock(&mut self) -> Result<LicenseClock, StoreError>;
    /// Writes the license clock.
    async fn set_license_clock(&mut self, clock: &LicenseClock) -> Result<(), StoreError>;
    /// Organisations, seats and the operator org, across the deployment.
    async fn license_usage(&mut self) -> Result<LicenseUsage, StoreError>;
    /// As `license_usage`, after taking the license-clock lock (held until commit), so
    /// additions counted against a limit serialise.
    async fn lock_license_usage(&mut self) -> Result<LicenseUsage, StoreError>;
    /// Moves a key version to `state` (`retired_at` set when retiring). Retiring refuses (false)
    /// while any credential is still sealed under the version.
    async fn set_vault_key_state(
        &mut self,
        version: u32,
        state: VaultKeyState,
        at: OffsetDateTime,
    ) -> Result<bool, StoreError>;
    /// Notes that `session` was made by a sign-in through `connection` as `subject` (with the
    /// provider's session id `sid`, when it sent one).
    async fn record_sso_session(
        &mut self,
        session: SessionId,
        connection: bulwark_types::ConnectionId,
        subject: &str,
        sid: Option<&str>,
    ) -> Result<(), StoreError>;

    /// Notes that `to` replaces `from` (a rotation after the second factor) for back-channel
    /// and RP-initiated logout; nothing when `from` was not made by a single sign-on.
    async fn carry_sso_session(&mut self, from: SessionId, to: SessionId)
    -> Result<(), StoreError>;

    /// The live sessions made through `connection` for `subject` (any provider session) or for
    /// the provider session `sid`.
    async fn sso_sessions(
        &mut self,
        connection: bulwark_types::ConnectionId,
        subject: Option<&str>,
        sid: Option<&str>,
        now: OffsetDateTime,
    ) -> Result<Vec<SessionId>, StoreError>;

    async fn commit(self: Box<Self>) -> Result<(), StoreError>;
}

/// Reads inside one org, in one transaction. Dropping it ends the transaction.
#[async_trait]
pub trait OrgRead: AuditRead {
    /// The org this handle is bound to.
    fn org_id(&self) -> OrgId;
    /// The org's own record; `NotFound` if it does not exist.
    async fn get(&mut self) -> Result<Org, StoreError>;
    /// All members with their emails, oldest first.
    async fn members(&mut self) -> Result<Vec<Member>, StoreError>;
    /// One member, if the user belongs to this org.
    async fn member(&mut self, user: UserId) -> Result<Option<Member>, StoreError>;
    /// How many days this org keeps audit event bodies; `None` keeps them forever.
    async fn audit_retention(&mut self) -> Result<Option<u32>, StoreError>;
    /// The org's sign-in rules.
    async fn policy(&mut self) -> Result<OrgPolicy, StoreError>;
    /// Invitations neither accepted nor withdrawn, newest first (expired ones included).
    async fn open_invitations(&mut self) -> Result<Vec<Invitation>, StoreError>;
    /// The hash of the org's own authorization policy set in force; `None`: the built-in set.
    async fn authz_policy_hash(&mut self) -> Result<Option<String>, StoreError>;
    /// A policy set the org once activated, by hash (its whole text as hashed).
    async fn authz_policy_set(&mut self, hash: &str) -> Result<Option<String>, StoreError>;
    /// The org's teams with their members, by name.
    async fn teams(&mut self) -> Result<Vec<Team>, StoreError>;
    /// The teams `user` belongs to in this org.
    async fn teams_of(&mut self, user: UserId) -> Result<Vec<TeamId>, StoreError>;
    /// The org's API keys, oldest first (revoked and expired ones too).
    async fn api_keys(&mut self) -> Result<Vec<ApiKeyRecord>, StoreError>;
    /// One API key of the org.
    async fn api_key(&mut self, id: ApiKeyId) -> Result<Option<ApiKeyRecord>, StoreError>;
    /// The org's credentials (metadata and sealed values), by name.
    async fn credentials(&mut self) -> Result<Vec<Credential>, StoreError>;
    /// One credential.
    async fn credential(&mut self, id: CredentialId) -> Result<Option<Credential>, StoreError>;
    /// The key version `version`, if it exists.
    async fn vault_key(&mut self, version: u32) -> Result<Option<VaultKey>, StoreError>;
    /// The org's vault secret (its id and key), if one was made: mixed into every data key the
    /// vault wraps for the org; deleting it shreds them.
    async fn org_key(
        &mut self,
    ) -> Result<Option<(uuid::Uuid, bulwark_crypto::vault::OrgKey)>, StoreError>;
    /// The org's scheduled deletion, if any (`NotFound` when the org does not exist).
    async fn deletion(&mut self) -> Result<Option<crate::model::OrgDeletion>, StoreError>;
    /// The org's webhook endpoints, oldest first.
    /// The org's single sign-on connections, by name.
    async fn sso_connections(&mut self) -> Result<Vec<SsoConnection>, StoreError>;
    /// One connection.
    async fn sso_connection(
        &mut self,
        id: bulwark_types::ConnectionId,
    ) -> Result<Option<SsoConnection>, StoreError>;
    /// The org's claimed domains, by name.
    async fn sso_domains(&mut self) -> Result<Vec<SsoDomain>, StoreError>;
    /// The org's single sign-on rules (defaults when never set).
    async fn sso_settings(&mut self) -> Result<SsoSettings, StoreError>;
    /// The user bound to `(connection, subject)`.
    async fn sso_identity(
        &mut self,
        connection: bulwark_types::ConnectionId,
        subject: &str,
    ) -> Result<Option<UserId>, StoreError>;
    /// The SCIM users `query` selects, in creation order: how many in all, and `limit` of them
    /// from `offset` (all of them when `limit` is `None`).
    async fn scim_users(
        &mut self,
        query: &ScimUserQuery,
        offset: u64,
        limit: Option<u64>,
    ) -> Result<(u64, Vec<ScimUser>), StoreError>;
    /// One SCIM user.
    async fn scim_user(&mut self, user: UserId) -> Result<Option<ScimUser>, StoreError>;
    /// The SCIM groups, in creation order (with their members when `members`).
    async fn scim_groups(&mut self, members: bool) -> Result<Vec<ScimGroup>, StoreError>;
    /// One SCIM group with its members.
    async fn scim_group(&mut self, team: TeamId) -> Result<Option<ScimGroup>, StoreError>;
    /// The SCIM groups `user` was provisioned into: (team, name), by name.
    async fn scim_user_groups(&mut self, user: UserId)
    -> Result<Vec<(TeamId, String)>, StoreError>;
    async fn webhook_endpoints(&mut self) -> Result<Vec<WebhookEndpoint>, StoreError>;
    /// The deliveries due at `now_ms` (Unix ms) to enabled endpoints and not leased, and the
    /// earliest due time among them (for the metrics).
    async fn webhook_backlog(&mut self, now_ms: i64) -> Result<(u64, Option<i64>), StoreError>;
    /// One webhook endpoint.
    async fn webhook_endpoint(
        &mut self,
        id: EndpointId,
    ) -> Result<Option<WebhookEndpoint>, StoreError>;
    /// The latest `limit` attempts to `endpoint`, newest first.
    async fn webhook_attempts(
        &mut self,
        endpoint: EndpointId,
        limit: u32,
    ) -> Result<Vec<WebhookAttempt>, StoreError>;
    /// The latest `limit` deliveries to `endpoint`, newest first.
    async fn webhook_deliveries(
        &mut self,
        endpoint: EndpointId,
        limit: u32,
    ) -> Result<Vec<WebhookDelivery>, StoreError>;
    /// One delivery.
    async fn webhook_delivery(
        &mut self,
        id: DeliveryId,
    ) -> Result<Option<WebhookDelivery>, StoreError>;
    /// The message created under an idempotency key.
    async fn webhook_message_by_key(
        &mut self,
        key: &str,
    ) -> Result<Option<WebhookMessage>, StoreError>;
    /// Up to `limit` messages created in `[since, until)`, oldest first, after `after`.
    async fn webhook_messages_between(
        &mut self,
        since: OffsetDateTime,
        until: OffsetDateTime,
        after: Option<MessageId>,
        limit: u32,
    ) -> Result<Vec<WebhookMessage>, StoreError>;
}

/// Reads and writes inside one org, in one transaction. Dropping it without `commit` rolls back.
#[async_trait]
pub trait OrgTx: OrgRead + AuditWrite {
    /// Organisations and seats across the deployment, after taking the license-clock lock
    /// (held until commit), so additions counted against a limit serialise.
    async fn lock_license_usage(&mut self) -> Result<LicenseUsage, StoreError>;
    /// Adds a member. Conflict `memberships` if already a member.
    async fn add_member(
        &mut self,
        user: UserId,
        role: Role,
        at: OffsetDateTime,
    ) -> Result<(), StoreError>;
    /// Changes a member's role; `NotFound` if not a member.
    async fn set_role(&mut self, user: UserId, role: Role) -> Result<(), StoreError>;
    /// Locks the org's owner memberships until the transaction ends, so two transactions that
    /// each check "another owner remains" cannot both remove one (a no-op where writers are
    /// serialised anyway).
    async fn lock_owners(&mut self) -> Result<(), StoreError>;
    /// Ends `user`'s membership (and their team memberships); `false` when there was none.
    async fn remove_member(&mut self, user: UserId) -> Result<bool, StoreError>;
    /// Stores a new API key (its verifier only).
    async fn create_api_key(&mut self, key: &ApiKeyRecord) -> Result<(), StoreError>;
    /// Revokes a live key; `false` when there is none or it was revoked already.
    async fn revoke_api_key(
        &mut self,
        id: ApiKeyId,
        at: OffsetDateTime,
    ) -> Result<bool, StoreError>;
    /// Brings a key's expiry forward to `at` (never later than it was).
    async fn expire_api_key(&mut self, id: ApiKeyId, at: OffsetDateTime) -> Result<(), StoreError>;
    /// Notes a use of the key (written at most once a minute).
    async fn touch_api_key(&mut self, id: ApiKeyId, at: OffsetDateTime) -> Result<(), StoreError>;
    /// The active key version, held (`FOR SHARE` on PostgreSQL) until the transaction ends so
    /// a rotation cannot retire it under a value being sealed.
    async fn active_vault_key(&mut self) -> Result<Option<VaultKey>, StoreError>;
    /// Stores a new credential; a name already used in the org is `StoreError::Conflict`.
    async fn create_credential(&mut self, credential: &Credential) -> Result<(), StoreError>;
    /// Replaces a credential's sealed value; false when there is no such credential.
    async fn replace_credential(
        &mut self,
        id: CredentialId,
        sealed: &SealedValue,
        at: OffsetDateTime,
    ) -> Result<bool, StoreError>;
    /// Deletes a credential and its wrapped data key; false when there is no such credential.
    async fn delete_credential(&mut self, id: CredentialId) -> Result<bool, StoreError>;
    /// Records a use (to the minute).
    async fn touch_credential(
        &mut self,
        id: CredentialId,
        at: OffsetDateTime,
    ) -> Result<(), StoreError>;
    /// Up to `limit` credentials sealed under a version below `active` (versions only grow), in
    /// (version, id) order after `after` when given; held for update (rows another transaction
    /// holds are skipped on PostgreSQL).
    async fn stale_credentials(
        &mut self,
        active: u32,
        limit: u32,
        after: Option<(u32, CredentialId)>,
    ) -> Result<Vec<Credential>, StoreError>;
    /// Replaces a credential's sealed value if it is still sealed under `from` and the new
    /// value's version is the active one; false otherwise.
    async fn rewrap_credential(
        &mut self,
        id: CredentialId,
        from: u32,
        sealed: &SealedValue,
    ) -> Result<bool, StoreError>;
    /// Changes where a credential may be sent; false when there is no such credential.
    async fn set_credential_destinations(
        &mut self,
        id: CredentialId,
        destinations: &[String],
    ) -> Result<bool, StoreError>;
    /// Stores a new webhook endpoint; `NotFound` when a signing secret is not a credential of
    /// this org.
    /// Adds a connection (`Conflict` for a name in use).
    async fn create_sso_connection(&mut self, c: &SsoConnection) -> Result<(), StoreError>;
    /// Replaces a connection's name, settings, secret and state; false when there is none.
    async fn update_sso_connection(&mut self, c: &SsoConnection) -> Result<bool, StoreError>;
    /// Deletes a connection and the identities bound through it; false when there is none.
    async fn delete_sso_connection(
        &mut self,
        id: bulwark_types::ConnectionId,
    ) -> Result<bool, StoreError>;
    /// Unbinds every identity bound through a connection (its issuer changed).
    async fn clear_sso_identities(
        &mut self,
        id: bulwark_types::ConnectionId,
    ) -> Result<u64, StoreError>;
    /// Claims a domain (`Conflict` when any org, this one included, has claimed it).
    async fn create_sso_domain(&mut self, d: &SsoDomain) -> Result<(), StoreError>;
    /// Marks a claimed domain verified; false when the org has not claimed it.
    async fn verify_sso_domain(
        &mut self,
        domain: &str,
        at_ms: i64,
        by: &str,
    ) -> Result<bool, StoreError>;
    /// Drops a claim; false when there is none.
    async fn delete_sso_domain(&mut self, domain: &str) -> Result<bool, StoreError>;
    /// Replaces the org's single sign-on rules.
    async fn set_sso_settings(&mut self, s: &SsoSettings, at_ms: i64) -> Result<(), StoreError>;
    /// Binds `(connection, subject)` to `user`, or notes its use when already bound.
    async fn bind_sso_identity(
        &mut self,
        connection: bulwark_types::ConnectionId,
        subject: &str,
        user: UserId,
        at_ms: i64,
    ) -> Result<(), StoreError>;
    /// Stores a SCIM user (inserting or replacing it); `Conflict` `scim_users.user_name` when
    /// another user of the org has its userName.
    async fn put_scim_user(&mut self, user: &ScimUser, insert: bool) -> Result<(), StoreError>;
    /// One SCIM user, held for update until the transaction ends.
    async fn lock_scim_user(&mut self, user: UserId) -> Result<Option<ScimUser>, StoreError>;
    /// Deletes a SCIM user (and their group memberships); false when there was none.
    async fn delete_scim_user(&mut self, user: UserId) -> Result<bool, StoreError>;
    /// Stores a SCIM group's record (its team already exists; members apart).
    async fn put_scim_group(&mut self, group: &ScimGroup, insert: bool) -> Result<(), StoreError>;
    /// One SCIM group with its members, held for update until the transaction ends.
    async fn lock_scim_group(&mut self, team: TeamId) -> Result<Option<ScimGroup>, StoreError>;
    /// Adds (`present`) or removes a SCIM user from a SCIM group; false when nothing changed.
    async fn set_scim_group_member(
        &mut self,
        team: TeamId,
        user: UserId,
        present: bool,
    ) -> Result<bool, StoreError>;
    /// Renames a team; false when there is none (`Conflict` `teams.name` for a name in use).
    async fn rename_team(&mut self, team: TeamId, name: &str) -> Result<bool, StoreError>;
    /// Revokes the live API keys `user` created in this org; returns their ids.
    async fn revoke_user_api_keys(
        &mut self,
        user: UserId,
        at: OffsetDateTime,
    ) -> Result<Vec<ApiKeyId>, StoreError>;
    /// Withdraws the open invitations `user` sent in this org; returns how many.
    async fn revoke_user_invitations(
        &mut self,
        user: UserId,
        at: OffsetDateTime,
    ) -> Result<u64, StoreError>;
    async fn create_webhook_endpoint(&mut self, e: &WebhookEndpoint) -> Result<(), StoreError>;
    /// Stores an endpoint's settings, secrets and failure counters; false when it is gone,
    /// `NotFound` when a signing secret is not a credential of this org.
    async fn update_webhook_endpoint(&mut self, e: &WebhookEndpoint) -> Result<bool, StoreError>;
    /// Deletes an endpoint with its deliveries and attempts; false when there was none.
    async fn delete_webhook_endpoint(&mut self, id: EndpointId) -> Result<bool, StoreError>;
    /// Queues `message` (already stored) again for `endpoint`, due at `due_ms`; `NotFound`
    /// unless both are this org's.
    async fn webhook_requeue(
        &mut self,
        message: MessageId,
        endpoint: EndpointId,
        due_ms: i64,
        at: OffsetDateTime,
    ) -> Result<DeliveryId, StoreError>;
    /// The enabled endpoints with a delivery due at `now_ms` that no worker holds, with their
    /// in-flight cap; held for update until the transaction ends (endpoints another
    /// transaction holds are skipped on PostgreSQL), so two claimers never both fill one
    /// endpoint's cap.
    async fn webhook_due_endpoints(
        &mut self,
        now_ms: i64,
    ) -> Result<Vec<(EndpointId, u32)>, StoreError>;
    /// How many of `endpoint`'s deliveries a worker holds at `now_ms`.
    async fn webhook_in_flight(
        &mut self,
        endpoint: EndpointId,
        now_ms: i64,
    ) -> Result<u32, StoreError>;
    /// Claims up to `limit` of `endpoint`'s due deliveries, oldest due first: each is held
    /// until `lease_until_ms` and its attempt count goes up by one.
    async fn webhook_claim(
        &mut self,
        endpoint: EndpointId,
        now_ms: i64,
        lease_until_ms: i64,
        limit: u32,
    ) -> Result<Vec<ClaimedDelivery>, StoreError>;
    /// Logs attempts and moves their deliveries on (delivered, due again, or failed); a result
    /// for a claim that is no longer current (its lease ran out and the delivery was claimed
    /// again) is only logged, and one for a deleted delivery is dropped.
    async fn webhook_finish(&mut self, results: &[AttemptResult]) -> Result<(), StoreError>;
    /// One endpoint, held for update (`FOR UPDATE` on PostgreSQL) until the transaction ends.
    async fn lock_webhook_endpoint(
        &mut self,
        id: EndpointId,
    ) -> Result<Option<WebhookEndpoint>, StoreError>;
    /// Adds attempt outcomes to an endpoint's failure count atomically: `failures` failed
    /// attempts (the first at `first_failure`), after a success when `reset`. Returns whether it
    /// is enabled, its count and since when it fails; `None` when it is gone.
    async fn webhook_endpoint_health(
        &mut self,
        id: EndpointId,
        reset: bool,
        failures: u32,
        first_failure: Option<OffsetDateTime>,
    ) -> Result<Option<(bool, u32, Option<OffsetDateTime>)>, StoreError>;
    /// Disables an enabled endpoint for `reason`; false when it was not enabled.
    async fn disable_webhook_endpoint(
        &mut self,
        id: EndpointId,
        reason: &str,
    ) -> Result<bool, StoreError>;
    /// Deletes messages created before `before_ms` with their deliveries (pending ones too)
    /// and attempts; returns how many messages.
    async fn webhook_prune(&mut self, before_ms: i64) -> Result<u64, StoreError>;
    /// Creates a user account (an invitee signing up), in this org's transaction so the account
    /// and its membership commit together. Conflict `users.email` if the email exists.
    async fn create_user(&mut self, user: &User) -> Result<(), StoreError>;
    /// Stores an invitation.
    async fn create_invitation(&mut self, invitation: &Invitation) -> Result<(), StoreError>;
    /// Marks the invitation with this token accepted at `now` and returns it, if it is open and
    /// unexpired. Atomic: of concurrent acceptances exactly one gets `Some`.
    async fn accept_invitation(
        &mut self,
        hash: &TokenHash,
        now: OffsetDateTime,
    ) -> Result<Option<Invitation>, StoreError>;
    /// Withdraws an open invitation; `false` when there is none with this id.
    async fn revoke_invitation(
        &mut self,
        id: bulwark_types::InvitationId,
        at: OffsetDateTime,
    ) -> Result<bool, StoreError>;
    /// Stores the policy set `body` under `hash` (if not stored already) and makes it the one
    /// in force.
    async fn activate_policy_set(
        &mut self,
        hash: &str,
        body: &str,
        by: Option<UserId>,
        at: OffsetDateTime,
    ) -> Result<(), StoreError>;
    /// Creates a team. Conflict `teams.name` if the org has one of that name.
    async fn create_team(&mut self, team: &Team) -> Result<(), StoreError>;
    /// Deletes a team and its memberships; `false` when there was none.
    async fn delete_team(&mut self, team: TeamId) -> Result<bool, StoreError>;
    /// Whether the team exists, holding it (`FOR SHARE` on PostgreSQL) until this transaction
    /// ends, so it cannot be deleted meanwhile (a key issued to it is then revoked by the
    /// deletion that follows, never left live on a deleted team).
    async fn lock_team(&mut self, team: TeamId) -> Result<bool, StoreError>;
    /// Revokes the live API keys issued to `team`; returns their ids.
    async fn revoke_team_api_keys(
        &mut self,
        team: TeamId,
        at: OffsetDateTime,
    ) -> Result<Vec<ApiKeyId>, StoreError>;
    /// Adds (`present`) or removes `user` from `team`; `false` when nothing changed. The user
    /// must be a member of the org and the team must exist (`NotFound` otherwise).
    async fn set_team_member(
        &mut self,
        team: TeamId,
        user: UserId,
        present: bool,
    ) -> Result<bool, StoreError>;
    /// Replaces the org's sign-in rules.
    async fn set_policy(&mut self, policy: &OrgPolicy) -> Result<(), StoreError>;
    /// Erases `user` from this org: their SCIM records, single sign-on identities, team and org
    /// memberships, the invitations to `email_key`, and the webhook messages naming them (by id
    /// or `email`) with their deliveries and attempts. The rows deleted per table.
    async fn erase_member(
        &mut self,
        user: UserId,
        email_key: &str,
        email: &str,
    ) -> Result<Vec<(String, u64)>, StoreError>;
    /// Deletes the org's invitations accepted, withdrawn or expired before `before`; how many.
    async fn delete_closed_invitations(
        &mut self,
        before: OffsetDateTime,
    ) -> Result<u64, StoreError>;
    /// Stores the org's vault secret unless it has one; `false` when it had.
    async fn create_org_key(
        &mut self,
        id: uuid::Uuid,
        key: &bulwark_crypto::vault::OrgKey,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError>;
    /// Schedules the org's deletion (`requested_at`, `requested_by`, `due_at`) or, with `None`,
    /// cancels it; `false` when the org is purged already.
    async fn schedule_deletion(
        &mut self,
        schedule: Option<(OffsetDateTime, &str, OffsetDateTime)>,
    ) -> Result<bool, StoreError>;
    /// Deletes every org-scoped row (its vault secret included) and turns the org's row into a
    /// tombstone named `tombstone_slug`, purged at `now`; the rows deleted, per table.
    async fn purge(
        &mut self,
        tombstone_slug: &str,
        now: OffsetDateTime,
    ) -> Result<Vec<(String, u64)>, StoreError>;
    /// Seals the org's audit log at `size` events: the database refuses any later one.
    async fn seal_audit_log(&mut self, size: u64) -> Result<(), StoreError>;
    /// The org's scheduled deletion, as [`OrgRead::deletion`], with the org's row held until the
    /// transaction ends: purges started on several replicas run one after the other, and the
    /// later one finds the org purged.
    async fn lock_deletion(&mut self) -> Result<Option<crate::model::OrgDeletion>, StoreError>;
    /// Sets the audit retention (30–36500 days, or `None` for forever).
    async fn set_audit_retention(&mut self, days: Option<u32>) -> Result<(), StoreError>;
    /// Clears the bodies of this org's audit events older than its retention (measured from the
    /// database's clock on PostgreSQL, from `now` on SQLite), keeping their leaf hashes.
    /// Returns what was pruned; `None` when nothing was (or the org keeps events forever).
    async fn audit_prune(
        &mut self,
        now: OffsetDateTime,
    ) -> Result<Option<crate::model::AuditPruning>, StoreError>;
    /// Commits.
    async fn commit(self: Box<Self>) -> Result<(), StoreError>;
}
