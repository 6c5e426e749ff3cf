//! The archive's lines (what `age` encrypts), written by [`Writer`] and read and checked by
//! [`Reader`].
//!
//! ```text
//! {"bulwark_backup":1,"engine":…,"schema_version":…,"deployment":…,"audit":[…],…}   header
//! {"file":"audit-checkpoints.jsonl","data":"<base64>"}   zero or more chunks per file
//! {"file_end":"audit-checkpoints.jsonl","size":N,"sha256":"<hex>"}
//! {"table":"users","columns":[["id","uuid"],…]}          every table, in catalog order
//! [<value>,…]                                             its rows, in key order
//! {"table_end":"users","rows":N,"sha256":"<hex>"}
//! {"seed":"bulwark-seed-v1:…"}                            only with --include-seed
//! {"manifest":{"header_sha256":…,"tables":[…],"files":[…]}}
//! {"signature":"<base64 Ed25519>"}                        by the deployment key, over the line above
//! ```
//!
//! A table's SHA-256 is over its row lines, each with its newline. The manifest binds the
//! header (its SHA-256) and every table and file; the signature binds the manifest line's exact
//! bytes. An archive that ends anywhere before its signature line is incomplete, and one with
//! anything after it is refused.

use std::io::{BufRead, Write};

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::{BackupError, RowSink, TABLES, Table, Value, encode_row};

/// The archive format this code writes and reads.
pub const FORMAT: u32 = 1;
/// The longest line a reader accepts.
pub const MAX_LINE_BYTES: usize = 16 * 1024 * 1024;
/// What the manifest signature signs before the manifest line.
const SIGNING_CONTEXT: &[u8] = b"bulwark-backup-manifest/v1\n";
/// Bytes of a file per chunk line.
const FILE_CHUNK: usize = 48 * 1024;

/// The archive's first line: what it is and what it claims, bound by the manifest's
/// `header_sha256`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Header {
    /// [`FORMAT`].
    pub bulwark_backup: u32,
    /// The engine it was read from.
    pub engine: String,
    /// The newest migration of the store it was read from.
    pub schema_version: i64,
    /// When the snapshot was taken (RFC 3339).
    pub created: String,
    /// The version of the tool that wrote it.
    pub tool: String,
    /// The deployment id (`dep_…`), the fingerprint of `deployment_key`.
    pub deployment: String,
    /// The deployment's public key (standard base64 Ed25519) that signs the manifest.
    pub deployment_key: String,
    /// The audit checkpoint verifier key (`name+hash+key`).
    pub audit_key: String,
    /// Whether a `seed` line is in the archive.
    pub seed_included: bool,
    /// Every audit log's head in the snapshot, each with a checkpoint signed when it was taken.
    pub audit: Vec<LogHead>,
}

/// An audit log's head in the snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogHead {
    /// The log's name (`system` or the org id).
    pub log: String,
    /// The checkpoint origin.
    pub origin: String,
    /// Events in the log.
    pub size: u64,
    /// The signed note of a checkpoint of exactly `size` events.
    pub checkpoint: String,
}

/// The digest and size of one table or file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sum {
    /// Table or file name.
    pub name: String,
    /// Rows (a table) or bytes (a file).
    pub size: u64,
    /// Lowercase hex SHA-256.
    pub sha256: String,
}

/// The manifest: everything the archive holds, signed as one line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// SHA-256 (hex) of the header line.
    pub header_sha256: String,
    /// Every table, in catalog order.
    pub tables: Vec<Sum>,
    /// Every file, in archive order.
    pub files: Vec<Sum>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct TableStart {
    table: String,
    columns: Vec<(String, String)>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct TableEnd {
    table_end: String,
    rows: u64,
    sha256: String,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileChunk {
    file: String,
    data: String,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileEnd {
    file_end: String,
    size: u64,
    sha256: String,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SeedLine {
    seed: String,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ManifestLine {
    manifest: Manifest,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SignatureLine {
    signature: String,
}

fn hex(digest: [u8; 32]) -> String {
    bulwark_crypto::to_hex(&digest)
}

fn io(e: &std::io::Error) -> BackupError {
    BackupError::Io(format!("cannot write the archive: {e}"))
}

/// The deployment id of a deployment public key: `dep_` and the first 12 bytes of its SHA-256.
#[must_use]
pub fn deployment_id(public_key: &[u8; 32]) -> String {
    let digest = bulwark_crypto::sha256(public_key);
    format!("dep_{}", bulwark_crypto::to_hex(&digest[..12]))
}

/// Writes an archive, summing each table and file as it goes.
pub struct Writer<W: Write> {
    out: W,
    header_sha256: String,
    tables: Vec<Sum>,
    files: Vec<Sum>,
    current: Option<(&'static Table, bulwark_crypto::Sha256, u64)>,
    line: Vec<u8>,
    next_table: usize,
}

impl<W: Write> Writer<W> {
    /// Starts an archive with its header.
    ///
    /// # Errors
    /// The write failed.
    pub fn new(mut out: W, header: &Header) -> Result<Self, BackupError> {
        let line = serde_json::to_vec(header).map_err(|e| BackupError::Io(e.to_string()))?;
        out.write_all(&line).map_err(|e| io(&e))?;
        out.write_all(b"\n").map_err(|e| io(&e))?;
        Ok(Self {
            out,
            header_sha256: hex(bulwark_crypto::sha256(&line)),
            tables: Vec::new(),
            files: Vec::new(),
            current: None,
            line: Vec::new(),
            next_table: 0,
        })
    }

    fn write_json(&mut self, value: &impl Serialize) -> Result<(), BackupError> {
        serde_json::to_writer(&mut self.out, value).map_err(|e| BackupError::Io(e.to_string()))?;
        self.out.write_all(b"\n").map_err(|e| io(&e))
    }

    /// Adds a file (before the tables).
    ///
    /// # Errors
    /// Tables already begun, or the write failed.
    pub fn file(&mut self, name: &str, data: &[u8]) -> Result<(), BackupError> {
        if self.next_table > 0 {
            return Err(BackupError::Io("files come before the tables".into()));
        }
        for chunk in data.chunks(FILE_CHUNK) {
            self.write_json(&FileChunk {
                file: name.into(),
                data: base64::engine::general_purpose::STANDARD.encode(chunk),
            })?;
        }
        let sum = Sum {
            name: name.into(),
            size: data.len() as u64,
            sha256: hex(bulwark_crypto::sha256(data)),
        };
        self.write_json(&FileEnd {
            file_end: sum.name.clone(),
            size: sum.size,
            sha256: sum.sha256.clone(),
        })?;
        self.files.push(sum);
        Ok(())
    }

    /// Begins the next table of the catalog; returns it.
    ///
    /// # Errors
    /// A table still open, no table left, or the write failed.
    pub fn begin_table(&mut self) -> Result<Option<&'static Table>, BackupError> {
        if self.current.is_some() {
            return Err(BackupError::Io("a table is still open".into()));
        }
        let Some(table) = TABLES.get(self.next_table) else {
            return Ok(None);
        };
        self.next_table += 1;
        self.write_json(&TableStart {
            table: table.name.into(),
            columns: table
                .columns
                .iter()
                .map(|(c, k)| ((*c).to_owned(), k.as_str().to_owned()))
                .collect(),
        })?;
        self.current = Some((table, bulwark_crypto::Sha256::default(), 0));
        Ok(Some(table))
    }

    /// Ends the open table.
    ///
    /// # Errors
    /// No table open, or the write failed.
    pub fn end_table(&mut self) -> Result<Sum, BackupError> {
        let Some((table, sha, rows)) = self.current.take() else {
            return Err(BackupError::Io("no table is open".into()));
        };
        let sum = Sum {
            name: table.name.into(),
            size: rows,
            sha256: hex(sha.finish()),
        };
        self.write_json(&TableEnd {
            table_end: sum.name.clone(),
            rows,
            sha256: sum.sha256.clone(),
        })?;
        self.tables.push(sum.clone());
        Ok(sum)
    }

    /// Adds the workspace seed (after the tables).
    ///
    /// # Errors
    /// The write failed.
    pub fn seed(&mut self, seed_file: &str) -> Result<(), BackupError> {
        let line = Zeroizing::new(
            serde_json::to_vec(&SeedLine {
                seed: seed_file.trim().to_owned(),
            })
            .map_err(|e| BackupError::Io(e.to_string()))?,
        );
        self.out.write_all(&line).map_err(|e| io(&e))?;
        self.out.write_all(b"\n").map_err(|e| io(&e))
    }

    /// Writes the manifest and its signature by `sign` (the deployment key); returns the output.
    ///
    /// # Errors
    /// Tables missing or open, or the write failed.
    pub fn finish(
        mut self,
        sign: impl FnOnce(&[u8]) -> [u8; 64],
    ) -> Result<(W, Manifest), BackupError> {
        if self.current.is_some() || self.next_table != TABLES.len() {
            return Err(BackupError::Io("not every table was written".into()));
        }
        let manifest = Manifest {
            header_sha256: self.header_sha256.clone(),
            tables: std::mem::take(&mut self.tables),
            files: std::mem::take(&mut self.files),
        };
        let line = serde_json::to_vec(&ManifestLine {
            manifest: manifest.clone(),
        })
        .map_err(|e| BackupError::Io(e.to_string()))?;
        self.out.write_all(&line).map_err(|e| io(&e))?;
        self.out.write_all(b"\n").map_err(|e| io(&e))?;
        let mut signed = SIGNING_CONTEXT.to_vec();
        signed.extend_from_slice(&line);
        let signature = base64::engine::general_purpose::STANDARD.encode(sign(&signed));
        self.write_json(&SignatureLine { signature })?;
        self.out.flush().map_err(|e| io(&e))?;
        Ok((self.out, manifest))
    }
}

impl<W: Write + Send> RowSink for Writer<W> {
    fn row(&mut self, table: &'static Table, values: &[Value]) -> Result<(), BackupError> {
        let Some((open, sha, rows)) = self.current.as_mut() else {
            return Err(BackupError::Io("a row outside a table".into()));
        };
        if !std::ptr::eq(*open, table) {
            return Err(BackupError::Io(format!(
                "a row of `{}` inside `{}`",
                table.name, open.name
            )));
        }
        self.line.clear();
        encode_row(table, values, &mut self.line)?;
        self.line.push(b'\n');
        sha.update(&self.line);
        *rows += 1;
        self.out.write_all(&self.line).map_err(|e| io(&e))
    }
}

/// What a reader hands on, in archive order.
pub enum Item {
    /// A whole file (files are small: the published checkpoints).
    File {
        /// Its name.
        name: String,
        /// Its bytes.
        data: Vec<u8>,
    },
    /// A table begins.
    TableStart(&'static Table),
    /// One row of the open table: its line (without the newline), already summed.
    Row(&'static Table, Vec<u8>),
    /// The open table ended, its count and digest matching its end line.
    TableEnd(&'static Table),
    /// The seed file's content.
    Seed(Zeroizing<String>),
}

/// What a verified archive's last lines established.
#[derive(Debug, Clone)]
pub struct Verified {
    /// The manifest, its signature checked by the header's deployment key.
    pub manifest: Manifest,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    Files,
    Tables,
    Seed,
    Manifest,
    Done,
}

/// Reads an archive line by line, checking its order, each table's and file's count and digest,
/// and at the end the manifest against all of them and the signature against the header's key.
pub struct Reader<R: BufRead> {
    input: R,
    line_no: u64,
    buf: Vec<u8>,
    header: Header,
    header_sha256: String,
    stage: Stage,
    file: Option<(String, Vec<u8>)>,
    files: Vec<Sum>,
    table: Option<(&'static Table, bulwark_crypto::Sha256, u64)>,
    next_table: usize,
    tables: Vec<Sum>,
    pending: Option<(Manifest, Vec<u8>)>,
    verified: Option<Verified>,
}

impl<R: BufRead> Reader<R> {
    /// Reads the header.
    ///
    /// # Errors
    /// An empty archive, a header that does not parse, another format or an unknown table set.
    pub fn new(input: R) -> Result<Self, BackupError> {
        let mut reader = Self {
            input,
            line_no: 0,
            buf: Vec::new(),
            header: Header {
                bulwark_backup: 0,
                engine: String::new(),
                schema_version: 0,
                created: String::new(),
                tool: String::new(),
                deployment: String::new(),
                deployment_key: String::new(),
                audit_key: String::new(),
                seed_included: false,
                audit: Vec::new(),
            },
            header_sha256: String::new(),
            stage: Stage::Files,
            file: None,
            files: Vec::new(),
            table: None,
            next_table: 0,
            tables: Vec::new(),
            pending: None,
            verified: None,
        };
        if !reader.read_line()? {
            return Err(BackupError::Tampered(
                "the archive is empty: not a Bulwark backup".into(),
            ));
        }
        let first = std::mem::take(&mut reader.buf);
        let probe: serde_json::Value = serde_json::from_slice(&first)
            .map_err(|_| reader.format("not a Bulwark backup (the first line is not JSON)"))?;
        match probe
            .get("bulwark_backup")
            .and_then(serde_json::Value::as_u64)
        {
            Some(v) if v == u64::from(FORMAT) => {}
            Some(v) => {
                return Err(BackupError::Refused(format!(
                    "archive format {v}: this release reads format {FORMAT}"
                )));
            }
            None => return Err(reader.format("not a Bulwark backup header")),
        }
        reader.header = serde_json::from_value(probe)
            .map_err(|e| reader.format(&format!("a malformed header: {e}")))?;
        reader.header_sha256 = hex(bulwark_crypto::sha256(&first));
        Ok(reader)
    }

    /// The header (checked against the manifest only once [`Reader::verified`] is set).
    #[must_use]
    pub const fn header(&self) -> &Header {
        &self.header
    }

    /// The manifest, once the whole archive was read and verified.
    #[must_use]
    pub const fn verified(&self) -> Option<&Verified> {
        self.verified.as_ref()
    }

    fn format(&self, message: &str) -> BackupError {
        BackupError::Format {
            line: self.line_no,
            message: message.into(),
        }
    }

    /// Reads the next line into `buf` (without its newline); false at the end.
    fn read_line(&mut self) -> Result<bool, BackupError> {
        self.buf.clear();
        let limit = u64::try_from(MAX_LINE_BYTES).unwrap_or(u64::MAX) + 1;
        let n = std::io::Read::take(&mut self.input, limit)
            .read_until(b'\n', &mut self.buf)
            .map_err(|e| match e.kind() {
                // What a decrypting reader says of a changed or cut ciphertext.
                std::io::ErrorKind::InvalidData | std::io::ErrorKind::UnexpectedEof => {
                    BackupError::Tampered(format!(
                        "the archive cannot be read past line {}: {e} (it was changed or cut off)",
                        self.line_no
                    ))
                }
                _ => BackupError::Io(format!("cannot read the archive: {e}")),
            })?;
        if n == 0 {
            return Ok(false);
        }
        self.line_no += 1;
        if self.buf.last() != Some(&b'\n') {
            if self.buf.len() > MAX_LINE_BYTES {
                return Err(self.format("a line longer than the format allows"));
            }
            return Err(BackupError::Tampered(format!(
                "the archive is cut off in line {} (incomplete: a backup interrupted, or truncated)",
                self.line_no
            )));
        }
        self.buf.pop();
        Ok(true)
    }

    fn parse<T: serde::de::DeserializeOwned>(&self, what: &str) -> Result<T, BackupError> {
        serde_json::from_slice(&self.buf).map_err(|_| self.format(&format!("a malformed {what}")))
    }

    /// The next item; `None` once the signature line was read and everything verified.
    ///
    /// # Errors
    /// The first problem, naming the line, table or file.
    pub fn next_item(&mut self) -> Result<Option<Item>, BackupError> {
        loop {
            if self.stage == Stage::Done {
                if self.read_line()? {
                    return Err(self.format("data after the signature"));
                }
                return Ok(None);
            }
            if !self.read_line()? {
                return Err(BackupError::Tampered(
                    "the archive ends before its signed manifest (incomplete: a backup interrupted, or truncated)"
                        .into(),
                ));
            }
            if let Some((table, sha, rows)) = self.table.as_mut()
                && self.buf.first() == Some(&b'[')
            {
                sha.update(&self.buf);
                sha.update(b"\n");
                *rows += 1;
                let line = std::mem::take(&mut self.buf);
                return Ok(Some(Item::Row(table, line)));
            }
            if let Some(item) = self.structural()? {
                return Ok(Some(item));
            }
        }
    }

    fn structural(&mut self) -> Result<Option<Item>, BackupError> {
        let key = self.first_key();
        match key.as_deref() {
            Some("file") if self.stage == Stage::Files => {
                let chunk: FileChunk = self.parse("file chunk")?;
                let data = base64::engine::general_purpose::STANDARD
                    .decode(&chunk.data)
                    .map_err(|_| self.format("a file chunk that is not base64"))?;
                match &mut self.file {
                    Some((name, bytes)) if *name == chunk.file => bytes.extend_from_slice(&data),
                    Some((name, _)) => {
                        let message = format!("file `{}` begins inside file `{name}`", chunk.file);
                        return Err(self.format(&message));
                    }
                    None => self.file = Some((chunk.file, data)),
                }
                Ok(None)
            }
            Some("file_end") if self.stage == Stage::Files => {
                let end: FileEnd = self.parse("file end")?;
                let (name, data) = match self.file.take() {
                    Some((name, data)) if name == end.file_end => (name, data),
                    None if end.file_end.is_empty() => {
                        return Err(self.format("a file end without a name"));
                    }
                    None => (end.file_end.clone(), Vec::new()),
                    Some((name, _)) => {
                        let message = format!("file `{name}` ends as `{}`", end.file_end);
                        return Err(self.format(&message));
                    }
                };
                let sum = Sum {
                    name: name.clone(),
                    size: data.len() as u64,
                    sha256: hex(bulwark_crypto::sha256(&data)),
                };
                if sum.size != end.size || sum.sha256 != end.sha256 {
                    return Err(BackupError::Tampered(format!(
                        "file `{name}`: its content does not match its size and SHA-256 (changed)"
                    )));
                }
                self.files.push(sum);
                Ok(Some(Item::File { name, data }))
            }
            Some("table") if matches!(self.stage, Stage::Files | Stage::Tables) => {
                if let Some((name, _)) = &self.file {
                    let message = format!("file `{name}` has no end");
                    return Err(self.format(&message));
                }
                self.stage = Stage::Tables;
                let start: TableStart = self.parse("table header")?;
                let Some(expected) = TABLES.get(self.next_table) else {
                    let message = format!("table `{}` after the last table", start.table);
                    return Err(self.format(&message));
                };
                if start.table != expected.name {
                    return Err(BackupError::Tampered(format!(
                        "table `{}` is missing (line {} holds `{}` where it belongs): tables were dropped or reordered",
                        expected.name, self.line_no, start.table
                    )));
                }
                let columns: Vec<(String, String)> = expected
                    .columns
                    .iter()
                    .map(|(c, k)| ((*c).to_owned(), k.as_str().to_owned()))
                    .collect();
                if start.columns != columns {
                    return Err(BackupError::Refused(format!(
                        "table `{}` has other columns than this release's schema",
                        expected.name
                    )));
                }
                self.next_table += 1;
                self.table = Some((expected, bulwark_crypto::Sha256::default(), 0));
                Ok(Some(Item::TableStart(expected)))
            }
            Some("table_end") if self.table.is_some() => {
                let end: TableEnd = self.parse("table end")?;
                let Some((table, sha, rows)) = self.table.take() else {
                    return Ok(None);
                };
                if end.table_end != table.name {
                    let message = format!("table `{}` ends as `{}`", table.name, end.table_end);
                    return Err(self.format(&message));
                }
                let sha256 = hex(sha.finish());
                if rows != end.rows || sha256 != end.sha256 {
                    return Err(BackupError::Tampered(format!(
                        "table `{}`: {rows} rows whose SHA-256 does not match the table's end line ({} rows): rows were changed, dropped or added",
                        table.name, end.rows
                    )));
                }
                self.tables.push(Sum {
                    name: table.name.into(),
                    size: rows,
                    sha256,
                });
                Ok(Some(Item::TableEnd(table)))
            }
            Some("seed") if self.stage == Stage::Tables && self.table.is_none() => {
                if !self.header.seed_included {
                    return Err(BackupError::Tampered(
                        "a seed the header does not announce".into(),
                    ));
                }
                let seed: SeedLine = self.parse("seed line")?;
                self.buf.iter_mut().for_each(|b| *b = 0);
                self.stage = Stage::Seed;
                Ok(Some(Item::Seed(Zeroizing::new(seed.seed))))
            }
            Some("manifest") if self.table.is_none() && self.stage != Stage::Manifest => {
                if self.next_table != TABLES.len() {
                    let missing = TABLES.get(self.next_table).map_or("?", |t| t.name);
                    return Err(BackupError::Tampered(format!(
                        "table `{missing}` is missing: the manifest comes before it"
                    )));
                }
                if self.header.seed_included && self.stage != Stage::Seed {
                    return Err(BackupError::Tampered(
                        "the header announces a seed the archive does not hold".into(),
                    ));
                }
                let parsed: ManifestLine = self.parse("manifest")?;
                self.check_manifest(&parsed.manifest)?;
                let mut signed = SIGNING_CONTEXT.to_vec();
                signed.extend_from_slice(&self.buf);
                self.stage = Stage::Manifest;
                self.verified = None;
                self.pending = Some((parsed.manifest, signed));
                Ok(None)
            }
            Some("signature") if self.stage == Stage::Manifest => {
                let line: SignatureLine = self.parse("signature line")?;
                let Some((manifest, signed)) = self.pending.take() else {
                    return Ok(None);
                };
                self.check_signature(&line.signature, &signed)?;
                self.stage = Stage::Done;
                self.verified = Some(Verified { manifest });
                Ok(None)
            }
            Some(other) => {
                let message = format!("a `{other}` line where it does not belong");
                Err(self.format(&message))
            }
            None => Err(self.format("not a line of the format")),
        }
    }

    /// The first key of the line's JSON object, if it is one.
    fn first_key(&self) -> Option<String> {
        let text = std::str::from_utf8(&self.buf).ok()?;
        let rest = text.strip_prefix("{\"")?;
        let end = rest.find('"')?;
        Some(rest[..end].to_owned())
    }

    fn check_manifest(&self, manifest: &Manifest) -> Result<(), BackupError> {
        if manifest.header_sha256 != self.header_sha256 {
            return Err(BackupError::Tampered(
                "the header does not match the manifest (the header was changed, or the manifest is another backup's)"
                    .into(),
            ));
        }
        for (i, table) in TABLES.iter().enumerate() {
            let ours = self.tables.get(i);
            let theirs = manifest.tables.get(i);
            if ours != theirs {
                return Err(BackupError::Tampered(format!(
                    "table `{}` does not match the manifest (rows {}, manifest {}): rows were changed, or the manifest is another backup's",
                    table.name,
                    ours.map_or(0, |s| s.size),
                    theirs.map_or_else(|| "none".into(), |s| s.size.to_string()),
                )));
            }
        }
        if manifest.tables.len() != TABLES.len() {
            return Err(BackupError::Tampered(
                "the manifest lists tables the archive does not hold".into(),
            ));
        }
        if manifest.files != self.files {
            return Err(BackupError::Tampered(
                "the files do not match the manifest (a file was changed, dropped or added)".into(),
            ));
        }
        Ok(())
    }

    fn check_signature(&self, signature: &str, signed: &[u8]) -> Result<(), BackupError> {
        let key: [u8; 32] = base64::engine::general_purpose::STANDARD
            .decode(&self.header.deployment_key)
            .ok()
            .and_then(|k| k.try_into().ok())
            .ok_or_else(|| {
                BackupError::Tampered("the header's deployment key is malformed".into())
            })?;
        if deployment_id(&key) != self.header.deployment {
            return Err(BackupError::Tampered(format!(
                "the header's deployment key is not deployment {}'s",
                self.header.deployment
            )));
        }
        let signature = base64::engine::general_purpose::STANDARD
            .decode(signature)
            .map_err(|_| BackupError::Tampered("the manifest signature is not base64".into()))?;
        if !bulwark_crypto::verify_ed25519(&key, signed, &signature) {
            return Err(BackupError::Tampered(format!(
                "the manifest signature does not verify with deployment {}'s key (the manifest was changed or signed by another key)",
                self.header.deployment
            )));
        }
        Ok(())
    }
}
