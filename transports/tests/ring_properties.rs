//! Property tests of the shared-memory ring's index arithmetic, beyond the exhaustive
//! small-capacity unit tests: large indices, any capacity, any lengths.

use proptest::prelude::*;
use transports::test_util::shm::index::{self, Placement};

proptest! {
    #[test]
    fn used_accepts_only_consistent_pairs(head in any::<u64>(), delta in any::<u64>(), log in 12u32..31) {
        let cap = 1u64 << log;
        let tail = head.wrapping_add(delta);
        let ok = tail >= head && tail - head <= cap;
        prop_assert_eq!(index::used(head, tail, cap).is_some(), ok);
        if let Some(u) = index::used(head, tail, cap) {
            prop_assert_eq!(u + index::free(head, tail, cap).unwrap(), cap);
        }
    }

    #[test]
    fn placements_fit(tail8 in 0u64..(1 << 40), len in 0u64..(1 << 22), log in 12u32..24) {
        let cap = 1u64 << log;
        let tail = tail8 * 8;
        match index::placement(tail, len, cap) {
            Placement::Whole { pad, record } => {
                prop_assert!(record <= cap && record == index::record(len));
                prop_assert!(index::position(tail + pad, cap) + record <= cap);
                prop_assert!(pad == 0 || index::position(tail + pad, cap) == 0);
            }
            Placement::Streamed => prop_assert!(index::record(len) > cap),
        }
    }

    #[test]
    fn runs_never_cross_the_end(at in any::<u64>(), want in any::<u64>(), log in 3u32..31) {
        let cap = 1u64 << log;
        let r = index::run(at, want, cap);
        prop_assert!(r <= want);
        prop_assert!(index::position(at, cap) + r <= cap);
    }
}
