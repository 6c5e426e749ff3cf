//! Captures what the server logs, through the same redacting writer production uses.

use std::io::Write;
use std::sync::{Arc, Mutex};

use bulwark_server::config::{LogConfig, LogFormat};
use tracing_subscriber::fmt::MakeWriter;

/// The captured output.
#[derive(Clone, Default)]
pub struct Captured(Arc<Mutex<Vec<u8>>>);

impl Captured {
    /// Everything written so far.
    #[must_use]
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

/// A writer appending to the capture.
pub struct CaptureWriter(Arc<Mutex<Vec<u8>>>);

impl Write for CaptureWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(data);
        Ok(data.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Captured {
    type Writer = CaptureWriter;
    fn make_writer(&'a self) -> CaptureWriter {
        CaptureWriter(self.0.clone())
    }
}

/// Installs a process-wide subscriber (JSON or text) writing into the returned capture. Each
/// nextest test runs in its own process, so this does not leak between tests.
#[must_use]
pub fn capture(format: LogFormat, level: &str) -> Captured {
    let captured = Captured::default();
    let config = LogConfig {
        format,
        level: level.into(),
    };
    let sub = bulwark_server::logging::subscriber(&config, captured.clone());
    tracing::subscriber::set_global_default(sub)
        .expect("a subscriber is already installed in this process");
    captured
}
