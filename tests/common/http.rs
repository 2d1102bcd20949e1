//! A small HTTP/1.1 server and client on tokio, over loopback, for the async tests, the
//! `web_fetch` example and workload W9 (included with `#[path]`): keep-alive connections,
//! `Content-Length` framing, and a server that counts what it sees (requests in flight and their
//! peak, arrival times, requests the client abandoned).
//!
//! Paths: `/echo/TEXT` answers `TEXT` after the server's latency (`?ms=N` sets it for one
//! request); `/status/CODE` answers with that status; `/close` closes the connection without an
//! answer; `/hang` never answers (until the client goes away); `/flaky/KEY?fails=K` answers
//! `429 Too Many Requests` with `retry-after: 1` (one second) to the first `K` requests for `KEY`,
//! then `KEY`.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// What the server saw.
#[derive(Debug, Default)]
pub struct Stats {
    pub in_flight: AtomicUsize,
    pub max_in_flight: AtomicUsize,
    pub requests: AtomicUsize,
    /// Requests whose client went away before the answer.
    pub abandoned: AtomicUsize,
    pub connections: AtomicUsize,
    pub arrivals: Mutex<Vec<(Instant, String)>>,
    /// Requests per `/flaky/` key so far.
    pub flaky: Mutex<std::collections::HashMap<String, usize>>,
}

impl Stats {
    /// The most requests that arrived within any window of `window`.
    pub fn max_in_window(&self, window: Duration) -> usize {
        let mut times: Vec<Instant> = self.arrivals.lock().unwrap().iter().map(|a| a.0).collect();
        times.sort();
        let mut best = 0;
        let mut j = 0;
        for i in 0..times.len() {
            while times[i].duration_since(times[j]) >= window {
                j += 1;
            }
            best = best.max(i - j + 1);
        }
        best
    }

    /// The paths requested, in arrival order.
    pub fn paths(&self) -> Vec<String> {
        self.arrivals
            .lock()
            .unwrap()
            .iter()
            .map(|a| a.1.clone())
            .collect()
    }
}

/// A server on 127.0.0.1 with a fixed latency per request, on a thread and runtime of its own
/// (stopped when dropped).
pub struct Server {
    pub addr: SocketAddr,
    pub stats: Arc<Stats>,
    _runtime: tokio::runtime::Runtime,
}

impl Server {
    pub fn start(latency: Duration) -> Server {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let listener = runtime.block_on(TcpListener::bind("127.0.0.1:0")).unwrap();
        let addr = listener.local_addr().unwrap();
        let stats = Arc::new(Stats::default());
        runtime.spawn(serve(listener, latency, Arc::clone(&stats)));
        Server {
            addr,
            stats,
            _runtime: runtime,
        }
    }
}

/// Serves `listener` forever on the current runtime.
pub async fn serve(listener: TcpListener, latency: Duration, stats: Arc<Stats>) {
    loop {
        let Ok((socket, _)) = listener.accept().await else {
            continue;
        };
        let _ = socket.set_nodelay(true);
        stats.connections.fetch_add(1, Ordering::Relaxed);
        tokio::spawn(connection(socket, latency, Arc::clone(&stats)));
    }
}

async fn connection(socket: TcpStream, latency: Duration, stats: Arc<Stats>) {
    let mut socket = BufReader::new(socket);
    loop {
        let Some(path) = read_head(&mut socket).await else {
            return;
        };
        stats.requests.fetch_add(1, Ordering::Relaxed);
        stats
            .arrivals
            .lock()
            .unwrap()
            .push((Instant::now(), path.clone()));
        let now = stats.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        stats.max_in_flight.fetch_max(now, Ordering::SeqCst);
        let answer = answer(&path, latency, &stats, &mut socket).await;
        stats.in_flight.fetch_sub(1, Ordering::SeqCst);
        let Some((status, body)) = answer else {
            stats.abandoned.fetch_add(1, Ordering::Relaxed);
            return;
        };
        if status == 0 {
            return; // `/close`
        }
        let extra = if status == 429 {
            "retry-after: 1\r\n"
        } else {
            ""
        };
        let response = format!(
            "HTTP/1.1 {status} X\r\n{extra}content-length: {}\r\n\r\n{body}",
            body.len()
        );
        if socket
            .get_mut()
            .write_all(response.as_bytes())
            .await
            .is_err()
        {
            return;
        }
    }
}

/// The answer to `path` (`None` if the client went away first; status 0: close).
async fn answer(
    path: &str,
    latency: Duration,
    stats: &Stats,
    socket: &mut BufReader<TcpStream>,
) -> Option<(u16, String)> {
    let (route, query) = path.split_once('?').unwrap_or((path, ""));
    let latency = query
        .strip_prefix("ms=")
        .and_then(|ms| ms.parse().ok())
        .map_or(latency, Duration::from_millis);
    let (status, body, wait) = if let Some(text) = route.strip_prefix("/echo/") {
        (200, text.to_owned(), Some(latency))
    } else if let Some(code) = route.strip_prefix("/status/") {
        (
            code.parse().unwrap_or(500),
            "error".to_owned(),
            Some(latency),
        )
    } else if let Some(key) = route.strip_prefix("/flaky/") {
        let fails: usize = query
            .strip_prefix("fails=")
            .and_then(|k| k.parse().ok())
            .unwrap_or(0);
        let mut seen = stats.flaky.lock().unwrap();
        let n = seen.entry(key.to_owned()).or_default();
        *n += 1;
        if *n <= fails {
            (429, "slow down".to_owned(), Some(Duration::ZERO))
        } else {
            (200, key.to_owned(), Some(Duration::ZERO))
        }
    } else if route == "/close" {
        (0, String::new(), Some(Duration::ZERO))
    } else if route == "/hang" {
        (200, String::new(), None)
    } else {
        (404, "not found".to_owned(), Some(Duration::ZERO))
    };
    // Wait, noticing a client that goes away (it sends nothing else before our answer).
    let mut probe = [0u8; 1];
    let gone = async {
        loop {
            match socket.get_mut().peek(&mut probe).await {
                Ok(0) | Err(_) => return,
                Ok(_) => tokio::time::sleep(Duration::from_millis(1)).await,
            }
        }
    };
    match wait {
        Some(wait) if wait.is_zero() => Some((status, body)),
        Some(wait) => tokio::select! {
            () = tokio::time::sleep(wait) => Some((status, body)),
            () = gone => None,
        },
        None => {
            gone.await;
            None
        }
    }
}

/// Reads a request's head; its path, or `None` at the end of the connection.
async fn read_head(socket: &mut BufReader<TcpStream>) -> Option<String> {
    let mut line = String::new();
    if socket.read_line(&mut line).await.ok()? == 0 {
        return None;
    }
    let path = line.split_whitespace().nth(1)?.to_owned();
    loop {
        line.clear();
        if socket.read_line(&mut line).await.ok()? == 0 {
            return None;
        }
        if line == "\r\n" {
            return Some(path);
        }
    }
}

/// A client with a pool of keep-alive connections to one server, shared by every request of a
/// call (`&Client` is all a request needs).
pub struct Client {
    addr: SocketAddr,
    idle: Mutex<Vec<BufReader<TcpStream>>>,
}

/// A non-2xx answer.
#[derive(Debug)]
pub struct Status(pub u16);

/// A `429 Too Many Requests` answer, with its `Retry-After`.
#[derive(Debug)]
pub struct TooManyRequests(pub Duration);

impl std::fmt::Display for TooManyRequests {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "429 Too Many Requests (retry after {:?})", self.0)
    }
}

impl std::error::Error for TooManyRequests {}

/// The error of a non-2xx answer.
fn status_error(status: u16, retry_after: Option<Duration>) -> BoxError {
    match (status, retry_after) {
        (429, Some(after)) => Box::new(TooManyRequests(after)),
        _ => Box::new(Status(status)),
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "HTTP status {}", self.0)
    }
}

impl std::error::Error for Status {}

impl Client {
    pub fn new(addr: SocketAddr) -> Client {
        Client {
            addr,
            idle: Mutex::new(Vec::new()),
        }
    }

    /// GETs `path`; the body of a 2xx answer, [`Status`] for another, an IO error when the
    /// connection fails or closes without an answer.
    pub async fn get(&self, path: &str) -> Result<String, BoxError> {
        let idle = self.idle.lock().unwrap().pop();
        let mut conn = match idle {
            Some(conn) => conn,
            None => {
                let socket = TcpStream::connect(self.addr).await?;
                socket.set_nodelay(true)?;
                BufReader::new(socket)
            }
        };
        let request = format!("GET {path} HTTP/1.1\r\nhost: test\r\n\r\n");
        conn.get_mut().write_all(request.as_bytes()).await?;
        let mut line = String::new();
        if conn.read_line(&mut line).await? == 0 {
            return Err("connection closed without an answer".into());
        }
        let status: u16 = line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or("bad status line")?;
        let (mut length, mut retry_after) = (0, None);
        loop {
            line.clear();
            if conn.read_line(&mut line).await? == 0 {
                return Err("connection closed in the headers".into());
            }
            if line == "\r\n" {
                break;
            }
            header(&line, &mut length, &mut retry_after)?;
        }
        let mut body = vec![0; length];
        conn.read_exact(&mut body).await?;
        self.idle.lock().unwrap().push(conn);
        if !(200..300).contains(&status) {
            return Err(status_error(status, retry_after));
        }
        Ok(String::from_utf8(body)?)
    }
}

/// A blocking client with one keep-alive connection (a thread pool's per-worker state).
pub struct BlockingClient {
    addr: SocketAddr,
    conn: Option<std::io::BufReader<std::net::TcpStream>>,
}

impl BlockingClient {
    pub fn new(addr: SocketAddr) -> BlockingClient {
        BlockingClient { addr, conn: None }
    }

    /// As [`Client::get`], blocking the thread.
    pub fn get(&mut self, path: &str) -> Result<String, BoxError> {
        use std::io::{BufRead, Read, Write};
        let mut conn = match self.conn.take() {
            Some(conn) => conn,
            None => {
                let socket = std::net::TcpStream::connect(self.addr)?;
                socket.set_nodelay(true)?;
                std::io::BufReader::new(socket)
            }
        };
        write!(conn.get_mut(), "GET {path} HTTP/1.1\r\nhost: test\r\n\r\n")?;
        let mut line = String::new();
        if conn.read_line(&mut line)? == 0 {
            return Err("connection closed without an answer".into());
        }
        let status: u16 = line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or("bad status line")?;
        let (mut length, mut retry_after) = (0, None);
        loop {
            line.clear();
            if conn.read_line(&mut line)? == 0 {
                return Err("connection closed in the headers".into());
            }
            if line == "\r\n" {
                break;
            }
            header(&line, &mut length, &mut retry_after)?;
        }
        let mut body = vec![0; length];
        conn.read_exact(&mut body)?;
        self.conn = Some(conn);
        if !(200..300).contains(&status) {
            return Err(status_error(status, retry_after));
        }
        Ok(String::from_utf8(body)?)
    }
}

/// Reads the headers a client needs: `content-length` and `retry-after` (seconds).
fn header(
    line: &str,
    length: &mut usize,
    retry_after: &mut Option<Duration>,
) -> Result<(), BoxError> {
    let line = line.to_ascii_lowercase();
    if let Some(v) = line.strip_prefix("content-length:") {
        *length = v.trim().parse()?;
    } else if let Some(v) = line.strip_prefix("retry-after:") {
        *retry_after = Some(Duration::from_secs(v.trim().parse()?));
    }
    Ok(())
}
