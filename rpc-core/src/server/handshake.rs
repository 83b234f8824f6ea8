//! The server's half of the handshake: the first frame a connection sends is its
//! hello, read like any request by the connection's reader (so a silent client waits
//! in the poller, not on a thread), within [`HANDSHAKE_TIMEOUT`] of its arrival.

use std::time::Instant;

use crate::codec::{decode_prefix, encode_into};
use crate::dispatch::Dispatch;
use crate::transport::FrameSender;
use crate::wire::{Hello, MAGIC, PROTOCOL_VERSION, Preamble, Welcome};

pub use crate::wire::{HANDSHAKE_MAX_FRAME, HANDSHAKE_TIMEOUT};

/// Answers the client's hello (`frame`), telling it `frame_limit`, the largest frame
/// this side takes. Returns the client's own limit once it is accepted; `None` ends
/// the connection.
pub(super) fn answer(
    frame: &[u8],
    sender: &mut dyn FrameSender,
    dispatch: &dyn Dispatch,
    buf: &mut Vec<u8>,
    frame_limit: usize,
) -> Option<usize> {
    let info = dispatch.info();
    let preamble = decode_prefix::<Preamble>(&mut &frame[..], "hello").ok()?;
    if preamble.magic != MAGIC {
        return None;
    }
    // A client of another version may send a hello of another shape: it is still
    // answered, with this version, so that it can say `Incompatible`.
    let hello = if preamble.protocol == PROTOCOL_VERSION {
        Some(decode_prefix::<Hello<'_>>(&mut &frame[..], "hello").ok()?)
    } else {
        None
    };
    let accepted = hello
        .as_ref()
        .filter(|h| h.service == info.name && h.fingerprint == info.fingerprint);
    let welcome = Welcome {
        magic: MAGIC,
        protocol: PROTOCOL_VERSION,
        service: info.name,
        fingerprint: info.fingerprint,
        accepted: accepted.is_some(),
        max_frame: frame_limit as u64,
    };
    buf.clear();
    encode_into(&welcome, buf, "welcome").ok()?;
    // A peer that does not read the welcome cannot hold the thread.
    sender.set_deadline(Some(Instant::now() + HANDSHAKE_TIMEOUT));
    let sent = sender.send(buf).is_ok();
    sender.set_deadline(None);
    let client_limit = accepted?.max_frame;
    // A limit too small for any frame is the client's mistake, not a reason to refuse.
    sent.then(|| usize::try_from(client_limit).unwrap_or(usize::MAX))
}
