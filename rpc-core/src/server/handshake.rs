//! The server's half of the handshake: the first frame a connection sends is its
//! hello, read like any request by the connection's reader (so a silent client waits
//! in the poller, not on a thread), within [`HANDSHAKE_TIMEOUT`] of its arrival.

use std::time::Instant;

use crate::codec::{decode_prefix, encode_into};
use crate::dispatch::Dispatch;
use crate::transport::FrameSender;
use crate::wire::{Hello, MAGIC, PROTOCOL_VERSION, Welcome};

pub use crate::wire::{HANDSHAKE_MAX_FRAME, HANDSHAKE_TIMEOUT};

/// Answers the client's hello (`frame`); `false` ends the connection.
pub(super) fn answer(
    frame: &[u8],
    sender: &mut dyn FrameSender,
    dispatch: &dyn Dispatch,
    buf: &mut Vec<u8>,
) -> bool {
    let info = dispatch.info();
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
    // A peer that does not read the welcome cannot hold the thread.
    sender.set_deadline(Some(Instant::now() + HANDSHAKE_TIMEOUT));
    let sent = sender.send(buf).is_ok();
    sender.set_deadline(None);
    accepted && sent
}
