//! [`Sink`]: where a subscription's handler sends its events, from any thread.

use std::any::Any;
use std::fmt;
use std::marker::PhantomData;
use std::sync::{Arc, PoisonError};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::codec::{FrameBuf, encode_frame, send_frame};
use crate::dispatch::{DispatchError, Opened, PushLink, Reply, ReplySender};
use crate::error::{CodecError, TransportError};
use crate::flow::{Flow, Gone, Wait};
use crate::schema::{DataModelType, NamedType, Schema};
use crate::wire::{self, STATUS_EVENT, STATUS_OK};

/// How long [`Sink::send`] waits for the subscriber to make room, unless
/// [`Sink::with_timeout`] says otherwise.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(5);

/// How many events a subscriber buffers (sent, not yet consumed): a server's sink
/// sends that many ahead of its subscriber, then waits for it to consume some.
pub const EVENT_WINDOW: u32 = 64;

/// Why an event was not sent.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SinkError {
    /// The subscriber is gone: it dropped its subscription, closed its client, or its
    /// process died (or the server is shutting down). Later sends fail alike: stop
    /// producing events for it and drop the sink.
    #[error("the subscriber is gone ({0}); stop sending and drop the sink")]
    Closed(&'static str),
    /// [`Sink::try_send`]: the subscriber's buffer is full (it has not consumed the
    /// events sent before); nothing was sent.
    #[error(
        "the subscriber's buffer of events is full (it does not read them); try again later, \
         or use `send`, which waits"
    )]
    Full,
    /// [`Sink::send`]: the subscriber made no room within the sink's timeout; nothing
    /// was sent.
    #[error(
        "the subscriber consumed no event for {after:?}; it is slow or stopped reading: drop \
         the sink, or wait longer (`Sink::with_timeout`)"
    )]
    Timeout {
        /// How long the sink waited.
        after: Duration,
    },
    /// The event is larger than the subscriber's `max_frame`; nothing was sent, and the
    /// subscription goes on.
    #[error(
        "an event of {len} bytes exceeds the subscriber's limit of {max} bytes; send smaller \
         events or raise the client's `?max_frame=`"
    )]
    TooLarge {
        /// The encoded event's length.
        len: u64,
        /// The subscriber's limit.
        max: u64,
    },
    /// The event did not encode.
    #[error("the event could not be encoded")]
    Encode(#[source] CodecError),
}

/// The part of a subscription that every clone of its sink shares: when the last one
/// goes, the stream ends (the subscriber's iterator returns `None`).
struct Stream {
    opened: Opened,
}

impl Drop for Stream {
    fn drop(&mut self) {
        let Opened { id, flow, link } = &self.opened;
        link.flows.remove(*id);
        if flow.end() && flow.gone().is_none() {
            // The normal end: the call's final reply, `()`.
            let mut out = link.replies.lock().unwrap_or_else(PoisonError::into_inner);
            let ReplySender { sender, buf, .. } = &mut *out;
            let write = |b: &mut FrameBuf<'_>| wire::encode_response_header(*id, STATUS_OK, b);
            let _ = send_frame(&mut **sender, buf, write, &[], None);
        }
    }
}

/// Sends the final reply of subscription `flow` (the end of its stream) on `link`, for
/// a subscription that its subscriber cancelled (see [`crate::flow::Flows::cancel`]).
pub(crate) fn send_end(link: &PushLink, flow: &Flow) {
    let mut out = link.replies.lock().unwrap_or_else(PoisonError::into_inner);
    let ReplySender { sender, buf, .. } = &mut *out;
    let id = flow.id();
    let write = |b: &mut FrameBuf<'_>| wire::encode_response_header(id, STATUS_OK, b);
    let _ = send_frame(&mut **sender, buf, write, &[], None);
}

/// Where a subscription's server side sends its events: the last argument of a
/// subscription method (`fn watch(&self, id: u64, events: Sink<JobEvent>)`).
///
/// `Clone + Send + Sync`: the handler may return at once and keep it, or hand clones
/// to other threads, and send from there later. The subscriber's stream ends when the
/// last clone is dropped. Sending fails with [`SinkError::Closed`] once the subscriber
/// is gone (it dropped its subscription, closed its client or died).
///
/// Flow control: the subscriber buffers at most [`EVENT_WINDOW`] events (64) that it
/// has not consumed yet; once that many are sent ahead, [`Sink::send`] waits for it to
/// consume some, up to its timeout ([`SEND_TIMEOUT`], 5 s, or
/// [`Sink::with_timeout`]), and [`Sink::try_send`] fails at once with
/// [`SinkError::Full`]. A slow subscriber holds up only its own sink: other
/// subscriptions and calls, on its connection or others, go on.
///
/// Events are encoded with serde (postcard). For byte payloads, use the facade's
/// `ipc_rpc::Bytes` (a byte string on the wire) rather than `Vec<u8>`, which serde
/// writes and reads element by element.
///
/// # Examples
///
/// (Through the `ipc-rpc` facade, whose doc tests run this; the README's "Server push"
/// section has it too.)
///
/// ```ignore
/// use ipc_rpc::{ipc_service, Sink};
///
/// #[ipc_service]
/// pub trait Ticker {
///     /// Counts from 1 to `n`, one event each, then ends.
///     fn count(&self, n: u32, events: Sink<u32>);
/// }
///
/// struct Counter;
/// impl Ticker for Counter {
///     fn count(&self, n: u32, events: Sink<u32>) {
///         // Returns at once; a thread sends the events, then drops the sink.
///         std::thread::spawn(move || {
///             for i in 1..=n {
///                 if events.send(&i).is_err() {
///                     return; // the subscriber is gone
///                 }
///             }
///         });
///     }
/// }
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let server = ipc_rpc::serve(&"tcp:127.0.0.1:0".parse()?, TickerServer::new(Counter))?;
/// let ticker = TickerClient::connect(&server.endpoint())?;
/// let got: Vec<u32> = ticker.count(3)?.collect::<Result<_, _>>()?;
/// assert_eq!(got, [1, 2, 3]);
/// server.shutdown();
/// # Ok(())
/// # }
/// ```
pub struct Sink<T> {
    stream: Arc<Stream>,
    timeout: Duration,
    _events: PhantomData<fn(T)>,
}

/// A subscription's sink hashes as the stream of its events (see `crate::schema`): a
/// method that takes `Sink<T>` is another method than one that takes a `T`.
impl<T: Schema> Schema for Sink<T> {
    const SCHEMA: &'static NamedType = &NamedType {
        name: "Sink",
        ty: &DataModelType::Events(T::SCHEMA),
    };
}

impl<T> Clone for Sink<T> {
    fn clone(&self) -> Self {
        Sink {
            stream: self.stream.clone(),
            timeout: self.timeout,
            _events: PhantomData,
        }
    }
}

impl<T> fmt::Debug for Sink<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sink")
            .field("subscription", &self.stream.opened.id)
            .field("gone", &self.stream.opened.flow.gone())
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl<T: Serialize> Sink<T> {
    /// Opens the sink of the subscription that `reply` answers, whose subscriber
    /// buffers `window` events: what a generated server calls (not for hand-written
    /// code).
    ///
    /// # Errors
    ///
    /// [`DispatchError::NoPush`] if the reply cannot carry events.
    #[doc(hidden)]
    pub fn open(reply: &mut Reply<'_>, window: u32) -> Result<Self, DispatchError> {
        let opened = reply.open_subscription(window)?;
        let flow = opened.flow.clone();
        let stream = Arc::new(Stream { opened });
        let held: Arc<dyn Any + Send + Sync> = stream.clone();
        reply.hold(flow, held);
        Ok(Sink {
            stream,
            timeout: SEND_TIMEOUT,
            _events: PhantomData,
        })
    }

    /// Sends `event`, waiting up to this sink's timeout (5 s unless
    /// [`Sink::with_timeout`]) for the subscriber to make room in its buffer.
    ///
    /// # Errors
    ///
    /// [`SinkError::Closed`] once the subscriber is gone, [`SinkError::Timeout`] if it
    /// made no room in time; see [`SinkError`].
    pub fn send(&self, event: &T) -> Result<(), SinkError> {
        self.send_until(event, Some(Instant::now() + self.timeout), self.timeout)
    }

    /// Sends `event` if the subscriber's buffer has room now; never waits for it.
    ///
    /// # Errors
    ///
    /// [`SinkError::Full`] if it has none; else as [`Sink::send`].
    pub fn try_send(&self, event: &T) -> Result<(), SinkError> {
        self.send_until(event, None, Duration::ZERO)
    }

    fn send_until(
        &self,
        event: &T,
        until: Option<Instant>,
        timeout: Duration,
    ) -> Result<(), SinkError> {
        let Opened { id, flow, link } = &self.stream.opened;
        match flow.take(until) {
            Wait::Go => {}
            Wait::Full if until.is_none() => return Err(SinkError::Full),
            Wait::Full => return Err(SinkError::Timeout { after: timeout }),
            Wait::Gone(gone) => return Err(closed(gone)),
        }
        let id = *id;
        let write = |b: &mut FrameBuf<'_>| {
            wire::encode_response_header(id, STATUS_EVENT, b)?;
            encode_frame(event, b, "event")
        };
        let mut out = link.replies.lock().unwrap_or_else(PoisonError::into_inner);
        let ReplySender {
            sender,
            buf,
            peer_limit,
        } = &mut *out;
        // A client that reads nothing at all fills the transport: give up at the
        // deadline here too (the transport finishes a cut frame with its next send).
        let send_by = until.unwrap_or_else(|| Instant::now() + timeout.max(SEND_TIMEOUT));
        sender.set_deadline(Some(send_by));
        let sent = send_frame(&mut **sender, buf, write, &[], *peer_limit);
        sender.set_deadline(None);
        drop(out);
        match sent {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => {
                flow.give_back();
                Err(SinkError::Encode(e))
            }
            Err(TransportError::FrameTooLarge { len, max }) => {
                flow.give_back();
                Err(SinkError::TooLarge { len, max })
            }
            Err(TransportError::TimedOut) => Err(SinkError::Timeout { after: timeout }),
            Err(_) => {
                flow.close(Gone::Disconnected);
                Err(closed(Gone::Disconnected))
            }
        }
    }
}

impl<T> Sink<T> {
    /// A sink of the same subscription whose [`Sink::send`] waits up to `timeout` for
    /// the subscriber to make room.
    pub fn with_timeout(&self, timeout: Duration) -> Self {
        Sink {
            stream: self.stream.clone(),
            timeout,
            _events: PhantomData,
        }
    }

    /// Whether the subscriber is gone (sends fail with [`SinkError::Closed`]).
    pub fn is_closed(&self) -> bool {
        self.stream.opened.flow.gone().is_some()
    }
}

fn closed(gone: Gone) -> SinkError {
    SinkError::Closed(match gone {
        Gone::Dropped => "it dropped the subscription",
        Gone::Disconnected => "its connection ended: it closed its client or exited",
        Gone::Panicked => "the handler panicked",
    })
}
