//! Two hosts, a server and a client, in network namespaces of their own, that reach
//! each other only over a link which a test can cut and restore.
//!
//! The link is a bridge in a third namespace (the switch), with a veth pair to each
//! host. The addresses are IPv4 link-local (`169.254.77.1` and `.2`, a /30): they
//! exist only inside the namespaces, never on the machine's own interfaces, so nothing
//! a test sends can leave them. A cut is `ip link set <bridge> down` in the switch:
//! every frame is dropped there, while each host's own interface stays up with its
//! carrier, so each side sees what a pulled cable or a dead switch looks like from a
//! host: silence. (Dropping at a host's own interface would not do: its kernel sees
//! the local drop and keeps retrying keepalive probes as if congested, and a downed
//! interface of its own tells it the route is gone.) Names carry the pid and a
//! counter; everything is removed on drop, also when the test fails.
//!
//! Needs root and iproute2 (`ip`); [`Lan::new`] says why it cannot run otherwise, and
//! the test prints `skipped: …` with that reason.

use std::fs::File;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

/// The server's address on the link.
pub const SERVER_ADDR: &str = "169.254.77.1";

/// The client's address on the link.
pub const CLIENT_ADDR: &str = "169.254.77.2";

/// The switch's bridge.
const BRIDGE: &str = "link0";

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// One side of the link: a namespace and its end of a veth pair.
pub struct Host {
    /// The namespace's name (`ip netns`).
    pub netns: String,
    veth: String,
}

/// The two hosts and the link between them.
pub struct Lan {
    pub server: Host,
    pub client: Host,
    /// The switch's namespace; its bridge is the link.
    switch: String,
}

/// Runs `program` with `args`; the error says which command failed and what it said.
fn run(program: &str, args: &[&str]) -> Result<(), String> {
    let out = Command::new(program)
        .args(args)
        .output()
        .map_err(|e| format!("cannot run `{program}` (install iproute2): {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "`{program} {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

impl Lan {
    /// Creates the three namespaces, the bridge, the veth pairs and the addresses.
    ///
    /// # Errors
    ///
    /// Why the test cannot run here: not root, no iproute2, or a command refused.
    pub fn new() -> Result<Lan, String> {
        if !nix::unistd::geteuid().is_root() {
            return Err("network namespaces need root".into());
        }
        run("ip", &["-V"])?;
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let pid = std::process::id();
        let netns = |side: &str| format!("ipc-rpc-test-{pid}-{n}-{side}");
        // Interface names are limited to 15 bytes.
        let veth = |end: char| format!("ir{pid}x{n}{end}");
        // Built before anything exists, so that drop removes whatever was made.
        let lan = Lan {
            server: Host {
                netns: netns("server"),
                veth: veth('s'),
            },
            client: Host {
                netns: netns("client"),
                veth: veth('c'),
            },
            switch: netns("switch"),
        };
        for ns in [&lan.server.netns, &lan.client.netns, &lan.switch] {
            run("ip", &["netns", "add", ns])?;
        }
        let sw = lan.switch.as_str();
        run("ip", &["-n", sw, "link", "add", BRIDGE, "type", "bridge"])?;
        run("ip", &["-n", sw, "link", "set", BRIDGE, "up"])?;
        for (h, port, addr) in [
            (&lan.server, veth('t'), SERVER_ADDR),
            (&lan.client, veth('d'), CLIENT_ADDR),
        ] {
            run(
                "ip",
                &[
                    "link", "add", &h.veth, "netns", &h.netns, "type", "veth", "peer", "name",
                    &port, "netns", sw,
                ],
            )?;
            run("ip", &["-n", sw, "link", "set", &port, "master", BRIDGE])?;
            run("ip", &["-n", sw, "link", "set", &port, "up"])?;
            let cidr = format!("{addr}/30");
            run(
                "ip",
                &["-n", &h.netns, "addr", "add", &cidr, "dev", &h.veth],
            )?;
            run("ip", &["-n", &h.netns, "link", "set", &h.veth, "up"])?;
            run("ip", &["-n", &h.netns, "link", "set", "lo", "up"])?;
        }
        Ok(lan)
    }

    /// Drops every frame on the link, both ways: the switch's bridge goes down.
    ///
    /// # Panics
    ///
    /// If `ip` refuses.
    pub fn cut(&mut self) {
        run("ip", &["-n", &self.switch, "link", "set", BRIDGE, "down"]).expect("cut the link");
    }

    /// Lets frames through again.
    ///
    /// # Panics
    ///
    /// If `ip` refuses.
    pub fn restore(&mut self) {
        run("ip", &["-n", &self.switch, "link", "set", BRIDGE, "up"]).expect("restore the link");
    }

    /// The namespaces' names, to check after drop that they are gone.
    pub fn names(&self) -> [String; 3] {
        [
            self.server.netns.clone(),
            self.client.netns.clone(),
            self.switch.clone(),
        ]
    }

    /// Runs `f` on a new thread that lives in `host`'s namespace: the sockets it makes
    /// (a listener, a client's connection) stay there, and so does everything that
    /// comes of them (accepted connections), whatever thread uses them later.
    pub fn on<T: Send + 'static>(host: &Host, f: impl FnOnce() -> T + Send + 'static) -> T {
        let path = format!("/var/run/netns/{}", host.netns);
        std::thread::spawn(move || {
            let ns = File::open(&path).unwrap_or_else(|e| panic!("open {path}: {e}"));
            // Only this thread moves; it ends after `f`.
            nix::sched::setns(ns, nix::sched::CloneFlags::CLONE_NEWNET)
                .unwrap_or_else(|e| panic!("setns {path}: {e}"));
            f()
        })
        .join()
        .unwrap_or_else(|p| std::panic::resume_unwind(p))
    }
}

impl Drop for Lan {
    fn drop(&mut self) {
        // Deleting a namespace deletes the interfaces in it, a veth end with its peer.
        for ns in [&self.server.netns, &self.client.netns, &self.switch] {
            let _ = run("ip", &["netns", "del", ns]);
        }
    }
}

/// Which of the namespaces `names` still exist.
pub fn still_there(names: &[String]) -> Vec<String> {
    let out = Command::new("ip")
        .args(["netns", "list"])
        .output()
        .expect("ip netns list");
    let list = String::from_utf8_lossy(&out.stdout).into_owned();
    names
        .iter()
        .filter(|n| {
            list.lines()
                .any(|l| l.split_whitespace().next() == Some(n.as_str()))
        })
        .cloned()
        .collect()
}
