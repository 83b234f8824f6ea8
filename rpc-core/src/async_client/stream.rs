//! Subscriptions on the async client: a [`futures_core::Stream`] of a server's events.
//!
//! The connection's reader thread puts a subscription's events in its slot (bounded
//! by credit, like the blocking client's: at most
//! [`EVENT_WINDOW`](crate::sink::EVENT_WINDOW) unconsumed) and wakes the task that
//! polls it; the stream grants credit back through the writer each time half of its
//! window was consumed. Dropping it queues a cancel frame; the events still under way
//! are read and dropped by the reader.

use std::fmt;
use std::future::poll_fn;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use serde::de::DeserializeOwned;

use super::io::{Events, Outgoing, Shared, Slot, lock};
use crate::buf::{FrameBuf, Payload};
use crate::codec::encode_frame;
use crate::connection::decode_reply;
use crate::error::{CodecError, RpcError};
use crate::sink::EVENT_WINDOW;
use crate::wire;

/// The async client's end of a subscription: the events a server sends through its
/// `Sink<T>`, in order, as a [`futures_core::Stream`] of `Result<T, RpcError>`
/// (use it with `tokio_stream::StreamExt` or `futures::StreamExt`, or
/// [`AsyncSubscription::next`]).
///
/// It ends (`None`) once the server dropped every clone of the sink, or after the one
/// error that ends it (`RemotePanic`, `Disconnected`: a dead server never leaves it
/// pending for ever). Dropping it tells the server, whose sends then fail. It never
/// blocks the runtime: the connection's reader thread fills it.
pub struct AsyncSubscription<T> {
    shared: Arc<Shared>,
    id: u64,
    consumed: u32,
    done: bool,
    _events: PhantomData<fn() -> T>,
}

impl<T> fmt::Debug for AsyncSubscription<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsyncSubscription")
            .field("peer", &self.shared.peer)
            .field("id", &self.id)
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}

impl<T: DeserializeOwned> AsyncSubscription<T> {
    /// Queues the request of subscription method `method` (see
    /// [`AsyncClient::subscribe`](super::AsyncClient::subscribe)).
    pub(super) fn start(
        shared: &Arc<Shared>,
        method: u16,
        encode_args: impl FnOnce(&mut FrameBuf<'_>) -> Result<(), CodecError>,
    ) -> Result<Self, RpcError> {
        let closed = || RpcError::Disconnected {
            peer: shared.peer.clone(),
            reason: lock(&shared.calls)
                .closed
                .clone()
                .unwrap_or_else(|| "the connection is closed".into()),
            source: None,
        };
        let id = {
            let mut calls = lock(&shared.calls);
            if calls.closed.is_some() {
                drop(calls);
                return Err(closed());
            }
            let id = calls.next_id;
            calls.next_id += 1;
            calls.pending.insert(id, Slot::Stream(Events::default()));
            id
        };
        let subscription = AsyncSubscription {
            shared: shared.clone(),
            id,
            consumed: 0,
            done: false,
            _events: PhantomData,
        };
        let mut head = Vec::with_capacity(64);
        {
            let mut out = FrameBuf::vec(&mut head);
            wire::encode_request_header(id, method, None, true, &mut out)?;
            encode_args(&mut out)?;
            encode_frame(&EVENT_WINDOW, &mut out, "arguments")?;
        }
        if let Some(max) = shared.server_limit.filter(|&max| head.len() > max) {
            return Err(RpcError::FrameTooLarge {
                len: head.len() as u64,
                max: max as u64,
                limit: crate::error::FrameLimit::ServerRequest,
            });
        }
        let queued = shared.queue(Outgoing {
            call: Some(id),
            head,
            tail: None,
        });
        if !queued {
            return Err(closed());
        }
        Ok(subscription)
    }
}

impl<T: DeserializeOwned> AsyncSubscription<T> {
    /// The next event: `None` once the stream ended.
    pub async fn next(&mut self) -> Option<Result<T, RpcError>> {
        poll_fn(|cx| self.poll_event(cx)).await
    }

    /// Whether the stream ended.
    pub fn is_done(&self) -> bool {
        self.done
    }

    fn poll_event(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<T, RpcError>>> {
        if self.done {
            return Poll::Ready(None);
        }
        let mut calls = lock(&self.shared.calls);
        let Some(Slot::Stream(events)) = calls.pending.get_mut(&self.id) else {
            unreachable!("a subscription's slot lives until it is dropped")
        };
        if let Some((_, head, tail)) = events.queue.pop_front() {
            drop(calls);
            self.consumed += 1;
            if self.consumed >= (EVENT_WINDOW / 2).max(1) {
                let mut frame = Vec::with_capacity(16);
                let granted = self.consumed;
                if wire::encode_credit(self.id, granted, &mut FrameBuf::vec(&mut frame)).is_ok()
                    && self.shared.queue(Outgoing {
                        call: None,
                        head: frame,
                        tail: None,
                    })
                {
                    self.consumed = 0;
                }
            }
            let payload = Payload { head: &head, tail };
            return Poll::Ready(Some(
                payload.decode_all::<T>("event").map_err(RpcError::from),
            ));
        }
        let Some(end) = events.end.take() else {
            match &events.waker {
                Some(w) if w.will_wake(cx.waker()) => {}
                _ => events.waker = Some(cx.waker().clone()),
            }
            return Poll::Pending;
        };
        drop(calls);
        self.done = true;
        let result = end.and_then(|(status, head, tail)| {
            let decode = |p: Payload<'_>| p.decode_all::<()>("reply");
            decode_reply(
                &self.shared.peer,
                self.shared.frame_limit,
                status,
                Payload { head: &head, tail },
                decode,
            )
        });
        Poll::Ready(result.err().map(Err))
    }
}

impl<T: DeserializeOwned> futures_core::Stream for AsyncSubscription<T> {
    type Item = Result<T, RpcError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.get_mut().poll_event(cx)
    }
}

impl<T> Unpin for AsyncSubscription<T> {}

impl<T> Drop for AsyncSubscription<T> {
    fn drop(&mut self) {
        let open = {
            let mut calls = lock(&self.shared.calls);
            let ended = match calls.pending.remove(&self.id) {
                Some(Slot::Stream(events)) => events.end.is_some(),
                _ => true,
            };
            !self.done && !ended && calls.closed.is_none()
        };
        if !open || self.shared.unqueue(self.id) {
            return;
        }
        self.shared.queue_cancel(self.id);
    }
}

#[cfg(test)]
mod tests {
    use crate::async_client::AsyncClient;
    use crate::buf::FrameBuf;
    use crate::codec::encode_frame;
    use crate::schema::ServiceInfo;
    use crate::sink::EVENT_WINDOW;
    use crate::transport::{Transport, mem};
    use crate::wire::{self, STATUS_EVENT};

    static INFO: ServiceInfo = ServiceInfo {
        name: "Nothing",
        methods: &[],
    };

    /// A server that sends a subscription more events than its credit ends the
    /// connection: the stream gets `Disconnected` saying why, and the client's
    /// buffer never grows past the window.
    #[test]
    fn events_past_the_credit_end_the_connection() {
        let (client_end, server_end) = mem::pair();
        let server = std::thread::spawn(move || {
            let mut parts = Box::new(server_end).split().unwrap();
            parts.receiver.recv(None).unwrap(); // the hello
            parts.sender.send(&wire::test_welcome(INFO.name)).unwrap();
            let request = parts.receiver.recv(None).unwrap().into_contiguous();
            let (header, _) = wire::decode_request_header(&request).unwrap();
            for n in 0..=EVENT_WINDOW * 2 {
                let mut frame = Vec::new();
                let mut out = FrameBuf::vec(&mut frame);
                wire::encode_response_header(header.id, STATUS_EVENT, &mut out).unwrap();
                encode_frame(&n, &mut out, "event").unwrap();
                if parts.sender.send(&frame).is_err() {
                    break; // the client closed the connection
                }
            }
            parts
        });
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let client = AsyncClient::handshake(Box::new(client_end), &INFO).unwrap();
            let mut events = client
                .subscribe::<u32>(0, |_: &mut FrameBuf<'_>| Ok(()))
                .await
                .unwrap();
            // Nothing taken until the server has sent past the window.
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            let mut taken = 0;
            let err = loop {
                match events.next().await {
                    Some(Ok(_)) => taken += 1,
                    Some(Err(e)) => break e,
                    None => panic!("the stream ended normally"),
                }
            };
            assert!(taken <= EVENT_WINDOW, "took {taken}");
            assert!(
                err.to_string().contains("more events than its credit"),
                "{err}"
            );
        });
        drop(server.join().unwrap());
    }
}
