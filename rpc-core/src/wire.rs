//! The envelope: what travels inside each frame.
//!
//! ```text
//! connect:   client ── Hello   ──▶ server      then   client ◀── Welcome ── server
//! each call: client ── Request ──▶ server      then   client ◀── Response ── server
//!
//! Hello    = "IPCR" protocol:u16 service:str max_frame:varint
//! Welcome  = "IPCR" protocol:u16 service:str accepted:bool max_frame:varint
//!            methods:[name:str fingerprint:u64 signature:str]   (the server's, in its order)
//! Refusal  = "IPCX" reason:str                            (instead of Welcome, then close)
//! Request  = id:varint method:varint deadline:varint flags:u8 args...  (each argument, postcard, in order)
//! Cancel   = id:varint 0xFFFF:varint  0:varint 0:u8              (the caller gave up on call `id`)
//! Credit   = id:varint 0xFFFE:varint  0:varint 0:u8 n:varint     (subscription `id` may send `n` more events)
//! Response = id:varint status:u8      payload                (0: the return value, 1: RemoteError, 2: an event)
//! ```
//!
//! A request's `method` is the server's number for it (its index in the welcome's
//! list): the client maps its methods to the server's by name and fingerprint.
//! A subscription (a method whose last argument is a `Sink<T>`) is a call whose
//! request carries, in the sink's place, how many events the client buffers (a
//! `u32`): the server may send that many [`STATUS_EVENT`] replies for the call's id,
//! one postcard-encoded `T` each, and then one more for each credit the client grants
//! as it consumes them. The stream ends with the call's final reply (status 0 or 1).
//! A cancel ends a subscription: the server answers it with the final reply.
//!
//! A request's `deadline` is the time the caller still waits, in microseconds, plus
//! one (0: no deadline); the server counts it from when the request arrives, so the
//! two clocks need not agree. Flag [`FLAG_OVERLAPS`] says that other calls of the
//! same connection were in flight when this one started. A cancel asks for no reply.
//!
//! Every frame is then carried by a transport with its own length prefix or message
//! boundary. Request ids let one connection carry many concurrent calls; replies may
//! come back in any order.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::codec::{FrameBuf, decode_prefix, encode_frame};
use crate::error::CodecError;

/// Version of this envelope; a mismatch is reported as `RpcError::Incompatible`.
pub const PROTOCOL_VERSION: u16 = 4;

/// How long either side waits for the other's handshake frame (the client for the
/// welcome, the server for the hello) before it gives up on the connection.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The largest frame either side takes before the handshake is accepted: a hello or a
/// welcome is a few dozen bytes, so a peer that has not said who it is cannot make the
/// other take more (see `FrameReceiver::set_max_frame`).
pub const HANDSHAKE_MAX_FRAME: usize = 4096;

/// First bytes of the handshake frames, to tell an ipc-rpc peer from anything else.
pub const MAGIC: [u8; 4] = *b"IPCR";

/// The client's first frame.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello<'a> {
    /// Always [`MAGIC`].
    pub magic: [u8; 4],
    /// The client's [`PROTOCOL_VERSION`].
    pub protocol: u16,
    /// The service the client was generated for.
    pub service: &'a str,
    /// The largest frame the client takes (its `max_frame`): the server answers a
    /// reply larger than that with an error for that call instead.
    pub max_frame: u64,
}

/// The fields every version of [`Hello`] and [`Welcome`] starts with: a peer of
/// another version is told apart by them (and answered `Incompatible`) even when the
/// rest of its frame does not decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Preamble {
    /// [`MAGIC`].
    pub magic: [u8; 4],
    /// The peer's [`PROTOCOL_VERSION`].
    pub protocol: u16,
}

/// The server's answer to [`Hello`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Welcome<'a> {
    /// Always [`MAGIC`].
    pub magic: [u8; 4],
    /// The server's [`PROTOCOL_VERSION`].
    pub protocol: u16,
    /// The service the server runs.
    pub service: &'a str,
    /// Whether the server accepted the client; if not it closes the connection.
    pub accepted: bool,
    /// The largest frame the server takes (its `max_frame`): the client refuses a
    /// request larger than that before sending anything.
    pub max_frame: u64,
    /// The server's methods, in its order (a request names one by its index here):
    /// the client maps its own to them by name and fingerprint.
    #[serde(borrow)]
    pub methods: Vec<WelcomeMethod<'a>>,
}

/// One of the server's methods, as its [`Welcome`] lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WelcomeMethod<'a> {
    /// The method's name.
    pub name: &'a str,
    /// Its fingerprint (`rpc_core::schema::fingerprint`).
    pub fingerprint: u64,
    /// Its signature as text, for the client's error if the fingerprints differ; empty
    /// if the whole welcome would not fit the client's `max_frame` with them.
    pub signature: &'a str,
}

/// First bytes of a [`Refusal`]; distinct from [`MAGIC`], so a client tells it from a
/// [`Welcome`] by its first four bytes.
pub const REFUSAL_MAGIC: [u8; 4] = *b"IPCX";

/// Longest refusal reason a client shows, in bytes; the rest is cut off.
pub const MAX_REFUSAL_REASON: usize = 512;

/// What a server that cannot take a connection sends instead of a [`Welcome`] (before
/// it has read the client's [`Hello`], e.g. when it is out of file descriptors), then
/// it closes the connection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refusal<'a> {
    /// Always [`REFUSAL_MAGIC`].
    pub magic: [u8; 4],
    /// Why, as a sentence for the client's user.
    pub reason: &'a str,
}

/// A refusal frame saying `reason`, ready for a transport (or
/// [`crate::framing::write_frame`] on a raw stream).
///
/// # Examples
///
/// ```
/// let frame = rpc_core::wire::encode_refusal("server out of file descriptors");
/// assert_eq!(
///     rpc_core::wire::decode_refusal(&frame).as_deref(),
///     Some("server out of file descriptors")
/// );
/// ```
pub fn encode_refusal(reason: &str) -> Vec<u8> {
    let mut buf = Vec::with_capacity(reason.len() + 8);
    let refusal = Refusal {
        magic: REFUSAL_MAGIC,
        reason,
    };
    // Encoding a byte array and a string into a Vec cannot fail.
    let _ = crate::codec::encode_into(&refusal, &mut buf, "refusal");
    buf
}

/// The reason of a refusal frame: `None` if `frame` is not one. The peer's text is
/// cut to [`MAX_REFUSAL_REASON`] bytes and its control characters replaced, so it is
/// safe to print.
pub fn decode_refusal(frame: &[u8]) -> Option<String> {
    if !frame.starts_with(&REFUSAL_MAGIC) {
        return None;
    }
    let refusal: Refusal<'_> = decode_prefix(&mut &frame[..], "refusal").ok()?;
    let mut end = refusal.reason.len().min(MAX_REFUSAL_REASON);
    while !refusal.reason.is_char_boundary(end) {
        end -= 1;
    }
    Some(
        refusal.reason[..end]
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect(),
    )
}

/// Status byte of a reply carrying the return value.
pub const STATUS_OK: u8 = 0;
/// Status byte of a reply carrying a [`crate::RemoteError`].
pub const STATUS_ERR: u8 = 1;

/// Status byte of a reply carrying one event of a subscription; the call's final
/// reply (status [`STATUS_OK`] or [`STATUS_ERR`]) follows the last one.
pub const STATUS_EVENT: u8 = 2;

/// The method number of a [`Cancel`](self) frame: no service has this many methods.
pub const CANCEL_METHOD: u16 = u16::MAX;

/// The method number of a [`Credit`](self) frame: the client consumed events of a
/// subscription and takes that many more.
pub const CREDIT_METHOD: u16 = u16::MAX - 1;

/// Request flag: other calls of the connection were in flight when this one started,
/// so the server should read on while it runs it.
pub const FLAG_OVERLAPS: u8 = 1;

/// What a request frame asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestHeader {
    /// The call's id, unique among the connection's calls in flight.
    pub id: u64,
    /// The method number, or [`CANCEL_METHOD`].
    pub method: u16,
    /// How long the caller still waits, if it has a deadline.
    pub deadline: Option<Duration>,
    /// Other calls of the connection were in flight when this one started.
    pub overlaps: bool,
}

impl RequestHeader {
    /// Whether this frame cancels call `id` rather than starting one.
    pub fn is_cancel(&self) -> bool {
        self.method == CANCEL_METHOD
    }

    /// Whether this frame grants a subscription credit (see [`decode_credit`]).
    pub fn is_credit(&self) -> bool {
        self.method == CREDIT_METHOD
    }
}

/// Writes a request header to `buf`; the arguments follow. `deadline` is how long the
/// caller still waits (`None`: for ever); `overlaps`, whether other calls of the
/// connection are in flight.
pub fn encode_request_header(
    id: u64,
    method: u16,
    deadline: Option<Duration>,
    overlaps: bool,
    buf: &mut FrameBuf<'_>,
) -> Result<(), CodecError> {
    let micros = deadline.map_or(0, |d| {
        u64::try_from(d.as_micros())
            .unwrap_or(u64::MAX - 1)
            .saturating_add(1)
    });
    let flags = if overlaps { FLAG_OVERLAPS } else { 0 };
    encode_frame(&(id, method, micros, flags), buf, "request header")
}

/// Writes the frame that cancels call `id`.
pub fn encode_cancel(id: u64, buf: &mut FrameBuf<'_>) -> Result<(), CodecError> {
    encode_frame(&(id, CANCEL_METHOD, 0u64, 0u8), buf, "cancel")
}

/// Writes the frame that lets subscription `id` send `events` more events.
pub fn encode_credit(id: u64, events: u32, buf: &mut FrameBuf<'_>) -> Result<(), CodecError> {
    encode_frame(&(id, CREDIT_METHOD, 0u64, 0u8, events), buf, "credit")
}

/// The number of events a credit frame grants, from the bytes after its header.
pub fn decode_credit(rest: &[u8]) -> Result<u32, CodecError> {
    crate::codec::decode_all(rest, "credit")
}

/// Splits a request frame into its header and the arguments.
pub fn decode_request_header(frame: &[u8]) -> Result<(RequestHeader, &[u8]), CodecError> {
    let mut rest = frame;
    let (id, method, micros, flags): (u64, u16, u64, u8) =
        decode_prefix(&mut rest, "request header")?;
    let deadline = micros.checked_sub(1).map(Duration::from_micros);
    Ok((
        RequestHeader {
            id,
            method,
            deadline,
            overlaps: flags & FLAG_OVERLAPS != 0,
        },
        rest,
    ))
}

/// Writes a reply header to `buf`; the payload follows.
pub fn encode_response_header(
    id: u64,
    status: u8,
    buf: &mut FrameBuf<'_>,
) -> Result<(), CodecError> {
    encode_frame(&(id, status), buf, "reply header")
}

/// Splits a reply frame into `(id, status, payload)`.
pub fn decode_response_header(frame: &[u8]) -> Result<(u64, u8, &[u8]), CodecError> {
    let mut rest = frame;
    let (id, status): (u64, u8) = decode_prefix(&mut rest, "reply header")?;
    Ok((id, status, rest))
}

/// A welcome that accepts a client of `service` with no methods listed, encoded: what a
/// scripted server in a unit test answers a hello with.
#[cfg(test)]
pub(crate) fn test_welcome(service: &str) -> Vec<u8> {
    let mut frame = Vec::new();
    let welcome = Welcome {
        magic: MAGIC,
        protocol: PROTOCOL_VERSION,
        service,
        accepted: true,
        max_frame: 1 << 20,
        methods: Vec::new(),
    };
    crate::codec::encode_into(&welcome, &mut frame, "welcome").expect("a welcome encodes");
    frame
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::{decode_all, encode_into};

    #[test]
    fn request_header_round_trips_and_leaves_arguments() {
        for (deadline, overlaps) in [
            (None, false),
            (Some(Duration::ZERO), true),
            (Some(Duration::from_millis(1500)), false),
        ] {
            let mut buf = Vec::new();
            let mut out = FrameBuf::vec(&mut buf);
            encode_request_header(u64::MAX, 513, deadline, overlaps, &mut out).unwrap();
            buf.extend_from_slice(b"args");
            let (header, args) = decode_request_header(&buf).unwrap();
            assert_eq!(
                header,
                RequestHeader {
                    id: u64::MAX,
                    method: 513,
                    deadline,
                    overlaps
                }
            );
            assert!(!header.is_cancel());
            assert_eq!(args, b"args");
        }
    }

    #[test]
    fn cancel_names_its_call() {
        let mut buf = Vec::new();
        encode_cancel(7, &mut FrameBuf::vec(&mut buf)).unwrap();
        let (header, args) = decode_request_header(&buf).unwrap();
        assert!(header.is_cancel());
        assert_eq!((header.id, header.deadline, args), (7, None, &[][..]));
    }

    #[test]
    fn credit_names_its_subscription_and_count() {
        let mut buf = Vec::new();
        encode_credit(11, 32, &mut FrameBuf::vec(&mut buf)).unwrap();
        let (header, rest) = decode_request_header(&buf).unwrap();
        assert!(header.is_credit() && !header.is_cancel());
        assert_eq!((header.id, decode_credit(rest).unwrap()), (11, 32));
        assert!(decode_credit(&[]).is_err());
    }

    #[test]
    fn response_header_round_trips() {
        let mut buf = Vec::new();
        encode_response_header(9, STATUS_ERR, &mut FrameBuf::vec(&mut buf)).unwrap();
        assert_eq!(
            decode_response_header(&buf).unwrap(),
            (9, STATUS_ERR, &[][..])
        );
    }

    #[test]
    fn truncated_headers_are_errors() {
        assert!(decode_request_header(&[]).is_err());
        assert!(decode_request_header(&[0x80]).is_err());
        assert!(decode_response_header(&[0xFF, 0xFF]).is_err());
    }

    #[test]
    fn refusal_round_trips_and_is_not_a_welcome() {
        let frame = encode_refusal("out of\nfile descriptors");
        assert!(frame.starts_with(b"IPCX"));
        assert_eq!(
            decode_refusal(&frame).as_deref(),
            Some("out of file descriptors")
        );
        assert!(
            decode_prefix::<Welcome<'_>>(&mut &frame[..], "w").map_or(true, |w| w.magic != MAGIC)
        );
        let long = "é".repeat(MAX_REFUSAL_REASON);
        let cut = decode_refusal(&encode_refusal(&long)).unwrap();
        assert!(cut.len() <= MAX_REFUSAL_REASON && cut.chars().all(|c| c == 'é'));
        assert_eq!(decode_refusal(b"IPCX\xff"), None);
        assert_eq!(decode_refusal(b"IPCR"), None);
    }

    #[test]
    fn hello_round_trips() {
        let hello = Hello {
            magic: MAGIC,
            protocol: PROTOCOL_VERSION,
            service: "Calculator",
            max_frame: 65536,
        };
        let mut buf = Vec::new();
        encode_into(&hello, &mut buf, "hello").unwrap();
        let back: Hello<'_> = decode_prefix(&mut &buf[..], "hello").unwrap();
        assert_eq!(back, hello);
        assert!(decode_all::<u64>(&buf, "x").is_err());
    }
}
