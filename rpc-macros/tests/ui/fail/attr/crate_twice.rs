use ipc_rpc::ipc_service;

#[ipc_service(crate = "ipc_rpc", crate = "ipc_rpc")]
pub trait Pinger {
    fn ping(&self) -> u64;
}

fn main() {}
