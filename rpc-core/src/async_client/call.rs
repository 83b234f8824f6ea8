//! One call in flight: a future that resolves to its reply, and that abandons the
//! call when it is dropped first.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use crate::error::RpcError;

use super::io::{Handed, Shared, Slot, lock};

/// The reply of call `id`, once the reader has it.
///
/// Dropped before that (its task was cancelled, its `select!` took another branch,
/// its time-out passed), it removes the call: a request not sent yet is taken out of
/// the queue, else the server gets a cancel frame (its handler sees
/// `ipc_rpc::cancelled()`), and the late reply is read and dropped.
pub(super) struct Reply {
    shared: Arc<Shared>,
    id: u64,
    done: bool,
}

impl Reply {
    /// Registers a call and takes its id; `Disconnected` if the connection is closed.
    pub(super) fn register(shared: &Arc<Shared>) -> Result<(Reply, bool), RpcError> {
        let mut calls = lock(&shared.calls);
        if let Some(reason) = &calls.closed {
            return Err(RpcError::Disconnected {
                peer: shared.peer.clone(),
                reason: reason.clone(),
                source: None,
            });
        }
        let id = calls.next_id;
        calls.next_id += 1;
        calls.pending.insert(id, Slot::Waiting(None));
        let overlaps = calls.pending.len() > 1;
        Ok((
            Reply {
                shared: shared.clone(),
                id,
                done: false,
            },
            overlaps,
        ))
    }

    /// This call's id.
    pub(super) fn id(&self) -> u64 {
        self.id
    }
}

impl Future for Reply {
    type Output = Result<Handed, RpcError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let id = self.id;
        let mut calls = lock(&self.shared.calls);
        let Some(slot) = calls.pending.get_mut(&id) else {
            unreachable!("a call's slot lives until its Reply is done or dropped")
        };
        match slot {
            Slot::Waiting(waker) => {
                match waker {
                    Some(w) if w.will_wake(cx.waker()) => {}
                    _ => *waker = Some(cx.waker().clone()),
                }
                Poll::Pending
            }
            Slot::Stream(_) => unreachable!("a call's slot is never a subscription's"),
            Slot::Done(_) => {
                let Some(Slot::Done(result)) = calls.pending.remove(&id) else {
                    unreachable!("matched just above")
                };
                drop(calls);
                self.done = true;
                Poll::Ready(result)
            }
        }
    }
}

impl Drop for Reply {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let answered = {
            let mut calls = lock(&self.shared.calls);
            let answered = matches!(calls.pending.remove(&self.id), Some(Slot::Done(_)));
            answered || calls.closed.is_some()
        };
        if answered || self.shared.unqueue(self.id) {
            return;
        }
        self.shared.queue_cancel(self.id);
    }
}
