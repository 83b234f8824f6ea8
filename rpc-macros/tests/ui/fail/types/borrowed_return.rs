use ipc_rpc::ipc_service;

#[ipc_service]
pub trait Directory {
    fn name(&self) -> &str;
}

fn main() {}
