//! [`Bytes`]: a byte string that takes the no-copy path, under any name.

use std::borrow::{Borrow, BorrowMut};
use std::fmt;
use std::ops::{Deref, DerefMut};

use rpc_core::codec::{ByteBuf, BytesRef};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A byte string: a `Vec<u8>` that says what it is.
///
/// As the last argument or the return value of an `#[ipc_service]` method, a byte
/// string is never copied into a buffer: it is written from where it is, and a large
/// one is read straight into the value the receiver gets. The macro picks that path by
/// type, so it applies to `Bytes`, `Vec<u8>` and any alias of either
/// (`type Blob = Vec<u8>;`); every other type is sent with serde.
///
/// On the wire `Bytes` is exactly a `Vec<u8>` (serde's byte string, which postcard
/// writes the way it writes a `u8` sequence: a varint length, then the bytes), so one side
/// of a service may declare `Vec<u8>` and the other `Bytes`. It dereferences to
/// `Vec<u8>` and converts from and into it without copying.
///
/// # Examples
///
/// ```
/// use ipc_rpc::{Bytes, ipc_service};
///
/// #[ipc_service]
/// pub trait Store {
///     /// Stores a blob under `key` and returns its length.
///     fn put(&self, key: String, blob: Bytes) -> u64;
///     /// The blob under `key`, empty if there is none.
///     fn get(&self, key: String) -> Bytes;
/// }
///
/// struct Mem(std::sync::Mutex<std::collections::HashMap<String, Bytes>>);
/// impl Store for Mem {
///     fn put(&self, key: String, blob: Bytes) -> u64 {
///         let len = blob.len() as u64;
///         self.0.lock().unwrap().insert(key, blob);
///         len
///     }
///     fn get(&self, key: String) -> Bytes {
///         self.0.lock().unwrap().get(&key).cloned().unwrap_or_default()
///     }
/// }
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let server = ipc_rpc::serve(&"tcp:127.0.0.1:0".parse()?, StoreServer::new(Mem(Default::default())))?;
/// let client = StoreClient::connect(&server.endpoint())?;
/// let blob: Bytes = vec![7u8; 100_000].into(); // no copy
/// assert_eq!(client.put("a".into(), blob)?, 100_000);
/// let back: Vec<u8> = client.get("a".into())?.into(); // no copy
/// assert_eq!(back, vec![7u8; 100_000]);
/// server.shutdown();
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Bytes(Vec<u8>);

impl Bytes {
    /// An empty byte string; allocates nothing.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(ipc_rpc::Bytes::new().is_empty());
    /// ```
    #[must_use]
    pub const fn new() -> Self {
        Self(Vec::new())
    }

    /// The bytes as a `Vec<u8>`, without copying.
    ///
    /// # Examples
    ///
    /// ```
    /// let b = ipc_rpc::Bytes::from(vec![1, 2]);
    /// assert_eq!(b.into_vec(), [1, 2]);
    /// ```
    #[must_use]
    pub fn into_vec(self) -> Vec<u8> {
        self.0
    }
}

/// A byte string: the same structure as `Vec<u8>` (see `rpc_core::schema`), so the
/// two stay interchangeable between client and server.
impl rpc_core::Schema for Bytes {
    const SCHEMA: &'static rpc_core::schema::NamedType = &rpc_core::schema::NamedType {
        name: "Bytes",
        ty: &rpc_core::schema::DataModelType::ByteArray,
    };
}

impl fmt::Debug for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl Deref for Bytes {
    type Target = Vec<u8>;

    fn deref(&self) -> &Vec<u8> {
        &self.0
    }
}

impl DerefMut for Bytes {
    fn deref_mut(&mut self) -> &mut Vec<u8> {
        &mut self.0
    }
}

impl AsRef<[u8]> for Bytes {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl AsMut<[u8]> for Bytes {
    fn as_mut(&mut self) -> &mut [u8] {
        &mut self.0
    }
}

impl Borrow<[u8]> for Bytes {
    fn borrow(&self) -> &[u8] {
        &self.0
    }
}

impl BorrowMut<[u8]> for Bytes {
    fn borrow_mut(&mut self) -> &mut [u8] {
        &mut self.0
    }
}

impl From<Vec<u8>> for Bytes {
    fn from(v: Vec<u8>) -> Self {
        Self(v)
    }
}

impl From<&[u8]> for Bytes {
    fn from(v: &[u8]) -> Self {
        Self(v.to_vec())
    }
}

impl<const N: usize> From<[u8; N]> for Bytes {
    fn from(v: [u8; N]) -> Self {
        Self(v.to_vec())
    }
}

impl From<Bytes> for Vec<u8> {
    fn from(b: Bytes) -> Self {
        b.0
    }
}

impl PartialEq<[u8]> for Bytes {
    fn eq(&self, other: &[u8]) -> bool {
        self.0 == other
    }
}

impl PartialEq<Vec<u8>> for Bytes {
    fn eq(&self, other: &Vec<u8>) -> bool {
        self.0 == *other
    }
}

impl Serialize for Bytes {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        BytesRef(&self.0).serialize(s)
    }
}

impl<'de> Deserialize<'de> for Bytes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        ByteBuf::deserialize(d).map(|b| Self(b.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_encode_exactly_like_a_vec_of_u8() {
        for len in [0usize, 1, 127, 128, 300, 70_000] {
            let v: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            let as_vec = postcard::to_allocvec(&v).unwrap();
            let as_bytes = postcard::to_allocvec(&Bytes::from(v.clone())).unwrap();
            assert_eq!(as_vec, as_bytes, "len {len}");
            assert_eq!(postcard::from_bytes::<Bytes>(&as_vec).unwrap(), v);
            assert_eq!(postcard::from_bytes::<Vec<u8>>(&as_bytes).unwrap(), v);
        }
    }
}
