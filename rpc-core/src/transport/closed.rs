//! Stand-ins for the parts of a connection that were taken away and dropped (a server's
//! shutdown, from a handler that would not return; a client's `close`, so that the
//! peer sees the end of pipes, FIFOs and queues at once): every operation says
//! `Closed`.

use std::time::Instant;

use crate::buf::Payload;
use crate::error::TransportError;
use crate::transport::{Closer, FrameReceiver, FrameSender};

/// A sender whose connection is gone.
pub(crate) struct ClosedSender;

impl FrameSender for ClosedSender {
    fn send_parts(&mut self, _head: &[u8], _tail: &[u8]) -> Result<(), TransportError> {
        Err(TransportError::Closed)
    }
}

/// A receiver whose connection is gone.
pub(crate) struct ClosedReceiver;

impl FrameReceiver for ClosedReceiver {
    fn recv(&mut self, _deadline: Option<Instant>) -> Result<Payload<'_>, TransportError> {
        Err(TransportError::Closed)
    }

    fn set_max_frame(&mut self, _max_frame: usize) {}

    fn frame_limit(&self) -> usize {
        0
    }
}

/// A closer whose connection is gone.
pub(crate) struct ClosedCloser;

impl Closer for ClosedCloser {
    fn close(&self) {}
}
