//! An owned mapping of a shared-memory segment: an anonymous, sealed memory file
//! (`memfd_create`) + `mmap`, `munmap` on drop. The client creates, sizes, seals and
//! initialises it, then hands its descriptor to the server over the rendezvous socket;
//! the server checks the seals, the size and the header before it maps anything.
//!
//! **Why sealed:** a peer that could shrink the file under our mapping would turn
//! our next access into SIGBUS, killing the whole server. `F_SEAL_SHRINK |
//! F_SEAL_GROW | F_SEAL_SEAL` fix the size for good, for every holder of the file
//! (the kernel refuses `ftruncate` with `EPERM`), so the server maps only segments
//! whose size nobody can change any more. The file has no name in /dev/shm: it lives
//! as long as a descriptor or a mapping of it does, so a crash leaks nothing.
//!
//! # References
//!
//! memfd_create(2), fcntl(2) `F_ADD_SEALS`/`F_GET_SEALS`, fstatfs(2), ftruncate(2),
//! mmap(2), munmap(2), shm_unlink(3)
#![allow(unsafe_code)]

use std::num::NonZeroUsize;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::ptr::NonNull;
use std::sync::atomic::Ordering;

use nix::fcntl::{FcntlArg, SealFlag, fcntl};
use nix::sys::memfd::{MFdFlags, memfd_create};
use nix::sys::mman::{MapFlags, ProtFlags, mmap, munmap, shm_unlink};
use nix::sys::stat::fstat;
use nix::sys::statfs::{TMPFS_MAGIC, fstatfs};
use rpc_core::TransportError;

use super::layout::{self, ControlPage, LAYOUT_VERSION, MAGIC};

/// The seals a segment must carry before the server maps it: its size is fixed and
/// no seal can be added or removed any more.
pub const REQUIRED_SEALS: SealFlag = SealFlag::F_SEAL_SHRINK
    .union(SealFlag::F_SEAL_GROW)
    .union(SealFlag::F_SEAL_SEAL);

/// A mapped segment.
pub struct Segment {
    base: NonNull<u8>,
    len: usize,
    capacity: usize,
    /// The creator's descriptor, sent to the server at set-up; `None` on the server,
    /// which needs none once mapped (one descriptor less per connection).
    fd: Option<OwnedFd>,
}

// SAFETY: the mapping is plain shared memory owned by this value until drop; every
// access goes through atomics (ControlPage) or through Ring's raw-pointer copies,
// which are valid from any thread.
unsafe impl Send for Segment {}
// SAFETY: as for Send; no method hands out `&mut` to the mapping.
unsafe impl Sync for Segment {}

fn io(context: String) -> impl FnOnce(nix::errno::Errno) -> TransportError {
    move |e| TransportError::Io {
        context,
        source: e.into(),
    }
}

impl Segment {
    /// Creates a sealed segment for rings of `capacity` bytes (`label` names it in
    /// /proc for debugging), initialises the header and publishes it.
    ///
    /// # Errors
    ///
    /// `Io` if the OS refuses (out of memory or descriptors; a kernel without
    /// memfd sealing, before 3.17).
    pub fn create(label: &str, capacity: usize, max_frame: u32) -> Result<Self, TransportError> {
        debug_assert!(layout::valid_capacity(capacity));
        let flags = MFdFlags::MFD_CLOEXEC | MFdFlags::MFD_ALLOW_SEALING;
        // Not executable, as kernels since 6.3 ask (and `vm.memfd_noexec=2` requires);
        // older kernels refuse the flag with EINVAL.
        let noexec = MFdFlags::from_bits_retain(nix::libc::MFD_NOEXEC_SEAL);
        let fd = match memfd_create(label, flags | noexec) {
            Err(nix::errno::Errno::EINVAL) => memfd_create(label, flags),
            other => other,
        }
        .map_err(io(format!(
            "create the shared memory of {label} (memfd_create)"
        )))?;
        let len = layout::segment_len(capacity);
        nix::unistd::ftruncate(&fd, len as i64).map_err(io(format!(
            "size the shared memory of {label} to {len} bytes"
        )))?;
        fcntl(&fd, FcntlArg::F_ADD_SEALS(REQUIRED_SEALS))
            .map_err(io(format!("seal the shared memory of {label}")))?;
        let mut segment = Self::map(&fd, len, capacity, &format!("the shared memory of {label}"))?;
        segment.fd = Some(fd);
        let header = &segment.control().header;
        header.version.store(LAYOUT_VERSION, Ordering::Relaxed);
        header.capacity.store(capacity as u32, Ordering::Relaxed);
        header.max_frame.store(max_frame, Ordering::Relaxed);
        header
            .client_pid
            .store(std::process::id(), Ordering::Relaxed);
        // SYNC: Release, paired with the Acquire load of `magic` in Segment::open:
        // everything above is visible to whoever sees the magic.
        header.magic.store(MAGIC, Ordering::Release);
        Ok(segment)
    }

    /// Checks and maps the segment a client sent as `fd`; the descriptor is closed
    /// once mapped.
    ///
    /// Checked before mapping, so that nothing the client does later can make an
    /// access fault: a memory file (tmpfs, not hugetlbfs whose pool can run dry),
    /// sealed against shrinking and growing ([`REQUIRED_SEALS`]), of a size that is a
    /// valid layout. After mapping: the header's magic, version and capacity.
    ///
    /// # Errors
    ///
    /// `Corrupt` if it is not a sealed, complete ipc-rpc segment of this layout
    /// version (the message says which check failed); `Io` if it cannot be inspected
    /// or mapped.
    pub fn open(fd: OwnedFd) -> Result<Self, TransportError> {
        let what = "a client's shared memory";
        let fs = fstatfs(&fd).map_err(io(format!("inspect {what} (fstatfs)")))?;
        if fs.filesystem_type() != TMPFS_MAGIC {
            return Err(TransportError::Corrupt(
                "segment is not a memory file (memfd_create without MFD_HUGETLB)",
            ));
        }
        let seals = fcntl(&fd, FcntlArg::F_GET_SEALS).map_err(|_| {
            TransportError::Corrupt("segment is not a sealable memory file (memfd_create)")
        })?;
        if !SealFlag::from_bits_truncate(seals).contains(REQUIRED_SEALS) {
            return Err(TransportError::Corrupt(
                "segment is not sealed against resizing (F_SEAL_SHRINK|F_SEAL_GROW|F_SEAL_SEAL)",
            ));
        }
        // Read after the seals: from here on the size cannot change.
        let len = usize::try_from(fstat(&fd).map_err(io(format!("inspect {what}")))?.st_size)
            .map_err(|_| TransportError::Corrupt("segment size is negative"))?;
        if len < layout::segment_len(layout::MIN_CAPACITY)
            || len > layout::segment_len(layout::MAX_CAPACITY)
        {
            return Err(TransportError::Corrupt("segment size out of range"));
        }
        let capacity = (len - layout::DATA_OFFSET) / 2;
        if !layout::valid_capacity(capacity) || layout::segment_len(capacity) != len {
            return Err(TransportError::Corrupt(
                "segment size is not a valid layout",
            ));
        }
        let segment = Self::map(&fd, len, capacity, what)?;
        let header = &segment.control().header;
        // SYNC: Acquire, paired with the Release store in Segment::create.
        if header.magic.load(Ordering::Acquire) != MAGIC {
            return Err(TransportError::Corrupt("segment has no ipc-rpc magic"));
        }
        let version = header.version.load(Ordering::Relaxed);
        if version != LAYOUT_VERSION {
            return Err(TransportError::Corrupt(
                "segment layout version differs: build both sides from the same ipc-rpc",
            ));
        }
        if header.capacity.load(Ordering::Relaxed) as usize != capacity {
            return Err(TransportError::Corrupt(
                "segment header disagrees with its size",
            ));
        }
        Ok(segment)
    }

    /// The creator's descriptor of the segment (`None` on the server's side).
    pub fn fd(&self) -> Option<BorrowedFd<'_>> {
        self.fd.as_ref().map(AsFd::as_fd)
    }

    fn map(fd: &OwnedFd, len: usize, capacity: usize, what: &str) -> Result<Self, TransportError> {
        let length = NonZeroUsize::new(len).ok_or(TransportError::Corrupt("empty segment"))?;
        // SAFETY: a fresh shared mapping of `len` bytes of this memory file at an
        // address the kernel picks; it aliases no Rust object. The file is `len` bytes
        // (we sized it, or checked its size with fstat) and sealed against shrinking,
        // so every mapped page stays backed by the file.
        let base = unsafe {
            mmap(
                None,
                length,
                ProtFlags::PROT_READ | ProtFlags::PROT_WRITE,
                MapFlags::MAP_SHARED,
                fd,
                0,
            )
        }
        .map_err(io(format!("map {what}")))?;
        Ok(Segment {
            base: base.cast(),
            len,
            capacity,
            fd: None,
        })
    }

    /// The control page (header, sides, ring indices).
    pub fn control(&self) -> &ControlPage {
        debug_assert!(self.len >= layout::DATA_OFFSET);
        // SAFETY: the mapping is page-aligned (≥ ControlPage's 128-byte alignment) and
        // at least DATA_OFFSET ≥ size_of::<ControlPage>() bytes; ControlPage is made of
        // atomics only, for which any bit pattern is valid and shared mutation from
        // another process is allowed; the reference lives no longer than the mapping.
        unsafe { self.base.cast::<ControlPage>().as_ref() }
    }

    /// Start of a ring's data and its capacity.
    pub fn ring_base(&self, client_to_server: bool) -> (NonNull<u8>, usize) {
        let offset = layout::data_offset(self.capacity, client_to_server);
        debug_assert!(offset + self.capacity <= self.len);
        // SAFETY: offset + capacity ≤ len, so the pointer stays inside the mapping.
        let ptr = unsafe { self.base.add(offset) };
        (ptr, self.capacity)
    }
}

impl Drop for Segment {
    fn drop(&mut self) {
        // SAFETY: `base`/`len` are exactly the mapping made in `map`, unmapped once;
        // every reference into it borrows `self`, so none outlives this call.
        let _ = unsafe { munmap(self.base.cast(), self.len) };
    }
}

/// Removes segment `name` from /dev/shm (a leftover of an older ipc-rpc, which named
/// its segments there); existing mappings stay valid.
pub fn unlink(name: &str) {
    let _ = shm_unlink(name);
}
