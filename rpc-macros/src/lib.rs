//! The `#[ipc_service]` attribute of ipc-rpc. Use it through the facade:
//! `use ipc_rpc::ipc_service;`.
#![forbid(unsafe_code)]

use proc_macro::TokenStream;

mod ast;
mod attr;
mod expand;
mod fallback;
mod names;
mod valid;

/// Turns a trait into a cross-process service: a client stub and a server dispatcher.
///
/// ```
/// use ipc_rpc::ipc_service;
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Debug, PartialEq, Serialize, Deserialize)]
/// pub enum MathError { DivideByZero }
///
/// #[ipc_service]
/// pub trait Calculator {
///     /// Adds two numbers.
///     fn add(&self, a: i64, b: i64) -> i64;
///     fn div(&self, a: i64, b: i64) -> Result<i64, MathError>;
///     fn reset(&self) {}
/// }
///
/// struct Calc;
/// impl Calculator for Calc {
///     fn add(&self, a: i64, b: i64) -> i64 { a + b }
///     fn div(&self, a: i64, b: i64) -> Result<i64, MathError> {
///         a.checked_div(b).ok_or(MathError::DivideByZero)
///     }
/// }
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let dir = std::env::temp_dir().join(format!("ipc-rpc-doc-{}", std::process::id()));
/// # std::fs::create_dir_all(&dir)?;
/// # let ep: ipc_rpc::Endpoint = format!("unix:{}/calc.sock", dir.display()).parse()?;
/// let server = ipc_rpc::serve(&ep, CalculatorServer::new(Calc))?;
/// let client = CalculatorClient::connect(&server.endpoint())?;
/// assert_eq!(client.add(2, 3)?, 5);
/// assert_eq!(client.div(1, 0)?, Err(MathError::DivideByZero));
/// server.shutdown();
/// # std::fs::remove_dir_all(&dir)?;
/// # Ok(())
/// # }
/// ```
///
/// # What it generates
///
/// From `trait Calculator` (besides the trait itself, unchanged):
///
/// - `CalculatorClient`: `Clone + Send + Sync`, with `connect(&Endpoint)`,
///   `from_client(ipc_rpc::Client)` (wraps a handshaken core client),
///   `with_timeout(Duration)`, `timeout()`, `peer()`, the constant `SERVICE`, and one method per
///   trait method with the same arguments, returning `Result<Ret, RpcError>`. A method
///   declared `-> Result<T, E>` returns `Result<Result<T, E>, RpcError>`: the inner
///   result is the handler's own value. Doc comments carry over.
/// - `CalculatorServer<S: Calculator + Send + Sync + 'static>`: `new(service)`; pass
///   it to `ipc_rpc::serve`.
///
/// Methods are numbered in declaration order. The handshake compares the service name
/// and a fingerprint of every method's name and signature (types as written), so a
/// client built from another trait or another version gets `RpcError::Incompatible`.
///
/// # What it accepts
///
/// Methods taking `&self` and zero or more owned arguments whose types implement
/// serde's `Serialize` and `Deserialize`; any such return type, `()` or none; default
/// method bodies; `pub` or private traits; `#[cfg]` on methods.
///
/// A byte string (`Vec<u8>`, `ipc_rpc::Bytes`, or an alias of either) as the last
/// argument or the return value is sent from where it is and received without a copy.
/// The generated code picks that path by type, so an alias keeps it; every other type
/// goes through serde.
///
/// # What it refuses (compile errors that say what to write instead)
///
/// Generic traits or methods, `async fn`, `unsafe`/`const`/`extern` methods, a missing
/// `&self`, `self` by value, `&mut self`, typed receivers, borrowed, `impl Trait`,
/// `dyn`, pointer or `Self` types, argument patterns, associated types and consts,
/// method names that clash with the client's own (`connect`, `with_timeout`, ...),
/// and anything that is not a trait.
///
/// # Arguments
///
/// `#[ipc_service(crate = "path::to::ipc_rpc")]` names the facade crate when it is
/// re-exported under another path.
#[proc_macro_attribute]
pub fn ipc_service(attr: TokenStream, item: TokenStream) -> TokenStream {
    expand::expand(attr.into(), item.into())
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}
