//! Feeds arbitrary bytes as a peer's ring contents (record headers, lengths, skip
//! records, padding) to the shared-memory receive path, published in pieces, and
//! optionally a lying tail index: nothing may panic or hang, no frame may exceed
//! `max_frame`, and the receiver copies nothing beyond the bytes that arrived (the
//! replay driver asserts both).
//! Run: `RUSTC_BOOTSTRAP=1 cargo fuzz run shm_records`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use transports::test_util::shm::{Peer, layout, receive};

fuzz_target!(|data: &[u8]| {
    // First byte: ring of one or two pages, max_frame from 0 to 31 KiB (frames larger
    // than the ring stream through it), and whether the tail lies; second byte: how
    // many bytes the peer publishes at once.
    let [first, step, rest @ ..] = data else {
        return;
    };
    let capacity = layout::MIN_CAPACITY << (first & 1);
    let max_frame = usize::from((first >> 1) & 0x1F) * 1024 + usize::from(*step);
    let (lying_tail, rest) = match rest.split_first_chunk::<8>() {
        Some((tail, rest)) if first & 0x40 != 0 => (Some(u64::from_le_bytes(*tail)), rest),
        _ => (None, rest),
    };
    let peer = Peer {
        capacity,
        max_frame,
        step: usize::from(*step).max(1) * 8,
        lying_tail,
    };
    let mut frames = 0usize;
    let _ = receive(rest, peer, |frame| {
        assert!(frame.len() <= max_frame);
        frames += 1;
    });
    // Every record takes at least its 8-byte header; a lying tail can expose at most
    // the rest of the ring.
    assert!(frames <= (rest.len() + capacity) / 8 + 1);
});
