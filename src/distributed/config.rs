//! Who is in the cluster: process index, addresses, options; and which chunks each one runs.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::{Error, Flock, Result};

/// The default TCP port of a process when a launcher's environment names only hosts.
const DEFAULT_PORT: u16 = 2101;

/// One process's view of a cluster: its index, every process's address in process order, and
/// the options of the job (the local [`Flock`], the start-up timeout, part files).
///
/// Built from explicit values ([`Cluster::new`], which a program's own command line can feed), a
/// hostfile ([`Cluster::from_hostfile`]), or a launcher's environment ([`Cluster::from_env`]:
/// `FLOCK_*` variables, a Kubernetes Indexed Job, Slurm). Every process of a job must be given
/// the same address list and run the same program with the same source.
///
/// # Examples
///
/// ```
/// use polars_flock::distributed::Cluster;
///
/// let cluster = Cluster::new(1, ["10.0.0.1:2101", "10.0.0.2:2101", "10.0.0.3:2101"])?;
/// assert_eq!((cluster.process(), cluster.processes()), (1, 3));
/// assert_eq!(cluster.plan(7).chunks_of(1).collect::<Vec<_>>(), [1, 4]);
/// # Ok::<(), polars_flock::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Cluster {
    pub(super) process: usize,
    pub(super) addresses: Vec<String>,
    pub(super) listen: Option<String>,
    pub(super) startup_timeout: Duration,
    pub(super) flock: Flock,
    pub(super) parts: Option<PathBuf>,
}

impl Cluster {
    /// Process `process` of a cluster whose processes listen on `addresses` (`host:port`, in
    /// process order; `addresses[process]` is this process's own).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidOption`] if the list is empty, `process` is not an index into it, or an
    /// address has no port.
    ///
    /// # Examples
    ///
    /// ```
    /// use polars_flock::distributed::Cluster;
    /// assert!(Cluster::new(0, ["127.0.0.1:2101", "127.0.0.1:2102"]).is_ok());
    /// assert!(Cluster::new(2, ["127.0.0.1:2101", "127.0.0.1:2102"]).is_err());
    /// assert!(Cluster::new(0, ["no-port"]).is_err());
    /// ```
    pub fn new(
        process: usize,
        addresses: impl IntoIterator<Item = impl Into<String>>,
    ) -> Result<Self> {
        let addresses: Vec<String> = addresses.into_iter().map(Into::into).collect();
        if addresses.is_empty() {
            return Err(invalid("addresses", "[]", "at least one address"));
        }
        if let Some(bad) = addresses.iter().find(|a| !has_port(a)) {
            return Err(invalid("addresses", bad, "every address is host:port"));
        }
        if process >= addresses.len() {
            return Err(invalid(
                "process",
                &process.to_string(),
                "an index into the address list (process < processes)",
            ));
        }
        Ok(Self {
            process,
            addresses,
            listen: None,
            startup_timeout: Duration::from_secs(30),
            flock: Flock::new(),
            parts: None,
        })
    }

    /// A cluster of one process, with no network: the development mode, and what
    /// [`from_env`](Cluster::from_env) returns when no launcher is detected.
    ///
    /// # Examples
    ///
    /// ```
    /// let one = polars_flock::distributed::Cluster::single();
    /// assert_eq!((one.process(), one.processes()), (0, 1));
    /// ```
    pub fn single() -> Self {
        Self::new(0, ["127.0.0.1:0"]).expect("a valid one-process cluster")
    }

    /// Process `process` of the cluster listed in a hostfile: one `host:port` per line, in
    /// process order; blank lines and `#` comments are skipped.
    ///
    /// # Errors
    ///
    /// [`Error::InFile`] with [`Error::Io`] if the file cannot be read; [`Error::InvalidOption`]
    /// as [`Cluster::new`].
    ///
    /// # Examples
    ///
    /// ```
    /// let dir = tempfile::tempdir()?;
    /// let path = dir.path().join("hosts");
    /// std::fs::write(&path, "# the job's processes\n10.0.0.1:2101\n10.0.0.2:2101\n")?;
    /// let cluster = polars_flock::distributed::Cluster::from_hostfile(&path, 1)?;
    /// assert_eq!(cluster.addresses(), ["10.0.0.1:2101", "10.0.0.2:2101"]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn from_hostfile(path: impl AsRef<Path>, process: usize) -> Result<Self> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| Error::in_file(path, e))?;
        Self::new(process, parse_hostfile(&text))
    }

    /// The cluster described by this process's environment (see
    /// [`from_vars`](Cluster::from_vars) for the variables read), or [`Cluster::single`] when
    /// none is set.
    ///
    /// # Errors
    ///
    /// As [`from_vars`](Cluster::from_vars).
    ///
    /// # Examples
    ///
    /// ```
    /// // No launcher variables here: one process.
    /// let cluster = polars_flock::distributed::Cluster::from_env()?;
    /// assert_eq!(cluster.processes(), 1);
    /// # Ok::<(), polars_flock::Error>(())
    /// ```
    pub fn from_env() -> Result<Self> {
        Self::from_vars(|key| std::env::var(key).ok())
    }

    /// The cluster described by the variables `lookup` returns, for launchers, tests, and
    /// programs that take the values from their own configuration. The first that applies:
    ///
    /// 1. **Explicit**: `FLOCK_PROCESS` (this process's index) with `FLOCK_ADDRESSES`
    ///    (`host:port` list separated by commas or spaces) or `FLOCK_HOSTFILE` (a path).
    /// 2. **Kubernetes Indexed Job**: `JOB_COMPLETION_INDEX` (set by Kubernetes), with
    ///    `FLOCK_PROCESSES` (the Job's `completions`), `FLOCK_SERVICE` (the headless Service
    ///    the pods' `subdomain` names) and the Job's name from `FLOCK_JOB` (or `HOSTNAME`
    ///    without its `-<index>` suffix): process `i` is `<job>-<i>.<service>:<port>`, with
    ///    `.<FLOCK_NAMESPACE>.svc` appended when that is set. It listens on `POD_IP:<port>`
    ///    when `POD_IP` is set (the downward API), since its own DNS name may not resolve before
    ///    the pod is ready.
    /// 3. **Slurm**: `SLURM_PROCID`, `SLURM_NTASKS`, the node list `SLURM_STEP_NODELIST` (or
    ///    `SLURM_JOB_NODELIST`, in Slurm's compressed form `node[01-04,07]`) and the tasks per
    ///    node `SLURM_STEP_TASKS_PER_NODE` (or `SLURM_TASKS_PER_NODE`, `2(x3),1`), tasks placed
    ///    on nodes in order (Slurm's default block distribution): the `k`-th task of a node
    ///    listens on `<node>:<port + k>`.
    /// 4. Otherwise one process ([`Cluster::single`]).
    ///
    /// The port is `FLOCK_PORT`, 2101 by default. `FLOCK_STARTUP_TIMEOUT` (seconds) sets
    /// [`startup_timeout`](Cluster::startup_timeout), and `FLOCK_THREADS` the threads each
    /// process runs its chunks on (`flock(Flock::new().threads(n))`; without it, Polars' pool,
    /// which `POLARS_MAX_THREADS` sizes).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidOption`] naming the variable that is missing or malformed.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::collections::HashMap;
    /// use polars_flock::distributed::Cluster;
    ///
    /// let slurm = HashMap::from([
    ///     ("SLURM_PROCID", "3"),
    ///     ("SLURM_NTASKS", "4"),
    ///     ("SLURM_JOB_NODELIST", "cn[07-08]"),
    ///     ("SLURM_TASKS_PER_NODE", "2(x2)"),
    /// ]);
    /// let cluster = Cluster::from_vars(|k| slurm.get(k).map(|v| v.to_string()))?;
    /// assert_eq!(cluster.process(), 3);
    /// assert_eq!(cluster.addresses(), ["cn07:2101", "cn07:2102", "cn08:2101", "cn08:2102"]);
    ///
    /// let k8s = HashMap::from([
    ///     ("JOB_COMPLETION_INDEX", "1"),
    ///     ("HOSTNAME", "etl-1"),
    ///     ("FLOCK_PROCESSES", "2"),
    ///     ("FLOCK_SERVICE", "etl-peers"),
    /// ]);
    /// let cluster = Cluster::from_vars(|k| k8s.get(k).map(|v| v.to_string()))?;
    /// assert_eq!(cluster.addresses(), ["etl-0.etl-peers:2101", "etl-1.etl-peers:2101"]);
    /// # Ok::<(), polars_flock::Error>(())
    /// ```
    pub fn from_vars(lookup: impl Fn(&str) -> Option<String>) -> Result<Self> {
        let var = |key: &'static str| lookup(key).filter(|v| !v.trim().is_empty());
        let port = match var("FLOCK_PORT") {
            Some(p) => p
                .trim()
                .parse::<u16>()
                .map_err(|_| invalid("FLOCK_PORT", &p, "a TCP port number"))?,
            None => DEFAULT_PORT,
        };
        let index = |key: &'static str| -> Result<usize> {
            let v = var(key).ok_or_else(|| invalid(key, "", "set"))?;
            v.trim()
                .parse::<usize>()
                .map_err(|_| invalid(key, &v, "a non-negative integer"))
        };
        let mut cluster = if var("FLOCK_PROCESS").is_some() {
            let process = index("FLOCK_PROCESS")?;
            if let Some(list) = var("FLOCK_ADDRESSES") {
                let addresses = list.split([',', ' ', '\n']).filter(|a| !a.is_empty());
                Self::new(process, addresses.map(str::to_owned))?
            } else if let Some(path) = var("FLOCK_HOSTFILE") {
                Self::from_hostfile(path, process)?
            } else {
                return Err(invalid(
                    "FLOCK_ADDRESSES",
                    "",
                    "set (or FLOCK_HOSTFILE) when FLOCK_PROCESS is",
                ));
            }
        } else if var("JOB_COMPLETION_INDEX").is_some() {
            let process = index("JOB_COMPLETION_INDEX")?;
            let processes = index("FLOCK_PROCESSES")?;
            let service = var("FLOCK_SERVICE")
                .ok_or_else(|| invalid("FLOCK_SERVICE", "", "the headless Service's name"))?;
            let job = match var("FLOCK_JOB") {
                Some(job) => job,
                None => {
                    let host = var("HOSTNAME").unwrap_or_default();
                    let suffix = format!("-{process}");
                    host.strip_suffix(&suffix)
                        .map(str::to_owned)
                        .ok_or_else(|| {
                            invalid(
                                "HOSTNAME",
                                &host,
                                "<job>-<JOB_COMPLETION_INDEX>, or set FLOCK_JOB",
                            )
                        })?
                }
            };
            let domain = match var("FLOCK_NAMESPACE") {
                Some(ns) => format!("{service}.{ns}.svc"),
                None => service,
            };
            let addresses = (0..processes).map(|i| format!("{job}-{i}.{domain}:{port}"));
            let mut cluster = Self::new(process, addresses)?;
            cluster.listen = var("POD_IP").map(|ip| format!("{ip}:{port}"));
            cluster
        } else if var("SLURM_PROCID").is_some() {
            let process = index("SLURM_PROCID")?;
            let tasks = index("SLURM_NTASKS")?;
            let (nodes_key, nodes) = first_of(&var, ["SLURM_STEP_NODELIST", "SLURM_JOB_NODELIST"])?;
            let nodes = expand_hostlist(&nodes)
                .ok_or_else(|| invalid(nodes_key, &nodes, "a Slurm host list"))?;
            let (per_key, per) =
                first_of(&var, ["SLURM_STEP_TASKS_PER_NODE", "SLURM_TASKS_PER_NODE"])?;
            let per_node = expand_tasks_per_node(&per)
                .ok_or_else(|| invalid(per_key, &per, "Slurm's tasks per node, e.g. 2(x3),1"))?;
            let addresses = slurm_addresses(&nodes, &per_node, tasks, port).ok_or_else(|| {
                invalid(
                    per_key,
                    &per,
                    "as many tasks over the node list as SLURM_NTASKS",
                )
            })?;
            Self::new(process, addresses)?
        } else {
            Self::single()
        };
        if let Some(threads) = var("FLOCK_THREADS") {
            let n = threads
                .trim()
                .parse::<usize>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| invalid("FLOCK_THREADS", &threads, "a number of threads, > 0"))?;
            cluster.flock = Flock::new().threads(n);
        }
        if let Some(secs) = var("FLOCK_STARTUP_TIMEOUT") {
            let secs = secs
                .trim()
                .parse::<f64>()
                .ok()
                .filter(|s| s.is_finite() && *s > 0.0)
                .ok_or_else(|| invalid("FLOCK_STARTUP_TIMEOUT", &secs, "seconds, > 0"))?;
            cluster.startup_timeout = Duration::from_secs_f64(secs);
        }
        Ok(cluster)
    }

    /// How long to wait for every peer to be reachable when a call starts. A peer not connected
    /// by then fails the call with [`Error::ClusterStart`] on every process waiting for it.
    ///
    /// Default: 30 s.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let c = polars_flock::distributed::Cluster::single().startup_timeout(Duration::from_secs(5));
    /// assert_eq!(c.get_startup_timeout(), Duration::from_secs(5));
    /// ```
    pub fn startup_timeout(mut self, timeout: Duration) -> Self {
        self.startup_timeout = timeout;
        self
    }

    /// The [`startup_timeout`](Cluster::startup_timeout) in force.
    ///
    /// # Examples
    ///
    /// ```
    /// let c = polars_flock::distributed::Cluster::single();
    /// assert_eq!(c.get_startup_timeout().as_secs(), 30);
    /// ```
    pub fn get_startup_timeout(&self) -> std::time::Duration {
        self.startup_timeout
    }

    /// Listen on `address` instead of this process's own entry in the address list (which the
    /// others still connect to), e.g. a pod's IP when its DNS name resolves only once it is
    /// ready. Keep it a private address: see the module docs on security.
    ///
    /// # Examples
    ///
    /// ```
    /// let c = polars_flock::distributed::Cluster::new(0, ["etl-0.peers:2101"])?.listen("10.1.2.3:2101");
    /// # Ok::<(), polars_flock::Error>(())
    /// ```
    pub fn listen(mut self, address: impl Into<String>) -> Self {
        self.listen = Some(address.into());
        self
    }

    /// The local options each process runs its chunks with: threads, chunk size, timeout,
    /// cancel token, progress, retries. A cancel token here also stops the cluster job on this
    /// process (and so, as a failure, on the others). With [`Flock::retries`], a chunk whose
    /// source fails (a file server's hiccup while it is read) is read again, as that policy
    /// says, before it counts as the chunk's failure; its rows are retried by the local calls.
    ///
    /// Default: [`Flock::new()`] (all cores of each process).
    ///
    /// # Examples
    ///
    /// ```
    /// use polars_flock::Flock;
    /// let c = polars_flock::distributed::Cluster::single().flock(Flock::new().threads(2));
    /// ```
    pub fn flock(mut self, flock: Flock) -> Self {
        self.flock = flock;
        self
    }

    /// Write each chunk's output to `dir/part-<chunk>.arrow` (Arrow IPC, six-digit chunk number)
    /// instead of sending it to process 0, which then reads the parts in chunk order. Each part
    /// is written under a temporary name and renamed when complete, and a chunk whose part
    /// exists is skipped: after a crash, rerunning the same job computes only the missing
    /// chunks and returns the identical output. `dir` must be shared by the processes (a
    /// network file system, a volume) for process 0 to read every part; it is created if
    /// missing. Use a fresh directory for each job: parts of another job would be taken as done.
    ///
    /// Default: no part files (outputs cross the network to process 0).
    ///
    /// # Examples
    ///
    /// ```
    /// use polars_flock::distributed::{Chunks, Cluster};
    /// use polars_flock::polars::prelude::*;
    ///
    /// let dir = tempfile::tempdir()?;
    /// let chunks = Chunks::new(3, |c| Ok(df!("x" => [c as i64])?));
    /// let cluster = Cluster::single().parts(dir.path());
    /// let out = cluster.par_apply_rows(&chunks, "y", |row| Ok(row.i64("x")? + 1))?.unwrap();
    /// assert!(dir.path().join("part-000002.arrow").exists());
    /// // A rerun finds every part and computes nothing.
    /// let again = cluster.par_apply_rows(&chunks, "y", |_| -> Result<i64, _> { panic!("recomputed") })?;
    /// assert!(again.unwrap().equals(&out));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn parts(mut self, dir: impl Into<PathBuf>) -> Self {
        self.parts = Some(dir.into());
        self
    }

    /// This process's index, `0..processes()`. Process 0 receives the results.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(polars_flock::distributed::Cluster::single().process(), 0);
    /// ```
    pub fn process(&self) -> usize {
        self.process
    }

    /// The number of processes.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(polars_flock::distributed::Cluster::single().processes(), 1);
    /// ```
    pub fn processes(&self) -> usize {
        self.addresses.len()
    }

    /// Every process's address, in process order.
    ///
    /// # Examples
    ///
    /// ```
    /// let c = polars_flock::distributed::Cluster::new(0, ["a:1", "b:1"])?;
    /// assert_eq!(c.addresses(), ["a:1", "b:1"]);
    /// # Ok::<(), polars_flock::Error>(())
    /// ```
    pub fn addresses(&self) -> &[String] {
        &self.addresses
    }

    /// Which process runs which of `chunks` chunks.
    ///
    /// # Examples
    ///
    /// ```
    /// let c = polars_flock::distributed::Cluster::new(0, ["a:1", "b:1"])?;
    /// assert_eq!(c.plan(5).owner(3), 1);
    /// # Ok::<(), polars_flock::Error>(())
    /// ```
    pub fn plan(&self, chunks: usize) -> ShardPlan {
        ShardPlan {
            chunks,
            processes: self.processes(),
        }
    }
}

/// The deterministic assignment of chunks to processes: chunk `c` runs on process
/// `c % processes`. Every process computes it on its own from the chunk count, so nothing needs
/// to be agreed over the network; within a process the chunk is then split into blocks by the
/// local planner ([`ChunkPlan`](crate::ChunkPlan)).
///
/// # Examples
///
/// ```
/// let plan = polars_flock::distributed::Cluster::new(2, ["a:1", "b:1", "c:1"])?.plan(8);
/// assert_eq!(plan.chunks_of(2).collect::<Vec<_>>(), [2, 5]);
/// assert_eq!((plan.owner(7), plan.chunks(), plan.processes()), (1, 8, 3));
/// # Ok::<(), polars_flock::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShardPlan {
    chunks: usize,
    processes: usize,
}

impl ShardPlan {
    /// The process that runs chunk `chunk`.
    ///
    /// # Examples
    ///
    /// ```
    /// let plan = polars_flock::distributed::Cluster::new(0, ["a:1", "b:1"])?.plan(4);
    /// assert_eq!(plan.owner(2), 0);
    /// # Ok::<(), polars_flock::Error>(())
    /// ```
    pub fn owner(&self, chunk: usize) -> usize {
        chunk % self.processes
    }

    /// The chunks process `process` runs, in increasing order.
    ///
    /// # Examples
    ///
    /// ```
    /// let plan = polars_flock::distributed::Cluster::new(0, ["a:1", "b:1"])?.plan(5);
    /// assert_eq!(plan.chunks_of(0).collect::<Vec<_>>(), [0, 2, 4]);
    /// # Ok::<(), polars_flock::Error>(())
    /// ```
    pub fn chunks_of(&self, process: usize) -> impl Iterator<Item = usize> + use<> {
        (process..self.chunks).step_by(self.processes.max(1))
    }

    /// The number of chunks.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(polars_flock::distributed::Cluster::single().plan(9).chunks(), 9);
    /// ```
    pub fn chunks(&self) -> usize {
        self.chunks
    }

    /// The number of processes.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(polars_flock::distributed::Cluster::single().plan(9).processes(), 1);
    /// ```
    pub fn processes(&self) -> usize {
        self.processes
    }
}

fn invalid(option: &'static str, value: &str, reason: &'static str) -> Error {
    Error::InvalidOption {
        option,
        value: value.to_owned(),
        reason,
    }
}

fn has_port(address: &str) -> bool {
    address
        .rsplit_once(':')
        .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok())
}

fn first_of(
    var: &impl Fn(&'static str) -> Option<String>,
    keys: [&'static str; 2],
) -> Result<(&'static str, String)> {
    keys.iter()
        .find_map(|k| var(k).map(|v| (*k, v)))
        .ok_or_else(|| invalid(keys[1], "", "set by Slurm (run the job with srun)"))
}

pub(super) fn parse_hostfile(text: &str) -> Vec<String> {
    text.lines()
        .map(|l| l.split('#').next().unwrap_or("").trim())
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Slurm's compressed host list: `a1,b[01-03,07],c` → `a1 b01 b02 b03 b07 c`.
pub(super) fn expand_hostlist(list: &str) -> Option<Vec<String>> {
    let mut hosts = Vec::new();
    let mut rest = list.trim();
    while !rest.is_empty() {
        // One entry: up to the next comma outside brackets.
        let mut depth = 0;
        let end = rest
            .char_indices()
            .find(|&(_, ch)| {
                match ch {
                    '[' => depth += 1,
                    ']' => depth -= 1,
                    _ => {}
                }
                ch == ',' && depth == 0
            })
            .map_or(rest.len(), |(i, _)| i);
        let entry = &rest[..end];
        rest = rest.get(end + 1..).unwrap_or("");
        match entry.split_once('[') {
            None if !entry.is_empty() => hosts.push(entry.to_owned()),
            None => return None,
            Some((prefix, ranges)) => {
                let (ranges, suffix) = ranges.split_once(']')?;
                for range in ranges.split(',') {
                    let (lo, hi) = range.split_once('-').unwrap_or((range, range));
                    let width = lo.len();
                    let (lo, hi) = (lo.parse::<u64>().ok()?, hi.parse::<u64>().ok()?);
                    if hi < lo || hi - lo > 100_000 {
                        return None;
                    }
                    hosts.extend((lo..=hi).map(|n| format!("{prefix}{n:0width$}{suffix}")));
                }
            }
        }
    }
    (!hosts.is_empty()).then_some(hosts)
}

/// Slurm's tasks per node: `2(x3),1` → `2 2 2 1`.
pub(super) fn expand_tasks_per_node(list: &str) -> Option<Vec<usize>> {
    let mut out = Vec::new();
    for entry in list.trim().split(',') {
        let (count, times) = match entry.split_once("(x") {
            Some((count, times)) => (count, times.strip_suffix(')')?.parse::<usize>().ok()?),
            None => (entry, 1),
        };
        let count = count.parse::<usize>().ok()?;
        out.extend(std::iter::repeat_n(count, times.min(100_000)));
    }
    Some(out)
}

/// Task `i`'s address under Slurm's block distribution.
fn slurm_addresses(
    nodes: &[String],
    per_node: &[usize],
    tasks: usize,
    port: u16,
) -> Option<Vec<String>> {
    let mut addresses = Vec::with_capacity(tasks);
    for (node, &count) in nodes.iter().zip(per_node) {
        for local in 0..count {
            let port = port.checked_add(u16::try_from(local).ok()?)?;
            addresses.push(format!("{node}:{port}"));
        }
    }
    (addresses.len() == tasks).then_some(addresses)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slurm_host_lists_expand_in_order_with_their_zero_padding() {
        assert_eq!(
            expand_hostlist("a1,b[01-03,07],c[9-10]x").unwrap(),
            ["a1", "b01", "b02", "b03", "b07", "c9x", "c10x"]
        );
        assert_eq!(expand_hostlist("node[3-1]"), None);
        assert_eq!(expand_hostlist(""), None);
        assert_eq!(expand_tasks_per_node("2(x3),1").unwrap(), [2, 2, 2, 1]);
        assert_eq!(expand_tasks_per_node("x"), None);
    }

    #[test]
    fn slurm_task_counts_that_do_not_add_up_are_an_error_naming_the_variable() {
        let vars = [
            ("SLURM_PROCID", "0"),
            ("SLURM_NTASKS", "5"),
            ("SLURM_JOB_NODELIST", "n[1-2]"),
            ("SLURM_TASKS_PER_NODE", "2(x2)"),
        ];
        let err = Cluster::from_vars(|k| vars.iter().find(|v| v.0 == k).map(|v| v.1.to_owned()))
            .unwrap_err();
        assert!(
            matches!(
                err,
                Error::InvalidOption {
                    option: "SLURM_TASKS_PER_NODE",
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn explicit_variables_come_first_and_bad_values_name_their_variable() {
        let vars = [
            ("FLOCK_PROCESS", "1"),
            ("FLOCK_ADDRESSES", "h0:7000, h1:7000"),
            ("FLOCK_STARTUP_TIMEOUT", "2.5"),
            ("SLURM_PROCID", "0"),
        ];
        let get = |k: &str| vars.iter().find(|v| v.0 == k).map(|v| v.1.to_owned());
        let c = Cluster::from_vars(get).unwrap();
        assert_eq!(
            (c.process(), c.addresses()),
            (1, &["h0:7000".to_owned(), "h1:7000".to_owned()][..])
        );
        assert_eq!(c.get_startup_timeout(), Duration::from_millis(2500));
        let threads = |v: &str| {
            let v = v.to_owned();
            Cluster::from_vars(move |k| (k == "FLOCK_THREADS").then(|| v.clone()))
        };
        let plan = threads("3").unwrap().flock.plan(1_000_000).unwrap();
        assert_eq!(plan.threads(), 3);
        let err = threads("0").unwrap_err();
        assert!(matches!(
            err,
            Error::InvalidOption {
                option: "FLOCK_THREADS",
                ..
            }
        ));
        let err =
            Cluster::from_vars(|k| (k == "FLOCK_PROCESS").then(|| "x".to_owned())).unwrap_err();
        assert!(matches!(
            err,
            Error::InvalidOption {
                option: "FLOCK_PROCESS",
                ..
            }
        ));
        let err =
            Cluster::from_vars(|k| (k == "FLOCK_PROCESS").then(|| "0".to_owned())).unwrap_err();
        assert!(matches!(
            err,
            Error::InvalidOption {
                option: "FLOCK_ADDRESSES",
                ..
            }
        ));
        let k8s = [
            ("JOB_COMPLETION_INDEX", "0"),
            ("FLOCK_PROCESSES", "2"),
            ("FLOCK_SERVICE", "s"),
            ("HOSTNAME", "other-name"),
            ("POD_IP", "10.0.0.9"),
            ("FLOCK_PORT", "9000"),
        ];
        let get = |k: &str| k8s.iter().find(|v| v.0 == k).map(|v| v.1.to_owned());
        let err = Cluster::from_vars(get).unwrap_err();
        assert!(
            matches!(
                err,
                Error::InvalidOption {
                    option: "HOSTNAME",
                    ..
                }
            ),
            "{err}"
        );
        let get = |k: &str| {
            if k == "FLOCK_JOB" {
                Some("etl".to_owned())
            } else {
                get(k)
            }
        };
        let c = Cluster::from_vars(get).unwrap();
        assert_eq!(c.addresses()[1], "etl-1.s:9000");
        assert_eq!(c.listen.as_deref(), Some("10.0.0.9:9000"));
    }
}
