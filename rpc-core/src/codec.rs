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

    fn try_push(&mut self, data: u8) -> postcard::Result<()> {
        self.0.push(data);
        Ok(())
    }

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
    fn decode_all_rejects_trailing_bytes_and_garbage() {
        let mut buf = Vec::new();
        encode_into(&BTreeMap::from([(1u8, 2u8)]), &mut buf, "m").unwrap();
        buf.push(0);
        assert!(decode_all::<BTreeMap<u8, u8>>(&buf, "m").is_err());
        assert!(decode_all::<String>(&[0xFF, 0xFF, 0xFF], "s").is_err());
    }
}
