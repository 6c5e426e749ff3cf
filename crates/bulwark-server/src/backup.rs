//! Backups and restores (docs/backups.md, ADR 0020): `bulwark backup create|verify|keygen` and
//! `bulwark restore` run these; the server's scheduled backups run [`create`].
//!
//! An archive is the `bulwark_core::backup::archive` line format encrypted to the operator's
//! `age` recipients: whoever writes backups (the server on a schedule) needs only the public key,
//! and only the holder of the identity file can read them. The manifest is signed by the
//! deployment key, which the seed derives; the seed itself travels only with `--include-seed`.

use std::io::{BufRead, BufReader, BufWriter, Write as _};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::str::FromStr as _;
use std::sync::mpsc::{SyncSender, sync_channel};

use bulwark_core::backup::archive::{self, Header, Item, LogHead, Manifest, Reader, Sum, Writer};
use bulwark_core::backup::check::{AuditCheck, LogReport, PUBLISHED_FILE};
use bulwark_core::backup::{
    BackupError, Loader, RowSink, SCHEMA_VERSION, Snapshot, TABLES, Table, Value, decode_row,
    encode_row,
};
use bulwark_core::licensing::Deployment;
use bulwark_crypto::Seed;
use secrecy::ExposeSecret as _;
use zeroize::Zeroizing;

use crate::config::Config;
use crate::startup::{AUDIT_CHECKPOINTS_FILE, SEED_FILE, SQLITE_FILE};

/// Rows a restore inserts per statement batch.
const LOAD_BATCH: usize = 1000;

/// Why a backup command failed, and the exit code class it maps to.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    /// The archive, the store or a file said no.
    #[error(transparent)]
    Backup(#[from] BackupError),
    /// Bad usage or configuration (a recipient that does not parse, an output that exists).
    #[error("{0}")]
    Usage(String),
    /// The archive cannot be decrypted with the identities given.
    #[error("the archive does not decrypt: {0}")]
    Decrypt(String),
}

impl Failure {
    /// Whether the failure is a failed verification (tampered, truncated, foreign, wrong key).
    #[must_use]
    pub const fn is_verification(&self) -> bool {
        matches!(
            self,
            Self::Decrypt(_)
                | Self::Backup(
                    BackupError::Tampered(_)
                        | BackupError::Audit { .. }
                        | BackupError::Format { .. }
                )
        )
    }

    /// Whether the operation was refused as unsafe (a target holding data, another schema).
    #[must_use]
    pub const fn is_refusal(&self) -> bool {
        matches!(self, Self::Backup(BackupError::Refused(_)))
    }
}

/// An `age` recipient the archive is encrypted to.
pub type Recipient = Box<dyn age::Recipient + Send>;
/// An `age` identity that opens an archive.
pub type Identity = Box<dyn age::Identity + Send + Sync>;

/// Parses recipients: `age1…` public keys, given directly or one per line in files (blank lines
/// and `#` comments skipped).
///
/// # Errors
/// None given, a file that cannot be read, or a key that does not parse.
pub fn recipients(keys: &[String], files: &[PathBuf]) -> Result<Vec<Recipient>, Failure> {
    let mut out: Vec<Recipient> = Vec::new();
    let mut add = |key: &str, from: &str| {
        age::x25519::Recipient::from_str(key.trim())
            .map(|r| out.push(Box::new(r)))
            .map_err(|_| {
                Failure::Usage(format!(
                    "{from}: `{}` is not an age public key (age1…)",
                    key.trim()
                ))
            })
    };
    for key in keys {
        add(key, "--recipient")?;
    }
    for file in files {
        let text = std::fs::read_to_string(file)
            .map_err(|e| Failure::Usage(format!("cannot read `{}`: {e}", file.display())))?;
        for line in text.lines() {
            let line = line.trim();
            if !line.is_empty() && !line.starts_with('#') {
                add(line, &file.display().to_string())?;
            }
        }
    }
    if out.is_empty() {
        return Err(Failure::Usage(
            "no recipient: give --recipient age1… or --recipients-file FILE (or `backup.recipients` in the configuration); `bulwark backup keygen` makes a key pair"
                .into(),
        ));
    }
    Ok(out)
}

/// Reads an `age` identity file (as `age-keygen` or `bulwark backup keygen` write it).
///
/// # Errors
/// The file cannot be read or holds no identity.
pub fn identities(path: &Path) -> Result<Vec<Identity>, Failure> {
    let file = std::fs::File::open(path)
        .map_err(|e| Failure::Usage(format!("cannot read `{}`: {e}", path.display())))?;
    let parsed = age::IdentityFile::from_buffer(BufReader::new(file)).map_err(|e| {
        Failure::Usage(format!(
            "`{}` is not an age identity file: {e}",
            path.display()
        ))
    })?;
    let ids = parsed.into_identities().map_err(|e| {
        Failure::Usage(format!(
            "`{}` is not an age identity file: {e}",
            path.display()
        ))
    })?;
    if ids.is_empty() {
        return Err(Failure::Usage(format!(
            "`{}` holds no identity",
            path.display()
        )));
    }
    Ok(ids)
}

/// A new key pair: the identity file's content (secret) and the public key.
#[must_use]
pub fn keygen(now: time::OffsetDateTime) -> (Zeroizing<String>, String) {
    let identity = age::x25519::Identity::generate();
    let public = identity.to_public().to_string();
    let created = now
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    let secret = identity.to_string();
    let text = Zeroizing::new(format!(
        "# created: {created}\n# public key: {public}\n{}\n",
        secret.expose_secret()
    ));
    (text, public)
}

/// What `create` wrote.
#[derive(Debug)]
pub struct Created {
    /// The archive.
    pub path: PathBuf,
    /// Its header.
    pub header: Header,
    /// Its manifest.
    pub manifest: Manifest,
    /// Bytes written.
    pub bytes: u64,
    /// SHA-256 of the bytes written (the ciphertext).
    pub sha256: [u8; 32],
    /// The verification run while writing, when asked for.
    pub verification: Option<Verification>,
}

/// Where progress lines go.
pub type Progress = Box<dyn FnMut(&str) + Send>;

/// What `create` needs beyond the configuration.
pub struct CreateOptions {
    /// The archive to write; must not exist.
    pub out: PathBuf,
    /// Who can read it.
    pub recipients: Vec<Recipient>,
    /// Whether the workspace seed goes in.
    pub include_seed: bool,
    /// Progress lines (a table at a time) go here.
    pub progress: Option<Progress>,
    /// Verify the archive as it is written (the plaintext is read back through the checks of
    /// [`verify`] on another thread); the backup fails when it does not verify.
    pub verify: bool,
}

/// The workspace seed in `data_dir`.
pub(crate) fn read_seed(data_dir: &Path) -> Result<Seed, Failure> {
    let path = data_dir.join(SEED_FILE);
    let content = Zeroizing::new(std::fs::read(&path).map_err(|e| {
        Failure::Usage(format!(
            "workspace seed `{}`: cannot read it: {e}; a backup is signed by the deployment key the seed derives",
            path.display()
        ))
    })?);
    Seed::parse_file(&content)
        .map_err(|e| Failure::Usage(format!("workspace seed `{}`: {e}", path.display())))
}

/// The file checkpoints are published to, as the server uses it.
#[must_use]
pub fn published_path(config: &Config) -> PathBuf {
    config
        .audit
        .publish_file
        .clone()
        .unwrap_or_else(|| config.data_dir.join(AUDIT_CHECKPOINTS_FILE))
}

/// Opens a consistent snapshot of the configured store (on PostgreSQL, `database_url` names
/// the owner role).
pub(crate) async fn snapshot(config: &Config) -> Result<Box<dyn Snapshot>, Failure> {
    Ok(match &config.database_url {
        Some(url) => bulwark_store_postgres::backup_open::snapshot(url.expose_secret()).await?,
        None => {
            bulwark_store_sqlite::backup_open::snapshot(&config.data_dir.join(SQLITE_FILE)).await?
        }
    })
}

/// Collects a table's rows in memory (the small tables the header and a bundle need).
pub(crate) struct Collect(pub(crate) Vec<Vec<Value>>);

impl RowSink for Collect {
    fn row(&mut self, _table: &'static Table, values: &[Value]) -> Result<(), BackupError> {
        self.0.push(values.to_vec());
        Ok(())
    }
}

fn table(name: &str) -> Result<&'static Table, Failure> {
    TABLES.iter().find(|t| t.name == name).ok_or_else(|| {
        Failure::Backup(BackupError::Io(format!("no table `{name}` in the catalog")))
    })
}

/// The value of `name` in a row of `table`.
pub(crate) fn column<'v>(table: &Table, row: &'v [Value], name: &str) -> Option<&'v Value> {
    table.index(name).and_then(|i| row.get(i))
}

/// The audit signer and its verifier key, as the server's checkpointer has them.
fn audit_signer(
    seed: &Seed,
    deployment: uuid::Uuid,
) -> Result<bulwark_audit::checkpoint::NoteSigner, Failure> {
    let crypto = |_| Failure::Backup(BackupError::Io("key derivation failed".into()));
    let key = seed
        .derive(bulwark_crypto::KeyPurpose::AuditSigning, b"")
        .map_err(crypto)?;
    let signer = bulwark_crypto::Ed25519Signer::from_seed(&key).map_err(crypto)?;
    bulwark_audit::checkpoint::NoteSigner::new(&format!("bulwark/{}", deployment.simple()), signer)
        .map_err(|_| Failure::Backup(BackupError::Io("cannot build the audit signer".into())))
}

/// The instance row's deployment id and seed check value.
fn instance_of(rows: &[Vec<Value>]) -> Result<(uuid::Uuid, Vec<u8>), Failure> {
    let t = table("instance")?;
    let row = rows.first().ok_or_else(|| {
        Failure::Backup(BackupError::Refused(
            "the store holds no deployment yet: nothing to back up".into(),
        ))
    })?;
    match (
        column(t, row, "deployment_id"),
        column(t, row, "seed_check"),
    ) {
        (Some(Value::Uuid(id)), Some(Value::Bytes(check))) => Ok((*id, check.clone())),
        _ => Err(Failure::Backup(BackupError::Io(
            "the instance row is malformed".into(),
        ))),
    }
}

/// Writes a backup of the configured store to `opts.out`: read as one snapshot while the server
/// runs, encrypted to the recipients, written to `<out>.partial` and renamed into place only
/// once complete and synced.
///
/// # Errors
/// See [`Failure`]. A failed backup leaves no file at `out` (a `.partial` file at most, which
/// never verifies).
pub async fn create(config: &Config, mut opts: CreateOptions) -> Result<Created, Failure> {
    if opts.out.exists() {
        return Err(Failure::Usage(format!(
            "`{}` exists already: a backup never replaces a file",
            opts.out.display()
        )));
    }
    let seed = read_seed(&config.data_dir)?;
    // Read before the snapshot: every checkpoint published so far covers only events the
    // snapshot holds.
    let published = match std::fs::read(published_path(config)) {
        Ok(b) => Some(b),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => {
            return Err(Failure::Backup(BackupError::Io(format!(
                "cannot read the published checkpoints `{}`: {e}",
                published_path(config).display()
            ))));
        }
    };
    let mut snap = snapshot(config).await?;
    if snap.schema_version() != SCHEMA_VERSION {
        return Err(Failure::Backup(BackupError::Refused(format!(
            "the store is at schema version {}, this release at {SCHEMA_VERSION}: back up with the release that runs it",
            snap.schema_version()
        ))));
    }
    let mut instance = Collect(Vec::new());
    snap.dump(table("instance")?, &mut instance).await?;
    let (deployment_uuid, check) = instance_of(&instance.0)?;
    let ours = seed
        .check_value()
        .map_err(|_| Failure::Backup(BackupError::Io("key derivation failed".into())))?;
    if !bulwark_crypto::constant_time_eq(&ours, &check) {
        return Err(Failure::Usage(
            "the workspace seed in the data directory is not this database's".into(),
        ));
    }
    let deployment = Deployment::derive(&seed)
        .map_err(|_| Failure::Backup(BackupError::Io("key derivation failed".into())))?;
    let signer = audit_signer(&seed, deployment_uuid)?;
    let now = time::OffsetDateTime::now_utc();
    let audit = heads(&mut *snap, &signer, now).await?;
    let header = Header {
        bulwark_backup: archive::FORMAT,
        engine: snap.engine().into(),
        schema_version: snap.schema_version(),
        created: now
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default(),
        tool: env!("CARGO_PKG_VERSION").into(),
        deployment: deployment.id().into(),
        deployment_key: deployment.public_key(),
        audit_key: signer.verifier().to_vkey(),
        seed_included: opts.include_seed,
        audit,
    };
    let partial = partial_path(&opts.out);
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&partial)
        .map_err(|e| Failure::Usage(format!("cannot create `{}`: {e}", partial.display())))?;
    let written = write_archive(
        &mut *snap,
        file,
        &header,
        published.as_deref(),
        &seed,
        &deployment,
        &mut opts,
    )
    .await;
    let (manifest, bytes, sha256, verification) = match written {
        Ok(w) => w,
        Err(e) => {
            let _ = std::fs::remove_file(&partial);
            return Err(e);
        }
    };
    publish_new(&partial, &opts.out)?;
    Ok(Created {
        path: opts.out,
        header,
        manifest,
        bytes,
        sha256,
        verification,
    })
}

/// Moves a finished `partial` file to `out`, never replacing a file that appeared there
/// meanwhile (a hard link fails when the name exists), then removes `partial` and syncs the
/// directory. On failure `partial` is removed.
///
/// # Errors
/// `out` exists, or the link fails.
pub fn publish_new(partial: &Path, out: &Path) -> Result<(), Failure> {
    let linked = std::fs::hard_link(partial, out);
    let _ = std::fs::remove_file(partial);
    linked.map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            Failure::Usage(format!(
                "`{}` appeared while it was being written: nothing replaced",
                out.display()
            ))
        } else {
            Failure::Backup(BackupError::Io(format!(
                "cannot move the file into place at `{}`: {e}",
                out.display()
            )))
        }
    })?;
    sync_dir(out);
    Ok(())
}

/// `<out>.partial`, beside it.
fn partial_path(out: &Path) -> PathBuf {
    let mut name = out.file_name().unwrap_or_default().to_os_string();
    name.push(".partial");
    out.with_file_name(name)
}

fn sync_dir(path: &Path) {
    if let Some(dir) = path.parent() {
        let dir = if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        };
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
    }
}

/// Every log's head in the snapshot, each with a checkpoint of exactly its size signed now.
async fn heads(
    snap: &mut dyn Snapshot,
    signer: &bulwark_audit::checkpoint::NoteSigner,
    now: time::OffsetDateTime,
) -> Result<Vec<LogHead>, Failure> {
    let t = table("audit_heads")?;
    let mut rows = Collect(Vec::new());
    snap.dump(t, &mut rows).await?;
    let mut out = Vec::new();
    for row in &rows.0 {
        let (Some(Value::Text(log)), Some(Value::Bytes(frontier))) =
            (column(t, row, "log"), column(t, row, "frontier"))
        else {
            return Err(Failure::Backup(BackupError::Io(
                "an audit head is malformed".into(),
            )));
        };
        let range = bulwark_audit::merkle::CompactRange::from_bytes(frontier).ok_or_else(|| {
            Failure::Backup(BackupError::Io(format!(
                "audit log `{log}`: its head does not parse"
            )))
        })?;
        let origin = format!("{}/{log}", signer.verifier().name());
        let checkpoint = bulwark_audit::checkpoint::Checkpoint {
            origin: origin.clone(),
            size: range.size(),
            root: range.root(),
            time: u64::try_from(now.unix_timestamp()).unwrap_or(0),
        };
        out.push(LogHead {
            log: log.clone(),
            origin,
            size: range.size(),
            checkpoint: signer.sign(&checkpoint),
        });
    }
    Ok(out)
}

/// Counts and hashes bytes on their way to the file.
struct Counted<W> {
    inner: W,
    bytes: u64,
    sha: bulwark_crypto::Sha256,
}

impl<W: std::io::Write> std::io::Write for Counted<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.bytes += n as u64;
        self.sha.update(buf.get(..n).unwrap_or_default());
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Hands a copy of everything written to a verifier on another thread.
struct Tee<W> {
    inner: W,
    copy: Option<SyncSender<Vec<u8>>>,
}

impl<W: std::io::Write> std::io::Write for Tee<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        if let Some(tx) = &self.copy
            && tx.send(buf.get(..n).unwrap_or_default().to_vec()).is_err()
        {
            // The verifier stopped: its error is reported when it is joined.
            self.copy = None;
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

type Written = (Manifest, u64, [u8; 32], Option<Verification>);

async fn write_archive(
    snap: &mut dyn Snapshot,
    file: std::fs::File,
    header: &Header,
    published: Option<&[u8]>,
    seed: &Seed,
    deployment: &Deployment,
    opts: &mut CreateOptions,
) -> Result<Written, Failure> {
    let io = |e: std::io::Error| Failure::Backup(BackupError::Io(format!("cannot write: {e}")));
    let encryptor =
        age::Encryptor::with_recipients(opts.recipients.iter().map(|r| r.as_ref() as _))
            .map_err(|e| Failure::Usage(format!("cannot encrypt to these recipients: {e}")))?;
    let counted = Counted {
        inner: BufWriter::with_capacity(1 << 20, file),
        bytes: 0,
        sha: bulwark_crypto::Sha256::default(),
    };
    let stream = encryptor.wrap_output(counted).map_err(io)?;
    let (copy, verifier) = if opts.verify {
        let (tx, rx) = sync_channel::<Vec<u8>>(64);
        let verifier = std::thread::spawn(move || {
            let plain: Box<dyn BufRead> = Box::new(BufReader::with_capacity(
                1 << 20,
                bulwark_core::backup::check::Lines::new(rx),
            ));
            verify_plain(Reader::new(plain)?)
        });
        (Some(tx), Some(verifier))
    } else {
        (None, None)
    };
    let tee = Tee {
        inner: stream,
        copy,
    };
    let mut writer = Writer::new(tee, header)?;
    if let Some(data) = published {
        writer.file(PUBLISHED_FILE, data)?;
    }
    while let Some(table) = writer.begin_table()? {
        let rows = snap.dump(table, &mut writer).await?;
        writer.end_table()?;
        if let Some(progress) = opts.progress.as_mut() {
            progress(&format!("backup: {} {rows} rows", table.name));
        }
    }
    if opts.include_seed {
        writer.seed(&seed.to_file_content())?;
    }
    let (tee, manifest) = writer.finish(|m| deployment.sign(m))?;
    let Tee {
        inner: stream,
        copy,
    } = tee;
    drop(copy);
    let verification = match verifier {
        Some(v) => Some(
            v.join()
                .map_err(|_| {
                    Failure::Backup(BackupError::Io("the verifier stopped unexpectedly".into()))
                })?
                .map_err(|e| match e {
                    Failure::Backup(BackupError::Tampered(m)) => Failure::Backup(
                        BackupError::Tampered(format!("the backup does not verify: {m}")),
                    ),
                    other => other,
                })?,
        ),
        None => None,
    };
    let counted = stream.finish().map_err(io)?;
    let (bytes, sha256) = (counted.bytes, counted.sha.finish());
    let file = counted.inner.into_inner().map_err(|e| io(e.into_error()))?;
    file.sync_all().map_err(io)?;
    Ok((manifest, bytes, sha256, verification))
}

/// What a verification established.
#[derive(Debug)]
pub struct Verification {
    /// The archive's header (bound to the manifest).
    pub header: Header,
    /// The manifest (its signature checked).
    pub manifest: Manifest,
    /// Every audit log, verified.
    pub logs: Vec<LogReport>,
}

/// Opens an archive with `identities`.
fn open(path: &Path, identities: &[Identity]) -> Result<Reader<Box<dyn BufRead>>, Failure> {
    let file = std::fs::File::open(path)
        .map_err(|e| Failure::Usage(format!("cannot open `{}`: {e}", path.display())))?;
    let decryptor =
        age::Decryptor::new_buffered(BufReader::with_capacity(1 << 20, file)).map_err(|e| {
            Failure::Decrypt(format!("{e} (not an age file, or its header was changed)"))
        })?;
    let plain = decryptor
        .decrypt(identities.iter().map(|i| i.as_ref() as &dyn age::Identity))
        .map_err(|e| match e {
            age::DecryptError::NoMatchingKeys => Failure::Decrypt(
                "no identity given matches a recipient of the archive (wrong key)".into(),
            ),
            other => Failure::Decrypt(format!("{other} (its header was changed)")),
        })?;
    let boxed: Box<dyn BufRead> = Box::new(BufReader::with_capacity(1 << 20, plain));
    Ok(Reader::new(boxed)?)
}

fn bad_row(line: u64) -> impl FnOnce(String) -> BackupError {
    move |message| BackupError::Format { line, message }
}

/// Verifies an archive offline: decrypts it, checks every table and file against the manifest,
/// the manifest's signature against the deployment key, and replays every audit log's Merkle
/// tree against its stored, published and snapshot checkpoints.
///
/// # Errors
/// See [`Failure`]; the message names what broke.
pub fn verify(path: &Path, identities: &[Identity]) -> Result<Verification, Failure> {
    verify_plain(open(path, identities)?)
}

/// [`verify`] of an archive's plaintext.
fn verify_plain(mut reader: Reader<Box<dyn BufRead>>) -> Result<Verification, Failure> {
    let mut audit = AuditCheck::new(reader.header())?;
    let mut line = 0;
    while let Some(item) = reader.next_item()? {
        line += 1;
        match item {
            Item::File { name, data } => audit.file(&name, &data)?,
            Item::Row(t, bytes) => {
                let values = decode_row(t, &bytes).map_err(bad_row(line))?;
                audit.row(t, &values)?;
            }
            Item::TableStart(_) | Item::TableEnd(_) | Item::Seed(_) => {}
        }
    }
    let logs = audit.finish()?;
    let manifest = reader
        .verified()
        .map(|v| v.manifest.clone())
        .ok_or_else(|| Failure::Backup(BackupError::Tampered("no manifest".into())))?;
    Ok(Verification {
        header: reader.header().clone(),
        manifest,
        logs,
    })
}

/// Where a restored deployment's seed comes from when the archive does not carry it.
pub enum SeedSource {
    /// Only the archive (made with `--include-seed`).
    Archive,
    /// A seed file (a copy of `<data_dir>/seed`).
    File(PathBuf),
    /// An already opened seed (a recovery kit the caller opened).
    Seed(Seed),
}

/// What `restore` needs beyond the configuration (whose `data_dir` and `database_url` name
/// the new, empty target).
pub struct RestoreOptions {
    /// The archive.
    pub archive: PathBuf,
    /// The identities that open it.
    pub identities: Vec<Identity>,
    /// Where the seed comes from.
    pub seed: SeedSource,
    /// On PostgreSQL, the application role `migrate` grants.
    pub app_role: Option<String>,
}

/// What a restore did and re-checked.
#[derive(Debug)]
pub struct Restored {
    /// The archive's verification, done while loading.
    pub archive: Verification,
    /// Rows per table, re-read from the restored store; they match the manifest.
    pub tables: Vec<Sum>,
    /// Audit logs re-verified in the restored store.
    pub logs: Vec<LogReport>,
    /// Where the seed was written.
    pub seed_path: PathBuf,
    /// The published checkpoints file the restore compared the backup with, when the target
    /// had one.
    pub compared_with: Option<PathBuf>,
    /// The events published before the restore that the backup does not hold, per log.
    pub lost: Vec<LostEvents>,
}

/// Restores an archive into a new, empty store, all rows in one transaction that commits only
/// once the whole archive verified; then re-reads the restored store and checks it against the
/// manifest the same way.
///
/// # Errors
/// See [`Failure`]. On failure nothing is committed (a SQLite file it created is removed).
pub async fn restore(config: &Config, opts: RestoreOptions) -> Result<Restored, Failure> {
    let seed_path = config.data_dir.join(SEED_FILE);
    if seed_path.exists() {
        return Err(Failure::Backup(BackupError::Refused(format!(
            "`{}` exists: a restore never writes over a deployment; restore into a new data directory",
            seed_path.display()
        ))));
    }
    crate::startup::ensure_data_dir(&config.data_dir).map_err(|e| Failure::Usage(e.to_string()))?;
    let mut reader = open(&opts.archive, &opts.identities)?;
    let header = reader.header().clone();
    if header.schema_version != SCHEMA_VERSION {
        return Err(Failure::Backup(BackupError::Refused(format!(
            "the archive is at schema version {}, this release at {SCHEMA_VERSION}: restore it with the release that made it, then upgrade",
            header.schema_version
        ))));
    }
    let external = match opts.seed {
        SeedSource::Archive => None,
        SeedSource::File(path) => Some(read_seed_file(&path)?),
        SeedSource::Seed(seed) => Some(seed),
    };
    if let Some(seed) = &external {
        check_seed(seed, &header)?;
    } else if !header.seed_included {
        return Err(Failure::Usage(
            "the archive holds no seed (made without --include-seed): give the deployment's seed with --seed-file or --recovery-kit"
                .into(),
        ));
    }
    let target_published = published_path(config);
    let comparison = compare_published(&target_published, &header)?;
    let sqlite = config
        .database_url
        .is_none()
        .then(|| config.data_dir.join(SQLITE_FILE));
    let created_file = sqlite.as_ref().is_some_and(|p| !p.exists());
    let within = comparison
        .as_ref()
        .map(|c| c.within.clone())
        .unwrap_or_default();
    let loaded = load(config, &opts.app_role, &mut reader, external, within).await;
    let (seed, published, archive) = match loaded {
        Ok(done) => done,
        Err(e) => {
            if created_file && let Some(path) = &sqlite {
                for suffix in ["", "-wal", "-shm"] {
                    let mut p = path.clone().into_os_string();
                    p.push(suffix);
                    let _ = std::fs::remove_file(PathBuf::from(p));
                }
            }
            return Err(e);
        }
    };
    crate::startup::write_new_secret_file(&seed_path, seed.to_file_content().as_bytes()).map_err(
        |e| {
            Failure::Backup(BackupError::Io(format!(
                "restored, but cannot write the seed `{}`: {e}",
                seed_path.display()
            )))
        },
    )?;
    let lost = match &comparison {
        Some(c) => {
            record_restores(&target_published, c, &seed, &archive.header)?;
            c.lost.clone()
        }
        None => {
            if let Some(data) = &published {
                crate::startup::write_new_secret_file(&target_published, data).map_err(|e| {
                    Failure::Backup(BackupError::Io(format!(
                        "cannot write `{}`: {e}",
                        target_published.display()
                    )))
                })?;
            }
            Vec::new()
        }
    };
    let (tables, logs) = recheck(config, &archive, published.as_deref()).await?;
    Ok(Restored {
        archive,
        tables,
        logs,
        seed_path,
        compared_with: comparison.map(|_| target_published),
        lost,
    })
}

/// Events of a log published before a restore and not in the restored backup.
#[derive(Debug, Clone)]
pub struct LostEvents {
    /// The log.
    pub log: String,
    /// The first lost event's seq (the restored log's size).
    pub from_seq: u64,
    /// The last lost event's seq.
    pub to_seq: u64,
    /// When the largest checkpoint covering them was signed (Unix seconds).
    pub last_published_at: u64,
    restore: bulwark_audit::published::Restore,
}

/// The target's published checkpoints, compared with the archive's heads.
struct Comparison {
    /// Checkpoints of the archived sizes or below: the restored logs must agree with them.
    within: Vec<String>,
    /// Logs that published more than the archive holds.
    lost: Vec<LostEvents>,
}

/// When the target already has a published checkpoints file (the deployment's own, kept outside
/// the database), what of it the archive holds and what it lost.
fn compare_published(path: &Path, header: &Header) -> Result<Option<Comparison>, Failure> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(Failure::Usage(format!(
                "cannot read the published checkpoints `{}`: {e}",
                path.display()
            )));
        }
    };
    let key = bulwark_audit::checkpoint::NoteVerifier::parse(&header.audit_key).map_err(|e| {
        Failure::Backup(BackupError::Tampered(format!(
            "the header's audit key: {e}"
        )))
    })?;
    let published = bulwark_audit::published::read(&text, &key).map_err(|e| {
        Failure::Backup(BackupError::Tampered(format!("`{}`: {e}", path.display())))
    })?;
    let mut within = Vec::new();
    let mut largest: std::collections::BTreeMap<String, bulwark_audit::checkpoint::Checkpoint> =
        std::collections::BTreeMap::new();
    for note in published.notes {
        // Another deployment's checkpoints are refused by the verifier that checks `within`.
        let Ok(cp) = key.verify(&note) else {
            within.push(note);
            continue;
        };
        let head = header.audit.iter().find(|h| h.origin == cp.origin);
        match head {
            Some(h) if cp.size > h.size => {
                if largest.get(&cp.origin).is_none_or(|l| l.size < cp.size) {
                    largest.insert(cp.origin.clone(), cp);
                }
            }
            None if cp.size > 0 => {
                return Err(Failure::Backup(BackupError::Tampered(format!(
                    "`{}` holds checkpoints of `{}`, a log the backup does not have",
                    path.display(),
                    cp.origin
                ))));
            }
            _ => within.push(note),
        }
    }
    let mut lost = Vec::new();
    for (origin, cp) in largest {
        let Some(head) = header.audit.iter().find(|h| h.origin == origin) else {
            continue;
        };
        let to = key.verify(&head.checkpoint).map_err(|e| {
            Failure::Backup(BackupError::Tampered(format!("a head checkpoint: {e}")))
        })?;
        lost.push(LostEvents {
            log: head.log.clone(),
            from_seq: head.size,
            to_seq: cp.size - 1,
            last_published_at: cp.time,
            restore: bulwark_audit::published::Restore {
                origin,
                from: (cp.size, cp.root),
                to: (head.size, to.root),
                time: 0,
            },
        });
    }
    Ok(Some(Comparison { within, lost }))
}

/// Appends a signed restore line per log that lost events, so the published record continues
/// from the restored heads instead of forking silently (`bulwark_audit::published`).
fn record_restores(
    path: &Path,
    comparison: &Comparison,
    seed: &Seed,
    header: &Header,
) -> Result<(), Failure> {
    if comparison.lost.is_empty() {
        return Ok(());
    }
    let deployment = header
        .audit_key
        .split('+')
        .next()
        .and_then(|name| name.strip_prefix("bulwark/"))
        .and_then(|id| uuid::Uuid::try_parse(id).ok())
        .ok_or_else(|| {
            Failure::Backup(BackupError::Tampered("the header's audit key name".into()))
        })?;
    let signer = audit_signer(seed, deployment)?;
    if signer.verifier().to_vkey() != header.audit_key {
        return Err(Failure::Backup(BackupError::Tampered(
            "the seed does not derive the archive's audit key".into(),
        )));
    }
    let now = u64::try_from(time::OffsetDateTime::now_utc().unix_timestamp()).unwrap_or(0);
    let mut lines = String::new();
    for lost in &comparison.lost {
        let restore = bulwark_audit::published::Restore {
            time: now,
            ..lost.restore.clone()
        };
        let note = restore
            .sign(&signer)
            .map_err(|e| Failure::Backup(BackupError::Io(format!("cannot sign: {e}"))))?;
        lines.push_str(&bulwark_audit::published::restored_line(&note));
        lines.push('\n');
    }
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(path)
        .map_err(|e| {
            Failure::Backup(BackupError::Io(format!(
                "cannot append to `{}`: {e}",
                path.display()
            )))
        })?;
    file.write_all(lines.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|e| {
            Failure::Backup(BackupError::Io(format!(
                "cannot append to `{}`: {e}",
                path.display()
            )))
        })
}

fn read_seed_file(path: &Path) -> Result<Seed, Failure> {
    let content =
        Zeroizing::new(std::fs::read(path).map_err(|e| {
            Failure::Usage(format!("cannot read the seed `{}`: {e}", path.display()))
        })?);
    Seed::parse_file(&content)
        .map_err(|e| Failure::Usage(format!("the seed `{}`: {e}", path.display())))
}

/// The seed must derive the archive's deployment key.
fn check_seed(seed: &Seed, header: &Header) -> Result<(), Failure> {
    let deployment = Deployment::derive(seed)
        .map_err(|_| Failure::Backup(BackupError::Io("key derivation failed".into())))?;
    if deployment.public_key() != header.deployment_key {
        return Err(Failure::Usage(format!(
            "the seed given is not deployment {}'s (it derives {})",
            header.deployment,
            deployment.id()
        )));
    }
    Ok(())
}

async fn loader(config: &Config, app_role: &Option<String>) -> Result<Box<dyn Loader>, Failure> {
    Ok(match &config.database_url {
        Some(url) => {
            let role = app_role.as_deref().ok_or_else(|| {
                Failure::Usage(
                    "restoring onto PostgreSQL needs --app-role (the role `serve` runs as), as `bulwark migrate` does"
                        .into(),
                )
            })?;
            bulwark_store_postgres::backup_open::loader(url.expose_secret(), role).await?
        }
        None => {
            bulwark_store_sqlite::backup_open::loader(&config.data_dir.join(SQLITE_FILE)).await?
        }
    })
}

type Loaded = (Seed, Option<Vec<u8>>, Verification);

async fn load(
    config: &Config,
    app_role: &Option<String>,
    reader: &mut Reader<Box<dyn BufRead>>,
    external: Option<Seed>,
    published_within: Vec<String>,
) -> Result<Loaded, Failure> {
    let mut target = loader(config, app_role).await?;
    let mut audit = AuditCheck::new(reader.header())?;
    audit.notes(published_within);
    let mut batch: Vec<Vec<Value>> = Vec::with_capacity(LOAD_BATCH);
    let mut instance: Vec<Vec<Value>> = Vec::new();
    let mut archived_seed: Option<Seed> = None;
    let mut published: Option<Vec<u8>> = None;
    let mut line = 0;
    while let Some(item) = reader.next_item()? {
        line += 1;
        match item {
            Item::File { name, data } => {
                audit.file(&name, &data)?;
                if name == PUBLISHED_FILE {
                    published = Some(data);
                }
            }
            Item::TableStart(_) => batch.clear(),
            Item::Row(t, bytes) => {
                let values = decode_row(t, &bytes).map_err(bad_row(line))?;
                audit.row(t, &values)?;
                if t.name == "instance" {
                    instance.push(values.clone());
                }
                batch.push(values);
                if batch.len() >= LOAD_BATCH {
                    target.load(t, &batch).await?;
                    batch.clear();
                }
            }
            Item::TableEnd(t) => {
                if !batch.is_empty() {
                    target.load(t, &batch).await?;
                    batch.clear();
                }
            }
            Item::Seed(text) => {
                archived_seed = Some(Seed::parse_file(text.as_bytes()).map_err(|e| {
                    Failure::Backup(BackupError::Tampered(format!("the archived seed: {e}")))
                })?);
            }
        }
    }
    let logs = audit.finish()?;
    let header = reader.header().clone();
    let manifest = reader
        .verified()
        .map(|v| v.manifest.clone())
        .ok_or_else(|| Failure::Backup(BackupError::Tampered("no manifest".into())))?;
    let seed = external.or(archived_seed).ok_or_else(|| {
        Failure::Backup(BackupError::Tampered(
            "the header announces a seed the archive does not hold".into(),
        ))
    })?;
    check_seed(&seed, &header)?;
    let (_, check) = instance_of(&instance)?;
    let ours = seed
        .check_value()
        .map_err(|_| Failure::Backup(BackupError::Io("key derivation failed".into())))?;
    if !bulwark_crypto::constant_time_eq(&ours, &check) {
        return Err(Failure::Backup(BackupError::Tampered(
            "the seed does not match the archived deployment's check value".into(),
        )));
    }
    target.finish().await?;
    Ok((
        seed,
        published,
        Verification {
            header,
            manifest,
            logs,
        },
    ))
}

/// Sums each table of a store as an archive would, feeding the audit check.
struct Recheck {
    audit: AuditCheck,
    sha: bulwark_crypto::Sha256,
    rows: u64,
    line: Vec<u8>,
}

impl RowSink for Recheck {
    fn row(&mut self, table: &'static Table, values: &[Value]) -> Result<(), BackupError> {
        self.line.clear();
        encode_row(table, values, &mut self.line)?;
        self.line.push(b'\n');
        self.sha.update(&self.line);
        self.rows += 1;
        self.audit.row(table, values)
    }
}

/// Re-reads the restored store and checks every table against the manifest and every audit log.
async fn recheck(
    config: &Config,
    archive: &Verification,
    published: Option<&[u8]>,
) -> Result<(Vec<Sum>, Vec<LogReport>), Failure> {
    let mut snap = snapshot(config).await?;
    let mut audit = AuditCheck::new(&archive.header)?;
    if let Some(data) = published {
        audit.file(PUBLISHED_FILE, data)?;
    }
    let mut sink = Recheck {
        audit,
        sha: bulwark_crypto::Sha256::default(),
        rows: 0,
        line: Vec::new(),
    };
    let mut sums = Vec::new();
    for (i, table) in TABLES.iter().enumerate() {
        sink.sha = bulwark_crypto::Sha256::default();
        sink.rows = 0;
        snap.dump(table, &mut sink).await?;
        let sum = Sum {
            name: table.name.into(),
            size: sink.rows,
            sha256: bulwark_crypto::to_hex(&std::mem::take(&mut sink.sha).finish()),
        };
        if archive.manifest.tables.get(i) != Some(&sum) {
            return Err(Failure::Backup(BackupError::Tampered(format!(
                "the restored table `{}` does not match the manifest ({} rows): the target changed it",
                table.name, sum.size
            ))));
        }
        sums.push(sum);
    }
    let logs = sink.audit.finish()?;
    Ok((sums, logs))
}

/// Writes `text` to a new 0600 file (the identity of `backup keygen`).
///
/// # Errors
/// The file exists or cannot be written.
pub fn write_secret(path: &Path, text: &str) -> Result<(), Failure> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| Failure::Usage(format!("cannot create `{}`: {e}", path.display())))?;
    f.write_all(text.as_bytes())
        .and_then(|()| f.sync_all())
        .map_err(|e| Failure::Usage(format!("cannot write `{}`: {e}", path.display())))
}

/// The record written beside a scheduled backup once it verified (`<file>.verified`, 0600).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerifiedRecord {
    /// The archive's file name in the directory.
    pub file: String,
    /// When its snapshot was taken (RFC 3339).
    pub created: String,
    /// The deployment.
    pub deployment: String,
    /// Its size in bytes.
    pub bytes: u64,
    /// SHA-256 (hex) of the file, as written and as read back from the disk.
    pub sha256: String,
    /// Tables and rows in it.
    pub tables: usize,
    /// Rows in all.
    pub rows: u64,
    /// Audit events verified in it.
    pub audit_events: u64,
}

const VERIFIED_SUFFIX: &str = ".verified";
const SCHEDULED_PREFIX: &str = "bulwark-";

/// The newest verified scheduled backup in `dir`: its snapshot time and record.
#[must_use]
pub fn latest_verified(dir: &Path) -> Option<(time::OffsetDateTime, VerifiedRecord)> {
    verified_records(dir).into_iter().next_back()
}

/// Every verified scheduled backup in `dir`, oldest first.
fn verified_records(dir: &Path) -> Vec<(time::OffsetDateTime, VerifiedRecord)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<_> = entries
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().ends_with(VERIFIED_SUFFIX))
        .filter_map(|e| std::fs::read(e.path()).ok())
        .filter_map(|bytes| serde_json::from_slice::<VerifiedRecord>(&bytes).ok())
        .filter_map(|r| {
            time::OffsetDateTime::parse(&r.created, &time::format_description::well_known::Rfc3339)
                .ok()
                .map(|t| (t, r))
        })
        .collect();
    out.sort_by_key(|(t, _)| *t);
    out
}

/// Writes one scheduled backup into `backup.dir`: encrypted to `backup.recipients`, verified
/// while written, read back from the disk and compared, recorded as verified; then deletes the
/// verified backups beyond `backup.keep`, oldest first.
///
/// # Errors
/// No directory configured, or the backup fails or does not verify.
pub async fn scheduled_once(config: &Config) -> Result<VerifiedRecord, Failure> {
    let dir = config
        .backup
        .dir
        .clone()
        .ok_or_else(|| Failure::Usage("backup.dir is not set".into()))?;
    create_private_dir(&dir)?;
    let recipients = recipients(
        &config.backup.recipients,
        config.backup.recipients_file.as_slice(),
    )?;
    let now = time::OffsetDateTime::now_utc();
    let stamp = format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
        now.year(),
        u8::from(now.month()),
        now.day(),
        now.hour(),
        now.minute(),
        now.second()
    );
    let name = format!("{SCHEDULED_PREFIX}{stamp}.age");
    let created = create(
        config,
        CreateOptions {
            out: dir.join(&name),
            recipients,
            include_seed: false,
            progress: None,
            verify: true,
        },
    )
    .await?;
    let on_disk = std::fs::read(&created.path).map_err(|e| {
        Failure::Backup(BackupError::Io(format!(
            "cannot read `{}` back: {e}",
            created.path.display()
        )))
    })?;
    if bulwark_crypto::sha256(&on_disk) != created.sha256 {
        return Err(Failure::Backup(BackupError::Tampered(format!(
            "`{}` read back from the disk differs from what was written",
            created.path.display()
        ))));
    }
    let verification = created.verification.as_ref();
    let record = VerifiedRecord {
        file: name.clone(),
        created: created.header.created.clone(),
        deployment: created.header.deployment.clone(),
        bytes: created.bytes,
        sha256: bulwark_crypto::to_hex(&created.sha256),
        tables: created.manifest.tables.len(),
        rows: created.manifest.tables.iter().map(|t| t.size).sum(),
        audit_events: verification.map_or(0, |v| v.logs.iter().map(|l| l.events).sum()),
    };
    let text = serde_json::to_vec_pretty(&record)
        .map_err(|e| Failure::Backup(BackupError::Io(e.to_string())))?;
    let marker = dir.join(format!("{name}{VERIFIED_SUFFIX}"));
    crate::startup::write_new_secret_file(&marker, &text).map_err(|e| {
        Failure::Backup(BackupError::Io(format!(
            "cannot write `{}`: {e}",
            marker.display()
        )))
    })?;
    prune(&dir, config.backup.keep);
    Ok(record)
}

fn create_private_dir(dir: &Path) -> Result<(), Failure> {
    use std::os::unix::fs::DirBuilderExt as _;
    if dir.is_dir() {
        return Ok(());
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| {
            Failure::Usage(format!(
                "backup.dir `{}`: cannot create it: {e}",
                dir.display()
            ))
        })
}

/// Deletes verified scheduled backups beyond the newest `keep`, and their records.
fn prune(dir: &Path, keep: u32) {
    let records = verified_records(dir);
    let excess = records.len().saturating_sub(keep as usize);
    for (_, record) in records.into_iter().take(excess) {
        // Only names this scheduler writes: a record naming anything else deletes nothing.
        if !record.file.starts_with(SCHEDULED_PREFIX)
            || record.file.contains('/')
            || !record.file.ends_with(".age")
        {
            continue;
        }
        let _ = std::fs::remove_file(dir.join(&record.file));
        let _ = std::fs::remove_file(dir.join(format!("{}{VERIFIED_SUFFIX}", record.file)));
        tracing::info!(file = %record.file, "deleted a scheduled backup beyond backup.keep");
    }
}

/// Writes a scheduled backup every `backup.schedule` (the first when the newest verified one in
/// `backup.dir` is that old) until `stop`. A failure is logged and retried after at most
/// ten minutes.
pub async fn run_schedule(
    config: std::sync::Arc<Config>,
    stop: impl std::future::Future<Output = ()> + Send,
) {
    let (Some(dir), Some(every)) = (config.backup.dir.clone(), config.backup.every()) else {
        return;
    };
    tokio::pin!(stop);
    let retry = every.min(std::time::Duration::from_secs(600));
    let mut wait = std::time::Duration::ZERO;
    loop {
        if wait.is_zero() {
            let now = time::OffsetDateTime::now_utc();
            wait = latest_verified(&dir)
                .map(|(at, _)| at + every - now)
                .and_then(|d| std::time::Duration::try_from(d).ok())
                .unwrap_or_default();
        }
        tokio::select! {
            () = &mut stop => return,
            () = tokio::time::sleep(wait) => {}
        }
        wait = match scheduled_once(&config).await {
            Ok(record) => {
                tracing::info!(
                    file = %record.file,
                    bytes = record.bytes,
                    rows = record.rows,
                    "scheduled backup written and verified"
                );
                every
            }
            Err(e) => {
                tracing::error!(error = %e, "scheduled backup failed");
                retry
            }
        };
    }
}
