//! Running one call: the handler behind `catch_unwind`, and the error reply when it
//! sent none.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::AtomicU64;
use std::sync::{Mutex, PoisonError};

use crate::buf::{FrameBuf, Payload};
use crate::codec::encode_frame;
use crate::dispatch::{Dispatch, DispatchError, PushLink, Reply, ReplySender};
use crate::error::{RemoteError, TransportError, chain};
use crate::flow::Gone;
use crate::wire::{self, STATUS_ERR};

/// Runs the handler, which sends its own reply; returns the error to send instead when
/// it did not.
pub(super) fn run(
    id: u64,
    method: u16,
    args: Payload<'_>,
    dispatch: &dyn Dispatch,
    push: &PushLink,
    running: Option<(&AtomicU64, u64)>,
) -> Option<RemoteError> {
    let info = dispatch.info();
    let name = || info.method_name(method).to_owned();
    let mut reply = Reply::shared(id, &push.replies, running).with_push(push);
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        dispatch.dispatch(method, args, &mut reply)
    }));
    // A subscription's stream: a handler that failed ends it with its error instead.
    let held = reply.take_held();
    drop(reply);
    if let Some((flow, stream)) = held {
        if matches!(outcome, Ok(Ok(()))) {
            // The stream ends when the last sink goes, perhaps this one.
            drop(stream);
            return None;
        }
        flow.close(Gone::Panicked);
        flow.end();
        drop(stream);
    }
    Some(match outcome {
        Ok(Ok(())) => return None,
        Ok(Err(DispatchError::NoPush)) => RemoteError::BadReply {
            method: name(),
            detail: "this server cannot carry a subscription's events".into(),
        },
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
                max,
            }
        }
        Ok(Err(DispatchError::Send(e))) => RemoteError::BadReply {
            method: name(),
            detail: chain(&e),
        },
        Err(panic) => {
            let message = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a non-string panic payload".to_owned());
            crate::__event!(error, method = %name(), %message, "handler panicked (the server goes on)");
            RemoteError::Panic {
                method: name(),
                message,
            }
        }
    })
}

/// Sends `error` as the reply to call `id`.
///
/// # Errors
///
/// When the reply could not be encoded or sent: the connection is then unusable.
pub(super) fn send_error(
    id: u64,
    error: &RemoteError,
    replies: &Mutex<ReplySender>,
) -> Result<(), ()> {
    let mut out = replies.lock().unwrap_or_else(PoisonError::into_inner);
    let ReplySender { sender, buf, .. } = &mut *out;
    buf.clear();
    let mut frame = FrameBuf::vec(buf);
    wire::encode_response_header(id, STATUS_ERR, &mut frame)
        .and_then(|()| encode_frame(error, &mut frame, "remote error"))
        .map_err(drop)?;
    sender.send(buf).map_err(drop)
}
