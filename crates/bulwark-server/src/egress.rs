//! The outbound HTTP client for webhooks and integrations (issue 7 groundwork): every
//! destination vetted (`bulwark_core::egress`), the connection made to a vetted address (the
//! client's resolver vets every answer it returns, so a second DNS answer cannot swap in a
//! private address), no proxy, no redirects followed, time and response size capped.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bulwark_core::egress::{EgressError, EgressPolicy, check_all, vetted_addresses};

/// Bounds of one request.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// The whole exchange, connect to last byte read.
    pub timeout: Duration,
    /// Response bytes kept (the rest is not read).
    pub max_response_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(15),
            max_response_bytes: 64 * 1024,
        }
    }
}

/// What a receiver answered.
#[derive(Debug, Clone)]
pub struct Answer {
    /// The HTTP status (a redirect is an answer, not followed).
    pub status: u16,
    /// Time to the end of the kept body.
    pub latency: Duration,
    /// The first `max_response_bytes` of the body.
    pub body: Vec<u8>,
    /// Whether the body was longer than that.
    pub truncated: bool,
}

/// Why nothing was delivered.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// The destination is not allowed.
    #[error(transparent)]
    Refused(#[from] EgressError),
    /// The exchange took longer than the limit.
    #[error("the receiver did not answer within {0:?}")]
    Timeout(Duration),
    /// Connecting or exchanging failed (the text names no secret: headers are not in it).
    #[error("the request failed: {0}")]
    Failed(String),
}

/// Resolves with the system resolver and refuses any answer in a denied range.
struct VettingResolver(Arc<EgressPolicy>);

impl reqwest::dns::Resolve for VettingResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let policy = Arc::clone(&self.0);
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let addrs: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            check_all(&addrs, &policy, &host).map_err(Box::new)?;
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// The egress client. Cheap to clone.
#[derive(Clone)]
pub struct Egress {
    client: reqwest::Client,
    policy: Arc<EgressPolicy>,
    limits: Limits,
}

impl Egress {
    /// A client under `policy` and `limits`.
    ///
    /// # Errors
    /// When the TLS stack cannot be set up.
    pub fn new(policy: EgressPolicy, limits: Limits) -> Result<Self, SendError> {
        let policy = Arc::new(policy);
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .https_only(!policy.allow_http)
            .dns_resolver(Arc::new(VettingResolver(Arc::clone(&policy))))
            .connect_timeout(limits.timeout)
            .build()
            .map_err(|e| SendError::Failed(e.to_string()))?;
        Ok(Self {
            client,
            policy,
            limits,
        })
    }

    /// The policy the client enforces.
    #[must_use]
    pub fn policy(&self) -> &EgressPolicy {
        &self.policy
    }

    /// POSTs `body` with `headers` to `url`; the answer with its body cut at the limit.
    ///
    /// # Errors
    /// [`SendError::Refused`] before anything is sent; [`SendError::Timeout`];
    /// [`SendError::Failed`].
    pub async fn post(
        &self,
        url: &url::Url,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Result<Answer, SendError> {
        let (answer, _) = self.send(reqwest::Method::POST, url, headers, body).await?;
        Ok(answer)
    }

    /// Sends one request (any method) and keeps the answer's headers too.
    ///
    /// # Errors
    /// As [`Self::post`].
    pub async fn send(
        &self,
        method: reqwest::Method,
        url: &url::Url,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Result<(Answer, reqwest::header::HeaderMap), SendError> {
        let start = Instant::now();
        let exchange = async {
            // IP-literal hosts never reach the resolver: vetted here (names are vetted here and
            // again by the resolver the connection uses). Inside the time limit: a slow name
            // server cannot stretch an attempt past it.
            vetted_addresses(url, &self.policy).await?;
            let mut request = self.client.request(method, url.clone()).body(body);
            for (name, value) in headers {
                request = request.header(*name, *value);
            }
            let mut response = request.send().await.map_err(failed)?;
            let status = response.status().as_u16();
            let response_headers = response.headers().clone();
            let mut kept = Vec::new();
            let mut truncated = false;
            while let Some(chunk) = response.chunk().await.map_err(failed)? {
                let room = self.limits.max_response_bytes.saturating_sub(kept.len());
                if chunk.len() > room {
                    kept.extend_from_slice(chunk.get(..room).unwrap_or_default());
                    truncated = true;
                    break;
                }
                kept.extend_from_slice(&chunk);
            }
            Ok((
                Answer {
                    status,
                    latency: start.elapsed(),
                    body: kept,
                    truncated,
                },
                response_headers,
            ))
        };
        tokio::time::timeout(self.limits.timeout, exchange)
            .await
            .map_err(|_| SendError::Timeout(self.limits.timeout))?
    }
}

/// A client error as text, without the URL's query (which could carry a token).
fn failed(e: reqwest::Error) -> SendError {
    let e = e.without_url();
    match std::error::Error::source(&e) {
        Some(source) => SendError::Failed(format!("{e}: {source}")),
        None => SendError::Failed(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::Router;
    use axum::routing::post;

    async fn receiver() -> SocketAddr {
        let app = Router::new()
            .route("/ok", post(|| async { "fine" }))
            .route(
                "/redirect",
                post(|| async {
                    (
                        axum::http::StatusCode::FOUND,
                        [(
                            axum::http::header::LOCATION,
                            "http://169.254.169.254/latest/meta-data/",
                        )],
                    )
                }),
            )
            .route(
                "/hang",
                post(|| async {
                    tokio::time::sleep(Duration::from_secs(30)).await;
                    "late"
                }),
            );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        addr
    }

    /// A raw receiver that answers 200 with an endless chunked body.
    async fn endless_receiver() -> SocketAddr {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut buf = [0u8; 4096];
                    let _ = socket.read(&mut buf).await;
                    let head = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n";
                    if socket.write_all(head).await.is_err() {
                        return;
                    }
                    let chunk = format!("2000\r\n{}\r\n", "x".repeat(0x2000));
                    while socket.write_all(chunk.as_bytes()).await.is_ok() {}
                });
            }
        });
        addr
    }

    /// Plain http to the listed receivers only.
    fn test_policy(receivers: &[SocketAddr]) -> EgressPolicy {
        EgressPolicy {
            allow_http: true,
            allow_loopback: receivers
                .iter()
                .filter_map(|a| bulwark_core::egress::LoopbackPort::exactly(*a))
                .collect(),
            ..EgressPolicy::default()
        }
    }

    fn url(addr: SocketAddr, path: &str) -> url::Url {
        url::Url::parse(&format!("http://{addr}{path}")).unwrap()
    }

    #[tokio::test]
    async fn a_vetted_receiver_gets_the_request_and_its_answer_is_kept() {
        let addr = receiver().await;
        let egress = Egress::new(test_policy(&[addr]), Limits::default()).unwrap();
        let answer = egress
            .post(
                &url(addr, "/ok"),
                &[("webhook-id", "msg_1")],
                b"{}".to_vec(),
            )
            .await
            .unwrap();
        assert_eq!(answer.status, 200);
        assert_eq!(answer.body, b"fine");
        assert!(!answer.truncated);
    }

    #[tokio::test]
    async fn loopback_and_plain_http_are_refused_without_the_test_allowance() {
        let addr = receiver().await;
        let strict = Egress::new(EgressPolicy::default(), Limits::default()).unwrap();
        assert!(matches!(
            strict.post(&url(addr, "/ok"), &[], vec![]).await,
            Err(SendError::Refused(EgressError::Url(_)))
        ));
        let http_only = Egress::new(
            EgressPolicy {
                allow_http: true,
                ..EgressPolicy::default()
            },
            Limits::default(),
        )
        .unwrap();
        assert!(matches!(
            http_only.post(&url(addr, "/ok"), &[], vec![]).await,
            Err(SendError::Refused(EgressError::Denied("loopback")))
        ));
        let named = url::Url::parse(&format!("http://localhost:{}/ok", addr.port())).unwrap();
        assert!(matches!(
            http_only.post(&named, &[], vec![]).await,
            Err(SendError::Refused(EgressError::Denied("loopback")))
        ));
        // Another loopback port is listed: this one stays closed.
        let other = receiver().await;
        let elsewhere = Egress::new(test_policy(&[other]), Limits::default()).unwrap();
        assert!(matches!(
            elsewhere.post(&url(addr, "/ok"), &[], vec![]).await,
            Err(SendError::Refused(EgressError::Denied("loopback")))
        ));
        assert!(
            elsewhere
                .post(&url(other, "/ok"), &[], vec![])
                .await
                .is_ok()
        );
    }

    #[tokio::test]
    async fn redirects_are_answers_not_followed() {
        let addr = receiver().await;
        let egress = Egress::new(test_policy(&[addr]), Limits::default()).unwrap();
        let answer = egress
            .post(&url(addr, "/redirect"), &[], vec![])
            .await
            .unwrap();
        assert_eq!(answer.status, 302);
    }

    #[tokio::test]
    async fn a_hanging_receiver_times_out_and_an_endless_body_is_cut() {
        let addr = receiver().await;
        let limits = Limits {
            timeout: Duration::from_millis(500),
            max_response_bytes: 20_000,
        };
        let endless = endless_receiver().await;
        let egress = Egress::new(test_policy(&[addr, endless]), limits).unwrap();
        let start = Instant::now();
        assert!(matches!(
            egress.post(&url(addr, "/hang"), &[], vec![]).await,
            Err(SendError::Timeout(_))
        ));
        assert!(start.elapsed() < Duration::from_secs(5));
        let answer = egress.post(&url(endless, "/"), &[], vec![]).await.unwrap();
        assert_eq!(
            (answer.status, answer.body.len(), answer.truncated),
            (200, 20_000, true)
        );
    }
}
