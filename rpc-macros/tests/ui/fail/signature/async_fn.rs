use ipc_rpc::ipc_service;

#[ipc_service]
pub trait Pinger {
    async fn ping(&self) -> u64;
}

fn main() {}
