//! Connections below HTTP: idle and trickling connections are closed after the header-read and
//! idle timeouts while the server keeps answering; connections over the per-client or total cap
//! are refused with a warning; requests hyper cannot parse get a problem body with the security
//! headers. Raw TCP throughout; timeouts are short here, margins generous.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bulwark_server::config::LogFormat;
use bulwark_testkit::logs::capture;
use bulwark_testkit::{Backend, TestApp, spawn_app, spawn_app_with};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

/// How long any expected close may take on a loaded machine.
const PATIENCE: Duration = Duration::from_secs(30);

/// Waits until the server closes `s` (EOF or reset); panics after [`PATIENCE`].
async fn closed_by_server(s: &mut TcpStream) {
    let mut buf = [0u8; 1024];
    let deadline = Instant::now() + PATIENCE;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, s.read(&mut buf)).await {
            Err(_) => panic!("the server kept the connection open for {PATIENCE:?}"),
            Ok(Ok(0) | Err(_)) => return,
            Ok(Ok(_)) => {}
        }
    }
}

async fn healthz(app: &TestApp) {
    let res = tokio::time::timeout(PATIENCE, app.client.get(app.url("/healthz")).send())
        .await
        .expect("/healthz did not answer")
        .unwrap();
    assert_eq!(res.status(), 200);
}

/// Sends one request on `s` and reads its whole answer (the server closes after it).
async fn exchange(addr: SocketAddr, request: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    // The server may answer and close before the whole request is written (a head too large):
    // the answer is still there to read.
    let _ = s.write_all(request).await;
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(PATIENCE, s.read_to_end(&mut buf))
        .await
        .expect("no answer");
    String::from_utf8_lossy(&buf).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_and_trickling_connections_are_closed_while_the_server_keeps_answering() {
    let app = spawn_app_with(Backend::Sqlite, |c| {
        c.http.header_read_timeout_secs = 1;
        c.http.idle_timeout_secs = 4;
        c.http.max_connections_per_ip = 200;
    })
    .await;
    let started = Instant::now();
    // Connections that never send a byte.
    let mut silent = Vec::new();
    for _ in 0..60 {
        silent.push(TcpStream::connect(app.addr).await.unwrap());
    }
    // Connections that trickle a request head, one byte at a time, never finishing it.
    let mut tricklers = Vec::new();
    for _ in 0..5 {
        let mut s = TcpStream::connect(app.addr).await.unwrap();
        tricklers.push(tokio::spawn(async move {
            let head = b"GET /healthz HTTP/1.1\r\nhost: x\r\nx-slow: ".iter();
            for b in head.chain(std::iter::repeat(&b'a')) {
                if s.write_all(&[*b]).await.is_err() {
                    return started.elapsed();
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
                if started.elapsed() > PATIENCE {
                    panic!("a trickling connection was never closed");
                }
            }
            unreachable!()
        }));
    }
    // The server answers meanwhile.
    for _ in 0..5 {
        healthz(&app).await;
    }
    for s in &mut silent {
        closed_by_server(s).await;
    }
    for t in tricklers {
        t.await.unwrap();
    }
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "closed before the header-read timeout"
    );
    healthz(&app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keep_alive_connection_outlives_the_header_timeout_then_closes_when_idle() {
    let app = spawn_app_with(Backend::Sqlite, |c| {
        c.http.header_read_timeout_secs = 1;
        c.http.idle_timeout_secs = 5;
    })
    .await;
    let mut s = TcpStream::connect(app.addr).await.unwrap();
    let request = b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n";
    let mut buf = vec![0u8; 4096];
    for _ in 0..2 {
        s.write_all(request).await.unwrap();
        let n = tokio::time::timeout(PATIENCE, s.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert!(buf[..n].starts_with(b"HTTP/1.1 200"), "{:?}", &buf[..n]);
        // Idle between requests for longer than the header-read timeout: still open.
        tokio::time::sleep(Duration::from_millis(2500)).await;
    }
    let idle_since = Instant::now();
    closed_by_server(&mut s).await;
    assert!(idle_since.elapsed() >= Duration::from_secs(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_the_per_client_cap_are_refused_and_logged() {
    let out = capture(LogFormat::Json, "info");
    let app = spawn_app_with(Backend::Sqlite, |c| {
        c.http.max_connections_per_ip = 3;
        c.http.header_read_timeout_secs = 300;
    })
    .await;
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(TcpStream::connect(app.addr).await.unwrap());
    }
    // Let the server accept them before the next one.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut over = TcpStream::connect(app.addr).await.unwrap();
    closed_by_server(&mut over).await;
    let over_http = app.client.get(app.url("/healthz")).send().await;
    assert!(over_http.is_err(), "a fourth connection was served");
    let logs = out.text();
    assert!(
        logs.contains("per-client connection limit reached")
            && logs.contains("http.max_connections_per_ip"),
        "{logs}"
    );
    // One place freed: served again.
    drop(held.pop());
    let deadline = Instant::now() + PATIENCE;
    while app.client.get(app.url("/healthz")).send().await.is_err() {
        assert!(Instant::now() < deadline, "a freed place was never reused");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_the_total_cap_are_refused_and_logged() {
    let out = capture(LogFormat::Json, "info");
    let app = spawn_app_with(Backend::Sqlite, |c| {
        c.http.max_connections = 4;
        c.http.max_connections_per_ip = 4;
        c.http.header_read_timeout_secs = 300;
    })
    .await;
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(TcpStream::connect(app.addr).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    for _ in 0..3 {
        let mut over = TcpStream::connect(app.addr).await.unwrap();
        closed_by_server(&mut over).await;
    }
    let logs = out.text();
    let warnings = logs
        .lines()
        .filter(|l| l.contains("connection limit reached: new connections are being closed"))
        .count();
    // Rate-limited: one line for the burst.
    assert_eq!(warnings, 1, "{logs}");
    assert!(
        logs.contains("\"limit\":\"http.max_connections\""),
        "{logs}"
    );
}

fn assert_problem(answer: &str, status: &str, code: &str) {
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((answer, ""));
    assert!(head.starts_with(&format!("HTTP/1.1 {status}")), "{answer}");
    let head = head.to_ascii_lowercase();
    for h in [
        "content-type: application/problem+json",
        "x-content-type-options: nosniff",
        "content-security-policy: default-src 'none'",
        "x-frame-options: deny",
        "cache-control: no-store",
        "x-request-id: ",
    ] {
        assert!(head.contains(h), "{h} missing: {answer}");
    }
    let problem: serde_json::Value =
        serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {answer}"));
    assert_eq!(problem["code"], code, "{answer}");
    assert!(!problem["request_id"].as_str().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_the_parser_refuses_get_a_problem_with_the_security_headers() {
    let app = spawn_app(Backend::Sqlite).await;
    let big = format!(
        "GET /healthz HTTP/1.1\r\nhost: x\r\nx-big: {}\r\n\r\n",
        "a".repeat(100 * 1024)
    );
    assert_problem(
        &exchange(app.addr, big.as_bytes()).await,
        "431",
        "headers_too_large",
    );
    for bad in [
        &b"GARBAGE\r\n\r\n"[..],
        b"GET /healthz HTTP/1.1\r\nhost x\r\n\r\n",
        b"GET /\x01 HTTP/1.1\r\nhost: x\r\n\r\n",
        b"GET /healthz HTTP/1.1\r\nhost: x\r\ncontent-length: 1\r\ncontent-length: 2\r\n\r\nab",
    ] {
        let answer = exchange(app.addr, bad).await;
        assert_problem(&answer, "400", "bad_request");
    }
    // Malformed chunked framing in a body is met by the handler reading it: a 400 problem too.
    let chunked = b"POST /v1/auth/login HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\nZZ\r\n{}\r\n0\r\n\r\n";
    assert_problem(&exchange(app.addr, chunked).await, "400", "unreadable_body");
    healthz(&app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_handshake_that_never_starts_is_timed_out() {
    let dir = tempfile::tempdir().unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["localhost".into()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let (cert_path, key_path) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert_path, cert.pem()).unwrap();
    std::fs::write(&key_path, key.serialize_pem()).unwrap();
    let app = spawn_app_with(Backend::Sqlite, |c| {
        c.http.header_read_timeout_secs = 1;
        c.tls = Some(bulwark_server::config::TlsConfig {
            cert_path,
            key_path,
        });
    })
    .await;
    let mut silent = TcpStream::connect(app.addr).await.unwrap();
    let mut trickling = TcpStream::connect(app.addr).await.unwrap();
    // The first bytes of a TLS record header, then nothing.
    trickling.write_all(&[0x16, 0x03]).await.unwrap();
    closed_by_server(&mut silent).await;
    closed_by_server(&mut trickling).await;
}
