//! Feeds arbitrary bytes, as a peer could send them, through the stream frame
//! decoder (frames whole, and frames with their tail apart) and every envelope
//! decoder: nothing may panic, hang or allocate by a peer's claim.
//! Run: `RUSTC_BOOTSTRAP=1 cargo fuzz run frame_envelope`.
#![no_main]

use std::cell::Cell;

use libfuzzer_sys::fuzz_target;
use rpc_core::codec::{Payload, decode_all, decode_prefix};
use rpc_core::framing::FrameReader;
use rpc_core::wire::{self, Hello, Welcome};
use rpc_core::{RemoteError, TransportError};

const LIMIT: usize = 64 << 10;

fn envelopes(frame: &[u8]) {
    let _ = wire::decode_request_header(frame);
    let _ = wire::decode_response_header(frame);
    let _ = decode_prefix::<Hello<'_>>(&mut &frame[..], "hello");
    let _ = decode_prefix::<Welcome<'_>>(&mut &frame[..], "welcome");
    let _ = decode_all::<RemoteError>(frame, "remote error");
}

fuzz_target!(|data: &[u8]| {
    // The first byte picks how the bytes are cut into reads (low 7 bits) and whether
    // split frames keep their tail apart (top bit).
    let Some((first, rest)) = data.split_first() else {
        return;
    };
    let step = usize::from(first & 0x7F).max(1);
    let rest = Cell::new(rest);
    let fill = |buf: &mut [u8]| -> Result<usize, TransportError> {
        let src = rest.get();
        let n = buf.len().min(src.len()).min(step);
        buf[..n].copy_from_slice(&src[..n]);
        rest.set(&src[n..]);
        Ok(n)
    };
    let mut reader = FrameReader::new(LIMIT);
    if first & 0x80 == 0 {
        while let Ok(frame) = reader.next_frame(fill) {
            assert!(frame.len() <= LIMIT);
            envelopes(frame);
        }
        return;
    }
    let fill_tail = |tail: &mut Vec<u8>, max: usize| -> Result<usize, TransportError> {
        let src = rest.get();
        let n = max.min(src.len()).min(step);
        assert!(tail.len() + n <= tail.capacity());
        tail.extend_from_slice(&src[..n]);
        rest.set(&src[n..]);
        Ok(n)
    };
    while let Ok(frame) = reader.next_split(fill, fill_tail) {
        let tail_len = frame.tail.as_ref().map_or(0, Vec::len);
        assert!(frame.head.len() + tail_len <= LIMIT);
        envelopes(frame.head);
        if let Ok((_, args)) = wire::decode_request_header(frame.head) {
            let mut payload = Payload {
                head: args,
                tail: frame.tail,
            };
            let _ = payload.take_bytes("bytes");
            let _ = payload.decode_all::<(u32, Vec<u8>)>("rest");
        }
    }
});
