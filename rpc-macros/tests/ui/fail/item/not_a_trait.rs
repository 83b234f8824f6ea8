use ipc_rpc::ipc_service;

#[ipc_service]
pub struct Calculator {
    total: i64,
}

fn main() {}
