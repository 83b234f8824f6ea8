use ipc_rpc::ipc_service;

#[ipc_service]
pub trait Store {
    const CAPACITY: usize;
    fn get(&self, key: String) -> u64;
}

fn main() {}
