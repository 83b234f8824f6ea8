use ipc_rpc::{ipc_service, Sink};

#[ipc_service]
pub trait Jobs {
    /// The sink must come after the job id.
    fn watch(&self, events: Sink<u32>, id: u64);
}

fn main() {}
