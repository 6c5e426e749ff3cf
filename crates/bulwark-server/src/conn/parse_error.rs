//! Answers for requests hyper's HTTP/1 parser refuses (a bad request line or header, a head over
//! `http.max_header_bytes`, a target too long): the same `application/problem+json` body with a
//! stable `code`, `x-request-id` and security headers as every other error, instead of hyper's
//! bare status line.
//!
//! hyper writes such an answer itself and offers no hook to change it, so it is replaced on its
//! way to the socket: a response head with status 400, 414 or 431 and no `x-request-id` cannot
//! come from the application (the observing middleware puts the id on every response), so it is
//! hyper's. hyper closes the connection after it; the replacement says `connection: close`.
//!
//! Not covered, by nature: HTTP/2 framing errors are answered with protocol frames (`GOAWAY`,
//! `RST_STREAM`), which carry no body; a malformed body (bad chunked encoding) is met while the
//! handler reads it, and answered by the application as a 400 problem.

use std::net::IpAddr;

use axum::http::{HeaderMap, StatusCode};
use bulwark_types::RequestId;

use crate::error::{PROBLEM_JSON, problem_bytes};
use crate::middleware::headers::{self, TlsSeen};
use crate::middleware::observe::generic_problem;
use crate::middleware::request_id;

/// The statuses hyper answers parse errors with.
const PARSER_STATUSES: &[StatusCode] = &[
    StatusCode::BAD_REQUEST,
    StatusCode::URI_TOO_LONG,
    StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
];

/// When `buf` starts with hyper's own answer to a parse error: how many bytes of `buf` that
/// answer is, and what to send instead.
pub fn replacement(buf: &[u8], tls_seen: bool, peer: IpAddr) -> Option<(usize, Vec<u8>)> {
    let version = buf.get(..8).filter(|v| v.starts_with(b"HTTP/1."))?;
    let status = buf
        .get(9..12)
        .and_then(|s| StatusCode::from_bytes(s).ok())
        .filter(|s| PARSER_STATUSES.contains(s))?;
    let head_end = buf.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = buf.get(..head_end)?;
    let mut date = None;
    for line in head.split(|&b| b == b'\n').skip(1) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let name = line.split(|&b| b == b':').next().unwrap_or(&[]);
        if name.eq_ignore_ascii_case(request_id::HEADER.as_bytes()) {
            return None;
        }
        if name.eq_ignore_ascii_case(b"date") {
            date = Some(line);
        }
    }
    let id = RequestId::generate();
    let (code, detail) = generic_problem(status);
    tracing::info!(status = status.as_u16(), code, client = %peer, request_id = %id, "request refused by the HTTP parser");
    let body = request_id::sync_scope(id.clone(), || {
        problem_bytes(status, code, Some(detail.into()), Vec::new())
    });
    let mut security = HeaderMap::new();
    headers::apply(&mut security, TlsSeen(tls_seen), false);
    let mut out = Vec::with_capacity(512 + body.len());
    out.extend_from_slice(version);
    out.extend_from_slice(
        format!(
            " {} {}\r\ncontent-type: {PROBLEM_JSON}\r\ncontent-length: {}\r\nconnection: close\r\n{}: {id}\r\n",
            status.as_str(),
            status.canonical_reason().unwrap_or("Error"),
            body.len(),
            request_id::HEADER,
        )
        .as_bytes(),
    );
    for (name, value) in &security {
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    if let Some(date) = date {
        out.extend_from_slice(date);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(&body);
    Some((head_end + 4, out))
}

#[cfg(test)]
mod tests {
    use super::*;

    const PEER: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

    #[test]
    fn hypers_bare_answer_becomes_a_problem_with_security_headers() {
        let hyper = b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\ndate: Sun, 06 Dec 2026 07:00:00 GMT\r\n\r\n";
        let (claimed, out) = replacement(hyper, true, PEER).unwrap();
        assert_eq!(claimed, hyper.len());
        let text = String::from_utf8(out).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 431 Request Header Fields Too Large\r\n"));
        for line in [
            "content-type: application/problem+json",
            "connection: close",
            "x-content-type-options: nosniff",
            "strict-transport-security: ",
            "date: Sun, 06 Dec 2026 07:00:00 GMT",
            &format!("content-length: {}", body.len()),
        ] {
            assert!(head.contains(line), "{line} missing in {head}");
        }
        let problem: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(problem["code"], "headers_too_large");
        assert_eq!(problem["status"], 431);
        let id = head
            .lines()
            .find_map(|l| l.strip_prefix("x-request-id: "))
            .unwrap();
        assert_eq!(problem["request_id"], id);
    }

    #[test]
    fn application_answers_and_other_bytes_pass_through() {
        for ours in [
            &b"HTTP/1.1 400 Bad Request\r\nx-request-id: abc\r\ncontent-length: 2\r\n\r\n{}"[..],
            b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n",
            b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n",
            b"{\"body\": \"HTTP/1.1 400 Bad Request\\r\\n\\r\\n\"}",
            b"HTTP/1.1 400 Bad Req",
        ] {
            assert!(replacement(ours, false, PEER).is_none());
        }
    }
}
