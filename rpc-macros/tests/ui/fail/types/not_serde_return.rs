use ipc_rpc::ipc_service;

#[derive(ipc_rpc::Schema)]
pub struct NotSerde;

#[ipc_service]
pub trait Store {
    fn get(&self, key: String) -> Option<NotSerde>;
}

fn main() {}
