//! The TCP mesh (connected by the crate, with a deadline and a handshake), timely's start and
//! end, and the containment of timely's panics.

use std::any::Any;
use std::cell::Cell;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream, ToSocketAddrs};
use std::sync::{Mutex, Once};
use std::time::{Duration, Instant};

use timely::WorkerConfig;
use timely::communication::allocator::zero_copy::initialize::initialize_networking_from_sockets;
use timely::communication::allocator::{AllocatorBuilder, ProcessBuilder};
use timely::communication::{Hooks, WorkerGuards};
use timely::worker::Worker;

use super::config::Cluster;
use crate::{Error, Result};

/// The first bytes of the crate's handshake (then the sender's index and the job's size).
const MAGIC: [u8; 8] = *b"FLOCK\x00\x00\x01";

/// The connections to every peer (`None` at this process's own index), or none for a
/// one-process cluster.
pub(super) struct Comms {
    process: usize,
    sockets: Option<Vec<Option<TcpStream>>>,
}

/// Connects this process to every other: to each lower-indexed peer (retrying until the
/// deadline, as it may not be listening yet) and from each higher-indexed one, each side
/// checking the other's handshake. Stray connections (a port scanner, another job) are dropped.
pub(super) fn connect(cluster: &Cluster) -> Result<Comms> {
    let me = cluster.process;
    let n = cluster.processes();
    if n == 1 {
        return Ok(Comms {
            process: me,
            sockets: None,
        });
    }
    let start = Instant::now();
    let deadline = start + cluster.startup_timeout;
    let listen = cluster.listen.as_deref().unwrap_or(&cluster.addresses[me]);
    let startup = |peer: usize, source: std::io::Error| Error::ClusterStart {
        process: me,
        peer,
        address: cluster.addresses[peer].clone(),
        waited: start.elapsed(),
        source,
    };
    let listener = TcpListener::bind(listen).map_err(|e| startup(me, e))?;
    listener.set_nonblocking(true).map_err(|e| startup(me, e))?;
    let mut sockets: Vec<Option<TcpStream>> = (0..n).map(|_| None).collect();
    // Lower peers first, while higher ones may already be queueing on the listener.
    for peer in 0..me {
        loop {
            let last = match dial(&cluster.addresses[peer], me, peer, n, deadline) {
                Ok(stream) => {
                    sockets[peer] = Some(stream);
                    break;
                }
                Err(e) => e,
            };
            accept_pending(&listener, me, n, &mut sockets);
            if Instant::now() >= deadline {
                return Err(startup(peer, last));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    while let Some(peer) = (me + 1..n).find(|&p| sockets[p].is_none()) {
        if !accept_pending(&listener, me, n, &mut sockets) {
            if Instant::now() >= deadline {
                let why = std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!(
                        "process {peer} did not connect within {:?}",
                        cluster.startup_timeout
                    ),
                );
                return Err(startup(peer, why));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    Ok(Comms {
        process: me,
        sockets: Some(sockets),
    })
}

/// One connection to `peer` at `address`, with the handshake both ways.
fn dial(
    address: &str,
    me: usize,
    peer: usize,
    n: usize,
    deadline: Instant,
) -> std::io::Result<TcpStream> {
    let mut last = std::io::Error::new(std::io::ErrorKind::NotFound, "no address");
    // Resolved on every attempt: a DNS name (a Kubernetes pod's) may appear late.
    for addr in address.to_socket_addrs()? {
        let left = deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(10));
        match TcpStream::connect_timeout(&addr, left.min(Duration::from_secs(2))) {
            Ok(mut stream) => {
                stream.set_nodelay(true)?;
                stream.set_read_timeout(Some(Duration::from_secs(5)))?;
                stream.write_all(&handshake(me, n))?;
                let (index, size) = read_handshake(&mut stream)?;
                if index != peer || size != n {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        format!(
                            "{address} answered as process {index} of {size}, not {peer} of {n}"
                        ),
                    ));
                }
                stream.set_read_timeout(None)?;
                return Ok(stream);
            }
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// Accepts the connections waiting on the listener: `true` if any was a peer's.
fn accept_pending(
    listener: &TcpListener,
    me: usize,
    n: usize,
    sockets: &mut [Option<TcpStream>],
) -> bool {
    let mut any = false;
    while let Ok((mut stream, _)) = listener.accept() {
        let checked = (|| -> std::io::Result<Option<usize>> {
            stream.set_nonblocking(false)?;
            stream.set_nodelay(true)?;
            stream.set_read_timeout(Some(Duration::from_secs(5)))?;
            let (index, size) = read_handshake(&mut stream)?;
            if size != n || index <= me || index >= n || sockets[index].is_some() {
                return Ok(None);
            }
            stream.write_all(&handshake(me, n))?;
            stream.set_read_timeout(None)?;
            Ok(Some(index))
        })();
        if let Ok(Some(index)) = checked {
            sockets[index] = Some(stream);
            any = true;
        }
    }
    any
}

fn handshake(me: usize, n: usize) -> [u8; 24] {
    let mut out = [0; 24];
    out[..8].copy_from_slice(&MAGIC);
    out[8..16].copy_from_slice(&(me as u64).to_be_bytes());
    out[16..].copy_from_slice(&(n as u64).to_be_bytes());
    out
}

fn read_handshake(stream: &mut TcpStream) -> std::io::Result<(usize, usize)> {
    let mut buf = [0; 24];
    stream.read_exact(&mut buf)?;
    if buf[..8] != MAGIC {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "not a polars-flock peer",
        ));
    }
    let word = |i: usize| u64::from_be_bytes(buf[i..i + 8].try_into().expect("8 bytes")) as usize;
    Ok((word(8), word(16)))
}

/// Starts timely's worker (one per process) on the connections.
pub(super) fn start<F>(comms: Comms, func: F) -> Result<WorkerGuards<()>>
where
    F: Fn(&mut Worker) + Send + Sync + 'static,
{
    install_quiet_hook();
    reset_lost();
    let me = comms.process;
    let built = match comms.sockets {
        None => timely::CommunicationConfig::Thread.try_build(),
        Some(sockets) => {
            let hooks = Hooks::default();
            let process =
                ProcessBuilder::new_typed_vector(1, hooks.refill.clone(), hooks.spill.clone());
            initialize_networking_from_sockets(process, sockets, me, 1, hooks)
                .map(|(builders, guard)| {
                    let builders = builders.into_iter().map(AllocatorBuilder::Tcp).collect();
                    (builders, Box::new(guard) as Box<dyn Any + Send>)
                })
                .map_err(|e| e.to_string())
        }
    };
    let (builders, others) = built.map_err(|message| Error::PeerLost {
        process: me,
        peer: None,
        message,
    })?;
    timely::execute::execute_from(builders, others, WorkerConfig::default(), func).map_err(
        |message| Error::PeerLost {
            process: me,
            peer: None,
            message,
        },
    )
}

/// Joins timely's threads. When a connection broke, they panicked, and joining them panics
/// again: caught here, quietly (the failure is already recorded).
pub(super) fn finish(guards: WorkerGuards<()>) {
    QUIET.with(|q| q.set(true));
    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| drop(guards.join())));
    QUIET.with(|q| q.set(false));
}

thread_local! {
    /// Set while this thread joins timely's threads: their panics are expected.
    static QUIET: Cell<bool> = const { Cell::new(false) };
}

/// The first panic of a timely thread in this process: (thread name, message).
static LOST: Mutex<Option<(String, String)>> = Mutex::new(None);

fn reset_lost() {
    if let Ok(mut lost) = LOST.lock() {
        *lost = None;
    }
}

/// Installs, once, a panic hook that records and silences panics of timely's threads (a
/// connection closing makes them panic by design) and of joining them, and passes every other
/// panic to the hook that was installed before.
fn install_quiet_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let thread = std::thread::current();
            let name = thread.name().unwrap_or("");
            if name.starts_with("timely:") {
                let message = payload_message(info.payload());
                if let Ok(mut lost) = LOST.lock() {
                    lost.get_or_insert((name.to_owned(), message));
                }
                return;
            }
            if QUIET.with(Cell::get) {
                return;
            }
            previous(info)
        }));
    });
}

/// The message of a caught panic of timely's worker: the first timely thread's panic if one was
/// recorded (the broken connection, rather than its consequence in the worker).
pub(super) fn panic_message(payload: &Box<dyn Any + Send>) -> String {
    let own = payload_message(payload.as_ref());
    match LOST.lock().ok().and_then(|l| l.clone()) {
        Some((thread, message)) => format!("{thread}: {message}"),
        None => own,
    }
}

fn payload_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "<non-string panic payload>".to_owned()
    }
}

/// The peer whose connection broke, from a message naming timely's `recv-<peer>`/`send-<peer>`
/// thread, and the message.
pub(super) fn lost_peer(message: String) -> (Option<usize>, String) {
    let peer = message
        .strip_prefix("timely:recv-")
        .or_else(|| message.strip_prefix("timely:send-"))
        .and_then(|rest| rest.split(':').next())
        .and_then(|p| p.parse().ok());
    (peer, message)
}
