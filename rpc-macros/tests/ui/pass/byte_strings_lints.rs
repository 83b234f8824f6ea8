//! Byte strings under strict lints with the prelude in scope: the paths the expansion
//! writes on the user's types' spans are not flagged as needless qualifications.
#![deny(warnings, missing_docs, unused_qualifications, unused_results, rust_2018_idioms)]

use ipc_rpc::{Bytes, ipc_service};

/// A byte string under another name.
pub type Blob = Vec<u8>;

/// Blobs.
#[ipc_service]
pub trait Blobs {
    /// Byte strings first and last.
    fn echo(&self, first: Blob, tag: Option<u8>, last: Bytes) -> Blob;
    /// Not byte strings.
    fn words(&self, words: Vec<u16>) -> Option<Vec<u8>>;
}

struct B;

impl Blobs for B {
    fn echo(&self, first: Blob, _tag: Option<u8>, last: Bytes) -> Blob {
        [first, last.into_vec()].concat()
    }
    fn words(&self, _words: Vec<u16>) -> Option<Vec<u8>> {
        None
    }
}

fn main() {
    let server = BlobsServer::new(B);
    assert_eq!(server.service().echo(vec![1], None, vec![2].into()), [1, 2]);
    assert_eq!(BlobsClient::SERVICE.name, "Blobs");
}
