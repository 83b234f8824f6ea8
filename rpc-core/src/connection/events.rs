//! Subscriptions on the blocking client: a call whose replies are a stream of events,
//! then its final reply.
//!
//! A subscription is a pending call whose entry has an event queue. Whoever reads the
//! connection (a waiting caller, or the subscriber itself) puts the subscription's
//! events there; [`Subscription::next`] takes them in order, and with nothing queued
//! takes the reading role like a waiting call does. The queue is bounded by credit:
//! the server sends at most [`crate::sink::EVENT_WINDOW`] events the subscriber has
//! not consumed, so a reader never waits for a slow subscriber and never buffers more
//! than that. The subscriber grants credit back (a credit frame) each time it has
//! consumed half of its window. Dropping the subscription sends a cancel frame; the
//! events still under way and the final reply are then read and dropped (the
//! drainer's owed replies), like a timed-out call's.

use std::any::Any;
use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread;
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;

use super::{Connection, Handed, Request, lock, next_reader};
use crate::buf::{FrameBuf, Payload};
use crate::codec::encode_frame;
use crate::error::{CodecError, RpcError, TransportError};
use crate::wire::{self, STATUS_EVENT};

/// How long a subscription's credit or cancel frame may take to send.
const CONTROL_SEND_TIMEOUT: Duration = Duration::from_secs(1);

/// What a subscriber found.
enum Next {
    Event(Vec<u8>, Option<Vec<u8>>),
    End(Handed),
    Failed(RpcError),
}

impl Connection {
    /// Sends a subscription request for `method` whose subscriber buffers `window`
    /// events; its id, once sent.
    pub(crate) fn subscribe(
        &self,
        method: u16,
        encode_args: impl Fn(&mut FrameBuf<'_>) -> Result<(), CodecError>,
        window: u32,
        deadline: Option<Instant>,
    ) -> Result<u64, RpcError> {
        let mut call = self.register()?;
        if let Some(p) = lock(&self.calls).pending.get_mut(&call.id) {
            p.events = Some(Box::default());
        }
        let request = Request {
            method,
            encode_args: |buf: &mut FrameBuf<'_>| {
                encode_args(buf)?;
                // The sink's place in the arguments: how many events we buffer.
                encode_frame(&window, buf, "arguments")
            },
            bulk: None,
        };
        self.send_request(&mut call, request, deadline)
            .map_err(super::SendError::into_error)?;
        let id = call.id;
        // The entry now lives as long as the `Subscription`, which removes it.
        std::mem::forget(call);
        Ok(id)
    }

    /// The next event or the end of subscription `id`, waiting until `deadline`.
    fn next_event(&self, id: u64, deadline: Option<Instant>) -> Next {
        loop {
            let mut calls = lock(&self.calls);
            let closed = calls.closed.clone();
            let reader_free = !calls.reading;
            let Some(p) = calls.pending.get_mut(&id) else {
                unreachable!("a subscription's entry lives until it is dropped")
            };
            let found = match p.events.as_mut().and_then(|queue| queue.pop_front()) {
                Some((_, head, tail)) => Some(Next::Event(head, tail)),
                None => p.reply.take().map(Next::End),
            };
            if let Some(found) = found {
                p.waiter = None;
                // Picked to read, perhaps, while our event was handed over: pass it on.
                let next = if calls.reading {
                    None
                } else {
                    next_reader(&calls)
                };
                drop(calls);
                if let Some(t) = next {
                    t.unpark();
                }
                return found;
            }
            if let Some(closed) = closed {
                return Next::Failed(self.disconnected(&closed));
            }
            if reader_free {
                p.waiter = None;
                calls.reading = true;
                let polled = self.polled.load(Ordering::Relaxed);
                drop(calls);
                if let Some(found) = self.read_for(id, deadline, polled) {
                    return found;
                }
                continue;
            }
            let left = match deadline {
                None => None,
                Some(d) => match d.checked_duration_since(Instant::now()) {
                    Some(left) if !left.is_zero() => Some(left),
                    _ => return Next::Failed(self.timed_out()),
                },
            };
            p.waiter = Some(thread::current());
            drop(calls);
            match left {
                None => thread::park(),
                Some(left) => thread::park_timeout(left),
            }
        }
    }

    fn timed_out(&self) -> RpcError {
        RpcError::Timeout {
            peer: self.peer.clone(),
            after: Duration::ZERO,
        }
    }

    /// Holding the reading role: reads until a frame of subscription `id` comes,
    /// handing the others over, then gives the role up. `None` if a polling caller
    /// handed frames over since the role was taken (`polled` then; see
    /// `Connection::polled`): the subscription's may be among them, so it looks again.
    fn read_for(&self, id: u64, deadline: Option<Instant>, polled: u64) -> Option<Next> {
        let mut receiver = lock(&self.receiver);
        // SYNC: Acquire, paired with the Release increment of the polling caller, made
        // while it held the receiver.
        if self.polled.load(Ordering::Acquire) != polled {
            drop(receiver);
            self.give_role_up();
            return None;
        }
        let found = loop {
            let frame = match receiver.recv(deadline) {
                Ok(frame) => frame,
                Err(TransportError::TimedOut) => break Next::Failed(self.timed_out()),
                Err(e) => {
                    drop(receiver);
                    let error = self.fail(e);
                    self.give_role_up();
                    return Some(Next::Failed(error));
                }
            };
            let Ok((reply_id, status, head)) = wire::decode_response_header(frame.head) else {
                drop(receiver);
                let error = self.fail(TransportError::Corrupt("malformed reply header"));
                self.give_role_up();
                return Some(Next::Failed(error));
            };
            if reply_id == id {
                let head = head.to_vec();
                break if status == STATUS_EVENT {
                    Next::Event(head, frame.tail)
                } else {
                    Next::End((status, head, frame.tail))
                };
            }
            if let Err(error) = self.hand_over(reply_id, status, head, frame.tail) {
                drop(receiver);
                self.give_role_up();
                return Some(Next::Failed(error));
            }
        };
        drop(receiver);
        self.give_role_up();
        Some(found)
    }

    /// Frees the reading role and wakes whoever should take it.
    fn give_role_up(&self) {
        let mut calls = lock(&self.calls);
        calls.reading = false;
        self.tell();
        let next = next_reader(&calls);
        drop(calls);
        if let Some(t) = next {
            t.unpark();
        }
    }

    /// Lets subscription `id` send `events` more events.
    fn grant(&self, id: u64, events: u32) -> bool {
        self.control(|buf| wire::encode_credit(id, events, buf))
    }

    /// Sends a small control frame; whether it went (or will go whole with the next
    /// send).
    fn control(&self, encode: impl Fn(&mut FrameBuf<'_>) -> Result<(), CodecError>) -> bool {
        let mut sending = lock(&self.sending);
        let super::Sending { sender, buf } = &mut *sending;
        buf.clear();
        if encode(&mut FrameBuf::vec(buf)).is_err() {
            return false;
        }
        sender.set_deadline(Some(Instant::now() + CONTROL_SEND_TIMEOUT));
        match sender.send(buf) {
            Ok(()) => true,
            Err(TransportError::TimedOut) => sender.has_backlog(),
            Err(_) => false,
        }
    }

    /// Ends subscription `id` from the subscriber's side: its entry goes, the server is
    /// told (unless the stream `ended` already), and whatever it still sends is read and
    /// dropped.
    fn unsubscribe(&self, id: u64, ended: bool) {
        let calls = lock(&self.calls);
        let open = !ended && calls.closed.is_none();
        self.forget(calls, id, open);
        if open {
            crate::__event!(debug, peer = %self.peer, call = id, "subscription dropped; telling the server");
            self.control(|buf| wire::encode_cancel(id, buf));
        }
    }
}

/// The client's end of a subscription: the events a server sends through its
/// `Sink<T>`, in order, as an [`Iterator`] of `Result<T, RpcError>`.
///
/// A generated client's subscription method returns one
/// (`fn watch(&self, id: JobId) -> Result<Subscription<JobEvent>, RpcError>`).
///
/// - [`Iterator::next`] waits for the next event; it returns `None` once the server
///   dropped every clone of the sink (the stream's normal end), or after the one error
///   that ends it: a handler that panicked (`RemotePanic`) or a connection that ended
///   (`Disconnected`, within the transport's liveness bound when the server dies: never
///   a hang).
/// - [`Subscription::recv_timeout`] waits at most a given time.
/// - Dropping it tells the server: its sink's sends fail from then on.
///
/// It buffers at most [`EVENT_WINDOW`](crate::sink::EVENT_WINDOW) (64) events that
/// arrived before it took them; the server's sink waits while that many are unread.
/// Calls and other subscriptions share its connection and go on meanwhile.
///
/// The README's "Server push" section has a runnable example (with `Sink`), run as
/// one of the facade's doc tests.
pub struct Subscription<T> {
    conn: Arc<Connection>,
    id: u64,
    window: u32,
    /// Events taken since credit was last granted.
    consumed: u32,
    /// The stream ended (its final reply or an error was returned).
    done: bool,
    /// Held while the subscription lives (a pool counts it as its worker's call).
    _lease: Option<Box<dyn Any + Send + Sync>>,
    _events: PhantomData<fn() -> T>,
}

impl<T> fmt::Debug for Subscription<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Subscription")
            .field("peer", &self.conn.peer())
            .field("id", &self.id)
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}

impl<T: DeserializeOwned> Subscription<T> {
    /// Subscribes: sends the request of subscription method `method` over `conn`
    /// (`encode_args` writes its arguments but the sink), giving up sending at
    /// `deadline`.
    pub(crate) fn start(
        conn: Arc<Connection>,
        method: u16,
        encode_args: impl Fn(&mut FrameBuf<'_>) -> Result<(), CodecError>,
        deadline: Option<Instant>,
        lease: Option<Box<dyn Any + Send + Sync>>,
    ) -> Result<Self, RpcError> {
        let window = crate::sink::EVENT_WINDOW;
        let id = conn.subscribe(method, encode_args, window, deadline)?;
        Ok(Subscription {
            conn,
            id,
            window,
            consumed: 0,
            done: false,
            _lease: lease,
            _events: PhantomData,
        })
    }

    /// The next event, waiting at most `timeout`: `Ok(Some(event))`, `Ok(None)` once the
    /// stream ended, or `Err`: `Timeout` if none came in time (the subscription goes
    /// on), or the error that ended the stream (`Disconnected`, `RemotePanic`, …; then
    /// `Ok(None)`).
    ///
    /// # Errors
    ///
    /// See above.
    pub fn recv_timeout(&mut self, timeout: Duration) -> Result<Option<T>, RpcError> {
        match self.take(Some(Instant::now() + timeout)) {
            None => Ok(None),
            Some(Ok(event)) => Ok(Some(event)),
            Some(Err(RpcError::Timeout { peer, .. })) => Err(RpcError::Timeout {
                peer,
                after: timeout,
            }),
            Some(Err(e)) => Err(e),
        }
    }

    /// Whether the stream ended (`next` returns `None` from now on).
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// Grants the server the events consumed since the last grant, once they are half
    /// the window.
    fn grant_consumed(&mut self) {
        if self.consumed >= (self.window / 2).max(1) && self.conn.grant(self.id, self.consumed) {
            self.consumed = 0;
        }
    }

    fn take(&mut self, deadline: Option<Instant>) -> Option<Result<T, RpcError>> {
        if self.done {
            return None;
        }
        // Again here: a grant whose send failed (the server read nothing for a second)
        // is retried before waiting for an event that may wait for it.
        self.grant_consumed();
        match self.conn.next_event(self.id, deadline) {
            Next::Event(head, tail) => {
                self.consumed += 1;
                self.grant_consumed();
                let payload = Payload { head: &head, tail };
                Some(payload.decode_all::<T>("event").map_err(RpcError::from))
            }
            Next::End((status, head, tail)) => {
                self.done = true;
                let payload = Payload { head: &head, tail };
                let decode = |p: Payload<'_>| p.decode_all::<()>("reply");
                match super::decode_reply(
                    &self.conn.peer,
                    self.conn.frame_limit,
                    status,
                    payload,
                    decode,
                ) {
                    Ok(()) => None,
                    Err(e) => Some(Err(e)),
                }
            }
            Next::Failed(e @ RpcError::Timeout { .. }) => Some(Err(e)),
            Next::Failed(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}

impl<T: DeserializeOwned> Iterator for Subscription<T> {
    type Item = Result<T, RpcError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.take(None)
    }
}

impl<T> Drop for Subscription<T> {
    fn drop(&mut self) {
        self.conn.unsubscribe(self.id, self.done);
    }
}
