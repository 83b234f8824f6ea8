//! The messages of the connect protocol (see the [module docs](super)).
//!
//! ```text
//! CONNECT (rendezvous queue, 22 bytes)
//! ┌────────┬─────────┬──────┬──────────┬────────────┬────────┐
//! │ "IRMQ" │ version │ 0x01 │ pid u32  │ start u64  │ n u32  │   (little endian)
//! └────────┴─────────┴──────┴──────────┴────────────┴────────┘
//! ACCEPT / REFUSE / NO_FDS (first message on the client's s2c queue, 6 bytes)
//! ┌────────┬─────────┬──────────────────────────────────────────────────┐
//! │ "IRMQ" │ version │ 0x02 accept / 0x03 refuse / 0x04 out of descriptors│
//! └────────┴─────────┴──────────────────────────────────────────────────┘
//! ```

use super::liveness::ProcessId;

const MAGIC: [u8; 4] = *b"IRMQ";

/// Version of the connect protocol and of the chunk format.
pub(crate) const VERSION: u8 = 1;

const CONNECT: u8 = 1;
const ACCEPT: u8 = 2;
const REFUSE: u8 = 3;
const NO_FDS: u8 = 4;

/// Length of an encoded connect request.
pub(crate) const CONNECT_LEN: usize = 22;

/// A client's request to connect: who it is and which queue pair it made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Connect {
    /// The client process, which created the queues.
    pub(crate) client: ProcessId,
    /// The client's connection counter, part of the queue names.
    pub(crate) n: u32,
}

impl Connect {
    /// The request's bytes.
    pub(crate) fn encode(&self) -> [u8; CONNECT_LEN] {
        let mut out = [0; CONNECT_LEN];
        out[..4].copy_from_slice(&MAGIC);
        out[4] = VERSION;
        out[5] = CONNECT;
        out[6..10].copy_from_slice(&self.client.pid.to_le_bytes());
        out[10..18].copy_from_slice(&self.client.start.to_le_bytes());
        out[18..22].copy_from_slice(&self.n.to_le_bytes());
        out
    }

    /// Parses a request; `None` for anything else (garbage, another version).
    pub(crate) fn decode(msg: &[u8]) -> Option<Connect> {
        let msg: &[u8; CONNECT_LEN] = msg.try_into().ok()?;
        if msg[..4] != MAGIC || msg[4] != VERSION || msg[5] != CONNECT {
            return None;
        }
        let pid = u32::from_le_bytes(msg[6..10].try_into().ok()?);
        let start = u64::from_le_bytes(msg[10..18].try_into().ok()?);
        let n = u32::from_le_bytes(msg[18..22].try_into().ok()?);
        Some(Connect {
            client: ProcessId { pid, start },
            n,
        })
    }
}

/// The server's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Answer {
    /// The server opened both queues; the connection is up.
    Accept,
    /// The server is shutting down.
    Refuse,
    /// The server is out of file descriptors.
    OutOfDescriptors,
}

impl Answer {
    /// The answer's bytes.
    pub(crate) fn encode(self) -> [u8; 6] {
        let kind = match self {
            Answer::Accept => ACCEPT,
            Answer::Refuse => REFUSE,
            Answer::OutOfDescriptors => NO_FDS,
        };
        [MAGIC[0], MAGIC[1], MAGIC[2], MAGIC[3], VERSION, kind]
    }

    /// Parses an answer; `None` for anything else.
    pub(crate) fn decode(msg: &[u8]) -> Option<Answer> {
        match msg {
            [m0, m1, m2, m3, VERSION, kind] if [*m0, *m1, *m2, *m3] == MAGIC => match *kind {
                ACCEPT => Some(Answer::Accept),
                REFUSE => Some(Answer::Refuse),
                NO_FDS => Some(Answer::OutOfDescriptors),
                _ => None,
            },
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connect_round_trips_and_garbage_is_rejected() {
        let c = Connect {
            client: ProcessId {
                pid: 77,
                start: 1 << 40,
            },
            n: 3,
        };
        assert_eq!(Connect::decode(&c.encode()), Some(c));
        let mut other_version = c.encode();
        other_version[4] = VERSION + 1;
        assert_eq!(Connect::decode(&other_version), None);
        assert_eq!(Connect::decode(&c.encode()[..21]), None);
        assert_eq!(Connect::decode(b""), None);
        assert_eq!(Connect::decode(&[0xFF; CONNECT_LEN]), None);
    }

    #[test]
    fn answers_round_trip() {
        for a in [Answer::Accept, Answer::Refuse, Answer::OutOfDescriptors] {
            assert_eq!(Answer::decode(&a.encode()), Some(a));
        }
        assert_eq!(Answer::decode(b"IRMQ\x01\x09"), None);
        assert_eq!(Answer::decode(&[1, 2, 3]), None);
    }
}
