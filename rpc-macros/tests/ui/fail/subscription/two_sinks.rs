use ipc_rpc::{ipc_service, Sink};

#[ipc_service]
pub trait Jobs {
    /// One sink per subscription.
    fn watch(&self, progress: Sink<u32>, events: ipc_rpc::Sink<String>);
}

fn main() {}
