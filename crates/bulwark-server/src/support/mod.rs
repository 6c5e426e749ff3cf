//! `bulwark support bundle` and `bulwark support verify` (docs/support.md): what a vendor needs
//! to diagnose a deployment — versions, the configuration, the store's state and row counts,
//! audit tree heads, the license, the newest backup, recent logs — and nothing it must not see.
//! Every file passes the [`scrub::Scrubber`]; the bundle is a plain tar file with a manifest of
//! every file's SHA-256 signed by the deployment key. Nothing is sent anywhere.

pub mod scrub;
pub mod tar;

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine as _;
use bulwark_core::backup::{BackupError, RowSink, Snapshot, TABLES, Table, Value};
use bulwark_core::licensing::Deployment;
use bulwark_crypto::{KeyPurpose, Seed};
use secrecy::ExposeSecret as _;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::backup::{Collect, Failure, column};
use crate::config::Config;
use crate::startup::SEED_FILE;
use scrub::Scrubber;
use tar::Entry;

/// The bundle format this code writes.
pub const FORMAT: u32 = 1;
const MANIFEST: &str = "manifest.json";
const SIGNATURE: &str = "manifest.sig";
const SIGNING_CONTEXT: &[u8] = b"bulwark-support-manifest/v1\n";
/// The most of a log file read (its end).
const MAX_LOG_BYTES: u64 = 16 * 1024 * 1024;

/// What a bundle holds besides the store and the configuration.
pub struct BundleOptions {
    /// Log lines older than this are left out.
    pub since: Duration,
    /// Log files to include (their recent lines, scrubbed again).
    pub log_files: Vec<PathBuf>,
}

/// A manifest entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSum {
    /// Path in the bundle.
    pub name: String,
    /// Bytes.
    pub size: u64,
    /// SHA-256, hex.
    pub sha256: String,
}

/// The bundle's manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// [`FORMAT`].
    pub bulwark_support_bundle: u32,
    /// When it was made (RFC 3339).
    pub created: String,
    /// The tool's version.
    pub tool: String,
    /// The deployment, when its seed could be read (then `manifest.sig` signs this file).
    pub deployment: Option<String>,
    /// The deployment key (standard base64), which signs the manifest.
    pub deployment_key: Option<String>,
    /// Log lines older than this many seconds were left out.
    pub since_secs: u64,
    /// Every other file of the bundle.
    pub files: Vec<FileSum>,
}

/// A collected bundle, not yet written.
pub struct Bundle {
    /// Its files, the manifest and its signature last.
    pub entries: Vec<Entry>,
    /// Its manifest.
    pub manifest: Manifest,
}

fn json(value: &impl Serialize) -> Vec<u8> {
    let mut out = serde_json::to_vec_pretty(value).unwrap_or_default();
    out.push(b'\n');
    out
}

/// Reads what the bundle needs and scrubs it.
///
/// # Errors
/// A log file that cannot be read, or a known secret found in a file after scrubbing.
pub async fn collect(config: &Config, opts: &BundleOptions) -> Result<Bundle, Failure> {
    let now = time::OffsetDateTime::now_utc();
    let rfc3339 = |t: time::OffsetDateTime| {
        t.format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default()
    };
    let seed = crate::backup::read_seed(&config.data_dir);
    let deployment = seed.as_ref().ok().and_then(|s| Deployment::derive(s).ok());
    let key = match &seed {
        Ok(s) => s
            .derive(KeyPurpose::SupportPseudonym, b"")
            .map_err(|_| Failure::Usage("key derivation failed".into()))?,
        Err(_) => Zeroizing::new(
            bulwark_crypto::random_bytes::<32>()
                .map_err(|_| Failure::Usage("no randomness".into()))?,
        ),
    };
    let scrub = Scrubber::new(key, known_secrets(config));

    let mut files: Vec<Entry> = Vec::new();
    files.push(Entry {
        name: "README.txt".into(),
        data: README.as_bytes().to_vec(),
    });
    files.push(Entry {
        name: "version.json".into(),
        data: json(&serde_json::json!({
            "bulwark": env!("CARGO_PKG_VERSION"),
            "os": std::env::consts::OS,
            "arch": std::env::consts::ARCH,
            "fips": bulwark_crypto::fips_mode(),
            "schema_version": bulwark_core::backup::SCHEMA_VERSION,
        })),
    });
    let mut settings = serde_json::to_value(config).unwrap_or_default();
    scrub.json(&mut settings);
    files.push(Entry {
        name: "config.json".into(),
        data: json(&settings),
    });
    let mut env: Vec<String> = std::env::vars_os()
        .map(|(k, _)| k.to_string_lossy().into_owned())
        .filter(|k| k.starts_with("BULWARK_"))
        .collect();
    env.sort();
    files.push(Entry {
        name: "environment.json".into(),
        data: json(&serde_json::json!({
            "variables_set": env,
            "note": "names only: values are never included",
        })),
    });
    let mut store = store_state(config, seed.as_ref().ok()).await;
    scrub.json(&mut store.0);
    files.push(Entry {
        name: "store.json".into(),
        data: json(&store.0),
    });
    let mut license = store
        .1
        .unwrap_or_else(|| serde_json::json!({"activations": null}));
    if let Some(doc) = license.as_object_mut() {
        doc.insert("standing".into(), license_standing(config).await);
    }
    scrub.json(&mut license);
    files.push(Entry {
        name: "license.json".into(),
        data: json(&license),
    });
    let backups = config.backup.dir.as_ref().map(|dir| {
        crate::backup::latest_verified(dir).map_or(
            serde_json::json!({"newest_verified": null}),
            |(_, r)| serde_json::json!({"newest_verified": r}),
        )
    });
    files.push(Entry {
        name: "backups.json".into(),
        data: json(&backups.unwrap_or_else(|| serde_json::json!({"scheduled": false}))),
    });
    // The live checks as `bulwark doctor --format json` prints them, without writing a
    // checkpoint: the bundle changes nothing.
    let mut checks =
        serde_json::to_value(crate::doctor::for_tools(config, false).await).unwrap_or_default();
    scrub.json(&mut checks);
    files.push(Entry {
        name: "doctor.json".into(),
        data: json(&checks),
    });
    // The running server's counters, when its metrics listener answers on this host: counts,
    // durations and route templates only (docs/metrics.md), scrubbed like the rest.
    let metrics = match crate::metrics::scrape_running(config).await {
        Ok(text) => scrub.exposition(&text),
        Err(why) => format!("# not collected: {why}\n"),
    };
    files.push(Entry {
        name: "metrics.txt".into(),
        data: metrics.into_bytes(),
    });
    let cutoff = now - opts.since;
    for (i, path) in opts.log_files.iter().enumerate() {
        let base = path
            .file_name()
            .map_or_else(|| "log".into(), |n| n.to_string_lossy().into_owned());
        let name: String = base
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || "._-".contains(c) {
                    c
                } else {
                    '_'
                }
            })
            .take(60)
            .collect();
        files.push(Entry {
            name: format!("logs/{i}-{name}"),
            data: read_log(path, cutoff, &scrub)?,
        });
    }
    for file in &files {
        scrub.check(&file.data).map_err(|why| {
            Failure::Backup(BackupError::Refused(format!(
                "`{}` of the bundle: {why} after scrubbing; refusing to write the bundle",
                file.name
            )))
        })?;
    }
    let manifest = Manifest {
        bulwark_support_bundle: FORMAT,
        created: rfc3339(now),
        tool: env!("CARGO_PKG_VERSION").into(),
        deployment: deployment.as_ref().map(|d| d.id().to_owned()),
        deployment_key: deployment.as_ref().map(Deployment::public_key),
        since_secs: opts.since.as_secs(),
        files: files
            .iter()
            .map(|f| FileSum {
                name: f.name.clone(),
                size: f.data.len() as u64,
                sha256: bulwark_crypto::to_hex(&bulwark_crypto::sha256(&f.data)),
            })
            .collect(),
    };
    let manifest_bytes = json(&manifest);
    files.push(Entry {
        name: MANIFEST.into(),
        data: manifest_bytes.clone(),
    });
    if let Some(d) = &deployment {
        let mut signed = SIGNING_CONTEXT.to_vec();
        signed.extend_from_slice(&manifest_bytes);
        let sig = base64::engine::general_purpose::STANDARD.encode(d.sign(&signed));
        files.push(Entry {
            name: SIGNATURE.into(),
            data: format!("{sig}\n").into_bytes(),
        });
    }
    Ok(Bundle {
        entries: files,
        manifest,
    })
}

const README: &str = "Bulwark support bundle\n\
\n\
Made by `bulwark support bundle` for the vendor's support. Nothing in it was sent anywhere.\n\
\n\
- version.json, config.json (secrets redacted), environment.json (variable names only)\n\
- store.json: engine, schema version, the seed's check, row counts per table (no contents),\n\
  audit logs' tree heads\n\
- license.json: where the license stands (state, limits and their use) and its history's public parts; backups.json: the newest verified backup\n\
- logs/: recent lines of the log files the operator named, scrubbed again\n\
\n\
Email and IP addresses, user agents and names are replaced by pseudonyms (eml_..., ip_...,\n\
pii_...): the same value is the same pseudonym in every bundle of this deployment; only the\n\
holder of the deployment's seed can tell whom one stands for.\n\
manifest.json lists every file with its SHA-256 and is signed by the deployment key\n\
(manifest.sig): `bulwark support verify FILE` checks it.\n";

/// Every secret the configuration and the data directory hold, to be refused in any form.
fn known_secrets(config: &Config) -> Vec<Zeroizing<String>> {
    let mut out = Vec::new();
    let mut add = |s: &str| out.push(Zeroizing::new(s.to_owned()));
    if let Some(url) = &config.database_url {
        add(url.expose_secret());
        if let Ok(parsed) = url::Url::parse(url.expose_secret())
            && let Some(password) = parsed.password()
        {
            add(password);
        }
    }
    if let Some(url) = &config.audit.publish_url {
        add(url.expose_secret());
    }
    if let Some(token) = &config.audit.publish_token {
        add(token.expose_secret());
    }
    if let Some(smtp) = &config.mail.smtp
        && let Some(password) = &smtp.password
    {
        add(password.expose_secret());
    }
    if let Some(p) = &config.vault.pkcs11 {
        add(p.pin.expose_secret());
    }
    if let Ok(content) = std::fs::read_to_string(config.data_dir.join(SEED_FILE)) {
        let content = Zeroizing::new(content);
        add(content.trim());
        if let Some((_, hex)) = content.trim().split_once(':') {
            add(hex);
            if let Some(raw) = (0..hex.len())
                .step_by(2)
                .map(|i| {
                    hex.get(i..i + 2)
                        .and_then(|b| u8::from_str_radix(b, 16).ok())
                })
                .collect::<Option<Vec<u8>>>()
            {
                let raw = Zeroizing::new(raw);
                add(&base64::engine::general_purpose::STANDARD.encode(&*raw));
            }
        }
    }
    out
}

struct Counter(u64);

impl RowSink for Counter {
    fn row(&mut self, _: &'static Table, _: &[Value]) -> Result<(), BackupError> {
        self.0 += 1;
        Ok(())
    }
}

/// Where the license stands, as `bulwark license status` judges it: the state, the license in
/// force (its public claims), the limits and their use; what went wrong instead when the store
/// or the license cannot be read with this configuration.
async fn license_standing(config: &Config) -> serde_json::Value {
    let rfc3339 = |t: time::OffsetDateTime| {
        t.format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default()
    };
    let (store, licensing, problem) = match crate::startup::open_licensing_for_tools(config).await {
        Ok(v) => v,
        Err(e) => return serde_json::json!({"unavailable": e.to_string()}),
    };
    match licensing.status(&*store, &bulwark_types::SystemClock).await {
        Ok(s) => serde_json::json!({
            "state": s.state.as_str(),
            "judged_at": rfc3339(s.judged_at),
            "license": s.license.as_ref().map(|l| serde_json::json!({
                "license_id": l.claims.license_id,
                "serial": l.claims.serial,
                "key_id": l.key_id,
                "expires_at": rfc3339(l.claims.expires_at),
                "grace_days": l.claims.grace_days,
                "features": l.claims.features,
                "activated_at": rfc3339(l.activated_at),
            })),
            "usage": {
                "orgs": s.usage.orgs, "orgs_limit": s.limits.orgs,
                "seats": s.usage.seats, "seats_limit": s.limits.seats,
            },
            "ignored_activations": s.ignored_activations,
            "problem": problem,
        }),
        Err(e) => serde_json::json!({"unavailable": e.to_string()}),
    }
}

/// The store's state (and the license history, when the store could be read).
async fn store_state(
    config: &Config,
    seed: Option<&Seed>,
) -> (serde_json::Value, Option<serde_json::Value>) {
    let engine = if config.database_url.is_some() {
        "postgres"
    } else {
        "sqlite"
    };
    let mode = |p: &Path| {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::metadata(p)
            .ok()
            .map(|m| format!("{:04o}", m.permissions().mode() & 0o7777))
    };
    let seed_state = if seed.is_some() {
        "readable"
    } else {
        "missing or unreadable"
    };
    let mut state = serde_json::Map::new();
    let set = |state: &mut serde_json::Map<String, serde_json::Value>, k: &str, v| {
        state.insert(k.to_owned(), v);
    };
    set(&mut state, "engine", serde_json::json!(engine));
    set(
        &mut state,
        "schema_version_expected",
        serde_json::json!(bulwark_core::backup::SCHEMA_VERSION),
    );
    set(
        &mut state,
        "data_dir_mode",
        serde_json::json!(mode(&config.data_dir)),
    );
    set(
        &mut state,
        "seed_file_mode",
        serde_json::json!(mode(&config.data_dir.join(SEED_FILE))),
    );
    set(&mut state, "seed_file", serde_json::json!(seed_state));
    let mut snap: Box<dyn Snapshot> = match crate::backup::snapshot(config).await {
        Ok(s) => s,
        Err(e) => {
            set(
                &mut state,
                "store",
                serde_json::json!({"readable": false, "error": e.to_string()}),
            );
            return (serde_json::Value::Object(state), None);
        }
    };
    set(
        &mut state,
        "schema_version",
        serde_json::json!(snap.schema_version()),
    );
    let mut counts = serde_json::Map::new();
    for table in TABLES {
        let mut n = Counter(0);
        let value = match snap.dump(table, &mut n).await {
            Ok(_) => serde_json::json!(n.0),
            Err(e) => serde_json::json!({"error": e.to_string()}),
        };
        counts.insert(table.name.into(), value);
    }
    set(&mut state, "row_counts", serde_json::Value::Object(counts));
    let find = |name: &str| TABLES.iter().find(|t| t.name == name);
    if let Some(t) = find("instance") {
        let mut rows = Collect(Vec::new());
        if snap.dump(t, &mut rows).await.is_ok()
            && let Some(row) = rows.0.first()
            && let Some(Value::Bytes(check)) = column(t, row, "seed_check")
        {
            let ok = seed
                .and_then(|s| s.check_value().ok())
                .is_some_and(|c| bulwark_crypto::constant_time_eq(&c, check));
            let check = if ok { "matches" } else { "does not match" };
            set(&mut state, "seed_check", serde_json::json!(check));
        }
    }
    if let Some(t) = find("audit_heads") {
        let mut rows = Collect(Vec::new());
        if snap.dump(t, &mut rows).await.is_ok() {
            let heads: Vec<_> = rows
                .0
                .iter()
                .filter_map(
                    |row| match (column(t, row, "log"), column(t, row, "frontier")) {
                        (Some(Value::Text(log)), Some(Value::Bytes(f))) => {
                            let range = bulwark_audit::merkle::CompactRange::from_bytes(f)?;
                            Some(serde_json::json!({
                                "log": log, "size": range.size(),
                                "root": bulwark_crypto::to_hex(&range.root()),
                            }))
                        }
                        _ => None,
                    },
                )
                .collect();
            set(&mut state, "audit_heads", serde_json::json!(heads));
        }
    }
    let mut license = None;
    if let Some(t) = find("license_activations") {
        let mut rows = Collect(Vec::new());
        if snap.dump(t, &mut rows).await.is_ok() {
            let history: Vec<_> = rows
                .0
                .iter()
                .map(|row| {
                    let get = |c| column(t, row, c).cloned().unwrap_or(Value::Null);
                    let text = |v: Value| match v {
                        Value::Text(s) => serde_json::from_str(&s).unwrap_or(serde_json::json!(s)),
                        Value::Int(n) => serde_json::json!(n),
                        _ => serde_json::Value::Null,
                    };
                    serde_json::json!({
                        "seq": text(get("seq")),
                        "license_id": text(get("license_id")),
                        "serial": text(get("serial")),
                        "activated_at_ms": text(get("activated_at_ms")),
                        "license_sha256": text(get("license_sha256")),
                        "license": text(get("license_file")),
                        "receipt": text(get("receipt")),
                    })
                })
                .collect();
            license = Some(serde_json::json!({"activations": history}));
        }
    }
    (serde_json::Value::Object(state), license)
}

/// The recent lines of a log file, scrubbed.
fn read_log(
    path: &Path,
    cutoff: time::OffsetDateTime,
    scrub: &Scrubber,
) -> Result<Vec<u8>, Failure> {
    let mut file = std::fs::File::open(path)
        .map_err(|e| Failure::Usage(format!("--log-file `{}`: {e}", path.display())))?;
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    if len > MAX_LOG_BYTES {
        use std::io::Seek as _;
        file.seek(std::io::SeekFrom::Start(len - MAX_LOG_BYTES))
            .map_err(|e| Failure::Usage(format!("--log-file `{}`: {e}", path.display())))?;
    }
    let mut raw = Vec::new();
    file.read_to_end(&mut raw)
        .map_err(|e| Failure::Usage(format!("--log-file `{}`: {e}", path.display())))?;
    let text = String::from_utf8_lossy(&raw);
    let mut out = String::new();
    for line in text.lines() {
        let time = serde_json::from_str::<serde_json::Value>(line)
            .ok()
            .and_then(|v| {
                v.get("timestamp").and_then(|t| t.as_str()).and_then(|t| {
                    time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339)
                        .ok()
                })
            });
        if time.is_some_and(|t| t < cutoff) {
            continue;
        }
        out.push_str(&scrub.log_line(line));
        out.push('\n');
    }
    Ok(out.into_bytes())
}

/// Writes the bundle to `out` (0600, never replacing a file): as `<out>.partial`, renamed when
/// complete.
///
/// # Errors
/// The file exists or cannot be written.
pub fn write(out: &Path, bundle: &Bundle) -> Result<u64, Failure> {
    if out.exists() {
        return Err(Failure::Usage(format!(
            "`{}` exists already: a bundle never replaces a file",
            out.display()
        )));
    }
    let mtime = u64::try_from(time::OffsetDateTime::now_utc().unix_timestamp()).unwrap_or(0);
    let bytes = tar::write(&bundle.entries, mtime).map_err(Failure::Usage)?;
    let mut partial = out.as_os_str().to_owned();
    partial.push(".partial");
    let partial = PathBuf::from(partial);
    {
        use std::io::Write as _;
        use std::os::unix::fs::OpenOptionsExt as _;
        let written = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&partial)
            .and_then(|mut f| f.write_all(&bytes).and_then(|()| f.sync_all()));
        if let Err(e) = written {
            let _ = std::fs::remove_file(&partial);
            return Err(Failure::Usage(format!(
                "cannot write `{}`: {e}",
                partial.display()
            )));
        }
    }
    crate::backup::publish_new(&partial, out)?;
    Ok(bytes.len() as u64)
}

/// What `support verify` established.
#[derive(Debug)]
pub struct Verified {
    /// The manifest.
    pub manifest: Manifest,
    /// Whether it was signed (and the signature verified).
    pub signed: bool,
    /// The files and their contents.
    pub entries: Vec<Entry>,
}

/// Checks a bundle offline: every file against the manifest, nothing unlisted, and the
/// manifest's signature against the deployment key it names.
///
/// # Errors
/// What does not hold, by name.
pub fn verify(path: &Path) -> Result<Verified, Failure> {
    let bytes = std::fs::read(path)
        .map_err(|e| Failure::Usage(format!("cannot read `{}`: {e}", path.display())))?;
    let tampered = |m: String| Failure::Backup(BackupError::Tampered(m));
    let entries = tar::read(&bytes).map_err(|e| tampered(format!("not a bundle: {e}")))?;
    let get = |name: &str| entries.iter().find(|e| e.name == name);
    let manifest_bytes = get(MANIFEST)
        .ok_or_else(|| tampered("no manifest.json".into()))?
        .data
        .clone();
    let manifest: Manifest = serde_json::from_slice(&manifest_bytes)
        .map_err(|e| tampered(format!("manifest.json: {e}")))?;
    for e in &entries {
        if e.name == MANIFEST || e.name == SIGNATURE {
            continue;
        }
        let listed = manifest
            .files
            .iter()
            .find(|f| f.name == e.name)
            .ok_or_else(|| tampered(format!("`{}` is not in the manifest (added)", e.name)))?;
        let sha = bulwark_crypto::to_hex(&bulwark_crypto::sha256(&e.data));
        if listed.sha256 != sha || listed.size != e.data.len() as u64 {
            return Err(tampered(format!(
                "`{}` differs from the manifest (changed)",
                e.name
            )));
        }
    }
    if let Some(missing) = manifest.files.iter().find(|f| get(&f.name).is_none()) {
        return Err(tampered(format!("`{}` is missing (removed)", missing.name)));
    }
    let signed = match (
        get(SIGNATURE),
        &manifest.deployment_key,
        &manifest.deployment,
    ) {
        (Some(sig), Some(key), Some(deployment)) => {
            let key: [u8; 32] = base64::engine::general_purpose::STANDARD
                .decode(key)
                .ok()
                .and_then(|k| k.try_into().ok())
                .ok_or_else(|| tampered("a malformed deployment key".into()))?;
            if bulwark_core::backup::archive::deployment_id(&key) != *deployment {
                return Err(tampered(format!(
                    "the key is not deployment {deployment}'s"
                )));
            }
            let sig = base64::engine::general_purpose::STANDARD
                .decode(String::from_utf8_lossy(&sig.data).trim())
                .map_err(|_| tampered("manifest.sig is not base64".into()))?;
            let mut signed = SIGNING_CONTEXT.to_vec();
            signed.extend_from_slice(&manifest_bytes);
            if !bulwark_crypto::verify_ed25519(&key, &signed, &sig) {
                return Err(tampered(format!(
                    "the manifest signature does not verify with deployment {deployment}'s key (the manifest was changed)"
                )));
            }
            true
        }
        (None, None, None) => false,
        _ => return Err(tampered("the manifest's signature is missing".into())),
    };
    Ok(Verified {
        manifest,
        signed,
        entries,
    })
}
