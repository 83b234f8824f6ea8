//! Nothing of ours may outlive the test suite: no temp directories, shm segments,
//! message queues, FIFOs or sockets named `ipc-rpc…`.
//!
//! Only this run's objects count: CI gives the run a temp dir of its own (`TMPDIR`)
//! and a tag (`IPC_RPC_RUN_TAG`) that the tests and the benchmark put in every name
//! they make, and this looks at /dev/shm and /dev/mqueue for names carrying the tag;
//! so another ipc-rpc program on the machine, or a crash of an earlier run, cannot
//! fail it. Without a tag (a developer's run) it looks at every `ipc-rpc…` name.
//!
//! Ignored in the ordinary run, because other tests are still creating objects while
//! it would scan. CI runs it on its own after the whole suite:
//!
//! ```text
//! cargo test --workspace && cargo test --test leftovers -- --ignored
//! ```

use std::path::{Path, PathBuf};

/// Every object ipc-rpc or its tests create has a name starting with this.
const PREFIX: &str = "ipc-rpc";

/// Entries of `dir` named `ipc-rpc…` that carry `tag` (any, for an empty tag).
fn ours_in(dir: &Path, tag: &str) -> Vec<PathBuf> {
    match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .flatten()
            .filter(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                name.starts_with(PREFIX) && name.contains(tag)
            })
            .map(|e| e.path())
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// Mounts the mqueue file system at /dev/mqueue if it is not there (Linux lists
/// message queues only through it). Returns whether it is listable.
fn mqueue_listable() -> bool {
    let dir = Path::new("/dev/mqueue");
    let mounted = std::fs::read_to_string("/proc/mounts")
        .map(|m| {
            m.lines()
                .any(|l| l.split_whitespace().nth(1) == Some("/dev/mqueue"))
        })
        .unwrap_or(false);
    if mounted {
        return true;
    }
    let _ = std::fs::create_dir_all(dir);
    std::process::Command::new("mount")
        .args(["-t", "mqueue", "none", "/dev/mqueue"])
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

#[test]
#[ignore = "run alone after the whole suite: cargo test --test leftovers -- --ignored"]
fn nothing_of_ours_is_left_behind() {
    let tag = std::env::var(transports::test_util::RUN_TAG_VAR).unwrap_or_default();
    let mut left = ours_in(&std::env::temp_dir(), &tag);
    left.extend(ours_in(Path::new("/dev/shm"), &tag));
    if mqueue_listable() {
        left.extend(ours_in(Path::new("/dev/mqueue"), &tag));
    } else {
        eprintln!(
            "skipped: the mqueue namespace: /dev/mqueue is not mounted and mounting it failed"
        );
    }
    assert!(
        left.is_empty(),
        "the test suite left these behind (a test or the library does not clean up): {left:#?}"
    );
}
