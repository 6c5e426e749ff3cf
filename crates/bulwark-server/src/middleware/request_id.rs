//! The request id: a well-formed incoming `x-request-id` is kept, anything else is replaced by a
//! UUIDv7. It is available to the whole request through a task-local (so error bodies carry it
//! without threading it through every function) and as a request extension.

use bulwark_types::RequestId;

tokio::task_local! {
    static REQUEST_ID: RequestId;
}

/// The header carrying the id in both directions.
pub const HEADER: &str = "x-request-id";

/// Runs `fut` with `id` as the current request id.
pub async fn scope<F: std::future::Future>(id: RequestId, fut: F) -> F::Output {
    REQUEST_ID.scope(id, fut).await
}

/// Runs `f` with `id` as the current request id (outside any request task).
pub fn sync_scope<R>(id: RequestId, f: impl FnOnce() -> R) -> R {
    REQUEST_ID.sync_scope(id, f)
}

/// The id of the request being handled, if any.
#[must_use]
pub fn current_request_id() -> Option<RequestId> {
    REQUEST_ID.try_with(Clone::clone).ok()
}

/// Keeps the caller's id when well formed, else makes a new one.
#[must_use]
pub fn from_header(value: Option<&axum::http::HeaderValue>) -> RequestId {
    value
        .and_then(|v| v.to_str().ok())
        .and_then(RequestId::parse)
        .unwrap_or_else(RequestId::generate)
}
