//! Shared pieces of the integration tests: test services, per-transport endpoints,
//! a watchdog, and a server run in a child process (the test binary re-executed).
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use ipc_rpc::{Endpoint, ipc_service};
use serde::{Deserialize, Serialize};

/// Env var that makes a re-executed test binary act as a server.
pub const ROLE_VAR: &str = "IPC_RPC_TEST_ROLE";
/// Env var carrying the endpoint the child server binds.
pub const ENDPOINT_VAR: &str = "IPC_RPC_TEST_ENDPOINT";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ipc_rpc::Schema)]
pub enum Shape {
    Point,
    Circle { r: f64 },
    Poly(Vec<(i32, i32)>),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ipc_rpc::Schema)]
pub struct Nested {
    pub name: String,
    pub shapes: Vec<Shape>,
    pub tags: BTreeMap<String, Option<u64>>,
    pub inner: Option<Box<Nested>>,
    pub pair: (u8, i128),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ipc_rpc::Schema)]
pub enum MathError {
    DivideByZero,
    Overflow { a: i64, b: i64 },
}

/// The service every matrix test talks to.
#[ipc_service]
pub trait Probe {
    /// Adds two numbers.
    fn add(&self, a: i64, b: i64) -> i64;
    fn echo(&self, bytes: Vec<u8>) -> Vec<u8>;
    fn nested(&self, value: Nested) -> Nested;
    fn div(&self, a: i64, b: i64) -> Result<i64, MathError>;
    fn sleep_ms(&self, ms: u64) -> u64;
    fn panic_now(&self, message: String) -> u32;
    fn fill(&self, len: u32) -> Vec<u8>;
    fn nothing(&self);
    fn pid(&self) -> u32;
    /// The caller as the server sees it: (pid, uid).
    fn caller(&self) -> (Option<u32>, Option<u32>);
    /// Byte strings before and after another argument, joined in a tuple.
    fn splice(&self, front: Vec<u8>, n: u32, back: Vec<u8>) -> (u32, Vec<u8>);
    /// Waits until the caller gives up (`ipc_rpc::cancelled()`), at most `max_ms`;
    /// remembers `tag` if it saw that.
    fn watch_cancel(&self, tag: u64, max_ms: u64) -> bool;
    /// Whether a `watch_cancel` call tagged `tag` saw its caller give up.
    fn cancel_seen(&self, tag: u64) -> bool;
    /// What `ipc_rpc::deadline()` says inside the handler, in milliseconds.
    fn deadline_ms(&self) -> Option<u64>;
    /// Sleeps `ms` and returns the most `hold` calls tagged `tag` that ran at once so far.
    fn hold(&self, tag: u64, ms: u64) -> u32;
    /// Sends `0..n` as events from the handler itself, then ends the stream.
    fn count(&self, n: u32, events: ipc_rpc::Sink<u32>);
    /// Returns at once; a thread sends `0..n`, `every_ms` apart, then ends the stream.
    fn count_later(&self, n: u32, every_ms: u64, events: ipc_rpc::Sink<u32>);
    /// Returns at once; a thread sends `len`-byte events, 1 ms apart, until a send
    /// fails other than by timing out; `flood_ended(tag)` then says how.
    fn flood(&self, tag: u64, len: u32, events: ipc_rpc::Sink<Vec<u8>>);
    /// How the `flood` tagged `tag` ended (its send's error), if it did.
    fn flood_ended(&self, tag: u64) -> Option<String>;
    /// Returns at once; a thread `try_send`s `0, 1, …` until the subscriber's buffer is
    /// full, then `send`s once with a 100 ms timeout; `flood_ended(tag)` then says
    /// `full after N; then <error>`.
    fn fill_up(&self, tag: u64, events: ipc_rpc::Sink<u32>);
    /// Sends `0..n`, then panics with `message`.
    fn count_then_panic(&self, n: u32, message: String, events: ipc_rpc::Sink<u32>);
}

/// How each `flood` ended, by tag.
static FLOODS: std::sync::Mutex<BTreeMap<u64, String>> = std::sync::Mutex::new(BTreeMap::new());

/// Per tag: `hold` calls running now, and the most that ran at once.
static HOLDS: std::sync::Mutex<BTreeMap<u64, (u32, u32)>> = std::sync::Mutex::new(BTreeMap::new());

/// Tags of `watch_cancel` calls that saw their caller give up.
static CANCELS_SEEN: std::sync::Mutex<std::collections::BTreeSet<u64>> =
    std::sync::Mutex::new(std::collections::BTreeSet::new());

/// Whether a `watch_cancel` call tagged `tag`, served in this process, saw its caller
/// give up.
pub fn cancel_seen_here(tag: u64) -> bool {
    CANCELS_SEEN.lock().unwrap().contains(&tag)
}

/// A tag no other test of this run uses.
pub fn unique_tag() -> u64 {
    (u64::from(std::process::id()) << 32) | u64::from(COUNTER.fetch_add(1, Ordering::Relaxed))
}

pub struct ProbeImpl;

impl Probe for ProbeImpl {
    fn add(&self, a: i64, b: i64) -> i64 {
        a.wrapping_add(b)
    }
    fn echo(&self, bytes: Vec<u8>) -> Vec<u8> {
        bytes
    }
    fn nested(&self, mut value: Nested) -> Nested {
        value.name.push_str(" (seen)");
        value
    }
    fn div(&self, a: i64, b: i64) -> Result<i64, MathError> {
        if b == 0 {
            return Err(MathError::DivideByZero);
        }
        a.checked_div(b).ok_or(MathError::Overflow { a, b })
    }
    fn sleep_ms(&self, ms: u64) -> u64 {
        thread::sleep(Duration::from_millis(ms));
        ms
    }
    fn panic_now(&self, message: String) -> u32 {
        panic!("{message}")
    }
    fn fill(&self, len: u32) -> Vec<u8> {
        vec![0xAB; len as usize]
    }
    fn nothing(&self) {}
    fn pid(&self) -> u32 {
        std::process::id()
    }
    fn caller(&self) -> (Option<u32>, Option<u32>) {
        let peer = ipc_rpc::peer().expect("inside a handler");
        (peer.pid, peer.uid)
    }
    fn splice(&self, mut front: Vec<u8>, n: u32, back: Vec<u8>) -> (u32, Vec<u8>) {
        front.extend_from_slice(&back);
        (n, front)
    }
    fn watch_cancel(&self, tag: u64, max_ms: u64) -> bool {
        let until = std::time::Instant::now() + Duration::from_millis(max_ms);
        while std::time::Instant::now() < until {
            if ipc_rpc::cancelled() {
                CANCELS_SEEN.lock().unwrap().insert(tag);
                return true;
            }
            thread::sleep(Duration::from_millis(1));
        }
        false
    }
    fn cancel_seen(&self, tag: u64) -> bool {
        CANCELS_SEEN.lock().unwrap().contains(&tag)
    }
    fn deadline_ms(&self) -> Option<u64> {
        ipc_rpc::deadline().map(|d| d.as_millis() as u64)
    }
    fn count(&self, n: u32, events: ipc_rpc::Sink<u32>) {
        for i in 0..n {
            if events.send(&i).is_err() {
                return;
            }
        }
    }
    fn count_later(&self, n: u32, every_ms: u64, events: ipc_rpc::Sink<u32>) {
        thread::spawn(move || {
            for i in 0..n {
                thread::sleep(Duration::from_millis(every_ms));
                if events.send(&i).is_err() {
                    return;
                }
            }
        });
    }
    fn flood(&self, tag: u64, len: u32, events: ipc_rpc::Sink<Vec<u8>>) {
        thread::spawn(move || {
            let payload = vec![0x5A; len as usize];
            loop {
                match events.send(&payload) {
                    Ok(()) | Err(ipc_rpc::SinkError::Timeout { .. }) => {}
                    Err(e) => {
                        FLOODS.lock().unwrap().insert(tag, e.to_string());
                        return;
                    }
                }
                thread::sleep(Duration::from_millis(1));
            }
        });
    }
    fn flood_ended(&self, tag: u64) -> Option<String> {
        FLOODS.lock().unwrap().get(&tag).cloned()
    }
    fn fill_up(&self, tag: u64, events: ipc_rpc::Sink<u32>) {
        thread::spawn(move || {
            let mut sent = 0;
            let how = loop {
                match events.try_send(&sent) {
                    Ok(()) => sent += 1,
                    Err(ipc_rpc::SinkError::Full) => {
                        let waited = events.with_timeout(Duration::from_millis(100)).send(&sent);
                        break match waited {
                            Err(e @ ipc_rpc::SinkError::Timeout { .. }) => {
                                format!("full after {sent}; then {e}")
                            }
                            other => format!("full after {sent}; then send gave {other:?}"),
                        };
                    }
                    Err(e) => break format!("failed after {sent}: {e}"),
                }
            };
            FLOODS.lock().unwrap().insert(tag, how);
        });
    }
    fn count_then_panic(&self, n: u32, message: String, events: ipc_rpc::Sink<u32>) {
        for i in 0..n {
            events.send(&i).unwrap();
        }
        panic!("{message}")
    }
    fn hold(&self, tag: u64, ms: u64) -> u32 {
        {
            let mut holds = HOLDS.lock().unwrap();
            let (now, peak) = holds.entry(tag).or_default();
            *now += 1;
            *peak = (*peak).max(*now);
        }
        thread::sleep(Duration::from_millis(ms));
        let mut holds = HOLDS.lock().unwrap();
        let (now, peak) = holds.get_mut(&tag).unwrap();
        *now -= 1;
        *peak
    }
}

/// A service with another name, for handshake tests.
#[ipc_service]
pub trait Other {
    fn add(&self, a: i64, b: i64) -> i64;
}

/// Another version of `Probe`: `add` takes other types, `echo` is unchanged (and
/// moved), `uptime` is new.
pub mod probe_v2 {
    use ipc_rpc::ipc_service;

    #[ipc_service]
    pub trait Probe {
        fn echo(&self, bytes: Vec<u8>) -> Vec<u8>;
        fn add(&self, a: i32, b: i32) -> i32;
        fn uptime(&self) -> u64;
    }
}

/// How a test names an endpoint of one transport.
#[derive(Debug, Clone, Copy)]
pub enum EndpointForm {
    /// A file in a fresh temp directory: `scheme:/tmp/ipc-rpc-test-…/file`.
    InDir {
        scheme: &'static str,
        file: &'static str,
    },
    /// A POSIX name unique to this process: `scheme:/ipc-rpc-test-<pid>-<n>`.
    PosixName { scheme: &'static str },
    /// The same string every time (`tcp:127.0.0.1:0` binds a free port).
    Fixed(&'static str),
    /// `tls:127.0.0.1:0` with certificates made for the test in a fresh temp
    /// directory: one identity, valid as server and as client, and the authority that
    /// signed it, so that the one endpoint serves and connects, with mutual TLS.
    #[cfg(feature = "tls")]
    Tls,
}

#[cfg(feature = "tls")]
#[path = "../../transports/tests/support/certs.rs"]
pub mod certs;

/// Declares [`Transport`] and `with_transports!` from one table, so adding a transport
/// to the matrix (and to every suite that takes all transports) is one line there.
macro_rules! transport_table {
    (
        $d:tt $($name:ident => $form:expr),* $(,)?;
        behind features: $(#[$cfg:meta] $opt:ident => $opt_form:expr),* $(,)?
    ) => {
        /// The transports of the matrix: one line each in the `transport_table!` call.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        #[allow(non_camel_case_types)]
        pub enum Transport {
            $($name,)*
            $(#[$cfg] $opt,)*
        }

        impl Transport {
            /// Every transport of this build, in table order.
            pub const ALL: &'static [Transport] = &[$(Transport::$name,)* $(#[$cfg] Transport::$opt,)*];

            /// How a test names an endpoint of this transport.
            pub fn form(self) -> EndpointForm {
                match self {
                    $(Transport::$name => $form,)*
                    $(#[$cfg] Transport::$opt => $opt_form,)*
                }
            }
        }

        /// Calls `$callback! { transports: [unix, tcp, …], rest… }` with every transport
        /// of the table that every build has, for suites that generate a module per
        /// transport (those behind a feature are added by the suite under its `cfg`).
        #[allow(unused_macros)]
        macro_rules! with_transports {
            ($d callback:ident ! { $d ($d rest:tt)* }) => {
                $d callback! { transports: [$($name),*], $d ($d rest)* }
            };
        }
    };
}

transport_table! { $
    unix => EndpointForm::InDir { scheme: "unix", file: "probe.sock" },
    tcp => EndpointForm::Fixed("tcp:127.0.0.1:0"),
    pipe => EndpointForm::Fixed("pipe"),
    fifo => EndpointForm::InDir { scheme: "fifo", file: "probe" },
    shm => EndpointForm::PosixName { scheme: "shm" },
    mq => EndpointForm::PosixName { scheme: "mq" };
    behind features:
    #[cfg(feature = "tls")] tls => EndpointForm::Tls,
}

/// A fresh endpoint for one test; dropping it removes its temp directory.
pub struct TestEndpoint {
    pub endpoint: Endpoint,
    pub dir: Option<PathBuf>,
}

impl Drop for TestEndpoint {
    fn drop(&mut self) {
        if let Some(dir) = &self.dir {
            let _ = std::fs::remove_dir_all(dir);
        }
        // A server killed on purpose leaves its socket, queue or rendezvous and lock
        // (the next server on the name would reclaim them): tidy them up after the
        // test. Refused, harmlessly, while a server still runs there.
        let _ = ipc_rpc::cleanup(&self.endpoint);
    }
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A directory of our own in the temp dir: `ipc-rpc-test-<pid>-<n>`.
pub fn unique_dir() -> PathBuf {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!(
        "ipc-rpc-test-{}-{n}",
        transports::test_util::run_id()
    ));
    std::fs::create_dir_all(&dir).expect("create test dir");
    dir
}

impl Transport {
    /// Whether a server takes any number of clients (all but `pipe`).
    pub fn multi_client(self) -> bool {
        self != Transport::pipe
    }

    pub fn endpoint(self) -> TestEndpoint {
        self.endpoint_with("")
    }

    /// `options` is appended as `?…` (e.g. `max_frame=65536`).
    pub fn endpoint_with(self, options: &str) -> TestEndpoint {
        let q = if options.is_empty() {
            String::new()
        } else {
            format!("?{options}")
        };
        match self.form() {
            EndpointForm::InDir { scheme, file } => {
                let dir = unique_dir();
                TestEndpoint {
                    endpoint: format!("{scheme}:{}/{file}{q}", dir.display())
                        .parse()
                        .unwrap(),
                    dir: Some(dir),
                }
            }
            EndpointForm::PosixName { scheme } => {
                let n = COUNTER.fetch_add(1, Ordering::Relaxed);
                TestEndpoint {
                    endpoint: format!(
                        "{scheme}:/ipc-rpc-test-{}-{n}{q}",
                        transports::test_util::run_id()
                    )
                    .parse()
                    .unwrap(),
                    dir: None,
                }
            }
            EndpointForm::Fixed(address) => TestEndpoint {
                endpoint: format!("{address}{q}").parse().unwrap(),
                dir: None,
            },
            #[cfg(feature = "tls")]
            EndpointForm::Tls => {
                let certs = certs::Certs::new();
                let sep = if q.is_empty() { '?' } else { '&' };
                let endpoint = format!(
                    "tls:127.0.0.1:0{q}{sep}{}&{}",
                    certs.identity("peer"),
                    certs.ca("ca.pem")
                )
                .parse()
                .unwrap();
                TestEndpoint {
                    endpoint,
                    dir: Some(certs.keep()),
                }
            }
        }
    }

    /// A `Probe` server and a client of it: in this process for transports with an
    /// address, in a child process (this test re-executed) for `pipe`.
    pub fn start(self, test_name: &str, options: &str) -> Fixture {
        let ep = self.endpoint_with(options);
        if self == Transport::pipe {
            let (client, child) =
                spawn_pipe_child::<ProbeClient>(test_name, &ep.endpoint).expect("spawn pipe child");
            return Fixture {
                client,
                server: Server::Child(child),
                transport: self,
                test_name: test_name.into(),
                ep,
            };
        }
        let server = ipc_rpc::serve(&ep.endpoint, ProbeServer::new(ProbeImpl)).expect("serve");
        let client = ProbeClient::connect(&server.endpoint()).expect("connect");
        Fixture {
            client,
            server: Server::Local(server),
            transport: self,
            test_name: test_name.into(),
            ep,
        }
    }

    /// Like [`Transport::start`] but the server always runs in a child process.
    pub fn start_in_child(self, test_name: &str) -> Fixture {
        if self == Transport::pipe {
            return self.start(test_name, "");
        }
        let ep = self.endpoint();
        let child = ChildServer::spawn(test_name, &ep.endpoint);
        let client = ProbeClient::connect(&child.endpoint).expect("connect to child");
        Fixture {
            client,
            server: Server::Remote(child),
            transport: self,
            test_name: test_name.into(),
            ep,
        }
    }
}

/// Spawns this test binary, re-run for `test_name`, as a child serving `Probe` on an
/// inherited pipe pair, and connects a client of service `C` to it.
pub fn spawn_pipe_child<C: ipc_rpc::ServiceClient>(
    test_name: &str,
    endpoint: &Endpoint,
) -> Result<(C, Child), ipc_rpc::RpcError> {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args(["--exact", test_name, "--nocapture", "--test-threads=1"])
        .env(ROLE_VAR, "pipe-server")
        .stdout(Stdio::null());
    ipc_rpc::spawn_child_with::<C>(cmd, endpoint)
}

pub enum Server {
    Local(ipc_rpc::ServerHandle),
    Remote(ChildServer),
    Child(Child),
}

/// A running `Probe` server and one client of it.
pub struct Fixture {
    pub client: ProbeClient,
    pub server: Server,
    pub transport: Transport,
    pub test_name: String,
    pub ep: TestEndpoint,
}

impl Fixture {
    /// The endpoint clients connect to; `None` for `pipe`.
    pub fn endpoint(&self) -> Option<Endpoint> {
        match &self.server {
            Server::Local(s) => Some(s.endpoint()),
            Server::Remote(c) => Some(c.endpoint.clone()),
            Server::Child(_) => None,
        }
    }

    /// Another client of the same server; `None` where the transport has one client.
    pub fn connect_another(&self) -> Option<ProbeClient> {
        self.endpoint()
            .map(|ep| ProbeClient::connect(&ep).expect("connect another"))
    }

    /// A client of service `C` against this fixture's kind of server: over the same
    /// endpoint, or for `pipe` to a fresh child serving `Probe`.
    pub fn connect_as<C: ipc_rpc::ServiceClient>(&self) -> Result<C, ipc_rpc::RpcError> {
        match self.endpoint() {
            Some(ep) => ipc_rpc::connect::<C>(&ep),
            None => {
                spawn_pipe_child::<C>(&self.test_name, &self.ep.endpoint).map(|(c, mut child)| {
                    let _ = child.kill();
                    let _ = child.wait();
                    c
                })
            }
        }
    }

    /// A client of another service type `C` that stays connected: over `pipe`, to a
    /// new child of its own, killed when the returned guard drops (after the client).
    pub fn connect_kept<C: ipc_rpc::ServiceClient>(
        &self,
    ) -> Result<(C, Option<KillOnDrop>), ipc_rpc::RpcError> {
        match self.endpoint() {
            Some(ep) => Ok((ipc_rpc::connect::<C>(&ep)?, None)),
            None => spawn_pipe_child::<C>(&self.test_name, &self.ep.endpoint)
                .map(|(c, child)| (c, Some(KillOnDrop(child)))),
        }
    }

    /// The process id the server runs in.
    pub fn server_pid(&self) -> u32 {
        self.server.pid()
    }

    /// SIGKILLs a server running in a child process, and reaps it.
    pub fn kill_server(&mut self) {
        self.server.kill();
    }

    /// Stops the server and waits for it; `pipe` children stop when the client is gone.
    pub fn shutdown(self) {
        let Fixture { client, server, .. } = self;
        drop(client);
        server.shutdown();
    }
}

impl Server {
    /// The process id the server runs in.
    pub fn pid(&self) -> u32 {
        match self {
            Server::Local(_) => std::process::id(),
            Server::Remote(c) => c.child.id(),
            Server::Child(c) => c.id(),
        }
    }

    /// SIGKILLs a server running in a child process, and reaps it.
    pub fn kill(&mut self) {
        match self {
            Server::Local(_) => panic!("the server runs in this process"),
            Server::Remote(c) => c.kill(),
            Server::Child(c) => {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }

    /// Stops the server and waits for it (its clients must be gone: a `pipe` child
    /// stops when its client is).
    pub fn shutdown(self) {
        match self {
            Server::Local(s) => s.shutdown(),
            Server::Remote(mut c) => c.kill(),
            Server::Child(mut c) => {
                let status = c.wait().expect("wait for the pipe child");
                assert!(status.success(), "the pipe child ended with {status}");
            }
        }
    }
}

/// Held by tests that open many connections at once (the 64-client load test, the
/// connect flood): POSIX queues of one user share one memory limit (`ulimit -q`), so two
/// such tests running side by side could exhaust it between them.
pub static MANY_CONNECTIONS: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Makes `calls` calls of `add` whose answers tell caller `n`'s calls apart from every
/// other caller's, checking each; returns `calls`.
pub fn add_checked(client: &ProbeClient, n: i64, calls: i64) -> i64 {
    for i in 0..calls {
        assert_eq!(client.add(n << 32, i).unwrap(), (n << 32) + i);
    }
    calls
}

/// Runs `f` on its own thread and fails the test if it does not finish within `limit`.
pub fn watchdog<T: Send + 'static>(limit: Duration, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    let worker = thread::spawn(move || {
        let _ = tx.send(catch_unwind(AssertUnwindSafe(f)));
    });
    match rx.recv_timeout(limit) {
        Ok(Ok(value)) => {
            let _ = worker.join();
            value
        }
        Ok(Err(panic)) => resume_unwind(panic),
        Err(_) => panic!("watchdog: the test was still running after {limit:?}; something hangs"),
    }
}

/// If this process was started by [`ChildServer::spawn`], serves `Probe` on the given
/// endpoint until stdin closes, then exits; otherwise returns.
pub fn serve_if_child() {
    match std::env::var(ROLE_VAR).as_deref() {
        Ok("server") => {}
        Ok("pipe-server") => {
            let server = ipc_rpc::serve_parent(ProbeServer::new(ProbeImpl))
                .expect("serve_parent")
                .expect("started by spawn_child");
            server.wait();
            std::process::exit(0);
        }
        Ok("pipe-signal-server") => {
            let server = ipc_rpc::serve_parent(ProbeServer::new(ProbeImpl))
                .expect("serve_parent")
                .expect("started by spawn_child");
            let stopped = server.wait_for_signal().expect("wait_for_signal");
            eprintln!("STOPPED {stopped:?}");
            std::process::exit(0);
        }
        Ok("signal-server") => {
            let endpoint = Endpoint::from_env(ENDPOINT_VAR).expect("child endpoint");
            let server =
                ipc_rpc::serve(&endpoint, ProbeServer::new(ProbeImpl)).expect("child serve");
            println!("READY {}", server.endpoint());
            let stopped = server.wait_for_signal().expect("wait_for_signal");
            println!("STOPPED {stopped:?}");
            std::process::exit(0);
        }
        _ => return,
    }
    serve_probe_until_stdin_closes();
}

/// In a child server: serves `Probe` on the endpoint in [`ENDPOINT_VAR`], says
/// `READY <endpoint>`, and exits once the parent closes our stdin (or dies).
pub fn serve_probe_until_stdin_closes() -> ! {
    let endpoint = Endpoint::from_env(ENDPOINT_VAR).expect("child endpoint");
    let server = ipc_rpc::serve(&endpoint, ProbeServer::new(ProbeImpl)).expect("child serve");
    println!("READY {}", server.endpoint());
    let _ = std::io::stdin().read_to_end(&mut Vec::new());
    server.shutdown();
    std::process::exit(0);
}

/// A `Probe` server in a child process: this test binary re-executed for one test.
pub struct ChildServer {
    pub child: Child,
    pub endpoint: Endpoint,
}

impl ChildServer {
    /// Starts the child like [`ChildServer::spawn`], then stops it (SIGSTOP): it takes
    /// connections in its backlog and answers nothing. [`ChildServer::resume_and_stop`]
    /// undoes it.
    pub fn spawn_stopped(test_name: &str, endpoint: &Endpoint) -> ChildServer {
        let server = Self::spawn(test_name, endpoint);
        nix::sys::signal::kill(server.pid(), nix::sys::signal::Signal::SIGSTOP).unwrap();
        server
    }

    /// Continues a stopped child, then stops it gracefully (stdin closed), so that it
    /// removes its objects; checks that it exited well.
    pub fn resume_and_stop(mut self) {
        nix::sys::signal::kill(self.pid(), nix::sys::signal::Signal::SIGCONT).unwrap();
        drop(self.child.stdin.take());
        assert!(self.child.wait().unwrap().success());
    }

    fn pid(&self) -> nix::unistd::Pid {
        nix::unistd::Pid::from_raw(self.child.id() as i32)
    }

    /// Starts the child for test `test_name` (its full libtest name) and waits until it
    /// reports its bound endpoint.
    pub fn spawn(test_name: &str, endpoint: &Endpoint) -> ChildServer {
        Self::spawn_as(test_name, endpoint, "server", Stdio::inherit())
    }

    /// Like [`ChildServer::spawn`], with `role` in [`ROLE_VAR`] (a test's own kind of
    /// server, which prints `READY <endpoint>` like ours) and its stderr as given.
    pub fn spawn_as(
        test_name: &str,
        endpoint: &Endpoint,
        role: &str,
        stderr: Stdio,
    ) -> ChildServer {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", test_name, "--nocapture", "--test-threads=1"])
            .env(ROLE_VAR, role)
            .env(ENDPOINT_VAR, endpoint.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("spawn child server");
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let endpoint = loop {
            match lines.next() {
                Some(Ok(line)) => {
                    // libtest may have printed `test name ... ` on the same line first.
                    if let Some((_, ep)) = line.split_once("READY ") {
                        break ep.parse().unwrap();
                    }
                }
                _ => {
                    let _ = child.kill();
                    let status = child.wait();
                    panic!("child server exited before it was ready: {status:?}");
                }
            }
        };
        // Drain the rest of its output so it never blocks on a full pipe.
        thread::spawn(move || for _ in lines {});
        ChildServer { child, endpoint }
    }

    /// SIGKILL, then reap.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Stops the child the way it is meant to stop: closes its stdin, so that it shuts
    /// its server down (removing the endpoint's named objects), and waits for it.
    pub fn stop(mut self) {
        drop(self.child.stdin.take());
        let status = self.child.wait().expect("wait for the child server");
        assert!(status.success(), "the child server ended with {status}");
    }
}

impl Drop for ChildServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Whether process `pid` runs. A zombie (dead, not yet reaped) still has a /proc
/// entry, in state Z; it does not count.
pub fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .rsplit(')')
            .next()
            .unwrap_or("")
            .trim_start()
            .starts_with('Z'),
        Err(_) => false,
    }
}

/// Re-runs this test binary for `test` with `var=endpoint` and waits until the child
/// prints `marker`.
pub fn spawn_until_marker(test: &str, var: &str, endpoint: &Endpoint, marker: &str) -> Child {
    spawn_until_marker_with(test, var, endpoint, marker, &[])
}

/// [`spawn_until_marker`] with more environment variables for the child.
pub fn spawn_until_marker_with(
    test: &str,
    var: &str,
    endpoint: &Endpoint,
    marker: &str,
    env: &[(&str, String)],
) -> Child {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", test, "--nocapture", "--test-threads=1"])
        .env(var, endpoint.to_string())
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    while !line.contains(marker) {
        line.clear();
        assert!(
            out.read_line(&mut line).unwrap() > 0,
            "the child died before `{marker}`"
        );
    }
    child
}

/// An error and its sources, joined by ": ".
pub fn chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        text = format!("{text}: {s}");
        source = s.source();
    }
    text
}

/// The hello frame (unframed) a `Probe` client opens its connection with.
pub fn probe_hello() -> Vec<u8> {
    let mut hello = Vec::new();
    rpc_core::codec::encode_into(
        &rpc_core::wire::Hello {
            magic: rpc_core::wire::MAGIC,
            protocol: rpc_core::wire::PROTOCOL_VERSION,
            service: ProbeClient::SERVICE.name,
            max_frame: rpc_core::limits::DEFAULT_MAX_FRAME as u64,
        },
        &mut hello,
        "hello",
    )
    .expect("encode a hello");
    hello
}

/// The libtest name of a test fn given `module_path!()` and the fn name.
pub fn test_name(module_path: &str, name: &str) -> String {
    let path = module_path.split_once("::").map_or("", |(_, rest)| rest);
    if path.is_empty() {
        name.to_owned()
    } else {
        format!("{path}::{name}")
    }
}

/// A nested value exercising structs, enums, maps, options, tuples and recursion.
pub fn sample_nested() -> Nested {
    Nested {
        name: "outer ✓".into(),
        shapes: vec![
            Shape::Point,
            Shape::Circle { r: 1.5 },
            Shape::Poly(vec![(1, -2), (i32::MAX, i32::MIN)]),
        ],
        tags: BTreeMap::from([("a".into(), Some(u64::MAX)), ("b".into(), None)]),
        inner: Some(Box::new(Nested {
            name: String::new(),
            shapes: vec![],
            tags: BTreeMap::new(),
            inner: None,
            pair: (0, -1),
        })),
        pair: (255, i128::MIN),
    }
}

/// A child process killed (SIGKILL) and reaped when this drops: a test that fails
/// before it stops its child leaves no process behind.
pub struct KillOnDrop(pub Child);

impl std::ops::Deref for KillOnDrop {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

impl std::ops::DerefMut for KillOnDrop {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts this test binary, re-run for `test_name`, as a child that serves `Probe` on
/// `endpoint` until SIGTERM or SIGINT (`ServerHandle::wait_for_signal`, role
/// `signal-server`), and waits until it says `READY`. Returns the child (killed if the
/// test fails first), the rest of its output, and the endpoint as bound.
pub fn spawn_signal_server(
    test_name: &str,
    endpoint: &Endpoint,
) -> (
    KillOnDrop,
    std::io::Lines<BufReader<std::process::ChildStdout>>,
    Endpoint,
) {
    let mut child = KillOnDrop(
        Command::new(std::env::current_exe().unwrap())
            .args(["--exact", test_name, "--nocapture", "--test-threads=1"])
            .env(ROLE_VAR, "signal-server")
            .env(ENDPOINT_VAR, endpoint.to_string())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let bound = loop {
        let line = lines.next().expect("the child said nothing").unwrap();
        if let Some((_, ep)) = line.split_once("READY ") {
            break ep.parse().unwrap();
        }
    };
    (child, lines, bound)
}
