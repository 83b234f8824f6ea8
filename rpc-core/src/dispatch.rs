//! What a generated `{Trait}Server<S>` implements, and what identifies a service.

use std::any::Any;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use serde::Serialize;

use crate::codec::{FrameBuf, Payload, encode_bulk_len, encode_frame, send_frame};
use crate::error::{CodecError, TransportError};
use crate::flow::{Flow, Flows};
pub use crate::schema::ServiceInfo;
use crate::transport::FrameSender;
use crate::wire::{self, STATUS_OK};

/// Why a request could not be run.
#[derive(Debug)]
pub enum DispatchError {
    /// No method has that index.
    UnknownMethod,
    /// The arguments did not decode.
    BadArguments(CodecError),
    /// The return value did not encode.
    BadReply(CodecError),
    /// Sending the reply failed (`FrameTooLarge` leaves the connection usable).
    Send(TransportError),
    /// The method is a subscription, and this reply cannot carry events (it was made
    /// with [`Reply::new`] or [`Reply::shared`] alone, without [`Reply::with_push`]).
    NoPush,
}

/// What a subscription's sink keeps of its connection to send events from any thread:
/// the shared reply sender and the connection's open subscriptions. A server session
/// has one and lends it to each call's [`Reply`].
#[derive(Clone)]
pub struct PushLink {
    /// The connection's sender, shared by its calls and sinks.
    pub replies: Arc<Mutex<ReplySender>>,
    /// The connection's open subscriptions.
    pub flows: Arc<Flows>,
}

/// A subscription's flow and the handle that keeps its stream open (see
/// [`Reply::hold`]).
pub type Held = (Arc<Flow>, Arc<dyn Any + Send + Sync>);

/// What [`Reply::open_subscription`] gives a sink: the call's id, its flow and the
/// connection.
pub struct Opened {
    /// The subscription's call id.
    pub id: u64,
    /// Its credit and state.
    pub flow: Arc<Flow>,
    /// Its connection.
    pub link: PushLink,
}

/// A connection's sending half and the scratch buffer its replies are encoded in.
pub struct ReplySender {
    /// The connection's sender.
    pub sender: Box<dyn FrameSender>,
    /// Reused scratch space for encoding.
    pub buf: Vec<u8>,
    /// The client's `max_frame`, learned at the handshake, where it is under this
    /// side's: a reply over it is not sent, and the call fails with `ReplyTooLarge`
    /// instead (the connection stays usable).
    pub peer_limit: Option<usize>,
}

/// Where a handler's return value goes: encoded into the connection's reused scratch
/// vector and sent (see [`send_frame`]); a returned byte string is sent from where it
/// is ([`Reply::send_ok_bytes`]).
pub struct Reply<'a> {
    id: u64,
    out: ReplyOut<'a>,
    /// Where a subscription's sink sends from, if this reply may carry events.
    push: Option<&'a PushLink>,
    /// The subscription opened by this call, and the handle that keeps its stream open
    /// while the handler runs (see [`Reply::hold`]); boxed, so that a plain call's reply
    /// stays small.
    held: Option<Box<Held>>,
}

enum ReplyOut<'a> {
    /// The caller holds the sender for the whole call.
    Direct {
        sender: &'a mut dyn FrameSender,
        buf: &'a mut Vec<u8>,
    },
    /// Calls of one connection run at once: the sender is locked only to send.
    Shared {
        sender: &'a Mutex<ReplySender>,
        /// Moved on from its odd value when the reply starts to go out (see
        /// [`Reply::shared`]).
        running: Option<(&'a AtomicU64, u64)>,
    },
}

impl<'a> Reply<'a> {
    /// The reply to request `id`, sent on `sender`; `buf` is reused scratch space.
    pub fn new(id: u64, sender: &'a mut dyn FrameSender, buf: &'a mut Vec<u8>) -> Self {
        Reply {
            id,
            out: ReplyOut::Direct { sender, buf },
            push: None,
            held: None,
        }
    }

    /// The reply to request `id`, sent on a sender that other calls of the same
    /// connection share: it is locked only while the reply is encoded and sent.
    /// `running` is a counter and the odd value this call set in it: when the reply
    /// starts to go out, the counter moves on to the next even value, unless something
    /// else moved it already. The server watches it to tell a handler that runs long
    /// from a reply that takes long to send.
    pub fn shared(
        id: u64,
        sender: &'a Mutex<ReplySender>,
        running: Option<(&'a AtomicU64, u64)>,
    ) -> Self {
        Reply {
            id,
            out: ReplyOut::Shared { sender, running },
            push: None,
            held: None,
        }
    }

    /// This reply, able to open a subscription whose sink sends over `link` (which must
    /// share the sender the reply was made with).
    pub fn with_push(mut self, link: &'a PushLink) -> Self {
        self.push = Some(link);
        self
    }

    /// Opens a subscription for this call, with `window` events of credit: what a
    /// generated server does for a method that takes a `Sink`. Its final reply is sent
    /// when the sink is dropped, not by the dispatcher.
    ///
    /// # Errors
    ///
    /// [`DispatchError::NoPush`] if this reply was not made [`Reply::with_push`].
    pub fn open_subscription(&mut self, window: u32) -> Result<Opened, DispatchError> {
        let link = self.push.ok_or(DispatchError::NoPush)?;
        Ok(Opened {
            id: self.id,
            flow: link.flows.open(self.id, window),
            link: link.clone(),
        })
    }

    /// Keeps `stream` (a handle that sends the subscription's final reply when the last
    /// of its kind is dropped) until this reply is dropped: the stream of a handler
    /// that panics ends with `RemotePanic` (see [`Reply::take_held`]), not with the
    /// sink's normal end.
    pub fn hold(&mut self, flow: Arc<Flow>, stream: Arc<dyn Any + Send + Sync>) {
        self.held = Some(Box::new((flow, stream)));
    }

    /// The subscription this call opened and the handle [`Reply::hold`] kept.
    pub fn take_held(&mut self) -> Option<Held> {
        self.held.take().map(|held| *held)
    }

    /// The request id this reply answers.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Sends the frame `write` produces, followed by `bulk`.
    fn send(
        &mut self,
        write: impl Fn(&mut FrameBuf<'_>) -> Result<(), CodecError>,
        bulk: &[u8],
    ) -> Result<(), DispatchError> {
        let sent = match &mut self.out {
            ReplyOut::Direct { sender, buf } => send_frame(&mut **sender, buf, write, bulk, None),
            ReplyOut::Shared { sender, running } => {
                if let Some((running, seq)) = *running {
                    let _ = running.compare_exchange(
                        seq,
                        seq + 1,
                        Ordering::Relaxed,
                        Ordering::Relaxed,
                    );
                }
                let mut guard = sender.lock().unwrap_or_else(PoisonError::into_inner);
                let ReplySender {
                    sender,
                    buf,
                    peer_limit,
                } = &mut *guard;
                send_frame(&mut **sender, buf, write, bulk, *peer_limit)
            }
        };
        sent.map_err(DispatchError::Send)?
            .map_err(DispatchError::BadReply)
    }

    /// Encodes `value` as this call's successful reply and sends it.
    ///
    /// # Errors
    ///
    /// [`DispatchError::BadReply`] if it does not encode, [`DispatchError::Send`] if the
    /// transport refuses it.
    pub fn send_ok<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), DispatchError> {
        let id = self.id;
        let write = |buf: &mut FrameBuf<'_>| {
            wire::encode_response_header(id, STATUS_OK, buf)?;
            encode_frame(value, buf, "reply")
        };
        self.send(write, &[])
    }

    /// Sends a byte string as this call's successful reply, the same bytes on the wire
    /// as [`Reply::send_ok`] of a `Vec<u8>`, but never copied into a buffer: the
    /// transport sends it from `bytes` (see [`crate::FrameSender::send_parts`]).
    ///
    /// # Errors
    ///
    /// As [`Reply::send_ok`].
    pub fn send_ok_bytes(&mut self, bytes: &[u8]) -> Result<(), DispatchError> {
        let id = self.id;
        let write = |buf: &mut FrameBuf<'_>| {
            wire::encode_response_header(id, STATUS_OK, buf)?;
            encode_bulk_len(bytes.len(), buf)
        };
        self.send(write, bytes)
    }
}

/// A server-side service: decodes arguments, runs the handler, encodes the reply.
///
/// Implemented by the generated `{Trait}Server<S>`; a handler's panic is caught by the
/// caller of [`Dispatch::dispatch`] and sent back as `RemotePanic`.
pub trait Dispatch: Send + Sync + 'static {
    /// The service this dispatcher serves.
    fn info(&self) -> &'static ServiceInfo;

    /// Runs method `method` on `args` (the request's bytes after its header) and sends
    /// its return value with `reply`.
    ///
    /// # Errors
    ///
    /// See [`DispatchError`]; nothing was sent when it fails.
    fn dispatch(
        &self,
        method: u16,
        args: Payload<'_>,
        reply: &mut Reply<'_>,
    ) -> Result<(), DispatchError>;
}
