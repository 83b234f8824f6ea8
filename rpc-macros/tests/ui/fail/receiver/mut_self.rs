use ipc_rpc::ipc_service;

#[ipc_service]
pub trait Counter {
    fn bump(&mut self) -> u64;
}

fn main() {}
