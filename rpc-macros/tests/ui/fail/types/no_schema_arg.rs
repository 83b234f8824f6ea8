use ipc_rpc::ipc_service;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
pub struct JobSpec {
    pub name: String,
}

#[ipc_service]
pub trait Jobs {
    fn submit(&self, spec: JobSpec) -> u64;
}

fn main() {}
