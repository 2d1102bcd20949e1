//! Async IO (feature `async`): the `io()` views against a real HTTP server on loopback, started
//! by each test. Order and exactly-once under random latencies, the concurrency cap and the rate
//! limit as the server sees them, per-unit timeouts and cancellation that leave no request
//! running, typed errors naming rows, keep-going, progress, runtimes, bad options; and a property
//! test comparing every async verb with its synchronous twin.
#![cfg(feature = "async")]

mod common;
#[path = "common/http.rs"]
mod http;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use http::{Client, Server, Status};
use polars_flock::polars::prelude::*;
use polars_flock::prelude::*;
use polars_flock::{CancelToken, Error, Files, Report, Unit};
use proptest::prelude::*;

fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Waits until `cond` holds (up to 2 s); whether it did.
fn eventually(cond: impl Fn() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(2) {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    cond()
}

/// Held by the tests that measure time at the server and by the property test (the heaviest):
/// a measurement never shares the 2 cores with it.
fn quiet() -> std::sync::MutexGuard<'static, ()> {
    static QUIET: Mutex<()> = Mutex::new(());
    QUIET
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[test]
fn outputs_are_in_input_order_and_every_request_is_made_once_under_random_latencies() {
    let server = Server::start(Duration::ZERO);
    let client = Client::new(server.addr);
    let mut state = 7;
    // Early items slow, later ones fast: completion order is far from input order.
    let paths: Vec<String> = (0..400)
        .map(|i| {
            let ms = if i < 20 {
                60
            } else {
                splitmix(&mut state) % 25
            };
            format!("/echo/item-{i}?ms={ms}")
        })
        .collect();
    let out = Flock::new()
        .concurrency(64)
        .on(&paths)
        .io()
        .par_apply_rows(async |path| client.get(path).await)
        .wait()
        .unwrap();
    let expected: Vec<String> = (0..400).map(|i| format!("item-{i}")).collect();
    assert_eq!(out, expected);
    let mut seen = server.stats.paths();
    seen.sort();
    let mut asked = paths.clone();
    asked.sort();
    assert_eq!(seen, asked, "every request exactly once");
}

#[test]
fn rows_of_a_frame_borrow_the_row_across_await_and_come_back_in_order() {
    let server = Server::start(Duration::from_millis(2));
    let client = Client::new(server.addr);
    let df = df!(
        "user" => (0..300).map(|i| format!("u{i}")).collect::<Vec<_>>(),
        "n" => (0..300i64).collect::<Vec<_>>()
    )
    .unwrap();
    let out = Flock::new()
        .concurrency(32)
        .on(&df)
        .io()
        .par_apply_rows(["body", "n2"], async |row| {
            let user = row.str("user")?;
            let body = client.get(&format!("/echo/{user}")).await?;
            Ok((body, row.i64("n")? * 2))
        })
        .wait()
        .unwrap();
    let body = out.column("body").unwrap().str().unwrap();
    assert!(
        body.iter()
            .eq(df.column("user").unwrap().str().unwrap().iter())
    );
    assert_eq!(out.column("n2").unwrap().i64().unwrap().get(299), Some(598));
    assert_eq!(server.stats.requests.load(Ordering::Relaxed), 300);
}

#[test]
fn the_concurrency_cap_holds_at_the_server_and_is_reached() {
    let server = Server::start(Duration::from_millis(20));
    let client = Client::new(server.addr);
    let ids: Vec<usize> = (0..120).collect();
    let started = Instant::now();
    Flock::new()
        .concurrency(8)
        .on(&ids)
        .io()
        .par_apply_rows(async |i| client.get(&format!("/echo/{i}")).await)
        .wait()
        .unwrap();
    let elapsed = started.elapsed();
    assert_eq!(server.stats.max_in_flight.load(Ordering::SeqCst), 8);
    // 120 requests of 20 ms, 8 at a time: at least 15 rounds.
    assert!(elapsed >= Duration::from_millis(290), "{elapsed:?}");
    // Keep-alive: never more connections than calls in flight.
    assert!(server.stats.connections.load(Ordering::Relaxed) <= 8);
}

#[test]
fn blocks_are_bulk_requests_under_the_same_cap() {
    let server = Server::start(Duration::from_millis(10));
    let client = Client::new(server.addr);
    let ids: Vec<usize> = (0..100).collect();
    let out = Flock::new()
        .chunksize(10)
        .concurrency(3)
        .on(&ids)
        .io()
        .par_apply_blocks(async |block| {
            let joined: Vec<String> = block.iter().map(ToString::to_string).collect();
            Ok(vec![
                client.get(&format!("/echo/{}", joined.join(","))).await?,
            ])
        })
        .wait()
        .unwrap();
    assert_eq!(out.len(), 10);
    assert_eq!(out[9], "90,91,92,93,94,95,96,97,98,99");
    assert_eq!(server.stats.max_in_flight.load(Ordering::SeqCst), 3);
}

#[test]
fn a_rate_limit_is_never_exceeded_in_any_one_second_window_at_the_server() {
    let server = Server::start(Duration::ZERO);
    let client = Client::new(server.addr);
    let _quiet = quiet();
    let ids: Vec<usize> = (0..600).collect();
    let started = Instant::now();
    Flock::new()
        .rate(200.0)
        .concurrency(50)
        .on(&ids)
        .io()
        .par_apply_rows(async |i| client.get(&format!("/echo/{i}")).await)
        .wait()
        .unwrap();
    let elapsed = started.elapsed();
    // 200/s over 3 s, as the server counts them.
    let most = server.stats.max_in_window(Duration::from_secs(1));
    assert!(most <= 200, "{most} requests in one second");
    assert!(most >= 180, "the limit is used: {most}");
    assert!(elapsed >= Duration::from_millis(2_990), "{elapsed:?}");
}

#[test]
fn a_rate_beyond_the_timers_millisecond_is_reached_and_kept() {
    let server = Server::start(Duration::ZERO);
    let client = Client::new(server.addr);
    let _quiet = quiet();
    let ids: Vec<usize> = (0..3_000).collect();
    let started = Instant::now();
    Flock::new()
        .rate(2_000.0)
        .concurrency(100)
        .on(&ids)
        .io()
        .par_apply_rows(async |i| client.get(&format!("/echo/{i}")).await)
        .wait()
        .unwrap();
    let elapsed = started.elapsed();
    // 1.5 s at 2,000/s; a pacer bound to the timer's millisecond managed about 840/s (3.6 s).
    assert!(elapsed >= Duration::from_millis(1_490), "{elapsed:?}");
    assert!(
        elapsed < Duration::from_millis(2_700),
        "the rate is reached: {elapsed:?}"
    );
    // Spread over the second, not a burst: about 200 in any 100 ms (jitter at the server aside).
    let most = server.stats.max_in_window(Duration::from_millis(100));
    assert!(most <= 230, "{most} requests in 100 ms");
    assert!(server.stats.max_in_window(Duration::from_secs(1)) <= 2_000);
}

#[test]
fn a_unit_timeout_drops_a_hung_request_and_names_its_row() {
    let server = Server::start(Duration::from_millis(5));
    let client = Client::new(server.addr);
    let paths = ["/echo/a", "/hang", "/echo/c", "/hang"];
    let started = Instant::now();
    let (out, report) = Flock::new()
        .unit_timeout(Duration::from_millis(200))
        .on(&paths)
        .io()
        .keep_going()
        .par_apply_rows(async |p| client.get(p).await)
        .wait()
        .unwrap();
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(
        out,
        [Some("a".to_owned()), None, Some("c".to_owned()), None]
    );
    assert_eq!(report.failed_rows().collect::<Vec<_>>(), [1, 3]);
    for failure in &report.failures {
        let Error::Row { source, .. } = &failure.error else {
            panic!("{}", failure.error)
        };
        assert!(matches!(
            source.downcast_ref::<Error>(),
            Some(Error::UnitTimedOut { timeout }) if *timeout == Duration::from_millis(200)
        ));
    }
    // The hung requests were abandoned: the server sees their clients go away.
    assert!(eventually(
        || server.stats.in_flight.load(Ordering::SeqCst) == 0
    ));
    assert_eq!(server.stats.abandoned.load(Ordering::Relaxed), 2);

    // Fail-fast: the same timeout is the call's error, naming the row.
    let err = Flock::new()
        .unit_timeout(Duration::from_millis(100))
        .on(&paths)
        .io()
        .par_apply_rows(async |p| client.get(p).await)
        .wait()
        .unwrap_err();
    assert!(matches!(err, Error::Row { row: 1, .. }), "{err}");
}

#[test]
fn cancelling_mid_call_drops_every_request_in_flight_before_the_call_returns() {
    let server = Server::start(Duration::from_millis(5));
    let client = Client::new(server.addr);
    let paths: Vec<&str> = (0..100)
        .map(|i| if i % 2 == 0 { "/hang" } else { "/echo/x" })
        .collect();
    let token = CancelToken::new();
    let canceller = {
        let token = token.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(150));
            token.cancel();
        })
    };
    let started = Instant::now();
    let err = Flock::new()
        .concurrency(20)
        .cancel_token(&token)
        .on(&paths)
        .io()
        .par_apply_rows(async |p| client.get(p).await)
        .wait()
        .unwrap_err();
    canceller.join().unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    let Error::Cancelled {
        rows,
        completed_rows,
        ..
    } = err
    else {
        panic!("{err}")
    };
    assert_eq!(rows, 100);
    assert!(completed_rows < 100);
    assert!(eventually(
        || server.stats.in_flight.load(Ordering::SeqCst) == 0
    ));
    let requests = server.stats.requests.load(Ordering::Relaxed);
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(
        server.stats.requests.load(Ordering::Relaxed),
        requests,
        "nothing starts after the call"
    );
}

#[test]
fn the_calls_timeout_stops_it_and_keep_going_keeps_what_completed() {
    let server = Server::start(Duration::from_millis(5));
    let client = Client::new(server.addr);
    let paths: Vec<&str> = (0..10)
        .map(|i| if i == 4 { "/hang" } else { "/echo/ok" })
        .collect();
    let (out, report) = Flock::new()
        .concurrency(2)
        .timeout(Duration::from_millis(300))
        .on(&paths)
        .io()
        .keep_going()
        .par_apply_rows(async |p| client.get(p).await)
        .wait()
        .unwrap();
    assert!(
        matches!(report.stopped, Some(Error::TimedOut { rows: 10, .. })),
        "{:?}",
        report.stopped
    );
    assert!(out[..4].iter().all(|o| o.as_deref() == Some("ok")));
    assert_eq!(out[4], None);
    assert!(report.skipped.iter().any(|r| r.contains(&4)));
    assert_eq!(
        report.null_rows(),
        out.iter().filter(|o| o.is_none()).count()
    );
    assert!(eventually(
        || server.stats.in_flight.load(Ordering::SeqCst) == 0
    ));
}

#[test]
fn server_errors_are_typed_errors_naming_their_rows() {
    let server = Server::start(Duration::from_millis(1));
    let client = Client::new(server.addr);
    let paths = [
        "/echo/a",
        "/echo/b",
        "/status/500",
        "/echo/d",
        "/close",
        "/status/503",
    ];
    // Fail-fast: the first failing row in input order, the server's status as its source.
    let err = Flock::new()
        .on(&paths)
        .io()
        .par_apply_rows(async |p| client.get(p).await)
        .wait()
        .unwrap_err();
    let Error::Row { row: 2, source } = &err else {
        panic!("{err}")
    };
    assert_eq!(source.downcast_ref::<Status>().map(|s| s.0), Some(500));
    // Keep-going: every failure, in order, the rest kept.
    let (out, report) = paths
        .io()
        .keep_going()
        .par_apply_rows(async |p| client.get(p).await)
        .wait()
        .unwrap();
    assert_eq!(report.failed_rows().collect::<Vec<_>>(), [2, 4, 5]);
    assert_eq!(out[3].as_deref(), Some("d"));
    let units: Vec<Unit> = report.failures.iter().map(|f| f.unit.clone()).collect();
    assert_eq!(units, [Unit::Row(2), Unit::Row(4), Unit::Row(5)]);
}

#[test]
fn a_panic_in_an_async_closure_is_an_error_of_its_row() {
    let items: Vec<u32> = (0..50).collect();
    let err = items
        .io()
        .par_apply_rows(async |&x| {
            tokio::task::yield_now().await;
            if x == 17 {
                panic!("boom at {x}");
            }
            Ok(x)
        })
        .wait()
        .unwrap_err();
    let Error::Panicked {
        row: Some(17),
        message,
        ..
    } = &err
    else {
        panic!("{err}")
    };
    assert_eq!(message, "boom at 17");
}

#[test]
fn progress_reaches_the_total_once_and_never_goes_back() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&seen);
    let items: Vec<u64> = (0..200).collect();
    Flock::new()
        .on_progress(move |done, total| sink.lock().unwrap().push((done, total)))
        .on(&items)
        .io()
        .par_apply_rows(async |&x| {
            tokio::time::sleep(Duration::from_micros(x % 7 * 100)).await;
            Ok(x)
        })
        .wait()
        .unwrap();
    let seen = seen.lock().unwrap();
    assert!(seen.windows(2).all(|w| w[0].0 < w[1].0));
    assert!(seen.iter().all(|&(_, total)| total == 200));
    assert_eq!(seen.iter().filter(|&&(done, _)| done == 200).count(), 1);
}

/// Runs `f` on a thread of its own; fails (instead of hanging) if it does not end in `limit`.
fn within<T: Send + 'static>(limit: Duration, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(limit).expect("the call deadlocked")
}

#[test]
fn awaiting_a_call_inside_a_current_thread_runtime_does_not_block_it() {
    // The server runs on the same one-thread runtime as the call: if the call blocked the
    // thread, the server could never answer and this would deadlock.
    let (out, wait_err) = within(Duration::from_secs(30), || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let stats = Arc::new(http::Stats::default());
            tokio::spawn(http::serve(listener, Duration::from_millis(5), stats));
            let client = Client::new(addr);
            let ids: Vec<u32> = (0..50).collect();
            let out = ids
                .io()
                .par_apply_rows(async |i| client.get(&format!("/echo/{i}")).await)
                .await
                .unwrap();
            // `wait` would block the runtime's only thread: it says so instead.
            let wait_err = ids
                .io()
                .par_apply_rows(async |&i| Ok(i))
                .wait()
                .unwrap_err();
            (out, wait_err)
        })
    });
    assert_eq!(out[49], "49");
    assert!(
        matches!(wait_err, Error::InvalidOption { option: "wait", .. }),
        "{wait_err}"
    );
}

#[test]
fn waiting_on_a_multi_thread_runtimes_thread_uses_that_runtime() {
    let out = within(Duration::from_secs(30), || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            tokio::spawn(async {
                // A client made on this runtime, used by a call waited for on it.
                let server = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                let addr = server.local_addr().unwrap();
                tokio::spawn(http::serve(server, Duration::ZERO, Arc::default()));
                let client = Client::new(addr);
                let ids: Vec<u32> = (0..20).collect();
                ids.io()
                    .par_apply_rows(async |i| client.get(&format!("/echo/{i}")).await)
                    .wait()
                    .unwrap()
            })
            .await
            .unwrap()
        })
    });
    assert_eq!(out[19], "19");
}

#[test]
fn bad_limits_are_invalid_options_and_sync_calls_refuse_async_limits() {
    let items = [1, 2, 3];
    let io_err = |flock: Flock| {
        flock
            .on(&items)
            .io()
            .par_apply_rows(async |&x| Ok(x))
            .wait()
            .unwrap_err()
    };
    for (flock, option) in [
        (Flock::new().concurrency(0), "concurrency"),
        (Flock::new().rate(0.0), "rate"),
        (Flock::new().rate(-1.0), "rate"),
        (Flock::new().rate(f64::NAN), "rate"),
        (Flock::new().rate(f64::INFINITY), "rate"),
        (Flock::new().unit_timeout(Duration::ZERO), "unit_timeout"),
        (Flock::new().chunksize(0), "chunksize"),
    ] {
        let err = io_err(flock);
        assert!(
            matches!(err, Error::InvalidOption { option: o, .. } if o == option),
            "{err}"
        );
    }
    // A synchronous verb cannot honour them: it says so rather than ignoring them.
    let err = Flock::new()
        .rate(10.0)
        .on(&items)
        .par_apply_rows(|&x| Ok(x))
        .unwrap_err();
    assert!(
        matches!(err, Error::InvalidOption { option: "rate", .. }),
        "{err}"
    );
}

#[test]
fn empty_inputs_make_no_request() {
    let calls = AtomicUsize::new(0);
    let empty: Vec<u32> = Vec::new();
    let out = empty
        .io()
        .par_apply_rows(async |&x| {
            calls.fetch_add(1, Ordering::Relaxed);
            Ok(x)
        })
        .wait()
        .unwrap();
    assert!(out.is_empty());
    let df = df!("x" => Vec::<i64>::new()).unwrap();
    let out = df
        .io()
        .par_apply_rows("y", async |row| Ok(row.i64("x")?))
        .wait()
        .unwrap();
    assert_eq!(out.height(), 0);
    assert_eq!(out.column("y").unwrap().dtype(), &DataType::Int64);
    assert_eq!(calls.load(Ordering::Relaxed), 0);
}

/// A few `yield_now`s, so that units complete out of order.
async fn shuffle(seed: u64) {
    for _ in 0..seed % 4 {
        tokio::task::yield_now().await;
    }
}

fn row_out(row: &Row<'_>) -> Result<Option<f64>, BoxError> {
    let (f, i) = (row.opt_f64("f")?, row.opt_i64("i")?);
    if i.is_some_and(|i| i % 13 == 0) {
        return Err("thirteen".into());
    }
    Ok(f.zip(i).map(|(f, i)| f * i as f64))
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn every_async_verb_equals_its_synchronous_twin(
        (n, seed, pieces) in (0usize..=600, any::<u64>(), 1usize..=3),
        concurrency in 1usize..=40,
        chunk in 1usize..=90,
    ) {
        let _quiet = quiet();
        let df = Data::generate(n, seed).frame(pieces);
        let flock = Flock::new().concurrency(concurrency).chunksize(chunk);
        let sync = Flock::new().chunksize(chunk);

        // Rows: fail-fast (the first failing row) and keep-going (same nulls, same report).
        let expected = sync.on(&df).par_apply_rows("out", row_out);
        let got = flock.on(&df).io().par_apply_rows("out", async |row| {
            shuffle(row.index() as u64 ^ seed).await;
            row_out(row)
        }).wait();
        match (expected, got) {
            (Ok(e), Ok(g)) => prop_assert!(e.equals_missing(&g)),
            (Err(e), Err(g)) => prop_assert_eq!(e.to_string(), g.to_string()),
            (e, g) => prop_assert!(false, "{:?} vs {:?}", e.map(|_| ()), g.map(|_| ())),
        }
        let (expected, expected_report) = sync.on(&df).keep_going().par_apply_rows("out", row_out).unwrap();
        let (got, report) = flock.on(&df).io().keep_going().par_apply_rows("out", async |row| {
            shuffle(row.index() as u64 ^ seed).await;
            row_out(row)
        }).wait().unwrap();
        prop_assert!(expected.equals_missing(&got));
        prop_assert_eq!(report.failed_rows().collect::<Vec<_>>(), expected_report.failed_rows().collect::<Vec<_>>());

        // Blocks of the frame: the same blocks, the same output.
        let block = |b: DataFrame| -> Result<DataFrame, BoxError> { Ok(b.head(Some(b.height().div_ceil(2)))) };
        let expected = sync.on(&df).par_apply_blocks(block).unwrap();
        let got = flock.on(&df).io().par_apply_blocks(async |b| {
            shuffle(b.height() as u64 ^ seed).await;
            block(b)
        }).wait().unwrap();
        prop_assert!(expected.equals_missing(&got));

        // Items and item blocks, keep-going.
        let items: Vec<u64> = (0..n as u64).map(|i| i ^ seed).collect();
        let item = |x: &u64| -> Result<u64, BoxError> {
            if x.is_multiple_of(17) { return Err("seventeen".into()) }
            Ok(x / 3)
        };
        let (expected, expected_report) = sync.on(&items).keep_going().par_apply_rows(item).unwrap();
        let (got, report) = flock.on(&items).io().keep_going().par_apply_rows(async |x| {
            shuffle(*x).await;
            item(x)
        }).wait().unwrap();
        prop_assert_eq!(got, expected);
        prop_assert_eq!(report.failed_rows().collect::<Vec<_>>(), expected_report.failed_rows().collect::<Vec<_>>());
        let sum = |b: &[u64]| -> Result<Vec<u64>, BoxError> { Ok(vec![b.iter().map(|x| x % 1_000).sum(), 1]) };
        let expected = sync.on(&items).par_apply_blocks(sum).unwrap();
        let got = flock.on(&items).io().par_apply_blocks(async |b| {
            shuffle(b.len() as u64).await;
            sum(b)
        }).wait().unwrap();
        prop_assert_eq!(got, expected);

        // Groups (keys in the order they first appear), fail-fast and keep-going.
        let group = |g: DataFrame| -> Result<DataFrame, BoxError> {
            if g.height() % 7 == 3 { return Err("seven".into()) }
            Ok(g.head(Some(2)))
        };
        let expected = sync.on(&df).par_apply_groups(&["b"], group);
        let got = flock.on(&df).io().par_apply_groups(&["b"], async |g| {
            shuffle(g.height() as u64 ^ seed).await;
            group(g)
        }).wait();
        match (expected, got) {
            (Ok(e), Ok(g)) => prop_assert!(e.equals_missing(&g)),
            (Err(e), Err(g)) => prop_assert_eq!(e.to_string(), g.to_string()),
            (e, g) => prop_assert!(false, "{:?} vs {:?}", e.map(|_| ()), g.map(|_| ())),
        }
        let (expected, expected_report) = sync.on(&df).keep_going().par_apply_groups(&["s"], group).unwrap();
        let (got, report) = flock.on(&df).io().keep_going().par_apply_groups(&["s"], async |g| {
            shuffle(g.height() as u64).await;
            group(g)
        }).wait().unwrap();
        prop_assert!(expected.equals_missing(&got));
        prop_assert_eq!(
            report.failures.iter().map(|f| f.unit.clone()).collect::<Vec<_>>(),
            expected_report.failures.iter().map(|f| f.unit.clone()).collect::<Vec<_>>()
        );

        // Files (names only), keep-going.
        let files = Files::new(items.iter().take(50).map(|x| format!("{}.part", x % 23)));
        let file = |p: &std::path::Path| -> Result<usize, BoxError> {
            let stem: u64 = p.file_stem().and_then(|s| s.to_str()).unwrap_or_default().parse()?;
            if stem == 5 { return Err("five".into()) }
            Ok(stem as usize * 2)
        };
        let (expected, expected_report) = sync.on(&files).keep_going().par_apply(file).unwrap();
        let (got, report) = flock.on(&files).io().keep_going().par_apply(async |p| {
            shuffle(p.as_os_str().len() as u64).await;
            file(p)
        }).wait().unwrap();
        prop_assert_eq!(got, expected);
        let errors = |r: &Report| r.failures.iter().map(|f| f.error.to_string()).collect::<Vec<_>>();
        prop_assert_eq!(errors(&report), errors(&expected_report));
    }
}

#[test]
fn groups_and_files_fail_with_their_key_and_path_on_a_timeout_or_a_panic() {
    let df = df!("customer" => ["a", "b", "c"], "n" => [1i64, 2, 3]).unwrap();
    let (out, report) = Flock::new()
        .unit_timeout(Duration::from_millis(50))
        .on(&df)
        .io()
        .keep_going()
        .par_apply_groups(&["customer"], async |g| {
            match g.column("customer")?.str()?.get(0) {
                Some("b") => tokio::time::sleep(Duration::from_secs(10)).await,
                Some("c") => panic!("bad customer"),
                _ => {}
            }
            Ok(g)
        })
        .wait()
        .unwrap();
    assert_eq!(out.height(), 1);
    let Error::InGroup { key, source, .. } = &report.failures[0].error else {
        panic!()
    };
    assert_eq!(key, "customer=\"b\"");
    assert!(matches!(**source, Error::UnitTimedOut { .. }));
    let Error::InGroup { source, .. } = &report.failures[1].error else {
        panic!()
    };
    assert!(matches!(&**source, Error::Panicked { message, .. } if message == "bad customer"));

    let files = Files::new(["ok", "slow", "boom"]);
    let err = Flock::new()
        .unit_timeout(Duration::from_millis(50))
        .on(&files)
        .io()
        .par_apply(async |p| {
            if p.ends_with("slow") {
                tokio::time::sleep(Duration::from_secs(10)).await;
            }
            Ok(p.to_path_buf())
        })
        .wait()
        .unwrap_err();
    let Error::InFile { path, source } = &err else {
        panic!("{err}")
    };
    assert!(path.ends_with("slow"));
    assert!(matches!(**source, Error::UnitTimedOut { .. }));
}

#[test]
fn nested_calls_work_awaited_waited_for_and_from_synchronous_closures() {
    let outer = [1u32, 2, 3];
    // Awaited inside an async closure (the recommended way).
    let awaited = outer
        .io()
        .par_apply_rows(async |&x| {
            let inner = [x, x + 1].io().par_apply_rows(async |&y| Ok(y * 3)).await?;
            Ok(inner.iter().sum::<u32>())
        })
        .wait()
        .unwrap();
    assert_eq!(awaited, [9, 15, 21]);
    // Waited for inside an async closure: on the crate's runtime, which is multi-thread.
    let waited = outer
        .io()
        .par_apply_rows(async |&x| {
            let inner = [x, x + 1]
                .io()
                .par_apply_rows(async |&y| Ok(y * 2))
                .wait()?;
            Ok(inner.iter().sum::<u32>())
        })
        .wait()
        .unwrap();
    assert_eq!(waited, [6, 10, 14]);
    // An async call inside a synchronous verb's closure, and a synchronous verb inside an async
    // closure.
    let mixed = outer
        .par_apply_rows(|&x| Ok([x].io().par_apply_rows(async |&y| Ok(y + 1)).wait()?[0]))
        .unwrap();
    assert_eq!(mixed, [2, 3, 4]);
    let mixed = outer
        .io()
        .par_apply_rows(async |&x| Ok([x, x].par_apply_rows(|&y| Ok(y * y))?.iter().sum::<u32>()))
        .wait()
        .unwrap();
    assert_eq!(mixed, [2, 8, 18]);
}

#[test]
fn a_block_whose_schema_differs_is_the_calls_error_or_left_out() {
    let df = df!("x" => (0..6i64).collect::<Vec<_>>()).unwrap();
    let flock = Flock::new().chunksize(2);
    let f = async |b: DataFrame| -> Result<DataFrame, BoxError> {
        let mut b = b;
        if b.column("x")?.i64()?.get(0) == Some(2) {
            b.rename("x", "y".into())?;
        }
        Ok(b)
    };
    let err = flock.on(&df).io().par_apply_blocks(f).wait().unwrap_err();
    assert!(
        matches!(err, Error::SchemaMismatch { block: 1, ref rows, .. } if *rows == (2..4)),
        "{err}"
    );
    let (out, report) = flock
        .on(&df)
        .io()
        .keep_going()
        .par_apply_blocks(f)
        .wait()
        .unwrap();
    assert_eq!(out.height(), 4);
    assert_eq!(report.failed_rows().collect::<Vec<_>>(), [2, 3]);
}

#[test]
fn without_a_cap_sixty_four_calls_are_in_flight() {
    let server = Server::start(Duration::from_millis(30));
    let client = Client::new(server.addr);
    let ids: Vec<usize> = (0..200).collect();
    ids.io()
        .par_apply_rows(async |i| client.get(&format!("/echo/{i}")).await)
        .wait()
        .unwrap();
    // At most 64, and (on a busy machine, nearly) reached.
    let most = server.stats.max_in_flight.load(Ordering::SeqCst);
    assert!((56..=64).contains(&most), "{most}");
}

#[test]
fn clients_are_made_on_first_use_kept_across_calls_and_made_again_after_a_failed_init() {
    let server = Server::start(Duration::from_millis(2));
    let attempts = AtomicUsize::new(0);
    let clients = polars_flock::io::Clients::new(4, async || {
        // The first attempt fails (a server restarting), later ones connect.
        if attempts.fetch_add(1, Ordering::SeqCst) == 0 {
            return Err("connection refused".into());
        }
        Ok(Client::new(server.addr))
    });
    let ids: Vec<usize> = (0..200).collect();
    let (out, report) = ids
        .io()
        .keep_going()
        .par_apply_rows(async |&i| clients.get(i).await?.get(&format!("/echo/{i}")).await)
        .wait()
        .unwrap();
    // The unit whose `init` failed is that row's error; the slot is made by the next unit.
    assert_eq!(report.failures.len(), 1);
    let Error::Row { row, source } = &report.failures[0].error else {
        panic!()
    };
    assert_eq!(*row, 0);
    assert_eq!(source.to_string(), "connection refused");
    assert_eq!(out.iter().flatten().count(), 199);
    assert_eq!(clients.inits(), 4);
    for _ in 0..2 {
        let out = ids
            .io()
            .par_apply_rows(async |&i| clients.get(i).await?.get(&format!("/echo/{i}")).await)
            .wait()
            .unwrap();
        assert_eq!(out[199], "199");
    }
    assert_eq!(clients.inits(), 4, "kept across calls");
    // Each client keeps its connections alive and reuses them across calls: 600 requests made
    // about as many connections as units were ever in flight on each client at once. Units
    // complete out of order, so one client may briefly hold more than a quarter of the cap: the
    // bound is twice the cap (without reuse, 600).
    let connections = server.stats.connections.load(Ordering::Relaxed);
    assert!(connections <= 2 * 64 + 4, "{connections} connections");
}

#[cfg(feature = "progress")]
#[test]
fn a_progress_bar_follows_an_async_call_to_its_end() {
    let bar = polars_flock::indicatif::ProgressBar::hidden();
    let items: Vec<u64> = (0..300).collect();
    let out = Flock::new()
        .progress_bar(bar.clone())
        .on(&items)
        .io()
        .par_apply_rows(async |&x| {
            tokio::task::yield_now().await;
            Ok(x + 1)
        })
        .wait()
        .unwrap();
    assert_eq!(out[299], 300);
    assert_eq!((bar.position(), bar.length()), (300, Some(300)));
    assert!(bar.is_finished());
}
