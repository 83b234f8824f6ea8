use ipc_rpc::ipc_service;

#[ipc_service]
pub trait Store {
    type Value;
    fn get(&self, key: String) -> u64;
}

fn main() {}
