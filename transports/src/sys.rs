//! The few OS calls nix has no safe wrapper for. Every unsafe block of the crate outside
//! the shared-memory mapping lives here.
#![allow(unsafe_code)]

use std::io;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::process::Command;

use nix::fcntl::{FcntlArg, FdFlag, fcntl};
use nix::libc;
use nix::sys::stat::{SFlag, fstat};

/// Duplicates `fd` to the lowest free number `>= min`, close-on-exec.
///
/// # References
///
/// fcntl(2) `F_DUPFD_CLOEXEC`
pub fn dup_at_least(fd: impl AsFd, min: RawFd) -> io::Result<OwnedFd> {
    let raw = fcntl(fd.as_fd(), FcntlArg::F_DUPFD_CLOEXEC(min))?;
    // SAFETY: F_DUPFD_CLOEXEC returned a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(raw) })
}

/// Makes the child started by `cmd` find `read` at descriptor `read_at` and `write` at
/// `write_at` (both without close-on-exec). `read` and `write` must stay open until
/// the command is spawned, and their numbers must not be `read_at` or `write_at`.
///
/// Takes the command by value so it cannot be spawned again with stale numbers.
///
/// # References
///
/// dup2(2), `std::os::unix::process::CommandExt::pre_exec`
pub fn with_inherited_fds(
    mut cmd: Command,
    read: &OwnedFd,
    read_at: RawFd,
    write: &OwnedFd,
    write_at: RawFd,
) -> Command {
    let (read, write) = (read.as_raw_fd(), write.as_raw_fd());
    debug_assert!(![read_at, write_at].contains(&read) && ![read_at, write_at].contains(&write));
    let hook = move || {
        for (from, to) in [(read, read_at), (write, write_at)] {
            // SAFETY: dup2 is async-signal-safe and touches no memory; `from` is open
            // in the parent (the caller keeps it alive until spawn) and so in the child.
            if unsafe { libc::dup2(from, to) } < 0 {
                return Err(io::Error::last_os_error());
            }
        }
        Ok(())
    };
    // SAFETY: the hook runs between fork and exec and only calls dup2, which is
    // async-signal-safe, allocates nothing and takes no lock.
    unsafe { cmd.pre_exec(hook) };
    cmd
}

/// Takes ownership of descriptor `fd`, which this process inherited, after checking it
/// is a pipe or FIFO; marks it close-on-exec so our own children do not inherit it.
///
/// The caller guarantees nothing else in this process owns `fd` (it came from the
/// parent and is taken once, see `pipe::inherited`).
///
/// # References
///
/// fstat(2), fcntl(2)
pub fn take_inherited_pipe_fd(fd: RawFd) -> io::Result<OwnedFd> {
    // SAFETY: borrowed only for the checks below; `fd` stays open during them (a
    // closed number makes fstat fail with EBADF, which we report).
    let borrowed = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
    let stat = fstat(borrowed)?;
    if SFlag::from_bits_truncate(stat.st_mode) & SFlag::S_IFMT != SFlag::S_IFIFO {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("inherited descriptor {fd} is not a pipe"),
        ));
    }
    fcntl(borrowed, FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC))?;
    // SAFETY: `fd` is open (fstat succeeded), is a pipe, and per the caller's guarantee
    // is owned by nothing else in this process.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Sleeps while `word` holds `expected`, for at most `timeout`; shared between
/// processes (no FUTEX_PRIVATE_FLAG). Returns `false` if the timeout expired.
///
/// # References
///
/// futex(2) `FUTEX_WAIT`
pub fn futex_wait(
    word: &std::sync::atomic::AtomicU32,
    expected: u32,
    timeout: std::time::Duration,
) -> bool {
    let ts = libc::timespec {
        tv_sec: libc::time_t::try_from(timeout.as_secs()).unwrap_or(libc::time_t::MAX),
        tv_nsec: libc::c_long::from(timeout.subsec_nanos() as i32),
    };
    // SAFETY: `word` is a valid, aligned u32 for the duration of the call (a reference),
    // `ts` lives on our stack; FUTEX_WAIT only reads both.
    let r = unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT,
            expected,
            &ts as *const libc::timespec,
            std::ptr::null::<u32>(),
            0u32,
        )
    };
    !(r == -1 && io::Error::last_os_error().raw_os_error() == Some(libc::ETIMEDOUT))
}

/// Wakes up to `n` threads (of any process) sleeping on `word`.
///
/// # References
///
/// futex(2) `FUTEX_WAKE`
pub fn futex_wake(word: &std::sync::atomic::AtomicU32, n: i32) {
    // SAFETY: `word` is a valid, aligned u32 (a reference); FUTEX_WAKE does not touch
    // memory beyond looking the address up.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAKE,
            n,
            std::ptr::null::<libc::timespec>(),
            std::ptr::null::<u32>(),
            0u32,
        );
    }
}

/// The CPU this thread runs on now (a vDSO call, no system call on x86-64).
///
/// # References
///
/// sched_getcpu(3)
pub fn current_cpu() -> u32 {
    // SAFETY: sched_getcpu takes no arguments and touches no memory of ours.
    let cpu = unsafe { libc::sched_getcpu() };
    u32::try_from(cpu).unwrap_or(u32::MAX)
}

/// Opens a pidfd for process `pid` (close-on-exec is implied by the kernel).
///
/// # Errors
///
/// `ESRCH` if no such process exists (it may have exited already); `ENOSYS` on kernels
/// before 5.3; `EMFILE`/`ENFILE` when out of file descriptors.
///
/// # References
///
/// pidfd_open(2)
pub(crate) fn pidfd_open(pid: u32) -> io::Result<OwnedFd> {
    let pid = libc::pid_t::try_from(pid).map_err(|_| io::Error::from_raw_os_error(libc::ESRCH))?;
    let flags: libc::c_uint = 0;
    // SAFETY: pidfd_open takes a pid and a flags word by value and touches no memory of
    // ours; the kernel validates both.
    let ret = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, flags) };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    let fd = i32::try_from(ret).map_err(|_| io::Error::other("pidfd_open returned a bad fd"))?;
    // SAFETY: `fd` was just returned by a successful pidfd_open, so it is an open file
    // descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Reads at most `max` bytes from `fd` into `buf`'s spare capacity (no zeroing first)
/// and extends `buf` by what was read; returns that count (0 at end of stream).
///
/// # Errors
///
/// The OS error of read(2), `Interrupted` included.
///
/// # References
///
/// read(2)
pub fn read_append(fd: impl AsFd, buf: &mut Vec<u8>, max: usize) -> io::Result<usize> {
    let spare = buf.spare_capacity_mut();
    let want = max.min(spare.len());
    // SAFETY: `spare` is `want` or more writable bytes owned by `buf`, and read(2)
    // writes at most `want` bytes there; the fd is borrowed and open for the call.
    let n = unsafe {
        libc::read(
            fd.as_fd().as_raw_fd(),
            spare.as_mut_ptr().cast::<libc::c_void>(),
            want,
        )
    };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let n = n as usize;
    // SAFETY: read(2) initialised the first `n` (<= `want`) spare bytes, so the
    // vector's first `len + n` bytes are initialised and within its capacity.
    unsafe { buf.set_len(buf.len() + n) };
    Ok(n)
}

/// Most descriptors the kernel passes in one `SCM_RIGHTS` message (`SCM_MAX_FD`).
const SCM_MAX_FD: usize = 253;

/// Sends `bytes` on `socket` with descriptor `fd` attached (`SCM_RIGHTS`): the peer
/// receives its own descriptor of the same open file.
///
/// # Errors
///
/// The OS error of sendmsg(2) or write(2).
///
/// # References
///
/// sendmsg(2), unix(7) `SCM_RIGHTS`
pub fn send_with_fd(
    socket: &std::os::unix::net::UnixStream,
    bytes: &[u8],
    fd: std::os::fd::BorrowedFd<'_>,
) -> io::Result<()> {
    use nix::sys::socket::{ControlMessage, MsgFlags, UnixAddr, sendmsg};
    let fds = [fd.as_raw_fd()];
    let sent = loop {
        match sendmsg::<UnixAddr>(
            socket.as_raw_fd(),
            &[io::IoSlice::new(bytes)],
            &[ControlMessage::ScmRights(&fds)],
            MsgFlags::MSG_NOSIGNAL,
            None,
        ) {
            Err(nix::errno::Errno::EINTR) => continue,
            other => break other?,
        }
    };
    // The descriptor went with the first byte; a short write's rest goes plain.
    io::Write::write_all(&mut &*socket, &bytes[sent..])
}

/// Receives up to `buf.len()` bytes from `socket` and the descriptors sent with them
/// (`SCM_RIGHTS`), each close-on-exec and owned by the caller, so unwanted ones close
/// on drop. Returns the byte count (0 at end of stream) and the descriptors.
///
/// A stream socket hands over the descriptors of one `sendmsg` at most per call, and
/// at most [`SCM_MAX_FD`] of them: the control buffer has room for all, so none can
/// be cut off (and leak in this process) by `MSG_CTRUNC`.
///
/// # Errors
///
/// The OS error of recvmsg(2) (`WouldBlock` when a receive timeout expires);
/// `InvalidData` if the control data came truncated anyway.
///
/// # References
///
/// recvmsg(2), unix(7) `SCM_RIGHTS`, cmsg(3)
pub fn recv_with_fds(
    socket: &std::os::unix::net::UnixStream,
    buf: &mut [u8],
) -> io::Result<(usize, Vec<OwnedFd>)> {
    use nix::sys::socket::{ControlMessageOwned, MsgFlags, UnixAddr, recvmsg};
    let mut space = nix::cmsg_space!([RawFd; SCM_MAX_FD]);
    let mut iov = [io::IoSliceMut::new(buf)];
    let msg = loop {
        match recvmsg::<UnixAddr>(
            socket.as_raw_fd(),
            &mut iov,
            Some(&mut space),
            MsgFlags::MSG_CMSG_CLOEXEC,
        ) {
            Err(nix::errno::Errno::EINTR) => continue,
            other => break other?,
        }
    };
    let mut fds = Vec::new();
    let cmsgs = msg.cmsgs().map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            "control data truncated: more descriptors than one message can carry",
        )
    })?;
    for cmsg in cmsgs {
        if let ControlMessageOwned::ScmRights(raw) = cmsg {
            for fd in raw {
                // SAFETY: the kernel just installed `fd` in this process for this
                // message (SCM_RIGHTS); nothing else knows its number, so we own it.
                fds.push(unsafe { OwnedFd::from_raw_fd(fd) });
            }
        }
    }
    Ok((msg.bytes, fds))
}
