//! The server's half of the handshake: the first frame a connection sends is its
//! hello, read like any request by the connection's reader (so a silent client waits
//! in the poller, not on a thread), within [`HANDSHAKE_TIMEOUT`] of its arrival.

use std::time::Instant;

use crate::codec::{decode_prefix, encode_into};
use crate::dispatch::Dispatch;
use crate::schema::MethodInfo;
use crate::transport::FrameSender;
use crate::wire::{Hello, MAGIC, PROTOCOL_VERSION, Preamble, Welcome, WelcomeMethod};

pub use crate::wire::{HANDSHAKE_MAX_FRAME, HANDSHAKE_TIMEOUT};

/// Answers the client's hello (`frame`), telling it `frame_limit`, the largest frame
/// this side takes. Returns the client's own limit once it is accepted; otherwise why
/// the connection ends (for the log).
pub(super) fn answer(
    frame: &[u8],
    sender: &mut dyn FrameSender,
    dispatch: &dyn Dispatch,
    buf: &mut Vec<u8>,
    frame_limit: usize,
) -> Result<usize, String> {
    let info = dispatch.info();
    let not_ours = || "the first frame is not an ipc-rpc hello".to_owned();
    let preamble = decode_prefix::<Preamble>(&mut &frame[..], "hello").map_err(|_| not_ours())?;
    if preamble.magic != MAGIC {
        return Err(not_ours());
    }
    // A client of another version may send a hello of another shape: it is still
    // answered, with this version, so that it can say `Incompatible`.
    let hello = if preamble.protocol == PROTOCOL_VERSION {
        Some(decode_prefix::<Hello<'_>>(&mut &frame[..], "hello").map_err(|_| not_ours())?)
    } else {
        None
    };
    let refusal = match &hello {
        None => Some(format!(
            "the client speaks protocol {}, this server {PROTOCOL_VERSION}",
            preamble.protocol
        )),
        Some(h) if h.service != info.name => Some(format!(
            "the client wants service `{}`, this server runs `{}`",
            h.service, info.name
        )),
        Some(_) => None,
    };
    let client_limit = hello.as_ref().map_or(0, |h| h.max_frame);
    // A limit too large for this machine's `usize` is no limit.
    let client_limit = usize::try_from(client_limit).unwrap_or(usize::MAX);
    let signatures: Vec<String> = match refusal {
        None => info.methods.iter().map(MethodInfo::signature).collect(),
        Some(_) => Vec::new(),
    };
    let mut welcome = Welcome {
        magic: MAGIC,
        protocol: PROTOCOL_VERSION,
        service: info.name,
        accepted: refusal.is_none(),
        max_frame: frame_limit as u64,
        methods: signatures
            .iter()
            .zip(info.methods)
            .map(|(signature, m)| WelcomeMethod {
                name: m.name,
                fingerprint: m.fingerprint,
                signature,
            })
            .collect(),
    };
    buf.clear();
    encode_into(&welcome, buf, "welcome").map_err(|e| e.to_string())?;
    if buf.len() > client_limit && refusal.is_none() {
        // The signatures are only for error messages: without them it fits.
        for m in &mut welcome.methods {
            m.signature = "";
        }
        buf.clear();
        encode_into(&welcome, buf, "welcome").map_err(|e| e.to_string())?;
    }
    // A peer that does not read the welcome cannot hold the thread.
    sender.set_deadline(Some(Instant::now() + HANDSHAKE_TIMEOUT));
    let sent = sender.send(buf);
    sender.set_deadline(None);
    if let Some(refusal) = refusal {
        return Err(refusal);
    }
    sent.map_err(|e| format!("the welcome could not be sent: {e}"))?;
    Ok(client_limit)
}
