//! The accept loop and the life of each connection: what warp's own server
//! cannot be told.
//!
//! - **Header and idle timeouts.** A connection is *idle* while it waits for
//!   the first byte of a request (after connecting, or after its previous
//!   response); it is closed after `idle_timeout_ms` of that. Once a request
//!   head has started to arrive, all of it must arrive within
//!   `header_read_timeout_ms`, so a client trickling a head byte by byte
//!   (slowloris) is cut off. A response to a client that stops reading
//!   counts as idle from its last written byte. While a request is being
//!   served, the route's own limits apply (`body_timeout_ms` for its body,
//!   `request_timeout_ms` for the handler). hyper's `header_read_timeout` is
//!   set too, as a backstop: it runs from the start of the wait, so it is
//!   the sum of both.
//! - **A connection cap** (`max_connections`, lowered to fit the open-files
//!   limit). At the cap, the connection that has waited longest for a
//!   request (idle or with a half-sent head) is closed to make room, so
//!   half-open connections cannot lock out `/healthz`; connections serving a
//!   request are never closed for this. When every connection is serving a
//!   request, new ones wait in the kernel's accept queue until one finishes.
//! - **Graceful shutdown with a deadline.** Once `shutdown` resolves, no
//!   connection is accepted; connections without a request in progress
//!   (idle, or with only part of a head) are closed at once; the others
//!   finish their request and close. What is still running after
//!   `shutdown_timeout_ms` is cut, and the log says how many.
//!
//! - **Lingering close.** A connection that ends after an answer keeps
//!   reading (and dropping) what the client still sends for a moment, so a
//!   client whose body was refused reads the answer instead of a reset.
//!
//! - **TLS** (when configured). The handshake happens on the connection's
//!   own task, after accept, and counts as waiting for a request head: it
//!   must finish within `header_read_timeout`, a handshaking connection may
//!   be evicted at the cap, and shutdown closes it at once. A failed
//!   handshake (wrong CA, plain HTTP sent to the HTTPS port, a scanner)
//!   just closes the connection (logged at debug).
//!
//! Connections are served as HTTP/1.1 by hyper, over any byte stream
//! ([`serve_connection`] is generic over it: plain TCP, or TLS over it).

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tokio_rustls::TlsAcceptor;
use warp::filters::BoxedFilter;
use warp::reply::Response;

use super::observe::Observation;
use super::Peer;
use crate::tls::PeerNames;

use crate::config::Config;

/// File descriptors kept free of connections: the store, the compiled
/// policy cache, metric pulls, telemetry export, the listener itself.
const RESERVED_FDS: u64 = 128;

/// How often a full server logs that it is closing connections to make
/// room, or that accepting fails (at most).
const LOG_EVERY: Duration = Duration::from_secs(10);

/// The connection limits, from the configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub header_read_timeout: Duration,
    pub idle_timeout: Duration,
    /// At most this many connections at once (see [`Limits::fit_open_files`]).
    pub max_connections: usize,
    pub shutdown_timeout: Duration,
}

impl Limits {
    pub fn new(config: &Config) -> Limits {
        Limits {
            header_read_timeout: Duration::from_millis(config.header_read_timeout_ms),
            idle_timeout: Duration::from_millis(config.idle_timeout_ms),
            max_connections: config.max_connections,
            shutdown_timeout: Duration::from_millis(config.shutdown_timeout_ms),
        }
    }

    /// Lower the connection cap so that connections cannot use up the
    /// `open_files` limit (each holds one descriptor). Returns whether it
    /// was lowered.
    pub fn fit_open_files(&mut self, open_files: u64) -> bool {
        let room = open_files
            .saturating_sub(RESERVED_FDS)
            .max(open_files / 2)
            .max(1);
        let room = usize::try_from(room).unwrap_or(usize::MAX);
        if self.max_connections > room {
            self.max_connections = room;
            true
        } else {
            false
        }
    }
}

/// The open-files limit before and after [`raise_open_files_limit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenFiles {
    pub was: u64,
    pub now: u64,
}

/// Raise the soft open-files limit (`RLIMIT_NOFILE`) to the hard limit:
/// the soft default (often 1,024) is far below what a server with many
/// clients needs, and raising it up to the hard limit needs no privilege.
pub fn raise_open_files_limit() -> io::Result<OpenFiles> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `getrlimit` writes one `rlimit` through a valid pointer.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let was = lim.rlim_cur;
    if lim.rlim_cur >= lim.rlim_max {
        return Ok(OpenFiles { was, now: was });
    }
    let wanted = libc::rlimit {
        rlim_cur: lim.rlim_max,
        rlim_max: lim.rlim_max,
    };
    // SAFETY: `setrlimit` reads one `rlimit` through a valid pointer.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &wanted) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(OpenFiles {
        was,
        now: lim.rlim_max,
    })
}

/// What became of the connections at shutdown.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ShutdownReport {
    /// Closed when shutdown began with part of a request head received.
    pub cut_heads: usize,
    /// Still serving a request when the deadline passed, and cut.
    pub cut_requests: usize,
}

/// Serve `routes` on `listener` until `shutdown` resolves; then shut down
/// as described in the module documentation.
pub async fn serve(
    listener: TcpListener,
    routes: BoxedFilter<(Response,)>,
    limits: Limits,
    tls: Option<Arc<rustls::ServerConfig>>,
    shutdown: impl Future<Output = ()>,
) -> ShutdownReport {
    let tls = tls.map(TlsAcceptor::from);
    let server = Arc::new(Server::new(limits));
    let (stop_tx, stop_rx) = watch::channel(Stop::Run);
    let mut failures = RateLimited::new();
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            _ = &mut shutdown => break,
            accepted = accept(&server, &listener) => accepted,
        };
        let (stream, permit) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // EMFILE and the like: back off instead of spinning.
                if let Some(n) = failures.hit() {
                    tracing::warn!("cannot accept connections ({n} times): {e}");
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        // Small answers go out at once rather than waiting for an ACK.
        let _ = stream.set_nodelay(true);
        let conn = server.register();
        let routes = routes.clone();
        let stop = stop_rx.clone();
        let server = server.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            let id = conn.id;
            let end = match tls {
                None => serve_connection(stream, conn, routes, limits, stop, None).await,
                Some(tls) => match handshake(&tls, stream, &conn, &limits, stop.clone()).await {
                    Ok((stream, peer)) => {
                        serve_connection(stream, conn, routes, limits, stop, peer).await
                    }
                    Err(end) => end,
                },
            };
            server.ended(id, end);
            drop(permit);
        });
    }
    drop(listener);
    server.drain(stop_tx).await
}

/// A slot under the cap, then a connection.
async fn accept(
    server: &Server,
    listener: &TcpListener,
) -> io::Result<(tokio::net::TcpStream, OwnedSemaphorePermit)> {
    let permit = server.slot().await;
    let (stream, _) = listener.accept().await?;
    Ok((stream, permit))
}

/// What the connections are told at shutdown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    Run,
    /// Finish the request in progress, if any, then close.
    Drain,
    /// Close now.
    Cut,
}

/// Why a connection ended (counted at shutdown).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    /// The client closed it, or it closed after its last response.
    Done,
    /// Waited too long for a request, or for the rest of its head.
    TimedOut,
    /// Closed to make room under the cap.
    Evicted,
    /// Closed when shutdown began, with part of a head received.
    CutHead,
    /// Cut at the shutdown deadline while serving a request.
    CutRequest,
}

/// Every open connection, and the slots under the cap.
struct Server {
    limits: Limits,
    slots: Arc<Semaphore>,
    next_id: AtomicU64,
    open: Mutex<HashMap<u64, Arc<Conn>>>,
    evictions: Mutex<RateLimited>,
    cut: Mutex<ShutdownReport>,
}

impl Server {
    fn new(limits: Limits) -> Server {
        Server {
            limits,
            slots: Arc::new(Semaphore::new(limits.max_connections.max(1))),
            next_id: AtomicU64::new(0),
            open: Mutex::new(HashMap::new()),
            evictions: Mutex::new(RateLimited::new()),
            cut: Mutex::new(ShutdownReport::default()),
        }
    }

    /// A slot for one more connection. At the cap, close the connection
    /// that has waited longest for a request; if every connection is
    /// serving one, wait for one to finish.
    async fn slot(&self) -> OwnedSemaphorePermit {
        loop {
            if let Ok(p) = self.slots.clone().try_acquire_owned() {
                return p;
            }
            let evicted = self.evict_longest_waiting();
            // A busy connection may go idle without freeing its slot:
            // look again every so often.
            let retry = if evicted { 10 } else { 100 };
            tokio::select! {
                p = self.slots.clone().acquire_owned() => {
                    return p.expect("the slot semaphore is never closed");
                }
                _ = tokio::time::sleep(Duration::from_millis(retry)) => {}
            }
        }
    }

    fn register(&self) -> Arc<Conn> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let conn = Arc::new(Conn::new(id));
        lock(&self.open).insert(id, conn.clone());
        conn
    }

    fn ended(&self, id: u64, end: End) {
        lock(&self.open).remove(&id);
        let mut cut = lock(&self.cut);
        match end {
            End::CutHead => cut.cut_heads += 1,
            End::CutRequest => cut.cut_requests += 1,
            End::Done | End::TimedOut | End::Evicted => {}
        }
    }

    /// Close the connection that has waited longest for a request (idle or
    /// with a half-sent head); false if every one is serving a request.
    fn evict_longest_waiting(&self) -> bool {
        let open = lock(&self.open);
        let victim = open
            .values()
            .filter_map(|c| {
                let a = lock(&c.activity);
                (a.phase != Phase::Busy && !c.evict.is_closed()).then_some((a.since, c))
            })
            .min_by_key(|(since, _)| *since)
            .map(|(_, c)| c.clone());
        drop(open);
        let Some(victim) = victim else {
            return false;
        };
        victim.evict.close();
        if let Some(n) = lock(&self.evictions).hit() {
            tracing::warn!(
                "at the connection cap ({}): closed {n} connection(s) waiting for a request to make room",
                self.limits.max_connections
            );
        }
        true
    }

    /// Shutdown: drain, wait up to the deadline, cut the rest.
    async fn drain(&self, stop: watch::Sender<Stop>) -> ShutdownReport {
        let _ = stop.send(Stop::Drain);
        let all = u32::try_from(self.limits.max_connections.max(1)).unwrap_or(u32::MAX);
        let finished = tokio::time::timeout(
            self.limits.shutdown_timeout,
            self.slots.clone().acquire_many_owned(all),
        )
        .await;
        if finished.is_err() {
            let _ = stop.send(Stop::Cut);
            // Cut connections end as soon as they are next polled.
            let _ = tokio::time::timeout(
                Duration::from_secs(5),
                self.slots.clone().acquire_many_owned(all),
            )
            .await;
        }
        *lock(&self.cut)
    }
}

/// The TLS handshake of a new connection, bounded like a request head: by
/// `header_read_timeout`, eviction at the cap, and shutdown. Yields the
/// stream and the names of a verified client certificate, if one was sent.
async fn handshake(
    tls: &TlsAcceptor,
    stream: tokio::net::TcpStream,
    conn: &Conn,
    limits: &Limits,
    mut stop: watch::Receiver<Stop>,
) -> Result<
    (
        tokio_rustls::server::TlsStream<tokio::net::TcpStream>,
        Option<Peer>,
    ),
    End,
> {
    let peer_addr = stream.peer_addr().ok();
    let accepted = tokio::select! {
        r = tokio::time::timeout(limits.header_read_timeout, tls.accept(stream)) => r,
        _ = conn.evict.acquire() => return Err(End::Evicted),
        _ = stop.wait_for(|s| *s != Stop::Run) => return Err(End::CutHead),
    };
    let stream = match accepted {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            tracing::debug!("TLS handshake with {peer_addr:?} failed: {e}");
            return Err(End::Done);
        }
        Err(_) => return Err(End::TimedOut),
    };
    // The idle timeout runs from the end of the handshake.
    conn.handshaken();
    let peer = stream
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|chain| chain.first())
        .map(|leaf| Peer(Arc::new(PeerNames::of(leaf))));
    Ok((stream, peer))
}

/// Serve one connection (any byte stream: TCP, or TLS over it) until the
/// client closes it, it times out, it is evicted, or shutdown ends it.
async fn serve_connection<I>(
    io: I,
    conn: Arc<Conn>,
    routes: BoxedFilter<(Response,)>,
    limits: Limits,
    mut stop: watch::Receiver<Stop>,
    peer: Option<Peer>,
) -> End
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let io = TokioIo::new(Watched {
        io,
        conn: conn.clone(),
    });
    let routes = TowerToHyperService::new(warp::service(routes));
    let requests = conn.clone();
    let service =
        hyper::service::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
            if let Some(peer) = &peer {
                req.extensions_mut().insert(peer.clone());
            }
            let serving = requests.request_started();
            let observation = Observation::begin(&mut req);
            let answer = hyper::service::Service::call(&routes, req);
            // Boxed (so `Unpin`) for `poll_without_shutdown`.
            Box::pin(async move {
                let answer = observation.around(answer).await;
                drop(serving);
                answer
            })
        });
    let mut http = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.idle_timeout + limits.header_read_timeout)
        .serve_connection(io, service);
    let mut draining = false;
    let finished = loop {
        let mode = *stop.borrow_and_update();
        if mode == Stop::Cut {
            return End::CutRequest;
        }
        if mode == Stop::Drain && !draining {
            draining = true;
            // Close after the response in progress (at once if none).
            Pin::new(&mut http).graceful_shutdown();
        }
        let check_at = match conn.check(Instant::now(), &limits, draining) {
            Check::Close(end) => return end,
            Check::Again(at) => at,
        };
        tokio::select! {
            // Without shutting the stream down: see `linger`.
            result = std::future::poll_fn(|cx| http.poll_without_shutdown(cx)) => break result,
            _ = tokio::time::sleep_until(check_at.into()) => {}
            // Nothing ever adds permits: this completes when evicted.
            _ = conn.evict.acquire() => return End::Evicted,
            _ = stop.changed() => {}
        }
    };
    match finished {
        Ok(()) => linger(http.into_parts().io.into_inner().io).await,
        Err(e) => tracing::debug!("connection closed: {e}"),
    }
    End::Done
}

/// How long a closing connection keeps reading what the client still sends.
const LINGER: Duration = Duration::from_secs(2);
/// How much it reads at most meanwhile.
const LINGER_BYTES: usize = 4 << 20;

/// Close after the last answer without resetting it away: a client still
/// sending a body the server refused (413, or a 415 before reading it)
/// would otherwise get a reset instead of the answer, once the close finds
/// its unread bytes. Signal the end of our side, then read and drop what
/// arrives, until the client closes, for at most [`LINGER`] and
/// [`LINGER_BYTES`] (a "lingering close").
async fn linger<I: AsyncRead + AsyncWrite + Unpin>(mut io: I) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    if io.shutdown().await.is_err() {
        return;
    }
    let drain = async {
        let mut buf = vec![0u8; 16 << 10];
        let mut read = 0;
        while read < LINGER_BYTES {
            match io.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => read += n,
            }
        }
    };
    let _ = tokio::time::timeout(LINGER, drain).await;
}

/// What a connection is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Waiting for the first byte of a request.
    Idle,
    /// Part of a request head has arrived.
    Head,
    /// Serving a request: its body, the handler, the answer.
    Busy,
}

#[derive(Debug)]
struct Activity {
    phase: Phase,
    /// When the phase began (for `Idle`: the last byte written).
    since: Instant,
    /// Requests being served (more than one only when pipelined).
    in_flight: usize,
}

/// One open connection, as the timeouts and the cap see it.
struct Conn {
    id: u64,
    activity: Mutex<Activity>,
    /// Closed to evict the connection (a closed semaphore is a one-shot,
    /// level-triggered signal).
    evict: Semaphore,
}

/// When to look at a connection again, or that it must close.
#[derive(Debug, PartialEq, Eq)]
enum Check {
    Close(End),
    Again(Instant),
}

impl Conn {
    fn new(id: u64) -> Conn {
        Conn {
            id,
            activity: Mutex::new(Activity {
                phase: Phase::Idle,
                since: Instant::now(),
                in_flight: 0,
            }),
            evict: Semaphore::new(0),
        }
    }

    fn read_some(&self) {
        let mut a = lock(&self.activity);
        if a.phase == Phase::Idle {
            a.phase = Phase::Head;
            a.since = Instant::now();
        }
    }

    /// A TLS handshake finished: the wait for the first request starts now.
    fn handshaken(&self) {
        let mut a = lock(&self.activity);
        if a.phase == Phase::Idle {
            a.since = Instant::now();
        }
    }

    fn wrote_some(&self) {
        let mut a = lock(&self.activity);
        if a.phase == Phase::Idle {
            a.since = Instant::now();
        }
    }

    fn request_started(self: &Arc<Self>) -> Serving {
        let mut a = lock(&self.activity);
        a.in_flight += 1;
        a.phase = Phase::Busy;
        Serving(self.clone())
    }

    /// Close or not, at `now`: the idle and head deadlines, and at shutdown
    /// (`draining`) a half-sent head is cut. (An idle connection then is
    /// closed by hyper's graceful shutdown, once its last answer is out.)
    ///
    /// Phase changes wake nothing (that would cost on every request): the
    /// next look is never more than `header_read_timeout` away, and a look
    /// sets the exact deadline of the phase it finds, so a head that starts
    /// arriving meanwhile still gets exactly `header_read_timeout`.
    fn check(&self, now: Instant, limits: &Limits, draining: bool) -> Check {
        let a = lock(&self.activity);
        let soon = now + limits.header_read_timeout;
        let timeout = match a.phase {
            // The route's own timeouts bound this.
            Phase::Busy => return Check::Again(soon),
            Phase::Head if draining => return Check::Close(End::CutHead),
            Phase::Head => limits.header_read_timeout,
            Phase::Idle => limits.idle_timeout,
        };
        let deadline = a.since + timeout;
        if now >= deadline {
            Check::Close(End::TimedOut)
        } else {
            Check::Again(deadline.min(soon))
        }
    }
}

/// A request being served; dropping it (answered, or abandoned) counts
/// it done.
struct Serving(Arc<Conn>);

impl Drop for Serving {
    fn drop(&mut self) {
        let mut a = lock(&self.0.activity);
        a.in_flight = a.in_flight.saturating_sub(1);
        if a.in_flight == 0 {
            a.phase = Phase::Idle;
            a.since = Instant::now();
        }
    }
}

/// The connection's byte stream, noting when bytes move.
struct Watched<I> {
    io: I,
    conn: Arc<Conn>,
}

impl<I: AsyncRead + Unpin> AsyncRead for Watched<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let poll = Pin::new(&mut self.io).poll_read(cx, buf);
        if matches!(poll, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.conn.read_some();
        }
        poll
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Watched<I> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.io).poll_write(cx, buf);
        if matches!(poll, Poll::Ready(Ok(n)) if n > 0) {
            self.conn.wrote_some();
        }
        poll
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        if matches!(poll, Poll::Ready(Ok(n)) if n > 0) {
            self.conn.wrote_some();
        }
        poll
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// Counts events and says when to log them: the first, then at most once
/// per [`LOG_EVERY`] with the count since the last log.
struct RateLimited {
    last: Option<Instant>,
    count: u64,
}

impl RateLimited {
    fn new() -> RateLimited {
        RateLimited {
            last: None,
            count: 0,
        }
    }

    fn hit(&mut self) -> Option<u64> {
        self.count += 1;
        let now = Instant::now();
        if self.last.is_some_and(|t| now < t + LOG_EVERY) {
            return None;
        }
        self.last = Some(now);
        Some(std::mem::take(&mut self.count))
    }
}

/// A poisoned lock only means another connection's task panicked while
/// holding it; the bookkeeping inside is still usable.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits {
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            max_connections: 1024,
            shutdown_timeout: Duration::from_secs(20),
        }
    }

    #[test]
    fn the_cap_fits_the_open_files_limit() {
        let mut l = limits();
        assert!(!l.fit_open_files(1 << 20));
        assert_eq!(l.max_connections, 1024);
        assert!(l.fit_open_files(1024));
        assert_eq!(l.max_connections, 1024 - RESERVED_FDS as usize);
        let mut l = limits();
        l.fit_open_files(100);
        assert_eq!(
            l.max_connections, 50,
            "half when the reserve would leave less"
        );
    }

    #[test]
    fn idle_then_head_then_busy_deadlines() {
        let l = limits();
        let conn = Arc::new(Conn::new(0));
        let t0 = lock(&conn.activity).since;
        assert_eq!(
            conn.check(t0, &l, false),
            Check::Again(t0 + l.header_read_timeout),
            "idle: looked at again within the header timeout"
        );
        let late = t0 + l.idle_timeout - Duration::from_secs(1);
        assert_eq!(
            conn.check(late, &l, false),
            Check::Again(t0 + l.idle_timeout)
        );
        assert_eq!(
            conn.check(t0 + l.idle_timeout, &l, false),
            Check::Close(End::TimedOut)
        );
        conn.read_some();
        let t1 = lock(&conn.activity).since;
        assert_eq!(
            conn.check(t1, &l, false),
            Check::Again(t1 + l.header_read_timeout),
            "a started head has the shorter deadline"
        );
        conn.read_some();
        assert_eq!(
            lock(&conn.activity).since,
            t1,
            "more bytes of the head do not extend it"
        );
        assert_eq!(conn.check(t1, &l, true), Check::Close(End::CutHead));
        let serving = conn.request_started();
        let far = t1 + Duration::from_secs(3600);
        assert!(
            matches!(conn.check(far, &l, false), Check::Again(_)),
            "a request in progress is bounded by its route"
        );
        assert!(matches!(conn.check(far, &l, true), Check::Again(_)));
        drop(serving);
        assert_eq!(lock(&conn.activity).phase, Phase::Idle);
    }

    #[tokio::test]
    async fn at_the_cap_the_longest_waiting_connection_makes_room() {
        let mut l = limits();
        l.max_connections = 2;
        let server = Server::new(l);
        let p1 = server.slot().await;
        let first = server.register();
        let p2 = server.slot().await;
        let busy = server.register();
        let _serving = busy.request_started();
        // Full: the idle one is evicted, not the busy one.
        let waiting = tokio::spawn({
            let slots = server.slots.clone();
            async move { slots.acquire_owned().await.unwrap() }
        });
        assert!(server.evict_longest_waiting());
        assert!(first.evict.is_closed());
        assert!(!busy.evict.is_closed());
        drop(p1);
        let _slot = waiting.await.unwrap();
        server.ended(first.id, End::Evicted);
        assert!(
            !server.evict_longest_waiting(),
            "nothing to evict when every connection is serving a request"
        );
        drop(p2);
    }
}
