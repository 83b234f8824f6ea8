//! What the two builds of the `Jobs` service share: how a binary serves, and how its
//! client reports each call, one line per method, for `tests/versions.rs` to read.
//!
//! `jobs-v1 serve ENDPOINT` prints `ready ENDPOINT` (the bound endpoint, port
//! included) and serves until its stdin closes; `jobs-v1 call ENDPOINT` calls every
//! method of its own version and prints `method: ok VALUE` or `method: err MESSAGE`.

use std::fmt::Debug;
use std::io::{BufRead, Write};

use ipc_rpc::{Endpoint, RpcError, ServeError, ServerHandle};
use serde::{Deserialize, Serialize};

/// Where a job is: a type both versions take from here unchanged, as two builds of
/// one code base would.
#[derive(Debug, Serialize, Deserialize, ipc_rpc::Schema)]
pub enum JobState {
    /// Waiting.
    Queued,
    /// Running, this far along.
    Running(u8),
    /// Finished.
    Done,
}

/// Runs `serve` or `call` as the command line asks; `serve` starts this version's
/// server at an endpoint, `call` runs this version's client against one.
pub fn main(
    serve: impl FnOnce(&Endpoint) -> Result<ServerHandle, ServeError>,
    call: impl FnOnce(&Endpoint) -> Result<(), RpcError>,
) -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [role, endpoint] = args.as_slice() else {
        return Err("usage: jobs-vN serve|call ENDPOINT".into());
    };
    let endpoint: Endpoint = endpoint.parse()?;
    match role.as_str() {
        "serve" => {
            let server = serve(&endpoint)?;
            println!("ready {}", server.endpoint());
            std::io::stdout().flush()?;
            // Serve until the test closes our stdin.
            for line in std::io::stdin().lock().lines() {
                line?;
            }
            server.shutdown();
            Ok(())
        }
        "call" => Ok(call(&endpoint)?),
        other => Err(format!("unknown role `{other}`: serve or call").into()),
    }
}

/// Prints one call's outcome: `method: ok VALUE` or `method: err MESSAGE`.
pub fn report<T: Debug>(method: &str, result: Result<T, RpcError>) {
    match result {
        Ok(value) => println!("{method}: ok {value:?}"),
        Err(e) => println!("{method}: err {e}"),
    }
}
