//! A TCP proxy between the binary and a test server, measuring what crosses the wire: bytes
//! from the server to the client, connections opened, and the largest number of connections
//! with a request in flight at once.
//!
//! HTTP/1.1 clients keep idle connections open for reuse, so open connections over-count what
//! is in flight. The proxy therefore follows the HTTP/1.1 exchanges on each connection: a
//! request is in flight from its first byte until the end of its response, found from the
//! response head (`Content-Length`, `Transfer-Encoding: chunked`, no body for `HEAD`, 1xx, 204
//! and 304). It assumes no pipelining (reqwest and hyper do not pipeline): a new request starts
//! only once the previous response is complete.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// Counters shared by the proxy's threads.
#[derive(Default)]
pub struct ProxyStats {
    pub bytes_down: AtomicU64,
    pub bytes_up: AtomicU64,
    pub connections: AtomicU64,
    /// Connections open now, and the most at once.
    pub open: AtomicUsize,
    pub max_open: AtomicUsize,
    /// Connections with a request in flight now, and the most at once.
    pub busy: AtomicUsize,
    pub max_busy: AtomicUsize,
}

impl ProxyStats {
    fn raise(max: &AtomicUsize, now: usize) {
        max.fetch_max(now, Ordering::SeqCst);
    }
}

/// The proxy; stops accepting and closes its listener on drop.
pub struct Proxy {
    pub port: u16,
    pub stats: Arc<ProxyStats>,
    stop: Arc<AtomicBool>,
    accept: Option<JoinHandle<()>>,
}

/// Where one connection is in its request/response exchange.
struct ConnState {
    /// A request has been sent and its response is not complete yet.
    busy: bool,
    /// Whether the request in flight is a `HEAD` (its response has no body).
    head_request: bool,
    response: Response,
}

/// Progress through the response to the request in flight.
enum Response {
    /// Reading the status line and headers (bytes so far).
    Head(Vec<u8>),
    /// `n` more body bytes.
    Body(u64),
    /// A chunked body: reading a chunk-size line (bytes so far).
    ChunkSize(Vec<u8>),
    /// `n` more bytes of chunk data plus its CRLF.
    ChunkData(u64),
    /// The trailer after the last chunk: lines until an empty one (bytes so far).
    Trailer(Vec<u8>),
    /// A body delimited by the end of the connection.
    UntilClose,
}

impl ConnState {
    /// Feed bytes the server sent; returns how many responses completed.
    fn feed_down(&mut self, mut data: &[u8]) -> usize {
        let mut completed = 0;
        while !data.is_empty() {
            match &mut self.response {
                Response::Head(buf) => {
                    let before = buf.len();
                    buf.extend_from_slice(data);
                    let Some(end) = find(buf, b"\r\n\r\n") else {
                        return completed;
                    };
                    let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
                    data = &data[end + 4 - before..];
                    let status: u16 = head
                        .split_whitespace()
                        .nth(1)
                        .and_then(|s| s.parse().ok())
                        .unwrap_or(0);
                    let header = |name: &str| {
                        head.lines()
                            .filter_map(|l| l.split_once(':'))
                            .find(|(k, _)| k.trim() == name)
                            .map(|(_, v)| v.trim().to_string())
                    };
                    if (100..200).contains(&status) {
                        self.response = Response::Head(Vec::new());
                        continue;
                    }
                    let chunked =
                        header("transfer-encoding").is_some_and(|v| v.contains("chunked"));
                    let len = header("content-length").and_then(|v| v.parse::<u64>().ok());
                    self.response = if self.head_request || status == 204 || status == 304 {
                        Response::Body(0)
                    } else if chunked {
                        Response::ChunkSize(Vec::new())
                    } else if let Some(n) = len {
                        Response::Body(n)
                    } else {
                        Response::UntilClose
                    };
                }
                Response::Body(n) => {
                    let take = (*n).min(data.len() as u64);
                    *n -= take;
                    data = &data[take as usize..];
                }
                Response::ChunkSize(buf) => {
                    let before = buf.len();
                    buf.extend_from_slice(data);
                    let Some(end) = find(buf, b"\r\n") else {
                        return completed;
                    };
                    let line = String::from_utf8_lossy(&buf[..end]).to_string();
                    data = &data[end + 2 - before..];
                    let size = u64::from_str_radix(line.split(';').next().unwrap_or("").trim(), 16)
                        .unwrap_or(0);
                    self.response = if size == 0 {
                        Response::Trailer(Vec::new())
                    } else {
                        Response::ChunkData(size + 2)
                    };
                    continue;
                }
                Response::ChunkData(n) => {
                    let take = (*n).min(data.len() as u64);
                    *n -= take;
                    data = &data[take as usize..];
                    if *n == 0 {
                        self.response = Response::ChunkSize(Vec::new());
                    }
                    continue;
                }
                Response::Trailer(buf) => {
                    let before = buf.len();
                    buf.extend_from_slice(data);
                    // The trailer ends with an empty line: CRLF right away, or CRLF CRLF.
                    let end = if buf.starts_with(b"\r\n") {
                        Some(2)
                    } else {
                        find(buf, b"\r\n\r\n").map(|e| e + 4)
                    };
                    let Some(end) = end else {
                        return completed;
                    };
                    data = &data[end - before..];
                    self.response = Response::Body(0);
                }
                Response::UntilClose => return completed,
            }
            if matches!(self.response, Response::Body(0)) && self.busy {
                self.busy = false;
                self.response = Response::Head(Vec::new());
                completed += 1;
            }
        }
        // A response head or an empty body can complete exactly at the end of the data.
        if matches!(self.response, Response::Body(0)) && self.busy {
            self.busy = false;
            self.response = Response::Head(Vec::new());
            completed += 1;
        }
        completed
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

impl Proxy {
    /// Listen on a free 127.0.0.1 port and forward every connection to `upstream`.
    pub fn start(upstream: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("proxy: bind");
        let port = listener.local_addr().expect("proxy: address").port();
        listener
            .set_nonblocking(true)
            .expect("proxy: non-blocking listener");
        let stats = Arc::new(ProxyStats::default());
        let stop = Arc::new(AtomicBool::new(false));
        let accept = {
            let stats = stats.clone();
            let stop = stop.clone();
            std::thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    match listener.accept() {
                        Ok((client, _)) => {
                            let stats = stats.clone();
                            std::thread::spawn(move || serve(client, upstream, &stats));
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                            std::thread::sleep(Duration::from_millis(2));
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(10)),
                    }
                }
            })
        };
        Proxy {
            port,
            stats,
            stop,
            accept: Some(accept),
        }
    }

    /// Zero the counters (before the run to be measured).
    pub fn reset(&self) {
        let s = &self.stats;
        s.bytes_down.store(0, Ordering::SeqCst);
        s.bytes_up.store(0, Ordering::SeqCst);
        s.connections.store(0, Ordering::SeqCst);
        s.max_open
            .store(s.open.load(Ordering::SeqCst), Ordering::SeqCst);
        s.max_busy
            .store(s.busy.load(Ordering::SeqCst), Ordering::SeqCst);
    }

    pub fn bytes_down(&self) -> u64 {
        self.stats.bytes_down.load(Ordering::SeqCst)
    }

    pub fn max_busy(&self) -> usize {
        self.stats.max_busy.load(Ordering::SeqCst)
    }

    pub fn max_open(&self) -> usize {
        self.stats.max_open.load(Ordering::SeqCst)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(h) = self.accept.take() {
            let _ = h.join();
        }
    }
}

fn serve(client: TcpStream, upstream: SocketAddr, stats: &Arc<ProxyStats>) {
    let Ok(server) = TcpStream::connect(upstream) else {
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (Ok(c2), Ok(s2)) = (client.try_clone(), server.try_clone()) else {
        return;
    };
    stats.connections.fetch_add(1, Ordering::SeqCst);
    let open = stats.open.fetch_add(1, Ordering::SeqCst) + 1;
    ProxyStats::raise(&stats.max_open, open);
    let state = Arc::new(Mutex::new(ConnState {
        busy: false,
        head_request: false,
        response: Response::Head(Vec::new()),
    }));
    let up = {
        let stats = stats.clone();
        let state = state.clone();
        std::thread::spawn(move || pump(client, s2, &stats, &state, true))
    };
    pump(server, c2, stats, &state, false);
    let _ = up.join();
    if let Ok(s) = state.lock() {
        if s.busy {
            stats.busy.fetch_sub(1, Ordering::SeqCst);
        }
    }
    stats.open.fetch_sub(1, Ordering::SeqCst);
}

/// Copy `from` → `to` until EOF. `upward`: client → server (a request starts or continues),
/// else server → client (bytes counted as downloaded, responses followed).
fn pump(
    mut from: TcpStream,
    mut to: TcpStream,
    stats: &ProxyStats,
    state: &Mutex<ConnState>,
    upward: bool,
) {
    let mut buf = vec![0u8; 64 << 10];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if let Ok(mut s) = state.lock() {
            if upward {
                if !s.busy {
                    s.busy = true;
                    s.head_request = buf[..n].starts_with(b"HEAD ");
                    s.response = Response::Head(Vec::new());
                    let now = stats.busy.fetch_add(1, Ordering::SeqCst) + 1;
                    ProxyStats::raise(&stats.max_busy, now);
                }
            } else {
                let done = s.feed_down(&buf[..n]);
                if done > 0 {
                    stats.busy.fetch_sub(done, Ordering::SeqCst);
                }
            }
        }
        // Count and forward after the bookkeeping, so that the client cannot see the end of a
        // response (and start the next request) before it is recorded.
        if upward {
            stats.bytes_up.fetch_add(n as u64, Ordering::SeqCst);
        } else {
            stats.bytes_down.fetch_add(n as u64, Ordering::SeqCst);
        }
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = to.shutdown(Shutdown::Write);
    let _ = from.shutdown(Shutdown::Read);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(head: bool) -> ConnState {
        ConnState {
            busy: true,
            head_request: head,
            response: Response::Head(Vec::new()),
        }
    }

    #[test]
    fn responses_end_where_http_says() {
        let mut s = state(false);
        assert_eq!(
            s.feed_down(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nab"),
            0
        );
        assert_eq!(s.feed_down(b"cde"), 1);
        let mut s = state(true);
        assert_eq!(
            s.feed_down(b"HTTP/1.1 200 OK\r\ncontent-length: 500\r\n\r\n"),
            1
        );
        let mut s = state(false);
        assert_eq!(
            s.feed_down(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n"),
            0
        );
        assert_eq!(s.feed_down(b"0\r\n"), 0);
        assert_eq!(s.feed_down(b"\r\n"), 1);
        let mut s = state(false);
        assert_eq!(
            s.feed_down(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n"),
            1
        );
    }
}
