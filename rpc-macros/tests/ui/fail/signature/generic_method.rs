use ipc_rpc::ipc_service;

#[ipc_service]
pub trait Echo {
    fn echo<T>(&self, value: T) -> T;
}

fn main() {}
