//! Version 2 of the `Jobs` service (see `src/lib.rs` for the command line). Against
//! version 1: `JobSpec` has a field more, `Outcome`'s variants are in another order,
//! `ping` moved to the front and `cancel` is new; `JobState` and `state` are unchanged.

use ipc_rpc::{Endpoint, RpcError, ipc_service};
use ipc_rpc_compat::JobState;
use serde::{Deserialize, Serialize};

/// What to run.
#[derive(Debug, Serialize, Deserialize, ipc_rpc::Schema)]
pub struct JobSpec {
    /// The job's name.
    pub name: String,
    /// New in v2.
    pub priority: u8,
}

/// How a job ended: v1's variants, reordered.
#[derive(Debug, Serialize, Deserialize, ipc_rpc::Schema)]
pub enum Outcome {
    /// It did not.
    Failed,
    /// It worked.
    Succeeded,
}

/// A job queue, version 2.
#[ipc_service]
pub trait Jobs {
    /// The server's version.
    fn ping(&self) -> String;
    /// Queues a job.
    fn submit(&self, spec: JobSpec) -> u64;
    /// Where job `id` is.
    fn state(&self, id: u64) -> JobState;
    /// How job `id` ended.
    fn outcome(&self, id: u64) -> Outcome;
    /// Cancels job `id`; whether it was still queued.
    fn cancel(&self, id: u64) -> bool;
}

struct V2;

impl Jobs for V2 {
    fn ping(&self) -> String {
        "v2".into()
    }
    fn submit(&self, spec: JobSpec) -> u64 {
        spec.name.len() as u64 + u64::from(spec.priority)
    }
    fn state(&self, id: u64) -> JobState {
        JobState::Running(id as u8)
    }
    fn outcome(&self, _id: u64) -> Outcome {
        Outcome::Succeeded
    }
    fn cancel(&self, _id: u64) -> bool {
        true
    }
}

fn call(endpoint: &Endpoint) -> Result<(), RpcError> {
    let client = JobsClient::connect(endpoint)?;
    ipc_rpc_compat::report("ping", client.ping());
    let spec = JobSpec {
        name: "abc".into(),
        priority: 1,
    };
    ipc_rpc_compat::report("submit", client.submit(spec));
    ipc_rpc_compat::report("state", client.state(7));
    ipc_rpc_compat::report("outcome", client.outcome(7));
    ipc_rpc_compat::report("cancel", client.cancel(7));
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    ipc_rpc_compat::main(|ep| ipc_rpc::serve(ep, JobsServer::new(V2)), call)
}
