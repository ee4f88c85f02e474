//! Serving the router over TCP, with what `axum::serve` leaves out and a relay on the internet
//! needs: a bound on open connections per client IP and in all (answered with the same JSON
//! refusal as every other one, then closed), a time limit on sending request headers (so a
//! slowloris client trickling a header a byte at a time, or a connection that never says anything,
//! is closed; idle keep-alive connections go the same way), and a time limit on a response waiting
//! for its client to read (so a client that stops reading a checkpoint download does not hold its
//! connection and buffers forever). Each request carries the connection's address as
//! [`ConnectInfo`] for the per-IP request limits.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tower::ServiceExt as _;

use crate::limits::{HttpRefusals, Limits, ip_key};

/// How long the accept loop pauses after the OS refuses to accept (out of file descriptors).
const ACCEPT_BACKOFF: Duration = Duration::from_millis(200);

/// Serves `router` on `listener` until `shutdown` resolves, then tells every open connection to
/// finish its request and close, and returns once all have (the caller bounds that wait).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Arc<Limits>,
    refusals: HttpRefusals,
    shutdown: impl Future<Output = ()> + Send,
) -> io::Result<()> {
    let open = Arc::new(Open::default());
    let (stop_tx, stop_rx) = watch::channel(false);
    let (alive_tx, alive_rx) = watch::channel(());
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new()).header_read_timeout(limits.header_timeout).keep_alive(true);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, remote) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // EMFILE and friends: the connection waits in the backlog; try again shortly.
                    tracing::warn!("cannot accept an HTTP connection: {e}");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let slot = match open.take(remote.ip(), &limits) {
            Ok(slot) => slot,
            Err(refusal) => {
                refusals.count(refusal.kind());
                tracing::debug!(%remote, "HTTP connection refused: {}", refusal.message());
                refuse(&stream, &refusal);
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let service = router.clone().map_request(move |mut request: axum::http::Request<Incoming>| {
            request.extensions_mut().insert(ConnectInfo(remote));
            request
        });
        let io = TokioIo::new(Watched::new(stream, limits.write_stall));
        let activity = io.inner().activity.clone();
        let connection = http.serve_connection(io, TowerToHyperService::new(service));
        let mut stop = stop_rx.clone();
        let alive = alive_rx.clone();
        let refusals = refusals.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let _alive = alive;
            let mut connection = std::pin::pin!(connection);
            let result = tokio::select! {
                result = connection.as_mut() => result,
                changed = stop.changed() => {
                    if changed.is_ok() {
                        connection.as_mut().graceful_shutdown();
                    }
                    connection.as_mut().await
                }
            };
            if let Err(e) = result {
                let activity = *activity.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                if e.is_timeout() && activity.mid_request() {
                    refusals.count("slow_headers");
                } else if activity.stalled {
                    refusals.count("slow_reader");
                }
                tracing::debug!(%remote, "HTTP connection ended: {e}");
            }
        });
    }
    drop(listener);
    let _ = stop_tx.send(true);
    drop(alive_rx);
    alive_tx.closed().await;
    Ok(())
}

/// Answers a refused connection in one non-blocking write and closes it.
fn refuse(stream: &TcpStream, refusal: &Refusal) {
    let body = serde_json::to_string(&tabswarm_protocol::api::ApiError {
        error: refusal.kind().to_owned(),
        message: refusal.message(),
    })
    .unwrap_or_default();
    let response = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: 5\r\n\
         connection: close\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    // Best effort: a client whose buffer is full gets the close alone.
    let _ = stream.try_write(response.as_bytes());
}

/// Open connections, per client key and in all.
#[derive(Debug, Default)]
struct Open {
    counts: Mutex<(u32, HashMap<IpAddr, u32>)>,
}

/// Why a connection was refused at once.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Refusal {
    PerIp { ip: IpAddr, limit: u32 },
    Total { limit: u32 },
}

impl Refusal {
    fn kind(&self) -> &'static str {
        match self {
            Refusal::PerIp { .. } => "connections_per_ip",
            Refusal::Total { .. } => "connections",
        }
    }

    fn message(&self) -> String {
        match self {
            Refusal::PerIp { ip, limit } => {
                format!("too many open connections from {ip} (the limit is {limit}); close some and try again")
            }
            Refusal::Total { limit } => {
                format!("the relay has {limit} connections open, its limit; try again in a few seconds")
            }
        }
    }
}

/// One open connection's place in [`Open`], given back when dropped.
#[derive(Debug)]
struct Slot {
    open: Arc<Open>,
    key: Option<IpAddr>,
}

impl Open {
    fn take(self: &Arc<Self>, ip: IpAddr, limits: &Limits) -> Result<Slot, Refusal> {
        let mut counts = self.counts.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let (total, per_ip) = &mut *counts;
        if limits.http_connections > 0 && *total >= limits.http_connections {
            return Err(Refusal::Total { limit: limits.http_connections });
        }
        let key = limits.bounds_connections_from(ip).then(|| ip_key(ip));
        if let Some(key) = key {
            let n = per_ip.entry(key).or_default();
            if limits.http_connections_per_ip > 0 && *n >= limits.http_connections_per_ip {
                return Err(Refusal::PerIp { ip: ip.to_canonical(), limit: limits.http_connections_per_ip });
            }
            *n += 1;
        }
        *total += 1;
        Ok(Slot { open: self.clone(), key })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut counts = self.open.counts.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let (total, per_ip) = &mut *counts;
        *total = total.saturating_sub(1);
        if let Some(key) = self.key
            && let Some(n) = per_ip.get_mut(&key)
        {
            *n -= 1;
            if *n == 0 {
                per_ip.remove(&key);
            }
        }
    }
}

/// What a connection has done, for telling a slow client from an idle keep-alive one.
#[derive(Debug, Clone, Copy, Default)]
struct Activity {
    /// Bytes read since the last response bytes were written.
    read_since_write: bool,
    /// Anything written yet.
    wrote: bool,
    /// A write waited longer than the stall limit.
    stalled: bool,
}

impl Activity {
    /// Inside a request: part of one read, or nothing at all said on a new connection.
    fn mid_request(self) -> bool {
        self.read_since_write || !self.wrote
    }
}

/// A TCP stream whose writes fail once they have waited `stall` for the client to read.
struct Watched {
    stream: TcpStream,
    stall: Duration,
    waiting: Option<Pin<Box<tokio::time::Sleep>>>,
    activity: Arc<Mutex<Activity>>,
}

impl Watched {
    fn new(stream: TcpStream, stall: Duration) -> Self {
        Self { stream, stall, waiting: None, activity: Arc::default() }
    }

    fn note(&self, change: impl FnOnce(&mut Activity)) {
        change(&mut self.activity.lock().unwrap_or_else(std::sync::PoisonError::into_inner));
    }

    /// Passes a write's outcome on; a write still pending after `stall` becomes an error.
    fn watch<T>(&mut self, cx: &mut Context<'_>, outcome: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
        match outcome {
            Poll::Ready(result) => {
                self.waiting = None;
                Poll::Ready(result)
            }
            Poll::Pending => {
                let stall = self.stall;
                let waiting = self.waiting.get_or_insert_with(|| Box::pin(tokio::time::sleep(stall)));
                let fired = waiting.as_mut().poll(cx).is_ready();
                if fired {
                    self.note(|a| a.stalled = true);
                    Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!("the client read nothing for {stall:?}"),
                    )))
                } else {
                    Poll::Pending
                }
            }
        }
    }
}

impl AsyncRead for Watched {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let outcome = Pin::new(&mut self.stream).poll_read(cx, buf);
        if matches!(outcome, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.note(|a| a.read_since_write = true);
        }
        outcome
    }
}

impl AsyncWrite for Watched {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let outcome = Pin::new(&mut self.stream).poll_write(cx, buf);
        if matches!(outcome, Poll::Ready(Ok(n)) if n > 0) {
            self.note(|a| {
                a.wrote = true;
                a.read_since_write = false;
            });
        }
        self.watch(cx, outcome)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let outcome = Pin::new(&mut self.stream).poll_flush(cx);
        self.watch(cx, outcome)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

/// The address a request came in from, when it came over a socket (absent in tests that call the
/// router directly).
pub fn connection_of(request: &axum::extract::Request) -> Option<SocketAddr> {
    request.extensions().get::<ConnectInfo<SocketAddr>>().map(|ConnectInfo(addr)| *addr)
}

#[cfg(test)]
mod tests;
