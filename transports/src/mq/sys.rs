//! The only system calls of the mq transport that nix does not wrap: `pidfd_open`.
//!
//! # References
//!
//! pidfd_open(2)
#![allow(unsafe_code)]

use std::io;
use std::os::fd::{FromRawFd, OwnedFd};

use nix::libc;

/// Opens a pidfd for process `pid` (close-on-exec is implied by the kernel).
///
/// # Errors
///
/// `ESRCH` if no such process exists (it may have exited already); `ENOSYS` on kernels
/// before 5.3; `EMFILE`/`ENFILE` when out of file descriptors.
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
