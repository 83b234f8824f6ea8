//! The ring's index arithmetic: safe, pure, and tested exhaustively over small
//! capacities. Indices are monotonic byte counts (`u64`, never wrapping in practice);
//! a position in the ring is `index % capacity`. Records are 8-byte aligned.
//!
//! Anything read from shared memory goes through [`used`] first: a peer that breaks
//! `head <= tail <= head + capacity` is reported as corrupt, never trusted.

/// Size of a record header: `len: u32` and 4 bytes of padding.
pub const HEADER: u64 = 8;

/// Bytes in use given the two indices, or `None` if they are inconsistent.
pub fn used(head: u64, tail: u64, capacity: u64) -> Option<u64> {
    let used = tail.checked_sub(head)?;
    (used <= capacity).then_some(used)
}

/// Free bytes given the two indices (see [`used`]); the ring computes it from
/// [`used`] itself, tests check the two agree.
#[cfg(any(test, feature = "test-util"))]
pub fn free(head: u64, tail: u64, capacity: u64) -> Option<u64> {
    used(head, tail, capacity).map(|u| capacity - u)
}

/// Position of `index` in a ring of `capacity` (a power of two).
pub fn position(index: u64, capacity: u64) -> u64 {
    debug_assert!(capacity.is_power_of_two());
    index & (capacity - 1)
}

/// Bytes from `index` to the end of the ring (never 0).
pub fn to_end(index: u64, capacity: u64) -> u64 {
    capacity - position(index, capacity)
}

/// `len` rounded up to the record alignment (8).
pub fn padded(len: u64) -> u64 {
    len.div_ceil(8) * 8
}

/// Size of the record carrying a frame of `len` bytes: header plus padded payload.
pub fn record(len: u64) -> u64 {
    HEADER + padded(len)
}

/// How a frame of `len` bytes is laid into the ring at `tail`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// One contiguous record at `tail`, after `pad` bytes of skip record (0 if none):
    /// the reader can use it in place.
    Whole {
        /// Bytes of skip record first (to the end of the ring), or 0.
        pad: u64,
        /// Bytes of the record itself.
        record: u64,
    },
    /// Larger than the ring: header, then the payload streamed in pieces as space frees.
    Streamed,
}

/// Where a frame of `len` bytes goes when the producer is at `tail`.
pub fn placement(tail: u64, len: u64, capacity: u64) -> Placement {
    let record = record(len);
    if record > capacity {
        return Placement::Streamed;
    }
    let end = to_end(tail, capacity);
    let pad = if record <= end { 0 } else { end };
    Placement::Whole { pad, record }
}

/// The longest run of bytes that can be copied at `index` without wrapping, at most `want`.
pub fn run(index: u64, want: u64, capacity: u64) -> u64 {
    want.min(to_end(index, capacity))
}

#[cfg(test)]
mod tests {
    use super::*;

    const CAPS: [u64; 3] = [8, 16, 64];

    #[test]
    fn used_and_free_accept_exactly_the_consistent_pairs() {
        for cap in CAPS {
            for head in 0..4 * cap {
                for tail in 0..5 * cap {
                    let ok = head <= tail && tail - head <= cap;
                    assert_eq!(used(head, tail, cap).is_some(), ok, "{head} {tail} {cap}");
                    if ok {
                        assert_eq!(
                            used(head, tail, cap).unwrap() + free(head, tail, cap).unwrap(),
                            cap
                        );
                    }
                }
            }
        }
        assert_eq!(used(u64::MAX - 3, u64::MAX, 8), Some(3));
        assert_eq!(used(5, 4, 8), None);
    }

    #[test]
    fn positions_wrap_and_runs_never_cross_the_end() {
        for cap in CAPS {
            for index in 0..3 * cap {
                let pos = position(index, cap);
                assert!(pos < cap);
                assert_eq!(pos, index % cap);
                assert_eq!(pos + to_end(index, cap), cap);
                for want in 0..2 * cap {
                    let r = run(index, want, cap);
                    assert!(r <= want && pos + r <= cap);
                    assert!(r == want || pos + r == cap);
                }
            }
        }
    }

    #[test]
    fn records_are_aligned_and_cover_the_payload() {
        for len in 0..100 {
            let r = record(len);
            assert_eq!(r % 8, 0);
            assert!(r >= HEADER + len && r < HEADER + len + 8);
        }
    }

    #[test]
    fn whole_records_never_cross_the_end_and_streamed_ones_exceed_the_ring() {
        for cap in CAPS {
            for tail in (0..3 * cap).step_by(8) {
                for len in 0..2 * cap {
                    match placement(tail, len, cap) {
                        Placement::Whole { pad, record: r } => {
                            assert_eq!(r, record(len));
                            assert!(r <= cap);
                            let start = tail + pad;
                            assert!(position(start, cap) + r <= cap, "{tail} {len} {cap}");
                            assert!(pad == 0 || position(start, cap) == 0);
                            assert!(pad < cap);
                        }
                        Placement::Streamed => assert!(record(len) > cap),
                    }
                }
            }
        }
    }
}
