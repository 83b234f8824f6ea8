use ipc_rpc::ipc_service;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
pub struct Event {
    pub percent: u8,
}

#[derive(Serialize, Deserialize, ipc_rpc::Schema)]
pub struct Batch {
    pub events: Vec<Event>,
}

#[ipc_service]
pub trait Jobs {
    fn events(&self, id: u64) -> Batch;
}

fn main() {}
