//! Stand-ins for the parts of a connection that shutdown took away from a handler that
//! would not return: every operation says `Closed`.

use std::time::Instant;

use crate::buf::Payload;
use crate::error::TransportError;
use crate::transport::{Closer, FrameReceiver, FrameSender};

/// A sender whose connection is gone.
pub(super) struct ClosedSender;

impl FrameSender for ClosedSender {
    fn send_parts(&mut self, _head: &[u8], _tail: &[u8]) -> Result<(), TransportError> {
        Err(TransportError::Closed)
    }
}

/// A receiver whose connection is gone.
pub(super) struct ClosedReceiver;

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
pub(super) struct ClosedCloser;

impl Closer for ClosedCloser {
    fn close(&self) {}
}
