use ipc_rpc::ipc_service;

#[ipc_service]
pub trait Modem {
    fn connect(&self, number: String) -> bool;
}

fn main() {}
