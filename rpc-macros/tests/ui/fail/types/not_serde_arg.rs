use ipc_rpc::ipc_service;

#[derive(ipc_rpc::Schema)]
pub struct NotSerde;

#[ipc_service]
pub trait Store {
    fn put(&self, key: String, value: NotSerde) -> bool;
}

fn main() {}
