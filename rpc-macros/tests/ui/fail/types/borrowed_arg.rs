use ipc_rpc::ipc_service;

#[ipc_service]
pub trait Greeter {
    fn hello(&self, name: &str) -> String;
}

fn main() {}
