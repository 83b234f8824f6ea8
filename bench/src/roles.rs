//! How the benchmark tells a child process what to be: the variables it re-runs itself
//! with (shared by the RPC children in `main` and the raw ones in `raw`).

/// The environment variable that gives a child its role.
pub const ROLE_ENV: &str = "IPC_RPC_BENCH_ROLE";
/// The environment variable that gives a child its CPU.
pub const CPU_ENV: &str = "IPC_RPC_BENCH_CPU";
