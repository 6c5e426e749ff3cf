//! Deletion certificates: after a purge ([`bulwark_core::deletion::purge`]) the sealed org log
//! gets its last signed checkpoint, and a certificate naming the org, who asked, the times, the
//! rows deleted per table, the destroyed keys and that checkpoint is signed with the deployment
//! key, stored (it outlives the org) and recorded in the system log with its SHA-256.
//! [`verify`] checks one offline: `bulwark deletion verify FILE`.
//!
//! The certificate is built from the sealed log's last event (`org.purged`, which carries the
//! counts and the destroyed key ids), so a crash between the purge and the certificate loses
//! nothing: the next run issues it from the log.

use std::collections::BTreeMap;

use base64::Engine as _;
use bulwark_audit::checkpoint::NoteVerifier;
use bulwark_audit::event::{Context, Event, Payload};
use bulwark_core::audit::{self, Draft, Log};
use bulwark_core::licensing::Deployment;
use bulwark_core::ports::Store;
use bulwark_core::{CoreError, StoreError};
use bulwark_types::{Clock, OrgId};
use serde::{Deserialize, Serialize};

use crate::workers::checkpointer::Checkpointer;

/// The certificate format this release writes and reads.
pub const FORMAT: &str = "bulwark-deletion-certificate/v1";

/// What a deletion certificate states. Field order is the signed encoding's order: the
/// signature covers the compact JSON of this struct, which a verifier re-encodes after reading
/// it (unknown fields are refused, so nothing unsigned can be added).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Certificate {
    /// [`FORMAT`].
    pub format: String,
    /// The deployment (`dep_…`, the fingerprint of `deployment_key`).
    pub deployment: String,
    /// The deployment's Ed25519 public key (base64), which signed this.
    pub deployment_key: String,
    /// The org as it was.
    pub org: CertifiedOrg,
    /// Who asked for the deletion (`usr_…`, `key_…` or `local operator`).
    pub requested_by: String,
    /// When it was asked (RFC 3339).
    pub requested_at: String,
    /// When the grace window ended (RFC 3339).
    pub due_at: String,
    /// When it was purged (RFC 3339).
    pub purged_at: String,
    /// Rows deleted, per table.
    pub rows: BTreeMap<String, u64>,
    /// Keys destroyed with the org: its vault secret (`orgkey_…`), with every data key it masked.
    pub destroyed_keys: Vec<DestroyedKey>,
    /// The org's audit log, sealed: its last checkpoint.
    pub audit_log: SealedLog,
    /// When this certificate was made (RFC 3339).
    pub issued_at: String,
    /// The Bulwark release that made it.
    pub tool: String,
}

/// The org named by a certificate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CertifiedOrg {
    /// `org_…`.
    pub id: String,
    /// Its slug before the purge.
    pub slug: String,
    /// Its name before the purge.
    pub name: String,
}

/// A key destroyed by the purge.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DestroyedKey {
    /// Its id.
    pub id: String,
    /// What it was (`org-vault-secret`).
    pub kind: String,
}

/// The sealed log's last checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SealedLog {
    /// The log (`org_…`).
    pub log: String,
    /// Its size: events `0..size`, the last of them `org.purged`.
    pub size: u64,
    /// Its Merkle root (base64, as in the checkpoint).
    pub root: String,
    /// The signed checkpoint note.
    pub checkpoint: String,
    /// The audit signing key's verifier key (`bulwark audit key`).
    pub audit_key: String,
}

/// A certificate with its signature, as written to a file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Signed {
    /// What is certified.
    pub certificate: Certificate,
    /// Ed25519 over the compact JSON of `certificate`, by `deployment_key` (base64).
    pub signature: String,
}

/// A certificate that does not verify, and why.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// Not a certificate of this format.
    #[error("not a deletion certificate: {0}")]
    Format(String),
    /// The deployment key or its fingerprint does not hold.
    #[error("the deployment key {0}")]
    Key(&'static str),
    /// The signature does not verify: something was changed after signing.
    #[error("the signature does not verify: the certificate was altered or signed by another key")]
    Signature,
    /// The sealed log's checkpoint does not verify or disagrees with the certificate.
    #[error("the audit checkpoint {0}")]
    Checkpoint(String),
    /// Another deployment signed it than the one expected.
    #[error("signed by deployment {found}, not {expected}")]
    Deployment {
        /// The expected deployment.
        expected: String,
        /// The signing one.
        found: String,
    },
}

fn rfc3339(t: time::OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

fn corrupt(what: &str) -> CoreError {
    CoreError::Store(StoreError::Corrupt(what.into()))
}

/// Checks a certificate file's text offline: format, deployment key and fingerprint, signature,
/// and the sealed log's checkpoint (signature by the audit key, size and root as stated). With
/// `expected`, the signing deployment must be that one.
///
/// # Errors
/// What does not hold.
pub fn verify(text: &str, expected: Option<&str>) -> Result<Certificate, VerifyError> {
    let signed: Signed =
        serde_json::from_str(text).map_err(|e| VerifyError::Format(e.to_string()))?;
    let c = signed.certificate;
    if c.format != FORMAT {
        return Err(VerifyError::Format(format!("format `{}`", c.format)));
    }
    let b64 = base64::engine::general_purpose::STANDARD;
    let key: [u8; 32] = b64
        .decode(&c.deployment_key)
        .ok()
        .and_then(|k| k.try_into().ok())
        .ok_or(VerifyError::Key("is not an Ed25519 public key"))?;
    if bulwark_core::backup::archive::deployment_id(&key) != c.deployment {
        return Err(VerifyError::Key("is not the named deployment's"));
    }
    if let Some(expected) = expected
        && expected != c.deployment
    {
        return Err(VerifyError::Deployment {
            expected: expected.into(),
            found: c.deployment,
        });
    }
    let signature = b64
        .decode(&signed.signature)
        .map_err(|_| VerifyError::Signature)?;
    let message = serde_json::to_vec(&c).map_err(|e| VerifyError::Format(e.to_string()))?;
    if !bulwark_crypto::verify_ed25519(&key, &message, &signature) {
        return Err(VerifyError::Signature);
    }
    let verifier = NoteVerifier::parse(&c.audit_log.audit_key)
        .map_err(|e| VerifyError::Checkpoint(format!("key does not parse: {e}")))?;
    let checkpoint = verifier
        .verify(&c.audit_log.checkpoint)
        .map_err(|e| VerifyError::Checkpoint(format!("does not verify: {e}")))?;
    if checkpoint.size != c.audit_log.size
        || b64.encode(checkpoint.root) != c.audit_log.root
        || !checkpoint
            .origin
            .ends_with(&format!("/{}", c.audit_log.log))
        || c.audit_log.log != c.org.id
    {
        return Err(VerifyError::Checkpoint(
            "names another log, size or root than the certificate".into(),
        ));
    }
    Ok(c)
}

/// Issues `org`'s certificate from its sealed log, unless one is stored already (then that one
/// is returned): signs the log's last checkpoint, builds and signs the certificate, stores it
/// and records `org.purged` with its SHA-256 in the system log, in one transaction.
///
/// # Errors
/// `State` when the org is not purged; storage and signing failures.
pub async fn certify(
    store: &dyn Store,
    clock: &dyn Clock,
    checkpointer: &Checkpointer,
    deployment: &Deployment,
    org: OrgId,
) -> Result<String, CoreError> {
    if let Some(stored) = store.system().await?.deletion_certificate(org).await? {
        return Ok(stored);
    }
    let (deletion, last) = {
        let mut read = store.org_read(org).await?;
        let deletion = read
            .deletion()
            .await?
            .filter(|d| d.purged_at.is_some())
            .ok_or(CoreError::State("the org was not purged"))?;
        // The seal: the log's last event but for erasure records (`audit.erased`) after it.
        let mut from = 0;
        let mut last = None;
        loop {
            let rows = read.audit_events(from, 1000).await?;
            let Some(end) = rows.last().map(|r| r.seq + 1) else {
                break;
            };
            last = rows
                .into_iter()
                .rfind(|r| r.action == "org.purged")
                .or(last);
            from = end;
        }
        let last = last.ok_or_else(|| corrupt("sealed log without `org.purged`"))?;
        (deletion, last)
    };
    let body = last
        .body
        .as_ref()
        .ok_or_else(|| corrupt("`org.purged` pruned"))?;
    let event = Event::from_canonical(body).map_err(|_| corrupt("`org.purged` event"))?;
    let Payload::OrgPurged {
        slug,
        name,
        rows,
        destroyed_keys,
        ..
    } = event.payload
    else {
        return Err(corrupt("`org.purged` event"));
    };
    // The seal's checkpoint: signed now unless the checkpointer signed it already.
    let note = match checkpointer.checkpoint_now(Log::Org(org)).await? {
        Some(note) => note,
        None => store
            .org_read(org)
            .await?
            .audit_latest_checkpoint()
            .await?
            .map(|(_, note)| note)
            .ok_or_else(|| corrupt("no checkpoint of the sealed log"))?,
    };
    let verifier = NoteVerifier::parse(&checkpointer.verifier_key())
        .map_err(|_| corrupt("audit verifier key"))?;
    let checkpoint = verifier
        .verify(&note)
        .map_err(|_| corrupt("sealed log checkpoint"))?;
    if checkpoint.size <= last.seq {
        return Err(corrupt("the sealed log's checkpoint is not at its seal"));
    }
    let purged_at = deletion.purged_at.unwrap_or(last.time);
    let certificate = Certificate {
        format: FORMAT.into(),
        deployment: deployment.id().into(),
        deployment_key: deployment.public_key(),
        org: CertifiedOrg {
            id: org.to_string(),
            slug,
            name,
        },
        requested_by: deletion.requested_by,
        requested_at: rfc3339(deletion.requested_at),
        due_at: rfc3339(deletion.due_at),
        purged_at: rfc3339(purged_at),
        rows,
        destroyed_keys: destroyed_keys
            .into_iter()
            .map(|id| DestroyedKey {
                id,
                kind: "org-vault-secret".into(),
            })
            .collect(),
        audit_log: SealedLog {
            log: org.to_string(),
            size: checkpoint.size,
            root: base64::engine::general_purpose::STANDARD.encode(checkpoint.root),
            checkpoint: note,
            audit_key: checkpointer.verifier_key(),
        },
        issued_at: rfc3339(clock.now()),
        tool: env!("CARGO_PKG_VERSION").into(),
    };
    let message = serde_json::to_vec(&certificate).map_err(|_| corrupt("certificate"))?;
    let signature = base64::engine::general_purpose::STANDARD.encode(deployment.sign(&message));
    let signed = Signed {
        certificate,
        signature,
    };
    let mut text = serde_json::to_string_pretty(&signed).map_err(|_| corrupt("certificate"))?;
    text.push('\n');
    let sha256 = bulwark_crypto::to_hex(&bulwark_crypto::sha256(text.as_bytes()));
    let mut tx = store.system().await?;
    tx.insert_deletion_certificate(org, purged_at, &text)
        .await?;
    let c = &signed.certificate;
    let payload = Payload::OrgPurged {
        org_id: org.to_string(),
        slug: c.org.slug.clone(),
        name: c.org.name.clone(),
        rows: c.rows.clone(),
        destroyed_keys: c.destroyed_keys.iter().map(|k| k.id.clone()).collect(),
        certificate_sha256: Some(sha256),
    };
    let draft = Draft::success(
        payload,
        "org",
        org.to_string(),
        Context::system(Some("bulwark deletion (certificate)")),
    );
    audit::append(&mut *tx, Log::System, draft, clock).await?;
    tx.commit().await?;
    Ok(text)
}

/// Purges every org whose deletion is due and certifies it; the orgs purged. An org that fails
/// is logged and left for the next run (a purge is one transaction; a certificate is issued
/// from the sealed log whenever it is missing).
///
/// # Errors
/// Storage failures listing the due orgs.
pub async fn purge_due(
    store: &dyn Store,
    clock: &dyn Clock,
    checkpointer: &Checkpointer,
    deployment: &Deployment,
) -> Result<Vec<OrgId>, CoreError> {
    let mut done = Vec::new();
    for org in store.deletion_due_orgs(clock.now()).await? {
        match bulwark_core::deletion::purge(store, clock, org).await {
            // Purged by an earlier run that stopped before its certificate.
            Ok(_) => {}
            Err(CoreError::State(m)) if m == bulwark_core::deletion::PURGED_ALREADY => {}
            Err(e) => {
                tracing::error!(%org, error = %e, "cannot purge an org whose deletion is due");
                continue;
            }
        }
        match certify(store, clock, checkpointer, deployment, org).await {
            Ok(_) => tracing::info!(%org, "purged an org and issued its deletion certificate"),
            Err(e) => tracing::error!(%org, error = %e, "purged an org; its certificate failed"),
        }
        done.push(org);
    }
    Ok(done)
}
