//! The byte containers every layer shares: [`FrameBuf`], where an encoder writes a
//! frame, and [`Payload`], a received frame's bytes left to decode (its head, and the
//! tail a transport may have received apart). Nothing here knows of serde or of any
//! transport; the codec, a layer up, encodes into and decodes out of them.

use std::borrow::Cow;

use crate::error::CodecError;

/// Where an encoder writes a frame: a growable `Vec`, a fixed slice (straight into a
/// transport's own buffer, e.g. a shared-memory ring), or nowhere (counting bytes, to
/// reserve exactly that much first).
///
/// # Examples
///
/// ```
/// use rpc_core::codec::{FrameBuf, encode_frame};
/// let mut count = FrameBuf::counter();
/// encode_frame(&(7u32, "abc"), &mut count, "example").unwrap();
/// let mut space = vec![0u8; count.len()];
/// let mut out = FrameBuf::slice(&mut space);
/// encode_frame(&(7u32, "abc"), &mut out, "example").unwrap();
/// assert_eq!(out.len(), space.len());
/// ```
pub struct FrameBuf<'a> {
    sink: Sink<'a>,
}

enum Sink<'a> {
    Count(usize),
    Vec(&'a mut Vec<u8>),
    Slice { buf: &'a mut [u8], at: usize },
}

impl<'a> FrameBuf<'a> {
    /// Appends to `vec`.
    pub fn vec(vec: &'a mut Vec<u8>) -> Self {
        FrameBuf {
            sink: Sink::Vec(vec),
        }
    }

    /// Fills `buf` from its start; writing past its end is an error.
    pub fn slice(buf: &'a mut [u8]) -> Self {
        FrameBuf {
            sink: Sink::Slice { buf, at: 0 },
        }
    }

    /// Only counts.
    pub fn counter() -> FrameBuf<'static> {
        FrameBuf {
            sink: Sink::Count(0),
        }
    }

    /// Bytes written (or counted) so far; for a `vec` buffer, its whole length.
    pub fn len(&self) -> usize {
        match &self.sink {
            Sink::Count(n) => *n,
            Sink::Vec(v) => v.len(),
            Sink::Slice { at, .. } => *at,
        }
    }

    /// Whether nothing was written yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Appends raw bytes (already encoded, e.g. a byte string's contents after its
    /// length).
    ///
    /// # Errors
    ///
    /// [`CodecError::Encode`] if a slice buffer has no room left.
    #[inline]
    pub fn put(&mut self, bytes: &[u8]) -> Result<(), CodecError> {
        self.extend(bytes).map_err(|e| CodecError::Encode {
            what: "bulk bytes",
            source: Box::new(e),
        })
    }

    #[inline]
    pub(crate) fn extend(&mut self, data: &[u8]) -> postcard::Result<()> {
        match &mut self.sink {
            Sink::Count(n) => *n += data.len(),
            Sink::Vec(v) => v.extend_from_slice(data),
            Sink::Slice { buf, at } => {
                let end = *at + data.len();
                let dst = buf
                    .get_mut(*at..end)
                    .ok_or(postcard::Error::SerializeBufferFull)?;
                dst.copy_from_slice(data);
                *at = end;
            }
        }
        Ok(())
    }
}

/// The bytes of a received frame left to decode: `head`, borrowed from the receiver,
/// and, when the transport received the frame split, its `tail`: the contents of the
/// byte string the frame ends with, in a vector of its own that the decoder may keep.
///
/// The frame is `head` followed by `tail`; `head` ends with the byte string's length.
#[derive(Debug)]
pub struct Payload<'a> {
    /// The frame's first bytes (all of it when `tail` is `None`).
    pub head: &'a [u8],
    /// The rest of the frame, received into its own vector.
    pub tail: Option<Vec<u8>>,
}

impl<'a> Payload<'a> {
    /// A frame received whole.
    pub fn whole(frame: &'a [u8]) -> Self {
        Payload {
            head: frame,
            tail: None,
        }
    }

    /// Whether every byte was decoded.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.head.is_empty() && self.tail.is_none()
    }

    /// Bytes not decoded yet.
    pub fn len(&self) -> usize {
        self.head.len() + self.tail.as_ref().map_or(0, Vec::len)
    }

    /// The bytes in one slice: `head` itself when there is no tail, else `head` and
    /// `tail` joined into a new vector (a copy of both: for handshakes and tests; a
    /// decoder keeps the tail with `codec`'s `Payload::take_bytes` instead).
    ///
    /// # Examples
    ///
    /// ```
    /// use rpc_core::buf::Payload;
    /// let whole = Payload::whole(b"abc");
    /// assert_eq!(&*whole.into_contiguous(), b"abc");
    /// let split = Payload { head: b"ab", tail: Some(b"cd".to_vec()) };
    /// assert_eq!(&*split.into_contiguous(), b"abcd");
    /// ```
    pub fn into_contiguous(self) -> Cow<'a, [u8]> {
        match self.tail {
            None => Cow::Borrowed(self.head),
            Some(tail) => {
                let mut joined = Vec::with_capacity(self.head.len() + tail.len());
                joined.extend_from_slice(self.head);
                joined.extend_from_slice(&tail);
                Cow::Owned(joined)
            }
        }
    }
}
