//! The serialiser: postcard, behind [`CodecError`].
//!
//! Encoding appends to a caller-owned, reused `Vec<u8>` (no allocation once the buffer
//! has grown); decoding reads straight from the received frame.

use serde::Serialize;
use serde::de::{Deserialize, DeserializeOwned};

use crate::error::CodecError;

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
/// without a call per byte. Generated code uses it for `Vec<u8>` arguments and returns.
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
    fn decode_all_rejects_trailing_bytes_and_garbage() {
        let mut buf = Vec::new();
        encode_into(&BTreeMap::from([(1u8, 2u8)]), &mut buf, "m").unwrap();
        buf.push(0);
        assert!(decode_all::<BTreeMap<u8, u8>>(&buf, "m").is_err());
        assert!(decode_all::<String>(&[0xFF, 0xFF, 0xFF], "s").is_err());
    }
}
