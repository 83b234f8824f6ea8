//! The pipe pair between the pool and each worker, and what goes over it.
//!
//! Every worker is spawned with a pipe pair (`transports::pipe`). Over a `pipe`
//! endpoint it is the calls' connection. Over any other endpoint it is the worker's
//! link to the pool: the worker binds its own endpoint, reports it, then reads the link
//! until end-of-file, which comes when the pool stops it or dies; either way the
//! worker shuts its server down (removing its named objects) and exits.
//!
//! ```text
//!  worker ──▶ pool   "ready\n<endpoint as bound>"      serving there (tcp: the real port)
//!                    "unsupported\n<reason>"           the mechanism is missing
//!                    "failed\n<error>"                 any other failure to serve
//!  pool   ──▶ worker  nothing; end-of-file = stop
//! ```

use rpc_core::error::chain;
use rpc_core::{ServeError, TransportError};

/// Environment variable that makes a process a pool worker: the endpoint it serves
/// on (`pipe`, or its own derived endpoint).
pub(crate) const WORKER_ENV: &str = "IPC_RPC_POOL_ENDPOINT";

/// Frame limit of a link that only carries reports.
pub(crate) const LINK_MAX_FRAME: usize = 64 << 10;

/// A worker's report over its link.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Report {
    /// Serving on this endpoint.
    Ready(String),
    /// The endpoint's mechanism is not available in the worker.
    Unsupported(String),
    /// The worker could not serve.
    Failed(String),
}

impl Report {
    pub(crate) fn encode(&self) -> Vec<u8> {
        let (tag, text) = match self {
            Report::Ready(t) => ("ready", t),
            Report::Unsupported(t) => ("unsupported", t),
            Report::Failed(t) => ("failed", t),
        };
        format!("{tag}\n{text}").into_bytes()
    }

    pub(crate) fn decode(frame: &[u8]) -> Option<Report> {
        let (tag, text) = std::str::from_utf8(frame).ok()?.split_once('\n')?;
        let text = text.to_owned();
        match tag {
            "ready" => Some(Report::Ready(text)),
            "unsupported" => Some(Report::Unsupported(text)),
            "failed" => Some(Report::Failed(text)),
            _ => None,
        }
    }

    /// The report of a worker whose server did not start.
    pub(crate) fn from_serve_error(e: &ServeError) -> Report {
        match e {
            ServeError::Listen {
                source: TransportError::Unsupported { reason, .. },
                ..
            } => Report::Unsupported(reason.clone()),
            other => Report::Failed(chain(other)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_round_trip() {
        for r in [
            Report::Ready("tcp:127.0.0.1:4000".into()),
            Report::Unsupported("no shm\nhere".into()),
            Report::Failed(String::new()),
        ] {
            assert_eq!(Report::decode(&r.encode()), Some(r));
        }
        assert_eq!(Report::decode(b"hello"), None);
        assert_eq!(Report::decode(b"other\nx"), None);
    }
}
