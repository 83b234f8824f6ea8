//! Property tests of what reads untrusted bytes: the frame decoder and the envelope.

use proptest::prelude::*;
use rpc_core::TransportError;
use rpc_core::codec::{FrameBuf, decode_all, encode_frame};
use rpc_core::framing::{FrameReader, SPLIT_MIN, write_frame, write_frame_parts};
use rpc_core::wire;

/// A source that hands out the bytes in chunks of the given sizes (cycled).
fn chunked(
    data: Vec<u8>,
    sizes: Vec<usize>,
) -> impl FnMut(&mut [u8]) -> Result<usize, TransportError> {
    let mut at = 0;
    let mut i = 0;
    move |buf: &mut [u8]| {
        let step = sizes[i % sizes.len()].max(1);
        i += 1;
        let n = step.min(buf.len()).min(data.len() - at);
        buf[..n].copy_from_slice(&data[at..at + n]);
        at += n;
        Ok(n)
    }
}

proptest! {
    /// Any split of a valid stream yields exactly the frames that were written.
    #[test]
    fn frames_survive_any_split(
        frames in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..3000), 0..20),
        sizes in prop::collection::vec(1usize..5000, 1..10),
    ) {
        let mut stream = Vec::new();
        for f in &frames {
            write_frame(&mut stream, f).unwrap();
        }
        let mut reader = FrameReader::new(4096);
        let mut fill = chunked(stream, sizes);
        for f in &frames {
            prop_assert_eq!(reader.next_frame(&mut fill).unwrap(), f.as_slice());
        }
        prop_assert!(matches!(reader.next_frame(&mut fill), Err(TransportError::Closed)));
    }

    /// Frames written as a head and a tail, split or whole, come back the same whether
    /// read whole or with the tail apart, however the stream is cut.
    #[test]
    fn parted_frames_survive_any_split(
        frames in prop::collection::vec(
            (prop::collection::vec(any::<u8>(), 0..40), 0usize..3, any::<u8>()),
            1..6,
        ),
        sizes in prop::collection::vec(1usize..70_000, 1..6),
    ) {
        // Tails just under, at and over the size from which they are sent split.
        let frames: Vec<(Vec<u8>, Vec<u8>)> = frames
            .into_iter()
            .map(|(head, k, b)| (head, vec![b; SPLIT_MIN - 1 + k]))
            .collect();
        let mut stream = Vec::new();
        for (head, tail) in &frames {
            write_frame_parts(&mut stream, head, tail).unwrap();
        }
        let mut reader = FrameReader::new(1 << 20);
        let mut fill = chunked(stream.clone(), sizes.clone());
        for (head, tail) in &frames {
            let whole = [&head[..], &tail[..]].concat();
            prop_assert_eq!(reader.next_frame(&mut fill).unwrap(), &whole[..]);
        }
        let at = std::cell::Cell::new(0usize);
        let mut reader = FrameReader::new(1 << 20);
        let step = sizes[0];
        for (head, tail) in &frames {
            let fill = |buf: &mut [u8]| {
                let n = step.min(buf.len()).min(stream.len() - at.get());
                buf[..n].copy_from_slice(&stream[at.get()..at.get() + n]);
                at.set(at.get() + n);
                Ok(n)
            };
            let fill_tail = |t: &mut Vec<u8>, max: usize| {
                let n = step.min(max).min(stream.len() - at.get());
                t.extend_from_slice(&stream[at.get()..at.get() + n]);
                at.set(at.get() + n);
                Ok(n)
            };
            let got = reader.next_split(fill, fill_tail).unwrap();
            let mut joined = got.head.to_vec();
            joined.extend(got.tail.unwrap_or_default());
            prop_assert_eq!(joined, [&head[..], &tail[..]].concat());
        }
    }

    /// The serde-free byte-string reader agrees with postcard's on any input: the same
    /// value and rest, or an error from both.
    #[test]
    fn byte_strings_read_as_postcard_reads_them(
        data in prop::collection::vec(any::<u8>(), 0..40),
        len in prop_oneof![0u64..300, any::<u64>()],
    ) {
        // Half the cases start with a well-formed length.
        let mut input = Vec::new();
        rpc_core::codec::encode_bulk_len(len as usize, &mut FrameBuf::vec(&mut input)).unwrap();
        for bytes in [&data[..], &[&input[..], &data[..]].concat()[..]] {
            let mut payload = rpc_core::codec::Payload::whole(bytes);
            let ours = payload.take_bytes("x");
            let mut rest = bytes;
            let theirs = rpc_core::codec::decode_prefix::<rpc_core::codec::ByteBuf>(&mut rest, "x");
            match (ours, theirs) {
                (Ok(a), Ok(b)) => {
                    prop_assert_eq!(a, b.0);
                    prop_assert_eq!(payload.head, rest);
                }
                (Err(_), Err(_)) => {}
                (a, b) => prop_assert!(false, "ours {:?}, postcard {:?}", a.is_ok(), b.is_ok()),
            }
        }
    }

    /// Arbitrary bytes never panic the decoder, and it never returns a frame over the
    /// limit: it ends in Closed, FrameTooLarge or Corrupt.
    #[test]
    fn garbage_never_panics_or_exceeds_the_limit(
        data in prop::collection::vec(any::<u8>(), 0..20_000),
        sizes in prop::collection::vec(1usize..700, 1..5),
    ) {
        let mut reader = FrameReader::new(1024);
        let mut fill = chunked(data, sizes);
        loop {
            match reader.next_frame(&mut fill) {
                Ok(frame) => prop_assert!(frame.len() <= 1024),
                Err(TransportError::Closed | TransportError::FrameTooLarge { .. } | TransportError::Corrupt(_)) => break,
                Err(other) => prop_assert!(false, "unexpected {other:?}"),
            }
        }
    }

    /// Envelope headers round-trip, and arbitrary bytes decode to an error or a value,
    /// never a panic.
    #[test]
    fn envelope_headers_round_trip_and_garbage_is_an_error(
        id in any::<u64>(), method in any::<u16>(), status in any::<u8>(),
        deadline in prop::option::of(any::<u32>()), overlaps in any::<bool>(),
        tail in prop::collection::vec(any::<u8>(), 0..64),
        garbage in prop::collection::vec(any::<u8>(), 0..64),
    ) {
        let mut buf = Vec::new();
        let deadline = deadline.map(|us| std::time::Duration::from_micros(us.into()));
        wire::encode_request_header(id, method, deadline, overlaps, &mut FrameBuf::vec(&mut buf)).unwrap();
        buf.extend_from_slice(&tail);
        let header = wire::RequestHeader { id, method, deadline, overlaps };
        prop_assert_eq!(wire::decode_request_header(&buf).unwrap(), (header, tail.as_slice()));
        let mut buf = Vec::new();
        wire::encode_response_header(id, status, &mut FrameBuf::vec(&mut buf)).unwrap();
        prop_assert_eq!(wire::decode_response_header(&buf).unwrap(), (id, status, &[][..]));
        let _ = wire::decode_request_header(&garbage);
        let _ = wire::decode_response_header(&garbage);
        let _ = decode_all::<rpc_core::RemoteError>(&garbage, "remote error");
        let _ = decode_all::<(String, Vec<u64>, Option<bool>)>(&garbage, "value");
    }

    /// Counting, slice and vector encodings agree byte for byte.
    #[test]
    fn frame_buffers_agree(value in (any::<u64>(), ".{0,50}", prop::collection::vec(any::<i32>(), 0..50))) {
        let mut v = Vec::new();
        encode_frame(&value, &mut FrameBuf::vec(&mut v), "v").unwrap();
        let mut count = FrameBuf::counter();
        encode_frame(&value, &mut count, "v").unwrap();
        prop_assert_eq!(count.len(), v.len());
        let mut slice = vec![0u8; v.len()];
        encode_frame(&value, &mut FrameBuf::slice(&mut slice), "v").unwrap();
        prop_assert_eq!(slice, v);
    }
}
