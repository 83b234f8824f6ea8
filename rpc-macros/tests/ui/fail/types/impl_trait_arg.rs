use ipc_rpc::ipc_service;

#[ipc_service]
pub trait Summer {
    fn sum(&self, values: impl IntoIterator<Item = i64>) -> i64;
}

fn main() {}
