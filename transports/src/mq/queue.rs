//! [`Queue`]: an owned POSIX message-queue descriptor that closes on drop, with the
//! few operations the transport needs.
//!
//! # References
//!
//! mq_overview(7), mq_open(3), mq_send(3), mq_receive(3), mq_getattr(3),
//! mq_unlink(3), poll(2) (a Linux queue descriptor is a file descriptor)

use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::mqueue::{
    MQ_OFlag, MqAttr, MqdT, mq_attr_member_t, mq_close, mq_getattr, mq_open, mq_receive, mq_send,
    mq_timedreceive, mq_unlink,
};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::stat::Mode;
use nix::sys::time::TimeSpec;
use nix::time::ClockId;

use super::limits::QueueSize;

/// How a descriptor is opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Access {
    /// Receiving, blocking (waits are bounded by `receive_until`).
    Receive,
    /// Receiving without blocking (to drain a queue).
    ReceiveNow,
    /// Sending without blocking: a full queue is `EAGAIN`, waited on with `poll`.
    Send,
}

impl Access {
    fn flags(self) -> MQ_OFlag {
        let base = MQ_OFlag::O_CLOEXEC;
        match self {
            Access::Receive => base | MQ_OFlag::O_RDONLY,
            Access::ReceiveNow => base | MQ_OFlag::O_RDONLY | MQ_OFlag::O_NONBLOCK,
            Access::Send => base | MQ_OFlag::O_WRONLY | MQ_OFlag::O_NONBLOCK,
        }
    }
}

/// An open queue descriptor; closed on drop. The queue's name stays until
/// [`unlink`] (the queue itself lives until its last descriptor closes).
#[derive(Debug)]
pub(crate) struct Queue {
    mqd: Option<MqdT>,
}

impl Queue {
    /// Creates queue `name`, owner-only (0600), failing if it exists.
    ///
    /// # Errors
    ///
    /// The `mq_open` errno (`EEXIST`, `EMFILE`, `ENOSPC`, `EINVAL`, ...).
    pub(crate) fn create(name: &str, size: QueueSize, access: Access) -> nix::Result<Queue> {
        let attr = MqAttr::new(
            0,
            size.maxmsg as mq_attr_member_t,
            size.msgsize as mq_attr_member_t,
            0,
        );
        let flags = access.flags() | MQ_OFlag::O_CREAT | MQ_OFlag::O_EXCL;
        let mqd = mq_open(name, flags, Mode::S_IRUSR | Mode::S_IWUSR, Some(&attr))?;
        Ok(Queue { mqd: Some(mqd) })
    }

    /// Opens the existing queue `name`.
    ///
    /// # Errors
    ///
    /// The `mq_open` errno (`ENOENT`, `EACCES`, `EMFILE`, ...).
    pub(crate) fn open(name: &str, access: Access) -> nix::Result<Queue> {
        let mqd = mq_open(name, access.flags(), Mode::empty(), None)?;
        Ok(Queue { mqd: Some(mqd) })
    }

    fn mqd(&self) -> &MqdT {
        self.mqd
            .as_ref()
            .expect("a Queue holds its descriptor until drop")
    }

    /// The descriptor (on Linux a queue descriptor is a file descriptor, readable while
    /// a message is queued).
    pub(crate) fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.mqd().as_fd()
    }

    /// The queue's capacity.
    ///
    /// # Errors
    ///
    /// The `mq_getattr` errno.
    pub(crate) fn size(&self) -> nix::Result<QueueSize> {
        let attr = mq_getattr(self.mqd())?;
        Ok(QueueSize {
            maxmsg: attr.maxmsg() as i64,
            msgsize: attr.msgsize() as i64,
        })
    }

    /// Sends one message without blocking: `EAGAIN` when the queue is full.
    ///
    /// # Errors
    ///
    /// The `mq_send` errno.
    pub(crate) fn try_send(&self, msg: &[u8]) -> nix::Result<()> {
        mq_send(self.mqd(), msg, 0)
    }

    /// Waits until the queue has room or `timeout` passes; `true` if there is room.
    ///
    /// # Errors
    ///
    /// The `poll` errno (`EINTR` included).
    pub(crate) fn wait_writable(&self, timeout: Duration) -> nix::Result<bool> {
        let ms = i32::try_from(timeout.as_micros().div_ceil(1000)).unwrap_or(i32::MAX);
        let timeout = PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX);
        let mut fds = [PollFd::new(self.mqd().as_fd(), PollFlags::POLLOUT)];
        Ok(poll(&mut fds, timeout)? > 0)
    }

    /// Waits until this queue has room or, if given, `incoming` has a message, or
    /// `timeout` passes. Returns (room here, message there).
    ///
    /// # Errors
    ///
    /// The `poll` errno (`EINTR` included).
    pub(crate) fn wait_room_or_message(
        &self,
        incoming: Option<&Queue>,
        timeout: Duration,
    ) -> nix::Result<(bool, bool)> {
        let ms = i32::try_from(timeout.as_micros().div_ceil(1000)).unwrap_or(i32::MAX);
        let timeout = PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX);
        let mut fds = [
            PollFd::new(self.mqd().as_fd(), PollFlags::POLLOUT),
            PollFd::new(
                incoming.unwrap_or(self).mqd().as_fd(),
                if incoming.is_some() {
                    PollFlags::POLLIN
                } else {
                    PollFlags::empty()
                },
            ),
        ];
        poll(&mut fds, timeout)?;
        let room = fds[0].revents().is_some_and(|r| !r.is_empty());
        let message = fds[1]
            .revents()
            .is_some_and(|r| r.contains(PollFlags::POLLIN));
        Ok((room, message))
    }

    /// Receives one message into `buf` (at least the queue's `msgsize` long), waiting
    /// at most until `until`: one `mq_timedreceive`.
    ///
    /// `mq_timedreceive` takes a `CLOCK_REALTIME` instant, so the monotonic `until` is
    /// converted here; a wall-clock step during the wait lengthens or shortens it.
    ///
    /// # Errors
    ///
    /// `ETIMEDOUT` when `until` passes, `EINTR`, or another `mq_timedreceive` errno.
    pub(crate) fn receive_until(&self, buf: &mut [u8], until: Instant) -> nix::Result<usize> {
        let left = until.saturating_duration_since(Instant::now());
        let abs = ClockId::CLOCK_REALTIME.now()? + TimeSpec::from_duration(left);
        let mut prio = 0;
        mq_timedreceive(self.mqd(), buf, &mut prio, &abs)
    }

    /// Receives one message into `buf`: blocks (or fails with `EAGAIN` when opened
    /// [`Access::ReceiveNow`]).
    ///
    /// # Errors
    ///
    /// The `mq_receive` errno.
    pub(crate) fn receive(&self, buf: &mut [u8]) -> nix::Result<usize> {
        let mut prio = 0;
        mq_receive(self.mqd(), buf, &mut prio)
    }
}

impl Drop for Queue {
    fn drop(&mut self) {
        if let Some(mqd) = self.mqd.take() {
            // EBADF cannot happen for a descriptor we own; nothing to do about EINTR.
            let _ = mq_close(mqd);
        }
    }
}

/// Removes queue `name` from the namespace; a missing name is not an error.
///
/// # Errors
///
/// The `mq_unlink` errno other than `ENOENT`.
pub(crate) fn unlink(name: &str) -> nix::Result<()> {
    match mq_unlink(name) {
        Ok(()) | Err(Errno::ENOENT) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Unlinks names when dropped: the names of a half-made connection never outlive it.
#[derive(Debug, Default)]
pub(crate) struct UnlinkGuard(pub(crate) Vec<String>);

impl Drop for UnlinkGuard {
    fn drop(&mut self) {
        for name in &self.0 {
            let _ = unlink(name);
        }
    }
}
