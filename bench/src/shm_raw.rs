//! The raw shared-memory baseline: two single-producer single-consumer byte rings in
//! one segment (client → server, server → client), written directly on `shm_open` +
//! `mmap`, with four ways to wait for the peer side by side:
//!
//! - **spin**: poll the index, never sleep (one CPU busy per waiting side);
//! - **spin-futex**: poll for [`SPIN`], then sleep on a futex (what the `shm` transport does);
//! - **futex**: sleep on a futex at once;
//! - **sem**: sleep on a named POSIX semaphore (`sem_open`/`sem_wait`/`sem_post`).
//!
//! A side that sleeps announces it (`waiters`); the other side makes the wake-up system
//! call only when it sees that, so a busy steady state makes no system call.
//!
//! ```text
//! | RingHeader c2s | RingHeader s2c | c2s bytes (RING) | s2c bytes (RING) |
//! RingHeader: head (bytes ever written) | tail (bytes ever read) | closed |
//!             data event {seq, waiters} | space event {seq, waiters}   (each 64-byte aligned)
//! ```
//!
//! This is the only file of the benchmark with unsafe code.
#![allow(unsafe_code)]

use std::ffi::CString;
use std::io;
use std::num::NonZeroUsize;
use std::os::fd::OwnedFd;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering, fence};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use nix::fcntl::OFlag;
use nix::sys::mman::{MapFlags, ProtFlags, mmap, munmap, shm_open, shm_unlink};
use nix::sys::stat::Mode;

/// How a side waits for the other.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Strategy {
    /// Poll, never sleep.
    Spin,
    /// Poll for [`SPIN`], then sleep on a futex.
    SpinFutex,
    /// Sleep on a futex at once.
    Futex,
    /// Sleep on a named POSIX semaphore at once.
    Sem,
}

impl Strategy {
    /// Every strategy, the transport's own (spin-futex) first.
    pub const ALL: [Strategy; 4] = [
        Strategy::SpinFutex,
        Strategy::Spin,
        Strategy::Futex,
        Strategy::Sem,
    ];

    /// The name used on the command line and in the results.
    pub fn name(self) -> &'static str {
        match self {
            Strategy::Spin => "spin",
            Strategy::SpinFutex => "spin-futex",
            Strategy::Futex => "futex",
            Strategy::Sem => "sem",
        }
    }

    /// The strategy called `name`.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.name() == name)
    }
}

/// Bytes per ring: 2 MiB, as the `shm` transport's default, so 1 MiB fits whole.
pub const RING: usize = 2 << 20;
/// How long spin-futex polls before it sleeps.
pub const SPIN: Duration = Duration::from_micros(50);
/// A wait longer than this fails: the peer is gone.
const GIVE_UP: Duration = Duration::from_secs(10);
/// Longest single sleep, so a dead peer is noticed.
const SLICE_NS: i64 = 100_000_000;

#[repr(C, align(64))]
struct Padded<T>(T);

#[repr(C)]
struct Event {
    seq: AtomicU32,
    waiters: AtomicU32,
}

#[repr(C)]
struct RingHeader {
    head: Padded<AtomicU64>,
    tail: Padded<AtomicU64>,
    closed: Padded<AtomicU32>,
    data: Padded<Event>,
    space: Padded<Event>,
}

const HEADER: usize = size_of::<RingHeader>();
const SEGMENT: usize = 2 * HEADER + 2 * RING;
const _: () = assert!(HEADER.is_multiple_of(64));

/// One side's view of the segment.
pub struct ShmConn {
    base: NonNull<u8>,
    tx: usize,
    strategy: Strategy,
    /// Per ring: the data semaphore, then the space semaphore (only for [`Strategy::Sem`]).
    sems: Vec<NonNull<libc::sem_t>>,
    /// The owner's segment name, unlinked (with the semaphores) on drop.
    owned: Option<String>,
}

fn sem_names(name: &str) -> Vec<CString> {
    (0..4)
        .map(|i| CString::new(format!("{name}.sem{i}")).expect("no NUL in a segment name"))
        .collect()
}

impl ShmConn {
    /// Creates the segment (and semaphores) called `name`: the client side.
    pub fn create(name: &str, strategy: Strategy) -> io::Result<Self> {
        let fd = shm_open(
            name,
            OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_RDWR,
            Mode::S_IRUSR | Mode::S_IWUSR,
        )?;
        let names = sem_names(name);
        let mut conn = Self::map(fd, true, 0, strategy)?;
        conn.owned = Some(name.to_owned());
        if strategy == Strategy::Sem {
            for n in names {
                // SAFETY: `n` is a NUL-terminated string; the variadic mode and value
                // arguments are the types sem_open(3) reads with O_CREAT.
                let sem = unsafe {
                    libc::sem_open(n.as_ptr(), libc::O_CREAT | libc::O_EXCL, 0o600_u32, 0_u32)
                };
                if sem == libc::SEM_FAILED {
                    return Err(io::Error::last_os_error());
                }
                conn.sems
                    .push(NonNull::new(sem).ok_or_else(io::Error::last_os_error)?);
            }
        }
        Ok(conn)
    }

    /// Opens the segment (and semaphores) `name` made by [`ShmConn::create`]: the server side.
    pub fn open(name: &str, strategy: Strategy) -> io::Result<Self> {
        let fd = shm_open(name, OFlag::O_RDWR, Mode::empty())?;
        let mut conn = Self::map(fd, false, 1, strategy)?;
        if strategy == Strategy::Sem {
            for n in sem_names(name) {
                // SAFETY: `n` is a NUL-terminated string; without O_CREAT sem_open(3)
                // reads no variadic arguments.
                let sem = unsafe { libc::sem_open(n.as_ptr(), 0) };
                if sem == libc::SEM_FAILED {
                    return Err(io::Error::last_os_error());
                }
                conn.sems
                    .push(NonNull::new(sem).ok_or_else(io::Error::last_os_error)?);
            }
        }
        Ok(conn)
    }

    fn map(fd: OwnedFd, size_it: bool, tx: usize, strategy: Strategy) -> io::Result<Self> {
        if size_it {
            nix::unistd::ftruncate(&fd, SEGMENT as i64)?;
        }
        let len = NonZeroUsize::new(SEGMENT).expect("segment is not empty");
        // SAFETY: a fresh shared mapping of a file we hold open, at an address the
        // kernel picks, overlaps no Rust object; it is unmapped only in Drop.
        let base = unsafe {
            mmap(
                None,
                len,
                ProtFlags::PROT_READ | ProtFlags::PROT_WRITE,
                MapFlags::MAP_SHARED,
                &fd,
                0,
            )
        }?;
        Ok(Self {
            base: base.cast(),
            tx,
            strategy,
            sems: Vec::new(),
            owned: None,
        })
    }

    fn header(&self, ring: usize) -> &RingHeader {
        let p = self
            .base
            .as_ptr()
            .wrapping_add(ring * HEADER)
            .cast::<RingHeader>();
        // SAFETY: the mapping is SEGMENT bytes, page aligned, lives as long as `self`, and
        // holds two RingHeaders at 0 and HEADER; all their fields are atomics (valid when
        // zeroed, as ftruncate leaves them), so shared references to them are sound
        // while the peer writes them.
        unsafe { &*p }
    }

    fn data(&self, ring: usize) -> *mut u8 {
        self.base.as_ptr().wrapping_add(2 * HEADER + ring * RING)
    }

    fn sem(&self, ring: usize, space: bool) -> Option<NonNull<libc::sem_t>> {
        self.sems.get(ring * 2 + usize::from(space)).copied()
    }

    /// Writes all of `buf` into our outgoing ring, waiting for space as needed.
    pub fn send(&mut self, buf: &[u8]) -> io::Result<()> {
        let ring = self.tx;
        let h = self.header(ring);
        let mut done = 0;
        while done < buf.len() {
            // Only we write `head`.
            let head = h.head.0.load(Ordering::Relaxed);
            // SYNC: Acquire, paired with the Release store of `tail` in recv: the
            // consumer is done reading the bytes we are about to overwrite.
            let free = || RING as u64 - (head - h.tail.0.load(Ordering::Acquire));
            if free() == 0 {
                self.wait(ring, true, &|| free() > 0)?;
            }
            let n = (free() as usize).min(buf.len() - done);
            let at = (head % RING as u64) as usize;
            let first = n.min(RING - at);
            let dst = self.data(ring);
            // SAFETY: `at + first <= RING` and the ring's bytes are inside the mapping;
            // `buf[done..done + first]` is in bounds; the peer reads none of these bytes
            // until the Release store of `head` below.
            unsafe {
                std::ptr::copy_nonoverlapping(buf[done..].as_ptr(), dst.wrapping_add(at), first)
            };
            if n > first {
                // SAFETY: as above, for the wrapped part at the start of the ring.
                unsafe {
                    std::ptr::copy_nonoverlapping(buf[done + first..].as_ptr(), dst, n - first)
                };
            }
            // SYNC: Release, paired with the Acquire load of `head` in recv.
            h.head.0.store(head + n as u64, Ordering::Release);
            self.notify(ring, false);
            done += n;
        }
        Ok(())
    }

    /// Fills all of `buf` from our incoming ring, waiting for data as needed.
    pub fn recv(&mut self, buf: &mut [u8]) -> io::Result<()> {
        let ring = 1 - self.tx;
        let h = self.header(ring);
        let mut done = 0;
        while done < buf.len() {
            // Only we write `tail`.
            let tail = h.tail.0.load(Ordering::Relaxed);
            // SYNC: Acquire, paired with the Release store of `head` in send.
            let avail = || h.head.0.load(Ordering::Acquire) - tail;
            if avail() == 0 {
                self.wait(ring, false, &|| avail() > 0)?;
            }
            let avail = avail();
            if avail > RING as u64 {
                return Err(io::Error::other("corrupt ring: more bytes than fit"));
            }
            let n = (avail as usize).min(buf.len() - done);
            let at = (tail % RING as u64) as usize;
            let first = n.min(RING - at);
            let src = self.data(ring).cast_const();
            // SAFETY: `at + first <= RING` inside the mapping; the producer published
            // these bytes (Acquire above) and does not touch them until `tail` moves.
            unsafe {
                std::ptr::copy_nonoverlapping(src.wrapping_add(at), buf[done..].as_mut_ptr(), first)
            };
            if n > first {
                // SAFETY: as above, for the wrapped part at the start of the ring.
                unsafe {
                    std::ptr::copy_nonoverlapping(src, buf[done + first..].as_mut_ptr(), n - first)
                };
            }
            // SYNC: Release, paired with the Acquire load of `tail` in send.
            h.tail.0.store(tail + n as u64, Ordering::Release);
            self.notify(ring, true);
            done += n;
        }
        Ok(())
    }

    /// Waits until `ready()` (or the ring is closed, or the peer looks gone).
    fn wait(&self, ring: usize, space: bool, ready: &dyn Fn() -> bool) -> io::Result<()> {
        let h = self.header(ring);
        let closed = || h.closed.0.load(Ordering::Acquire) != 0;
        let start = Instant::now();
        let spin_until = match self.strategy {
            Strategy::Spin => Some(start + GIVE_UP),
            Strategy::SpinFutex => Some(start + SPIN),
            Strategy::Futex | Strategy::Sem => None,
        };
        if let Some(until) = spin_until {
            let mut n = 0_u32;
            loop {
                if ready() {
                    return Ok(());
                }
                if closed() {
                    return Err(io::ErrorKind::UnexpectedEof.into());
                }
                std::hint::spin_loop();
                n = n.wrapping_add(1);
                if n.is_multiple_of(256) && Instant::now() >= until {
                    break;
                }
            }
            if self.strategy == Strategy::Spin {
                return Err(io::ErrorKind::TimedOut.into());
            }
        }
        let ev = if space { &h.space.0 } else { &h.data.0 };
        loop {
            let seq = ev.seq.load(Ordering::Acquire);
            ev.waiters.fetch_add(1, Ordering::SeqCst);
            // SYNC: SeqCst fence, paired with the one in notify: either we see the
            // peer's progress here, or it sees our `waiters` and wakes us.
            fence(Ordering::SeqCst);
            if ready() || closed() {
                ev.waiters.fetch_sub(1, Ordering::SeqCst);
                return if ready() {
                    Ok(())
                } else {
                    Err(io::ErrorKind::UnexpectedEof.into())
                };
            }
            match self.sem(ring, space) {
                Some(sem) => sem_wait_slice(sem),
                None => futex_wait(&ev.seq, seq),
            }
            ev.waiters.fetch_sub(1, Ordering::SeqCst);
            if ready() {
                return Ok(());
            }
            if start.elapsed() > GIVE_UP {
                return Err(io::ErrorKind::TimedOut.into());
            }
        }
    }

    /// Wakes the peer if it sleeps on `ring`'s data (or space) event.
    fn notify(&self, ring: usize, space: bool) {
        if self.strategy == Strategy::Spin {
            return;
        }
        let h = self.header(ring);
        let ev = if space { &h.space.0 } else { &h.data.0 };
        // SYNC: SeqCst fence, paired with the one in wait.
        fence(Ordering::SeqCst);
        if ev.waiters.load(Ordering::SeqCst) == 0 {
            return;
        }
        ev.seq.fetch_add(1, Ordering::SeqCst);
        match self.sem(ring, space) {
            Some(sem) => {
                // SAFETY: `sem` came from a successful sem_open and is closed only in Drop.
                unsafe { libc::sem_post(sem.as_ptr()) };
            }
            None => futex_wake(&ev.seq),
        }
    }
}

fn futex_wait(word: &AtomicU32, expected: u32) {
    let slice = libc::timespec {
        tv_sec: 0,
        tv_nsec: SLICE_NS,
    };
    // SAFETY: `word` is a live, aligned u32 in shared memory; FUTEX_WAIT only reads it
    // and `slice` outlives the call. Not FUTEX_PRIVATE: the peer is another process.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT,
            expected,
            &raw const slice,
            std::ptr::null::<u32>(),
            0_u32,
        )
    };
}

fn futex_wake(word: &AtomicU32) {
    // SAFETY: `word` is a live, aligned u32; FUTEX_WAKE does not access it.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAKE,
            1_i32,
            std::ptr::null::<libc::timespec>(),
            std::ptr::null::<u32>(),
            0_u32,
        )
    };
}

fn sem_wait_slice(sem: NonNull<libc::sem_t>) {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let ns = i64::from(now.subsec_nanos()) + SLICE_NS;
    let deadline = libc::timespec {
        tv_sec: now.as_secs() as libc::time_t + ns / 1_000_000_000,
        tv_nsec: ns % 1_000_000_000,
    };
    // SAFETY: `sem` came from a successful sem_open and is closed only in Drop.
    unsafe { libc::sem_timedwait(sem.as_ptr(), &raw const deadline) };
}

impl Drop for ShmConn {
    fn drop(&mut self) {
        for ring in 0..2 {
            let h = self.header(ring);
            // SYNC: Release, paired with the Acquire load of `closed` in wait.
            h.closed.0.store(1, Ordering::Release);
            self.notify(ring, false);
            self.notify(ring, true);
        }
        for sem in self.sems.drain(..) {
            // SAFETY: from a successful sem_open, closed once, not used after this.
            unsafe { libc::sem_close(sem.as_ptr()) };
        }
        // SAFETY: the mapping made in `map`, SEGMENT bytes; the references handed out
        // by `header` borrow `self` and are gone.
        let _ = unsafe { munmap(self.base.cast(), SEGMENT) };
        if let Some(name) = self.owned.take() {
            unlink(&name);
        }
    }
}

/// Removes the segment `name` and its semaphores (whichever exist); both sides keep
/// what they have mapped or opened.
pub fn unlink(name: &str) {
    let _ = shm_unlink(name);
    for n in sem_names(name) {
        // SAFETY: `n` is a NUL-terminated string.
        unsafe { libc::sem_unlink(n.as_ptr()) };
    }
}
