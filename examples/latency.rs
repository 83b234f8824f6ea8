//! Sequential round-trip latency of an echo over an endpoint, our RPC call against the
//! same transport without the RPC layer, interleaved in one run. The server runs in a
//! child process. The full side-by-side benchmark is its own program; this is the
//! quick, honest loop for one transport.
//!
//! ```text
//! cargo run --release --example latency -- unix:/tmp/lat.sock
//! cargo run --release --example latency -- shm:/lat 64 65536 1048576
//! cargo run --release --example latency -- --pin split pipe 64
//! ```
//!
//! Arguments: `[--pin split|same|off]` (default off), the endpoint, then payload sizes
//! in bytes (default 64 and 65536).
//!
//! - **raw**: `send` a frame, `recv` the echo into a private buffer, on the transport's
//!   own frame sender and receiver (the same rings, pipes or sockets, the same
//!   framing), echoed by a bare loop in the child that also copies each frame out
//!   before sending it back: what the mechanism costs to move the bytes.
//! - **rpc**: `client.echo(bytes)` through the generated client and server: handshake
//!   done, request ids, postcard, dispatch.
//!
//! Rounds alternate raw and rpc so that both see the same machine; the ratio is per
//! size, p50 over p50.

use std::error::Error;
use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ipc_rpc::{Endpoint, EndpointKind, ipc_service};
use rpc_core::{Parts, Transport};

/// Echoes its argument.
#[ipc_service]
pub trait Echo {
    /// Returns `bytes` unchanged.
    fn echo(&self, bytes: Vec<u8>) -> Vec<u8>;
}

struct Echoer;

impl Echo for Echoer {
    fn echo(&self, bytes: Vec<u8>) -> Vec<u8> {
        bytes
    }
}

/// Rounds per size; each round measures raw then rpc for `ROUND`.
const ROUNDS: usize = 6;
const ROUND: Duration = Duration::from_millis(300);

/// Serves raw echo on one transport connection until it closes.
fn raw_echo(mut parts: Parts) {
    let mut copy = Vec::new();
    while let Ok(frame) = parts.receiver.recv(None) {
        copy.clear();
        copy.extend_from_slice(frame.head);
        copy.extend_from_slice(frame.tail.as_deref().unwrap_or_default());
        if parts.sender.send(&copy).is_err() {
            break;
        }
    }
}

fn pin(cpu: Option<usize>) {
    let Some(cpu) = cpu else { return };
    let mut set = nix::sched::CpuSet::new();
    if set.set(cpu).is_ok() {
        let _ = nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &set);
    }
}

fn child_role(args: &[String]) -> Result<bool, Box<dyn Error>> {
    let cpu = std::env::var("LATENCY_CPU")
        .ok()
        .and_then(|c| c.parse().ok());
    if std::env::var("LATENCY_ROLE").as_deref() == Ok("raw-pipe") {
        pin(cpu);
        let t = transports::PipeTransport::inherited()?.ok_or("no inherited pipe")?;
        raw_echo(Box::new(t).split()?);
        return Ok(true);
    }
    if std::env::var("LATENCY_ROLE").as_deref() == Ok("rpc-pipe") {
        pin(cpu);
        let server = ipc_rpc::serve_parent(EchoServer::new(Echoer))?.ok_or("no inherited pipe")?;
        server.wait();
        return Ok(true);
    }
    match args.first().map(String::as_str) {
        Some("serve-rpc") => {
            pin(cpu);
            let endpoint: Endpoint = args[1].parse()?;
            let server = ipc_rpc::serve(&endpoint, EchoServer::new(Echoer))?;
            println!("{}", server.endpoint());
            let _ = std::io::stdin().read_to_end(&mut Vec::new());
            server.shutdown();
            Ok(true)
        }
        Some("serve-raw") => {
            pin(cpu);
            let endpoint: Endpoint = args[1].parse()?;
            let mut listener = transports::listen(&endpoint)?;
            println!("{}", listener.local_endpoint());
            let parts = listener.accept()?.split()?;
            drop(listener);
            raw_echo(parts);
            Ok(true)
        }
        _ => Ok(false),
    }
}

/// Starts a child serving `role` on `endpoint`; returns it and the endpoint it bound.
fn start_child(
    role: &str,
    endpoint: &Endpoint,
    cpu: Option<usize>,
) -> Result<(Child, Endpoint), Box<dyn Error>> {
    let mut cmd = Command::new(std::env::current_exe()?);
    cmd.args([role, &endpoint.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped());
    if let Some(cpu) = cpu {
        cmd.env("LATENCY_CPU", cpu.to_string());
    }
    let mut child = cmd.spawn()?;
    let mut lines = BufReader::new(child.stdout.take().ok_or("no stdout")?).lines();
    let bound: Endpoint = lines.next().ok_or("server did not start")??.parse()?;
    Ok((child, bound))
}

fn pipe_cmd(role: &str, cpu: Option<usize>) -> Result<Command, Box<dyn Error>> {
    let mut cmd = Command::new(std::env::current_exe()?);
    cmd.env("LATENCY_ROLE", role);
    if let Some(cpu) = cpu {
        cmd.env("LATENCY_CPU", cpu.to_string());
    }
    Ok(cmd)
}

fn percentile(sorted: &[Duration], q: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * q) as usize].as_secs_f64() * 1e6
}

fn main() -> Result<(), Box<dyn Error>> {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    if child_role(&args)? {
        return Ok(());
    }
    let mut placement = "off".to_owned();
    if args.first().map(String::as_str) == Some("--pin") {
        placement = args
            .get(1)
            .cloned()
            .ok_or("--pin needs split, same or off")?;
        args.drain(..2);
    }
    let (parent_cpu, child_cpu) = match placement.as_str() {
        "split" => (Some(0), Some(1)),
        "same" => (Some(0), Some(0)),
        "off" => (None, None),
        other => return Err(format!("--pin {other}: expected split, same or off").into()),
    };
    pin(parent_cpu);
    let endpoint: Endpoint = args
        .first()
        .ok_or("usage: latency [--pin split|same|off] ENDPOINT [SIZE...]")?
        .parse()?;
    let sizes: Vec<usize> = if args.len() > 1 {
        args[1..]
            .iter()
            .map(|s| s.parse())
            .collect::<Result<_, _>>()?
    } else {
        vec![64, 65536]
    };

    let is_pipe = endpoint.kind() == &EndpointKind::Pipe;
    // The raw echo server and the rpc server, each in its own child.
    let (mut raw_child, mut raw) = if is_pipe {
        let (child, t) = transports::PipeTransport::spawn(
            pipe_cmd("raw-pipe", child_cpu)?,
            endpoint.max_frame(),
        )?;
        (child, Box::new(t).split()?)
    } else {
        let raw_endpoint = match endpoint.kind().name() {
            Some(name) => endpoint.with_name(format!("{name}.raw"))?,
            None => endpoint.clone(),
        };
        let (child, bound) = start_child("serve-raw", &raw_endpoint, child_cpu)?;
        (child, transports::connect(&bound)?.split()?)
    };
    let (client, mut rpc_child) = if is_pipe {
        ipc_rpc::spawn_child_with::<EchoClient>(pipe_cmd("rpc-pipe", child_cpu)?, &endpoint)?
    } else {
        let (child, bound) = start_child("serve-rpc", &endpoint, child_cpu)?;
        (EchoClient::connect(&bound)?, child)
    };

    println!("placement: {placement}; {ROUNDS} interleaved rounds of {ROUND:?} per size and mode");
    println!(
        "| endpoint | payload | raw p50 µs | rpc p50 µs | rpc/raw | raw p99 µs | rpc p99 µs | rpc calls |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    for size in sizes {
        let payload = vec![0x5A_u8; size];
        let (mut raw_samples, mut rpc_samples) = (Vec::new(), Vec::new());
        let mut reply = Vec::with_capacity(size);
        // Warm-up both.
        for _ in 0..100 {
            raw.sender.send(&payload)?;
            raw.receiver.recv(None)?;
            client.echo(payload.clone())?;
        }
        for _ in 0..ROUNDS {
            let until = Instant::now() + ROUND;
            while Instant::now() < until {
                let t = Instant::now();
                raw.sender.send(&payload)?;
                // Into private memory, as any receiver that keeps the data must.
                reply.clear();
                let frame = raw.receiver.recv(None)?;
                reply.extend_from_slice(frame.head);
                reply.extend_from_slice(frame.tail.as_deref().unwrap_or_default());
                raw_samples.push(t.elapsed());
                assert_eq!(reply.len(), size);
            }
            let until = Instant::now() + ROUND;
            while Instant::now() < until {
                let p = payload.clone();
                let t = Instant::now();
                let back = client.echo(p)?;
                rpc_samples.push(t.elapsed());
                assert_eq!(back.len(), size);
            }
        }
        raw_samples.sort();
        rpc_samples.sort();
        let (raw50, rpc50) = (percentile(&raw_samples, 0.5), percentile(&rpc_samples, 0.5));
        println!(
            "| {endpoint} | {size} B | {raw50:.2} | {rpc50:.2} | {:.2} | {:.1} | {:.1} | {} |",
            rpc50 / raw50,
            percentile(&raw_samples, 0.99),
            percentile(&rpc_samples, 0.99),
            rpc_samples.len()
        );
    }
    drop(raw);
    drop(client);
    drop(raw_child.stdin.take());
    drop(rpc_child.stdin.take());
    raw_child.wait()?;
    rpc_child.wait()?;
    Ok(())
}
