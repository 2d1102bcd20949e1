//! The executor of async calls (feature `async`): one driver future per call that starts the
//! call's units in input order, at most `concurrency` in flight and at most `rate` starts per
//! second, and polls them all on the thread that polls the driver. Nothing is spawned, so a unit's
//! future may borrow the input and the closure (a row across `.await`), and dropping the driver
//! drops every unit in flight: no request outlives the call.
//!
//! Containment is the synchronous executor's: a panic while polling a unit is that unit's
//! [`Error::Panicked`]; the call's timeout and token stop it (the units in flight are dropped);
//! fail-fast calls return the first failed unit in input order (units after it are dropped, units
//! before it finish, since they might fail too); keep-going calls collect every failure.

use std::future::{Future, poll_fn};
use std::ops::Range;
use std::panic::AssertUnwindSafe;
use std::path::PathBuf;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::FutureExt;
use futures_util::stream::{FuturesUnordered, StreamExt};
use tokio::time::{Instant, Interval, MissedTickBehavior, Sleep};

use crate::control::{Failure, Report, Stop, Unit, with_counts};
use crate::error::{Error, Result, UserCode};
use crate::exec::{Panic, contain, discard};
use crate::flock::{DEFAULT_CONCURRENCY, Flock, IoOptions};
use crate::retry::{AttemptScope, DeadlineScope};
use crate::stats::{Recorder, Stall, count_cause};

/// What the units of a call are: rows (or items), blocks of rows, groups or files.
pub(crate) enum Units<'p> {
    /// One unit per row (or item).
    Rows(usize),
    /// The blocks of a plan.
    Blocks(&'p crate::plan::ChunkPlan),
    /// The groups of a frame.
    Groups(&'p crate::group::Groups<'p>),
    /// Files, by path.
    Files(&'p [PathBuf]),
}

impl Units<'_> {
    fn len(&self) -> usize {
        match self {
            Units::Rows(n) => *n,
            Units::Blocks(plan) => plan.blocks(),
            Units::Groups(groups) => groups.len(),
            Units::Files(paths) => paths.len(),
        }
    }

    /// The rows a unit covers (a group or a file counts as one), for progress and errors.
    fn rows(&self, unit: usize) -> Range<usize> {
        match self {
            Units::Blocks(plan) => plan.block_rows(unit),
            _ => unit..unit + 1,
        }
    }

    fn total_rows(&self) -> usize {
        match self {
            Units::Blocks(plan) => plan.rows(),
            _ => self.len(),
        }
    }

    fn unit(&self, unit: usize) -> Unit {
        match self {
            Units::Rows(_) => Unit::Row(unit),
            Units::Blocks(_) => Unit::Block {
                block: unit,
                rows: self.rows(unit),
            },
            Units::Groups(groups) => Unit::Group {
                group: unit,
                key: groups.key(unit),
            },
            Units::Files(paths) => Unit::File {
                file: unit,
                path: paths[unit].clone(),
            },
        }
    }

    /// `error` (a timeout, a panic) as the error of unit `unit`, in its context.
    fn wrap(&self, unit: usize, error: Error) -> Error {
        match self {
            Units::Rows(_) => Error::Row {
                row: unit,
                source: Box::new(error),
            },
            Units::Blocks(_) => Error::of_block(Box::new(error), unit, self.rows(unit)),
            Units::Groups(groups) => groups.error(unit, error),
            Units::Files(paths) => Error::in_file(&paths[unit], error),
        }
    }

    fn panicked(&self, unit: usize, panic: Panic) -> Error {
        let row = (!matches!(self, Units::Blocks(_))).then_some(unit);
        let error = panic.at(UserCode::Closure, unit, self.rows(unit), row);
        match self {
            Units::Rows(_) | Units::Blocks(_) => error,
            _ => self.wrap(unit, error),
        }
    }
}

/// How a unit ended, before it is located.
enum Ended<R> {
    Done(Result<R>),
    Panicked(Panic),
    TimedOut(Duration),
}

/// A unit in flight, with its index (so that units after a failure can be dropped) and its
/// attempt (what [`attempt`](crate::attempt) says while it is polled).
struct InFlight<F> {
    index: usize,
    attempt: u32,
    started: std::time::Instant,
    /// The unit's deadline and limit, for [`unit_deadline`](crate::unit_deadline).
    deadline: Option<(std::time::Instant, Duration)>,
    future: Pin<Box<F>>,
}

impl<F: Future> Future for InFlight<F> {
    type Output = (usize, Duration, F::Output);

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let (index, started) = (self.index, self.started);
        let _attempt = AttemptScope::enter(self.attempt);
        let _deadline =
            (self.deadline).map(|(deadline, limit)| DeadlineScope::enter(deadline, limit));
        (self.future.as_mut().poll(cx)).map(|out| (index, started.elapsed(), out))
    }
}

/// A unit waiting for its next attempt.
struct Waiting {
    index: usize,
    timer: Pin<Box<Sleep>>,
}

impl Future for Waiting {
    type Output = usize;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<usize> {
        let index = self.index;
        self.timer.as_mut().poll(cx).map(|()| index)
    }
}

fn closure_error(error: &Error) -> &(dyn std::error::Error + 'static) {
    error.closure_error()
}

/// Unit `future` under the guard: its panics caught, its time limited.
async fn guarded<R>(
    future: impl Future<Output = Result<R>>,
    timeout: Option<Duration>,
) -> Ended<R> {
    let caught = AssertUnwindSafe(future).catch_unwind();
    let outcome = match timeout {
        Some(limit) => match tokio::time::timeout(limit, caught).await {
            Ok(outcome) => outcome,
            Err(_) => return Ended::TimedOut(limit),
        },
        None => caught.await,
    };
    match outcome {
        Ok(result) => Ended::Done(result),
        Err(payload) => Ended::Panicked(Panic::of_payload(payload)),
    }
}

/// What woke the driver.
enum Event<R> {
    Ended(usize, Duration, Ended<R>),
    /// Units in flight longer than the stall limit, not told before.
    Stalled(Vec<Stall>),
    Stopped(Error),
    Finished,
}

/// Runs every unit (`start(i)` makes unit `i`'s future) and returns the outputs by unit, `None`
/// for a unit that failed or never completed (keep-going), with the report. Fail-fast calls
/// return the first failure in input order instead.
pub(crate) async fn drive<R, F>(
    flock: &Flock,
    units: Units<'_>,
    keep_going: bool,
    start: impl FnMut(usize) -> F,
) -> Result<(Vec<Option<R>>, Report)>
where
    F: Future<Output = Result<R>>,
{
    let progress = flock.progress().active();
    if let Some(progress) = progress {
        progress.begin(units.total_rows());
    }
    let result = drive_units(flock, units, keep_going, start).await;
    if let Some(progress) = progress {
        progress.end(
            result
                .as_ref()
                .is_ok_and(|(_, report)| report.stopped.is_none()),
        );
    }
    result
}

async fn drive_units<R, F>(
    flock: &Flock,
    units: Units<'_>,
    keep_going: bool,
    mut start: impl FnMut(usize) -> F,
) -> Result<(Vec<Option<R>>, Report)>
where
    F: Future<Output = Result<R>>,
{
    let IoOptions { concurrency, rate } = flock.io_options()?;
    let unit_timeout = flock.unit_timeout_option();
    // The other options are checked too (a `chunksize(0)` is wrong whatever the verb).
    flock.layout(0)?;
    let cap = concurrency.unwrap_or(DEFAULT_CONCURRENCY);
    let n = units.len();
    let stop = Stop::start(flock);
    // Timers that only wake the driver: the call's deadline, and a look at the token every
    // 5 ms while there is one (a token has no waker).
    let mut deadline: Option<Pin<Box<Sleep>>> = flock
        .timeout_option()
        .and_then(|t| Instant::now().checked_add(t))
        .map(|at| Box::pin(tokio::time::sleep_until(at)));
    let mut token_watch = flock.cancel().map(|_| ticker(Duration::from_millis(5)));
    // The stall watch (`Flock::on_stall`): a look at the units in flight every `after / 4`.
    let stall = flock.stall_watch();
    let mut stall_watch = (stall.as_ref()).map(|(after, _)| {
        ticker((*after / 4).clamp(Duration::from_millis(1), Duration::from_millis(100)))
    });
    let mut told = std::collections::HashSet::new();
    let mut pacer = rate.map(Pacer::new);
    let retry = flock.retry();
    let mut attempts = vec![1u32; if retry.is_some() { n } else { 0 }];
    let mut waiting = FuturesUnordered::new();
    let mut ready = std::collections::VecDeque::new();
    let call_started = std::time::Instant::now();
    let mut recorder = Recorder::default();
    let mut causes = std::collections::BTreeMap::new();

    let mut outputs = crate::exec::Discarded::new((0..n).map(|_| None).collect::<Vec<_>>());
    let mut report = Report::default();
    let mut completed = vec![false; n];
    let (mut done_units, mut done_rows) = (0, 0);
    let total_rows = units.total_rows();
    let mut first_failure: Option<(usize, Error)> = None;
    let mut next = 0;
    let mut limit = n;
    let mut in_flight = FuturesUnordered::new();

    let stopped = loop {
        let event = poll_fn(|cx| {
            if let Some(d) = &mut deadline {
                let _ = d.as_mut().poll(cx);
            }
            if let Some(w) = &mut token_watch {
                while w.poll_tick(cx).is_ready() {}
            }
            if let Some(error) = stop.check() {
                return Poll::Ready(Event::Stopped(error));
            }
            if let (Some(w), Some((after, _))) = (&mut stall_watch, &stall) {
                let mut looked = false;
                while w.poll_tick(cx).is_ready() {
                    looked = true;
                }
                if looked {
                    let stalled: Vec<Stall> = (in_flight.iter())
                        .filter(|u: &&InFlight<_>| u.started.elapsed() >= *after)
                        .filter(|u| told.insert((u.index, u.attempt)))
                        .map(|u| Stall {
                            block: u.index,
                            rows: units.rows(u.index),
                            thread: None,
                            running: u.started.elapsed(),
                        })
                        .collect();
                    if !stalled.is_empty() {
                        return Poll::Ready(Event::Stalled(stalled));
                    }
                }
            }
            while let Poll::Ready(Some(index)) = waiting.poll_next_unpin(cx) {
                ready.push_back(index);
            }
            // Retries first (they are due), then new units; all through the cap and the pacer.
            while (!ready.is_empty() || next < limit) && in_flight.len() < cap {
                if let Some(p) = &mut pacer
                    && p.poll_start(cx).is_pending()
                {
                    break;
                }
                let (index, attempt) = match ready.pop_front() {
                    Some(index) => (index, attempts[index]),
                    None => {
                        next += 1;
                        (next - 1, 1)
                    }
                };
                let future = {
                    let _attempt = AttemptScope::enter(attempt);
                    Box::pin(guarded(start(index), unit_timeout))
                };
                let started = std::time::Instant::now();
                let deadline =
                    unit_timeout.and_then(|limit| Some((started.checked_add(limit)?, limit)));
                in_flight.push(InFlight {
                    index,
                    attempt,
                    started,
                    deadline,
                    future,
                });
            }
            match in_flight.poll_next_unpin(cx) {
                Poll::Ready(Some((index, took, ended))) => {
                    Poll::Ready(Event::Ended(index, took, ended))
                }
                Poll::Ready(None) if next >= limit && waiting.is_empty() && ready.is_empty() => {
                    Poll::Ready(Event::Finished)
                }
                _ => Poll::Pending,
            }
        })
        .await;
        match event {
            Event::Stalled(stalled) => {
                if let Some((_, callback)) = &stall {
                    // A panicking callback is the user's: contained, and the call goes on.
                    let _ = contain(|| callback(&stalled));
                }
            }
            Event::Finished => break None,
            Event::Stopped(error) => break Some(error),
            Event::Ended(index, took, ended) => {
                let result = match ended {
                    Ended::Done(result) => result,
                    Ended::Panicked(panic) => Err(units.panicked(index, panic)),
                    Ended::TimedOut(timeout) => {
                        Err(units.wrap(index, Error::UnitTimedOut { timeout }))
                    }
                };
                let panicked = matches!(&result, Err(Error::Panicked { .. }))
                    || matches!(&result, Err(e) if matches!(closure_error(e).downcast_ref(), Some(Error::Panicked { .. })));
                if let (Some(retry), Err(error)) = (retry, &result)
                    && !panicked
                    && let Some(wait) = retry.wait_after(attempts[index], closure_error(error))
                {
                    // Another attempt after `wait`; this one's error is dropped.
                    attempts[index] += 1;
                    report.retries += 1;
                    count_cause(&mut causes, closure_error(error));
                    discard(result);
                    waiting.push(Waiting {
                        index,
                        timer: Box::pin(tokio::time::sleep(wait)),
                    });
                    continue;
                }
                completed[index] = true;
                // The unit's last attempt's time.
                recorder.block(None, Duration::ZERO, took, index, units.rows(index));
                done_units += 1;
                done_rows += units.rows(index).len();
                let tries = attempts.get(index).copied().unwrap_or(1);
                match result {
                    Ok(value) => outputs.get_mut()[index] = Some(value),
                    Err(error) if keep_going => report.failures.push(Failure {
                        unit: units.unit(index),
                        error,
                        attempts: tries,
                    }),
                    Err(error) => {
                        // Units before it go on (one of them may fail too); units after it stop.
                        limit = next;
                        let keep = std::mem::take(&mut in_flight);
                        for unit in keep {
                            if unit.index < index {
                                in_flight.push(unit);
                            } else {
                                discard(unit);
                            }
                        }
                        ready.retain(|&unit| unit < index);
                        for unit in std::mem::take(&mut waiting) {
                            if unit.index < index {
                                waiting.push(unit);
                            }
                        }
                        if first_failure
                            .as_ref()
                            .is_none_or(|(first, _)| index < *first)
                        {
                            first_failure = Some((index, error));
                        }
                    }
                }
                if let Some(error) = progress(flock, done_rows, total_rows, index, &units) {
                    discard(std::mem::take(&mut in_flight));
                    return Err(error);
                }
            }
        }
    };
    // Units still in flight (a stop) are dropped here, under the guard.
    discard(in_flight);
    // Units waiting for a retry when the call stopped did not complete.
    drop(waiting);
    if let Some((_, error)) = first_failure {
        return Err(error);
    }
    if let Some(error) = stopped {
        let error = with_counts(error, done_units, n, done_rows, total_rows);
        if !keep_going {
            return Err(error);
        }
        report.stopped = Some(error);
        report.skipped = skipped(&completed, &units);
    }
    report.failures.sort_by_key(|f| f.unit.index());
    let mut stats = recorder.finish(call_started.elapsed(), causes);
    // One task polls every unit: no workers, and each attempt counts as a block.
    stats.workers.clear();
    report.stats = stats;
    Ok((outputs.keep(), report))
}

/// A ticker whose first tick is at once and whose later ticks are at least `period` apart.
fn ticker(period: Duration) -> Interval {
    let mut ticker = tokio::time::interval(period);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    ticker
}

/// The rate limit, as a GCRA pacer: a start is allowed once `now >= tat - tolerance` (`tat`, the
/// theoretical time of the next start, moves `step` past each start). Any `m + 1` starts then
/// span at least `m × step - tolerance`; with `step = (1 s + tolerance + 10 ms) / ⌊rate⌋` no
/// window of one second ever holds more than `⌊rate⌋` starts (10 ms to spare for the jitter
/// between here and the server), while a wake-up of the millisecond timer may start the few that
/// fell due together, so that rates beyond 1,000/s are reached. A rate below 1 starts one unit
/// every `1 / rate` seconds.
struct Pacer {
    step: Duration,
    tolerance: Duration,
    tat: Option<Instant>,
    wait: Pin<Box<Sleep>>,
}

impl Pacer {
    fn new(rate: f64) -> Self {
        let whole = rate.floor();
        let (step, tolerance) = if whole >= 1.0 {
            let tolerance = Duration::from_millis(2);
            let window = Duration::from_secs(1) + tolerance + Duration::from_millis(10);
            (window.div_f64(whole), tolerance)
        } else {
            (Duration::from_secs_f64(1.0 / rate), Duration::ZERO)
        };
        Self {
            step,
            tolerance,
            tat: None,
            wait: Box::pin(tokio::time::sleep(Duration::ZERO)),
        }
    }

    /// Ready when a unit may start now (and counts it as started); pending until then.
    fn poll_start(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if let Some(tat) = self.tat {
            let allowed = tat.checked_sub(self.tolerance).unwrap_or(tat);
            if Instant::now() < allowed {
                self.wait.as_mut().reset(allowed);
                if self.wait.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
            }
        }
        let now = Instant::now();
        let tat = self.tat.map_or(now, |tat| tat.max(now));
        self.tat = Some(tat + self.step);
        Poll::Ready(())
    }
}

/// Reports progress after unit `unit` ended, under the guard: a panicking callback stops the
/// call with its error.
fn progress(
    flock: &Flock,
    done: usize,
    total: usize,
    unit: usize,
    units: &Units<'_>,
) -> Option<Error> {
    let progress = flock.progress().active()?;
    contain(|| progress.report(done, total))
        .err()
        .map(|panic| panic.at(UserCode::Progress, unit, units.rows(unit), None))
}

/// The rows of the units that did not complete, as ranges in input order.
fn skipped(completed: &[bool], units: &Units<'_>) -> Vec<Range<usize>> {
    let mut ranges: Vec<Range<usize>> = Vec::new();
    for (unit, _) in completed.iter().enumerate().filter(|(_, done)| !**done) {
        let rows = units.rows(unit);
        match ranges.last_mut() {
            Some(last) if last.end == rows.start => last.end = rows.end,
            _ => ranges.push(rows),
        }
    }
    ranges
}
