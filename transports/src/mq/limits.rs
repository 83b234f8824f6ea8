//! How big the queues are, and what to tell the user when the OS refuses one.
//!
//! Linux charges every queue against its creator's `RLIMIT_MSGQUEUE` (819200 bytes by
//! default) at `maxmsg × (msgsize + 96)` bytes (96: the kernel's per-message
//! bookkeeping), and caps `maxmsg` and `msgsize` at `/proc/sys/fs/mqueue/msg_max` (10)
//! and `msgsize_max` (8192) for unprivileged processes. The number of queues is capped
//! system-wide by `queues_max` (256).
//!
//! A connection's two queues hold [`CONNECTION_MAXMSG`] messages of
//! [`CONNECTION_MSGSIZE`] bytes each: 2 × 1 × (4096 + 96) = 8384 bytes per client, so
//! 97 clients fit the default rlimit (the server's rendezvous queue takes 1600 bytes).
//! One message in flight per direction costs nothing for calls (a request or a reply
//! is one message up to 4 KiB); larger frames stream through with the reader draining
//! as the writer fills, and the number of messages, not the depth, sets their cost.
//! When the limit is nearly used up, later clients fall back to smaller messages
//! ([`connection_sizes`]) rather than being refused: 1 KiB messages fit 365 clients.

use nix::errno::Errno;
use nix::sys::resource::{Resource, getrlimit};
use rpc_core::TransportError;

use super::chunk::MIN_MSGSIZE;

/// Messages a connection queue holds.
pub(crate) const CONNECTION_MAXMSG: i64 = 1;

/// Largest message on a connection queue: half Linux's default `msgsize_max`, so that
/// 97 clients fit the default queue-memory limit.
pub(crate) const CONNECTION_MSGSIZE: i64 = 4096;

/// Connect requests the rendezvous queue holds before clients wait.
pub(crate) const RENDEZVOUS_MAXMSG: i64 = 10;

/// Largest connect request (a request is 22 bytes; the rest is room for later versions).
pub(crate) const RENDEZVOUS_MSGSIZE: i64 = 64;

/// Largest connection message we accept from a queue a peer created.
pub(crate) const MAX_PEER_MSGSIZE: i64 = 1 << 20;

/// The kernel's bookkeeping per message (`struct msg_msg` + a priority tree node).
const PER_MESSAGE_OVERHEAD: i64 = 96;

/// A queue's capacity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct QueueSize {
    /// Messages it holds.
    pub(crate) maxmsg: i64,
    /// Largest message, in bytes.
    pub(crate) msgsize: i64,
}

impl QueueSize {
    /// What the kernel charges against `RLIMIT_MSGQUEUE` for this queue.
    pub(crate) fn charged_bytes(self) -> i64 {
        self.maxmsg * (self.msgsize + PER_MESSAGE_OVERHEAD)
    }
}

fn proc_value(name: &str) -> Option<i64> {
    std::fs::read_to_string(format!("/proc/sys/fs/mqueue/{name}"))
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// `want`, lowered to what `/proc/sys/fs/mqueue` allows on this machine.
fn clamped(want: QueueSize) -> QueueSize {
    QueueSize {
        maxmsg: want
            .maxmsg
            .min(proc_value("msg_max").unwrap_or(want.maxmsg)),
        msgsize: want
            .msgsize
            .min(proc_value("msgsize_max").unwrap_or(want.msgsize))
            .max(MIN_MSGSIZE as i64),
    }
}

/// The default size of each queue of a connection.
pub(crate) fn connection() -> QueueSize {
    connection_asked(None, None)
}

/// The size of each queue of a connection whose endpoint asked for `depth` messages
/// of `msgsize` bytes (defaults where not), lowered to what this machine allows.
pub(crate) fn connection_asked(depth: Option<u32>, msgsize: Option<u32>) -> QueueSize {
    clamped(QueueSize {
        maxmsg: depth.map_or(CONNECTION_MAXMSG, i64::from),
        msgsize: msgsize.map_or(CONNECTION_MSGSIZE, i64::from),
    })
}

/// Smallest message size a connection falls back to when the queue-memory limit is
/// nearly used up.
const FALLBACK_MSGSIZE: i64 = 1024;

/// Sizes to try for a connection's queues, largest first: when `RLIMIT_MSGQUEUE` is
/// nearly used up (EMFILE), smaller messages, then shallower queues, still let the
/// client in (its large frames take more chunks and wake-ups). With one message per
/// queue, 4 KiB fits 97 clients in the default limit, 1 KiB 365.
pub(crate) fn connection_sizes(first: QueueSize) -> impl Iterator<Item = QueueSize> {
    std::iter::successors(Some(first), |s| {
        if s.msgsize / 2 >= FALLBACK_MSGSIZE {
            Some(QueueSize {
                maxmsg: s.maxmsg,
                msgsize: s.msgsize / 2,
            })
        } else if s.maxmsg > 1 {
            Some(QueueSize {
                maxmsg: s.maxmsg / 2,
                msgsize: s.msgsize,
            })
        } else {
            None
        }
    })
}

/// The size of the rendezvous queue.
pub(crate) fn rendezvous() -> QueueSize {
    clamped(QueueSize {
        maxmsg: RENDEZVOUS_MAXMSG,
        msgsize: RENDEZVOUS_MSGSIZE,
    })
}

fn show(v: Option<i64>) -> String {
    v.map_or_else(|| "unknown".to_owned(), |v| v.to_string())
}

fn rlimit_text(resource: Resource) -> String {
    match getrlimit(resource) {
        Ok((soft, _)) if soft == nix::libc::RLIM_INFINITY => "unlimited".to_owned(),
        Ok((soft, _)) => soft.to_string(),
        Err(_) => "unknown".to_owned(),
    }
}

/// The error for a refused `mq_open`: which limit, its value, and how to raise it.
///
/// `what` names the operation and object, e.g. `mq:/calc: create queue /calc.1.2.0.c2s`;
/// `size` is the capacity asked for when creating.
pub(crate) fn open_error(errno: Errno, what: &str, size: Option<QueueSize>) -> TransportError {
    let asked = size.map_or_else(String::new, |s| {
        format!(
            " ({} message(s) of {} bytes, {} bytes of queue memory)",
            s.maxmsg,
            s.msgsize,
            s.charged_bytes()
        )
    });
    let hint = match errno {
        Errno::EMFILE => format!(
            "the OS refused the queue{asked}: either the per-user queue memory limit \
             RLIMIT_MSGQUEUE ({} bytes; an mq client takes {} bytes by default, {} with \
             `?depth=10&msgsize=8192`) is used up by open queues (raise it with \
             `ulimit -q`, or the `msgqueue` item in /etc/security/limits.conf, or close \
             other clients, or ask for smaller queues with `?depth=` and `?msgsize=`), or \
             this process is out of file descriptors (`ulimit -n` is {})",
            rlimit_text(Resource::RLIMIT_MSGQUEUE),
            2 * connection().charged_bytes(),
            2 * QueueSize {
                maxmsg: 10,
                msgsize: 8192
            }
            .charged_bytes(),
            rlimit_text(Resource::RLIMIT_NOFILE),
        ),
        Errno::ENOSPC => format!(
            "the system-wide number of message queues is at its limit \
             (/proc/sys/fs/mqueue/queues_max = {}); raise it with \
             `sysctl fs.mqueue.queues_max=1024` or close other queues",
            show(proc_value("queues_max"))
        ),
        Errno::EINVAL | Errno::EMSGSIZE => format!(
            "the OS refused the queue size{asked}: it is over /proc/sys/fs/mqueue/msg_max \
             ({}) or /proc/sys/fs/mqueue/msgsize_max ({}); raise them with \
             `sysctl fs.mqueue.msg_max=10 fs.mqueue.msgsize_max=8192`",
            show(proc_value("msg_max")),
            show(proc_value("msgsize_max"))
        ),
        Errno::ENFILE => "the system is out of file descriptors (/proc/sys/fs/file-max)".to_owned(),
        Errno::EACCES => "permission denied: the queue belongs to another user".to_owned(),
        Errno::EEXIST => "a queue of that name already exists and is not ours".to_owned(),
        Errno::ENOENT => "no such queue".to_owned(),
        Errno::ENOSYS => "POSIX message queues are not available in this kernel \
                          (CONFIG_POSIX_MQUEUE); use a `unix:` endpoint"
            .to_owned(),
        _ => "mq_open failed".to_owned(),
    };
    let context = format!("{what}: {hint}");
    let source = errno.into();
    match errno {
        Errno::EMFILE | Errno::ENFILE | Errno::ENOSPC | Errno::EINVAL | Errno::EMSGSIZE => {
            TransportError::LimitReached { context, source }
        }
        _ => TransportError::Io { context, source },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dozens_of_clients_fit_the_default_rlimit() {
        let per_client = 2 * QueueSize {
            maxmsg: CONNECTION_MAXMSG,
            msgsize: CONNECTION_MSGSIZE,
        }
        .charged_bytes();
        let rendezvous = QueueSize {
            maxmsg: RENDEZVOUS_MAXMSG,
            msgsize: RENDEZVOUS_MSGSIZE,
        }
        .charged_bytes();
        assert!((819_200 - rendezvous) / per_client >= 48, "{per_client}");
    }

    #[test]
    fn fallbacks_shrink_messages_then_depth_down_to_one_kib_messages() {
        let sizes: Vec<(i64, i64)> = connection_sizes(QueueSize {
            maxmsg: 10,
            msgsize: 4096,
        })
        .map(|s| (s.maxmsg, s.msgsize))
        .collect();
        assert_eq!(
            sizes,
            [
                (10, 4096),
                (10, 2048),
                (10, 1024),
                (5, 1024),
                (2, 1024),
                (1, 1024)
            ]
        );
    }

    #[test]
    fn refusals_name_the_limit_and_the_fix() {
        let size = Some(QueueSize {
            maxmsg: 1,
            msgsize: 8192,
        });
        let text = |e: Errno| open_error(e, "mq:/x: create queue /x.1", size).to_string();
        assert!(text(Errno::EMFILE).contains("RLIMIT_MSGQUEUE"));
        assert!(text(Errno::EMFILE).contains("ulimit -q"));
        assert!(text(Errno::EMFILE).contains("8288 bytes of queue memory"));
        assert!(text(Errno::ENOSPC).contains("/proc/sys/fs/mqueue/queues_max"));
        assert!(text(Errno::EINVAL).contains("msgsize_max"));
        assert!(text(Errno::EINVAL).starts_with("mq:/x: create queue /x.1: "));
    }
}
