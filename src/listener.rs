//! The bounds of the API listeners' connections, the same on REST and gRPC: at most
//! `max_connections` open at once per listener (further clients wait in the kernel's
//! accept backlog), a connection must have its first request under way within
//! `header_read_timeout` of being accepted (HTTP/1 headers complete, or the HTTP/2
//! preface, settings and a request's HEADERS), each further HTTP/1 request of a
//! kept-alive connection must be under way within `header_read_timeout` of its first
//! byte, and a connection with no request in flight for `idle_timeout` is closed.
//!
//! The timeouts live in the connection's I/O ([`GuardedStream`]), so they hold for
//! every protocol and for clients that send nothing at all; what counts as a request in
//! flight is told by [`Tracked`], which wraps the services and holds a mark from the
//! start of each request until its response body has been sent or dropped. A
//! long-lived stream (the change feed) is a request in flight, so it is not idle however
//! quiet it is; HTTP/2 keep-alive pings (set where each server is built) find a peer
//! that is gone.
//!
//! With TLS ([`crate::tls`]) the handshake must also be done within
//! `header_read_timeout` of the accept; it runs in the connection's own task, so a slow
//! client holds up nobody else, and everything below reads the decrypted bytes. A
//! verified client certificate's names go with the connection ([`Conn::peer`]) into
//! each request's extensions.
//!
//! Which protocol a connection speaks is read from its first bytes (the HTTP/2 preface
//! starts `PRI `). On HTTP/1 a byte read with no request in flight is the start of the
//! next request's head; on HTTP/2 it may be a ping, a window update or a settings
//! acknowledgement, so there only the idle timeout applies between requests (a request
//! starts once its HEADERS frames are complete, so a dribbled HEADERS is idle time).

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use futures::task::AtomicWaker;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};
use tokio_rustls::TlsAcceptor;

use crate::auth::PeerCertificate;

/// Connection bounds of both API listeners.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// From accepting a connection to the start of its first request, and on HTTP/1
    /// from the first byte of each further request to its start.
    pub header_read_timeout: Duration,
    /// How long a connection may stay open with no request in flight.
    pub idle_timeout: Duration,
    /// Connections open at once, per listener.
    pub max_connections: usize,
    /// Interval of HTTP/2 keep-alive pings.
    pub http2_keepalive_interval: Duration,
    /// How long an HTTP/2 keep-alive ping may go unanswered before the connection is
    /// closed.
    pub http2_keepalive_timeout: Duration,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(60),
            max_connections: 1024,
            http2_keepalive_interval: Duration::from_secs(20),
            http2_keepalive_timeout: Duration::from_secs(10),
        }
    }
}

/// A TCP listener whose connections are [`GuardedStream`]s (over TLS when given an
/// acceptor), at most `max_connections` at once.
pub struct GuardedListener {
    inner: TcpListener,
    permits: Arc<Semaphore>,
    limits: ConnectionLimits,
    tls: Option<TlsAcceptor>,
}

impl GuardedListener {
    /// Guards `inner` with `limits`; plain TCP.
    pub fn new(inner: TcpListener, limits: ConnectionLimits) -> Self {
        Self {
            inner,
            permits: Arc::new(Semaphore::new(limits.max_connections.max(1))),
            limits,
            tls: None,
        }
    }

    /// Makes every connection TLS, with `acceptor`'s configuration.
    pub fn with_tls(mut self, acceptor: Option<TlsAcceptor>) -> Self {
        self.tls = acceptor;
        self
    }

    /// The next TCP connection, once one of the `max_connections` slots is free; its
    /// TLS handshake, if any, is left to [`Accepted::establish`]. Accept errors (too
    /// many open files, a connection reset before it was accepted) are logged and
    /// retried after a pause, as axum and tonic do.
    pub async fn accept(&mut self) -> Accepted {
        let permit = self
            .permits
            .clone()
            .acquire_owned()
            .await
            .expect("the semaphore is never closed");
        loop {
            match self.inner.accept().await {
                Ok((stream, remote)) => {
                    let _ = stream.set_nodelay(true);
                    return Accepted {
                        stream,
                        remote,
                        slot: permit,
                        limits: self.limits,
                        accepted: Instant::now(),
                        tls: self.tls.clone(),
                    };
                }
                Err(e) => {
                    tracing::warn!(error.message = %e, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }

    /// The established connections as a stream, for tonic. TLS handshakes run side by
    /// side in tasks of their own; a failed one is logged and dropped. Once the stream
    /// is dropped (the server stopped), nothing more is accepted.
    pub fn into_stream(
        mut self,
    ) -> futures::stream::BoxStream<'static, Result<GuardedStream, std::convert::Infallible>> {
        use futures::StreamExt as _;
        if self.tls.is_none() {
            return futures::stream::unfold(self, |mut listener| async move {
                let accepted = listener.accept().await;
                let stream = accepted
                    .establish()
                    .await
                    .expect("a plain connection needs no handshake");
                Some((Ok(stream), listener))
            })
            .boxed();
        }
        let (sender, receiver) = tokio::sync::mpsc::channel(16);
        tokio::spawn(async move {
            loop {
                let accepted = tokio::select! {
                    _ = sender.closed() => return,
                    accepted = self.accept() => accepted,
                };
                let sender = sender.clone();
                tokio::spawn(async move {
                    if let Ok(stream) = accepted.establish().await {
                        let _ = sender.send(Ok(stream)).await;
                    }
                });
            }
        });
        tokio_stream::wrappers::ReceiverStream::new(receiver).boxed()
    }
}

/// A TCP connection accepted, holding its slot, not yet established.
pub struct Accepted {
    stream: TcpStream,
    remote: SocketAddr,
    slot: OwnedSemaphorePermit,
    limits: ConnectionLimits,
    accepted: Instant,
    tls: Option<TlsAcceptor>,
}

impl Accepted {
    /// The peer's address.
    pub fn remote(&self) -> SocketAddr {
        self.remote
    }

    /// The connection, after its TLS handshake when the listener has TLS. The
    /// handshake must end within `header_read_timeout` of the accept (the first
    /// request's clock keeps running from the accept); a failed or late one is logged
    /// at debug level (scanners and clients with the wrong CA are routine) and the
    /// connection closed.
    pub async fn establish(self) -> io::Result<GuardedStream> {
        let Some(acceptor) = self.tls else {
            return Ok(GuardedStream::new(
                Io::Plain(self.stream),
                self.slot,
                self.limits,
                self.accepted,
                None,
            ));
        };
        let deadline = self.accepted + self.limits.header_read_timeout;
        let handshake = tokio::time::timeout_at(deadline, acceptor.accept(self.stream)).await;
        let tls = match handshake {
            Ok(Ok(tls)) => tls,
            Ok(Err(e)) => {
                tracing::debug!(remote = %self.remote, error.message = %e, "TLS handshake failed");
                return Err(e);
            }
            Err(_) => {
                tracing::debug!(remote = %self.remote, "TLS handshake timed out");
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "no TLS handshake in time",
                ));
            }
        };
        // Only a certificate the verifier accepted is here at all.
        let peer = tls
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|chain| chain.first())
            .and_then(crate::tls::peer_certificate)
            .map(Arc::new);
        Ok(GuardedStream::new(
            Io::Tls(Box::new(tls)),
            self.slot,
            self.limits,
            self.accepted,
            peer,
        ))
    }
}

/// A connection's bytes: plain TCP, or TLS over it.
enum Io {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::server::TlsStream<TcpStream>>),
}

impl AsyncRead for Io {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Io {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_flush(cx),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Io::Plain(s) => s.is_write_vectored(),
            Io::Tls(s) => s.is_write_vectored(),
        }
    }
}

/// What a connection's I/O and its requests share.
#[derive(Debug)]
struct ConnState {
    accepted: Instant,
    limits: ConnectionLimits,
    in_flight: AtomicUsize,
    served: AtomicBool,
    /// When the last request in flight ended.
    idle_since: Mutex<Instant>,
    /// HTTP/1: when the first byte of the next request's head arrived, while no
    /// request was in flight; cleared when a request starts.
    head_since: Mutex<Option<Instant>>,
    /// The reader to wake when the last request in flight ends, so that the idle
    /// timer starts.
    reader: AtomicWaker,
    /// The verified TLS client certificate's names, if the peer presented one.
    peer: Option<Arc<PeerCertificate>>,
}

/// A connection's handle, given to the services (tonic: as its connect info) so that
/// its requests are counted.
#[derive(Debug, Clone)]
pub struct Conn(Arc<ConnState>);

impl Conn {
    /// The verified TLS client certificate of the connection, if any.
    pub fn peer(&self) -> Option<&Arc<PeerCertificate>> {
        self.0.peer.as_ref()
    }

    /// Marks a request in flight until the mark is dropped.
    fn start(&self) -> InFlight {
        self.0.served.store(true, Ordering::SeqCst);
        self.0.in_flight.fetch_add(1, Ordering::SeqCst);
        *self.0.head_since.lock().expect("never poisoned") = None;
        InFlight(self.clone())
    }

    /// Notes bytes of an HTTP/1 connection read at `now`: between requests they start
    /// the next request's head, whose clock then runs.
    fn http1_read(&self, now: Instant) {
        let state = &self.0;
        if state.in_flight.load(Ordering::SeqCst) > 0 || !state.served.load(Ordering::SeqCst) {
            return;
        }
        state
            .head_since
            .lock()
            .expect("never poisoned")
            .get_or_insert(now);
    }

    /// When the connection is to be closed; `None` while a request is in flight.
    fn deadline(&self) -> Option<Instant> {
        let state = &self.0;
        if state.in_flight.load(Ordering::SeqCst) > 0 {
            return None;
        }
        if !state.served.load(Ordering::SeqCst) {
            return Some(state.accepted + state.limits.header_read_timeout);
        }
        let idle_since = *state.idle_since.lock().expect("never poisoned");
        let idle = idle_since + state.limits.idle_timeout;
        let head = *state.head_since.lock().expect("never poisoned");
        Some(head.map_or(idle, |h| idle.min(h + state.limits.header_read_timeout)))
    }
}

/// A request in flight on a connection.
#[derive(Debug)]
struct InFlight(Conn);

impl Drop for InFlight {
    fn drop(&mut self) {
        let state = &(self.0).0;
        // The idle time is set before the count drops, so a reader that sees zero
        // also sees when it started.
        *state.idle_since.lock().expect("never poisoned") = Instant::now();
        state.in_flight.fetch_sub(1, Ordering::SeqCst);
        state.reader.wake();
    }
}

/// The protocol a connection speaks, as far as its first bytes tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Protocol {
    /// Fewer bytes than [`H2_PREFACE_START`] so far, all matching it.
    Unknown,
    Http1,
    Http2,
}

/// The start of the HTTP/2 connection preface (`PRI * HTTP/2.0…`); no HTTP/1 method
/// is `PRI`.
const H2_PREFACE_START: &[u8] = b"PRI ";

/// An established connection: a [`TcpStream`] (or TLS over it) whose reads fail with `TimedOut` once it
/// has gone without a request too long (see the module docs), holding its slot of the
/// listener's connection cap.
pub struct GuardedStream {
    inner: Io,
    conn: Conn,
    timer: Pin<Box<Sleep>>,
    armed: Option<Instant>,
    protocol: Protocol,
    /// Bytes read so far while the protocol is unknown (at most 4).
    preface: Vec<u8>,
    _slot: OwnedSemaphorePermit,
}

impl GuardedStream {
    fn new(
        inner: Io,
        slot: OwnedSemaphorePermit,
        limits: ConnectionLimits,
        accepted: Instant,
        peer: Option<Arc<PeerCertificate>>,
    ) -> Self {
        let now = accepted;
        Self {
            inner,
            conn: Conn(Arc::new(ConnState {
                accepted: now,
                limits,
                in_flight: AtomicUsize::new(0),
                served: AtomicBool::new(false),
                idle_since: Mutex::new(now),
                head_since: Mutex::new(None),
                reader: AtomicWaker::new(),
                peer,
            })),
            timer: Box::pin(tokio::time::sleep_until(now)),
            armed: None,
            protocol: Protocol::Unknown,
            preface: Vec::with_capacity(H2_PREFACE_START.len()),
            _slot: slot,
        }
    }

    /// Notes `bytes`, just read: they tell the protocol, and on HTTP/1 between
    /// requests they start the next request's head.
    fn read_bytes(&mut self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        if self.protocol == Protocol::Unknown {
            let wanted = H2_PREFACE_START.len() - self.preface.len();
            self.preface
                .extend_from_slice(&bytes[..wanted.min(bytes.len())]);
            self.protocol = if !H2_PREFACE_START.starts_with(&self.preface) {
                Protocol::Http1
            } else if self.preface.len() == H2_PREFACE_START.len() {
                Protocol::Http2
            } else {
                Protocol::Unknown
            };
        }
        if self.protocol == Protocol::Http1 {
            self.conn.http1_read(Instant::now());
        }
    }

    /// The connection's handle.
    pub fn conn(&self) -> Conn {
        self.conn.clone()
    }

    /// Whether the connection has gone without a request too long; otherwise the
    /// timer is armed for the current deadline.
    fn expired(&mut self, cx: &mut Context<'_>) -> bool {
        loop {
            let Some(deadline) = self.conn.deadline() else {
                return false;
            };
            if Instant::now() >= deadline {
                return true;
            }
            if self.armed != Some(deadline) {
                self.timer.as_mut().reset(deadline);
                self.armed = Some(deadline);
            }
            if self.timer.as_mut().poll(cx).is_pending() {
                return false;
            }
        }
    }
}

impl AsyncRead for GuardedStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let before = buf.filled().len();
        if let Poll::Ready(read) = Pin::new(&mut this.inner).poll_read(cx, buf) {
            if read.is_ok() {
                this.read_bytes(&buf.filled()[before..]);
            }
            return Poll::Ready(read);
        }
        this.conn.0.reader.register(cx.waker());
        if this.expired(cx) {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "no request on the connection in time",
            )));
        }
        Poll::Pending
    }
}

impl AsyncWrite for GuardedStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

impl tonic::transport::server::Connected for GuardedStream {
    type ConnectInfo = Conn;

    fn connect_info(&self) -> Conn {
        self.conn()
    }
}

/// Adds [`Tracked`] around a tonic service; the connection comes from the request's
/// connect info.
#[derive(Debug, Clone, Copy, Default)]
pub struct TrackLayer;

impl<S> tower::Layer<S> for TrackLayer {
    type Service = Tracked<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Tracked { inner, conn: None }
    }
}

/// A service whose requests count as in flight on their connection until their
/// response body is done.
#[derive(Debug, Clone)]
pub struct Tracked<S> {
    inner: S,
    /// The connection, when the service is per connection (REST); else it is read
    /// from the request (tonic's connect info).
    conn: Option<Conn>,
}

impl<S> Tracked<S> {
    /// `inner` serving the requests of one connection.
    pub fn per_connection(inner: S, conn: Conn) -> Self {
        Self {
            inner,
            conn: Some(conn),
        }
    }
}

impl<S, B, R> tower::Service<axum::http::Request<B>> for Tracked<S>
where
    S: tower::Service<axum::http::Request<B>, Response = axum::http::Response<R>>,
    S::Future: Send + 'static,
{
    type Response = axum::http::Response<TrackedBody<R>>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: axum::http::Request<B>) -> Self::Future {
        let conn = self
            .conn
            .as_ref()
            .or_else(|| request.extensions().get::<Conn>())
            .cloned();
        let mark = conn.as_ref().map(Conn::start);
        // The auth layers of both APIs read the client certificate from here.
        if let Some(peer) = conn.as_ref().and_then(Conn::peer) {
            request.extensions_mut().insert(peer.clone());
        }
        let future = self.inner.call(request);
        Box::pin(async move {
            let response = future.await?;
            Ok(response.map(|inner| TrackedBody { inner, _mark: mark }))
        })
    }
}

/// A response body that keeps its request in flight until it is dropped.
#[derive(Debug)]
pub struct TrackedBody<B> {
    inner: B,
    _mark: Option<InFlight>,
}

impl<B: http_body::Body + Unpin> http_body::Body for TrackedBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}
