//! Nothing of ours may outlive the test suite: no temp directories, shm segments,
//! message queues, FIFOs or sockets named `ipc-rpc…`.
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

fn ours_in(dir: &Path) -> Vec<PathBuf> {
    match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with(PREFIX))
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
    let mut left = ours_in(&std::env::temp_dir());
    left.extend(ours_in(Path::new("/dev/shm")));
    if mqueue_listable() {
        left.extend(ours_in(Path::new("/dev/mqueue")));
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
