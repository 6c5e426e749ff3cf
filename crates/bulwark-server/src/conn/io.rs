//! A connection's byte stream, watched below HTTP: the header-read and idle timeouts, and the
//! answer to a request hyper's parser refuses ([`super::parse_error`]).
//!
//! Timeouts are enforced here rather than by hyper because hyper's own header-read timer starts
//! whenever it waits for a request head — including on an idle keep-alive connection — so it
//! cannot tell "slow head" from "idle", and it does not apply to HTTP/2 or to protocol
//! detection. Here:
//! - **header read**: from accept (or from the first byte after the previous request was
//!   dispatched), the head must arrive within `http.header_read_timeout_secs`, however slowly
//!   its bytes trickle in;
//! - **idle**: a connection with no request in flight and no byte read or written for
//!   `http.idle_timeout_secs` is closed (keep-alive, HTTP/2, or a client that stopped reading
//!   our response).
//!
//! A running request is never cut by these: its own limit is `http.request_timeout_secs`.

use std::future::Future;
use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

use super::limit::Permit;
use super::parse_error;

/// The timeouts of a connection.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// Time for a request head (and for a TLS handshake).
    pub header_read: Duration,
    /// Time a connection may sit with nothing in flight and no traffic.
    pub idle: Duration,
}

/// What the service side tells the stream: requests in flight and dispatched so far.
#[derive(Default)]
pub struct Shared {
    in_flight: AtomicUsize,
    dispatched: AtomicU64,
}

/// Bytes to send instead of what hyper wrote, and how much of hyper's buffer they stand for.
struct Rewrite {
    bytes: Vec<u8>,
    written: usize,
    claimed: usize,
}

/// How long, and for how many bytes, the rest of a refused request is read and dropped before
/// closing: closing with unread data makes the kernel reset the connection, and a client still
/// sending its oversized head would lose the answer.
const LINGER_FOR: Duration = Duration::from_secs(2);
const LINGER_BYTES: usize = 1024 * 1024;

/// The watched stream.
pub struct GuardedIo<T> {
    inner: T,
    shared: Arc<Shared>,
    timeouts: Timeouts,
    timer: Pin<Box<Sleep>>,
    last_activity: Instant,
    head_started: Option<Instant>,
    seen_dispatched: u64,
    h2: Option<bool>,
    peer: IpAddr,
    tls_seen: bool,
    rewrite: Option<Rewrite>,
    /// Set once a parser answer went out: until when to drain the request before closing.
    linger: Option<(Instant, usize)>,
    shut_down: bool,
    _permit: Permit,
}

impl<T> GuardedIo<T> {
    /// Watches `inner`, just accepted (its head timer starts now).
    pub fn new(
        inner: T,
        shared: Arc<Shared>,
        timeouts: Timeouts,
        peer: IpAddr,
        tls_seen: bool,
        permit: Permit,
    ) -> Self {
        let now = Instant::now();
        Self {
            inner,
            shared,
            timeouts,
            timer: Box::pin(tokio::time::sleep_until(now + timeouts.header_read)),
            last_activity: now,
            head_started: Some(now),
            seen_dispatched: 0,
            h2: None,
            peer,
            tls_seen,
            rewrite: None,
            linger: None,
            shut_down: false,
            _permit: permit,
        }
    }

    /// When the connection is to be closed, as things stand now.
    fn deadline(&mut self) -> Instant {
        let dispatched = self.shared.dispatched.load(Ordering::Acquire);
        if dispatched != self.seen_dispatched {
            self.seen_dispatched = dispatched;
            self.head_started = None;
        }
        let now = Instant::now();
        if self.shared.in_flight.load(Ordering::Acquire) > 0 {
            // A request being handled is activity; its own timeout bounds it.
            self.last_activity = now;
            return now + self.timeouts.idle;
        }
        let idle = self.last_activity + self.timeouts.idle;
        match self.head_started {
            Some(t) => idle.min(t + self.timeouts.header_read),
            None => idle,
        }
    }

    /// Whether the connection's time is up; otherwise the timer is armed to wake the task.
    fn expired(&mut self, cx: &mut Context<'_>) -> bool {
        loop {
            let deadline = self.deadline();
            if self.timer.deadline() != deadline {
                self.timer.as_mut().reset(deadline);
            }
            match self.timer.as_mut().poll(cx) {
                Poll::Pending => return false,
                Poll::Ready(()) if Instant::now() >= self.deadline() => return true,
                Poll::Ready(()) => {}
            }
        }
    }

    fn on_read(&mut self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        let now = Instant::now();
        self.last_activity = now;
        let h2 = *self
            .h2
            .get_or_insert_with(|| bytes.starts_with(b"PRI * HTTP/2"));
        let _ = self.deadline();
        // HTTP/2 frames (pings, window updates) flow between requests: only the idle timeout
        // applies to it once the connection is up.
        if !h2 && self.head_started.is_none() && self.shared.in_flight.load(Ordering::Acquire) == 0
        {
            self.head_started = Some(now);
        }
    }

    fn timed_out(&self) -> io::Error {
        tracing::debug!(client = %self.peer, "closing a connection: header-read or idle timeout");
        io::Error::new(io::ErrorKind::TimedOut, "connection timed out")
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for GuardedIo<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                this.on_read(buf.filled().get(before..).unwrap_or(&[]));
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending if this.expired(cx) => Poll::Ready(Err(this.timed_out())),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<T: AsyncRead + Unpin> GuardedIo<T> {
    /// Reads and drops what the client still sends, until it closes, [`LINGER_BYTES`] or
    /// [`LINGER_FOR`].
    fn poll_linger(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let mut scratch = [0u8; 8192];
        loop {
            let Some((until, drained)) = &mut self.linger else {
                return Poll::Ready(());
            };
            let mut buf = ReadBuf::new(&mut scratch);
            match Pin::new(&mut self.inner).poll_read(cx, &mut buf) {
                Poll::Ready(Ok(())) if !buf.filled().is_empty() => {
                    *drained += buf.filled().len();
                    if *drained >= LINGER_BYTES {
                        return Poll::Ready(());
                    }
                }
                Poll::Ready(_) => return Poll::Ready(()),
                Poll::Pending => {
                    if self.timer.deadline() != *until {
                        self.timer.as_mut().reset(*until);
                    }
                    return self.timer.as_mut().poll(cx);
                }
            }
        }
    }
}

impl<T: AsyncWrite + Unpin> GuardedIo<T> {
    /// Sends the pending replacement; `Ready(Ok(claimed))` once it is all written.
    fn poll_rewrite(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        loop {
            let Some(r) = &mut self.rewrite else {
                return Poll::Ready(Ok(0));
            };
            let Some(rest) = r.bytes.get(r.written..).filter(|b| !b.is_empty()) else {
                let claimed = r.claimed;
                self.rewrite = None;
                self.linger = Some((Instant::now() + LINGER_FOR, 0));
                return Poll::Ready(Ok(claimed));
            };
            match Pin::new(&mut self.inner).poll_write(cx, rest) {
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(n)) => {
                    r.written += n;
                    self.last_activity = Instant::now();
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending if self.expired(cx) => return Poll::Ready(Err(self.timed_out())),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin> AsyncWrite for GuardedIo<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.rewrite.is_none()
            && let Some((claimed, bytes)) = parse_error::replacement(buf, this.tls_seen, this.peer)
        {
            this.rewrite = Some(Rewrite {
                bytes,
                written: 0,
                claimed,
            });
        }
        if this.rewrite.is_some() {
            return this.poll_rewrite(cx);
        }
        match Pin::new(&mut this.inner).poll_write(cx, buf) {
            Poll::Ready(Ok(n)) => {
                if n > 0 {
                    this.last_activity = Instant::now();
                }
                Poll::Ready(Ok(n))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending if this.expired(cx) => Poll::Ready(Err(this.timed_out())),
            Poll::Pending => Poll::Pending,
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.rewrite.is_some() {
            std::task::ready!(this.poll_rewrite(cx))?;
        }
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.shut_down {
            std::task::ready!(Pin::new(&mut this.inner).poll_shutdown(cx))?;
            this.shut_down = true;
        }
        if this.linger.is_some() {
            std::task::ready!(this.poll_linger(cx));
            this.linger = None;
        }
        Poll::Ready(Ok(()))
    }

    // Not vectored: hyper then writes each response head as one contiguous buffer, which is
    // what the parse-error rewrite inspects.
    fn is_write_vectored(&self) -> bool {
        false
    }
}

/// A request counted in flight until its response is ready.
struct InFlight(Arc<Shared>);

impl InFlight {
    fn enter(shared: Arc<Shared>) -> Self {
        shared.in_flight.fetch_add(1, Ordering::AcqRel);
        shared.dispatched.fetch_add(1, Ordering::AcqRel);
        Self(shared)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The connection's service, telling its stream when requests start and end.
#[derive(Clone)]
pub struct Tracked<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S> Tracked<S> {
    /// Wraps `inner`, reporting to `shared`.
    pub fn new(inner: S, shared: Arc<Shared>) -> Self {
        Self { inner, shared }
    }
}

impl<S, R> tower::Service<R> for Tracked<S>
where
    S: tower::Service<R>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: R) -> Self::Future {
        let guard = InFlight::enter(self.shared.clone());
        let fut = self.inner.call(req);
        Box::pin(async move {
            let res = fut.await;
            drop(guard);
            res
        })
    }
}
