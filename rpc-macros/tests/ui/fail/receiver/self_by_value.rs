use ipc_rpc::ipc_service;

#[ipc_service]
pub trait Session {
    fn finish(self) -> u32;
}

fn main() {}
