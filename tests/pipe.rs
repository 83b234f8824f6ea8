//! Behaviour only the pipe transport has: the child's life follows the parent's.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

const WATCHDOG: Duration = Duration::from_secs(30);

/// SIGKILL a parent that holds a pipe-served child: the child sees end-of-file and
/// exits by itself (no orphan left serving nobody).
#[test]
fn child_exits_when_its_parent_is_killed() {
    serve_if_child();
    if std::env::var("IPC_RPC_TEST_MIDDLE").is_ok() {
        // The middle process: spawn a pipe child, report its pid, then wait to be killed.
        let (client, child) = spawn_pipe_child::<ProbeClient>(
            "child_exits_when_its_parent_is_killed",
            &"pipe".parse().unwrap(),
        )
        .unwrap();
        assert_eq!(client.add(1, 1).unwrap(), 2);
        println!("GRANDCHILD {}", child.id());
        std::thread::sleep(Duration::from_secs(60));
        unreachable!("killed by the test");
    }
    watchdog(WATCHDOG, || {
        let mut middle = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "child_exits_when_its_parent_is_killed",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("IPC_RPC_TEST_MIDDLE", "1")
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(middle.stdout.take().unwrap()).lines();
        let grandchild: u32 = loop {
            let line = lines.next().expect("middle process output").unwrap();
            if let Some((_, pid)) = line.split_once("GRANDCHILD ") {
                break pid.trim().parse().unwrap();
            }
        };
        assert!(alive(grandchild));
        middle.kill().unwrap();
        middle.wait().unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        while alive(grandchild) {
            assert!(
                Instant::now() < deadline,
                "the pipe child {grandchild} outlived its parent"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    });
}

/// The parent's pipe descriptors never leak into other children it spawns, or the
/// pipe child would not see end-of-file when the parent drops its client.
#[test]
fn pipe_ends_do_not_leak_into_other_children() {
    serve_if_child();
    watchdog(WATCHDOG, || {
        let (client, mut child) = spawn_pipe_child::<ProbeClient>(
            "pipe_ends_do_not_leak_into_other_children",
            &"pipe".parse().unwrap(),
        )
        .unwrap();
        // An unrelated long-lived child spawned while the pipes are open.
        let mut bystander = Command::new("sleep").arg("30").spawn().unwrap();
        assert_eq!(client.add(2, 3).unwrap(), 5);
        drop(client);
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                assert!(status.success(), "{status}");
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the pipe child did not see end-of-file"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        bystander.kill().unwrap();
        bystander.wait().unwrap();
    });
}

/// A grandchild that inherits `IPC_RPC_PIPE` from its parent does not mistake it for
/// its own.
#[test]
fn serve_parent_ignores_a_grandparents_pipe() {
    // This process was not spawned with pipes, and a forged variable naming another
    // parent is ignored.
    let forged = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "serve_parent_ignores_a_grandparents_pipe_child",
            "--nocapture",
        ])
        .env("IPC_RPC_PIPE", "1:3:4:65536")
        .status()
        .unwrap();
    assert!(forged.success());
}

#[test]
fn serve_parent_ignores_a_grandparents_pipe_child() {
    assert!(
        ipc_rpc::serve_parent(ProbeServer::new(ProbeImpl))
            .unwrap()
            .is_none()
    );
}
