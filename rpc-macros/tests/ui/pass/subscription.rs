//! Subscriptions: a `Sink` last, named plainly or by its path, beside plain methods,
//! under strict lints.
#![deny(warnings, missing_docs)]
#![deny(rust_2018_idioms, unused_lifetimes, unused_results)]

use ipc_rpc::{ipc_service, Sink};

/// Jobs.
#[ipc_service]
pub trait Jobs {
    /// Starts a job.
    fn submit(&self, spec: String) -> u64;
    /// Streams the job's progress until it ends.
    fn watch(&self, id: u64, events: Sink<u8>);
    /// Every log line, with no argument before the sink.
    fn logs(&self, lines: ipc_rpc::Sink<String>);
}

struct J;

impl Jobs for J {
    fn submit(&self, spec: String) -> u64 {
        spec.len() as u64
    }
    fn watch(&self, _id: u64, events: Sink<u8>) {
        let _sent = events.try_send(&100);
    }
    fn logs(&self, lines: Sink<String>) {
        drop(lines);
    }
}

fn main() {
    let _server = JobsServer::new(J);
    let _watch: fn(&JobsClient, u64) -> Result<ipc_rpc::Subscription<u8>, ipc_rpc::RpcError> =
        JobsClient::watch;
}
