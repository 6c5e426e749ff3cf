//! Request id, tracing span, access log, uniform error bodies and security headers.
//!
//! Every log line of a request carries its `request_id` (the span field). Probes stay out of the
//! access log. The access line has the path and query string as sent; secrets in them (a key
//! pasted where an id belongs, a token in a query) are redacted by shape when the line is
//! written (`crate::logging`). A response of 400 or more that is not already a problem (a framework 404/405, a
//! 408 from the timeout, a 413 from the body limit) is replaced by a problem body with a stable
//! code, so clients see one error format whatever produced the error.

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument as _;

use crate::error::{LoggedCause, PROBLEM_JSON, problem_response};
use crate::middleware::headers::{self, TlsSeen};
use crate::middleware::request_id;

const QUIET_PATHS: &[&str] = &["/healthz", "/readyz"];

/// The observing middleware.
pub async fn observe(State(tls): State<TlsSeen>, req: Request, next: Next) -> Response {
    let id = request_id::from_header(req.headers().get(request_id::HEADER));
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let query = req.uri().query().map(str::to_owned);
    let console = crate::console::errors::is_console_path(&path);
    let span = tracing::info_span!("request", request_id = %id);
    let started = Instant::now();
    let id_for_scope = id.clone();
    let method_for_scope = method.clone();
    let path_for_scope = path.clone();
    let target = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_default();
    let (mut res, route) = request_id::scope(id_for_scope, async move {
        let res = next.run(req).await;
        let route = res.extensions().get::<MatchedPath>().cloned();
        let res = if path_for_scope.starts_with("/scim/") {
            crate::scim::ensure_scim_error(res)
        } else {
            ensure_problem(res)
        };
        let res = if console {
            crate::console::errors::to_page(res, &method_for_scope, &target).await
        } else {
            res
        };
        (res, route)
    })
    .instrument(span.clone())
    .await;
    headers::apply(res.headers_mut(), tls, console);
    if let Ok(v) = HeaderValue::from_str(id.as_str()) {
        res.headers_mut().insert(request_id::HEADER, v);
    }
    let status = res.status().as_u16();
    let elapsed = started.elapsed().as_secs_f64();
    record(&method, route.as_ref(), status, elapsed);
    let latency_ms = elapsed * 1000.0;
    span.in_scope(|| {
        if let Some(LoggedCause(cause)) = res.extensions().get::<LoggedCause>() {
            tracing::error!(%method, %path, status, cause = %cause, "request failed");
        }
        if !QUIET_PATHS.contains(&path.as_str()) {
            tracing::info!(%method, %path, query = query.as_deref(), status, latency_ms, "request");
        }
    });
    res
}

/// Copies the matched route template into the response, for [`observe`] (which runs before
/// routing, so the request it holds has none). A route layer: runs only for matched routes.
pub async fn matched_route(req: Request, next: Next) -> Response {
    let route = req.extensions().get::<MatchedPath>().cloned();
    let mut res = next.run(req).await;
    if let Some(route) = route {
        res.extensions_mut().insert(route);
    }
    res
}

/// Counts the request by method, route template (`unmatched` when no route matched: never the
/// raw path) and status class, and its latency.
fn record(method: &Method, route: Option<&MatchedPath>, status: u16, seconds: f64) {
    let method = match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    };
    let route = route.map_or("unmatched", MatchedPath::as_str);
    let class = match status {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    };
    let m = bulwark_core::metrics::metrics();
    m.http_requests.inc(&[method, route, class]);
    m.http_duration.observe(&[method, route], seconds);
}

fn ensure_problem(res: Response) -> Response {
    let status = res.status();
    // Problems, JSON bodies a handler chose on purpose (the readiness report) and the console's
    // own pages (a sign-in form answering 401) stay as they are.
    let is_json = res.headers().get(header::CONTENT_TYPE).is_some_and(|v| {
        v.as_bytes().starts_with(PROBLEM_JSON.as_bytes())
            || v.as_bytes().starts_with(b"application/json")
            || v.as_bytes().starts_with(b"text/html")
    });
    if status.as_u16() < 400 || is_json {
        return res;
    }
    let (code, detail) = generic_problem(status);
    let mut fresh = problem_response(status, code, Some(detail.into()), Vec::new());
    // Keep headers the framework set for a reason (e.g. `Allow` on 405).
    for (name, value) in res.headers() {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            fresh.headers_mut().insert(name.clone(), value.clone());
        }
    }
    fresh
}

/// The stable code and detail of an error status that carries no problem of its own: a
/// framework error here, or an answer to a request the HTTP parser refused
/// (`conn::parse_error`).
#[must_use]
pub fn generic_problem(status: StatusCode) -> (&'static str, &'static str) {
    match status {
        StatusCode::NOT_FOUND => ("not_found", "no such resource"),
        StatusCode::METHOD_NOT_ALLOWED => (
            "method_not_allowed",
            "this method is not allowed on this resource",
        ),
        StatusCode::REQUEST_TIMEOUT => ("request_timeout", "the request took too long"),
        StatusCode::PAYLOAD_TOO_LARGE => (
            "payload_too_large",
            "the request body exceeds the configured limit",
        ),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => (
            "unsupported_media_type",
            "send `Content-Type: application/json`",
        ),
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE => {
            ("headers_too_large", "the request headers are too large")
        }
        StatusCode::URI_TOO_LONG => ("uri_too_long", "the request target is too long"),
        StatusCode::BAD_REQUEST => ("bad_request", "the request is malformed"),
        StatusCode::FORBIDDEN => ("forbidden", "this request is not allowed"),
        _ if status.is_server_error() => ("internal_error", "an internal error occurred"),
        _ => ("error", "the request failed"),
    }
}
