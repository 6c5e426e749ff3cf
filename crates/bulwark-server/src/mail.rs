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

/// Sends through an SMTP relay (STARTTLS, implicit TLS, or plain to loopback only).
pub struct Smtp {
    transport: lettre::AsyncSmtpTransport<lettre::Tokio1Executor>,
    from: lettre::message::Mailbox,
}

impl Smtp {
    /// A transport for `config`, sending as `from`. The CA file, if any, is read now.
    ///
    /// # Errors
    /// A message naming the config key that is wrong.
    pub fn new(config: &crate::config::SmtpConfig, from: &str) -> Result<Self, String> {
        use lettre::transport::smtp::authentication::Credentials;
        use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
        let from = from
            .parse()
            .map_err(|_| "mail.from: not an email address".to_owned())?;
        let tls_parameters = || {
            let mut builder = TlsParameters::builder(config.host.clone());
            if let Some(path) = &config.ca_file {
                let pem = std::fs::read(path).map_err(|e| {
                    format!("mail.smtp.ca_file: cannot read {}: {e}", path.display())
                })?;
                let cert = Certificate::from_pem(&pem)
                    .map_err(|_| "mail.smtp.ca_file: not a PEM certificate".to_owned())?;
                builder = builder.add_root_certificate(cert);
            }
            builder
                .build_rustls()
                .map_err(|e| format!("mail.smtp: TLS set-up failed: {e}"))
        };
        let tls = match config.security {
            crate::config::SmtpSecurity::Starttls => Tls::Required(tls_parameters()?),
            crate::config::SmtpSecurity::Tls => Tls::Wrapper(tls_parameters()?),
            crate::config::SmtpSecurity::None => Tls::None,
        };
        let mut builder =
            lettre::AsyncSmtpTransport::<lettre::Tokio1Executor>::builder_dangerous(&config.host)
                .port(config.port)
                .tls(tls)
                .timeout(Some(std::time::Duration::from_secs(config.timeout_secs)));
        if let Some(user) = &config.username {
            // The config loader refuses this too; a transport built another way must not either.
            if config.security == crate::config::SmtpSecurity::None && !config.allow_plaintext_auth
            {
                return Err(
                    "mail.smtp.security: `none` would send the credentials in clear; \
                            set mail.smtp.allow_plaintext_auth = true to allow it"
                        .to_owned(),
                );
            }
            let password = config
                .password
                .as_ref()
                .map(|p| p.expose_secret().to_owned())
                .unwrap_or_default();
            // PLAIN only (inside TLS, or in clear to a loopback relay only with
            // allow_plaintext_auth): one attempt, one answer, rather than retrying the same wrong
            // password with LOGIN.
            builder = builder
                .credentials(Credentials::new(user.clone(), password))
                .authentication(vec![
                    lettre::transport::smtp::authentication::Mechanism::Plain,
                ]);
        }
        Ok(Self {
            transport: builder.build(),
            from,
        })
    }
}

#[async_trait]
impl Mailer for Smtp {
    async fn send(&self, to: &Email, subject: &str, body: SecretString) -> Result<(), MailFailed> {
        use lettre::AsyncTransport as _;
        if !header_safe(subject) {
            return Err(MailFailed("line break in a header".into()));
        }
        let to: lettre::message::Mailbox = to
            .as_str()
            .parse()
            .map_err(|_| MailFailed("recipient address".into()))?;
        let message = lettre::Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(subject)
            .header(lettre::message::header::ContentType::TEXT_PLAIN)
            .body(body.expose_secret().to_owned())
            .map_err(|_| MailFailed("message".into()))?;
        self.transport.send(message).await.map(drop).map_err(|e| {
            // lettre's error names the step and the server's status; it never holds the body or
            // the password.
            let step = if e.is_permanent() {
                "refused by the relay"
            } else if e.is_transient() {
                "relay busy"
            } else if e.is_timeout() {
                "timed out"
            } else if e.is_tls() {
                "TLS"
            } else {
                "connection"
            };
            let code = e.status().map(|c| c.to_string()).unwrap_or_default();
            tracing::error!(step, code = %code, "email not sent");
            MailFailed(format!("{step} {code}").trim().to_owned())
        })
    }
}
