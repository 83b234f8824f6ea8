//! A service in a child process, over two anonymous pipes.
//!
//! ```text
//! cargo run --example child_process
//! ```
//!
//! The program starts itself again as the child. The child finds the pipe pair it
//! inherited (descriptors 3 and 4, announced in `IPC_RPC_PIPE`), serves the parent,
//! and exits when the parent closes its end or dies. Nothing is created in the file
//! system.

use std::error::Error;
use std::process::Command;

use ipc_rpc::ipc_service;

/// Work worth moving out of the parent's address space.
#[ipc_service]
pub trait Worker {
    /// Counts the primes below `limit`.
    fn count_primes(&self, limit: u64) -> u64;
    /// The worker's process id.
    fn pid(&self) -> u32;
    /// Crashes the worker process, to show what the parent sees.
    fn crash(&self);
}

struct Sieve;

impl Worker for Sieve {
    fn count_primes(&self, limit: u64) -> u64 {
        let n = limit as usize;
        let mut composite = vec![false; n.max(2)];
        let mut count = 0;
        for i in 2..n {
            if !composite[i] {
                count += 1;
                (i * i..n).step_by(i).for_each(|j| composite[j] = true);
            }
        }
        count
    }

    fn pid(&self) -> u32 {
        std::process::id()
    }

    fn crash(&self) {
        std::process::abort();
    }
}

fn main() -> Result<(), Box<dyn Error>> {
    // Child side: one line. Serves over the inherited pipes; `None` in the parent.
    if let Some(server) = ipc_rpc::serve_parent(WorkerServer::new(Sieve))? {
        server.wait(); // until the parent closes its end or exits
        return Ok(());
    }

    // Parent side: spawn this program as the child and get a connected client.
    let (worker, mut child) =
        ipc_rpc::spawn_child::<WorkerClient>(Command::new(std::env::current_exe()?))?;
    println!(
        "parent pid {}, worker pid {}",
        std::process::id(),
        worker.pid()?
    );
    for limit in [1_000, 1_000_000, 10_000_000] {
        println!("primes below {limit:>10}: {}", worker.count_primes(limit)?);
    }

    // A second child that crashes: the call in flight returns Disconnected.
    let (doomed, mut doomed_child) =
        ipc_rpc::spawn_child::<WorkerClient>(Command::new(std::env::current_exe()?))?;
    match doomed.crash() {
        Err(e) if e.is_disconnected() => println!("crashing worker: {e}"),
        other => println!("crashing worker: unexpected {other:?}"),
    }
    println!("crashed worker exited: {}", doomed_child.wait()?);

    drop(worker); // end-of-file for the first child, which then exits
    println!("worker exited: {}", child.wait()?);
    Ok(())
}
