//! Cleaning up after a dead server: its rendezvous queue, its lock file and the names
//! of clients that died while connecting, unless a live server holds the lock.

use super::naming::Names;
use super::queue;
use crate::owner_lock::OwnerLock;

/// Where the queue namespace can be listed, when it is mounted.
pub const MQUEUE_DIR: &str = "/dev/mqueue";

/// Removes what a dead server left under `names` (its rendezvous queue, its lock
/// file, and the names of clients that died while connecting), unless a live server
/// holds the lock. Clients call it when they see their server die, so a killed
/// server's leftovers do not wait for the next `bind`.
pub(crate) fn reclaim_if_abandoned(names: &Names) {
    if let Ok(_lock) = OwnerLock::acquire(names.lock_path(), "") {
        let _ = queue::unlink(&names.rendezvous());
        remove_stale_connections(names);
        // Dropping the lock removes the lock file.
    }
}

/// Removes the connection queues of clients that died while connecting (the only
/// moment connection queues have names). Needs the queue namespace mounted at
/// [`MQUEUE_DIR`]; without it there is nothing to list and nothing is removed.
pub(crate) fn remove_stale_connections(names: &Names) {
    let Ok(entries) = std::fs::read_dir(MQUEUE_DIR) else {
        return;
    };
    for entry in entries.flatten() {
        let file_name = entry.file_name();
        let Some(file_name) = file_name.to_str() else {
            continue;
        };
        if let Some((client, _, _)) = names.parse_connection(file_name)
            && !client.is_alive()
        {
            let _ = queue::unlink(&format!("/{file_name}"));
        }
    }
}
