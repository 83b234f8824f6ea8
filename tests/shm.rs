//! Calls over shared memory that stress the ring's size: frames far larger than the
//! ring stream through it in pieces, up to `max_frame`.

mod common;

use std::time::Duration;

use common::*;

#[test]
fn four_mib_echo_streams_through_a_64_kib_ring() {
    watchdog(Duration::from_secs(60), || {
        let f = Transport::shm.start("four_mib_echo_streams_through_a_64_kib_ring", "ring=65536");
        let big: Vec<u8> = (0..4u32 << 20)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
            .collect();
        for _ in 0..3 {
            assert_eq!(f.client.echo(big.clone()).unwrap(), big);
        }
        assert_eq!(
            f.client.add(2, 2).unwrap(),
            4,
            "small calls follow large ones"
        );
        f.shutdown();
    });
}

#[test]
fn frames_up_to_max_frame_pass_and_larger_are_refused() {
    watchdog(Duration::from_secs(60), || {
        let f = Transport::shm.start(
            "frames_up_to_max_frame_pass_and_larger_are_refused",
            "ring=65536",
        );
        // 16 MiB is the default max_frame; the envelope takes a few bytes of it.
        let near = vec![7u8; (16 << 20) - 64];
        assert_eq!(f.client.echo(near.clone()).unwrap().len(), near.len());
        let err = f.client.echo(vec![0u8; 16 << 20]).unwrap_err();
        assert!(
            matches!(err, ipc_rpc::RpcError::FrameTooLarge { .. }),
            "{err:?}"
        );
        assert_eq!(f.client.add(1, 1).unwrap(), 2);
        f.shutdown();
    });
}
