//! An owned mapping of a shared-memory segment: `shm_open` + `ftruncate` + `mmap`,
//! `munmap` on drop. The client creates and initialises it, the server opens and
//! validates it. Unlinking the name is separate ([`unlink`]): both sides unlink it as
//! soon as both have it mapped, so nothing of a live connection stays in /dev/shm.
//!
//! # References
//!
//! shm_open(3), ftruncate(2), mmap(2), munmap(2), shm_unlink(3)
#![allow(unsafe_code)]

use std::num::NonZeroUsize;
use std::os::fd::OwnedFd;
use std::ptr::NonNull;
use std::sync::atomic::Ordering;

use nix::fcntl::OFlag;
use nix::sys::mman::{MapFlags, ProtFlags, mmap, munmap, shm_open, shm_unlink};
use nix::sys::stat::{Mode, fstat};
use rpc_core::TransportError;

use super::layout::{self, ControlPage, LAYOUT_VERSION, MAGIC};

/// A mapped segment.
pub struct Segment {
    base: NonNull<u8>,
    len: usize,
    capacity: usize,
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
    /// Creates segment `name` (0600, must not exist) for rings of `capacity` bytes,
    /// initialises the header and publishes it.
    ///
    /// # Errors
    ///
    /// `Io` if the name exists or the OS refuses (e.g. /dev/shm full).
    pub fn create(name: &str, capacity: usize, max_frame: u32) -> Result<Self, TransportError> {
        debug_assert!(layout::valid_capacity(capacity));
        let fd = shm_open(
            name,
            OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_RDWR | OFlag::O_CLOEXEC,
            Mode::from_bits_truncate(0o600),
        )
        .map_err(io(format!("create shared memory {name}")))?;
        let len = layout::segment_len(capacity);
        let created = (|| {
            nix::unistd::ftruncate(&fd, len as i64)
                .map_err(io(format!("size shared memory {name} to {len} bytes")))?;
            Self::map(&fd, len, capacity, name)
        })();
        let segment = match created {
            Ok(s) => s,
            Err(e) => {
                let _ = shm_unlink(name);
                return Err(e);
            }
        };
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

    /// Opens and validates segment `name` made by a client.
    ///
    /// # Errors
    ///
    /// `Corrupt` if it is not a complete ipc-rpc segment of this layout version;
    /// `Io` if it cannot be opened.
    pub fn open(name: &str) -> Result<Self, TransportError> {
        let fd = shm_open(name, OFlag::O_RDWR | OFlag::O_CLOEXEC, Mode::empty())
            .map_err(io(format!("open shared memory {name}")))?;
        let len = usize::try_from(
            fstat(&fd)
                .map_err(io(format!("inspect shared memory {name}")))?
                .st_size,
        )
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
        let segment = Self::map(&fd, len, capacity, name)?;
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

    fn map(fd: &OwnedFd, len: usize, capacity: usize, name: &str) -> Result<Self, TransportError> {
        let length = NonZeroUsize::new(len).ok_or(TransportError::Corrupt("empty segment"))?;
        // SAFETY: a fresh shared mapping of `len` bytes of this shm object at an address
        // the kernel picks; it aliases no Rust object. The object is at least `len`
        // bytes (we sized it, or checked its size with fstat).
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
        .map_err(io(format!("map shared memory {name}")))?;
        Ok(Segment {
            base: base.cast(),
            len,
            capacity,
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

    /// Bytes in each ring.
    pub fn capacity(&self) -> usize {
        self.capacity
    }
}

impl Drop for Segment {
    fn drop(&mut self) {
        // SAFETY: `base`/`len` are exactly the mapping made in `map`, unmapped once;
        // every reference into it borrows `self`, so none outlives this call.
        let _ = unsafe { munmap(self.base.cast(), self.len) };
    }
}

/// Removes segment `name` from /dev/shm; existing mappings stay valid.
pub fn unlink(name: &str) {
    let _ = shm_unlink(name);
}
