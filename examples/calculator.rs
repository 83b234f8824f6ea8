//! A calculator service called from another process. The endpoint picks the transport:
//!
//! ```text
//! cargo run --example calculator -- unix:/tmp/calc.sock   # UNIX socket
//! cargo run --example calculator -- tcp:127.0.0.1:0        # TCP, any free port
//! ```
//!
//! With one argument it starts itself again as the server (a child process), calls it,
//! and stops it with SIGTERM. To run the two sides in two terminals instead (Ctrl-C
//! stops the server, which removes its socket file, queue or shared-memory rendezvous):
//!
//! ```text
//! cargo run --example calculator -- serve unix:/tmp/calc.sock
//! cargo run --example calculator -- call  unix:/tmp/calc.sock
//! ```
//!
//! The endpoint can also come from the environment: `CALC_ENDPOINT=tcp:127.0.0.1:7000`.

use std::error::Error;
use std::io::{BufRead, BufReader};
use std::process::{Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use ipc_rpc::{Endpoint, ipc_service};
use serde::{Deserialize, Serialize};

/// What can go wrong in the calculator itself (an application error, sent as a value).
#[derive(Debug, Serialize, Deserialize, ipc_rpc::Schema)]
pub enum MathError {
    /// The divisor was zero.
    DivideByZero,
    /// The quotient does not fit in an `i64`.
    Overflow,
}

/// A calculator with a running total.
#[ipc_service]
pub trait Calculator {
    /// Adds two numbers.
    fn add(&self, a: i64, b: i64) -> i64;
    /// Divides `a` by `b`.
    fn div(&self, a: i64, b: i64) -> Result<i64, MathError>;
    /// Adds `x` to the running total and returns it.
    fn accumulate(&self, x: i64) -> i64;
    /// Sets the running total back to zero.
    fn reset(&self);
    /// Takes `ms` milliseconds, to show deadlines.
    fn slow(&self, ms: u64);
    /// The server's process id.
    fn pid(&self) -> u32;
}

#[derive(Default)]
struct Calc {
    total: AtomicI64,
}

impl Calculator for Calc {
    fn add(&self, a: i64, b: i64) -> i64 {
        a.wrapping_add(b)
    }
    fn div(&self, a: i64, b: i64) -> Result<i64, MathError> {
        if b == 0 {
            return Err(MathError::DivideByZero);
        }
        a.checked_div(b).ok_or(MathError::Overflow)
    }
    fn accumulate(&self, x: i64) -> i64 {
        self.total.fetch_add(x, Ordering::Relaxed) + x
    }
    fn reset(&self) {
        self.total.store(0, Ordering::Relaxed);
    }
    fn slow(&self, ms: u64) {
        std::thread::sleep(Duration::from_millis(ms));
    }
    fn pid(&self) -> u32 {
        std::process::id()
    }
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            let mut source = e.source();
            while let Some(cause) = source {
                eprintln!("  caused by: {cause}");
                source = cause.source();
            }
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), Box<dyn Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let endpoint = |s: Option<&String>| -> Result<Endpoint, Box<dyn Error>> {
        Ok(match s {
            Some(s) => s.parse()?,
            None => Endpoint::from_env("CALC_ENDPOINT")?,
        })
    };
    match args.first().map(String::as_str) {
        Some("serve") => serve(&endpoint(args.get(1))?),
        Some("call") => call(&endpoint(args.get(1))?),
        Some("--help" | "-h") => {
            println!("usage: calculator [serve|call] [ENDPOINT]   (or set CALC_ENDPOINT)");
            Ok(())
        }
        _ => both(&endpoint(args.first())?),
    }
}

/// Serves until SIGTERM or SIGINT (Ctrl-C), then shuts down and cleans up.
fn serve(endpoint: &Endpoint) -> Result<(), Box<dyn Error>> {
    let server = ipc_rpc::serve(endpoint, CalculatorServer::new(Calc::default()))?;
    println!(
        "server pid {} listening on {}",
        std::process::id(),
        server.endpoint()
    );
    let stopped = server.wait_for_signal()?;
    println!("server stopped: {stopped:?}");
    Ok(())
}

fn call(endpoint: &Endpoint) -> Result<(), Box<dyn Error>> {
    let calc = CalculatorClient::connect(endpoint)?;
    println!(
        "client pid {} connected to {} (server pid {})",
        std::process::id(),
        calc.peer(),
        calc.pid()?
    );
    println!("add(2, 3)         = {}", calc.add(2, 3)?);
    println!("div(7, 2)         = {:?}", calc.div(7, 2)?);
    println!("div(1, 0)         = {:?}", calc.div(1, 0)?);
    calc.reset()?;
    for x in 1..=4 {
        calc.accumulate(x)?;
    }
    println!("accumulate(1..=4) = {}", calc.accumulate(0)?);
    let hurried = calc.with_timeout(Duration::from_millis(50));
    match hurried.slow(500) {
        Err(e) => println!("slow(500) with a 50 ms deadline: {e}"),
        Ok(()) => println!("slow(500) finished within 50 ms?"),
    }
    println!(
        "add(40, 2)        = {} (the client is still usable)",
        calc.add(40, 2)?
    );
    Ok(())
}

/// Starts `serve` in a child process, runs `call` against it, then stops the child.
fn both(endpoint: &Endpoint) -> Result<(), Box<dyn Error>> {
    let mut child = Command::new(std::env::current_exe()?)
        .arg("serve")
        .arg(endpoint.to_string())
        .stdout(Stdio::piped())
        .spawn()?;
    let mut lines = BufReader::new(child.stdout.take().ok_or("no child stdout")?).lines();
    let Some(Ok(ready)) = lines.next() else {
        let status = child.wait()?;
        return Err(format!("the server did not start ({status}); its error is above").into());
    };
    println!("{ready}");
    let bound: Endpoint = ready.rsplit(' ').next().ok_or("bad ready line")?.parse()?;
    let result = call(&bound);
    // What `kill` or a service manager does: the server shuts down cleanly.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(i32::try_from(child.id())?),
        nix::sys::signal::Signal::SIGTERM,
    )?;
    if let Some(Ok(stopped)) = lines.next() {
        println!("{stopped}");
    }
    child.wait()?;
    result
}
