//! Security headers on every response.

use axum::http::{HeaderMap, HeaderName, HeaderValue, header};

/// Whether clients reach us over TLS (directly or through a proxy); decides HSTS.
#[derive(Clone, Copy)]
pub struct TlsSeen(pub bool);

const API_CSP: &str = "default-src 'none'; frame-ancestors 'none'";
/// The console's policy (ADR 0016): only this origin's files, no inline script or style, no
/// framing, forms post only here. Violations are reported to `/csp-report` with `report-uri`
/// alone: with a `report-to` directive Chromium ignores `report-uri` and queues reports in the
/// Reporting API, which delivers them late or not at all (measured: none in 120 s).
pub const CONSOLE_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; report-uri /csp-report";
const HSTS: &str = "max-age=63072000; includeSubDomains";
const COOP: HeaderName = HeaderName::from_static("cross-origin-opener-policy");
const CORP: HeaderName = HeaderName::from_static("cross-origin-resource-policy");

/// Adds the headers. Responses get `Cache-Control: no-store` unless they chose a lifetime (the
/// console's hashed assets). Console responses (`console`: any path outside the API, the probes
/// and `/.well-known`) get the console's policy, everything else the API's. Called by the
/// observing middleware on every response (one layer fewer than a middleware of its own).
pub fn apply(h: &mut HeaderMap, tls: TlsSeen, console: bool) {
    h.reserve(10);
    let set = |h: &mut HeaderMap, name: HeaderName, value: &'static str| {
        h.insert(name, HeaderValue::from_static(value));
    };
    if console {
        set(h, header::CONTENT_SECURITY_POLICY, CONSOLE_CSP);
    } else {
        set(h, header::CONTENT_SECURITY_POLICY, API_CSP);
    }
    set(h, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(h, header::REFERRER_POLICY, "no-referrer");
    set(h, COOP.clone(), "same-origin");
    set(h, CORP.clone(), "same-origin");
    set(h, header::X_FRAME_OPTIONS, "DENY");
    if !h.contains_key(header::CACHE_CONTROL) {
        set(h, header::CACHE_CONTROL, "no-store");
    }
    if tls.0 {
        set(h, header::STRICT_TRANSPORT_SECURITY, HSTS);
    }
}
