use ipc_rpc::ipc_service;

#[ipc_service]
pub trait Store<T> {
    fn get(&self, key: String) -> T;
}

fn main() {}
