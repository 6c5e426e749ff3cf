//! A local webhook receiver on 127.0.0.1 that records every request. Its behaviour is chosen by
//! the path: `/ok…` answers 200, `/fail…` 500 with a 5,000-byte body, `/nul…` answers 200 with a NUL and an escape in its body, `/hang…` never answers in
//! time, and `/redirect…` answers 302 to `/target`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};

/// One request the receiver got.
#[derive(Debug, Clone)]
pub struct Hit {
    /// The path.
    pub path: String,
    /// Headers, lowercase names.
    pub headers: HashMap<String, String>,
    /// The body.
    pub body: Vec<u8>,
    /// When it arrived.
    pub at: Instant,
}

impl Hit {
    /// A header's value ("" when absent).
    #[must_use]
    pub fn header(&self, name: &str) -> &str {
        self.headers.get(name).map_or("", String::as_str)
    }

    /// The body as JSON.
    #[must_use]
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

/// The receiver.
#[derive(Clone)]
pub struct Receiver {
    /// Where it listens.
    pub addr: SocketAddr,
    hits: Arc<Mutex<Vec<Hit>>>,
}

impl Receiver {
    /// Starts one on a free port.
    pub async fn start() -> Self {
        let hits: Arc<Mutex<Vec<Hit>>> = Arc::default();
        let seen = Arc::clone(&hits);
        let app = axum::Router::new().fallback(move |uri: Uri, headers: HeaderMap, body: Bytes| {
            let seen = Arc::clone(&seen);
            async move {
                let path = uri.path().to_owned();
                seen.lock().unwrap().push(Hit {
                    path: path.clone(),
                    headers: headers
                        .iter()
                        .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
                        .collect(),
                    body: body.to_vec(),
                    at: Instant::now(),
                });
                answer(&path).await
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { addr, hits }
    }

    /// `http://127.0.0.1:<port><path>`.
    #[must_use]
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The requests to `path` so far.
    #[must_use]
    pub fn hits(&self, path: &str) -> Vec<Hit> {
        self.hits
            .lock()
            .unwrap()
            .iter()
            .filter(|h| h.path == path)
            .cloned()
            .collect()
    }

    /// Waits until `path` got at least `n` requests (panics after `within`).
    pub async fn wait_for(&self, path: &str, n: usize, within: Duration) -> Vec<Hit> {
        let start = Instant::now();
        loop {
            let hits = self.hits(path);
            if hits.len() >= n {
                return hits;
            }
            assert!(
                start.elapsed() < within,
                "{path}: {} of {n} requests after {within:?}",
                hits.len()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

async fn answer(path: &str) -> Response {
    if path.starts_with("/ok") {
        (StatusCode::OK, "thanks").into_response()
    } else if path.starts_with("/nul") {
        (StatusCode::OK, "ok\0then \x1b[2J").into_response()
    } else if path.starts_with("/fail") {
        (StatusCode::INTERNAL_SERVER_ERROR, "x".repeat(5000)).into_response()
    } else if path.starts_with("/hang") {
        tokio::time::sleep(Duration::from_secs(60)).await;
        (StatusCode::OK, "late").into_response()
    } else if path.starts_with("/redirect") {
        (
            StatusCode::FOUND,
            [(axum::http::header::LOCATION, "/target")],
        )
            .into_response()
    } else {
        (StatusCode::NOT_FOUND, "no").into_response()
    }
}
