//! A method may be called `client`: the generated client has no method of that name
//! (its connection lives in a private field).
use ipc_rpc::ipc_service;

#[ipc_service]
pub trait Registry {
    fn client(&self, id: u32) -> String;
}

struct Names;

impl Registry for Names {
    fn client(&self, id: u32) -> String {
        id.to_string()
    }
}

fn main() {
    let _ = RegistryServer::new(Names);
    let _ = RegistryClient::client;
}
