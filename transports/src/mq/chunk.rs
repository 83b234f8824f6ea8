//! Frames over messages: a frame that fits one message goes whole; a larger one is
//! split into chunks and joined on receipt. Every message starts with a kind byte:
//!
//! ```text
//! WHOLE  ┌──────┬────────────────────────────┐
//!        │ 0x01 │ frame (len ≤ msgsize - 1)  │
//!        └──────┴────────────────────────────┘
//! FIRST  ┌──────┬──────────────┬─────────────────────────────┐
//!        │ 0x02 │ total: u32 LE│ first msgsize - 5 bytes     │
//!        └──────┴──────────────┴─────────────────────────────┘
//! MORE   ┌──────┬─────────────────────────────────┐
//!        │ 0x03 │ next ≤ msgsize - 1 bytes        │   (until `total` bytes arrived)
//!        └──────┴─────────────────────────────────┘
//! FIN    ┌──────┐
//!        │ 0x04 │   the sender closed its end: no more frames
//!        └──────┘
//! SPLIT  ┌──────┬──────────────┬─────────────────┬─────────────────────────────┐
//!        │ 0x05 │ total: u32 LE│ head_len: u32 LE│ first msgsize - 9 bytes     │
//!        └──────┴──────────────┴─────────────────┴─────────────────────────────┘
//!        a FIRST whose frame is a head and a large tail (a byte string sent apart,
//!        see `FrameSender::send_parts`): the receiver joins the tail in a vector of
//!        its own, which the decoder keeps; MORE chunks follow as for FIRST.
//! (empty)          a wake-up a side posts to its own queue (see `Closer`)
//! ```
//!
//! All messages use priority 0, so the queue keeps them in order. The receiver never
//! trusts `total`: over `max_frame` it is refused before anything is allocated and the
//! frame's remaining chunks are skipped (message boundaries let the receiver resync
//! at the next frame); below it, the buffer grows only as chunks arrive.

use rpc_core::TransportError;

/// A frame in one message.
pub(crate) const WHOLE: u8 = 1;
/// The first chunk of a larger frame, with its total length.
pub(crate) const FIRST: u8 = 2;
/// A later chunk.
pub(crate) const MORE: u8 = 3;
/// The sender's end is closed.
pub(crate) const FIN: u8 = 4;
/// The first chunk of a frame whose tail is joined apart, with both lengths.
pub(crate) const SPLIT: u8 = 5;

/// Bytes before the payload of a `SPLIT` message.
const SPLIT_HEADER: usize = 9;

/// Bytes before the payload of a `FIRST` message.
const FIRST_HEADER: usize = 5;

/// The smallest message size the chunking works with (and that we accept from a peer).
pub const MIN_MSGSIZE: usize = 64;

/// Splits `frame` into messages of at most `msgsize` bytes, assembles each in
/// `scratch` (reused, no allocation after the first call) and hands it to `emit`.
///
/// The caller has checked the frame against `max_frame`, which is at most `u32::MAX`.
#[cfg(test)]
pub(crate) fn split<E>(
    frame: &[u8],
    msgsize: usize,
    scratch: &mut Vec<u8>,
    emit: impl FnMut(&[u8]) -> Result<(), E>,
) -> Result<(), E> {
    split_parts(frame, &[], msgsize, scratch, emit)
}

/// [`split`] for the frame `head` followed by `tail`, never joined: each message is
/// assembled straight from the two.
pub fn split_parts<'a, E>(
    mut head: &'a [u8],
    mut tail: &'a [u8],
    msgsize: usize,
    scratch: &mut Vec<u8>,
    mut emit: impl FnMut(&[u8]) -> Result<(), E>,
) -> Result<(), E> {
    debug_assert!(msgsize >= MIN_MSGSIZE);
    let total = head.len() + tail.len();
    debug_assert!(u32::try_from(total).is_ok());
    let (head_len, split) = (head.len(), tail.len() >= rpc_core::framing::SPLIT_MIN);
    // Moves up to `n` bytes from the front of `head`, then `tail`, into `scratch`.
    let mut take = |scratch: &mut Vec<u8>, mut n: usize| {
        for part in [&mut head, &mut tail] {
            let (now, rest) = part.split_at(n.min(part.len()));
            scratch.extend_from_slice(now);
            n -= now.len();
            *part = rest;
        }
    };
    scratch.clear();
    if total < msgsize {
        scratch.push(WHOLE);
        take(scratch, total);
        return emit(scratch);
    }
    let first = if split {
        scratch.push(SPLIT);
        scratch.extend_from_slice(&(total as u32).to_le_bytes());
        scratch.extend_from_slice(&(head_len as u32).to_le_bytes());
        msgsize - SPLIT_HEADER
    } else {
        scratch.push(FIRST);
        scratch.extend_from_slice(&(total as u32).to_le_bytes());
        msgsize - FIRST_HEADER
    };
    take(scratch, first);
    emit(scratch)?;
    let mut left = total - first;
    while left > 0 {
        let n = left.min(msgsize - 1);
        scratch.clear();
        scratch.push(MORE);
        take(scratch, n);
        emit(scratch)?;
        left -= n;
    }
    Ok(())
}

/// What one received message completed.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    /// A whole frame: the message's bytes after the kind byte.
    Whole,
    /// A frame joined from chunks: [`Assembler::frame`].
    Joined,
    /// A chunk of a frame that is not complete yet.
    Partial,
    /// An empty message: a wake-up, no data.
    Wake,
    /// The peer closed its end.
    Fin,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Between frames.
    Idle,
    /// Joining a frame of this many bytes.
    Joining(usize),
    /// Dropping the chunks of a refused or corrupt frame until the next frame starts.
    Skipping,
}

/// Joins chunks into frames; survives timeouts between chunks.
#[derive(Debug)]
pub struct Assembler {
    /// The frame, or a split frame's head.
    frame: Vec<u8>,
    /// A split frame's tail, joined apart, and the length of its head.
    tail: Option<(usize, Vec<u8>)>,
    state: State,
    max_frame: usize,
}

impl Assembler {
    /// An assembler refusing frames over `max_frame`.
    pub fn new(max_frame: usize) -> Self {
        Assembler {
            frame: Vec::new(),
            tail: None,
            state: State::Idle,
            max_frame,
        }
    }

    /// Refuses frames over `max_frame` from the next frame on.
    pub fn set_max_frame(&mut self, max_frame: usize) {
        self.max_frame = max_frame;
    }

    /// The frame joined by the last [`Step::Joined`], whole (a split one is joined
    /// here, by a copy): for tests, which compare frames whole.
    #[cfg(any(test, feature = "test-util"))]
    pub fn frame(&mut self) -> &[u8] {
        if let Some((_, tail)) = self.tail.take() {
            self.frame.extend_from_slice(&tail);
        }
        &self.frame
    }

    /// The frame joined by the last [`Step::Joined`]: its head, and its tail when it
    /// was sent split.
    pub fn split_frame(&mut self) -> (&[u8], Option<Vec<u8>>) {
        (&self.frame, self.tail.take().map(|(_, tail)| tail))
    }

    /// Bytes reserved by the frame and tail vectors (for the fuzz target's check that
    /// a peer's claims reserve nothing beyond what arrived and one `TAIL_STEP`).
    #[cfg(feature = "test-util")]
    pub fn reserved(&self) -> usize {
        self.frame.capacity() + self.tail.as_ref().map_or(0, |(_, t)| t.capacity())
    }

    /// Bytes of the current frame received so far.
    fn received(&self) -> usize {
        self.frame.len() + self.tail.as_ref().map_or(0, |(_, t)| t.len())
    }

    /// Appends a chunk: to the head until it is complete, then to the tail.
    fn append(&mut self, bytes: &[u8]) {
        match &mut self.tail {
            None => self.frame.extend_from_slice(bytes),
            Some((head, tail)) => {
                let n = (*head - self.frame.len()).min(bytes.len());
                self.frame.extend_from_slice(&bytes[..n]);
                tail.extend_from_slice(&bytes[n..]);
            }
        }
    }

    /// Takes one message.
    ///
    /// # Errors
    ///
    /// `FrameTooLarge` for a frame over `max_frame` (its chunks are then skipped);
    /// `Corrupt` for a message that breaks the chunk protocol (the assembler then
    /// skips to the next frame start).
    pub fn feed(&mut self, msg: &[u8]) -> Result<Step, TransportError> {
        let Some((&kind, body)) = msg.split_first() else {
            return Ok(Step::Wake);
        };
        let starts_frame = matches!(kind, WHOLE | FIRST | SPLIT);
        if starts_frame {
            self.tail = None;
        }
        match (self.state, kind) {
            (State::Joining(_), WHOLE | FIRST | SPLIT) => {
                return self.corrupt("a new frame started before the previous one was complete");
            }
            (State::Skipping, _) if starts_frame => self.state = State::Idle,
            _ => {}
        }
        match kind {
            WHOLE => {
                self.check(body.len())?;
                Ok(Step::Whole)
            }
            FIRST => {
                let Some((len, part)) = body.split_first_chunk::<4>() else {
                    return self.corrupt("a first chunk without its length");
                };
                let total = u32::from_le_bytes(*len) as usize;
                self.check(total)?;
                if part.len() > total {
                    return self.corrupt("a first chunk longer than its frame");
                }
                self.frame.clear();
                self.frame.extend_from_slice(part);
                Ok(self.progress(total))
            }
            SPLIT => {
                let Some((total, rest)) = body.split_first_chunk::<4>() else {
                    return self.corrupt("a split first chunk without its lengths");
                };
                let Some((head, part)) = rest.split_first_chunk::<4>() else {
                    return self.corrupt("a split first chunk without its lengths");
                };
                let total = u32::from_le_bytes(*total) as usize;
                let head = u32::from_le_bytes(*head) as usize;
                self.check(total)?;
                if head > total || part.len() > total {
                    return self.corrupt("a split first chunk longer than its frame");
                }
                self.frame.clear();
                // Never reserved at the announced size: a claim alone costs at most
                // TAIL_STEP of address space; the vector grows as chunks arrive.
                let mut tail = Vec::new();
                rpc_core::framing::reserve_tail(&mut tail, total - head);
                self.tail = Some((head, tail));
                self.append(part);
                Ok(self.progress(total))
            }
            MORE => match self.state {
                State::Skipping => Ok(Step::Partial),
                State::Idle => self.corrupt("a continuation chunk without a frame start"),
                State::Joining(total) => {
                    if self.received() + body.len() > total {
                        return self.corrupt("chunks longer than their frame");
                    }
                    self.append(body);
                    Ok(self.progress(total))
                }
            },
            FIN => Ok(Step::Fin),
            _ => self.corrupt("unknown message kind"),
        }
    }

    fn progress(&mut self, total: usize) -> Step {
        if self.received() == total {
            self.state = State::Idle;
            Step::Joined
        } else {
            self.state = State::Joining(total);
            Step::Partial
        }
    }

    fn check(&mut self, len: usize) -> Result<(), TransportError> {
        if len > self.max_frame {
            self.state = State::Skipping;
            self.tail = None;
            return Err(TransportError::FrameTooLarge {
                len: len as u64,
                max: self.max_frame as u64,
            });
        }
        Ok(())
    }

    fn corrupt(&mut self, what: &'static str) -> Result<Step, TransportError> {
        self.state = State::Skipping;
        self.tail = None;
        Err(TransportError::Corrupt(what))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn messages(frame: &[u8], msgsize: usize) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        let mut scratch = Vec::new();
        split::<()>(frame, msgsize, &mut scratch, |m| {
            assert!(m.len() <= msgsize, "{} > {msgsize}", m.len());
            out.push(m.to_vec());
            Ok(())
        })
        .unwrap();
        out
    }

    /// Feeds messages and returns the frames they complete.
    fn join(asm: &mut Assembler, msgs: &[Vec<u8>]) -> Vec<Vec<u8>> {
        let mut frames = Vec::new();
        for m in msgs {
            match asm.feed(m).unwrap() {
                Step::Whole => frames.push(m[1..].to_vec()),
                Step::Joined => frames.push(asm.frame().to_vec()),
                Step::Partial | Step::Wake => {}
                Step::Fin => panic!("unexpected fin"),
            }
        }
        frames
    }

    #[test]
    fn a_large_tail_is_joined_apart_from_its_head() {
        let split = rpc_core::framing::SPLIT_MIN;
        for (head, tail_len, msgsize) in [(&b"head"[..], split, 64), (b"", split + 99, 4096)] {
            let tail: Vec<u8> = (0..tail_len).map(|i| (i * 7 % 251) as u8).collect();
            let mut msgs = Vec::new();
            let mut scratch = Vec::new();
            split_parts::<()>(head, &tail, msgsize, &mut scratch, |m| {
                assert!(m.len() <= msgsize);
                msgs.push(m.to_vec());
                Ok(())
            })
            .unwrap();
            assert_eq!(msgs[0][0], SPLIT);
            let mut asm = Assembler::new(1 << 20);
            let last = msgs.len() - 1;
            for m in &msgs[..last] {
                assert_eq!(asm.feed(m).unwrap(), Step::Partial);
            }
            assert_eq!(asm.feed(&msgs[last]).unwrap(), Step::Joined);
            let (got_head, got_tail) = asm.split_frame();
            assert_eq!(got_head, head);
            assert_eq!(got_tail.as_deref(), Some(&tail[..]));
            // Read whole, the same messages give the joined frame.
            let joined = join(&mut Assembler::new(1 << 20), &msgs);
            assert_eq!(joined, vec![[head, &tail[..]].concat()]);
        }
        // Below SPLIT_MIN the tail goes as a plain FIRST.
        let mut first = None;
        split_parts::<()>(b"h", &vec![1; split - 1], 4096, &mut Vec::new(), |m| {
            first.get_or_insert(m[0]);
            Ok(())
        })
        .unwrap();
        assert_eq!(first, Some(FIRST));
    }

    #[test]
    fn a_split_head_longer_than_its_frame_is_corrupt() {
        let mut msg = vec![SPLIT];
        msg.extend_from_slice(&10u32.to_le_bytes());
        msg.extend_from_slice(&11u32.to_le_bytes());
        let mut asm = Assembler::new(1024);
        assert!(matches!(asm.feed(&msg), Err(TransportError::Corrupt(_))));
        assert!(matches!(
            asm.feed(&[SPLIT, 1, 0]),
            Err(TransportError::Corrupt(_))
        ));
        assert_eq!(asm.feed(&[WHOLE, 7]).unwrap(), Step::Whole);
    }

    #[test]
    fn every_size_around_the_boundaries_round_trips() {
        let msgsize = 64;
        for len in [0, 1, 62, 63, 64, 65, 122, 123, 124, 500, 4096] {
            let frame: Vec<u8> = (0..len).map(|i| (i * 7 % 251) as u8).collect();
            let msgs = messages(&frame, msgsize);
            let expected = if len < msgsize {
                1
            } else {
                1 + (len - (msgsize - 5)).div_ceil(msgsize - 1)
            };
            assert_eq!(msgs.len(), expected, "len {len}");
            let mut asm = Assembler::new(1 << 20);
            assert_eq!(join(&mut asm, &msgs), vec![frame], "len {len}");
        }
    }

    #[test]
    fn frames_follow_each_other_and_wakes_are_ignored() {
        let mut msgs = messages(b"one", 64);
        msgs.push(Vec::new());
        msgs.extend(messages(&[9; 300], 64));
        msgs.extend(messages(b"", 64));
        let mut asm = Assembler::new(1 << 20);
        assert_eq!(
            join(&mut asm, &msgs),
            vec![b"one".to_vec(), vec![9; 300], Vec::new()]
        );
    }

    #[test]
    fn oversized_total_is_refused_before_allocating_then_skipped() {
        let mut asm = Assembler::new(1000);
        let mut first = vec![FIRST];
        first.extend_from_slice(&u32::MAX.to_le_bytes());
        first.extend_from_slice(&[0; 59]);
        let err = asm.feed(&first).unwrap_err();
        assert!(
            matches!(err, TransportError::FrameTooLarge { len, max: 1000 } if len == u64::from(u32::MAX))
        );
        assert_eq!(asm.frame.capacity(), 0, "nothing allocated for the claim");
        assert_eq!(asm.feed(&[MORE, 1, 2, 3]).unwrap(), Step::Partial);
        let mut whole_too_big = vec![WHOLE];
        whole_too_big.extend_from_slice(&[0; 1001]);
        assert!(matches!(
            asm.feed(&whole_too_big),
            Err(TransportError::FrameTooLarge { len: 1001, .. })
        ));
        assert_eq!(
            join(&mut asm, &messages(b"next", 64)),
            vec![b"next".to_vec()]
        );
    }

    #[test]
    fn buffer_grows_with_chunks_not_with_the_claim() {
        let mut asm = Assembler::new(16 << 20);
        let mut first = vec![FIRST];
        first.extend_from_slice(&(16u32 << 20).to_le_bytes());
        first.extend_from_slice(&[0; 100]);
        assert_eq!(asm.feed(&first).unwrap(), Step::Partial);
        assert!(asm.frame.capacity() < 4096, "{}", asm.frame.capacity());
    }

    #[test]
    fn a_split_claim_reserves_at_most_one_step_for_its_tail() {
        let mut asm = Assembler::new(16 << 20);
        let mut split = vec![SPLIT];
        split.extend_from_slice(&(16u32 << 20).to_le_bytes());
        split.extend_from_slice(&0u32.to_le_bytes());
        split.extend_from_slice(&[0; 100]);
        assert_eq!(asm.feed(&split).unwrap(), Step::Partial);
        let reserved = asm.tail.as_ref().map_or(0, |(_, t)| t.capacity());
        assert!(
            reserved <= rpc_core::framing::TAIL_STEP,
            "a 16 MiB claim reserved {reserved} bytes"
        );
    }

    #[test]
    fn a_lowered_limit_refuses_larger_frames() {
        let mut asm = Assembler::new(16 << 20);
        asm.set_max_frame(64);
        let mut first = vec![FIRST];
        first.extend_from_slice(&100u32.to_le_bytes());
        first.extend_from_slice(&[0; 10]);
        assert!(matches!(
            asm.feed(&first),
            Err(TransportError::FrameTooLarge { len: 100, max: 64 })
        ));
    }

    #[test]
    fn protocol_violations_are_corrupt_and_resync_at_the_next_frame() {
        let cases: [&[&[u8]]; 5] = [
            &[&[MORE, 1]],
            &[&[FIRST, 1, 0]],
            &[&[FIRST, 2, 0, 0, 0, 1, 2, 3]],
            &[&[FIRST, 3, 0, 0, 0, 1], &[MORE, 2, 3, 4]],
            &[&[FIRST, 3, 0, 0, 0, 1], &[WHOLE, 5]],
        ];
        for (i, case) in cases.iter().enumerate() {
            let mut asm = Assembler::new(1000);
            let (last, init) = case.split_last().unwrap();
            for m in init {
                asm.feed(m).unwrap();
            }
            assert!(
                matches!(asm.feed(last), Err(TransportError::Corrupt(_))),
                "case {i}"
            );
            assert_eq!(asm.feed(&[MORE, 9]).unwrap(), Step::Partial, "case {i}");
            assert_eq!(join(&mut asm, &messages(b"ok", 64)), vec![b"ok".to_vec()]);
        }
        assert!(matches!(
            Assembler::new(10).feed(&[0x7F]),
            Err(TransportError::Corrupt("unknown message kind"))
        ));
    }

    #[test]
    fn fin_is_reported() {
        assert_eq!(Assembler::new(10).feed(&[FIN]).unwrap(), Step::Fin);
    }
}
