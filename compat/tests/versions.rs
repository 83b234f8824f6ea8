//! Two builds of one service in separate binaries, both directions, over a UNIX socket
//! and TCP: the methods both agree on work, a method whose types changed fails with both
//! signatures, a method the server lacks fails saying so, and nothing is decoded into a
//! wrong value (v2 reordered `Outcome`'s variants).

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

const V1: &str = env!("CARGO_BIN_EXE_jobs-v1");
const V2: &str = env!("CARGO_BIN_EXE_jobs-v2");

/// A server child; closing its stdin (on drop) makes it shut down and clean up.
struct Server {
    child: Child,
    endpoint: String,
}

impl Server {
    fn start(binary: &str, endpoint: &str) -> Server {
        let mut child = Command::new(binary)
            .args(["serve", endpoint])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the server binary");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("read the server's ready line");
        let endpoint = line
            .strip_prefix("ready ")
            .unwrap_or_else(|| panic!("server said {line:?}"))
            .trim()
            .to_owned();
        Server { child, endpoint }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.wait();
    }
}

/// What `binary`'s client printed for each method against `server`.
fn calls(binary: &str, server: &Server) -> Vec<(String, String)> {
    let out = Command::new(binary)
        .args(["call", &server.endpoint])
        .output()
        .expect("run the client binary");
    assert!(
        out.status.success(),
        "client failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .expect("utf-8")
        .lines()
        .map(|l| {
            let (method, outcome) = l.split_once(": ").expect("method: outcome");
            (method.to_owned(), outcome.to_owned())
        })
        .collect()
}

fn outcome<'a>(lines: &'a [(String, String)], method: &str) -> &'a str {
    &lines
        .iter()
        .find(|(m, _)| m == method)
        .unwrap_or_else(|| panic!("no line for {method} in {lines:?}"))
        .1
}

/// Unique endpoints per test run: a socket in the temp dir, or TCP on port 0.
fn endpoints() -> Vec<String> {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let sock = std::env::temp_dir().join(format!("ipc-rpc-compat-{}-{n}.sock", std::process::id()));
    vec![format!("unix:{}", sock.display()), "tcp:127.0.0.1:0".into()]
}

#[test]
fn an_old_client_calls_a_new_server() {
    for ep in endpoints() {
        let server = Server::start(V2, &ep);
        let lines = calls(V1, &server);
        assert_eq!(outcome(&lines, "ping"), "ok \"v2\"", "{ep}");
        assert_eq!(outcome(&lines, "state"), "ok Running(7)", "{ep}");
        let submit = outcome(&lines, "submit");
        assert!(
            submit.contains("`Jobs::submit` differs")
                && submit
                    .contains("the client has `submit(spec: JobSpec { name: String }) -> u64`")
                && submit.contains(
                    "the server `submit(spec: JobSpec { name: String, priority: u8 }) -> u64`"
                ),
            "{ep}: {submit}"
        );
        let reordered = outcome(&lines, "outcome");
        assert!(
            reordered.contains("`Jobs::outcome` differs")
                && reordered.contains("enum Outcome { Succeeded, Failed }")
                && reordered.contains("enum Outcome { Failed, Succeeded }"),
            "{ep}: {reordered}"
        );
    }
}

#[test]
fn a_new_client_calls_an_old_server() {
    for ep in endpoints() {
        let server = Server::start(V1, &ep);
        let lines = calls(V2, &server);
        assert_eq!(outcome(&lines, "ping"), "ok \"v1\"", "{ep}");
        assert_eq!(outcome(&lines, "state"), "ok Running(7)", "{ep}");
        assert!(
            outcome(&lines, "submit").contains("`Jobs::submit` differs"),
            "{ep}: {lines:?}"
        );
        assert!(
            outcome(&lines, "outcome").contains("`Jobs::outcome` differs"),
            "{ep}: {lines:?}"
        );
        let cancel = outcome(&lines, "cancel");
        assert!(
            cancel.contains("has no method `Jobs::cancel`")
                && cancel.contains("`cancel(id: u64) -> bool`")
                && cancel.contains("runs an older version of `Jobs`"),
            "{ep}: {cancel}"
        );
    }
}

#[test]
fn the_same_build_calls_everything() {
    for ep in endpoints() {
        let server = Server::start(V2, &ep);
        let lines = calls(V2, &server);
        assert!(
            lines.iter().all(|(_, o)| o.starts_with("ok ")),
            "{ep}: {lines:?}"
        );
        assert_eq!(outcome(&lines, "submit"), "ok 4");
        assert_eq!(outcome(&lines, "outcome"), "ok Succeeded");
    }
}
