//! The executor's source mode: units pulled from a source in order, at most `window` in flight,
//! their outputs handed to a sink in order — the scheduler of every stream.
//!
//! There is no coordinating thread: the calling thread spawns the drainers and waits for the
//! scope, as for a plan of blocks. A drainer pulls the next unit from the source (the source is
//! taken out of the shared state while its `next` runs, so that no lock is held across user
//! code), runs it under the guard, and hands every output that is next in order to the sink (the
//! sink likewise taken out while it runs: a thread that completes a unit while another writes
//! leaves its output for that writer). A drainer that finds the window full, or the source
//! being read, parks; the hand-off or the read that frees it respawns it. So a thread waits only
//! for rayon's scope, never on a channel.

use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use super::frames::{self, Kind};
use super::{
    Block, StateSource, acquire_within, contain, discard, drop_contained, lock, new_call, run_block,
};
use crate::control::{Reporter, Stop, with_counts};
use crate::error::{BoxError, Error, Result, UserCode};
use crate::flock::Flock;
use crate::stats::{Recorder, Stats, Watch};

/// A unit of a source: its rows are known before it is loaded.
pub(crate) trait Rows {
    fn rows(&self) -> usize;
    /// The rows of the whole source, when the unit knows them (for progress).
    fn source_rows(&self) -> Option<usize> {
        None
    }
}

/// What a stream did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Counts {
    pub(crate) batches: usize,
    pub(crate) rows_in: usize,
    pub(crate) rows_out: usize,
    pub(crate) max_in_flight: usize,
    pub(crate) retries: usize,
}

type Source<'s, B> = dyn Iterator<Item = Result<B>> + Send + 's;
type Sink<'s, O> = dyn FnMut(O) -> std::result::Result<usize, BoxError> + Send + 's;

struct Shared<'s, B, O, S> {
    /// `None` while a drainer runs its `next`.
    source: Option<&'s mut Source<'s, B>>,
    read: usize,
    exhausted: bool,
    /// Units handed to the sink (or dropped after the first failure).
    written: usize,
    /// Completed units not yet handed on: their rows, and the output (`None`: it failed).
    ready: BTreeMap<usize, (Range<usize>, Option<O>)>,
    /// `None` while a drainer runs it.
    sink: Option<&'s mut Sink<'s, O>>,
    /// The first failure in stream order, with its unit's index.
    failure: Option<(usize, Error)>,
    counts: Counts,
    /// Input rows of the units handed to the sink.
    rows_done: usize,
    parked: usize,
    idle_states: Vec<(S, usize)>,
}

struct SourceCall<'s, B, O, S, St: ?Sized, T> {
    id: u64,
    window: usize,
    threads: usize,
    stop: Stop<'s>,
    states: &'s St,
    task: T,
    reporter: Option<&'s Reporter<'s>>,
    shared: Mutex<Shared<'s, B, O, S>>,
    /// Where the time went, per unit.
    recorder: Mutex<Recorder>,
    /// The running units, when stalls are watched.
    watch: Option<&'s Watch>,
}

/// Who follows a stream's call: its progress reporter and its stall watch, if any.
pub(crate) struct Observers<'s> {
    pub(crate) reporter: Option<&'s Reporter<'s>>,
    pub(crate) watch: Option<&'s Watch>,
}

/// Runs `task` on every unit of `source` in parallel, at most `window` units in flight (pulled,
/// and not yet handed to the sink), each thread with a state from `states`, and hands the
/// outputs to `sink` in source order. The first failure in source order (a unit's, the
/// source's, the sink's, or a stop, with its counts) ends the stream: every unit before it is
/// handed to the sink, none after it. Returns what was done, and that failure.
pub(crate) fn run_source<'s, B, O, S, St, T>(
    flock: &Flock,
    window: usize,
    source: &'s mut Source<'s, B>,
    states: &'s St,
    task: T,
    sink: &'s mut Sink<'s, O>,
    Observers { reporter, watch }: Observers<'s>,
) -> Result<(Counts, Stats, Option<Error>)>
where
    B: Rows + Send,
    O: Send,
    S: Send,
    St: StateSource<S> + ?Sized,
    T: Fn(&Block<'_>, &mut S, B) -> Result<O> + Sync,
{
    if window == 0 {
        return Err(Error::InvalidOption {
            option: "window",
            value: "0".into(),
            reason: "at least one batch must be in flight",
        });
    }
    let started = Instant::now();
    let call = SourceCall {
        watch,
        recorder: Mutex::default(),
        id: new_call(),
        window,
        threads: flock.plan(1)?.threads(),
        stop: Stop::start(flock),
        states,
        task,
        reporter,
        shared: Mutex::new(Shared {
            source: Some(source),
            read: 0,
            exhausted: false,
            written: 0,
            ready: BTreeMap::new(),
            sink: Some(sink),
            failure: None,
            counts: Counts::default(),
            rows_done: 0,
            parked: 0,
            idle_states: Vec::new(),
        }),
    };
    let waiting = frames::enter(call.id, Kind::Waiting);
    flock.in_place_scope(|scope| {
        for _ in 0..call.threads.min(window) {
            scope.spawn(|scope| call.drain(scope));
        }
    })?;
    drop(waiting);
    let recorder = (call.recorder)
        .into_inner()
        .unwrap_or_else(PoisonError::into_inner);
    let stats = recorder.finish(started.elapsed(), call.stop.causes());
    let shared = call
        .shared
        .into_inner()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    for (_, (_, output)) in shared.ready {
        discard(output);
    }
    let mut late = None;
    for (state, last) in shared.idle_states {
        if let Some(state) = states.release(state)
            && let Err(panic) = drop_contained(state)
        {
            late.get_or_insert(panic.at(UserCode::StateDrop, last, 0..0, None));
        }
    }
    let mut counts = shared.counts;
    counts.retries = call.stop.retries();
    let failure = shared.failure.map(|(_, error)| {
        with_counts(
            error,
            counts.batches,
            shared.read,
            shared.rows_done,
            counts.rows_in,
        )
    });
    Ok((counts, stats, failure.or(late)))
}

impl<'s, B, O, S, St, T> SourceCall<'s, B, O, S, St, T>
where
    B: Rows + Send,
    O: Send,
    S: Send,
    St: StateSource<S> + ?Sized,
    T: Fn(&Block<'_>, &mut S, B) -> Result<O> + Sync,
{
    fn drain<'c>(&'c self, scope: &rayon::Scope<'c>) {
        let Some((_frame, guest)) = frames::enter(self.id, Kind::Running) else {
            // A unit of this call is suspended lower on this thread: never start another on top.
            lock(&self.shared).parked += 1;
            return;
        };
        let mut state: Option<(S, usize)> = None;
        let thread = rayon::current_thread_index();
        while let Some((index, rows, batch)) = self.claim(scope) {
            let mut init = Duration::ZERO;
            if state.is_none() {
                let started = Instant::now();
                state = self.state(index, &rows);
                init = started.elapsed();
            }
            let Some((current, last)) = state.as_mut() else {
                discard(batch);
                break;
            };
            let block = Block::new(index, rows.clone(), &self.stop);
            if let Some(watch) = self.watch {
                watch.start(index, rows.clone(), thread);
            }
            let started = Instant::now();
            let (result, panicked) = run_block(&block, || (self.task)(&block, current, batch));
            let busy = started.elapsed();
            if let Some(watch) = self.watch {
                watch.end(index);
            }
            lock(&self.recorder).block(thread, init, busy, index, rows.clone());
            *last = index;
            if (panicked || block.poisoned.get())
                && let Some((broken, _)) = state.take()
            {
                // The state may be half-updated: never reuse it.
                discard(broken);
            }
            if result.is_ok()
                && let Some(reporter) = self.reporter
            {
                reporter.advance(rows.clone(), index);
            }
            self.complete(scope, index, rows, result);
            if guest {
                // On top of another call's frame: yield after one unit.
                scope.spawn(|scope| self.drain(scope));
                break;
            }
        }
        if let Some(state) = state {
            lock(&self.shared).idle_states.push(state);
        }
    }

    /// This drainer's state: one another drainer left, or a new one (`init`). `None` after
    /// recording an `init` failure at unit `index`.
    fn state(&self, index: usize, rows: &Range<usize>) -> Option<(S, usize)> {
        if let Some(idle) = lock(&self.shared).idle_states.pop() {
            return Some(idle);
        }
        let source: BoxError = match acquire_within(self.states, self.stop.init_timeout()) {
            Ok(Ok(state)) => return Some((state, index)),
            Ok(Err(source)) => source,
            Err(panic) => Box::new(panic.at(UserCode::Init, index, rows.clone(), None)),
        };
        let error = Error::Init {
            worker: rayon::current_thread_index(),
            block: index,
            rows: rows.clone(),
            completed_blocks: Vec::new(),
            source,
        };
        self.fail(&mut lock(&self.shared), index, error);
        None
    }

    /// The next unit of the source, or `None` when this drainer should stop: the source is done
    /// or failed, the stream stopped, or (parked, to be respawned) the window is full or another
    /// drainer is reading the source.
    fn claim<'c>(&'c self, scope: &rayon::Scope<'c>) -> Option<(usize, Range<usize>, B)> {
        let mut shared = lock(&self.shared);
        if shared.failure.is_some() || shared.exhausted {
            return None;
        }
        if shared.read - shared.written >= self.window || shared.source.is_none() {
            shared.parked += 1;
            return None;
        }
        if self.reporter.is_some_and(Reporter::failed) {
            return None;
        }
        let (index, first_row) = (shared.read, shared.counts.rows_in);
        if let Some(stopped) = self.stop.check() {
            self.fail(&mut shared, index, stopped);
            return None;
        }
        let source = shared.source.take().expect("checked above");
        drop(shared);
        let next = contain(|| source.next());
        let mut shared = lock(&self.shared);
        shared.source = Some(source);
        let claimed = match next {
            Ok(None) => {
                shared.exhausted = true;
                None
            }
            Ok(Some(Err(error))) => {
                self.fail(&mut shared, index, error);
                None
            }
            Err(panic) => {
                let error = panic.at(UserCode::Source, index, first_row..first_row, None);
                self.fail(&mut shared, index, error);
                None
            }
            Ok(Some(Ok(batch))) => {
                if index == 0
                    && let (Some(reporter), Some(total)) = (self.reporter, batch.source_rows())
                {
                    reporter.learn_total(total);
                }
                let rows = first_row..first_row + batch.rows();
                shared.counts.rows_in = rows.end;
                shared.read += 1;
                let in_flight = shared.read - shared.written;
                shared.counts.max_in_flight = shared.counts.max_in_flight.max(in_flight);
                Some((index, rows, batch))
            }
        };
        // Drainers that found the source being read may go on now.
        self.respawn_parked(scope, &mut shared);
        claimed
    }

    /// Records unit `index`'s result and hands every output that is next in order to the sink,
    /// unless another drainer is doing so (it then takes this one too).
    fn complete<'c>(
        &'c self,
        scope: &rayon::Scope<'c>,
        index: usize,
        rows: Range<usize>,
        result: Result<O>,
    ) {
        let mut shared = lock(&self.shared);
        let output = match result {
            Ok(output) => Some(output),
            Err(error) => {
                self.fail(&mut shared, index, error);
                None
            }
        };
        shared.ready.insert(index, (rows, output));
        loop {
            let Some(sink) = shared.sink.take() else {
                return; // another drainer is writing: it takes this output too
            };
            let mut next = Vec::new();
            loop {
                let written = shared.written;
                let Some(entry) = shared.ready.remove(&written) else {
                    break;
                };
                next.push((written, entry));
                shared.written += 1;
            }
            if next.is_empty() {
                shared.sink = Some(sink);
                return;
            }
            let failed_at = shared.failure.as_ref().map(|(at, _)| *at);
            drop(shared);
            let mut handed = Vec::new();
            let mut sink_failure = None;
            for (i, (rows, output)) in next {
                // Outputs after the first failure (and the failed unit's own) are dropped.
                let output = match output {
                    Some(output) if failed_at.is_none_or(|at| i < at) && sink_failure.is_none() => {
                        output
                    }
                    other => {
                        discard(other);
                        continue;
                    }
                };
                match contain(|| sink(output)) {
                    Ok(Ok(height)) => handed.push((rows.len(), height)),
                    Ok(Err(source)) => sink_failure = Some((i, Error::of_closure(source))),
                    Err(panic) => sink_failure = Some((i, panic.at(UserCode::Sink, i, rows, None))),
                }
            }
            shared = lock(&self.shared);
            shared.sink = Some(sink);
            for (rows_in, rows_out) in handed {
                shared.counts.batches += 1;
                shared.counts.rows_out += rows_out;
                shared.rows_done += rows_in;
            }
            if let Some((i, error)) = sink_failure {
                self.fail(&mut shared, i, error);
            }
            // The window moved: parked drainers may claim again.
            self.respawn_parked(scope, &mut shared);
        }
    }

    /// Keeps the failure of the lowest unit; a later one is dropped under the guard.
    fn fail(&self, shared: &mut Shared<'s, B, O, S>, index: usize, error: Error) {
        match &shared.failure {
            Some((at, _)) if *at <= index => discard(error),
            _ => {
                if let Some(previous) = shared.failure.replace((index, error)) {
                    discard(previous);
                }
            }
        }
    }

    fn respawn_parked<'c>(&'c self, scope: &rayon::Scope<'c>, shared: &mut Shared<'s, B, O, S>) {
        let more = shared.failure.is_none() && !shared.exhausted;
        while more && shared.parked > 0 && shared.read - shared.written < self.window {
            shared.parked -= 1;
            scope.spawn(|scope| self.drain(scope));
        }
        if !more {
            shared.parked = 0;
        }
    }
}
