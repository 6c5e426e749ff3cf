//! Transactional email. With no SMTP relay configured, each message is written as an RFC 5322
//! file to `<data_dir>/outbox/` (directory 0700, files 0600, written under a temporary name and
//! renamed, so a reader never sees half a message), for an operator or a local relay to pick up.

use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
use std::path::PathBuf;

use async_trait::async_trait;
use bulwark_core::ports::{MailFailed, Mailer};
use bulwark_types::Email;
use secrecy::{ExposeSecret as _, SecretString};

/// Writes messages to a private folder.
pub struct Outbox {
    dir: PathBuf,
    from: String,
}

impl Outbox {
    /// An outbox in `<data_dir>/outbox`, sending as `from`.
    #[must_use]
    pub fn new(data_dir: &std::path::Path, from: &str) -> Self {
        Self {
            dir: data_dir.join("outbox"),
            from: from.to_owned(),
        }
    }

    /// The folder messages are written to.
    #[must_use]
    pub fn dir(&self) -> &std::path::Path {
        &self.dir
    }
}

fn header_safe(s: &str) -> bool {
    !s.contains(['\r', '\n'])
}

fn write(dir: &std::path::Path, name: &str, message: &[u8]) -> std::io::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    let tmp = dir.join(format!(".{name}.tmp"));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)?;
    file.write_all(message)?;
    file.sync_all()?;
    std::fs::rename(&tmp, dir.join(name))
}

#[async_trait]
impl Mailer for Outbox {
    async fn send(&self, to: &Email, subject: &str, body: SecretString) -> Result<(), MailFailed> {
        if !header_safe(subject) || !header_safe(to.as_str()) {
            return Err(MailFailed("line break in a header".into()));
        }
        let now = time::OffsetDateTime::now_utc();
        let date = now
            .format(&time::format_description::well_known::Rfc2822)
            .map_err(|_| MailFailed("date".into()))?;
        let id = uuid::Uuid::now_v7();
        let message = zeroize::Zeroizing::new(format!(
            "From: {}\r\nTo: {}\r\nSubject: {subject}\r\nDate: {date}\r\nMessage-ID: <{id}@bulwark>\r\n\
             MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\
             Content-Transfer-Encoding: 8bit\r\n\r\n{}",
            self.from,
            to.as_str(),
            body.expose_secret().replace('\n', "\r\n")
        ));
        let dir = self.dir.clone();
        let name = format!("{}-{id}.eml", now.unix_timestamp());
        tokio::task::spawn_blocking(move || write(&dir, &name, message.as_bytes()))
            .await
            .map_err(|_| MailFailed("outbox writer stopped".into()))?
            .map_err(|e| {
                tracing::error!(error = %e, "cannot write to the mail outbox");
                MailFailed("outbox write".into())
            })
    }
}
