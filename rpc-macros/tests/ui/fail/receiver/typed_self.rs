use ipc_rpc::ipc_service;

#[ipc_service]
pub trait Session {
    fn finish(self: Box<Self>) -> u32;
}

fn main() {}
