use ipc_rpc::ipc_service;

#[ipc_service(foo)]
pub trait Pinger {
    fn ping(&self) -> u64;
}

struct P;
impl Pinger for P {
    fn ping(&self) -> u64 {
        1
    }
}

fn main() {}
