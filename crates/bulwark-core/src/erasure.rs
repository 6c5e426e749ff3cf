//! Erasure of a person (the right to erasure, ADR 0022): their personal data leaves the live
//! tables, and every audit event holding it is redacted in place — the body replaced by one
//! without their address, user agent and email, the leaf hash kept, the redaction recorded by an
//! `audit.erased` event — so every log still verifies offline and the events remain, with the
//! person as the pseudonym `usr_…`.
//!
//! Order, so that a run stopped half way can simply be run again: the logs are redacted first
//! (the account still names the email to look for; an event redacted already holds nothing more
//! of theirs and is left alone), then each org forgets the member, then the account becomes a
//! tombstone and `user.erased` is recorded in the system log.

use std::collections::BTreeMap;

use bulwark_audit::erasure::{self, MAX_PER_RECORD};
use bulwark_audit::event::{Context, Event, Payload};
use bulwark_types::{Clock, Role, UserId};

use crate::audit::{self, Draft, Log};
use crate::ports::{AuditRead, AuditWrite, Store};
use crate::{CoreError, StoreError};

/// The domain of an erased account's placeholder address (`erased-<id>@erased.invalid`).
pub const TOMBSTONE_DOMAIN: &str = "erased.invalid";

/// What an erasure did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Erased {
    /// Rows deleted (or, for `users`, turned into a tombstone), per table.
    pub rows: BTreeMap<String, u64>,
    /// The logs in which events were redacted.
    pub logs: Vec<String>,
    /// Events redacted, in all.
    pub events: u64,
}

/// Erases `user`. Refused (`LockOut`) while they are the only owner of an org: someone else
/// must own it first (or the org be deleted).
///
/// # Errors
/// `NotFound` for no such account, `State` when it was erased already, `LockOut`; storage
/// failures.
pub async fn erase(
    store: &dyn Store,
    clock: &dyn Clock,
    user: UserId,
) -> Result<Erased, CoreError> {
    let account = store
        .system()
        .await?
        .user_by_id(user)
        .await?
        .ok_or(CoreError::NotFound)?;
    if account.email.as_str().ends_with(TOMBSTONE_DOMAIN) {
        return Err(CoreError::State("this person was erased already"));
    }
    let orgs = store.user_orgs(user).await?;
    for (org, role) in &orgs {
        if *role != Role::Owner {
            continue;
        }
        let members = store.org_read(org.id).await?.members().await?;
        if !members
            .iter()
            .any(|m| m.role == Role::Owner && m.user_id != user)
        {
            return Err(CoreError::LockOut(
                "they are the only owner of an org: make someone else an owner first, or delete the org",
            ));
        }
    }
    let subject = user.to_string();
    let email = account.email.as_str().to_owned();
    let mut erased = Erased::default();

    // 1. Every log: the system log, then every org's (purged ones too).
    {
        let mut tx = store.system().await?;
        let n = redact_log(&mut *tx, Log::System, &subject, &email, clock).await?;
        tx.commit().await?;
        if n > 0 {
            erased.logs.push("system".into());
            erased.events += n;
        }
    }
    for org in store.all_orgs().await? {
        let hits = {
            let mut read = store.org_read(org).await?;
            find(&mut *read, &subject, &email).await?
        };
        if hits.is_empty() {
            continue;
        }
        let mut tx = store.org(org).await?;
        let n = apply(&mut *tx, Log::Org(org), &subject, hits, clock).await?;
        tx.commit().await?;
        erased.logs.push(org.to_string());
        erased.events += n;
    }

    // 2. Every org they belong to forgets them; invitations to their address go too.
    let email_key = account.email.key();
    for (org, _) in &orgs {
        let mut tx = store.org(org.id).await?;
        let rows = tx.erase_member(user, &email_key, &email).await?;
        tx.commit().await?;
        add(&mut erased.rows, rows);
    }

    // 3. The account: a tombstone; then the record.
    let throttle = crate::throttle::Keys::new(&account.email, None)
        .account
        .unwrap_or_default();
    let tombstone = format!("erased-{}@{TOMBSTONE_DOMAIN}", user.as_uuid().simple());
    let mut tx = store.system().await?;
    let rows = tx
        .erase_user(user, &email_key, &throttle, &tombstone, clock.now())
        .await?;
    add(&mut erased.rows, rows);
    let payload = Payload::UserErased {
        user_id: subject,
        rows: erased.rows.clone(),
        logs: erased.logs.clone(),
        events: erased.events,
    };
    let draft = Draft::success(
        payload,
        "user",
        user.to_string(),
        Context::system(Some("bulwark users erase (host operator)")),
    );
    audit::append(&mut *tx, Log::System, draft, clock).await?;
    tx.commit().await?;
    Ok(erased)
}

fn add(into: &mut BTreeMap<String, u64>, rows: Vec<(String, u64)>) {
    for (table, n) in rows {
        *into.entry(table).or_default() += n;
    }
}

/// The events of the handle's log holding `subject`'s personal data, with their redacted bodies.
async fn find<T: AuditRead + ?Sized>(
    tx: &mut T,
    subject: &str,
    email: &str,
) -> Result<Vec<(u64, Vec<u8>)>, CoreError> {
    let mut hits = Vec::new();
    let mut from = 0;
    loop {
        let rows = tx.audit_events(from, 1000).await?;
        let Some(end) = rows.last().map(|r| r.seq + 1) else {
            break;
        };
        for row in rows {
            let Some(body) = row.body else { continue };
            let event = Event::from_canonical(&body)
                .map_err(|_| CoreError::Store(StoreError::Corrupt("audit event body".into())))?;
            if let Some(redacted) = erasure::redact(&event, subject, email) {
                let bytes = redacted.canonical_bytes().map_err(|_| {
                    CoreError::Store(StoreError::Corrupt("audit event body".into()))
                })?;
                hits.push((row.seq, bytes));
            }
        }
        from = end;
    }
    Ok(hits)
}

/// Replaces the bodies of `hits` and records them, [`MAX_PER_RECORD`] per `audit.erased`.
async fn apply<T: AuditWrite + ?Sized>(
    tx: &mut T,
    log: Log,
    subject: &str,
    hits: Vec<(u64, Vec<u8>)>,
    clock: &dyn Clock,
) -> Result<u64, CoreError> {
    let mut done = 0;
    for chunk in hits.chunks(MAX_PER_RECORD) {
        let mut seqs = Vec::with_capacity(chunk.len());
        let mut digests = Vec::with_capacity(chunk.len());
        for (seq, body) in chunk {
            if tx.audit_erase_body(*seq, body).await? {
                seqs.push(*seq);
                digests.push(erasure::digest(body));
            }
        }
        if seqs.is_empty() {
            continue;
        }
        done += seqs.len() as u64;
        let payload = Payload::AuditErased {
            subject: subject.to_owned(),
            seqs,
            digests,
        };
        let draft = Draft::success(
            payload,
            "audit_log",
            log.name(),
            Context::system(Some("bulwark users erase (host operator)")),
        );
        audit::append(&mut *tx, log, draft, clock).await?;
    }
    Ok(done)
}

async fn redact_log<T: AuditRead + AuditWrite + ?Sized>(
    tx: &mut T,
    log: Log,
    subject: &str,
    email: &str,
    clock: &dyn Clock,
) -> Result<u64, CoreError> {
    let hits = find(tx, subject, email).await?;
    apply(tx, log, subject, hits, clock).await
}
