//! Version 1 of the `Jobs` service (see `src/lib.rs` for the command line).

use ipc_rpc::{Endpoint, RpcError, ipc_service};
use ipc_rpc_compat::JobState;
use serde::{Deserialize, Serialize};

/// What to run.
#[derive(Debug, Serialize, Deserialize, ipc_rpc::Schema)]
pub struct JobSpec {
    /// The job's name.
    pub name: String,
}

/// How a job ended.
#[derive(Debug, Serialize, Deserialize, ipc_rpc::Schema)]
pub enum Outcome {
    /// It worked.
    Succeeded,
    /// It did not.
    Failed,
}

/// A job queue, version 1.
#[ipc_service]
pub trait Jobs {
    /// Queues a job.
    fn submit(&self, spec: JobSpec) -> u64;
    /// Where job `id` is.
    fn state(&self, id: u64) -> JobState;
    /// How job `id` ended.
    fn outcome(&self, id: u64) -> Outcome;
    /// The server's version.
    fn ping(&self) -> String;
}

struct V1;

impl Jobs for V1 {
    fn submit(&self, spec: JobSpec) -> u64 {
        spec.name.len() as u64
    }
    fn state(&self, id: u64) -> JobState {
        JobState::Running(id as u8)
    }
    fn outcome(&self, _id: u64) -> Outcome {
        Outcome::Succeeded
    }
    fn ping(&self) -> String {
        "v1".into()
    }
}

fn call(endpoint: &Endpoint) -> Result<(), RpcError> {
    let client = JobsClient::connect(endpoint)?;
    ipc_rpc_compat::report("ping", client.ping());
    ipc_rpc_compat::report("submit", client.submit(JobSpec { name: "abc".into() }));
    ipc_rpc_compat::report("state", client.state(7));
    ipc_rpc_compat::report("outcome", client.outcome(7));
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    ipc_rpc_compat::main(|ep| ipc_rpc::serve(ep, JobsServer::new(V1)), call)
}
