//! Removing what a dead owner left: each transport's stale objects, taken only under
//! the owner lock (so a live server's objects are never touched), and
//! [`reclaim_stale`], the one entry point for a whole endpoint.
//!
//! | kind | what a dead server leaves | removed by |
//! |---|---|---|
//! | unix | the socket file, its lock file | [`reclaim_stale`]; a server binding the path |
//! | shm | nothing (its rendezvous is abstract); older versions: the rendezvous socket, its lock file, version 1 segments in /dev/shm | [`shm_segments`] at bind; [`reclaim_stale`] |
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
        EndpointKind::Pipe | EndpointKind::Tcp { .. } | EndpointKind::Tls { .. } => Ok(()),
        EndpointKind::Unix { path, .. } => unix_socket(Path::new(path), &shown, || {}),
        EndpointKind::Shm { name, .. } => {
            let names = shm::Names::new(name, &shown)?;
            // The rendezvous is abstract (nothing to remove); a live server holds it.
            if abstract_name_taken(&names.rendezvous()) {
                return Err(TransportError::AddrInUse { endpoint: shown });
            }
            unix_socket(Path::new(&names.legacy_socket()), &shown, || {
                shm_segments(&names);
            })
        }
        EndpointKind::Mq { name, .. } => {
            let names = mq::Names::new(name).map_err(|message| TransportError::Io {
                context: format!("{shown}: {message}"),
                source: io::ErrorKind::InvalidInput.into(),
            })?;
            mq_abandoned(&names, &shown)
        }
        EndpointKind::Fifo { path } => fifo_endpoint(Path::new(path), &shown),
        _ => Err(crate::endpoint::unknown_kind(endpoint)),
    }
}

/// Whether a socket is bound to abstract name `name` (binding it fails): a live
/// server's rendezvous.
fn abstract_name_taken(name: &str) -> bool {
    use nix::sys::socket::{AddressFamily, SockFlag, SockType, UnixAddr, bind, socket};
    let Ok(fd) = socket(
        AddressFamily::Unix,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC,
        None,
    ) else {
        return false;
    };
    let Ok(addr) = UnixAddr::new_abstract(name.as_bytes()) else {
        return false;
    };
    // Bound for an instant only: the name is free again once `fd` closes.
    matches!(
        bind(std::os::fd::AsRawFd::as_raw_fd(&fd), &addr),
        Err(nix::errno::Errno::EADDRINUSE)
    )
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

#[cfg(test)]
mod tests {
    use std::os::unix::net::UnixListener;

    use nix::mqueue::{MQ_OFlag, MqAttr, mq_close, mq_open};
    use nix::sys::stat::Mode;

    use super::*;
    use crate::mq::liveness::ProcessId;

    fn unique(tag: &str) -> String {
        format!("ipc-rpc-reclaim-{tag}-{}", crate::test_util::run_id())
    }

    fn in_use(r: Result<(), TransportError>) -> bool {
        matches!(r, Err(TransportError::AddrInUse { .. }))
    }

    #[test]
    fn unix_a_dead_servers_socket_and_lock_go_a_live_ones_and_other_files_stay() {
        let path = std::env::temp_dir().join(format!("{}.sock", unique("unix")));
        let ep: Endpoint = format!("unix:{}", path.display()).parse().unwrap();
        drop(UnixListener::bind(&path).unwrap());
        std::fs::write(uds::lock_path(&path), "").unwrap();
        reclaim_stale(&ep).unwrap();
        assert!(!path.exists() && !uds::lock_path(&path).exists());

        std::fs::write(&path, "not a socket").unwrap();
        reclaim_stale(&ep).unwrap();
        assert!(path.exists(), "only a socket is replaced");
        std::fs::remove_file(&path).unwrap();

        let live = crate::listen(&ep).unwrap();
        assert!(in_use(reclaim_stale(&ep)));
        assert!(path.exists());
        drop(live);
        assert!(!path.exists() && !uds::lock_path(&path).exists());
    }

    #[test]
    fn fifo_a_dead_servers_directory_goes_a_live_ones_stays() {
        let dir = std::env::temp_dir().join(unique("fifo"));
        let ep: Endpoint = format!("fifo:{}", dir.display()).parse().unwrap();
        std::fs::create_dir(&dir).unwrap();
        for entry in [fifo::CONNECT, fifo::LOCK, "12-3.c2s", "12-3.s2c"] {
            std::fs::write(dir.join(entry), "").unwrap();
        }
        reclaim_stale(&ep).unwrap();
        assert!(!dir.exists());

        let live = crate::listen(&ep).unwrap();
        assert!(in_use(reclaim_stale(&ep)));
        assert!(dir.join(fifo::CONNECT).exists());
        drop(live);
        assert!(!dir.exists());
    }

    #[test]
    fn shm_a_dead_servers_socket_and_old_segments_go() {
        if !Path::new(SHM_DIR).is_dir() {
            eprintln!("skipped: no {SHM_DIR}");
            return;
        }
        let name = format!("/{}", unique("shm"));
        let ep: Endpoint = format!("shm:{name}").parse().unwrap();
        let names = shm::Names::new(&name, "test").unwrap();
        // What versions before the abstract rendezvous left: a socket file, old segments.
        let socket = std::path::PathBuf::from(names.legacy_socket());
        drop(UnixListener::bind(&socket).unwrap());
        let segment = Path::new(SHM_DIR).join(format!("{}.77.1", names.stem()));
        std::fs::write(&segment, "").unwrap();
        reclaim_stale(&ep).unwrap();
        assert!(!socket.exists() && !segment.exists());
        assert!(!uds::lock_path(&socket).exists());

        // A live server's abstract rendezvous: refused, and nothing in /dev/shm.
        let live = crate::listen(&ep).unwrap();
        assert!(in_use(reclaim_stale(&ep)));
        assert!(!socket.exists());
        drop(live);
        reclaim_stale(&ep).unwrap();
    }

    #[test]
    fn mq_a_dead_servers_queues_and_lock_go() {
        let name = format!("/{}", unique("mq"));
        let ep: Endpoint = format!("mq:{name}").parse().unwrap();
        let names = mq::Names::new(&name).unwrap();
        // A client that died while connecting: this pid with another start time.
        let dead = ProcessId {
            pid: std::process::id(),
            start: 0,
        };
        let conn = names.connection(dead, 1, mq::Direction::ClientToServer);
        let flags = MQ_OFlag::O_CREAT | MQ_OFlag::O_RDONLY | MQ_OFlag::O_CLOEXEC;
        let mode = Mode::S_IRUSR | Mode::S_IWUSR;
        let attr = MqAttr::new(0, 1, 64, 0);
        for q in [names.rendezvous(), conn.clone()] {
            match mq_open(q.as_str(), flags, mode, Some(&attr)) {
                Ok(mqd) => mq_close(mqd).unwrap(),
                Err(e) => {
                    eprintln!("skipped: POSIX message queues unavailable ({e})");
                    let _ = queue::unlink(&names.rendezvous());
                    return;
                }
            }
        }
        std::fs::write(names.lock_path(), "1 1\n").unwrap();
        reclaim_stale(&ep).unwrap();
        let gone = |q: &str| mq_open(q, MQ_OFlag::O_RDONLY, mode, None).is_err();
        assert!(gone(&names.rendezvous()));
        assert!(!names.lock_path().exists());
        if Path::new(MQUEUE_DIR).is_dir() {
            assert!(gone(&conn), "needs {MQUEUE_DIR} to list the queues");
        }
        let _ = queue::unlink(&conn);

        let live = crate::listen(&ep).unwrap();
        assert!(in_use(reclaim_stale(&ep)));
        assert!(!gone(&names.rendezvous()));
        drop(live);
        assert!(gone(&names.rendezvous()));
    }

    #[test]
    fn pipe_and_tcp_have_nothing_to_reclaim() {
        for ep in ["pipe", "tcp:127.0.0.1:0"] {
            reclaim_stale(&ep.parse().unwrap()).unwrap();
        }
    }
}
