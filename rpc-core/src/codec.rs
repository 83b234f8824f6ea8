//! The serialiser: postcard, behind [`CodecError`].
//!
//! Encoding appends to a caller-owned, reused `Vec<u8>` (no allocation once the buffer
//! has grown); decoding reads straight from the received frame.

use serde::Serialize;
use serde::de::{Deserialize, DeserializeOwned};

pub use crate::buf::{FrameBuf, Payload};
use crate::error::{CodecError, TransportError};
use crate::transport::FrameSender;

/// Appends postcard output to a borrowed `Vec<u8>`.
struct AppendTo<'a>(&'a mut Vec<u8>);

impl postcard::ser_flavors::Flavor for AppendTo<'_> {
    type Output = ();

    #[inline]
    fn try_push(&mut self, data: u8) -> postcard::Result<()> {
        self.0.push(data);
        Ok(())
    }

    #[inline]
    fn try_extend(&mut self, data: &[u8]) -> postcard::Result<()> {
        self.0.extend_from_slice(data);
        Ok(())
    }

    fn finalize(self) -> postcard::Result<()> {
        Ok(())
    }
}

struct FrameFlavor<'b, 'a>(&'b mut FrameBuf<'a>);

impl postcard::ser_flavors::Flavor for FrameFlavor<'_, '_> {
    type Output = ();

    #[inline]
    fn try_push(&mut self, data: u8) -> postcard::Result<()> {
        self.0.extend(&[data])
    }

    #[inline]
    fn try_extend(&mut self, data: &[u8]) -> postcard::Result<()> {
        self.0.extend(data)
    }

    fn finalize(self) -> postcard::Result<()> {
        Ok(())
    }
}

/// Frames up to this size are encoded into the first bytes of the scratch buffer and
/// sent from there, a byte string under it included; a byte string from this size on
/// is handed to the transport as a part of its own.
pub const SMALL_FRAME: usize = 4096;

/// Sends the frame `write` produces, followed by `bulk` (the contents of a byte string
/// whose length `write` ended with; empty for none), through `scratch`, a buffer
/// reused from call to call (the sequential path allocates nothing once it has grown):
///
/// - a `bulk` of [`SMALL_FRAME`] or more is never copied into `scratch`: `write`
///   encodes the rest there, and [`FrameSender::send_parts`] gets both as the frame's
///   two parts, the transport taking `bulk` from where it is;
/// - a frame that fits [`SMALL_FRAME`] is encoded into `scratch`, `bulk` copied
///   after, and sent in one part;
/// - a larger one is encoded straight into the transport's own buffer where it has one
///   ([`FrameSender::send_encoded`]: counted, then written in place), else into
///   `scratch` and sent.
///
/// `peer_limit` is the peer's `max_frame` where it is under the transport's own (the
/// handshake told it): a frame over it is refused, `FrameTooLarge` with that limit,
/// before anything is written. `None` leaves the check to the transport.
///
/// # Errors
///
/// `Ok(Err(_))` if encoding fails (nothing sent), `Err(_)` if sending fails.
pub fn send_frame(
    sender: &mut dyn FrameSender,
    scratch: &mut Vec<u8>,
    write: impl Fn(&mut FrameBuf<'_>) -> Result<(), CodecError>,
    bulk: &[u8],
    peer_limit: Option<usize>,
) -> Result<Result<(), CodecError>, TransportError> {
    let over = |len: usize| match peer_limit {
        Some(max) if len > max => Err(TransportError::FrameTooLarge {
            len: len as u64,
            max: max as u64,
        }),
        _ => Ok(()),
    };
    if bulk.len() >= SMALL_FRAME {
        scratch.clear();
        if let Err(e) = write(&mut FrameBuf::vec(scratch)) {
            return Ok(Err(e));
        }
        over(scratch.len() + bulk.len())?;
        return sender.send_parts(scratch, bulk).map(Ok);
    }
    // Bounded, so that a large frame is not encoded whole before it is known to be
    // large.
    if scratch.len() < SMALL_FRAME {
        scratch.resize(SMALL_FRAME, 0);
    }
    let mut small = FrameBuf::slice(&mut scratch[..SMALL_FRAME]);
    if write(&mut small).is_ok() && small.put(bulk).is_ok() {
        let n = small.len();
        over(n)?;
        return sender.send(&scratch[..n]).map(Ok);
    }
    // Larger (or an encoding error, which the passes below meet again).
    let mut whole = |out: &mut FrameBuf<'_>| {
        write(out)?;
        out.put(bulk)
    };
    if peer_limit.is_some() {
        // Counted first: under a peer's lower limit, before a byte goes.
        let mut count = FrameBuf::counter();
        if let Err(e) = whole(&mut count) {
            return Ok(Err(e));
        }
        over(count.len())?;
    }
    if let Some(sent) = sender.send_encoded(&mut whole) {
        return sent;
    }
    scratch.clear();
    if let Err(e) = whole(&mut FrameBuf::vec(scratch)) {
        return Ok(Err(e));
    }
    sender.send(scratch).map(Ok)
}

/// Writes the length that starts a byte string of `len` bytes (postcard's varint), so
/// that the bytes themselves can follow as a separate part.
///
/// # Errors
///
/// [`CodecError::Encode`] if a slice buffer is too small.
#[inline]
pub fn encode_bulk_len(len: usize, buf: &mut FrameBuf<'_>) -> Result<(), CodecError> {
    let mut bytes = [0u8; MAX_VARINT];
    let mut n = len as u64;
    let mut used = 0;
    loop {
        let low = (n & 0x7F) as u8;
        n >>= 7;
        if n == 0 {
            bytes[used] = low;
            used += 1;
            break;
        }
        bytes[used] = low | 0x80;
        used += 1;
    }
    buf.put(&bytes[..used])
}

/// Longest varint of a `u64`.
const MAX_VARINT: usize = 10;

/// Reads a byte string (postcard's varint length, then the bytes) off the front of
/// `bytes` without going through serde: the path every byte string argument and return
/// value (`Vec<u8>`, the facade's `Bytes`) takes.
#[inline]
fn take_byte_string(bytes: &mut &[u8], what: &'static str) -> Result<Vec<u8>, CodecError> {
    let (len, rest) = take_varint(bytes).ok_or_else(|| CodecError::Decode {
        what,
        source: "a byte string's length is not a valid varint".into(),
    })?;
    let (string, rest) = usize::try_from(len)
        .ok()
        .and_then(|len| rest.split_at_checked(len))
        .ok_or_else(|| CodecError::Decode {
            what,
            source: format!("a byte string of {len} bytes, but {} left", rest.len()).into(),
        })?;
    *bytes = rest;
    Ok(string.to_vec())
}

/// A LEB128 `u64` off the front of `bytes` (as postcard writes lengths), and the rest.
#[inline]
fn take_varint(bytes: &[u8]) -> Option<(u64, &[u8])> {
    let mut value = 0u64;
    for (i, &byte) in bytes.iter().enumerate().take(MAX_VARINT) {
        let bits = u64::from(byte & 0x7F);
        // The tenth byte may carry only the top bit of a u64.
        if i == MAX_VARINT - 1 && byte > 1 {
            return None;
        }
        value |= bits << (7 * i);
        if byte & 0x80 == 0 {
            return Some((value, &bytes[i + 1..]));
        }
    }
    None
}

/// Decoding a received payload.
impl Payload<'_> {
    /// Decodes one value that must fill the whole payload; a split payload is joined
    /// first (a copy: split frames are meant for [`Payload::take_bytes`]).
    ///
    /// # Errors
    ///
    /// [`CodecError::Decode`] if the bytes are not exactly one valid `T`.
    pub fn decode_all<T: DeserializeOwned>(self, what: &'static str) -> Result<T, CodecError> {
        decode_all(&self.into_contiguous(), what)
    }

    /// Decodes one value off the front of `head`, which a split payload's tail never
    /// belongs to.
    ///
    /// # Errors
    ///
    /// [`CodecError::Decode`] if `head` does not start with a valid `T`.
    pub fn decode_prefix<T: DeserializeOwned>(
        &mut self,
        what: &'static str,
    ) -> Result<T, CodecError> {
        decode_prefix(&mut self.head, what)
    }

    /// Takes a byte string off the front: the tail itself, with no copy, when what is
    /// left of `head` is exactly the tail's length; otherwise decoded from `head`.
    ///
    /// # Errors
    ///
    /// [`CodecError::Decode`] if the bytes are not a byte string.
    #[inline]
    pub fn take_bytes(&mut self, what: &'static str) -> Result<Vec<u8>, CodecError> {
        if let Some(tail) = self.tail.take() {
            match take_varint(self.head) {
                Some((len, rest)) if rest.is_empty() && len == tail.len() as u64 => {
                    self.head = rest;
                    return Ok(tail);
                }
                _ => self.tail = Some(tail),
            }
        }
        take_byte_string(&mut self.head, what)
    }
}

/// Writes the encoding of `value` to `buf`.
///
/// # Errors
///
/// [`CodecError::Encode`] if the value's `Serialize` impl fails or a slice buffer is
/// too small.
pub fn encode_frame<T: Serialize + ?Sized>(
    value: &T,
    buf: &mut FrameBuf<'_>,
    what: &'static str,
) -> Result<(), CodecError> {
    postcard::serialize_with_flavor(value, FrameFlavor(buf)).map_err(|e| CodecError::Encode {
        what,
        source: Box::new(e),
    })
}

/// Appends the encoding of `value` to `buf`.
///
/// # Errors
///
/// [`CodecError::Encode`] if the value's `Serialize` impl fails.
///
/// # Examples
///
/// ```
/// let mut buf = Vec::new();
/// rpc_core::codec::encode_into(&(1u8, "hi"), &mut buf, "example").unwrap();
/// let (n, s): (u8, String) = rpc_core::codec::decode_all(&buf, "example").unwrap();
/// assert_eq!((n, s.as_str()), (1, "hi"));
/// ```
pub fn encode_into<T: Serialize + ?Sized>(
    value: &T,
    buf: &mut Vec<u8>,
    what: &'static str,
) -> Result<(), CodecError> {
    postcard::serialize_with_flavor(value, AppendTo(buf)).map_err(|e| CodecError::Encode {
        what,
        source: Box::new(e),
    })
}

/// Decodes one value from the front of `bytes` and advances `bytes` past it.
///
/// # Errors
///
/// [`CodecError::Decode`] if the bytes are not a valid encoding of `T`.
pub fn decode_prefix<'de, T: Deserialize<'de>>(
    bytes: &mut &'de [u8],
    what: &'static str,
) -> Result<T, CodecError> {
    let (value, rest) = postcard::take_from_bytes(bytes).map_err(|e| CodecError::Decode {
        what,
        source: Box::new(e),
    })?;
    *bytes = rest;
    Ok(value)
}

/// Decodes exactly one value that must fill all of `bytes`.
///
/// # Errors
///
/// [`CodecError::Decode`] if the bytes are not a valid encoding of `T` or bytes are left over.
pub fn decode_all<T: DeserializeOwned>(bytes: &[u8], what: &'static str) -> Result<T, CodecError> {
    let mut rest = bytes;
    let value = decode_prefix(&mut rest, what)?;
    if !rest.is_empty() {
        return Err(CodecError::Decode {
            what,
            source: format!("{} bytes left over after the value", rest.len()).into(),
        });
    }
    Ok(value)
}

/// Serialises a byte slice in one piece (serde's `serialize_bytes`).
///
/// postcard writes a byte string exactly as it writes a sequence of `u8` (a varint
/// length, then the bytes), so this is wire-compatible with `Vec<u8>`'s own impl, only
/// without a call per byte. Generated code uses it for byte string arguments
/// (`Vec<u8>`, the facade's `Bytes`), which is also how `Bytes` serialises.
#[derive(Debug, Clone, Copy)]
pub struct BytesRef<'a>(pub &'a [u8]);

impl Serialize for BytesRef<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(self.0)
    }
}

/// Deserialises a `Vec<u8>` in one piece; the counterpart of [`BytesRef`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ByteBuf(pub Vec<u8>);

impl<'de> Deserialize<'de> for ByteBuf {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = ByteBuf;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a byte string")
            }
            fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<ByteBuf, E> {
                Ok(ByteBuf(v.to_vec()))
            }
            fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<ByteBuf, E> {
                Ok(ByteBuf(v))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<ByteBuf, A::Error> {
                let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1 << 16));
                while let Some(b) = seq.next_element()? {
                    out.push(b);
                }
                Ok(ByteBuf(out))
            }
        }
        d.deserialize_byte_buf(Visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn encode_appends_and_decode_prefix_advances() {
        let mut buf = vec![0xAA];
        encode_into(&7u64, &mut buf, "a").unwrap();
        encode_into(&"text", &mut buf, "b").unwrap();
        let mut rest = &buf[1..];
        assert_eq!(decode_prefix::<u64>(&mut rest, "a").unwrap(), 7);
        assert_eq!(decode_prefix::<&str>(&mut rest, "b").unwrap(), "text");
        assert!(rest.is_empty());
    }

    #[test]
    fn separate_encodings_equal_tuple_encoding() {
        let mut parts = Vec::new();
        encode_into(&1i32, &mut parts, "x").unwrap();
        encode_into(&Some(vec![1u8, 2]), &mut parts, "x").unwrap();
        let mut tuple = Vec::new();
        encode_into(&(1i32, Some(vec![1u8, 2])), &mut tuple, "x").unwrap();
        assert_eq!(parts, tuple);
    }

    #[test]
    fn bytes_wrappers_are_wire_compatible_with_vec_u8() {
        for len in [0usize, 1, 127, 128, 70_000] {
            let v: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let mut as_vec = Vec::new();
            encode_into(&v, &mut as_vec, "v").unwrap();
            let mut as_bytes = Vec::new();
            encode_into(&BytesRef(&v), &mut as_bytes, "v").unwrap();
            assert_eq!(as_vec, as_bytes);
            assert_eq!(decode_all::<ByteBuf>(&as_vec, "v").unwrap().0, v);
            assert_eq!(decode_all::<Vec<u8>>(&as_bytes, "v").unwrap(), v);
        }
    }

    #[test]
    fn a_bulk_length_then_the_bytes_is_a_byte_vector() {
        for len in [0usize, 127, 128, 70_000] {
            let v: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let mut parts = Vec::new();
            encode_bulk_len(v.len(), &mut FrameBuf::vec(&mut parts)).unwrap();
            parts.extend_from_slice(&v);
            let mut whole = Vec::new();
            encode_into(&v, &mut whole, "v").unwrap();
            assert_eq!(parts, whole);
        }
    }

    #[test]
    fn varints_match_postcard_up_to_u64_max() {
        for n in [
            0u64,
            1,
            127,
            128,
            300,
            16_383,
            16_384,
            u64::from(u32::MAX),
            u64::MAX,
        ] {
            let mut ours = Vec::new();
            encode_bulk_len(n as usize, &mut FrameBuf::vec(&mut ours)).unwrap();
            let mut theirs = Vec::new();
            encode_into(&n, &mut theirs, "n").unwrap();
            assert_eq!(ours, theirs, "{n}");
            assert_eq!(take_varint(&ours), Some((n, &[][..])));
        }
        // Eleven bytes, or a tenth byte with more than the top bit: not a u64.
        assert_eq!(take_varint(&[0x80; 11]), None);
        assert_eq!(
            take_varint(&[0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x02]),
            None
        );
        assert_eq!(take_varint(&[0x80]), None);
    }

    #[test]
    fn payload_tail_is_taken_whole_only_when_it_is_the_byte_string_that_ends_it() {
        let tail = vec![9u8; 300];
        let mut head = Vec::new();
        encode_into(&5u32, &mut head, "n").unwrap();
        encode_bulk_len(tail.len(), &mut FrameBuf::vec(&mut head)).unwrap();
        let mut p = Payload {
            head: &head,
            tail: Some(tail.clone()),
        };
        assert_eq!(p.decode_prefix::<u32>("n").unwrap(), 5);
        assert_eq!(p.take_bytes("b").unwrap(), tail);
        assert!(p.is_empty());
        // Joined when decoded as a whole.
        let p = Payload {
            head: &head,
            tail: Some(tail.clone()),
        };
        assert_eq!(
            p.decode_all::<(u32, Vec<u8>)>("all").unwrap(),
            (5, tail.clone())
        );
        // A length that does not match the tail: not taken, and an error.
        let mut short = Vec::new();
        encode_bulk_len(299, &mut FrameBuf::vec(&mut short)).unwrap();
        let mut p = Payload {
            head: &short,
            tail: Some(tail),
        };
        assert!(p.take_bytes("b").is_err());
        assert!(!p.is_empty());
    }

    #[test]
    fn frame_buffers_agree_and_slices_refuse_overflow() {
        let value = (vec![1u8; 300], "text", Some(-5i64));
        let mut v = Vec::new();
        encode_frame(&value, &mut FrameBuf::vec(&mut v), "v").unwrap();
        let mut count = FrameBuf::counter();
        encode_frame(&value, &mut count, "v").unwrap();
        assert_eq!(count.len(), v.len());
        let mut space = vec![0u8; v.len()];
        encode_frame(&value, &mut FrameBuf::slice(&mut space), "v").unwrap();
        assert_eq!(space, v);
        let mut short = vec![0u8; v.len() - 1];
        assert!(encode_frame(&value, &mut FrameBuf::slice(&mut short), "v").is_err());
    }

    /// A sender that records each frame and how it came: `"one"` part, `"two"` parts,
    /// or `"in place"` (when it takes frames encoded in place).
    struct Recorder {
        in_place: bool,
        frames: Vec<(Vec<u8>, &'static str)>,
    }

    impl FrameSender for Recorder {
        fn send_parts(&mut self, head: &[u8], tail: &[u8]) -> Result<(), TransportError> {
            let how = if tail.is_empty() { "one" } else { "two" };
            self.frames.push(([head, tail].concat(), how));
            Ok(())
        }

        fn send_encoded(
            &mut self,
            encode: &mut dyn FnMut(&mut FrameBuf<'_>) -> Result<(), CodecError>,
        ) -> Option<Result<Result<(), CodecError>, TransportError>> {
            if !self.in_place {
                return None;
            }
            let mut count = FrameBuf::counter();
            if let Err(e) = encode(&mut count) {
                return Some(Ok(Err(e)));
            }
            let mut space = vec![0; count.len()];
            let mut out = FrameBuf::slice(&mut space);
            encode(&mut out).unwrap();
            assert_eq!(out.len(), space.len());
            self.frames.push((space, "in place"));
            Some(Ok(Ok(())))
        }
    }

    #[test]
    fn send_frame_copies_small_frames_gathers_large_byte_strings_and_encodes_the_rest_in_place() {
        // (bytes of other values, byte string) -> how it goes with and without in place.
        let cases = [
            (10, 0, "one", "one"),
            (10, 100, "one", "one"),
            (10, SMALL_FRAME, "two", "two"),
            (SMALL_FRAME, 0, "in place", "one"),
            (SMALL_FRAME - 100, 200, "in place", "one"),
            (100_000, 10, "in place", "one"),
            (100_000, 100_000, "two", "two"),
        ];
        for in_place in [true, false] {
            let mut sender = Recorder {
                in_place,
                frames: Vec::new(),
            };
            let mut scratch = Vec::new();
            for (values, bulk_len, with, without) in cases {
                let value = vec![7u8; values];
                let bulk = vec![9u8; bulk_len];
                let write = |out: &mut FrameBuf<'_>| {
                    encode_frame(&BytesRef(&value), out, "v")?;
                    encode_bulk_len(bulk.len(), out)
                };
                send_frame(&mut sender, &mut scratch, write, &bulk, None)
                    .unwrap()
                    .unwrap();
                let mut expected = Vec::new();
                encode_into(&(BytesRef(&value), BytesRef(&bulk)), &mut expected, "v").unwrap();
                let (frame, how) = sender.frames.pop().unwrap();
                assert!(frame == expected, "{values} + {bulk_len}: bytes differ");
                let want = if in_place { with } else { without };
                assert_eq!(how, want, "{values} + {bulk_len}, in place: {in_place}");
            }
        }
    }

    #[test]
    fn send_frame_refuses_a_frame_over_the_peers_limit_and_sends_nothing() {
        for in_place in [true, false] {
            // Small, counted in place, and with a separate bulk part.
            for (values, bulk_len) in [(300, 0), (10_000, 0), (10, 10_000)] {
                let mut sender = Recorder {
                    in_place,
                    frames: Vec::new(),
                };
                let value = vec![7u8; values];
                let bulk = vec![9u8; bulk_len];
                let write = |out: &mut FrameBuf<'_>| {
                    encode_frame(&BytesRef(&value), out, "v")?;
                    encode_bulk_len(bulk.len(), out)
                };
                match send_frame(&mut sender, &mut Vec::new(), write, &bulk, Some(256)) {
                    Err(TransportError::FrameTooLarge { len, max: 256 }) => {
                        assert!(len > (values + bulk_len) as u64, "{len}");
                    }
                    other => panic!("{values} + {bulk_len}: {other:?}"),
                }
                assert!(sender.frames.is_empty());
                send_frame(&mut sender, &mut Vec::new(), write, &bulk, Some(1 << 20))
                    .unwrap()
                    .unwrap();
                assert_eq!(sender.frames.len(), 1);
            }
        }
    }

    #[test]
    fn send_frame_reports_an_encoding_error_and_sends_nothing() {
        for in_place in [true, false] {
            for len in [10, 100_000] {
                let mut sender = Recorder {
                    in_place,
                    frames: Vec::new(),
                };
                let value = vec![7u8; len];
                let write = |out: &mut FrameBuf<'_>| {
                    encode_frame(&BytesRef(&value), out, "v")?;
                    Err(CodecError::Decode {
                        what: "test",
                        source: "always fails".into(),
                    })
                };
                let sent = send_frame(&mut sender, &mut Vec::new(), write, &[], None).unwrap();
                assert!(sent.is_err());
                assert!(sender.frames.is_empty());
            }
        }
    }

    #[test]
    fn decode_all_rejects_trailing_bytes_and_garbage() {
        let mut buf = Vec::new();
        encode_into(&BTreeMap::from([(1u8, 2u8)]), &mut buf, "m").unwrap();
        buf.push(0);
        assert!(decode_all::<BTreeMap<u8, u8>>(&buf, "m").is_err());
        assert!(decode_all::<String>(&[0xFF, 0xFF, 0xFF], "s").is_err());
    }
}
