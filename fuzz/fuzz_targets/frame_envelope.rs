//! Feeds arbitrary bytes, as a peer could send them, through the stream frame
//! decoder and every envelope decoder: nothing may panic, hang or allocate by a
//! peer's claim. Run: `RUSTC_BOOTSTRAP=1 cargo fuzz run frame_envelope`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rpc_core::codec::{decode_all, decode_prefix};
use rpc_core::framing::FrameReader;
use rpc_core::wire::{self, Hello, Welcome};
use rpc_core::{RemoteError, TransportError};

fuzz_target!(|data: &[u8]| {
    // The first byte picks how the bytes are cut into reads.
    let (step, mut rest) = match data.split_first() {
        Some((s, r)) => (usize::from(*s).max(1), r),
        None => return,
    };
    let mut reader = FrameReader::new(64 << 10);
    let mut fill = |buf: &mut [u8]| -> Result<usize, TransportError> {
        let n = buf.len().min(rest.len()).min(step);
        buf[..n].copy_from_slice(&rest[..n]);
        rest = &rest[n..];
        Ok(n)
    };
    while let Ok(frame) = reader.next_frame(&mut fill) {
        assert!(frame.len() <= 64 << 10);
        let _ = wire::decode_request_header(frame);
        let _ = wire::decode_response_header(frame);
        let _ = decode_prefix::<Hello<'_>>(&mut &frame[..], "hello");
        let _ = decode_prefix::<Welcome<'_>>(&mut &frame[..], "welcome");
        let _ = decode_all::<RemoteError>(frame, "remote error");
    }
});
