//! Connections, below HTTP: how many may be open (in all and per client), how long one may take
//! to send a request head or sit idle, and what a request hyper cannot parse is answered.
//!
//! [`Guard`] is the acceptor of the serve loop (plain or around TLS): it admits a connection
//! through the [`limit::Limiter`], bounds the TLS handshake by the header-read timeout, and wraps
//! the stream in [`io::GuardedIo`] and the service in [`io::Tracked`] so the stream knows when
//! requests are in flight.

pub mod io;
pub mod limit;
pub mod parse_error;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use axum_server::accept::Accept;
use tokio::net::TcpStream;

pub use io::{GuardedIo, Timeouts, Tracked};
pub use limit::Limiter;

/// The acceptor: limits, then `inner` (TLS or nothing), then the watched stream.
#[derive(Clone)]
pub struct Guard<A> {
    inner: A,
    limiter: Arc<Limiter>,
    timeouts: Timeouts,
    tls_seen: bool,
}

impl<A> Guard<A> {
    /// Guards connections accepted by `inner`; `tls_seen` decides HSTS on parser answers.
    pub fn new(inner: A, limiter: Arc<Limiter>, timeouts: Timeouts, tls_seen: bool) -> Self {
        Self {
            inner,
            limiter,
            timeouts,
            tls_seen,
        }
    }
}

type Accepted<S, V> = std::io::Result<(GuardedIo<S>, Tracked<V>)>;

impl<A, S> Accept<TcpStream, S> for Guard<A>
where
    A: Accept<TcpStream, S>,
    A::Future: Send + 'static,
    A::Stream: Send + 'static,
    A::Service: Send + 'static,
{
    type Stream = GuardedIo<A::Stream>;
    type Service = Tracked<A::Service>;
    type Future = Pin<Box<dyn Future<Output = Accepted<A::Stream, A::Service>> + Send>>;

    fn accept(&self, stream: TcpStream, service: S) -> Self::Future {
        let admitted = stream.peer_addr().and_then(|peer| {
            self.limiter
                .admit(peer.ip())
                .map(|permit| (peer.ip(), permit))
                .map_err(|_| std::io::Error::other("connection limit reached"))
        });
        let (peer, permit) = match admitted {
            Ok(a) => a,
            // Dropping the stream closes it.
            Err(e) => return Box::pin(std::future::ready(Err(e))),
        };
        let inner = self.inner.accept(stream, service);
        let (timeouts, tls_seen) = (self.timeouts, self.tls_seen);
        Box::pin(async move {
            let (stream, service) = inner.await?;
            let shared = Arc::new(io::Shared::default());
            Ok((
                GuardedIo::new(stream, shared.clone(), timeouts, peer, tls_seen, permit),
                Tracked::new(service, shared),
            ))
        })
    }
}
