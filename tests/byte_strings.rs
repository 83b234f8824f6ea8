//! Byte strings chosen by type over real transports: `Vec<u8>`, `ipc_rpc::Bytes` and an
//! alias arrive intact around 64 KiB (where byte-stream transports receive a frame's
//! tail into a vector of its own) and at 1 MiB, and a client that spells each byte
//! string differently from the server reads and writes the same frames.

mod common;

use std::time::Duration;

use common::*;
use ipc_rpc::{Bytes, ipc_service};

const WATCHDOG: Duration = Duration::from_secs(30);

/// A byte string under another name.
type Blob = Vec<u8>;

#[ipc_service]
trait Blobs {
    fn echo_alias(&self, tag: u8, blob: Blob) -> Blob;
    fn echo_bytes(&self, tag: u8, blob: Bytes) -> Bytes;
    fn echo_vec(&self, tag: u8, blob: Vec<u8>) -> Vec<u8>;
    fn words(&self, words: Vec<u16>) -> Vec<u16>;
}

/// [`Blobs`] with each byte string spelled differently; only its client is used.
#[allow(dead_code)]
#[ipc_service]
trait BlobsSpelledOtherwise {
    fn echo_alias(&self, tag: u8, blob: Bytes) -> Vec<u8>;
    fn echo_bytes(&self, tag: u8, blob: Vec<u8>) -> Blob;
    fn echo_vec(&self, tag: u8, blob: Blob) -> Bytes;
    fn words(&self, words: Vec<u16>) -> Vec<u16>;
}

struct Store;

impl Blobs for Store {
    fn echo_alias(&self, tag: u8, mut blob: Blob) -> Blob {
        blob.push(tag);
        blob
    }
    fn echo_bytes(&self, tag: u8, mut blob: Bytes) -> Bytes {
        blob.push(tag);
        blob
    }
    fn echo_vec(&self, tag: u8, mut blob: Vec<u8>) -> Vec<u8> {
        blob.push(tag);
        blob
    }
    fn words(&self, words: Vec<u16>) -> Vec<u16> {
        words.into_iter().rev().collect()
    }
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

const SIZES: [usize; 7] = [
    0,
    300,
    (64 << 10) - 2,
    (64 << 10) - 1,
    64 << 10,
    (64 << 10) + 1,
    1 << 20,
];

fn round_trips(transport: Transport) {
    watchdog(WATCHDOG, move || {
        let ep = transport.endpoint();
        let server = ipc_rpc::serve(&ep.endpoint, BlobsServer::new(Store)).expect("serve");
        let client = BlobsClient::connect(&server.endpoint()).expect("connect");
        let other = BlobsSpelledOtherwiseClient::from_client(
            ipc_rpc::Client::handshake(
                transports::connect(&server.endpoint()).expect("connect"),
                BlobsClient::SERVICE,
            )
            .expect("handshake"),
        );
        for len in SIZES {
            let sent = pattern(len);
            let mut want = sent.clone();
            want.push(5);
            assert_eq!(client.echo_alias(5, sent.clone()).unwrap(), want, "{len}");
            assert_eq!(
                client.echo_bytes(5, sent.clone().into()).unwrap(),
                want,
                "{len}"
            );
            assert_eq!(client.echo_vec(5, sent.clone()).unwrap(), want, "{len}");
            assert_eq!(
                other.echo_alias(5, sent.clone().into()).unwrap(),
                want,
                "{len}"
            );
            assert_eq!(other.echo_bytes(5, sent.clone()).unwrap(), want, "{len}");
            assert_eq!(other.echo_vec(5, sent.clone()).unwrap(), want, "{len}");
        }
        let words: Vec<u16> = (0..40_000).collect();
        let back = client.words(words.clone()).unwrap();
        assert_eq!(back, words.into_iter().rev().collect::<Vec<_>>());
        drop((client, other));
        server.shutdown();
    });
}

#[test]
fn byte_strings_of_every_spelling_round_trip_over_unix() {
    round_trips(Transport::unix);
}

#[test]
fn byte_strings_of_every_spelling_round_trip_over_tcp() {
    round_trips(Transport::tcp);
}

#[test]
fn byte_strings_of_every_spelling_round_trip_over_shm() {
    round_trips(Transport::shm);
}
