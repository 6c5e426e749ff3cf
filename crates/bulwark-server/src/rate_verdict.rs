//! The rate-limit state of a request's API key, for the `RateLimit-*` response headers.
//!
//! The API-key extractor takes the key's and its org's tokens and notes the verdict here
//! ([`note`]); the decision guard (`decide::guard`) opens the request's [`scope`] and, once the
//! handler has answered, writes the headers ([`headers`]). Outside a scope (a spawned task, a
//! direct call) a note goes nowhere.

use std::cell::Cell;
use std::future::Future;

use axum::response::Response;
use bulwark_core::rate::Verdict;

tokio::task_local! {
    static RATE: Cell<Option<Verdict>>;
}

/// Notes the rate-limit state of this request's API key, for the `RateLimit-*` headers.
pub fn note(verdict: Verdict) {
    let _ = RATE.try_with(|r| r.set(Some(verdict)));
}

/// Runs `request` in a fresh scope for [`note`], and returns what was noted with its output.
pub(crate) async fn scope<F: Future>(request: F) -> (Option<Verdict>, F::Output) {
    RATE.scope(Cell::new(None), async {
        let output = request.await;
        (RATE.with(Cell::get), output)
    })
    .await
}

/// Writes the `RateLimit-*` headers of `verdict` to `response`.
pub(crate) fn headers(response: &mut Response, verdict: Verdict) {
    let headers = response.headers_mut();
    for (name, value) in [
        ("ratelimit-limit", verdict.limit),
        ("ratelimit-remaining", verdict.remaining),
        ("ratelimit-reset", verdict.reset_secs),
    ] {
        headers.insert(name, axum::http::HeaderValue::from(value));
    }
}
