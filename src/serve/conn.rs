//! The connection layer of the HTTP side: an accept loop with a cap on open connections,
//! header-read and TLS-handshake timeouts, and counters of what those limits did.
//!
//! Why not `axum::serve`: it has neither a connection cap nor a header timeout, and with
//! 1,024 file descriptors (systemd's default soft limit) about a thousand idle connections made
//! every scrape time out. Here a new connection beyond [`MAX_CONNECTIONS`] evicts the oldest
//! open one that is not answering a request (a Prometheus scrape sends its request at once, an
//! idle flood does not, so the scrape is served and the flood pays; when every slot is
//! answering a request, the newcomer is closed instead), request heads are limited to
//! [`MAX_HEAD_BYTES`], a connection that does not complete a request head
//! within [`HEADER_READ_TIMEOUT`] — the first one, or the next one on a kept-alive connection —
//! is closed (hyper's `header_read_timeout`, which also bounds a slowloris head), and `accept`
//! failing for lack of descriptors backs off instead of spinning.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::sync::oneshot;

/// Connections open at once. Each costs a descriptor and a task with its buffers (a few KiB),
/// so 256 stay well inside systemd's default 1,024 descriptors next to the capture handles,
/// the store and the state files, and are far more than the few scrapers a sensor has.
pub const MAX_CONNECTIONS: usize = 256;

/// Longest time from a connection's start (or the end of its previous response) to the end of
/// a request head: idle and slowloris connections are closed after it.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Largest request head (request line and headers) read into a connection's buffer: a scrape's
/// head is a few hundred bytes, and the cap bounds what the open connections can pin to
/// `MAX_CONNECTIONS` × 16 KiB.
pub const MAX_HEAD_BYTES: usize = 16 * 1024;

/// Longest TLS handshake.
pub const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Pause after `accept` fails (out of descriptors, typically) before the next try.
pub const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// What the connection layer did, exported with `/metrics`.
#[derive(Debug, Default)]
pub struct Stats {
    /// Connections accepted.
    pub accepted: AtomicU64,
    /// Connections closed to make room for a newer one (the cap was reached).
    pub evicted: AtomicU64,
    /// New connections closed at once because every slot was answering a request.
    pub rejected: AtomicU64,
    /// Connections closed because no request head (or TLS handshake) completed in time.
    pub timed_out: AtomicU64,
    /// `accept` failures (out of descriptors, ...).
    pub accept_errors: AtomicU64,
    /// Connections open now.
    pub open: AtomicU64,
}

impl Stats {
    /// The counters in the Prometheus text format.
    ///
    /// # Errors
    /// A registry error (only on a programming mistake).
    pub fn encode(&self) -> prometheus::Result<Vec<u8>> {
        use prometheus::{Encoder, IntCounterVec, IntGauge, Opts, Registry, TextEncoder};
        let r = Registry::new();
        let conns = IntCounterVec::new(
            Opts::new("shadowtap_http_connections_total", "Connections to the HTTP side, by event: accepted (every connection), and what ended some of them: evicted (closed for a newer one at the cap), rejected (closed at once: every slot busy), timed_out (no request head or TLS handshake in time)."),
            &["event"],
        )?;
        r.register(Box::new(conns.clone()))?;
        for (event, c) in [("accepted", &self.accepted), ("evicted", &self.evicted), ("rejected", &self.rejected), ("timed_out", &self.timed_out)] {
            conns.with_label_values(&[event]).inc_by(c.load(Ordering::Relaxed));
        }
        let errors = IntCounterVec::new(Opts::new("shadowtap_http_accept_errors_total", "Failed accepts of the HTTP side (out of file descriptors, typically); each backs off briefly."), &[])?;
        r.register(Box::new(errors.clone()))?;
        errors.with_label_values(&[] as &[&str]).inc_by(self.accept_errors.load(Ordering::Relaxed));
        let open = IntGauge::new("shadowtap_http_connections_open", "Connections open on the HTTP side now.")?;
        r.register(Box::new(open.clone()))?;
        open.set(self.open.load(Ordering::Relaxed) as i64);
        let mut out = Vec::new();
        TextEncoder::new().encode(&r.gather(), &mut out)?;
        Ok(out)
    }
}

/// The open connections, oldest first, each with the handle that closes it when dropped.
#[derive(Debug)]
pub struct Slots<T> {
    cap: usize,
    next: u64,
    open: BTreeMap<u64, T>,
}

impl<T> Slots<T> {
    /// At most `cap` (at least 1) open at once.
    pub fn new(cap: usize) -> Self {
        Slots { cap: cap.max(1), next: 0, open: BTreeMap::new() }
    }

    /// Admits a new connection: its id, and, when the cap was reached, the handle of the oldest
    /// connection that is not `busy` (answering a request). When every open connection is busy,
    /// the newcomer's handle comes back as the error: close it.
    ///
    /// # Errors
    /// The handle of the connection that could not be admitted.
    pub fn admit(&mut self, handle: T, busy: impl Fn(&T) -> bool) -> Result<(u64, Option<T>), T> {
        let evicted = if self.open.len() >= self.cap {
            let Some(oldest_idle) = self.open.iter().find(|(_, h)| !busy(h)).map(|(id, _)| *id) else {
                return Err(handle);
            };
            self.open.remove(&oldest_idle)
        } else {
            None
        };
        let id = self.next;
        self.next += 1;
        self.open.insert(id, handle);
        Ok((id, evicted))
    }

    /// Forgets a connection that ended (no-op if it was evicted).
    pub fn release(&mut self, id: u64) {
        self.open.remove(&id);
    }

    /// Open connections.
    pub fn len(&self) -> usize {
        self.open.len()
    }

    /// No connection open.
    pub fn is_empty(&self) -> bool {
        self.open.is_empty()
    }
}

/// Accepts and serves connections with `app` until `stopped` completes.
///
/// # Errors
/// The listener could not be registered with the runtime.
pub async fn accept_loop(
    listener: std::net::TcpListener,
    app: axum::Router,
    tls: Option<Arc<rustls::ServerConfig>>,
    stats: Arc<Stats>,
    stopped: impl std::future::Future<Output = ()>,
) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::from_std(listener)?;
    let slots: Arc<Mutex<Slots<Slot>>> = Arc::new(Mutex::new(Slots::new(MAX_CONNECTIONS)));
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    tokio::pin!(stopped);
    loop {
        let stream = tokio::select! {
            () = &mut stopped => return Ok(()),
            r = listener.accept() => match r {
                Ok((s, _)) => s,
                Err(_) => {
                    stats.accept_errors.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            },
        };
        stats.accepted.fetch_add(1, Ordering::Relaxed);
        let (close_tx, close_rx) = oneshot::channel();
        let busy = Arc::new(AtomicBool::new(false));
        let admitted = match slots.lock() {
            Ok(mut s) => s.admit(Slot { close: close_tx, busy: Arc::clone(&busy) }, |h| h.busy.load(Ordering::Relaxed)),
            Err(_) => continue,
        };
        let Ok((id, evicted)) = admitted else {
            // Every slot is answering a request: this one is closed (dropped) at once.
            stats.rejected.fetch_add(1, Ordering::Relaxed);
            continue;
        };
        if let Some(oldest) = evicted {
            // Dropping its sender wakes its task, which closes it.
            drop(oldest.close);
            stats.evicted.fetch_add(1, Ordering::Relaxed);
        }
        stats.open.fetch_add(1, Ordering::Relaxed);
        let (app, stats, slots, acceptor) = (app.clone(), Arc::clone(&stats), Arc::clone(&slots), acceptor.clone());
        tokio::spawn(async move {
            tokio::select! {
                () = serve_one(stream, app, acceptor, busy, &stats) => {}
                _ = close_rx => {}
            }
            stats.open.fetch_sub(1, Ordering::Relaxed);
            if let Ok(mut s) = slots.lock() {
                s.release(id);
            }
        });
    }
}

/// An open connection as the accept loop holds it.
struct Slot {
    /// Dropping it closes the connection.
    close: oneshot::Sender<()>,
    /// The connection is answering a request (never evicted then).
    busy: Arc<AtomicBool>,
}

async fn serve_one(stream: tokio::net::TcpStream, app: axum::Router, acceptor: Option<tokio_rustls::TlsAcceptor>, busy: Arc<AtomicBool>, stats: &Stats) {
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new()).header_read_timeout(HEADER_READ_TIMEOUT).max_buf_size(MAX_HEAD_BYTES).keep_alive(true);
    // Busy from a request's head to its response (the bodies here are built in full first).
    let app = app.layer(axum::middleware::from_fn(move |req: axum::extract::Request, next: axum::middleware::Next| {
        let busy = Arc::clone(&busy);
        async move {
            busy.store(true, Ordering::Relaxed);
            let response = next.run(req).await;
            busy.store(false, Ordering::Relaxed);
            response
        }
    }));
    let service = TowerToHyperService::new(app);
    let result = match acceptor {
        None => http.serve_connection(TokioIo::new(stream), service).await,
        Some(acceptor) => match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
            Ok(Ok(tls)) => http.serve_connection(TokioIo::new(tls), service).await,
            Ok(Err(_)) => return,
            Err(_) => {
                stats.timed_out.fetch_add(1, Ordering::Relaxed);
                return;
            }
        },
    };
    if result.is_err_and(|e| e.is_timeout()) {
        stats.timed_out.fetch_add(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_oldest_idle_connection_makes_room_at_the_cap() {
        let idle = |_: &(&str, bool)| false;
        let mut s = Slots::new(2);
        let (a, none) = s.admit(("a", false), idle).unwrap_or_default();
        assert_eq!(none, None);
        let (b, none) = s.admit(("b", false), idle).unwrap_or_default();
        assert_eq!(none, None);
        let (_, evicted) = s.admit(("c", false), idle).unwrap_or_default();
        assert_eq!(evicted, Some(("a", false)), "the oldest goes");
        s.release(a); // already evicted: no-op
        assert_eq!(s.len(), 2);
        s.release(b);
        let (_, evicted) = s.admit(("d", false), idle).unwrap_or_default();
        assert_eq!(evicted, None, "room after a release");
        assert_eq!(s.len(), 2);
    }

    #[test]
    fn a_connection_answering_a_request_is_never_evicted() {
        let busy = |h: &(&str, bool)| h.1;
        let mut s = Slots::new(2);
        assert!(s.admit(("scrape", true), busy).is_ok());
        assert!(s.admit(("idle", false), busy).is_ok());
        let Ok((_, evicted)) = s.admit(("new", false), busy) else { panic!("refused") };
        assert_eq!(evicted, Some(("idle", false)), "the idle one goes, not the older busy one");
        let mut all_busy = Slots::new(1);
        assert!(all_busy.admit(("scrape", true), busy).is_ok());
        assert_eq!(all_busy.admit(("new", false), busy), Err(("new", false)), "every slot busy: the newcomer is refused");
        assert_eq!(all_busy.len(), 1);
    }

    #[test]
    fn a_cap_of_zero_still_serves_one() {
        let idle = |_: &u8| false;
        let mut s = Slots::new(0);
        assert_eq!(s.admit(1, idle), Ok((0, None)));
        assert_eq!(s.admit(2, idle), Ok((1, Some(1))));
        assert!(!s.is_empty());
    }

    #[test]
    fn the_counters_are_exposed() {
        let st = Stats::default();
        st.evicted.fetch_add(3, Ordering::Relaxed);
        st.open.fetch_add(2, Ordering::Relaxed);
        let text = String::from_utf8(st.encode().unwrap_or_default()).unwrap_or_default();
        assert!(text.contains("shadowtap_http_connections_total{event=\"evicted\"} 3"), "{text}");
        assert!(text.contains("shadowtap_http_connections_open 2"), "{text}");
        assert!(text.contains("shadowtap_http_accept_errors_total 0"), "{text}");
    }
}
