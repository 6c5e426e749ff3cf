//! `POST /csp-report`: where browsers report violations of the console's Content-Security-Policy
//! (`report-uri`; no `report-to`, see `CONSOLE_CSP`). A violation means a page tried
//! to run or load something the policy forbids (an injected script, an inline style): each one is
//! logged as a warning and counted, and the browser tests fail when any arrive. Reports are
//! limited per client address (the sign-in limiter) and by size; their text is cut short.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;

use crate::error::ApiError;
use crate::extract::AuditContext;
use crate::state::AppState;

/// Longest report kept.
const MAX_REPORT: usize = 8 * 1024;
/// Reports kept for inspection.
const KEPT: usize = 20;

/// The reports received.
#[derive(Default)]
pub struct Reports {
    count: AtomicU64,
    last: Mutex<Vec<String>>,
}

impl Reports {
    /// How many arrived since start.
    #[must_use]
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// The latest few, as received (cut at 8 KiB).
    #[must_use]
    pub fn latest(&self) -> Vec<String> {
        self.last
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    fn note(&self, text: String) {
        self.count.fetch_add(1, Ordering::Relaxed);
        let mut last = self
            .last
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if last.len() >= KEPT {
            last.remove(0);
        }
        last.push(text);
    }
}

/// `POST /csp-report`.
pub async fn report(
    State(state): State<AppState>,
    AuditContext(context): AuditContext,
    body: Bytes,
) -> Result<StatusCode, ApiError> {
    state.limiter.check(context.source_ip.as_deref())?;
    let cut = body.get(..MAX_REPORT).unwrap_or(&body);
    let text = String::from_utf8_lossy(cut).into_owned();
    tracing::warn!(report = %text, "content security policy violation reported");
    state.csp_reports.note(text);
    Ok(StatusCode::NO_CONTENT)
}
