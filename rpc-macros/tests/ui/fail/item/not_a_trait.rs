use ipc_rpc::ipc_service;

#[ipc_service]
pub struct Calculator;

impl Calculator {}

fn main() {}
