//! Logging: JSON lines (or text on a terminal), every line passed through field-level redaction
//! before it is written.
//!
//! Redaction happens in the writer, after formatting, so it covers every field of every event
//! and span whatever its shape: a secret logged as a nested struct (`?value`), as a JSON string
//! or as `key=value` text is replaced by `[REDACTED]` (`bulwark_core::redact`).

use std::io::{IsTerminal as _, Write};

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

use crate::config::{LogConfig, LogFormat};

/// Wraps a writer factory so every line written through it is redacted.
#[derive(Clone)]
pub struct Redacting<M>(pub M);

/// Buffers one formatted event and writes it redacted when dropped.
pub struct RedactingLine<W: Write> {
    buf: Vec<u8>,
    inner: W,
}

impl<'a, M: MakeWriter<'a>> MakeWriter<'a> for Redacting<M> {
    type Writer = RedactingLine<M::Writer>;
    fn make_writer(&'a self) -> Self::Writer {
        RedactingLine {
            buf: Vec::with_capacity(256),
            inner: self.0.make_writer(),
        }
    }
}

impl<W: Write> Write for RedactingLine<W> {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<W: Write> Drop for RedactingLine<W> {
    fn drop(&mut self) {
        let text = String::from_utf8_lossy(&self.buf);
        let mut out = String::with_capacity(text.len());
        for line in text.lines() {
            out.push_str(&bulwark_core::redact::redact_json_line(line));
            out.push('\n');
        }
        // A failed log write has nowhere to be reported; dropping it is the only option.
        let _ = self.inner.write_all(out.as_bytes());
        let _ = self.inner.flush();
    }
}

/// Builds the subscriber writing to `writer`.
pub fn subscriber<W>(config: &LogConfig, writer: W) -> Box<dyn tracing::Subscriber + Send + Sync>
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    let filter = EnvFilter::try_new(&config.level).unwrap_or_else(|_| EnvFilter::new("info"));
    let json = match config.format {
        LogFormat::Json => true,
        LogFormat::Text => false,
        LogFormat::Auto => !std::io::stdout().is_terminal(),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(Redacting(writer));
    if json {
        Box::new(
            builder
                .json()
                .flatten_event(true)
                .with_current_span(true)
                .with_span_list(false)
                .finish(),
        )
    } else {
        Box::new(builder.with_ansi(false).finish())
    }
}

/// Installs the process-wide subscriber writing to stdout. A second call is a no-op.
pub fn init(config: &LogConfig) {
    let _ = tracing::subscriber::set_global_default(subscriber(config, std::io::stdout));
}
