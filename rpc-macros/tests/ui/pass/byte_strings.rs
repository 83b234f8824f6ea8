//! Byte strings under any name, with no prelude, under strict lints, and with the
//! facade reached through a re-export: the path choice the expansion makes adds no
//! warning and needs no import of the user's.
#![no_implicit_prelude]
#![deny(warnings, missing_docs, unused_qualifications, unused_results, rust_2018_idioms)]

mod deps {
    pub use ::ipc_rpc as rpc;
}

/// A byte string under another name.
pub type Blob = ::std::vec::Vec<u8>;

/// Blobs.
#[::ipc_rpc::ipc_service]
pub trait Direct {
    /// Takes and returns byte strings, each spelled differently.
    fn echo(&self, tag: u8, first: Blob, last: ::ipc_rpc::Bytes) -> Blob;
    /// Not a byte string.
    fn words(&self, words: ::std::vec::Vec<u16>) -> ::std::vec::Vec<u16>;
    /// A byte string return only.
    fn get(&self) -> ::ipc_rpc::Bytes;
}

/// Blobs through a re-export of the facade.
pub mod reexported {
    /// Blobs.
    #[crate::deps::rpc::ipc_service(crate = "crate::deps::rpc")]
    pub trait Reexported {
        /// A byte string argument and return.
        fn echo(&self, last: crate::deps::rpc::Bytes) -> crate::Blob;
        /// Not a byte string.
        fn n(&self, n: u32) -> u32;
    }
}

fn main() {
    let _: &::ipc_rpc::ServiceInfo = DirectClient::SERVICE;
    let _: &::ipc_rpc::ServiceInfo = reexported::ReexportedClient::SERVICE;
}
