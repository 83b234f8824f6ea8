//! Removing what a dead owner left: each transport's stale objects, taken only under
//! the owner lock (so a live server's objects are never touched), and
//! [`reclaim_stale`], the one entry point for a whole endpoint.
//!
//! | kind | what a dead server leaves | removed by |
//! |---|---|---|
//! | unix | the socket file, its lock file | [`reclaim_stale`]; a server binding the path |
//! | shm | the rendezvous socket, its lock file, version 1 segments in /dev/shm | [`shm_segments`] at bind; [`reclaim_stale`] |
//! | mq | the rendezvous queue, the lock file, the queues of clients that died connecting | [`mq_if_abandoned`], [`mq_stale_connections`] at bind; [`reclaim_stale`] |
//! | fifo | the rendezvous FIFO, client FIFOs, the lock file, the directory | [`fifo_dir`] at bind and drop; [`reclaim_stale`] |

use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use rpc_core::TransportError;

use super::owner_lock::OwnerLock;
use super::{SHM_DIR, fifo, mq, shm, uds};
use crate::endpoint::{Endpoint, EndpointKind};
use crate::mq::queue;
use crate::shm::segment;

/// Where the queue namespace can be listed, when it is mounted.
pub const MQUEUE_DIR: &str = "/dev/mqueue";

/// Removes the named objects a dead server left at `endpoint`: its socket, FIFOs,
/// queues or segments and its lock file. A live server's objects are left alone.
/// `pipe` and `tcp` endpoints have nothing named; for them this does nothing.
///
/// A server binding the endpoint does the same before it creates its own objects;
/// this is for when nobody is about to bind (a worker pool after reaping a worker).
///
/// # Errors
///
/// `AddrInUse` when a live server owns the endpoint; `Unsupported` or `Io` for a name
/// that is not valid; `Io` when the owner lock cannot be taken.
pub fn reclaim_stale(endpoint: &Endpoint) -> Result<(), TransportError> {
    let shown = endpoint.to_string();
    match endpoint.kind() {
        EndpointKind::Pipe | EndpointKind::Tcp { .. } => Ok(()),
        EndpointKind::Unix(path) => unix_socket(Path::new(path), &shown, || {}),
        EndpointKind::Shm(name) => {
            let names = shm::Names::new(name, &shown)?;
            unix_socket(Path::new(&names.socket()), &shown, || {
                shm_segments(&names);
            })
        }
        EndpointKind::Mq(name) => {
            let names = mq::Names::new(name).map_err(|message| TransportError::Io {
                context: format!("{shown}: {message}"),
                source: io::ErrorKind::InvalidInput.into(),
            })?;
            mq_abandoned(&names, &shown)
        }
        EndpointKind::Fifo(dir) => fifo_endpoint(Path::new(dir), &shown),
    }
}

/// Takes the owner lock of socket `path`, removes the socket file if it is one, runs
/// `also` while still holding the lock, then releases it (which removes the lock
/// file). Nothing to do when the socket's directory is missing.
fn unix_socket(path: &Path, endpoint: &str, also: impl FnOnce()) -> Result<(), TransportError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
        && !dir.is_dir()
    {
        return Ok(());
    }
    let _lock = OwnerLock::acquire(uds::lock_path(path), endpoint)?;
    // As a server binding the path would: a socket is replaced, anything else is not
    // ours to remove.
    if std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_socket()) {
        let _ = std::fs::remove_file(path);
    }
    also();
    Ok(())
}

/// Removes what a dead FIFO server left in `dir` (rendezvous FIFO, client FIFOs, lock
/// file) and the directory itself once empty. Leaves alone a path that is not a
/// directory of this user (a server would refuse to bind it).
fn fifo_endpoint(dir: &Path, endpoint: &str) -> Result<(), TransportError> {
    match std::fs::symlink_metadata(dir) {
        Ok(m) if m.is_dir() && m.uid() == nix::unistd::geteuid().as_raw() => {}
        _ => return Ok(()),
    }
    let lock = OwnerLock::acquire(dir.join(fifo::LOCK), endpoint)?;
    fifo_dir(dir);
    drop(lock);
    // Succeeds once the directory is empty, as when a server drops its listener.
    let _ = std::fs::remove_dir(dir);
    Ok(())
}

/// Removes a dead server's rendezvous FIFO and client FIFOs from `dir`. The caller
/// holds the owner lock (or is the server shutting down).
pub(crate) fn fifo_dir(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name == fifo::CONNECT || fifo::is_client_fifo(&name) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// Removes segments of this endpoint that clients of a dead server left (version 1
/// of the shm protocol named them in /dev/shm). The caller holds the owner lock.
pub(crate) fn shm_segments(names: &shm::Names) {
    let Ok(entries) = std::fs::read_dir(SHM_DIR) else {
        return;
    };
    for entry in entries.flatten() {
        let file = entry.file_name();
        let file = file.to_string_lossy();
        if names.owns_segment(&format!("/{file}")) {
            segment::unlink(&format!("/{file}"));
        }
    }
}

/// Removes what a dead server left under `names` (its rendezvous queue, its lock
/// file, and the names of clients that died while connecting), unless a live server
/// holds the lock. Clients call it when they see their server die, so a killed
/// server's leftovers do not wait for the next `bind`.
pub(crate) fn mq_if_abandoned(names: &mq::Names) {
    let _ = mq_abandoned(names, "");
}

fn mq_abandoned(names: &mq::Names, endpoint: &str) -> Result<(), TransportError> {
    let _lock = OwnerLock::acquire(names.lock_path(), endpoint)?;
    let _ = queue::unlink(&names.rendezvous());
    mq_stale_connections(names);
    // Dropping the lock removes the lock file.
    Ok(())
}

/// Removes the connection queues of clients that died while connecting (the only
/// moment connection queues have names). Needs the queue namespace mounted at
/// [`MQUEUE_DIR`]; without it there is nothing to list and nothing is removed.
pub(crate) fn mq_stale_connections(names: &mq::Names) {
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
