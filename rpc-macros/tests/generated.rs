//! Behaviour of the generated code: every method of a service round-trips through the
//! generated client and server over the in-process `mem` transport.

use std::collections::{BTreeMap, HashMap};
use std::panic::resume_unwind;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread;
use std::time::Duration;

use ipc_rpc::{RpcError, ipc_service};
use rpc_core::codec::SMALL_FRAME;
use rpc_core::transport::mem;
use rpc_core::{Closer, Listener, RunningServer, Transport, TransportError};
use serde::{Deserialize, Serialize};

/// A test that has not finished by then has hung: it fails instead of blocking CI.
const WATCHDOG: Duration = Duration::from_secs(10);

/// Per-call deadline of the test clients, shorter than the watchdog.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ipc_rpc::Schema)]
enum Kind {
    Plain,
    Weighted {
        grams: u32,
    },
    /// Items of items: the cycle `Kind` → `Item` → `Kind` closes here.
    Bundle(#[schema(recursive)] Vec<Item>),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ipc_rpc::Schema)]
struct Item {
    name: String,
    kind: Kind,
    tags: BTreeMap<String, Option<u64>>,
    size: Option<(u16, u16)>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ipc_rpc::Schema)]
enum StoreError {
    NotFound(u64),
    Full { capacity: usize },
}

#[ipc_service]
trait Inventory {
    /// Stores an item and returns its id.
    fn put(&self, item: Item) -> Result<u64, StoreError>;
    fn get(&self, id: u64) -> Result<Item, StoreError>;
    fn count(&self) -> usize;
    fn clear(&self);
    fn touch(&self, id: u64) -> ();
    fn search(&self, prefix: Option<String>, limit: u8) -> Vec<(u64, Vec<String>)>;
    fn by_kind(&self) -> HashMap<String, Vec<u64>>;
    fn r#match(&self, r#type: String, pair: (i8, [u8; 3])) -> (String, i8, [u8; 3]);
    fn doubled(&self, n: u32) -> u32 {
        n * 2
    }
}

const CAPACITY: usize = 3;

#[derive(Default)]
struct Store {
    items: Mutex<BTreeMap<u64, Item>>,
    touched: Mutex<Vec<u64>>,
}

impl Store {
    fn items(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, Item>> {
        self.items.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Inventory for Store {
    fn put(&self, item: Item) -> Result<u64, StoreError> {
        let mut items = self.items();
        if items.len() >= CAPACITY {
            return Err(StoreError::Full { capacity: CAPACITY });
        }
        let id = items.keys().next_back().map_or(1, |last| last + 1);
        items.insert(id, item);
        Ok(id)
    }

    fn get(&self, id: u64) -> Result<Item, StoreError> {
        self.items()
            .get(&id)
            .cloned()
            .ok_or(StoreError::NotFound(id))
    }

    fn count(&self) -> usize {
        self.items().len()
    }

    fn clear(&self) {
        self.items().clear();
    }

    fn touch(&self, id: u64) {
        self.touched.lock().unwrap().push(id);
    }

    fn search(&self, prefix: Option<String>, limit: u8) -> Vec<(u64, Vec<String>)> {
        self.items()
            .iter()
            .filter(|(_, item)| prefix.as_deref().is_none_or(|p| item.name.starts_with(p)))
            .take(usize::from(limit))
            .map(|(id, item)| (*id, item.tags.keys().cloned().collect()))
            .collect()
    }

    fn by_kind(&self) -> HashMap<String, Vec<u64>> {
        let mut out: HashMap<String, Vec<u64>> = HashMap::new();
        for (id, item) in self.items().iter() {
            let kind = match item.kind {
                Kind::Plain => "plain",
                Kind::Weighted { .. } => "weighted",
                Kind::Bundle(_) => "bundle",
            };
            out.entry(kind.to_owned()).or_default().push(*id);
        }
        out
    }

    fn r#match(&self, r#type: String, pair: (i8, [u8; 3])) -> (String, i8, [u8; 3]) {
        (
            r#type.to_uppercase(),
            -pair.0,
            [pair.1[2], pair.1[1], pair.1[0]],
        )
    }
}

/// A listener that yields one transport, then blocks until its closer is used.
struct OneConnection {
    transport: Option<Box<dyn Transport>>,
    closed: Arc<(Mutex<bool>, Condvar)>,
}

struct OneConnectionCloser(Arc<(Mutex<bool>, Condvar)>);

impl Listener for OneConnection {
    fn accept(&mut self) -> Result<Box<dyn Transport>, TransportError> {
        if let Some(transport) = self.transport.take() {
            return Ok(transport);
        }
        let (lock, wake) = &*self.closed;
        let mut closed = lock.lock().unwrap_or_else(PoisonError::into_inner);
        while !*closed {
            closed = wake.wait(closed).unwrap_or_else(PoisonError::into_inner);
        }
        Err(TransportError::Closed)
    }

    fn closer(&self) -> Result<Box<dyn Closer>, TransportError> {
        Ok(Box::new(OneConnectionCloser(self.closed.clone())))
    }

    fn local_endpoint(&self) -> ipc_rpc::Endpoint {
        // In process, one connection: no kind names that; a pipe comes closest.
        ipc_rpc::Endpoint::new(ipc_rpc::EndpointKind::Pipe)
    }
}

impl Closer for OneConnectionCloser {
    fn close(&self) {
        let (lock, wake) = &*self.0;
        *lock.lock().unwrap_or_else(PoisonError::into_inner) = true;
        wake.notify_all();
    }
}

/// Serves `Store` on one end of a mem pair and returns a client on the other end.
fn connected() -> (RunningServer, Result<InventoryClient, RpcError>) {
    let (client_end, server_end) = mem::pair();
    let listener = OneConnection {
        transport: Some(Box::new(server_end)),
        closed: Arc::default(),
    };
    let server = RunningServer::start(
        Box::new(listener),
        Arc::new(InventoryServer::new(Store::default())),
    )
    .expect("server starts");
    let client = ipc_rpc::Client::handshake(Box::new(client_end), InventoryClient::SERVICE)
        .map(|core| InventoryClient::from_client(core).with_timeout(CALL_TIMEOUT));
    (server, client)
}

/// Runs `body` on its own thread and fails the test if it takes longer than
/// [`WATCHDOG`].
fn with_watchdog(body: impl FnOnce() + Send + 'static) {
    let (done, finished) = mpsc::channel();
    let runner = thread::spawn(move || {
        body();
        let _ = done.send(());
    });
    match finished.recv_timeout(WATCHDOG) {
        Ok(()) => runner.join().expect("the test thread finished"),
        Err(RecvTimeoutError::Disconnected) => match runner.join() {
            Ok(()) => {}
            Err(panic) => resume_unwind(panic),
        },
        Err(RecvTimeoutError::Timeout) => panic!("the test hung: no result within {WATCHDOG:?}"),
    }
}

fn item(name: &str, kind: Kind) -> Item {
    Item {
        name: name.to_owned(),
        kind,
        tags: BTreeMap::from([(format!("{name}-tag"), Some(7)), ("any".to_owned(), None)]),
        size: Some((3, 4)),
    }
}

#[test]
fn every_method_round_trips_over_mem() {
    with_watchdog(|| {
        let (mut server, client) = connected();
        let client = client.expect("handshake");

        assert_eq!(client.count().unwrap(), 0);
        let bolt = item("bolt", Kind::Weighted { grams: 12 });
        let kit = item(
            "kit",
            Kind::Bundle(vec![bolt.clone(), item("nut", Kind::Plain)]),
        );
        let bolt_id = client.put(bolt.clone()).unwrap().unwrap();
        let kit_id = client.put(kit.clone()).unwrap().unwrap();
        assert_eq!(client.get(bolt_id).unwrap(), Ok(bolt));
        assert_eq!(client.get(kit_id).unwrap(), Ok(kit));
        assert_eq!(client.count().unwrap(), 2);

        client.touch(bolt_id).unwrap();
        assert_eq!(
            client.search(Some("bo".to_owned()), 10).unwrap(),
            vec![(bolt_id, vec!["any".to_owned(), "bolt-tag".to_owned()])]
        );
        assert_eq!(client.search(None, 1).unwrap().len(), 1);
        let kinds = client.by_kind().unwrap();
        assert_eq!(kinds["weighted"], vec![bolt_id]);
        assert_eq!(kinds["bundle"], vec![kit_id]);
        assert_eq!(
            client.r#match("raw".to_owned(), (5, [1, 2, 3])).unwrap(),
            ("RAW".to_owned(), -5, [3, 2, 1])
        );
        assert_eq!(client.doubled(21).unwrap(), 42);

        client.clear().unwrap();
        assert_eq!(client.count().unwrap(), 0);
        server.shutdown();
    });
}

#[test]
fn application_errors_arrive_as_values() {
    with_watchdog(|| {
        let (mut server, client) = connected();
        let client = client.expect("handshake");

        assert_eq!(client.get(99).unwrap(), Err(StoreError::NotFound(99)));
        for n in 0..CAPACITY {
            client
                .put(item(&format!("i{n}"), Kind::Plain))
                .unwrap()
                .unwrap();
        }
        assert_eq!(
            client.put(item("one too many", Kind::Plain)).unwrap(),
            Err(StoreError::Full { capacity: CAPACITY })
        );
        assert_eq!(client.count().unwrap(), CAPACITY);
        server.shutdown();
    });
}

#[test]
fn service_info_lists_methods_in_declaration_order_without_raw_prefix() {
    let info = InventoryClient::SERVICE;
    assert_eq!(info.name, "Inventory");
    assert_eq!(
        info.methods.iter().map(|m| m.name).collect::<Vec<_>>(),
        [
            "put", "get", "count", "clear", "touch", "search", "by_kind", "match", "doubled"
        ]
    );
}

mod changed {
    use super::Item;

    /// `Inventory` with one signature changed: `get` takes a `u32`.
    #[ipc_rpc::ipc_service]
    #[expect(dead_code, reason = "only the generated client's SERVICE is used")]
    pub(super) trait Inventory {
        fn put(&self, item: Item) -> Result<u64, super::StoreError>;
        fn get(&self, id: u32) -> Result<Item, super::StoreError>;
    }
}

/// A client whose `get` takes another type connects: `put` works, `get` fails with
/// both signatures, and the connection stays usable.
#[test]
fn a_changed_method_fails_alone_with_both_signatures() {
    with_watchdog(|| {
        let (client_end, server_end) = mem::pair();
        let listener = OneConnection {
            transport: Some(Box::new(server_end)),
            closed: Arc::default(),
        };
        let mut server = RunningServer::start(
            Box::new(listener),
            Arc::new(InventoryServer::new(Store::default())),
        )
        .expect("server starts");
        let core =
            ipc_rpc::Client::handshake(Box::new(client_end), changed::InventoryClient::SERVICE)
                .expect("the handshake succeeds: the services share a name");
        let client = changed::InventoryClient::from_client(core);
        let item = Item {
            name: "cup".into(),
            kind: Kind::Plain,
            tags: BTreeMap::new(),
            size: None,
        };
        assert!(matches!(client.put(item.clone()), Ok(Ok(_))));
        match client.get(1) {
            Err(RpcError::MethodMismatch {
                method,
                client: mine,
                server: Some(theirs),
                ..
            }) => {
                assert_eq!(method, "get");
                assert!(mine.starts_with("get(id: u32) -> "), "{mine}");
                assert!(theirs.starts_with("get(id: u64) -> "), "{theirs}");
            }
            other => panic!("expected MethodMismatch, got {other:?}"),
        }
        assert!(matches!(client.put(item), Ok(Ok(_))), "still usable");
        drop(client);
        server.shutdown();
    });
}

/// A byte string under another name: the macro cannot see through it, the type system
/// can.
type Blob = Vec<u8>;

#[ipc_service]
trait Blobs {
    fn echo_alias(&self, tag: u8, blob: Blob) -> Blob;
    fn echo_bytes(&self, tag: u8, blob: ipc_rpc::Bytes) -> ipc_rpc::Bytes;
    fn echo_vec(&self, tag: u8, blob: Vec<u8>) -> Vec<u8>;
    fn join(&self, a: Blob, b: ipc_rpc::Bytes, n: u32) -> (u32, Vec<u8>);
    fn words(&self, words: Vec<u16>) -> Vec<u16>;
}

/// The same service as [`Blobs`], each byte string written differently. Only its
/// client is used.
#[allow(dead_code)]
#[ipc_service]
trait BlobsSpelledOtherwise {
    fn echo_alias(&self, tag: u8, blob: ipc_rpc::Bytes) -> Vec<u8>;
    fn echo_bytes(&self, tag: u8, blob: Vec<u8>) -> Blob;
    fn echo_vec(&self, tag: u8, blob: Blob) -> ipc_rpc::Bytes;
    fn join(&self, a: Vec<u8>, b: Vec<u8>, n: u32) -> (u32, Blob);
    fn words(&self, words: Vec<u16>) -> Vec<u16>;
}

struct BlobStore;

impl Blobs for BlobStore {
    fn echo_alias(&self, tag: u8, mut blob: Blob) -> Blob {
        blob.push(tag);
        blob
    }
    fn echo_bytes(&self, tag: u8, mut blob: ipc_rpc::Bytes) -> ipc_rpc::Bytes {
        blob.push(tag);
        blob
    }
    fn echo_vec(&self, tag: u8, mut blob: Vec<u8>) -> Vec<u8> {
        blob.push(tag);
        blob
    }
    fn join(&self, mut a: Blob, b: ipc_rpc::Bytes, n: u32) -> (u32, Vec<u8>) {
        a.extend_from_slice(&b);
        (n + 1, a)
    }
    fn words(&self, words: Vec<u16>) -> Vec<u16> {
        words.into_iter().rev().collect()
    }
}

/// The tail lengths of the frames a connection sent in two parts
/// ([`rpc_core::FrameSender::send_parts`] with a tail): the bulk path of a byte
/// string.
type Tails = Arc<Mutex<Vec<usize>>>;

/// A transport that records what its sender sends in two parts.
struct Counting(Box<dyn Transport>, Tails);

struct CountingSender(Box<dyn rpc_core::FrameSender>, Tails);

impl Transport for Counting {
    fn peer(&self) -> String {
        self.0.peer()
    }
    fn split(self: Box<Self>) -> Result<rpc_core::transport::Parts, TransportError> {
        let mut parts = self.0.split()?;
        parts.sender = Box::new(CountingSender(parts.sender, self.1));
        Ok(parts)
    }
}

impl rpc_core::FrameSender for CountingSender {
    fn send_parts(&mut self, head: &[u8], tail: &[u8]) -> Result<(), TransportError> {
        if !tail.is_empty() {
            self.1.lock().unwrap().push(tail.len());
        }
        self.0.send_parts(head, tail)
    }
}

/// Serves [`Blobs`] on one end of a mem pair; returns the client's end (its handshake
/// done) and what each side sent in two parts.
fn blobs_connected() -> (RunningServer, ipc_rpc::Client, Tails, Tails) {
    let (client_end, server_end) = mem::pair();
    let (client_tails, server_tails) = (Tails::default(), Tails::default());
    let listener = OneConnection {
        transport: Some(Box::new(Counting(
            Box::new(server_end),
            server_tails.clone(),
        ))),
        closed: Arc::default(),
    };
    let server = RunningServer::start(Box::new(listener), Arc::new(BlobsServer::new(BlobStore)))
        .expect("server starts");
    let client = ipc_rpc::Client::handshake(
        Box::new(Counting(Box::new(client_end), client_tails.clone())),
        BlobsClient::SERVICE,
    )
    .expect("handshake")
    .with_timeout(CALL_TIMEOUT);
    (server, client, client_tails, server_tails)
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

/// Sizes around 64 KiB, where byte-stream transports start to split frames.
const SIZES: [usize; 7] = [0, 1, 300, (64 << 10) - 1, 64 << 10, (64 << 10) + 1, 1 << 20];

// The borrow is the technique: without it a type that is not a byte string would find
// no method (lookup adds one `&` at most).
#[allow(clippy::needless_borrow)]
#[test]
fn byte_strings_are_chosen_by_type_not_by_spelling() {
    use ipc_rpc::__private::{ByteKind, SerdeKind, Tag, ViaBytes as _, ViaSerde as _};
    let _: ByteKind = (&Tag::<Vec<u8>>::NEW).wire_kind();
    let _: ByteKind = (&Tag::<Blob>::NEW).wire_kind();
    let _: ByteKind = (&Tag::<ipc_rpc::Bytes>::NEW).wire_kind();
    let _: SerdeKind = (&Tag::<Vec<u16>>::NEW).wire_kind();
    let _: SerdeKind = (&Tag::<Vec<i8>>::NEW).wire_kind();
    let _: SerdeKind = (&Tag::<Option<Vec<u8>>>::NEW).wire_kind();
    let _: SerdeKind = (&Tag::<[u8; 4]>::NEW).wire_kind();
}

#[test]
fn aliased_and_bytes_arguments_and_returns_take_the_bulk_path() {
    with_watchdog(|| {
        let (mut server, core, client_tails, server_tails) = blobs_connected();
        let client = BlobsClient::from_client(core);
        for len in SIZES {
            let sent = pattern(len);
            let mut want = sent.clone();
            want.push(9);
            assert_eq!(client.echo_alias(9, sent.clone()).unwrap(), want, "{len}");
            assert_eq!(
                client.echo_bytes(9, sent.clone().into()).unwrap(),
                want,
                "{len}"
            );
            assert_eq!(client.echo_vec(9, sent.clone()).unwrap(), want, "{len}");
            // Every call sent its byte string as the tail of a two-part frame, both ways
            // (a small one is copied into the frame instead: cheaper).
            let tails = |n: usize| if n >= SMALL_FRAME { vec![n; 3] } else { vec![] };
            assert_eq!(*client_tails.lock().unwrap(), tails(len), "{len}");
            assert_eq!(*server_tails.lock().unwrap(), tails(len + 1), "{len}");
            client_tails.lock().unwrap().clear();
            server_tails.lock().unwrap().clear();
        }
        // Byte strings that are not last go with the other arguments; the returned
        // tuple is not a byte string.
        let (n, joined) = client.join(pattern(70_000), pattern(5).into(), 1).unwrap();
        assert_eq!(n, 2);
        assert_eq!(joined, [pattern(70_000), pattern(5)].concat());
        let words: Vec<u16> = (0..40_000).collect();
        let back = client.words(words.clone()).unwrap();
        assert_eq!(back, words.into_iter().rev().collect::<Vec<_>>());
        assert!(client_tails.lock().unwrap().is_empty());
        assert!(server_tails.lock().unwrap().is_empty());
        drop(client);
        server.shutdown();
    });
}

#[test]
fn byte_strings_interoperate_whatever_each_side_calls_them() {
    with_watchdog(|| {
        let (mut server, core, _, _) = blobs_connected();
        // The fingerprints hash structure, in which a byte string is one however it
        // is spelled: each method of one matches the same method of the other.
        let fingerprints = |info: &ipc_rpc::ServiceInfo| {
            info.methods
                .iter()
                .map(|m| m.fingerprint)
                .collect::<Vec<_>>()
        };
        assert_eq!(
            fingerprints(BlobsClient::SERVICE),
            fingerprints(BlobsSpelledOtherwiseClient::SERVICE)
        );
        let client = BlobsSpelledOtherwiseClient::from_client(core);
        for len in SIZES {
            let sent = pattern(len);
            let mut want = sent.clone();
            want.push(3);
            assert_eq!(
                client.echo_alias(3, sent.clone().into()).unwrap(),
                want,
                "{len}"
            );
            assert_eq!(client.echo_bytes(3, sent.clone()).unwrap(), want, "{len}");
            assert_eq!(client.echo_vec(3, sent.clone()).unwrap(), want, "{len}");
            let (n, joined) = client.join(sent.clone(), vec![1, 2], 7).unwrap();
            assert_eq!((n, joined), (8, [sent, vec![1, 2]].concat()));
        }
        assert_eq!(client.words(vec![1, 2, 3]).unwrap(), [3, 2, 1]);
        drop(client);
        server.shutdown();
    });
}
