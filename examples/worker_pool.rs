//! A CPU-bound service run by a pool of worker processes, and what a second worker
//! buys.
//!
//! ```text
//! cargo run --release --example worker_pool            # primes below 10 000 000
//! cargo run --release --example worker_pool -- 2000000
//! ```
//!
//! The program is its own worker: the pool re-runs it, and in the re-run process
//! `serve_if_worker` serves and never returns. The parent counts the primes below a
//! limit in 64 ranges, pulled by as many calling threads as there are workers, first
//! with one worker, then with two, and prints both timings and the ratio (on a machine
//! with two idle cores, close to 2x). The same count in this process, without a pool,
//! shows what the calls themselves cost.

use std::error::Error;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use ipc_rpc::pool::Pool;
use ipc_rpc::{RpcError, ipc_service};

/// Prime counting: work that keeps a core busy and sends a few bytes each way.
#[ipc_service]
pub trait Primes {
    /// Counts the primes in `[from, to)`.
    fn count(&self, from: u64, to: u64) -> u64;
}

struct TrialDivision;

impl Primes for TrialDivision {
    fn count(&self, from: u64, to: u64) -> u64 {
        (from..to).filter(|&n| is_prime(n)).count() as u64
    }
}

fn is_prime(n: u64) -> bool {
    if n < 4 {
        return n >= 2;
    }
    if n.is_multiple_of(2) {
        return false;
    }
    (3..)
        .step_by(2)
        .take_while(|d| d * d <= n)
        .all(|d| !n.is_multiple_of(d))
}

/// Ranges the work is cut into; callers pull them one by one.
const RANGES: u64 = 64;

/// Counts the primes below `limit` with `callers` threads calling `count`.
fn count_below(
    count: impl Fn(u64, u64) -> Result<u64, RpcError> + Sync,
    limit: u64,
    callers: usize,
) -> Result<u64, RpcError> {
    let next = AtomicU64::new(0);
    let step = limit.div_ceil(RANGES);
    thread::scope(|s| {
        let threads: Vec<_> = (0..callers)
            .map(|_| {
                s.spawn(|| {
                    let mut primes = 0;
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= RANGES {
                            return Ok(primes);
                        }
                        primes += count(i * step, ((i + 1) * step).min(limit))?;
                    }
                })
            })
            .collect();
        threads.into_iter().map(|t| t.join().unwrap()).sum()
    })
}

fn main() -> Result<(), Box<dyn Error>> {
    // Worker side: in a process started by the pool, serve until the pool stops us.
    ipc_rpc::pool::serve_if_worker(PrimesServer::new(TrialDivision))?;

    let limit: u64 = match std::env::args().nth(1) {
        Some(arg) => arg.parse()?,
        None => 10_000_000,
    };
    if cfg!(debug_assertions) {
        println!("(a debug build: run with --release for meaningful timings)");
    }

    let started = Instant::now();
    let expected = count_below(|a, b| Ok(TrialDivision.count(a, b)), limit, 1)?;
    let in_process = started.elapsed();
    println!("in this process, no pool: {expected} primes below {limit} in {in_process:>9.2?}");

    let mut timings: Vec<Duration> = Vec::new();
    for workers in [1, 2] {
        let pool = Pool::<PrimesClient>::builder().workers(workers).spawn()?;
        let primes = pool.client();
        let started = Instant::now();
        let counted = count_below(|a, b| primes.count(a, b), limit, workers)?;
        let took = started.elapsed();
        assert_eq!(counted, expected, "the workers disagree with this process");
        println!(
            "pool of {workers} worker{}        {counted} primes below {limit} in {took:>9.2?} \
             (worker pids {:?})",
            if workers == 1 { ": " } else { "s:" },
            pool.pids(),
        );
        timings.push(took);
        pool.shutdown();
    }
    println!(
        "speed-up of 2 workers over 1: {:.2}x ({:.2?} -> {:.2?}); {} cores available",
        timings[0].as_secs_f64() / timings[1].as_secs_f64(),
        timings[0],
        timings[1],
        thread::available_parallelism().map_or(1, usize::from),
    );
    Ok(())
}
