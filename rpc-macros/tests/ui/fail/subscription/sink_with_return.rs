use ipc_rpc::{ipc_service, Sink};

#[ipc_service]
pub trait Jobs {
    /// A subscription returns nothing: its events are its answer.
    fn watch(&self, id: u64, events: Sink<u32>) -> bool;
}

fn main() {}
