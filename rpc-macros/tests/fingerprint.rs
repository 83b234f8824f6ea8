//! Per-method fingerprints: what changes them (structure) and what does not (names of
//! types and arguments, aliases, `Vec<u8>` for `Bytes`), and pinned values, since a
//! client and a server built by different versions of the macro must still agree.
// Only the generated `SERVICE` constants are read; nothing is implemented or called.
#![allow(dead_code)]
#![allow(clippy::type_complexity)]

use std::collections::HashMap;

use ipc_rpc::{MethodInfo, ipc_service};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, ipc_rpc::Schema)]
struct Point {
    pub x: i32,
    pub y: i32,
}

#[derive(Serialize, Deserialize, ipc_rpc::Schema)]
struct NotFound;

#[ipc_service]
trait Calculator {
    /// Adds two numbers.
    fn add(&self, a: i64, b: i64) -> i64;
    fn div(&self, a: i64, b: i64) -> Result<i64, NotFound>;
    fn reset(&self);
}

#[ipc_service]
trait Sample {
    fn r#type(&self, r#match: u8, r#fn: String) -> u8;
    fn unit_return(&self, value: u32) -> ();
    fn bytes(&self, head: Vec<u8>, tail: ::std::vec::Vec<u8>) -> Vec<u8>;
    fn nested(&self, v: Vec<Option<(u8, String)>>) -> Option<Vec<Vec<(Point, [u8; 4])>>>;
    fn paths(&self, m: HashMap<String, Vec<u8>>, d: std::time::Duration) -> Result<(), NotFound>;
    fn with_default(&self, n: u32) -> u32 {
        n + 1
    }
    #[cfg(any())]
    fn cfg_disabled(&self, never: TypeThatDoesNotExist) -> AlsoMissing;
    fn after_cfg(&self) -> bool;
}

fn method(info: &ipc_rpc::ServiceInfo, name: &str) -> MethodInfo {
    *info
        .methods
        .iter()
        .find(|m| m.name == name)
        .unwrap_or_else(|| panic!("no method {name}"))
}

/// Computed when per-method fingerprints were introduced: a change here means the hash
/// or the structure it covers changed, which breaks every deployed client.
#[test]
fn fingerprints_are_pinned() {
    let fps: Vec<(&str, u64)> = CalculatorClient::SERVICE
        .methods
        .iter()
        .chain(SampleClient::SERVICE.methods)
        .map(|m| (m.name, m.fingerprint))
        .collect();
    let text = fps
        .iter()
        .map(|(n, f)| format!("{n}={f:016x}"))
        .collect::<Vec<_>>()
        .join(" ");
    assert_eq!(text, PINNED, "fingerprints changed");
}

const PINNED: &str = "add=910031fc03022e93 div=3aca41899553a1a7 reset=3447e0187e4c6125 \
    type=21bfecf864fc95eb unit_return=cadebf8d5aa294f5 bytes=214538653cec852d \
    nested=c1cd2228c06759b6 paths=bb158cd6fac7ec58 with_default=4ed2034e6981a64d \
    =0000000000000000 after_cfg=2f3bb36c8b8703d4";

/// The signatures spell the structure out, down to the primitives.
#[test]
fn signatures_spell_out_structure() {
    let sample = SampleClient::SERVICE;
    assert_eq!(
        method(sample, "type").signature(),
        "type(match: u8, fn: String) -> u8"
    );
    assert_eq!(
        method(sample, "nested").signature(),
        "nested(v: Vec<Option<(u8, String)>>) -> Option<Vec<Vec<(Point { x: i32, y: i32 }, (u8, u8, u8, u8))>>>"
    );
    assert_eq!(
        method(sample, "paths").signature(),
        "paths(m: Map<String, Vec<u8>>, d: Duration { secs: u64, nanos: u32 }) -> Result<(), NotFound>"
    );
    assert_eq!(
        method(sample, "unit_return").signature(),
        "unit_return(value: u32)"
    );
    // A method `#[cfg]` leaves out keeps its number: the next one is still 8th.
    assert_eq!(sample.methods.len(), 8);
    assert_eq!(sample.methods[6].name, "");
    assert_eq!(sample.methods[7].name, "after_cfg");
}

/// Two versions of a type, and one service per version whose single method takes it:
/// whether the method's fingerprint changes.
macro_rules! versions {
    ($name:ident, same: $same:expr, { $($v1:tt)* }, { $($v2:tt)* }) => {
        mod $name {
            #[allow(unused_imports)]
            use serde::{Deserialize, Serialize};
            pub mod v1 {
                #[allow(unused_imports)]
                use super::*;
                $($v1)*
                #[ipc_rpc::ipc_service]
                pub trait Svc { fn call(&self, value: T) -> T; }
            }
            pub mod v2 {
                #[allow(unused_imports)]
                use super::*;
                $($v2)*
                #[ipc_rpc::ipc_service]
                pub trait Svc { fn call(&self, value: T) -> T; }
            }
            #[test]
            fn fingerprint() {
                let (a, b) = (&v1::SvcClient::SERVICE.methods[0], &v2::SvcClient::SERVICE.methods[0]);
                assert_eq!(
                    a.fingerprint == b.fingerprint,
                    $same,
                    "{} vs {}",
                    a.signature(),
                    b.signature()
                );
            }
        }
    };
}

versions!(field_added, same: false,
    { #[derive(Serialize, Deserialize, ipc_rpc::Schema)] pub struct T { a: u32 } },
    { #[derive(Serialize, Deserialize, ipc_rpc::Schema)] pub struct T { a: u32, b: u32 } });
versions!(field_removed, same: false,
    { #[derive(Serialize, Deserialize, ipc_rpc::Schema)] pub struct T { a: u32, b: u32 } },
    { #[derive(Serialize, Deserialize, ipc_rpc::Schema)] pub struct T { a: u32 } });
versions!(fields_reordered, same: false,
    { #[derive(Serialize, Deserialize, ipc_rpc::Schema)] pub struct T { a: u32, b: u32 } },
    { #[derive(Serialize, Deserialize, ipc_rpc::Schema)] pub struct T { b: u32, a: u32 } });
versions!(field_type_changed, same: false,
    { #[derive(Serialize, Deserialize, ipc_rpc::Schema)] pub struct T { a: u32 } },
    { #[derive(Serialize, Deserialize, ipc_rpc::Schema)] pub struct T { a: u64 } });
versions!(nested_type_changed, same: false,
    { #[derive(Serialize, Deserialize, ipc_rpc::Schema)] pub struct I { n: i8 }
      #[derive(Serialize, Deserialize, ipc_rpc::Schema)] pub struct T { i: Vec<I> } },
    { #[derive(Serialize, Deserialize, ipc_rpc::Schema)] pub struct I { n: i16 }
      #[derive(Serialize, Deserialize, ipc_rpc::Schema)] pub struct T { i: Vec<I> } });
versions!(variant_added, same: false,
    { #[derive(Serialize, Deserialize, ipc_rpc::Schema)] pub enum T { A, B } },
    { #[derive(Serialize, Deserialize, ipc_rpc::Schema)] pub enum T { A, B, C } });
versions!(variants_reordered, same: false,
    { #[derive(Serialize, Deserialize, ipc_rpc::Schema)] pub enum T { A, B } },
    { #[derive(Serialize, Deserialize, ipc_rpc::Schema)] pub enum T { B, A } });
versions!(field_renamed, same: false,
    { #[derive(Serialize, Deserialize, ipc_rpc::Schema)] pub struct T { a: u32 } },
    { #[derive(Serialize, Deserialize, ipc_rpc::Schema)] pub struct T { b: u32 } });
versions!(serde_rename_keeps_the_name, same: true,
    { #[derive(Serialize, Deserialize, ipc_rpc::Schema)] pub struct T { a: u32 } },
    { #[derive(Serialize, Deserialize, ipc_rpc::Schema)] pub struct T { #[serde(rename = "a")] b: u32 } });
versions!(type_renamed, same: true,
    { #[derive(Serialize, Deserialize, ipc_rpc::Schema)] pub struct Old { a: u32 } pub type T = Old; },
    { #[derive(Serialize, Deserialize, ipc_rpc::Schema)] pub struct New { a: u32 } pub type T = New; });
versions!(alias_of_the_same_type, same: true,
    { pub type T = u64; },
    { pub type Id = u64; pub type T = Id; });
versions!(bytes_for_vec_u8, same: true,
    { pub type T = Vec<u8>; },
    { pub type T = ipc_rpc::Bytes; });
versions!(skipped_field_is_not_sent, same: true,
    { #[derive(Serialize, Deserialize, ipc_rpc::Schema)] pub struct T { a: u32 } },
    { #[derive(Serialize, Deserialize, ipc_rpc::Schema)] pub struct T { a: u32, #[serde(skip)] cache: u8 } });
versions!(tree_shape_changed, same: false,
    { #[derive(Serialize, Deserialize, ipc_rpc::Schema)] pub struct T { v: u8, kids: Vec<T> } },
    { #[derive(Serialize, Deserialize, ipc_rpc::Schema)] pub struct T { v: u16, kids: Vec<T> } });

/// An argument renamed is the same method; a method renamed is another one.
#[test]
fn argument_names_do_not_count() {
    mod a {
        #[ipc_rpc::ipc_service]
        pub trait Svc {
            fn f(&self, x: u8) -> u8;
        }
    }
    mod b {
        #[ipc_rpc::ipc_service]
        pub trait Svc {
            fn f(&self, renamed: u8) -> u8;
        }
    }
    assert_eq!(
        a::SvcClient::SERVICE.methods[0].fingerprint,
        b::SvcClient::SERVICE.methods[0].fingerprint
    );
}

/// A subscription's fingerprint covers its event type, and a sink never hashes like a
/// plain argument of that type.
#[test]
fn subscriptions_hash_their_events() {
    mod a {
        #[ipc_rpc::ipc_service]
        pub trait Svc {
            fn watch(&self, id: u64, events: ipc_rpc::Sink<u8>);
        }
    }
    mod b {
        #[ipc_rpc::ipc_service]
        pub trait Svc {
            fn watch(&self, id: u64, events: ipc_rpc::Sink<u16>);
        }
    }
    mod c {
        #[ipc_rpc::ipc_service]
        pub trait Svc {
            fn watch(&self, id: u64, events: u8);
        }
    }
    let [a, b, c] = [
        a::SvcClient::SERVICE.methods[0],
        b::SvcClient::SERVICE.methods[0],
        c::SvcClient::SERVICE.methods[0],
    ];
    assert_eq!(a.signature(), "watch(id: u64, events: Sink<u8>)");
    assert_ne!(a.fingerprint, b.fingerprint);
    assert_ne!(a.fingerprint, c.fingerprint);
}
