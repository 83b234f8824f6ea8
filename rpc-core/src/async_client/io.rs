//! The two threads of an async connection: the writer sends the frames calls queued,
//! the reader reads every reply and hands it to its call.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::task::Waker;
use std::thread;

use crate::buf::FrameBuf;
use crate::connection::{Handshaken, OVER_CREDIT, failure};
use crate::dispatch::ServiceInfo;
use crate::error::{FrameLimit, RpcError, TransportError};
use crate::schema::MethodRoutes;
use crate::transport::{Closer, FrameReceiver, FrameSender, Parts};
use crate::wire;

/// A reply as the reader read it: status, head, split tail.
pub(super) type Handed = (u8, Vec<u8>, Option<Vec<u8>>);

/// What every clone of an async client, its calls and its two threads share.
pub(super) struct Shared {
    pub(super) peer: Arc<str>,
    /// This side's `max_frame`, to tell whose limit a held-back reply went over.
    pub(super) frame_limit: usize,
    /// The server's `max_frame` where it is under this side's: a larger request is
    /// refused before it is queued.
    pub(super) server_limit: Option<usize>,
    /// Where this client's methods are on the server.
    pub(super) routes: MethodRoutes,
    pub(super) service: &'static ServiceInfo,
    pub(super) calls: Mutex<Calls>,
    outbox: Mutex<Outbox>,
    /// Signalled when a frame is queued or the connection closes.
    outbox_ready: Condvar,
    closer: Box<dyn Closer>,
}

#[derive(Default)]
pub(super) struct Calls {
    pub(super) next_id: u64,
    /// Why the connection is dead, once it is.
    pub(super) closed: Option<Arc<str>>,
    pub(super) pending: HashMap<u64, Slot>,
}

/// Where a call's reply goes.
pub(super) enum Slot {
    /// Not here yet; the waker of the task that last polled the call.
    Waiting(Option<Waker>),
    /// Here, or the call failed.
    Done(Result<Handed, RpcError>),
    /// A subscription's events and end (see `stream`).
    Stream(Events),
}

/// A subscription's events, read and not yet taken, and its end once it came.
#[derive(Default)]
pub(super) struct Events {
    pub(super) queue: VecDeque<Handed>,
    /// The final reply, or the error that ended the connection.
    pub(super) end: Option<Result<Handed, RpcError>>,
    /// The task that last polled the subscription.
    pub(super) waker: Option<Waker>,
}

#[derive(Default)]
struct Outbox {
    frames: VecDeque<Outgoing>,
    closed: bool,
}

/// A frame for the writer: a request (a call waits for it) or a cancel.
pub(super) struct Outgoing {
    /// The call a request belongs to; `None` for a cancel.
    pub(super) call: Option<u64>,
    pub(super) head: Vec<u8>,
    /// A byte string that ends the frame, sent from where it is.
    pub(super) tail: Option<Vec<u8>>,
}

pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Shared {
    /// Starts the connection's writer and reader threads.
    ///
    /// # Errors
    ///
    /// `Io` if the OS refuses a thread.
    pub(super) fn start(
        shaken: Handshaken,
        service: &'static ServiceInfo,
    ) -> Result<Arc<Shared>, RpcError> {
        let Parts {
            sender,
            receiver,
            closer,
        } = shaken.parts;
        let shared = Arc::new(Shared {
            peer: shaken.peer,
            frame_limit: shaken.frame_limit,
            server_limit: shaken.server_limit,
            routes: shaken.routes,
            service,
            calls: Mutex::new(Calls {
                next_id: 1,
                ..Calls::default()
            }),
            outbox: Mutex::new(Outbox::default()),
            outbox_ready: Condvar::new(),
            closer,
        });
        let spawn = |name: &str, run: Box<dyn FnOnce() + Send>| {
            thread::Builder::new()
                .name(name.into())
                .spawn(run)
                .map_err(|source| RpcError::Io {
                    context: "starting a thread of an async client's connection".into(),
                    source,
                })
        };
        let writer = shared.clone();
        spawn(
            "ipc-rpc async writer",
            Box::new(move || writer.write_loop(sender)),
        )?;
        let reader = shared.clone();
        if let Err(e) = spawn(
            "ipc-rpc async reader",
            Box::new(move || reader.read_loop(receiver)),
        ) {
            shared.shut("the reader thread could not start".into());
            return Err(e);
        }
        Ok(shared)
    }

    /// Queues a frame for the writer; `false` if the connection is closed.
    pub(super) fn queue(&self, frame: Outgoing) -> bool {
        let mut outbox = lock(&self.outbox);
        if outbox.closed {
            return false;
        }
        outbox.frames.push_back(frame);
        drop(outbox);
        self.outbox_ready.notify_one();
        true
    }

    /// Takes a request out of the queue if the writer has not sent it yet: its caller
    /// gave up, and the server need not hear of it at all.
    /// Tells the server that call `id` was abandoned (no reply is wanted): a cancel
    /// frame, queued like any other.
    pub(super) fn queue_cancel(&self, id: u64) {
        let mut head = Vec::with_capacity(16);
        if wire::encode_cancel(id, &mut FrameBuf::vec(&mut head)).is_ok() {
            self.queue(Outgoing {
                call: None,
                head,
                tail: None,
            });
        }
    }

    pub(super) fn unqueue(&self, id: u64) -> bool {
        let mut outbox = lock(&self.outbox);
        match outbox.frames.iter().position(|f| f.call == Some(id)) {
            Some(at) => {
                outbox.frames.remove(at);
                true
            }
            None => false,
        }
    }

    /// Closes the connection: every waiting and later call returns `Disconnected` with
    /// `reason` (an earlier reason is kept), and both threads end.
    pub(super) fn shut(&self, reason: Arc<str>) {
        let wakers: Vec<Waker> = {
            let mut calls = lock(&self.calls);
            let reason = calls.closed.get_or_insert(reason).clone();
            let peer = self.peer.clone();
            calls
                .pending
                .values_mut()
                .filter_map(|slot| {
                    let error = RpcError::Disconnected {
                        peer: peer.clone(),
                        reason: reason.clone(),
                        source: None,
                    };
                    match slot {
                        Slot::Waiting(waker) => {
                            let waker = waker.take();
                            *slot = Slot::Done(Err(error));
                            waker
                        }
                        Slot::Stream(events) => {
                            events.end.get_or_insert(Err(error));
                            events.waker.take()
                        }
                        Slot::Done(_) => None,
                    }
                })
                .collect()
        };
        lock(&self.outbox).closed = true;
        self.outbox_ready.notify_all();
        // Abort, not close: a writer blocked on a server that does not read ends too.
        self.closer.abort();
        for waker in wakers {
            waker.wake();
        }
    }

    /// Ends call `id` with `result` and wakes its task; drops a reply nobody waits
    /// for (its call was abandoned).
    fn finish(&self, id: u64, result: Result<Handed, RpcError>) {
        let mut calls = lock(&self.calls);
        let Some(slot) = calls.pending.get_mut(&id) else {
            return;
        };
        let waker = match slot {
            Slot::Waiting(waker) => {
                let waker = waker.take();
                *slot = Slot::Done(result);
                waker
            }
            Slot::Stream(events) => {
                match result {
                    Ok(event) if event.0 == wire::STATUS_EVENT => {
                        if events.queue.len() >= crate::sink::EVENT_WINDOW as usize {
                            // Past its credit: see `connection::OVER_CREDIT`.
                            drop(calls);
                            self.fail(TransportError::Corrupt(OVER_CREDIT));
                            return;
                        }
                        events.queue.push_back(event);
                    }
                    end => {
                        events.end.get_or_insert(end);
                    }
                }
                events.waker.take()
            }
            Slot::Done(_) => {
                *slot = Slot::Done(result);
                None
            }
        };
        drop(calls);
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    /// Closes the connection after `cause`; the error a call that met it gets.
    fn fail(&self, cause: TransportError) -> RpcError {
        let (reason, _cause, error) = failure(&self.peer, cause);
        self.shut(reason);
        error
    }

    /// The writer thread: sends queued frames in order until the connection closes.
    fn write_loop(&self, mut sender: Box<dyn FrameSender>) {
        loop {
            let frame = {
                let mut outbox = lock(&self.outbox);
                loop {
                    if outbox.closed {
                        return;
                    }
                    if let Some(frame) = outbox.frames.pop_front() {
                        break frame;
                    }
                    outbox = self
                        .outbox_ready
                        .wait(outbox)
                        .unwrap_or_else(PoisonError::into_inner);
                }
            };
            let tail = frame.tail.as_deref().unwrap_or_default();
            match sender.send_parts(&frame.head, tail) {
                Ok(()) => {}
                // Nothing was sent and the connection is still good: only this call fails.
                Err(TransportError::FrameTooLarge { len, max }) => {
                    if let Some(id) = frame.call {
                        self.finish(
                            id,
                            Err(RpcError::FrameTooLarge {
                                len,
                                max,
                                limit: FrameLimit::ClientRequest,
                            }),
                        );
                    }
                }
                Err(e) => {
                    let error = self.fail(e);
                    if let Some(id) = frame.call {
                        self.finish(id, Err(error));
                    }
                    return;
                }
            }
        }
    }

    /// The reader thread: hands every reply to its call until the connection closes.
    fn read_loop(&self, mut receiver: Box<dyn FrameReceiver>) {
        loop {
            let frame = match receiver.recv(None) {
                Ok(frame) => frame,
                Err(e) => {
                    self.fail(e);
                    return;
                }
            };
            let Ok((id, status, head)) = wire::decode_response_header(frame.head) else {
                self.fail(TransportError::Corrupt("malformed reply header"));
                return;
            };
            let handed = (status, head.to_vec(), frame.tail);
            self.finish(id, Ok(handed));
        }
    }
}
