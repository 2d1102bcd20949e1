//! Long jobs: a progress bar and a progress callback, a timeout, cancellation from another thread,
//! and the keep-going policy that keeps every good row when some rows fail.
//!
//! Run with `cargo run --release --example progress --features progress`. Each step is a cell of
//! a notebook: it prints what it did and what the call returned. The bar is drawn on stderr: in
//! place on a terminal, as one line per redraw otherwise (CI logs, captured notebook output).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use std::io::IsTerminal;

use polars_flock::indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle, TermLike};
use polars_flock::polars::prelude::*;
use polars_flock::prelude::*;
use polars_flock::{CancelToken, Error, Flock, Result};

const ROWS: usize = 2_000_000;

/// A progress bar target that prints each redraw as a new line on stderr, for outputs that are
/// not a terminal (where indicatif hides the bar).
#[derive(Debug, Default)]
struct LogLines {
    last: Mutex<Option<Instant>>,
}

impl TermLike for LogLines {
    fn width(&self) -> u16 {
        100
    }
    fn move_cursor_up(&self, _: usize) -> std::io::Result<()> {
        Ok(())
    }
    fn move_cursor_down(&self, _: usize) -> std::io::Result<()> {
        Ok(())
    }
    fn move_cursor_right(&self, _: usize) -> std::io::Result<()> {
        Ok(())
    }
    fn move_cursor_left(&self, _: usize) -> std::io::Result<()> {
        Ok(())
    }
    fn write_line(&self, line: &str) -> std::io::Result<()> {
        self.write_str(line)
    }
    fn write_str(&self, line: &str) -> std::io::Result<()> {
        // At most four lines a second.
        let mut last = self.last.lock().unwrap();
        if !line.trim().is_empty() && last.is_none_or(|t| t.elapsed() >= Duration::from_millis(250))
        {
            *last = Some(Instant::now());
            eprintln!("    {line}");
        }
        Ok(())
    }
    fn clear_line(&self) -> std::io::Result<()> {
        Ok(())
    }
    fn flush(&self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A deliberately slow row: ~1 µs of floating-point work.
fn score(x: f64, k: i64) -> f64 {
    let mut v = x;
    for i in 0..200 {
        v = (v * 1.000_1 + (k + i) as f64).sqrt();
    }
    v
}

fn main() -> Result<()> {
    // --- 1. Data ------------------------------------------------------------------------------
    let df = df!(
        "x" => (0..ROWS).map(|i| (i % 1_000) as f64).collect::<Vec<_>>(),
        "k" => (0..ROWS as i64).map(|i| i % 97).collect::<Vec<_>>(),
        // A raw text column with a few unparseable values, as real inputs have.
        "raw" => (0..ROWS).map(|i| if i % 250_000 == 17 { "n/a".to_owned() } else { (i % 500).to_string() }).collect::<Vec<_>>(),
    )?;
    println!("[1] input: {} rows x {} columns", df.height(), df.width());

    // --- 2. A progress bar (feature `progress`) -----------------------------------------------
    // The bar's length is set to the row count when the call starts; it advances once per block.
    let bar = ProgressBar::new(0).with_style(
        ProgressStyle::with_template("{prefix} [{bar:40}] {pos}/{len} rows ({elapsed}, eta {eta})")
            .expect("a valid template")
            .progress_chars("=> "),
    );
    bar.set_prefix("score");
    if !std::io::stderr().is_terminal() {
        // Not a terminal (a CI log, a notebook's captured output): draw the bar as plain lines.
        bar.set_draw_target(ProgressDrawTarget::term_like_with_hz(
            Box::<LogLines>::default(),
            4,
        ));
    }
    let flock = Flock::new().chunksize(20_000).progress_bar(bar.clone());
    let start = Instant::now();
    let scored = flock
        .on(&df)
        .par_apply_rows("score", |row| Ok(score(row.f64("x")?, row.i64("k")?)))?;
    println!(
        "[2] progress bar: {} rows scored in {:.2?}; bar at {}/{} (finished: {})",
        scored.height(),
        start.elapsed(),
        bar.position(),
        bar.length().unwrap_or(0),
        bar.is_finished()
    );

    // --- 3. A plain callback, for logs and notebooks ------------------------------------------
    // Called as blocks complete with (done, total), on a reporting thread, one call at a time,
    // `done` increasing.
    let lines = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&lines);
    let flock = Flock::new()
        .chunksize(250_000)
        .on_progress(move |done, total| {
            let line = format!(
                "{:>5.1}% ({done}/{total} rows)",
                100.0 * done as f64 / total as f64
            );
            println!("    progress {line}");
            log.lock().unwrap().push(done);
        });
    flock
        .on(&df)
        .par_apply_columns("score2", ["x", "k"], |(x, k): (f64, i64)| score(x, k))?;
    let lines = lines.lock().unwrap();
    println!(
        "[3] callback: {} reports, last {:?}",
        lines.len(),
        lines.last()
    );

    // --- 4. A timeout ---------------------------------------------------------------------------
    // Checked before each block; blocks already running finish, so the call returns within about
    // one block's time after the deadline (here a block takes ~20 ms).
    let timeout = Duration::from_millis(300);
    let flock = Flock::new().chunksize(20_000).timeout(timeout);
    let start = Instant::now();
    let result = flock.on(&df).par_apply_rows("slow", |row| {
        Ok(score(row.f64("x")?, row.i64("k")?) + score(row.f64("x")?, 1))
    });
    match result {
        Err(Error::TimedOut {
            completed_rows,
            rows,
            completed_blocks,
            blocks,
            ..
        }) => println!(
            "[4] timeout {timeout:?}: returned after {:.2?} with Error::TimedOut, {completed_blocks}/{blocks} blocks ({completed_rows}/{rows} rows) done",
            start.elapsed()
        ),
        other => println!(
            "[4] timeout {timeout:?}: the call finished first ({:?})",
            other.map(|d| d.shape())
        ),
    }

    // --- 5. Cancellation from another thread ----------------------------------------------------
    // E.g. a UI "stop" button, or a Ctrl-C handler: any thread holding a clone may cancel.
    let token = CancelToken::new();
    let flock = Flock::new().chunksize(20_000).cancel_token(&token);
    let start = Instant::now();
    let result = std::thread::scope(|s| {
        let stop = token.clone();
        s.spawn(move || {
            std::thread::sleep(Duration::from_millis(200));
            stop.cancel();
        });
        flock.on(&df).par_apply_rows("slow", |row| {
            Ok(score(row.f64("x")?, row.i64("k")?) + score(row.f64("x")?, 2))
        })
    });
    match result {
        Err(Error::Cancelled {
            completed_rows,
            rows,
            ..
        }) => println!(
            "[5] cancelled after 200 ms: returned after {:.2?} with Error::Cancelled, {completed_rows}/{rows} rows done",
            start.elapsed()
        ),
        other => println!(
            "[5] the call finished before the cancel ({:?})",
            other.map(|d| d.shape())
        ),
    }

    // --- 6. Keep going: bad rows become nulls, listed in a report -------------------------------
    let (parsed, report) = df
        .keep_going()
        .par_apply_rows("value", |row| Ok(row.str("raw")?.parse::<i64>()?))?;
    println!(
        "[6] keep going: {} rows, {} null; report: {} failed rows, complete: {}",
        parsed.height(),
        parsed.column("value")?.null_count(),
        report.failures.len(),
        report.is_complete()
    );
    for failure in &report.failures {
        println!("    {:?}: {}", failure.unit, failure.error);
    }
    // The fail-fast default would have stopped at the first of them:
    let err = df
        .par_apply_rows("value", |row| Ok(row.str("raw")?.parse::<i64>()?))
        .unwrap_err();
    println!("    the default (fail fast) returns: {err}");
    Ok(())
}
