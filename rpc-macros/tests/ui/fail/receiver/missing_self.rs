use ipc_rpc::ipc_service;

#[ipc_service]
pub trait Factory {
    fn make(size: u32) -> u32;
}

fn main() {}
