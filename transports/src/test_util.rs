//! Internals for the workspace's own tests, benchmarks and fuzz targets (feature
//! `test-util`, off by default). Not public API: anything here may change or go in
//! any release.

/// Shared-memory internals.
pub mod shm {
    /// The ring's index arithmetic.
    pub mod index {
        pub use crate::shm::index::*;
    }

    /// The segment layout.
    pub mod layout {
        pub use crate::shm::layout::*;
    }

    pub use crate::shm::replay::{Peer, receive};

    /// The segment's descriptor on the client side of `t`, which created it.
    pub fn segment_fd(t: &crate::ShmTransport) -> Option<std::os::fd::BorrowedFd<'_>> {
        t.segment_fd()
    }

    /// `t`'s end of its rendezvous socket, the doorbell of a peer parked in a poller.
    pub fn socket_fd(t: &crate::ShmTransport) -> std::os::fd::BorrowedFd<'_> {
        t.socket_fd()
    }
}

/// FIFO internals.
pub mod fifo {
    /// The endpoint directory's layout and the connect request.
    pub mod rendezvous {
        pub use crate::fifo::rendezvous::*;
        pub use crate::names::fifo::{
            C2S, CONNECT, LOCK, S2C, is_client_fifo, pair_paths, valid_id,
        };
    }
}

/// POSIX message queue internals.
pub mod mq {
    /// Frames split into messages and joined again.
    pub mod chunk {
        pub use crate::mq::chunk::{Assembler, MIN_MSGSIZE, Step, split_parts};
    }
}
