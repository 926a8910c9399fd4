//! A TCP relay the test owns, between the worker and one service: faults on it touch only the
//! worker under test, never the shared PostgreSQL or RabbitMQ other tests use.
//!
//! - `Pass`: bytes flow.
//! - `Blackhole`: connections stay open, nothing flows either way (new ones are accepted and
//!   then hear nothing), like a dropped route; held bytes flow again on `Pass`, as TCP's
//!   retransmits would deliver them.
//! - `Down`: every connection is reset and the port refuses connections, like a stopped or
//!   restarting server.
//! - `Slow(d)`: every chunk waits `d`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Pass,
    Blackhole,
    Down,
    Slow(Duration),
}

pub struct Relay {
    pub port: u16,
    mode: watch::Sender<Mode>,
    accepted: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Relay {
    /// Listens on a free 127.0.0.1 port and forwards to `upstream`.
    pub async fn start(upstream: SocketAddr) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("relay bind");
        let port = listener.local_addr().expect("relay addr").port();
        let (mode, rx) = watch::channel(Mode::Pass);
        let accepted = Arc::new(AtomicUsize::new(0));
        let task = tokio::spawn(accept_loop(listener, port, upstream, rx, accepted.clone()));
        Relay {
            port,
            mode,
            accepted,
            task,
        }
    }

    pub fn set(&self, mode: Mode) {
        self.mode.send_replace(mode);
    }

    /// Connections accepted so far (a wedged broker's retries show up here).
    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::Relaxed)
    }

    /// `scheme://…@127.0.0.1:<port>/…`: `url` with its host and port replaced by the relay's.
    pub fn url_for(&self, url: &str) -> String {
        let (scheme, rest) = url.split_once("://").expect("url has a scheme");
        let (auth, path) = rest.split_once('/').unwrap_or((rest, ""));
        let user = auth.rsplit_once('@').map(|(u, _)| format!("{u}@"));
        format!(
            "{scheme}://{}127.0.0.1:{}/{path}",
            user.unwrap_or_default(),
            self.port
        )
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn accept_loop(
    listener: TcpListener,
    port: u16,
    upstream: SocketAddr,
    mut mode: watch::Receiver<Mode>,
    accepted: Arc<AtomicUsize>,
) {
    let mut listener = Some(listener);
    loop {
        let now = *mode.borrow();
        if now == Mode::Down {
            // Close the port: connects are refused until the relay comes back.
            listener = None;
            if mode.wait_for(|m| *m != Mode::Down).await.is_err() {
                return;
            }
            continue;
        }
        let l = match &listener {
            Some(l) => l,
            None => match bind_again(port).await {
                Some(l) => listener.insert(l),
                None => return,
            },
        };
        tokio::select! {
            changed = mode.changed() => if changed.is_err() { return },
            conn = l.accept() => if let Ok((client, _)) = conn {
                accepted.fetch_add(1, Ordering::Relaxed);
                tokio::spawn(connection(client, upstream, mode.clone()));
            },
        }
    }
}

async fn bind_again(port: u16) -> Option<TcpListener> {
    // The old socket may linger for a moment after the close.
    for _ in 0..100 {
        if let Ok(l) = TcpListener::bind(("127.0.0.1", port)).await {
            return Some(l);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    None
}

async fn connection(client: TcpStream, upstream: SocketAddr, mode: watch::Receiver<Mode>) {
    let Ok(server) = TcpStream::connect(upstream).await else {
        reset(client);
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (cr, cw) = client.into_split();
    let (sr, sw) = server.into_split();
    // One side closing ends both: a client that dies (kill -9) closes its server connection
    // too, as it would without a relay, so the server rolls back what it held open.
    let closed = CancellationToken::new();
    let up = pump(cr, sw, mode.clone(), closed.clone());
    let down = pump(sr, cw, mode, closed);
    let ((r1, w1), (r2, w2)) = tokio::join!(up, down);
    // Down: reset both sides rather than closing politely, like a killed server.
    if let (Ok(c), Ok(s)) = (r1.reunite(w2), r2.reunite(w1)) {
        reset(c);
        reset(s);
    }
}

fn reset(s: TcpStream) {
    // Linger 0 sends a RST at once; the deprecation is about a non-zero linger blocking drop.
    #[allow(deprecated)]
    let _ = s.set_linger(Some(Duration::ZERO));
    drop(s);
}

/// Copies `from` to `to` under the relay's mode until either side closes or the relay goes
/// `Down`. Returns the halves so the caller can reset them.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut mode: watch::Receiver<Mode>,
    closed: CancellationToken,
) -> (
    tokio::net::tcp::OwnedReadHalf,
    tokio::net::tcp::OwnedWriteHalf,
) {
    let _close_both = closed.clone().drop_guard();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        // Held while blackholed: nothing is read, so nothing is acknowledged upstream either
        // beyond the kernel's buffers.
        let now = *mode.borrow();
        if now == Mode::Blackhole && mode.wait_for(|m| *m != Mode::Blackhole).await.is_err() {
            return (from, to);
        }
        let now = *mode.borrow();
        if now == Mode::Down {
            return (from, to);
        }
        let n = tokio::select! {
            r = from.read(&mut buf) => match r {
                Ok(0) | Err(_) => return (from, to),
                Ok(n) => n,
            },
            changed = mode.changed() => {
                if changed.is_err() {
                    return (from, to);
                }
                continue;
            }
            () = closed.cancelled() => return (from, to),
        };
        loop {
            let now = *mode.borrow();
            match now {
                Mode::Pass => break,
                Mode::Slow(d) => {
                    tokio::time::sleep(d).await;
                    break;
                }
                Mode::Down => return (from, to),
                Mode::Blackhole => {}
            }
            if mode.changed().await.is_err() {
                return (from, to);
            }
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return (from, to);
        }
    }
}
