//! Feeds arbitrary messages, as a peer's queue could deliver them, to the mq chunk
//! assembler, and checks that frames split by our own sender join back whole: nothing
//! may panic, no frame may exceed `max_frame`, and a length claim reserves nothing
//! beyond the bytes that arrived and one `TAIL_STEP`.
//! Run: `RUSTC_BOOTSTRAP=1 cargo fuzz run mq_chunks`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rpc_core::framing::TAIL_STEP;
use transports::test_util::mq::chunk::{Assembler, MIN_MSGSIZE, Step, split_parts};

/// Cuts `data` into messages: each starts with a length byte (the message's size, up
/// to 255 bytes here, which is all the kind and header logic needs).
fn messages(mut data: &[u8]) -> impl Iterator<Item = &[u8]> {
    std::iter::from_fn(move || {
        let (&len, rest) = data.split_first()?;
        let (msg, rest) = rest.split_at(usize::from(len).min(rest.len()));
        data = rest;
        Some(msg)
    })
}

fuzz_target!(|data: &[u8]| {
    // First byte: max_frame (small, so that limits are hit), how frames are read
    // (whole or split) and whether the limit is lowered half way.
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    let mut max_frame = usize::from(first & 0x3F) * 64;
    let read_split = first & 0x40 != 0;
    let lower = first & 0x80 != 0;
    let mut asm = Assembler::new(max_frame);
    let mut arrived = 0usize;
    for (i, msg) in messages(rest).enumerate() {
        if lower && i == 4 {
            max_frame /= 2;
            asm.set_max_frame(max_frame);
        }
        arrived += msg.len();
        match asm.feed(msg) {
            Ok(Step::Whole) => assert!(msg.len() - 1 <= max_frame),
            Ok(Step::Joined) => {
                if read_split {
                    let (head, tail) = asm.split_frame();
                    let len = head.len() + tail.as_ref().map_or(0, Vec::len);
                    // A lowered limit applies from the next frame on.
                    assert!(len <= usize::from(first & 0x3F) * 64);
                } else {
                    assert!(asm.frame().len() <= usize::from(first & 0x3F) * 64);
                }
            }
            Ok(Step::Partial | Step::Wake | Step::Fin) | Err(_) => {}
        }
        assert!(
            asm.reserved() <= 2 * arrived + TAIL_STEP,
            "{} bytes reserved after {arrived} arrived",
            asm.reserved()
        );
    }

    // Our own sender's messages for the same bytes always join back.
    let msgsize = MIN_MSGSIZE + usize::from(first);
    let cut = rest.len() / 3;
    let (head, tail) = rest.split_at(cut);
    let mut asm = Assembler::new(rest.len());
    let mut joined = None;
    split_parts::<()>(head, tail, msgsize, &mut Vec::new(), |m| {
        assert!(m.len() <= msgsize);
        match asm.feed(m).expect("our own chunks are valid") {
            Step::Whole => joined = Some(m[1..].to_vec()),
            Step::Joined => joined = Some(asm.frame().to_vec()),
            Step::Partial => {}
            other => panic!("unexpected {other:?}"),
        }
        Ok(())
    })
    .unwrap();
    assert_eq!(joined.as_deref(), Some(rest));
});
