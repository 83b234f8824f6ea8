use ipc_rpc::ipc_service;

#[ipc_service]
pub trait Memory {
    unsafe fn peek(&self, addr: u64) -> u8;
}

fn main() {}
