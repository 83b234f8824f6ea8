//! [`Schema`] for std's types: what serde's own impls write, as postcard writes it.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap, HashSet, LinkedList, VecDeque};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::num::{
    NonZeroI8, NonZeroI16, NonZeroI32, NonZeroI64, NonZeroI128, NonZeroIsize, NonZeroU8,
    NonZeroU16, NonZeroU32, NonZeroU64, NonZeroU128, NonZeroUsize, Wrapping,
};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::model::{
    DataModelType as T, DataModelVariant as V, NamedType, NamedValue, NamedVariant, Schema,
};

macro_rules! leaf {
    ($($ty:ty => $name:literal $shape:ident),* $(,)?) => {$(
        impl Schema for $ty {
            const SCHEMA: &'static NamedType = &NamedType { name: $name, ty: &T::$shape };
        }
    )*};
}

leaf! {
    bool => "bool" Bool, char => "char" Char, () => "()" Unit,
    i8 => "i8" I8, i16 => "i16" I16, i32 => "i32" I32, i64 => "i64" I64, i128 => "i128" I128,
    isize => "isize" Isize,
    u8 => "u8" U8, u16 => "u16" U16, u32 => "u32" U32, u64 => "u64" U64, u128 => "u128" U128,
    usize => "usize" Usize,
    f32 => "f32" F32, f64 => "f64" F64,
    NonZeroI8 => "i8" I8, NonZeroI16 => "i16" I16, NonZeroI32 => "i32" I32,
    NonZeroI64 => "i64" I64, NonZeroI128 => "i128" I128, NonZeroIsize => "isize" Isize,
    NonZeroU8 => "u8" U8, NonZeroU16 => "u16" U16, NonZeroU32 => "u32" U32,
    NonZeroU64 => "u64" U64, NonZeroU128 => "u128" U128, NonZeroUsize => "usize" Usize,
    str => "String" String, String => "String" String,
    // serde writes paths as strings.
    Path => "String" String, PathBuf => "String" String,
}

/// Types serde writes as the type they wrap or point to.
macro_rules! same_as_inner {
    ($($ty:ident),*) => {$(
        impl<X: Schema + ?Sized> Schema for $ty<X> {
            const SCHEMA: &'static NamedType = X::SCHEMA;
        }
    )*};
}

same_as_inner!(Box, Rc, Arc);

impl<X: Schema + ?Sized> Schema for &X {
    const SCHEMA: &'static NamedType = X::SCHEMA;
}

impl<X: Schema + ?Sized + ToOwned> Schema for Cow<'_, X> {
    const SCHEMA: &'static NamedType = X::SCHEMA;
}

impl<X: Schema> Schema for Wrapping<X> {
    const SCHEMA: &'static NamedType = X::SCHEMA;
}

impl<X: Schema> Schema for Option<X> {
    const SCHEMA: &'static NamedType = &NamedType {
        name: "Option",
        ty: &T::Option(X::SCHEMA),
    };
}

macro_rules! seq {
    ($($ty:ident),*) => {$(
        impl<X: Schema> Schema for $ty<X> {
            const SCHEMA: &'static NamedType = &NamedType {
                name: stringify!($ty),
                ty: &T::Seq(X::SCHEMA),
            };
        }
    )*};
}

seq!(Vec, VecDeque, LinkedList, BTreeSet, BinaryHeap);

impl<X: Schema, S> Schema for HashSet<X, S> {
    const SCHEMA: &'static NamedType = &NamedType {
        name: "HashSet",
        ty: &T::Seq(X::SCHEMA),
    };
}

impl<X: Schema> Schema for [X] {
    const SCHEMA: &'static NamedType = &NamedType {
        name: "Vec",
        ty: &T::Seq(X::SCHEMA),
    };
}

impl<X: Schema, const N: usize> Schema for [X; N] {
    const SCHEMA: &'static NamedType = &NamedType {
        name: "array",
        ty: &T::Tuple(&[X::SCHEMA; N]),
    };
}

impl<K: Schema, X: Schema> Schema for BTreeMap<K, X> {
    const SCHEMA: &'static NamedType = &NamedType {
        name: "BTreeMap",
        ty: &T::Map {
            key: K::SCHEMA,
            val: X::SCHEMA,
        },
    };
}

impl<K: Schema, X: Schema, S> Schema for HashMap<K, X, S> {
    const SCHEMA: &'static NamedType = &NamedType {
        name: "HashMap",
        ty: &T::Map {
            key: K::SCHEMA,
            val: X::SCHEMA,
        },
    };
}

macro_rules! tuples {
    ($(($($x:ident),+)),*) => {$(
        impl<$($x: Schema),+> Schema for ($($x,)+) {
            const SCHEMA: &'static NamedType = &NamedType {
                name: "tuple",
                ty: &T::Tuple(&[$($x::SCHEMA),+]),
            };
        }
    )*};
}

tuples! {
    (A), (A, B), (A, B, C), (A, B, C, D), (A, B, C, D, E), (A, B, C, D, E, F),
    (A, B, C, D, E, F, G), (A, B, C, D, E, F, G, H), (A, B, C, D, E, F, G, H, I),
    (A, B, C, D, E, F, G, H, I, J), (A, B, C, D, E, F, G, H, I, J, K),
    (A, B, C, D, E, F, G, H, I, J, K, L)
}

impl<O: Schema, E: Schema> Schema for Result<O, E> {
    const SCHEMA: &'static NamedType = &NamedType {
        name: "Result",
        ty: &T::Enum(&[
            &NamedVariant {
                name: "Ok",
                ty: &V::NewtypeVariant(O::SCHEMA),
            },
            &NamedVariant {
                name: "Err",
                ty: &V::NewtypeVariant(E::SCHEMA),
            },
        ]),
    };
}

/// serde's `Duration`: `{ secs: u64, nanos: u32 }`.
impl Schema for Duration {
    const SCHEMA: &'static NamedType = &NamedType {
        name: "Duration",
        ty: &T::Struct(&[
            &NamedValue {
                name: "secs",
                ty: u64::SCHEMA,
            },
            &NamedValue {
                name: "nanos",
                ty: u32::SCHEMA,
            },
        ]),
    };
}

/// serde's `SystemTime`: its distance from the epoch, `{ secs_since_epoch: u64,
/// nanos_since_epoch: u32 }`.
impl Schema for SystemTime {
    const SCHEMA: &'static NamedType = &NamedType {
        name: "SystemTime",
        ty: &T::Struct(&[
            &NamedValue {
                name: "secs_since_epoch",
                ty: u64::SCHEMA,
            },
            &NamedValue {
                name: "nanos_since_epoch",
                ty: u32::SCHEMA,
            },
        ]),
    };
}

/// Addresses as serde writes them to a compact format: octets as tuples, a socket
/// address as a tuple of address and port, the enums as `V4`/`V6`.
impl Schema for Ipv4Addr {
    const SCHEMA: &'static NamedType = &NamedType {
        name: "Ipv4Addr",
        ty: &T::Tuple(&[u8::SCHEMA; 4]),
    };
}

impl Schema for Ipv6Addr {
    const SCHEMA: &'static NamedType = &NamedType {
        name: "Ipv6Addr",
        ty: &T::Tuple(&[u8::SCHEMA; 16]),
    };
}

impl Schema for SocketAddrV4 {
    const SCHEMA: &'static NamedType = &NamedType {
        name: "SocketAddrV4",
        ty: &T::Tuple(&[Ipv4Addr::SCHEMA, u16::SCHEMA]),
    };
}

impl Schema for SocketAddrV6 {
    const SCHEMA: &'static NamedType = &NamedType {
        name: "SocketAddrV6",
        ty: &T::Tuple(&[Ipv6Addr::SCHEMA, u16::SCHEMA]),
    };
}

macro_rules! v4_v6 {
    ($($ty:ident => $v4:ident, $v6:ident);*) => {$(
        impl Schema for $ty {
            const SCHEMA: &'static NamedType = &NamedType {
                name: stringify!($ty),
                ty: &T::Enum(&[
                    &NamedVariant { name: "V4", ty: &V::NewtypeVariant($v4::SCHEMA) },
                    &NamedVariant { name: "V6", ty: &V::NewtypeVariant($v6::SCHEMA) },
                ]),
            };
        }
    )*};
}

v4_v6!(IpAddr => Ipv4Addr, Ipv6Addr; SocketAddr => SocketAddrV4, SocketAddrV6);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::encode_into;

    /// The schemas agree with what postcard writes: a Duration is its two numbers, an
    /// address its octets (no length), a path its text.
    #[test]
    fn schemas_match_postcards_bytes() {
        let mut buf = Vec::new();
        encode_into(&Duration::new(1, 2), &mut buf, "t").unwrap();
        assert_eq!(buf, [1, 2]);
        buf.clear();
        encode_into(&Ipv4Addr::new(10, 0, 0, 1), &mut buf, "t").unwrap();
        assert_eq!(buf, [10, 0, 0, 1]);
        buf.clear();
        encode_into(&PathBuf::from("ab"), &mut buf, "t").unwrap();
        assert_eq!(buf, [2, b'a', b'b']);
        buf.clear();
        encode_into(&SystemTime::UNIX_EPOCH, &mut buf, "t").unwrap();
        assert_eq!(buf, [0, 0]);
        assert_eq!(<[u8; 4]>::SCHEMA.ty, Ipv4Addr::SCHEMA.ty);
    }
}
