//! Length-prefixed frames over byte streams (pipes, FIFOs, UNIX sockets, TCP).
//!
//! ```text
//! ┌──────────────┬───────────────────────────┐
//! │ len: u32 LE  │ len bytes of frame        │
//! └──────────────┴───────────────────────────┘
//! ```
//!
//! The reader never trusts a length: one over `max_frame` is refused before anything is
//! allocated for it, and the buffer grows only as bytes actually arrive (at most twice
//! what has been received), so a peer's claim alone cannot make us allocate.
//! Small frames cost one `read` each (or none, when an earlier read already brought
//! them); the writer sends prefix and frame with one `writev`.

use std::io::{self, IoSlice, Write};

use crate::error::TransportError;

/// Size of the length prefix.
pub const LEN_PREFIX: usize = 4;

/// Default largest frame: 16 MiB.
pub const DEFAULT_MAX_FRAME: usize = 16 << 20;

/// Size the read buffer starts at, and the smallest step it grows by.
const INITIAL_BUFFER: usize = 64 << 10;

/// Checks a frame length against a limit.
///
/// # Errors
///
/// [`TransportError::FrameTooLarge`] when `len > max`.
pub fn check_len(len: usize, max: usize) -> Result<(), TransportError> {
    if len > max {
        return Err(TransportError::FrameTooLarge {
            len: len as u64,
            max,
        });
    }
    Ok(())
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
    let len = u32::try_from(frame.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "frame over 4 GiB"))?;
    let prefix = len.to_le_bytes();
    let mut slices = [IoSlice::new(&prefix), IoSlice::new(frame)];
    let mut bufs = &mut slices[..];
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
}

impl FrameReader {
    /// A reader refusing frames over `max_frame` bytes.
    pub fn new(max_frame: usize) -> Self {
        FrameReader {
            buf: vec![0; INITIAL_BUFFER.min(max_frame + LEN_PREFIX)],
            start: 0,
            end: 0,
            handed_out: 0,
            max_frame,
            out_of_sync: false,
        }
    }

    /// The largest frame this reader accepts.
    pub fn max_frame(&self) -> usize {
        self.max_frame
    }

    /// Whether a whole frame beyond the one last returned is already buffered.
    pub fn has_buffered_frame(&self) -> bool {
        let start = self.start + self.handed_out;
        let avail = self.end - start;
        if avail < LEN_PREFIX {
            return false;
        }
        let len = Self::len_at(&self.buf, start);
        avail >= LEN_PREFIX + len
    }

    fn len_at(buf: &[u8], at: usize) -> usize {
        let mut prefix = [0u8; LEN_PREFIX];
        prefix.copy_from_slice(&buf[at..at + LEN_PREFIX]);
        u32::from_le_bytes(prefix) as usize
    }

    /// Returns the next frame, calling `fill` to read more bytes when needed.
    ///
    /// `fill` reads into the given buffer like [`io::Read::read`] and returns the count
    /// (0 at end of stream) or an error (e.g. `TimedOut` when a deadline passed). The
    /// returned slice is valid until the next call.
    ///
    /// # Errors
    ///
    /// - [`TransportError::Closed`] at end of stream (also in the middle of a frame);
    /// - [`TransportError::FrameTooLarge`] for a length over `max_frame`; the stream
    ///   is out of sync after that and later calls return [`TransportError::Corrupt`];
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
        if self.out_of_sync {
            return Err(TransportError::Corrupt(
                "stream out of sync after an oversized frame header",
            ));
        }
        self.start += std::mem::take(&mut self.handed_out);
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
        loop {
            let avail = self.end - self.start;
            let need = if avail >= LEN_PREFIX {
                let len = Self::len_at(&self.buf, self.start);
                if let Err(e) = check_len(len, self.max_frame) {
                    self.out_of_sync = true;
                    return Err(e);
                }
                let total = LEN_PREFIX + len;
                if avail >= total {
                    self.handed_out = total;
                    return Ok(&self.buf[self.start + LEN_PREFIX..self.start + total]);
                }
                total
            } else {
                LEN_PREFIX
            };
            self.make_room(need);
            let n = fill(&mut self.buf[self.end..])?;
            if n == 0 {
                return Err(TransportError::Closed);
            }
            self.end += n;
        }
    }

    /// Ensures free space after `end`, keeping at most twice the bytes received.
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
            assert!(
                matches!(err, TransportError::FrameTooLarge { len, max: 1024 } if len == claim as u64)
            );
            assert!(
                r.buf.len() <= 1024 + LEN_PREFIX,
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
