use ipc_rpc::ipc_service;

#[ipc_service]
pub trait Calculator {
    fn add(&self, (a, b): (i32, i32)) -> i32;
}

fn main() {}
