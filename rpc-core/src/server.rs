//! The server: an accept loop, and one thread per connection that reads a request,
//! runs the handler and writes the reply.
//!
//! A connection runs its calls in arrival order on its own thread (the thread that
//! read a request runs it: no hand-off). Connections run in parallel. A panicking
//! handler becomes `RemoteError::Panic` for that caller only; a frame that is not a
//! valid request ends that connection only.

use std::collections::HashMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crate::codec::{FrameBuf, Payload, decode_prefix, encode_frame, encode_into};
use crate::dispatch::{Dispatch, DispatchError, Reply};
use crate::endpoint::Endpoint;
use crate::error::{RemoteError, ServeError, TransportError, chain};
use crate::transport::{
    Closer, FrameReceiver, FrameSender, Listener, Parts, PeerCredentials, Transport,
};
use crate::wire::{self, Hello, MAGIC, PROTOCOL_VERSION, STATUS_ERR, Welcome};

thread_local! {
    /// The peer of the connection this thread serves (one thread per connection).
    static CURRENT_PEER: std::cell::Cell<Option<PeerCredentials>> = const { std::cell::Cell::new(None) };
}

/// Inside a handler: what the OS says about the calling process (its pid and uid where
/// the transport knows them; see [`PeerCredentials`]). `None` outside a handler.
///
/// # Examples
///
/// ```
/// // Outside a server's handler there is no caller.
/// assert!(rpc_core::server::current_peer().is_none());
/// ```
pub fn current_peer() -> Option<PeerCredentials> {
    CURRENT_PEER.with(std::cell::Cell::get)
}

/// How long a new connection may take to send its handshake before it is dropped.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The largest frame a connection may send before its handshake is accepted: a hello
/// is a few dozen bytes, so a peer that has not said who it is cannot make the server
/// take more (see `FrameReceiver::set_max_frame`).
pub const HANDSHAKE_MAX_FRAME: usize = 4096;

/// How long [`RunningServer::shutdown`] lets calls in flight finish and write their
/// replies before it aborts the connections still open (a client that leaves a large
/// reply unread would otherwise hold the shutdown for ever).
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// How often a shutdown looks whether every connection has ended.
const SHUTDOWN_POLL: Duration = Duration::from_millis(2);

/// Pause after a failed `accept` (e.g. out of file descriptors) before the next try.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(20);

/// A running server: accept loop plus connection threads.
///
/// Dropping it shuts it down (see [`RunningServer::shutdown`]).
pub struct RunningServer {
    endpoint: Endpoint,
    stopping: Arc<AtomicBool>,
    listener_closer: Box<dyn Closer>,
    accept_thread: Option<JoinHandle<()>>,
    connections: Arc<Connections>,
}

#[derive(Default)]
struct Connections {
    state: Mutex<ConnectionTable>,
}

#[derive(Default)]
struct ConnectionTable {
    next_id: u64,
    shutting_down: bool,
    /// Every connection's thread, registered by the accept loop.
    threads: HashMap<u64, JoinHandle<()>>,
    /// Connections past their set-up, registered by their own thread.
    closers: HashMap<u64, Box<dyn Closer>>,
}

impl Connections {
    fn lock(&self) -> MutexGuard<'_, ConnectionTable> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl RunningServer {
    /// Starts serving `dispatch` on `listener` in background threads.
    ///
    /// # Errors
    ///
    /// [`ServeError::Listen`] if the listener's wake-up handle cannot be made,
    /// [`ServeError::Thread`] if the accept thread cannot start.
    ///
    /// # Examples
    ///
    /// See the facade's `ipc_rpc::serve`, which binds the listener from an endpoint.
    pub fn start(
        mut listener: Box<dyn Listener>,
        dispatch: Arc<dyn Dispatch>,
    ) -> Result<Self, ServeError> {
        let endpoint = listener.local_endpoint();
        let listener_closer = listener
            .closer()
            .map_err(|e| ServeError::listen(endpoint.to_string(), e))?;
        let stopping = Arc::new(AtomicBool::new(false));
        let connections = Arc::new(Connections::default());
        let accept_thread = {
            let stopping = stopping.clone();
            let connections = connections.clone();
            thread::Builder::new()
                .name(format!("ipc-rpc accept {endpoint}"))
                .spawn(move || {
                    while !stopping.load(Ordering::Acquire) {
                        match listener.accept() {
                            Ok(transport) => open_connection(transport, &dispatch, &connections),
                            Err(TransportError::Closed) => break,
                            Err(_) => thread::sleep(ACCEPT_BACKOFF),
                        }
                    }
                    // The listener drops here, removing its named objects.
                })
                .map_err(ServeError::Thread)?
        };
        Ok(RunningServer {
            endpoint,
            stopping,
            listener_closer,
            accept_thread: Some(accept_thread),
            connections,
        })
    }

    /// The endpoint as bound (the listener's [`Listener::local_endpoint`]).
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// Number of connections currently open.
    pub fn connection_count(&self) -> usize {
        self.connections.lock().threads.len()
    }

    /// Stops accepting, lets calls in flight finish and send their replies for up to
    /// [`SHUTDOWN_GRACE`], then aborts the connections still open (a send blocked on a
    /// client that does not read fails), joins every thread and removes the
    /// listener's named objects. Idempotent.
    ///
    /// A handler still running after the grace period is waited for (its reply then
    /// fails to send): handlers are never killed.
    pub fn shutdown(&mut self) {
        self.shutdown_timeout(SHUTDOWN_GRACE);
    }

    /// [`RunningServer::shutdown`] with a grace period of `grace`.
    pub fn shutdown_timeout(&mut self, grace: Duration) {
        if let Some(accept_thread) = self.accept_thread.take() {
            self.stopping.store(true, Ordering::Release);
            self.listener_closer.close();
            let _ = accept_thread.join();
        }
        self.close_connections(grace);
    }

    /// Blocks until the accept loop ends (a single-connection listener such as an
    /// inherited pipe has no more to give, or the listener failed) and every open
    /// connection has ended by itself.
    pub fn wait(mut self) {
        if let Some(accept_thread) = self.accept_thread.take() {
            let _ = accept_thread.join();
        }
        loop {
            let next = {
                let mut table = self.connections.lock();
                let id = table.threads.keys().next().copied();
                id.and_then(|id| table.threads.remove(&id))
            };
            match next {
                Some(thread) => {
                    let _ = thread.join();
                }
                None => break,
            }
        }
    }

    fn close_connections(&mut self, grace: Duration) {
        let (closers, threads) = {
            let mut table = self.connections.lock();
            table.shutting_down = true;
            (
                std::mem::take(&mut table.closers),
                std::mem::take(&mut table.threads),
            )
        };
        for closer in closers.values() {
            closer.close();
        }
        // Connections still in set-up see `shutting_down` when it ends and close.
        let deadline = Instant::now() + grace;
        while !threads.values().all(JoinHandle::is_finished) {
            if Instant::now() >= deadline {
                // Past the grace period: whatever still runs is blocked on a client
                // (or in a handler): end its sends too.
                for closer in closers.values() {
                    closer.abort();
                }
                break;
            }
            thread::sleep(SHUTDOWN_POLL);
        }
        for (_, thread) in threads {
            let _ = thread.join();
        }
    }
}

impl Drop for RunningServer {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn open_connection(
    transport: Box<dyn Transport>,
    dispatch: &Arc<dyn Dispatch>,
    connections: &Arc<Connections>,
) {
    let mut table = connections.lock();
    if table.shutting_down {
        return;
    }
    let id = table.next_id;
    table.next_id += 1;
    let dispatch = dispatch.clone();
    let registry = connections.clone();
    // Splitting may do the transport's own set-up (shared memory maps the client's
    // segment, with a time-out): on the connection's thread, so that a slow or silent
    // client never holds up the accept loop.
    let spawned = thread::Builder::new()
        .name(format!("ipc-rpc conn {id}"))
        .spawn(move || {
            CURRENT_PEER.with(|peer| peer.set(Some(transport.credentials())));
            if let Ok(Parts {
                sender,
                receiver,
                closer,
            }) = transport.split()
            {
                let mut table = registry.lock();
                if table.shutting_down {
                    closer.close();
                } else {
                    table.closers.insert(id, closer);
                    drop(table);
                    serve_connection(sender, receiver, &*dispatch);
                }
            }
            let mut table = registry.lock();
            table.closers.remove(&id);
            table.threads.remove(&id);
        });
    // Registered under the lock the thread needs to deregister, so it cannot finish first.
    if let Ok(thread) = spawned {
        table.threads.insert(id, thread);
    }
}

/// Runs one connection to its end: handshake, then request → handler → reply.
fn serve_connection(
    mut sender: Box<dyn FrameSender>,
    mut receiver: Box<dyn FrameReceiver>,
    dispatch: &dyn Dispatch,
) {
    let mut buf = Vec::with_capacity(256);
    if !handshake(&mut *sender, &mut *receiver, dispatch, &mut buf) {
        return;
    }
    loop {
        let Ok(frame) = receiver.recv(None) else {
            return;
        };
        let Ok((id, method, head)) = wire::decode_request_header(frame.head) else {
            return;
        };
        let args = Payload {
            head,
            tail: frame.tail,
        };
        let Some(error) = run_call(id, method, args, dispatch, &mut *sender, &mut buf) else {
            continue;
        };
        // The call failed before a reply went out: send the failure instead.
        buf.clear();
        let mut out = FrameBuf::vec(&mut buf);
        let encoded = wire::encode_response_header(id, STATUS_ERR, &mut out)
            .and_then(|()| encode_frame(&error, &mut out, "remote error"));
        if encoded.is_err() || sender.send(&buf).is_err() {
            return;
        }
    }
}

/// Runs the handler, which sends its own reply; returns the error to send instead when
/// it did not. A reply that cannot be sent for another reason than its size ends the
/// connection (`Some` is never returned then: the caller's send fails too).
fn run_call(
    id: u64,
    method: u16,
    args: Payload<'_>,
    dispatch: &dyn Dispatch,
    sender: &mut dyn FrameSender,
    buf: &mut Vec<u8>,
) -> Option<RemoteError> {
    let info = dispatch.info();
    let name = || info.method_name(method).to_owned();
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        dispatch.dispatch(method, args, &mut Reply::new(id, sender, buf))
    }));
    Some(match outcome {
        Ok(Ok(())) => return None,
        Ok(Err(DispatchError::UnknownMethod)) => RemoteError::UnknownMethod { index: method },
        Ok(Err(DispatchError::BadArguments(e))) => RemoteError::BadArguments {
            method: name(),
            detail: chain(&e),
        },
        Ok(Err(DispatchError::BadReply(e))) => RemoteError::BadReply {
            method: name(),
            detail: chain(&e),
        },
        Ok(Err(DispatchError::Send(TransportError::FrameTooLarge { len, max }))) => {
            RemoteError::ReplyTooLarge {
                method: name(),
                len,
                max: max as u64,
            }
        }
        Ok(Err(DispatchError::Send(e))) => RemoteError::BadReply {
            method: name(),
            detail: chain(&e),
        },
        Err(panic) => RemoteError::Panic {
            method: name(),
            message: panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a non-string panic payload".to_owned()),
        },
    })
}

/// Answers the client's hello; `false` ends the connection.
fn handshake(
    sender: &mut dyn FrameSender,
    receiver: &mut dyn FrameReceiver,
    dispatch: &dyn Dispatch,
    buf: &mut Vec<u8>,
) -> bool {
    let info = dispatch.info();
    receiver.set_max_frame(HANDSHAKE_MAX_FRAME);
    let Ok(frame) = receiver.recv(Some(Instant::now() + HANDSHAKE_TIMEOUT)) else {
        return false;
    };
    let frame = frame.into_contiguous();
    let Ok(hello) = decode_prefix::<Hello<'_>>(&mut &frame[..], "hello") else {
        return false;
    };
    if hello.magic != MAGIC {
        return false;
    }
    let accepted = hello.protocol == PROTOCOL_VERSION
        && hello.service == info.name
        && hello.fingerprint == info.fingerprint;
    let welcome = Welcome {
        magic: MAGIC,
        protocol: PROTOCOL_VERSION,
        service: info.name,
        fingerprint: info.fingerprint,
        accepted,
    };
    buf.clear();
    if encode_into(&welcome, buf, "welcome").is_err() {
        return false;
    }
    if !accepted {
        // Said why; a peer that does not read it cannot hold the thread.
        sender.set_deadline(Some(Instant::now() + HANDSHAKE_TIMEOUT));
        let _ = sender.send(buf);
        return false;
    }
    receiver.set_max_frame(usize::MAX);
    sender.send(buf).is_ok()
}
