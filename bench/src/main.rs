//! Every ipc-rpc transport side by side, against the same exchanges written directly on
//! the mechanism's system calls, in one run:
//!
//! - sequential round trip (echo) at 64 B, 4 KiB, 64 KiB and 1 MiB: p50, p99, mean;
//! - calls/s with 1 and 8 callers sharing one client, and with 8 clients;
//! - producer-consumer streaming at 64 B and 64 KiB messages, in MB/s;
//! - server push: events/s through one subscription at 64 B and 64 KiB, beside the
//!   raw mechanism's streaming rate in messages/s;
//! - for shared memory, four ways to wait (spin, spin-futex, futex, POSIX semaphore).
//!
//! ```text
//! cargo run --release -p ipc-rpc-bench                 # the full run (~1 minute)
//! cargo run --release -p ipc-rpc-bench -- --quick      # a smoke run (seconds)
//! cargo run --release -p ipc-rpc-bench -- --pin same   # both processes on CPU 0
//! ```
//!
//! Servers run in child processes: this binary re-executed with a role in
//! `IPC_RPC_BENCH_ROLE`. The table goes to stdout (Markdown); the figures and the
//! machine's facts to `target/ipc-rpc-bench/results.json`, the latency chart to
//! `target/ipc-rpc-bench/latency.svg`.
#![deny(unsafe_code)]

mod measure;
mod raw;
mod report;
mod roles;
mod shm_raw;
#[cfg(feature = "tls")]
mod tls;

use std::error::Error;
use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use ipc_rpc::{Endpoint, ipc_service};
use nix::sys::resource::{Resource, getrlimit, setrlimit};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::raw::RawKind;
use crate::roles::{CPU_ENV, ROLE_ENV};
use crate::shm_raw::Strategy;

/// One message of a producer-consumer batch: a byte string on the wire (one length,
/// then the bytes), not a sequence of numbers.
#[derive(Clone, Debug)]
pub struct Msg(pub Vec<u8>);

impl Serialize for Msg {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(&self.0)
    }
}

/// Written as a byte string (above), so its schema is one.
impl ipc_rpc::Schema for Msg {
    const SCHEMA: &'static ipc_rpc::schema::NamedType = <ipc_rpc::Bytes as ipc_rpc::Schema>::SCHEMA;
}

impl<'de> Deserialize<'de> for Msg {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Msg;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a byte string")
            }
            fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Msg, E> {
                Ok(Msg(v.to_vec()))
            }
            fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<Msg, E> {
                Ok(Msg(v))
            }
        }
        d.deserialize_byte_buf(V)
    }
}

/// The service every transport serves.
#[ipc_service]
pub trait Bench {
    /// Returns `bytes` unchanged: the round trip.
    fn echo(&self, bytes: Vec<u8>) -> Vec<u8>;
    /// Takes a batch of messages and returns how many bytes it held: the consumer.
    fn consume(&self, batch: Vec<Msg>) -> u64;
    /// Sleeps `ms` milliseconds: a slow handler.
    fn sleep_ms(&self, ms: u64) -> u64;
    /// Pushes `count` events of `size` bytes through one subscription, from a thread
    /// of the server's (the handler returns at once), then ends it: the push rows.
    fn push(&self, count: u32, size: u32, events: ipc_rpc::Sink<Msg>);
}

struct Server;

impl Bench for Server {
    fn echo(&self, bytes: Vec<u8>) -> Vec<u8> {
        bytes
    }
    fn consume(&self, batch: Vec<Msg>) -> u64 {
        batch.iter().map(|m| m.0.len() as u64).sum()
    }
    fn sleep_ms(&self, ms: u64) -> u64 {
        std::thread::sleep(std::time::Duration::from_millis(ms));
        ms
    }
    fn push(&self, count: u32, size: u32, events: ipc_rpc::Sink<Msg>) {
        let event = Msg(vec![0x5A; size as usize]);
        std::thread::spawn(move || {
            for _ in 0..count {
                if events.send(&event).is_err() {
                    return;
                }
            }
        });
    }
}

/// A transport under test: how ours is reached and which raw mechanisms it is
/// compared with (the first is the baseline of the ratio).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    /// `pipe`
    Pipe,
    /// `fifo:`
    Fifo,
    /// `mq:` with its default queues (1 message of 4 KiB)
    Mq,
    /// `mq:` with the deepest, largest queues the system allows
    /// (`?depth=10&msgsize=8192` by default)
    MqDeep,
    /// `shm:`
    Shm,
    /// `unix:`
    Unix,
    /// `tcp:`
    Tcp,
    /// `tls:` (feature `tls`), with a certificate made for the run; no client
    /// certificate
    #[cfg(feature = "tls")]
    Tls,
}

impl Transport {
    const ALL: &[Transport] = &[
        Transport::Pipe,
        Transport::Fifo,
        Transport::Mq,
        Transport::MqDeep,
        Transport::Shm,
        Transport::Unix,
        Transport::Tcp,
        #[cfg(feature = "tls")]
        Transport::Tls,
    ];

    /// The endpoint scheme.
    pub fn name(self) -> &'static str {
        match self {
            Transport::Pipe => "pipe",
            Transport::Fifo => "fifo",
            Transport::Mq => "mq",
            Transport::MqDeep => "mq-deep",
            Transport::Shm => "shm",
            Transport::Unix => "unix",
            Transport::Tcp => "tcp",
            #[cfg(feature = "tls")]
            Transport::Tls => "tls",
        }
    }

    fn endpoint(self) -> String {
        let stem = format!("ipc-rpc-bench.{}", raw::run_id());
        let tmp = std::env::temp_dir();
        match self {
            Transport::Pipe => "pipe".into(),
            Transport::Fifo => format!("fifo:{}", tmp.join(format!("{stem}.fifo")).display()),
            Transport::Mq => format!("mq:/{stem}"),
            Transport::MqDeep => {
                let (depth, msgsize) = mq_deep();
                format!("mq:/{stem}.deep?depth={depth}&msgsize={msgsize}")
            }
            Transport::Shm => format!("shm:/{stem}"),
            // Room for the idle-connection row's 2000 clients.
            Transport::Unix => format!(
                "unix:{}?max_connections=4096",
                tmp.join(format!("{stem}.sock")).display()
            ),
            Transport::Tcp => "tcp:127.0.0.1:0?max_connections=4096".into(),
            #[cfg(feature = "tls")]
            Transport::Tls => format!(
                "tls:127.0.0.1:0?max_connections=4096&{}",
                tls::certs().identity("server")
            ),
        }
    }

    /// Idle clients the idle-connection row connects: 2000 on sockets, as many as
    /// this machine's default limits comfortably allow on the others (the mqueue
    /// namespace holds 256 queues, two per connection; deep queues also count against
    /// `RLIMIT_MSGQUEUE`). A tenth of that in a quick run.
    pub fn idle_connections(self, quick: bool) -> usize {
        let n = match self {
            Transport::Pipe => 0,
            Transport::Unix | Transport::Tcp => 2000,
            #[cfg(feature = "tls")]
            Transport::Tls => 2000,
            Transport::Shm => 1000,
            Transport::Fifo => 500,
            Transport::Mq => 40,
            Transport::MqDeep => 4,
        };
        if quick { (n / 10).max(2) } else { n }
    }

    /// The raw mechanisms compared with ours, the baseline first.
    pub fn raw(self) -> Vec<RawKind> {
        match self {
            Transport::Pipe => vec![RawKind::Pipe],
            Transport::Fifo => vec![RawKind::Fifo],
            // The queues the `mq` transport makes by default (1 message of 4 KiB, so
            // that 97 clients fit RLIMIT_MSGQUEUE), then the deepest, largest ones.
            Transport::Mq => {
                let (depth, msgsize) = mq_deep();
                vec![
                    RawKind::Mq {
                        depth: 1,
                        msgsize: 4096,
                    },
                    RawKind::Mq { depth, msgsize },
                ]
            }
            Transport::MqDeep => {
                let (depth, msgsize) = mq_deep();
                vec![RawKind::Mq { depth, msgsize }]
            }
            Transport::Shm => Strategy::ALL.into_iter().map(RawKind::Shm).collect(),
            Transport::Unix => vec![RawKind::Unix],
            Transport::Tcp => vec![RawKind::Tcp],
            // What TLS costs over the same TCP exchange.
            #[cfg(feature = "tls")]
            Transport::Tls => vec![RawKind::Tcp],
        }
    }
}

/// The deepest, largest queues an unprivileged process gets by default:
/// `/proc/sys/fs/mqueue/msg_max` (at most 10) messages of `msgsize_max` (at most 8 KiB).
fn mq_deep() -> (usize, usize) {
    let read = |name: &str, default: usize| {
        std::fs::read_to_string(format!("/proc/sys/fs/mqueue/{name}"))
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(default)
            .min(default)
    };
    (read("msg_max", 10), read("msgsize_max", 8192))
}

/// Our client and the server child behind it.
pub struct Ours {
    /// The client.
    pub client: BenchClient,
    /// Where more clients connect (`None` for the pipe).
    pub endpoint: Option<Endpoint>,
    child: Child,
}

impl Ours {
    /// The server child on CPU `cpu`, or where the kernel puts it if `None` (on any
    /// CPU, not on this process's).
    fn start(t: Transport, cpu: Option<usize>) -> Result<Self, Box<dyn Error>> {
        let mut cmd = Command::new(std::env::current_exe()?);
        match cpu {
            Some(cpu) => cmd.env(CPU_ENV, cpu.to_string()),
            None => cmd.env(CPU_ENV, ANY_CPU),
        };
        let endpoint: Endpoint = t.endpoint().parse()?;
        if t == Transport::Pipe {
            cmd.env(ROLE_ENV, "rpc-pipe");
            let (client, child) = ipc_rpc::spawn_child_with::<BenchClient>(cmd, &endpoint)?;
            return Ok(Self {
                client,
                endpoint: None,
                child,
            });
        }
        cmd.env(ROLE_ENV, "rpc")
            .arg(endpoint.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped());
        let mut child = cmd.spawn()?;
        let mut lines = BufReader::new(child.stdout.take().ok_or("no stdout")?).lines();
        let bound: Endpoint = lines.next().ok_or("server did not start")??.parse()?;
        #[cfg(feature = "tls")]
        let bound = tls::client_endpoint(&bound);
        Ok(Self {
            client: BenchClient::connect(&bound)?,
            endpoint: Some(bound),
            child,
        })
    }

    /// The server process's id.
    pub fn server_pid(&self) -> u32 {
        self.child.id()
    }

    fn finish(mut self) {
        drop(self.client);
        drop(self.child.stdin.take());
        let _ = self.child.wait();
    }
}

fn pin(cpu: Option<usize>) {
    let Some(cpu) = cpu else { return };
    let mut set = nix::sched::CpuSet::new();
    if set.set(cpu).is_ok() {
        let _ = nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &set);
    }
}

/// [`CPU_ENV`]'s value for a child that may run on every CPU.
const ANY_CPU: &str = "any";

/// Lets the calling thread run on every CPU again (threads and children inherit the
/// parent's pinning): the kernel keeps the CPUs that exist.
pub fn unpin() {
    let mut set = nix::sched::CpuSet::new();
    for cpu in 0..nix::sched::CpuSet::count() {
        let _ = set.set(cpu);
    }
    let _ = nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &set);
}

/// Serves as a child if this process was started as one; `Ok(true)` then.
fn child_role() -> Result<bool, Box<dyn Error>> {
    let Ok(role) = std::env::var(ROLE_ENV) else {
        return Ok(false);
    };
    match std::env::var(CPU_ENV) {
        Ok(any) if any == ANY_CPU => unpin(),
        cpu => pin(cpu.ok().and_then(|c| c.parse().ok())),
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    match role.as_str() {
        "raw" => raw::serve(&args)?,
        "rpc-pipe" => {
            let server =
                ipc_rpc::serve_parent(BenchServer::new(Server))?.ok_or("no inherited pipe")?;
            server.wait();
        }
        "rpc" => {
            let endpoint: Endpoint = args.first().ok_or("no endpoint")?.parse()?;
            let server = ipc_rpc::serve(&endpoint, BenchServer::new(Server))?;
            println!("{}", server.endpoint());
            let _ = std::io::stdin().read_to_end(&mut Vec::new());
            server.shutdown();
        }
        other => return Err(format!("unknown role {other}").into()),
    }
    Ok(true)
}

/// Where the processes run.
#[derive(Clone, Copy, Debug)]
pub struct Placement {
    /// `split`, `same` or `off`.
    pub name: &'static str,
    /// The benchmark's CPU.
    pub parent: Option<usize>,
    /// The servers' CPU.
    pub child: Option<usize>,
}

const USAGE: &str = "usage: ipc-rpc-bench [--quick] [--pin split|same|off] \
                     [--only TRANSPORT,...] [--sizes BYTES,...]

  --only   run these transports only (pipe, fifo, mq, shm, unix, tcp; tls when built
           with --features tls)
  --sizes  round trips at these payload sizes only, nothing else: for profiling";

/// Which part of the comparison runs: all of it unless narrowed on the command line.
#[derive(Clone, Debug)]
pub struct Selection {
    /// The transports, in this order.
    pub transports: Vec<Transport>,
    /// Round-trip payload sizes.
    pub sizes: Vec<usize>,
    /// Skip the calls/s and streaming figures.
    pub round_trips_only: bool,
}

impl Default for Selection {
    fn default() -> Self {
        Selection {
            transports: Transport::ALL.to_vec(),
            sizes: measure::SIZES.to_vec(),
            round_trips_only: false,
        }
    }
}

/// How long each measurement runs.
#[derive(Clone, Copy, Debug)]
pub struct Budget {
    /// Per size and variant (raw or ours), split into `rounds` interleaved rounds.
    pub latency: Duration,
    /// Interleaved rounds per cell.
    pub rounds: u32,
    /// Per calls/s figure.
    pub rate: Duration,
    /// Per streaming size and variant.
    pub stream: Duration,
    /// A smoke run: fewer idle connections.
    pub quick: bool,
}

fn main() -> Result<(), Box<dyn Error>> {
    // Thousands of idle connections (the idle-connection row), on both sides: the
    // servers run as children and inherit it.
    if let Ok((_, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
        let _ = setrlimit(Resource::RLIMIT_NOFILE, hard, hard);
    }
    if child_role()? {
        return Ok(());
    }
    let mut quick = false;
    let mut placement = "split".to_owned();
    let mut only = Selection::default();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--quick" => quick = true,
            "--pin" => placement = args.next().ok_or("--pin needs split, same or off")?,
            "--only" => {
                let list = args
                    .next()
                    .ok_or("--only needs transports, e.g. unix,pipe")?;
                only.transports = list
                    .split(',')
                    .map(|name| {
                        Transport::ALL
                            .iter()
                            .copied()
                            .find(|t| t.name() == name)
                            .ok_or_else(|| format!("--only: unknown transport {name}"))
                    })
                    .collect::<Result<_, _>>()?;
            }
            "--sizes" => {
                let list = args
                    .next()
                    .ok_or("--sizes needs byte counts, e.g. 64,1048576")?;
                only.sizes = list
                    .split(',')
                    .map(|n| n.parse().map_err(|_| format!("--sizes: bad size {n}")))
                    .collect::<Result<_, _>>()?;
                only.round_trips_only = true;
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(());
            }
            other => return Err(format!("unknown argument {other}").into()),
        }
    }
    let placement = match placement.as_str() {
        "split" => Placement {
            name: "split",
            parent: Some(0),
            child: Some(1),
        },
        "same" => Placement {
            name: "same",
            parent: Some(0),
            child: Some(0),
        },
        "off" => Placement {
            name: "off",
            parent: None,
            child: None,
        },
        other => return Err(format!("--pin {other}: expected split, same or off").into()),
    };
    let budget = if quick {
        Budget {
            latency: Duration::from_millis(20),
            rounds: 2,
            rate: Duration::from_millis(40),
            stream: Duration::from_millis(30),
            quick: true,
        }
    } else {
        Budget {
            latency: Duration::from_millis(400),
            rounds: 8,
            rate: Duration::from_millis(500),
            stream: Duration::from_millis(400),
            quick: false,
        }
    };
    pin(placement.parent);
    let rows = measure::run(placement, budget, &only)?;
    report::print_table(&rows, placement);
    let dir = report::out_dir();
    std::fs::create_dir_all(&dir)?;
    let json = dir.join("results.json");
    std::fs::write(&json, report::json(&rows, placement, budget, quick))?;
    let svg = dir.join("latency.svg");
    report::chart(&rows, &svg)?;
    eprintln!("wrote {} and {}", json.display(), svg.display());
    #[cfg(feature = "tls")]
    tls::remove_certs();
    Ok(())
}

#[cfg(test)]
mod tests {
    use nix::sched::{CpuSet, sched_getaffinity};
    use nix::unistd::Pid;

    fn cpus() -> Vec<usize> {
        let set = sched_getaffinity(Pid::from_raw(0)).expect("affinity");
        (0..CpuSet::count())
            .filter(|&cpu| set.is_set(cpu).unwrap_or(false))
            .collect()
    }

    /// The unpinned rows' callers: a thread pinned to one CPU, as a pinned run's
    /// threads inherit, runs on every CPU it could before once it calls `unpin`.
    #[test]
    fn unpin_undoes_pinning_to_one_cpu() {
        std::thread::spawn(|| {
            let before = cpus();
            super::pin(before.first().copied());
            assert_eq!(cpus().len(), 1);
            super::unpin();
            let after = cpus();
            assert!(
                before.iter().all(|cpu| after.contains(cpu)),
                "{before:?} {after:?}"
            );
        })
        .join()
        .unwrap();
    }
}
