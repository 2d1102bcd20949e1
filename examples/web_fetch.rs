//! Fetching web pages, the seeds' IO-bound jobs, three ways: a serial loop, a thread pool, and
//! the async view with a cap on the requests in flight.
//!
//! Run with `cargo run --release --example web_fetch --features async`. It starts its own HTTP
//! server on 127.0.0.1 (50 ms per request, keep-alive), so it needs no network.
//!
//! 1. The student task (seed 001): read a page 40 times and count its words.
//! 2. The scraper (seed 003): 17 URLs, each a page to fetch.
//! 3. An enrichment: a column of 2,000 user ids, one API call per row, with a rate limit.

#[path = "../tests/common/http.rs"]
mod http;

use std::time::{Duration, Instant};

use polars_flock::polars::prelude::*;
use polars_flock::prelude::*;

fn main() -> Result<(), http::BoxError> {
    let server = http::Server::start(Duration::from_millis(50));
    let addr = server.addr;
    // One client for the call: its connections are shared by every request (`&client` is all an
    // async closure needs; nothing is `'static`).
    let client = http::Client::new(addr);

    // ## 1. The student task: the same page, 40 times.
    let reads: Vec<u32> = (0..40).collect();
    let words = |page: &str| page.split('-').count();
    let serial = timed(|| {
        let mut c = http::BlockingClient::new(addr);
        reads
            .iter()
            .map(|i| Ok(words(&c.get(&format!("/echo/page-{i}-of-the-course"))?)))
            .collect::<Result<Vec<_>, http::BoxError>>()
    });
    let threads = timed(|| {
        Flock::new()
            .threads(8)
            .on(&reads)
            .par_apply_rows_per_worker(
                || Ok(http::BlockingClient::new(addr)),
                |c, i| Ok(words(&c.get(&format!("/echo/page-{i}-of-the-course"))?)),
            )
    });
    let io = timed(|| {
        Flock::new()
            .concurrency(64)
            .on(&reads)
            .io()
            .par_apply_rows(async |i| {
                let page = client.get(&format!("/echo/page-{i}-of-the-course")).await?;
                Ok(words(&page))
            })
            .wait()
    });
    let counts = io.0?;
    assert_eq!(serial.0?, counts);
    assert_eq!(threads.0?, counts);
    report(
        "1. student task: 40 reads of 50 ms",
        serial.1,
        threads.1,
        io.1,
    );

    // ## 2. The scraper: 17 URLs.
    let urls: Vec<String> = (0..17).map(|i| format!("/echo/article-{i}")).collect();
    let serial = timed(|| {
        let mut c = http::BlockingClient::new(addr);
        urls.iter().map(|u| c.get(u)).collect::<Result<Vec<_>, _>>()
    });
    let threads = timed(|| {
        Flock::new()
            .threads(8)
            .on(&urls)
            .par_apply_rows_per_worker(|| Ok(http::BlockingClient::new(addr)), |c, u| c.get(u))
    });
    let io = timed(|| {
        urls.io()
            .par_apply_rows(async |u| client.get(u).await)
            .wait()
    });
    let pages = io.0?;
    assert_eq!(pages[16], "article-16");
    assert_eq!(serial.0?, pages);
    assert_eq!(threads.0?, pages);
    report("2. scraper: 17 URLs of 50 ms", serial.1, threads.1, io.1);

    // ## 3. Enrichment of a frame: one call per row, 256 in flight, at most 4,000 starts/s.
    let users = df!("user" => (0..2_000).map(|i| format!("u{i}")).collect::<Vec<_>>())?;
    let (out, elapsed) = timed(|| {
        Flock::new()
            .concurrency(256)
            .rate(4_000.0)
            .on(&users)
            .io()
            .par_apply_rows("profile", async |row| {
                let user = row.str("user")?; // borrowed across the await
                client.get(&format!("/echo/profile-of-{user}")).await
            })
            .wait()
    });
    let out = out?;
    println!(
        "3. enrichment: 2,000 rows in {:.2} s ({:.0} rows/s; serially {:.0} s), at most {} requests \
         in flight at the server, first row {:?}",
        elapsed.as_secs_f64(),
        2_000.0 / elapsed.as_secs_f64(),
        2_000.0 * 0.05,
        server
            .stats
            .max_in_flight
            .load(std::sync::atomic::Ordering::Relaxed),
        out.column("profile")?.str()?.get(0).unwrap_or_default(),
    );
    println!(
        "\nCPU work inside an async closure runs on the thread that polls the call and delays the \
         other requests: move it to `tokio::task::spawn_blocking`, or compute it afterwards with a \
         synchronous verb on the thread pool."
    );
    Ok(())
}

fn timed<T>(f: impl FnOnce() -> T) -> (T, Duration) {
    let start = Instant::now();
    let out = f();
    (out, start.elapsed())
}

fn report(what: &str, serial: Duration, threads: Duration, io: Duration) {
    let s = serial.as_secs_f64();
    println!(
        "{what}: serial {s:.2} s; threads(8) {:.2} s ({:.1}x); async {:.2} s ({:.1}x)",
        threads.as_secs_f64(),
        s / threads.as_secs_f64(),
        io.as_secs_f64(),
        s / io.as_secs_f64(),
    );
}
