//! Each worker's own endpoint, derived from the pool's. Removing what a dead worker
//! left there is the transports' job: `transports::reclaim_stale`.
//!
//! | pool endpoint | worker `i` of pool `k` in process `p` |
//! |---|---|
//! | `pipe` | `pipe` (its own pipe pair) |
//! | `unix:/run/app/hasher.sock` | `unix:/run/app/hasher-p-k-i.sock` |
//! | `fifo:/run/app/hasher` | `fifo:/run/app/hasher-p-k-i` |
//! | `mq:/hasher`, `shm:/hasher` | `mq:/hasher-p-k-i`, `shm:/hasher-p-k-i` |
//! | `tcp:127.0.0.1:0` | `tcp:127.0.0.1:0`: each worker binds a free port and reports it |
//!
//! A slot keeps its name across restarts, so a replacement binding it also replaces
//! whatever a killed predecessor left (every transport replaces a stale object at
//! bind); the pool also reclaims the name as soon as it has reaped a worker.

use std::path::Path;

use transports::{Endpoint, EndpointKind};

use super::PoolError;

/// The endpoint worker `index` of pool number `pool` (of this process) serves on.
///
/// # Errors
///
/// `Config` for a `tcp` endpoint with a fixed port (workers cannot share one), or
/// when the derived name is not a valid endpoint (too long).
pub(crate) fn derive(base: &Endpoint, pool: u64, index: usize) -> Result<Endpoint, PoolError> {
    let suffix = format!("-{}-{pool}-{index}", std::process::id());
    let name = match base.kind() {
        EndpointKind::Pipe => return Ok(base.clone()),
        EndpointKind::Tcp { port: 0, .. } | EndpointKind::Tls { port: 0, .. } => {
            return Ok(base.clone());
        }
        EndpointKind::Tcp { .. } | EndpointKind::Tls { .. } => {
            return Err(PoolError::Config(format!(
                "{base}: workers cannot share one port; give port 0 (e.g. tcp:127.0.0.1:0) and \
                 each worker binds a free one"
            )));
        }
        EndpointKind::Unix { path, .. } => with_suffix(path, &suffix),
        EndpointKind::Fifo { path } => format!("{path}{suffix}"),
        EndpointKind::Mq { name, .. } | EndpointKind::Shm { name, .. } => {
            format!("{name}{suffix}")
        }
        other => {
            return Err(PoolError::Unsupported {
                endpoint: base.to_string(),
                reason: format!(
                    "a pool cannot derive worker endpoints for `{}`",
                    other.scheme()
                ),
            });
        }
    };
    base.with_name(name).map_err(|e| {
        PoolError::Config(format!(
            "the workers' endpoints derived from {base} are invalid ({e}); use a shorter name"
        ))
    })
}

/// `/dir/stem.ext` → `/dir/stem<suffix>.ext`.
fn with_suffix(path: &str, suffix: &str) -> String {
    let p = Path::new(path);
    match (p.file_stem(), p.extension()) {
        (Some(stem), Some(ext)) => p
            .with_file_name(format!(
                "{}{suffix}.{}",
                stem.to_string_lossy(),
                ext.to_string_lossy()
            ))
            .display()
            .to_string(),
        _ => format!("{path}{suffix}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn derived(base: &str) -> Result<String, PoolError> {
        derive(&base.parse().unwrap(), 7, 2).map(|e| e.to_string())
    }

    #[test]
    fn each_kind_gets_a_per_worker_name() {
        let p = std::process::id();
        assert_eq!(derived("pipe").unwrap(), "pipe");
        assert_eq!(
            derived("unix:/run/app/h.sock?max_frame=4096").unwrap(),
            format!("unix:/run/app/h-{p}-7-2.sock?max_frame=4096")
        );
        assert_eq!(
            derived("unix:/run/app/h").unwrap(),
            format!("unix:/run/app/h-{p}-7-2")
        );
        assert_eq!(
            derived("fifo:/run/h").unwrap(),
            format!("fifo:/run/h-{p}-7-2")
        );
        assert_eq!(derived("shm:/h").unwrap(), format!("shm:/h-{p}-7-2"));
        assert_eq!(derived("mq:/h").unwrap(), format!("mq:/h-{p}-7-2"));
        assert_eq!(derived("tcp:127.0.0.1:0").unwrap(), "tcp:127.0.0.1:0");
    }

    #[test]
    fn a_fixed_tcp_port_or_a_too_long_path_is_refused() {
        let err = derived("tcp:127.0.0.1:7000").unwrap_err();
        assert!(err.to_string().contains("port 0"), "{err}");
        let long = format!("unix:/{}.sock", "x".repeat(95));
        let err = derived(&long).unwrap_err();
        assert!(err.to_string().contains("shorter"), "{err}");
    }
}
