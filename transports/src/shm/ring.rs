//! The two ends of a ring in shared memory: the only pointer arithmetic on shared
//! memory in the crate, behind a safe API.
//!
//! [`Writer`] owns the tail, [`Reader`] the head. Every index loaded from the peer
//! goes through [`index::used`] (a peer that breaks `head <= tail <= head + capacity`
//! is `Corrupt`), and every access is checked against the published or free range and
//! the end of the ring before a pointer is formed. The data region is written with
//! `copy_nonoverlapping` into space the protocol gives the writer, and is lent as
//! `&[u8]` ([`Reader::peek`]) only over bytes the writer published and may not touch
//! until the reader releases them — which takes `&mut self`, so no lent slice
//! outlives its bytes' ownership.
#![allow(unsafe_code)]

use std::ptr::NonNull;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use rpc_core::TransportError;

use super::index;
use super::layout::RingControl;
use super::segment::Segment;

/// One ring's data region and control block.
struct Ring {
    segment: Arc<Segment>,
    base: NonNull<u8>,
    capacity: u64,
    client_to_server: bool,
}

// SAFETY: Ring only forms raw pointers into a mapping that `segment` keeps alive;
// copies through them are valid from any thread (ordering is the protocol's, via the
// atomics of the control block).
unsafe impl Send for Ring {}
// SAFETY: as for Send; `&self` methods only read shared atomics or copy bytes out.
unsafe impl Sync for Ring {}

impl Ring {
    fn new(segment: Arc<Segment>, client_to_server: bool) -> Self {
        let (base, capacity) = segment.ring_base(client_to_server);
        Ring {
            segment,
            base,
            capacity: capacity as u64,
            client_to_server,
        }
    }

    fn control(&self) -> &RingControl {
        let page = self.segment.control();
        if self.client_to_server {
            &page.c2s
        } else {
            &page.s2c
        }
    }

    /// The position of index `at`, having checked that `len` bytes from there do not
    /// cross the end of the ring.
    fn position(&self, at: u64, len: u64) -> Result<usize, TransportError> {
        let pos = index::position(at, self.capacity);
        if len > self.capacity - pos {
            return Err(TransportError::Corrupt(
                "a record crosses the end of the ring",
            ));
        }
        Ok(pos as usize)
    }

    fn used(&self, head: u64, tail: u64) -> Result<u64, TransportError> {
        // Not `ok_or`: spin loops call this, and the error it would build is then
        // dropped each time (it has drop glue).
        match index::used(head, tail, self.capacity) {
            Some(used) => Ok(used),
            None => Err(TransportError::Corrupt("ring indices out of range")),
        }
    }
}

/// The producer's end.
pub struct Writer {
    ring: Ring,
    tail: u64,
}

impl Writer {
    /// The writing end of the c2s (`client_to_server`) or s2c ring.
    pub fn new(segment: Arc<Segment>, client_to_server: bool) -> Self {
        let ring = Ring::new(segment, client_to_server);
        let tail = ring.control().producer.tail.load(Ordering::Relaxed);
        Writer { ring, tail }
    }

    /// Bytes in the ring.
    pub fn capacity(&self) -> u64 {
        self.ring.capacity
    }

    /// Index of the next byte to write.
    pub fn tail(&self) -> u64 {
        self.tail
    }

    /// The control block (for waiting and waking).
    pub fn control(&self) -> &RingControl {
        self.ring.control()
    }

    /// Free bytes now.
    pub fn free(&self) -> Result<u64, TransportError> {
        // SYNC: Acquire, paired with the Release store of `head` in Reader::release:
        // the reader is done with the bytes before we overwrite them.
        let head = self.ring.control().consumer.head.load(Ordering::Acquire);
        Ok(self.ring.capacity - self.ring.used(head, self.tail)?)
    }

    /// Copies `src` at `offset` bytes past the tail, which must be free space that does
    /// not cross the end of the ring.
    ///
    /// # Errors
    ///
    /// `Corrupt` if the range is not free or crosses the end (a caller bug or a
    /// misbehaving peer); nothing is written then.
    pub fn write(&mut self, offset: u64, src: &[u8]) -> Result<(), TransportError> {
        let len = src.len() as u64;
        if offset + len > self.free()? {
            return Err(TransportError::Corrupt(
                "write beyond the free space of the ring",
            ));
        }
        let pos = self.ring.position(self.tail + offset, len)?;
        debug_assert!(pos as u64 + len <= self.ring.capacity);
        let dst = self.ring.base.as_ptr().wrapping_add(pos);
        // SAFETY: pos + len ≤ capacity (checked by `position`), so `dst..dst+len` lies in
        // the mapping `segment` keeps alive; the range is free space (checked), which the
        // reader does not touch until published; `src` is private memory, so the ranges
        // cannot overlap.
        unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), dst, src.len()) };
        Ok(())
    }

    /// Makes `n` more bytes (written before) visible to the reader.
    ///
    /// # Errors
    ///
    /// `Corrupt` if `n` exceeds the free space.
    pub fn publish(&mut self, n: u64) -> Result<(), TransportError> {
        if n > self.free()? {
            return Err(TransportError::Corrupt(
                "publish beyond the free space of the ring",
            ));
        }
        self.tail += n;
        // SYNC: Release, paired with the Acquire load of `tail` in Reader::available:
        // the bytes are written before the reader sees them.
        self.ring
            .control()
            .producer
            .tail
            .store(self.tail, Ordering::Release);
        Ok(())
    }
}

/// The consumer's end.
pub struct Reader {
    ring: Ring,
    head: u64,
}

impl Reader {
    /// The reading end of the c2s (`client_to_server`) or s2c ring.
    pub fn new(segment: Arc<Segment>, client_to_server: bool) -> Self {
        let ring = Ring::new(segment, client_to_server);
        let head = ring.control().consumer.head.load(Ordering::Relaxed);
        Reader { ring, head }
    }

    /// Bytes in the ring.
    pub fn capacity(&self) -> u64 {
        self.ring.capacity
    }

    /// Index of the next byte to read.
    pub fn head(&self) -> u64 {
        self.head
    }

    /// The control block (for waiting and waking).
    pub fn control(&self) -> &RingControl {
        self.ring.control()
    }

    /// Published bytes not yet released.
    pub fn available(&self) -> Result<u64, TransportError> {
        // SYNC: Acquire, paired with the Release store of `tail` in Writer::publish.
        let tail = self.ring.control().producer.tail.load(Ordering::Acquire);
        self.ring.used(self.head, tail)
    }

    /// Borrows `len` published bytes at `offset` past the head, which must not cross
    /// the end of the ring. Valid until the next `release` (which needs `&mut self`).
    ///
    /// # Errors
    ///
    /// `Corrupt` if the bytes are not published or cross the end.
    pub fn peek(&self, offset: u64, len: u64) -> Result<&[u8], TransportError> {
        if offset + len > self.available()? {
            return Err(TransportError::Corrupt(
                "read beyond the published bytes of the ring",
            ));
        }
        let pos = self.ring.position(self.head + offset, len)?;
        let start = self.ring.base.as_ptr().wrapping_add(pos);
        // SAFETY: `start..start+len` is inside the mapping (checked by `position`), kept
        // alive by `segment` for as long as `self` is borrowed; the bytes are published
        // (tail loaded with Acquire is past them) and the protocol forbids the writer to
        // touch them until `release`, which cannot run while this borrow of `self` lives.
        // A peer that breaks the protocol can only change plain bytes (every value
        // valid) that decoders bounds-check.
        Ok(unsafe { std::slice::from_raw_parts(start, len as usize) })
    }

    /// Reads the little-endian `u32` at `offset` past the head.
    ///
    /// # Errors
    ///
    /// As [`Reader::peek`].
    pub fn read_u32(&self, offset: u64) -> Result<u32, TransportError> {
        let bytes = self.peek(offset, 4)?;
        Ok(u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
    }

    /// Gives `n` read bytes back to the writer.
    ///
    /// # Errors
    ///
    /// `Corrupt` if fewer than `n` bytes are published.
    pub fn release(&mut self, n: u64) -> Result<(), TransportError> {
        if n > self.available()? {
            return Err(TransportError::Corrupt(
                "release beyond the published bytes of the ring",
            ));
        }
        self.head += n;
        // SYNC: Release, paired with the Acquire load of `head` in Writer::free.
        self.ring
            .control()
            .consumer
            .head
            .store(self.head, Ordering::Release);
        Ok(())
    }
}

impl Writer {
    /// Lends `len` bytes of free space at `offset` past the tail (no wrap) to `fill`,
    /// to encode a frame in place.
    ///
    /// # Errors
    ///
    /// `Corrupt` if the range is not free or crosses the end; `fill` is not called then.
    pub fn fill<R>(
        &mut self,
        offset: u64,
        len: u64,
        fill: impl FnOnce(&mut [u8]) -> R,
    ) -> Result<R, TransportError> {
        if offset + len > self.free()? {
            return Err(TransportError::Corrupt(
                "write beyond the free space of the ring",
            ));
        }
        let pos = self.ring.position(self.tail + offset, len)?;
        let start = self.ring.base.as_ptr().wrapping_add(pos);
        // SAFETY: `start..start+len` is inside the mapping (checked by `position`), kept
        // alive by `segment`; it is free space (checked), which the protocol gives to the
        // writer alone until it publishes, and `&mut self` keeps any other borrow of this
        // Writer out while `fill` runs. A peer that breaks the protocol can only change
        // plain bytes, for which every value is valid.
        let space = unsafe { std::slice::from_raw_parts_mut(start, len as usize) };
        Ok(fill(space))
    }

    /// Writes the little-endian `u32` at `offset` past the tail (see [`Writer::write`]).
    ///
    /// # Errors
    ///
    /// As [`Writer::write`].
    pub fn write_u32(&mut self, offset: u64, value: u32) -> Result<(), TransportError> {
        self.write(offset, &value.to_le_bytes())
    }
}
