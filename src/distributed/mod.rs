//! Beyond one machine (feature `distributed`): the same binary on every process, chunks of a
//! source spread over the processes, results gathered in chunk order at process 0.
//!
//! A Rust closure cannot be sent to another machine, so every process runs the *same* program
//! (SPMD, as MPI jobs do) and only data moves: each process produces its own chunks of the
//! source (by chunk id: a generator, a list of files, Parquet row groups), runs them through the
//! ordinary local executor on all its cores, and sends the results to process 0 over
//! [timely-dataflow](https://docs.rs/timely)'s TCP mesh. Chunk `c` runs on process
//! `c % processes` ([`ShardPlan`]).
//!
//! ```no_run
//! use polars_flock::distributed::{Chunks, Cluster};
//! use polars_flock::polars::prelude::*;
//!
//! // On every process: `FLOCK_PROCESS=0 FLOCK_ADDRESSES=10.0.0.1:2101,10.0.0.2:2101 ./job`
//! // (or a Kubernetes Indexed Job, or `srun`; without any of them: one process).
//! let cluster = Cluster::from_env()?;
//! let chunks = Chunks::new(64, |c| Ok(df!("x" => (0..10_000).map(|i| (c * 10_000 + i) as f64).collect::<Vec<_>>())?));
//! let out = cluster.par_apply_rows(&chunks, "y", |row| Ok(row.f64("x")?.sqrt()))?;
//! if let Some(df) = out {
//!     println!("{df}"); // process 0: all 640,000 rows, in chunk order
//! }
//! # Ok::<(), polars_flock::Error>(())
//! ```
//!
//! # Failure model
//!
//! - A peer not reachable within [`Cluster::startup_timeout`] (30 s by default): every process
//!   that waits for it returns [`Error::ClusterStart`](crate::Error::ClusterStart) naming the
//!   peer and its address. Nothing retries forever, nothing is printed.
//! - A peer dying mid-run (killed, out of memory, its machine gone): its TCP connections close,
//!   and every other process returns [`Error::PeerLost`](crate::Error::PeerLost) — within
//!   milliseconds when idle, and after at most one local block when it was computing (the local
//!   call is cancelled as by a [`CancelToken`](crate::CancelToken)). timely's own threads panic
//!   when a connection breaks; the crate catches and silences those panics (a panic hook that
//!   forwards every other panic to the hook installed before it), so nothing panics out of the
//!   call. A peer that hangs without closing its connections is not detected: use the
//!   launcher's time limit.
//! - A closure failing or panicking on any process: that chunk's error crosses to process 0 and
//!   every process returns [`Error::InChunk`](crate::Error::InChunk) naming the chunk and the
//!   process (a panic's `source` is [`Error::Panicked`](crate::Error::Panicked), other errors
//!   from another process arrive as [`Error::Remote`](crate::Error::Remote) with their
//!   message). No chunk starts anywhere once process 0 has seen the failure; of the failures
//!   it receives, process 0 reports the lowest chunk.
//! - Nothing is written to stdout by the crate.
//! - Part files ([`Cluster::parts`]): each chunk's output is written under a temporary name and
//!   renamed when complete, so after any crash a rerun of the same job skips the chunks whose
//!   part exists and gathers the identical output.
//!
//! # Security
//!
//! timely's connections have no encryption and no authentication. Each process listens only on
//! its own configured address (or [`Cluster::listen`]); connections are checked for the crate's
//! handshake (job size and process index) and dropped otherwise, but anyone who can reach the
//! ports can join or disturb a job. **Run clusters only on a private network** (a Kubernetes
//! namespace with a NetworkPolicy, an HPC cluster's internal network).

mod config;
mod job;
mod net;

pub use config::{Cluster, ShardPlan};
pub use job::Chunks;
