//! The server's half of the handshake.

use std::time::Instant;

use crate::codec::{decode_prefix, encode_into};
use crate::dispatch::Dispatch;
use crate::transport::{FrameReceiver, FrameSender};
use crate::wire::{Hello, MAGIC, PROTOCOL_VERSION, Welcome};

pub use crate::wire::{HANDSHAKE_MAX_FRAME, HANDSHAKE_TIMEOUT};

/// Answers the client's hello; `false` ends the connection.
pub(super) fn answer(
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
