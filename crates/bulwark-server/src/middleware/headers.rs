//! Security headers on every response.

use axum::http::{HeaderMap, HeaderName, HeaderValue, header};

/// Whether clients reach us over TLS (directly or through a proxy); decides HSTS.
#[derive(Clone, Copy)]
pub struct TlsSeen(pub bool);

const API_CSP: &str = "default-src 'none'; frame-ancestors 'none'";
const HSTS: &str = "max-age=63072000; includeSubDomains";
const COOP: HeaderName = HeaderName::from_static("cross-origin-opener-policy");
const CORP: HeaderName = HeaderName::from_static("cross-origin-resource-policy");

/// Adds the headers. API responses also get `Cache-Control: no-store`. Called by the observing
/// middleware on every response (one layer fewer than a middleware of its own).
pub fn apply(h: &mut HeaderMap, tls: TlsSeen) {
    h.reserve(9);
    let set = |h: &mut HeaderMap, name: HeaderName, value: &'static str| {
        h.insert(name, HeaderValue::from_static(value));
    };
    set(h, header::CONTENT_SECURITY_POLICY, API_CSP);
    set(h, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(h, header::REFERRER_POLICY, "no-referrer");
    set(h, COOP.clone(), "same-origin");
    set(h, CORP.clone(), "same-origin");
    set(h, header::X_FRAME_OPTIONS, "DENY");
    set(h, header::CACHE_CONTROL, "no-store");
    if tls.0 {
        set(h, header::STRICT_TRANSPORT_SECURITY, HSTS);
    }
}
