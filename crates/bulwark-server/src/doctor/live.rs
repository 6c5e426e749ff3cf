//! The checks that need the open deployment: the database role, every audit log, the key
//! provider, owners' second factors, the license and its clock, backups.

use bulwark_audit::checkpoint::NoteVerifier;
use bulwark_core::audit::Log;
use bulwark_core::ports::Store;
use bulwark_crypto::vault::KeyWrapper;
use bulwark_types::Clock;
use serde_json::json;

use super::Check;
use crate::config::Config;
use crate::workers::checkpointer::Checkpointer;

/// What the live checks read.
pub struct Live<'a> {
    /// The configuration in force.
    pub config: &'a Config,
    /// The store, as the serving role.
    pub store: &'a dyn Store,
    /// The clock.
    pub clock: &'a dyn Clock,
    /// The vault's key provider.
    pub vault: &'a dyn KeyWrapper,
    /// The licensing state.
    pub licensing: &'a bulwark_core::licensing::Licensing,
    /// Signs checkpoints of each log, and names their origin.
    pub checkpointer: &'a Checkpointer,
    /// Sign a fresh checkpoint of each log first, so that verification reaches its head
    /// (`doctor`, `/v1/evidence`); the start gates verify to the latest checkpoint and write
    /// nothing.
    pub checkpoint: bool,
}

/// Runs every live check, in a stable order.
pub async fn live_checks(live: &Live<'_>) -> Vec<Check> {
    let mut checks = vec![seed_check()];
    if let Some(c) = postgres_checks(live).await {
        checks.extend(c);
    }
    checks.extend(audit_checks(live).await);
    checks.push(vault_check(live).await);
    checks.push(owners_mfa_check(live).await);
    let (license, clock) = license_checks(live).await;
    checks.push(license);
    checks.push(clock);
    checks.push(backup_check(live.config, live.clock));
    checks
}

fn seed_check() -> Check {
    // Opening the deployment compared the seed's check value with the database's, in constant
    // time, and refused a mismatch: reaching here is the evidence.
    Check::build(
        "keys.seed_check",
        "Workspace seed matches the database",
        "vault.keys",
    )
    .evidence(json!({"seed_check": "matches"}))
    .pass()
}

async fn postgres_checks(live: &Live<'_>) -> Option<Vec<Check>> {
    let role = Check::build(
        "postgres.role",
        "Serving role cannot bypass row-level security",
        "tenancy.isolation",
    );
    let posture = match live.store.role_posture().await {
        Ok(None) => return None,
        Ok(Some(p)) => p,
        Err(e) => {
            return Some(vec![role.evidence(json!({"error": e.to_string()})).fail(
                "the catalog could not be read: check that the database is reachable",
            )]);
        }
    };
    let role = role.evidence(json!({
        "role": posture.role,
        "superuser": posture.superuser,
        "bypassrls": posture.bypass_rls,
        "owns": posture.owned,
        "member_of_privileged_roles": posture.privileged_memberships,
    }));
    let role = if posture.superuser
        || posture.bypass_rls
        || !posture.owned.is_empty()
        || !posture.privileged_memberships.is_empty()
    {
        role.fail(format!(
            "serve as an application role that is not a superuser, has NOBYPASSRLS, owns no table \
             and is a member of no owner or privileged role (`ALTER ROLE {0} NOSUPERUSER NOBYPASSRLS`, \
             `REVOKE … FROM {0}`; docs/postgres.md)",
            posture.role
        ))
    } else {
        role.pass()
    };
    let rls = Check::build(
        "postgres.rls",
        "Every tenant table forces row-level security",
        "tenancy.isolation",
    )
    .evidence(json!({"unprotected_tables": posture.unprotected_tables}));
    let rls = if posture.unprotected_tables.is_empty() {
        rls.pass()
    } else {
        rls.fail("as the owner role, `ALTER TABLE … ENABLE ROW LEVEL SECURITY` and `ALTER TABLE … FORCE ROW LEVEL SECURITY` on each table listed (its policies come from `bulwark migrate`), then find out who turned it off")
    };
    let grants = Check::build(
        "postgres.grants",
        "Serving role holds exactly the expected privileges",
        "tenancy.isolation",
    )
    .evidence(json!({"missing": posture.grants_missing, "extra": posture.grants_extra}));
    let grants = if posture.grants_missing.is_empty() && posture.grants_extra.is_empty() {
        grants.pass()
    } else {
        grants.fail(
            "run `bulwark migrate` as the owner role: it replaces the application role's privileges with the expected set (docs/postgres.md)",
        )
    };
    Some(vec![role, rls, grants])
}

/// Verifies every log (the system's and each org's) from its first event to a fresh signed
/// checkpoint of its head, and the published checkpoints against it.
async fn audit_checks(live: &Live<'_>) -> Vec<Check> {
    let verify = Check::build(
        "audit.verify",
        "Every audit log verifies to its head",
        "audit.tamper_evidence",
    );
    let published_check = Check::build(
        "audit.published",
        "Published checkpoints match the stored logs",
        "audit.tamper_evidence",
    );
    let key = match NoteVerifier::parse(&live.checkpointer.verifier_key()) {
        Ok(k) => k,
        Err(e) => {
            let fail = |c: super::Builder| {
                c.evidence(json!({"error": e.to_string()}))
                    .fail("the verifier key does not parse: a build defect")
            };
            return vec![fail(verify), fail(published_check)];
        }
    };
    let (notes, published_error) = match &live.config.audit.publish_file {
        None => (Vec::new(), None),
        Some(path) => match std::fs::read_to_string(path) {
            Ok(text) => match bulwark_audit::published::read(&text, &key) {
                Ok(p) => (p.notes, None),
                Err(e) => (Vec::new(), Some(e.to_string())),
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => (Vec::new(), None),
            Err(e) => (Vec::new(), Some(format!("cannot read it: {e}"))),
        },
    };
    let mut logs = vec![Log::System];
    match live.store.all_orgs().await {
        Ok(orgs) => logs.extend(orgs.into_iter().map(Log::Org)),
        Err(e) => {
            return vec![
                verify
                    .evidence(json!({"error": e.to_string()}))
                    .fail("the list of orgs could not be read: check the database"),
                published_check
                    .evidence(json!({"checked": 0}))
                    .warn("not checked: the logs could not be listed"),
            ];
        }
    }
    let mut verified = Vec::new();
    let mut failed = Vec::new();
    let mut unpublished = Vec::new();
    let mut events = 0u64;
    let mut published = 0usize;
    for log in logs {
        if live.checkpoint
            && let Err(e) = live.checkpointer.checkpoint_now(log).await
        {
            unpublished.push(json!({"log": log.name(), "error": e.to_string()}));
        }
        let text = match export(live.store, log, &live.checkpointer.origin(log)).await {
            Ok(t) => t,
            Err(e) => {
                failed.push(json!({"log": log.name(), "error": e.to_string()}));
                continue;
            }
        };
        match bulwark_audit::export::verify(text.as_bytes(), &key, &notes) {
            Ok(r) => {
                events += r.events;
                published += r.published;
                verified.push(json!({
                    "log": log.name(), "events": r.events,
                    "root": bulwark_crypto::to_hex(&r.root), "erased": r.erased, "pruned": r.pruned,
                }));
            }
            Err(e) => failed.push(json!({"log": log.name(), "error": e.to_string()})),
        }
    }
    let verify = verify.evidence(json!({
        "logs": verified.len() + failed.len(),
        "events": events,
        "verifier_key": live.checkpointer.verifier_key(),
        "verified": verified,
        "failed": failed,
        "checkpoint_failures": unpublished,
    }));
    let verify = if !failed.is_empty() {
        verify.fail("a log does not verify: it was altered outside Bulwark; restore a verified backup and investigate (docs/audit.md)")
    } else if !unpublished.is_empty() {
        verify.warn("a fresh checkpoint could not be signed or published: check `audit.publish_url`/`audit.publish_file`")
    } else {
        verify.pass()
    };
    let published_check = published_check.evidence(json!({
        "publish_file": live.config.audit.publish_file.as_ref().map(|p| p.display().to_string()),
        "checked": published,
        "error": published_error,
    }));
    let published_check = if live.config.audit.publish_file.is_none() {
        published_check.pass_with_note(
            "no `audit.publish_file` to compare (see `audit.publication`); checkpoints sent to `audit.publish_url` are compared by the collector",
        )
    } else if published_error.is_some() {
        published_check.fail("the published checkpoints file does not read or verify: it was altered, or belongs to another deployment")
    } else if !failed.is_empty() {
        published_check.fail("a log does not match its published checkpoints (see `audit.verify`)")
    } else {
        published_check.pass()
    };
    vec![verify, published_check]
}

async fn export(
    store: &dyn Store,
    log: Log,
    origin: &str,
) -> Result<String, bulwark_core::StoreError> {
    let mut reader: Box<dyn bulwark_core::ports::AuditRead> = match log {
        Log::System => store.system().await?,
        Log::Org(org) => store.org_read(org).await?,
    };
    bulwark_core::audit::export_jsonl(&mut *reader, origin).await
}

async fn vault_check(live: &Live<'_>) -> Check {
    let c = Check::build(
        "vault.provider",
        "Key provider holds every key version in use",
        "vault.keys",
    );
    let keys = match async { live.store.system().await?.vault_keys().await }.await {
        Ok(k) => k,
        Err(e) => {
            return c
                .evidence(json!({"provider": live.vault.provider(), "error": e.to_string()}))
                .fail("the key versions could not be read: check the database");
        }
    };
    let mut held = Vec::new();
    let mut missing = Vec::new();
    for key in keys
        .iter()
        .filter(|k| k.state != bulwark_core::model::VaultKeyState::Retired)
    {
        match live.vault.holds_version(key.version) {
            Ok(true) => held.push(key.version),
            Ok(false) => missing.push(json!({"version": key.version, "error": "not held"})),
            Err(e) => missing.push(json!({"version": key.version, "error": e.to_string()})),
        }
    }
    let c = c.evidence(json!({
        "provider": live.vault.provider(),
        "versions_held": held,
        "versions_unavailable": missing,
    }));
    if missing.is_empty() {
        c.pass()
    } else {
        c.fail("the key provider cannot reach a key version in use: check `[vault.pkcs11]` (module, token, PIN) and the token's keys (docs/vault.md)")
    }
}

async fn owners_mfa_check(live: &Live<'_>) -> Check {
    let c = Check::build(
        "owners.mfa",
        "Every org owner has a second factor",
        "identity.mfa",
    );
    let orgs = match live.store.all_orgs().await {
        Ok(o) => o,
        Err(e) => {
            return c
                .evidence(json!({"error": e.to_string()}))
                .fail("the orgs could not be read: check the database");
        }
    };
    let mut owners = 0usize;
    let mut without: Vec<String> = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for org in orgs {
        let members = match live.store.org_read(org).await {
            Ok(mut r) => r.members().await,
            Err(e) => Err(e),
        };
        let Ok(members) = members else { continue };
        for m in members
            .iter()
            .filter(|m| m.role == bulwark_types::Role::Owner)
        {
            if !seen.insert(m.user_id) {
                continue;
            }
            owners += 1;
            if !live
                .store
                .mfa_status(m.user_id)
                .await
                .is_ok_and(|(totp, _)| totp)
            {
                without.push(m.user_id.to_string());
            }
        }
    }
    let c = c.evidence(json!({"owners": owners, "owners_without_mfa": without}));
    if without.is_empty() {
        c.pass()
    } else {
        c.warn("each owner listed should enrol an authenticator (console → Account → Two-factor, or `POST /v1/account/mfa/totp`)")
    }
}

async fn license_checks(live: &Live<'_>) -> (Check, Check) {
    use bulwark_core::licensing::State;
    let license = Check::build("license.standing", "License in force", "licensing.offline");
    let clock = Check::build(
        "clock.sanity",
        "System clock not behind the latest time seen",
        "operations.clock",
    );
    let status = match live.licensing.status(live.store, live.clock).await {
        Ok(s) => s,
        Err(e) => {
            let e = e.to_string();
            return (
                license
                    .evidence(json!({"error": e}))
                    .fail("the license state could not be read: `bulwark license status`"),
                clock
                    .evidence(json!({"error": e}))
                    .fail("the license clock could not be read: `bulwark license status`"),
            );
        }
    };
    let fmt = |t: time::OffsetDateTime| {
        t.format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default()
    };
    let license = license.evidence(json!({
        "state": status.state.as_str(),
        "license_id": status.license.as_ref().map(|l| l.claims.license_id.clone()),
        "expires_at": status.license.as_ref().map(|l| fmt(l.claims.expires_at)),
        "orgs": status.usage.orgs, "orgs_limit": status.limits.orgs,
        "seats": status.usage.seats, "seats_limit": status.limits.seats,
        "ignored_activations": status.ignored_activations,
    }));
    let license = match status.state {
        _ if status.ignored_activations > 0 => license.fail(
            "the store holds activation records this deployment did not write: investigate, then activate the license again",
        ),
        State::Community | State::Valid => license.pass(),
        State::Grace(_) => license.warn("the license has expired: activate a renewal with `bulwark license activate FILE`"),
        State::ReadOnly => license.warn("past its grace period the deployment is read-only: activate a renewal with `bulwark license activate FILE`"),
    };
    let now = live.clock.now();
    let behind = (status.judged_at - now).whole_seconds().max(0);
    let clock = clock.evidence(json!({
        "now": fmt(now),
        "latest_seen": fmt(status.judged_at),
        "behind_secs": behind,
    }));
    // Sessions, TOTP, certificates and the audit log's times all read this clock.
    let clock = if behind > 300 {
        clock.fail("the system clock is behind a time this deployment has already seen: synchronise it (NTP) before serving")
    } else {
        clock.pass()
    };
    (license, clock)
}

fn backup_check(config: &Config, clock: &dyn Clock) -> Check {
    let c = Check::build(
        "backup.age",
        "A recent verified backup",
        "operations.backups",
    );
    let (Some(dir), Some(every)) = (config.backup.dir.as_ref(), config.backup.every()) else {
        return c
            .evidence(json!({"scheduled": false}))
            .warn("no scheduled backups: set `backup.dir` and `backup.recipients`, or run `bulwark backup create` from your own scheduler (docs/backups.md)");
    };
    let Some((at, _)) = crate::backup::latest_verified(dir) else {
        return c
            .evidence(json!({"scheduled": true, "dir": dir.display().to_string(), "last_verified_at": null}))
            .warn("no verified backup yet: check the server's log for backup errors");
    };
    let age = (clock.now() - at).whole_seconds().max(0);
    let c = c.evidence(json!({
        "scheduled": true,
        "dir": dir.display().to_string(),
        "last_verified_at": at.format(&time::format_description::well_known::Rfc3339).unwrap_or_default(),
        "age_secs": age,
        "schedule_secs": every.as_secs(),
    }));
    if u64::try_from(age).unwrap_or(0) > every.as_secs().saturating_mul(2) {
        c.warn("the newest verified backup is older than twice `backup.schedule`: check the server's log for backup errors")
    } else {
        c.pass()
    }
}
