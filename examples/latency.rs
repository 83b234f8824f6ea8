//! Quick sequential round-trip latency of one echo call over an endpoint, with the
//! server in a child process. The full side-by-side benchmark is its own program; this
//! is the honest loop for a first figure.
//!
//! ```text
//! cargo run --release --example latency -- unix:/tmp/lat.sock
//! cargo run --release --example latency -- tcp:127.0.0.1:0 64 65536
//! cargo run --release --example latency -- pipe 64 65536
//! ```
//!
//! Arguments: the endpoint, then payload sizes in bytes (default 64 and 65536).

use std::error::Error;
use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ipc_rpc::{Endpoint, EndpointKind, ipc_service};

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

/// How long each size is measured, after a warm-up of a tenth of that.
const MEASURE: Duration = Duration::from_secs(2);

fn main() -> Result<(), Box<dyn Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Some(server) = ipc_rpc::serve_parent(EchoServer::new(Echoer))? {
        server.wait();
        return Ok(());
    }
    if args.first().map(String::as_str) == Some("serve") {
        let endpoint: Endpoint = args.get(1).ok_or("serve needs an endpoint")?.parse()?;
        let server = ipc_rpc::serve(&endpoint, EchoServer::new(Echoer))?;
        println!("{}", server.endpoint());
        let _ = std::io::stdin().read_to_end(&mut Vec::new());
        server.shutdown();
        return Ok(());
    }
    let endpoint: Endpoint = args
        .first()
        .ok_or("usage: latency ENDPOINT [SIZE...]")?
        .parse()?;
    let sizes: Vec<usize> = if args.len() > 1 {
        args[1..]
            .iter()
            .map(|s| s.parse())
            .collect::<Result<_, _>>()?
    } else {
        vec![64, 65536]
    };

    let (client, mut child) = if endpoint.kind() == &EndpointKind::Pipe {
        ipc_rpc::spawn_child_with::<EchoClient>(Command::new(std::env::current_exe()?), &endpoint)?
    } else {
        let mut child = Command::new(std::env::current_exe()?)
            .args(["serve", &endpoint.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()?;
        let mut lines = BufReader::new(child.stdout.take().ok_or("no stdout")?).lines();
        let bound: Endpoint = lines.next().ok_or("server did not start")??.parse()?;
        (EchoClient::connect(&bound)?, child)
    };

    println!("| endpoint | payload | calls | p50 µs | p99 µs | mean µs |");
    println!("|---|---:|---:|---:|---:|---:|");
    for size in sizes {
        let payload = vec![0x5A_u8; size];
        let warm_until = Instant::now() + MEASURE / 10;
        while Instant::now() < warm_until {
            client.echo(payload.clone())?;
        }
        let mut samples = Vec::new();
        let until = Instant::now() + MEASURE;
        while Instant::now() < until {
            let p = payload.clone();
            let t = Instant::now();
            let back = client.echo(p)?;
            samples.push(t.elapsed());
            assert_eq!(back.len(), size);
        }
        samples.sort();
        let us = |d: Duration| d.as_secs_f64() * 1e6;
        let p = |q: f64| us(samples[((samples.len() - 1) as f64 * q) as usize]);
        let mean = us(samples.iter().sum::<Duration>()) / samples.len() as f64;
        println!(
            "| {endpoint} | {size} B | {} | {:.1} | {:.1} | {mean:.1} |",
            samples.len(),
            p(0.5),
            p(0.99)
        );
    }
    drop(client);
    drop(child.stdin.take());
    child.wait()?;
    Ok(())
}
