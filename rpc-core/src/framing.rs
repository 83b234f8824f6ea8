//! Length-prefixed frames over byte streams (pipes, FIFOs, UNIX sockets, TCP).
//!
//! ```text
//! whole  ┌──────────────┬───────────────────────────┐
//!        │ len: u32 LE  │ len bytes of frame        │
//!        └──────────────┴───────────────────────────┘
//! split  ┌──────────────────┬──────────────┬───────────┬─────────────────────┐
//!        │ len | 1<<31: u32 │ head_len: u32│ head      │ len - head_len bytes│
//!        └──────────────────┴──────────────┴───────────┴─────────────────────┘
//! ```
//!
//! A split frame is one whose sender gave it as a head and a large tail
//! ([`write_frame_parts`]): the bytes of a byte string that ends the frame. The reader
//! then receives the tail straight into a vector of its own that the decoder keeps (a
//! `Vec<u8>` argument or return value), instead of into its buffer and out again by a
//! copy. The frame's bytes are the same as if it had been sent whole; the top bit of
//! the length is why frames are limited to 2 GiB - 1.
//!
//! The reader never trusts a length: one over `max_frame` is refused before anything is
//! allocated for it, and its buffer grows only as bytes actually arrive (at most twice
//! what has been received), so a peer's claim alone cannot make us allocate. A split
//! frame's tail vector likewise: it starts at [`TAIL_STEP`] (or the announced size, if
//! smaller) and at most doubles with what arrived, and nothing is zeroed ahead of the
//! bytes. Eight bytes claiming a 16 MiB tail cost at most [`TAIL_STEP`] of address space,
//! and only the pages the bytes touch.
//! Small frames cost one `read` each (or none, when an earlier read already brought
//! them); the writer sends prefix and frame with one `writev`.

use std::io::{self, IoSlice, Write};

use crate::buf::Payload;
use crate::error::TransportError;
pub use crate::transport::{DEFAULT_MAX_FRAME, check_len};

/// Size of the length prefix.
pub const LEN_PREFIX: usize = 4;

/// Size of a split frame's prefix: the length, then the head's length.
pub const SPLIT_PREFIX: usize = 8;

/// The bit of the length prefix that marks a split frame.
pub const SPLIT_FLAG: u32 = 1 << 31;

pub use crate::limits::MAX_FRAME_LIMIT;

// The largest frame a length prefix can carry is what the split bit leaves.
const _: () = assert!(MAX_FRAME_LIMIT == (SPLIT_FLAG - 1) as usize);

/// Tails from this size on are sent split; smaller ones are cheaper to copy.
pub const SPLIT_MIN: usize = 64 << 10;

/// Size the read buffer starts at, and the smallest step it grows by.
const INITIAL_BUFFER: usize = 64 << 10;

/// A split frame's tail vector is first reserved at most this large, then grows at most
/// twofold with the bytes received: a 1 MiB byte string arrives in one reservation, a
/// lying length claim reserves no more than this.
pub const TAIL_STEP: usize = 1 << 20;

/// Makes room in `tail` for more of a tail of `total` bytes: spare capacity of at most
/// [`TAIL_STEP`] or the bytes already received, whichever is larger, never beyond
/// `total`. Does nothing while spare capacity is left.
pub fn reserve_tail(tail: &mut Vec<u8>, total: usize) {
    if tail.capacity() > tail.len() {
        return;
    }
    let step = tail
        .len()
        .max(TAIL_STEP)
        .min(total.saturating_sub(tail.len()));
    tail.reserve_exact(step);
}

/// Writes one frame (prefix and bytes) with as few `writev` calls as the OS allows,
/// normally one.
///
/// The caller has checked `frame.len()` against the limit (see [`check_len`]).
///
/// # Errors
///
/// The OS error of the failed write; `WriteZero` if the OS accepted nothing.
///
/// # Examples
///
/// ```
/// let mut out = Vec::new();
/// rpc_core::framing::write_frame(&mut out, b"hi").unwrap();
/// assert_eq!(out, [2, 0, 0, 0, b'h', b'i']);
/// ```
pub fn write_frame(w: &mut impl Write, frame: &[u8]) -> io::Result<()> {
    write_frame_parts(w, frame, &[])
}

/// Writes one frame made of `head` then `tail` without joining them: whole when `tail`
/// is under [`SPLIT_MIN`], else split, so that the reader can receive `tail` into a
/// vector of its own. One `writev` where the OS takes it all.
///
/// The caller has checked the joined length against the limit (see [`check_len`]).
///
/// # Errors
///
/// As [`write_frame`]; `InvalidInput` for a frame over [`MAX_FRAME_LIMIT`].
///
/// # Examples
///
/// ```
/// use rpc_core::framing::{FrameReader, write_frame_parts};
/// let tail = vec![7u8; 100_000];
/// let mut out = Vec::new();
/// write_frame_parts(&mut out, b"head", &tail).unwrap();
/// let mut src = &out[..];
/// let mut reader = FrameReader::new(1 << 20);
/// let frame = reader.next_frame(|b| Ok(std::io::Read::read(&mut src, b).unwrap())).unwrap();
/// assert_eq!((&frame[..4], frame.len()), (&b"head"[..], 100_004));
/// ```
pub fn write_frame_parts(w: &mut impl Write, head: &[u8], tail: &[u8]) -> io::Result<()> {
    let prefix = Prefix::new(head.len(), tail.len())?;
    let mut slices = [
        IoSlice::new(prefix.bytes()),
        IoSlice::new(head),
        IoSlice::new(tail),
    ];
    // No empty iovec for the kernel to walk when there is no tail.
    let used = if tail.is_empty() { 2 } else { 3 };
    let mut bufs = &mut slices[..used];
    while !bufs.is_empty() {
        match w.write_vectored(bufs) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => IoSlice::advance_slices(&mut bufs, n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// The length prefix of a frame sent as `head` then `tail` (split when the tail is
/// [`SPLIT_MIN`] or more), for writers that gather the three parts themselves.
#[derive(Debug, Clone, Copy)]
pub struct Prefix {
    bytes: [u8; SPLIT_PREFIX],
    len: usize,
}

impl Prefix {
    /// The prefix of a frame of `head_len` then `tail_len` bytes.
    ///
    /// # Errors
    ///
    /// `InvalidInput` for a frame over [`MAX_FRAME_LIMIT`].
    pub fn new(head_len: usize, tail_len: usize) -> io::Result<Prefix> {
        let total = head_len + tail_len;
        if total > MAX_FRAME_LIMIT {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "frame over 2 GiB - 1",
            ));
        }
        let mut bytes = [0u8; SPLIT_PREFIX];
        let len = if tail_len >= SPLIT_MIN {
            bytes[..4].copy_from_slice(&(total as u32 | SPLIT_FLAG).to_le_bytes());
            bytes[4..].copy_from_slice(&(head_len as u32).to_le_bytes());
            SPLIT_PREFIX
        } else {
            bytes[..4].copy_from_slice(&(total as u32).to_le_bytes());
            LEN_PREFIX
        };
        Ok(Prefix { bytes, len })
    }

    /// The prefix's bytes, to write before the head.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

/// Splits a byte stream into frames, reusing one buffer.
///
/// A timed-out read keeps what arrived, so a later call continues the same frame.
#[derive(Debug)]
pub struct FrameReader {
    /// Fully initialised storage; `buf.len()` is the usable size.
    buf: Vec<u8>,
    /// First byte not yet consumed.
    start: usize,
    /// One past the last byte received.
    end: usize,
    /// Size of the frame handed out by the last call, consumed at the next call.
    handed_out: usize,
    max_frame: usize,
    /// Set after an oversized length: the stream can no longer be split into frames.
    out_of_sync: bool,
    /// The tail of the split frame being received, while it is incomplete; its head
    /// then ends the buffer.
    tail: Option<Vec<u8>>,
    /// A split frame joined, for callers that want frames whole.
    joined: Vec<u8>,
}

/// Reads into a buffer like [`io::Read::read`].
type Fill<'a> = dyn FnMut(&mut [u8]) -> Result<usize, TransportError> + 'a;

/// Appends at most the given count to a tail vector, given the plain reader too.
type FillTail<'a> =
    dyn FnMut(&mut Vec<u8>, usize, &mut Fill<'_>) -> Result<usize, TransportError> + 'a;

/// A frame's place in the buffer (its head's, for a split frame) and a split frame's tail.
type Parts = (std::ops::Range<usize>, Option<Vec<u8>>);

/// Reads a tail's next bytes with `fill`, which needs initialised memory: zeroes them
/// first (transports read into the vector's spare capacity instead).
fn fill_tail_zeroed(
    tail: &mut Vec<u8>,
    max: usize,
    fill: &mut Fill<'_>,
) -> Result<usize, TransportError> {
    let at = tail.len();
    // Zeroes only the room already reserved for the bytes to come (see `reserve_tail`),
    // never the whole claimed length.
    let room = (tail.capacity() - at).clamp(1, max);
    tail.resize(at + room, 0);
    let got = fill(&mut tail[at..]);
    tail.truncate(at + got.as_ref().map_or(0, |n| *n));
    got
}

/// Where the frame at the front of the buffer stands.
enum Front {
    /// Whole frame: bytes after the prefix.
    Whole { prefix: usize, len: usize },
    /// Split frame: head bytes after the prefix, then `tail` bytes.
    Split { head: usize, tail: usize },
    /// More bytes are needed, this many counting from the frame's start.
    Need(usize),
}

impl FrameReader {
    /// A reader refusing frames over `max_frame` bytes.
    pub fn new(max_frame: usize) -> Self {
        FrameReader {
            buf: vec![0; INITIAL_BUFFER.min(max_frame + SPLIT_PREFIX)],
            start: 0,
            end: 0,
            handed_out: 0,
            max_frame: max_frame.min(MAX_FRAME_LIMIT),
            out_of_sync: false,
            tail: None,
            joined: Vec::new(),
        }
    }

    /// The largest frame this reader accepts.
    pub fn max_frame(&self) -> usize {
        self.max_frame
    }

    /// Refuses frames over `max_frame` bytes from the next frame on (e.g. only small
    /// ones during a handshake).
    pub fn set_max_frame(&mut self, max_frame: usize) {
        self.max_frame = max_frame.min(MAX_FRAME_LIMIT);
    }

    /// Whether a whole frame beyond the one last returned is already buffered.
    pub fn has_buffered_frame(&self) -> bool {
        let start = self.start + self.handed_out;
        let avail = self.end - start;
        if avail < LEN_PREFIX {
            return false;
        }
        let raw = Self::u32_at(&self.buf, start);
        let total = if raw & SPLIT_FLAG == 0 {
            LEN_PREFIX + raw as usize
        } else {
            SPLIT_PREFIX + (raw & !SPLIT_FLAG) as usize
        };
        avail >= total
    }

    fn u32_at(buf: &[u8], at: usize) -> u32 {
        let mut bytes = [0u8; 4];
        bytes.copy_from_slice(&buf[at..at + 4]);
        u32::from_le_bytes(bytes)
    }

    /// Returns the next frame whole, calling `fill` to read more bytes when needed.
    ///
    /// `fill` reads into the given buffer like [`io::Read::read`] and returns the count
    /// (0 at end of stream) or an error (e.g. `TimedOut` when a deadline passed). The
    /// returned slice is valid until the next call. A split frame is joined (a copy;
    /// [`FrameReader::next_split`] avoids it).
    ///
    /// # Errors
    ///
    /// - [`TransportError::Closed`] at end of stream (also in the middle of a frame);
    /// - [`TransportError::FrameTooLarge`] for a length over `max_frame`; the stream
    ///   is out of sync after that and later calls return [`TransportError::Corrupt`];
    /// - [`TransportError::Corrupt`] for a split frame whose head is longer than it;
    /// - whatever `fill` returns.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::io::Read;
    /// use rpc_core::framing::FrameReader;
    /// let mut src: &[u8] = &[1, 0, 0, 0, 7, 0, 0, 0, 0];
    /// let mut reader = FrameReader::new(1024);
    /// let mut fill = |b: &mut [u8]| Ok(src.read(b).unwrap());
    /// assert_eq!(reader.next_frame(&mut fill).unwrap(), [7]);
    /// assert_eq!(reader.next_frame(&mut fill).unwrap(), [] as [u8; 0]);
    /// ```
    pub fn next_frame(
        &mut self,
        mut fill: impl FnMut(&mut [u8]) -> Result<usize, TransportError>,
    ) -> Result<&[u8], TransportError> {
        let (head, tail) = self.next_parts(&mut fill, &mut fill_tail_zeroed)?;
        match tail {
            None => Ok(&self.buf[head]),
            Some(tail) => {
                self.joined.clear();
                self.joined.extend_from_slice(&self.buf[head]);
                self.joined.extend_from_slice(&tail);
                Ok(&self.joined)
            }
        }
    }

    /// Returns the next frame as a [`Payload`]: a split frame's tail arrives in a vector
    /// of its own, read into by `fill_tail`, which appends at most the given number of
    /// bytes to the vector (within its capacity) and returns how many (0 at end of
    /// stream). Other bytes are read with `fill`, as for [`FrameReader::next_frame`].
    ///
    /// # Errors
    ///
    /// As [`FrameReader::next_frame`].
    pub fn next_split(
        &mut self,
        mut fill: impl FnMut(&mut [u8]) -> Result<usize, TransportError>,
        mut fill_tail: impl FnMut(&mut Vec<u8>, usize) -> Result<usize, TransportError>,
    ) -> Result<Payload<'_>, TransportError> {
        let (head, tail) = self.next_parts(&mut fill, &mut |t, max, _| fill_tail(t, max))?;
        Ok(Payload {
            head: &self.buf[head],
            tail,
        })
    }

    fn next_parts(
        &mut self,
        fill: &mut Fill<'_>,
        fill_tail: &mut FillTail<'_>,
    ) -> Result<Parts, TransportError> {
        if self.out_of_sync {
            return Err(TransportError::Corrupt(
                "stream out of sync after a bad frame header",
            ));
        }
        self.start += std::mem::take(&mut self.handed_out);
        if self.start == self.end && self.tail.is_none() {
            self.start = 0;
            self.end = 0;
        }
        loop {
            let need = match self.front() {
                Err(e) => {
                    self.out_of_sync = true;
                    return Err(e);
                }
                Ok(Front::Whole { prefix, len }) => {
                    self.handed_out = prefix + len;
                    return Ok((self.start + prefix..self.start + prefix + len, None));
                }
                Ok(Front::Split { head, tail }) => {
                    return self.finish_split(head, tail, fill, fill_tail);
                }
                Ok(Front::Need(need)) => need,
            };
            self.make_room(need);
            let n = fill(&mut self.buf[self.end..])?;
            if n == 0 {
                return Err(TransportError::Closed);
            }
            self.end += n;
        }
    }

    /// Parses the frame at `start`, as far as the buffered bytes allow.
    fn front(&self) -> Result<Front, TransportError> {
        let avail = self.end - self.start;
        if avail < LEN_PREFIX {
            return Ok(Front::Need(LEN_PREFIX));
        }
        let raw = Self::u32_at(&self.buf, self.start);
        let len = (raw & !SPLIT_FLAG) as usize;
        check_len(len, self.max_frame)?;
        if raw & SPLIT_FLAG == 0 {
            return Ok(if avail >= LEN_PREFIX + len {
                Front::Whole {
                    prefix: LEN_PREFIX,
                    len,
                }
            } else {
                Front::Need(LEN_PREFIX + len)
            });
        }
        if avail < SPLIT_PREFIX {
            return Ok(Front::Need(SPLIT_PREFIX));
        }
        let head = Self::u32_at(&self.buf, self.start + LEN_PREFIX) as usize;
        if head > len {
            return Err(TransportError::Corrupt(
                "a split frame's head is longer than the frame",
            ));
        }
        Ok(if avail >= SPLIT_PREFIX + head {
            Front::Split {
                head,
                tail: len - head,
            }
        } else {
            Front::Need(SPLIT_PREFIX + head)
        })
    }

    /// With a split frame's head buffered: moves the tail bytes already buffered into
    /// the tail vector, then reads the rest straight into it.
    fn finish_split(
        &mut self,
        head: usize,
        tail_len: usize,
        fill: &mut Fill<'_>,
        fill_tail: &mut FillTail<'_>,
    ) -> Result<Parts, TransportError> {
        let head_end = self.start + SPLIT_PREFIX + head;
        let mut tail = match self.tail.take() {
            Some(partial) => partial,
            None => {
                let buffered = (self.end - head_end).min(tail_len);
                let mut tail = Vec::new();
                reserve_tail(&mut tail, tail_len);
                tail.reserve_exact(buffered);
                tail.extend_from_slice(&self.buf[head_end..head_end + buffered]);
                if buffered < tail_len {
                    // Everything buffered after the head was the tail's.
                    self.end = head_end;
                }
                tail
            }
        };
        if tail.len() == tail_len {
            // Wholly buffered: consumed with the head.
            self.handed_out = SPLIT_PREFIX + head + tail_len;
            return Ok((self.start + SPLIT_PREFIX..head_end, Some(tail)));
        }
        while tail.len() < tail_len {
            let want = tail_len - tail.len();
            reserve_tail(&mut tail, tail_len);
            match fill_tail(&mut tail, want, fill) {
                Ok(0) => return Err(TransportError::Closed),
                Ok(_) => {}
                Err(e) => {
                    // Kept for the next call, which continues this frame.
                    self.tail = Some(tail);
                    return Err(e);
                }
            }
        }
        self.handed_out = SPLIT_PREFIX + head;
        Ok((self.start + SPLIT_PREFIX..head_end, Some(tail)))
    }

    /// Ensures room for `need` bytes from `start`, keeping at most twice the bytes
    /// received.
    fn make_room(&mut self, need: usize) {
        if self.start + need <= self.buf.len() {
            return;
        }
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.end == self.buf.len() {
            let grown = (self.buf.len() * 2).max(INITIAL_BUFFER).min(need);
            self.buf.resize(grown, 0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn framed(frames: &[&[u8]]) -> Vec<u8> {
        let mut out = Vec::new();
        for f in frames {
            write_frame(&mut out, f).unwrap();
        }
        out
    }

    /// A source that hands out at most `step` bytes per read.
    fn dribble(
        mut data: &[u8],
        step: usize,
    ) -> impl FnMut(&mut [u8]) -> Result<usize, TransportError> {
        move |b: &mut [u8]| {
            let n = step.min(b.len()).min(data.len());
            b[..n].copy_from_slice(&data[..n]);
            data = &data[n..];
            Ok(n)
        }
    }

    #[test]
    fn frames_split_across_one_byte_reads_arrive_whole() {
        let big = vec![0x5A; 200_000];
        let data = framed(&[b"a", b"", &big, b"tail"]);
        let mut r = FrameReader::new(DEFAULT_MAX_FRAME);
        let mut fill = dribble(&data, 1);
        assert_eq!(r.next_frame(&mut fill).unwrap(), b"a");
        assert_eq!(r.next_frame(&mut fill).unwrap(), b"");
        assert_eq!(r.next_frame(&mut fill).unwrap(), &big[..]);
        assert_eq!(r.next_frame(&mut fill).unwrap(), b"tail");
        assert!(matches!(
            r.next_frame(&mut fill),
            Err(TransportError::Closed)
        ));
    }

    #[test]
    fn many_small_frames_come_from_one_read() {
        let data = framed(&[b"one", b"two", b"three"]);
        let mut r = FrameReader::new(1024);
        let mut reads = 0;
        let mut src = &data[..];
        let mut fill = |b: &mut [u8]| {
            reads += 1;
            let n = b.len().min(src.len());
            b[..n].copy_from_slice(&src[..n]);
            src = &src[n..];
            Ok(n)
        };
        assert_eq!(r.next_frame(&mut fill).unwrap(), b"one");
        assert!(r.has_buffered_frame());
        assert_eq!(r.next_frame(&mut fill).unwrap(), b"two");
        assert_eq!(r.next_frame(&mut fill).unwrap(), b"three");
        assert!(!r.has_buffered_frame());
        assert_eq!(reads, 1);
    }

    #[test]
    fn oversized_length_is_refused_before_allocating() {
        for claim in [u32::MAX, 1025] {
            let mut data = claim.to_le_bytes().to_vec();
            data.extend_from_slice(&[0; 16]);
            let mut r = FrameReader::new(1024);
            let err = r.next_frame(dribble(&data, 64)).unwrap_err();
            let announced = u64::from(claim & !SPLIT_FLAG);
            assert!(
                matches!(err, TransportError::FrameTooLarge { len, max: 1024 } if len == announced)
            );
            assert!(
                r.buf.len() <= 1024 + SPLIT_PREFIX,
                "buffer grew to {}",
                r.buf.len()
            );
            assert!(matches!(
                r.next_frame(dribble(&[], 1)),
                Err(TransportError::Corrupt(_))
            ));
        }
    }

    #[test]
    fn buffer_grows_with_received_bytes_not_with_the_claim() {
        let mut data = (8u32 << 20).to_le_bytes().to_vec();
        data.extend_from_slice(&[1; 1000]);
        let mut r = FrameReader::new(DEFAULT_MAX_FRAME);
        assert!(matches!(
            r.next_frame(dribble(&data, 4096)),
            Err(TransportError::Closed)
        ));
        assert!(
            r.buf.len() <= INITIAL_BUFFER,
            "buffer grew to {}",
            r.buf.len()
        );
    }

    /// A split header claiming almost 16 MiB, then 100 bytes, then a read that times
    /// out: read split or joined, the reader reserved at most one [`TAIL_STEP`] and
    /// zeroed no more than that.
    #[test]
    fn a_lying_split_claim_reserves_at_most_one_step() {
        let mut data = (((16u32 << 20) - 16) | SPLIT_FLAG).to_le_bytes().to_vec();
        data.extend_from_slice(&0u32.to_le_bytes());
        data.extend_from_slice(&[1; 100]);
        for joined in [false, true] {
            let src = std::cell::RefCell::new(&data[..]);
            let fill = |b: &mut [u8]| {
                let mut s = src.borrow_mut();
                if s.is_empty() {
                    return Err(TransportError::TimedOut);
                }
                let n = b.len().min(s.len());
                b[..n].copy_from_slice(&s[..n]);
                *s = &s[n..];
                Ok(n)
            };
            let mut r = FrameReader::new(DEFAULT_MAX_FRAME);
            let err = if joined {
                r.next_frame(fill).unwrap_err()
            } else {
                let fill_tail = |t: &mut Vec<u8>, max: usize| {
                    assert!(t.capacity() > t.len(), "room is reserved before a read");
                    let mut s = src.borrow_mut();
                    if s.is_empty() {
                        return Err(TransportError::TimedOut);
                    }
                    let n = max.min(s.len()).min(t.capacity() - t.len());
                    t.extend_from_slice(&s[..n]);
                    *s = &s[n..];
                    Ok(n)
                };
                r.next_split(fill, fill_tail).unwrap_err()
            };
            assert!(matches!(err, TransportError::TimedOut));
            let tail = r.tail.as_ref().expect("the partial tail is kept");
            assert_eq!(tail.len(), 100);
            assert!(
                tail.capacity() <= TAIL_STEP,
                "joined {joined}: reserved {}",
                tail.capacity()
            );
        }
    }

    #[test]
    fn a_lowered_limit_refuses_what_the_old_one_took() {
        let data = framed(&[&[0; 100]]);
        let mut r = FrameReader::new(1024);
        r.set_max_frame(64);
        assert!(matches!(
            r.next_frame(dribble(&data, 1000)),
            Err(TransportError::FrameTooLarge { len: 100, max: 64 })
        ));
    }

    #[test]
    fn truncated_frame_is_closed() {
        let mut data = framed(&[b"hello"]);
        data.truncate(6);
        let mut r = FrameReader::new(1024);
        assert!(matches!(
            r.next_frame(dribble(&data, 3)),
            Err(TransportError::Closed)
        ));
    }

    #[test]
    fn timeout_mid_frame_keeps_partial_bytes() {
        let data = framed(&[b"abcdef"]);
        let mut r = FrameReader::new(1024);
        let mut first = true;
        let half = &data[..5];
        let err = r
            .next_frame(|b| {
                if first {
                    first = false;
                    b[..half.len()].copy_from_slice(half);
                    Ok(half.len())
                } else {
                    Err(TransportError::TimedOut)
                }
            })
            .unwrap_err();
        assert!(matches!(err, TransportError::TimedOut));
        assert_eq!(r.next_frame(dribble(&data[5..], 100)).unwrap(), b"abcdef");
    }

    fn split_framed(head: &[u8], tail: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        write_frame_parts(&mut out, head, tail).unwrap();
        out
    }

    fn pattern(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7 + i / 251) as u8).collect()
    }

    /// Appends up to `max` bytes of `data` per call, at most `step` at a time.
    fn dribble_tail(
        data: &std::cell::RefCell<&[u8]>,
        step: usize,
    ) -> impl FnMut(&mut Vec<u8>, usize) -> Result<usize, TransportError> {
        move |tail: &mut Vec<u8>, max: usize| {
            let mut src = data.borrow_mut();
            let n = step.min(max).min(src.len());
            tail.extend_from_slice(&src[..n]);
            *src = &src[n..];
            Ok(n)
        }
    }

    #[test]
    fn small_tails_are_sent_whole_and_large_ones_split() {
        let tail = pattern(SPLIT_MIN - 1);
        assert_eq!(
            split_framed(b"hd", &tail),
            framed(&[&[b"hd", &tail[..]].concat()])
        );
        let tail = pattern(SPLIT_MIN);
        let out = split_framed(b"hd", &tail);
        let len = (2 + SPLIT_MIN) as u32;
        assert_eq!(out[..4], (len | SPLIT_FLAG).to_le_bytes());
        assert_eq!(out[4..8], 2u32.to_le_bytes());
        assert_eq!(&out[8..10], b"hd");
        assert_eq!(&out[10..], &tail[..]);
    }

    #[test]
    fn split_frames_arrive_with_their_tail_apart_or_joined() {
        // Split frames may be of any size on the wire; only the writer waits for
        // SPLIT_MIN. A small one is read a byte at a time.
        for (tail, step) in [
            (pattern(9), 1),
            (pattern(SPLIT_MIN + 12_345), 7),
            (pattern(SPLIT_MIN + 12_345), 4096),
            (pattern(SPLIT_MIN + 12_345), 1 << 20),
        ] {
            let mut data = small_split(b"head", &tail);
            data.extend(framed(&[b"after"]));
            data.extend(small_split(b"", &tail));
            // Split: the head through `fill`, the tail through `fill_tail`.
            let src = std::cell::RefCell::new(&data[..]);
            let mut r = FrameReader::new(DEFAULT_MAX_FRAME);
            let fill = |b: &mut [u8]| {
                let mut s = src.borrow_mut();
                let n = step.min(b.len()).min(s.len());
                b[..n].copy_from_slice(&s[..n]);
                *s = &s[n..];
                Ok(n)
            };
            let frame = r.next_split(fill, dribble_tail(&src, step)).unwrap();
            assert_eq!(frame.head, b"head");
            assert_eq!(frame.tail.as_deref(), Some(&tail[..]), "step {step}");
            let frame = r.next_split(fill, dribble_tail(&src, step)).unwrap();
            assert_eq!((frame.head, frame.tail), (&b"after"[..], None));
            let frame = r.next_split(fill, dribble_tail(&src, step)).unwrap();
            assert_eq!(frame.head, b"");
            assert_eq!(frame.tail.as_deref(), Some(&tail[..]));
            assert!(matches!(
                r.next_split(fill, dribble_tail(&src, step)),
                Err(TransportError::Closed)
            ));
            // Joined, for callers that want frames whole.
            let mut r = FrameReader::new(DEFAULT_MAX_FRAME);
            let mut fill = dribble(&data, step);
            assert_eq!(
                r.next_frame(&mut fill).unwrap(),
                &[&b"head"[..], &tail].concat()[..]
            );
            assert_eq!(r.next_frame(&mut fill).unwrap(), b"after");
            assert_eq!(r.next_frame(&mut fill).unwrap(), &tail[..]);
        }
    }

    /// A split frame of any size, as the writer makes only from SPLIT_MIN on.
    fn small_split(head: &[u8], tail: &[u8]) -> Vec<u8> {
        let len = (head.len() + tail.len()) as u32;
        let mut out = (len | SPLIT_FLAG).to_le_bytes().to_vec();
        out.extend_from_slice(&(head.len() as u32).to_le_bytes());
        out.extend_from_slice(head);
        out.extend_from_slice(tail);
        out
    }

    #[test]
    fn a_buffered_split_frame_counts_as_buffered() {
        let mut data = framed(&[b"x"]);
        data.extend(small_split(b"h", b"tail"));
        let mut r = FrameReader::new(DEFAULT_MAX_FRAME);
        let mut fill = dribble(&data, 1 << 20);
        assert_eq!(r.next_frame(&mut fill).unwrap(), b"x");
        assert!(r.has_buffered_frame());
    }

    #[test]
    fn timeout_mid_tail_keeps_what_arrived() {
        let tail = pattern(3 * SPLIT_MIN);
        let data = split_framed(b"head", &tail);
        let cut = data.len() / 2;
        let src = std::cell::RefCell::new(&data[..cut]);
        let mut r = FrameReader::new(DEFAULT_MAX_FRAME);
        let fill = |b: &mut [u8]| {
            let mut s = src.borrow_mut();
            if s.is_empty() {
                return Err(TransportError::TimedOut);
            }
            let n = b.len().min(s.len()).min(1000);
            b[..n].copy_from_slice(&s[..n]);
            *s = &s[n..];
            Ok(n)
        };
        let mut fill_tail = |t: &mut Vec<u8>, max: usize| {
            let mut s = src.borrow_mut();
            if s.is_empty() {
                return Err(TransportError::TimedOut);
            }
            let n = max.min(s.len()).min(5000);
            t.extend_from_slice(&s[..n]);
            *s = &s[n..];
            Ok(n)
        };
        assert!(matches!(
            r.next_split(fill, &mut fill_tail),
            Err(TransportError::TimedOut)
        ));
        *src.borrow_mut() = &data[cut..];
        let frame = r.next_split(fill, &mut fill_tail).unwrap();
        assert_eq!(frame.head, b"head");
        assert_eq!(frame.tail.as_deref(), Some(&tail[..]));
    }

    #[test]
    fn a_split_head_longer_than_its_frame_is_corrupt() {
        let mut data = (10 | SPLIT_FLAG).to_le_bytes().to_vec();
        data.extend_from_slice(&11u32.to_le_bytes());
        data.extend_from_slice(&[0; 32]);
        let mut r = FrameReader::new(1024);
        assert!(matches!(
            r.next_frame(dribble(&data, 64)),
            Err(TransportError::Corrupt(_))
        ));
        assert!(matches!(
            r.next_frame(dribble(&data, 64)),
            Err(TransportError::Corrupt(_))
        ));
    }

    #[test]
    fn write_frame_survives_short_writes() {
        struct Short(Vec<u8>);
        impl Write for Short {
            fn write(&mut self, b: &[u8]) -> io::Result<usize> {
                let n = b.len().min(3);
                self.0.extend_from_slice(&b[..n]);
                Ok(n)
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let mut w = Short(Vec::new());
        write_frame(&mut w, b"0123456789").unwrap();
        assert_eq!(w.0, framed(&[b"0123456789"]));
    }
}
