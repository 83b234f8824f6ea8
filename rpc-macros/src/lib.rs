//! The `#[ipc_service]` attribute of ipc-rpc. Use it through the facade:
//! `use ipc_rpc::ipc_service;`.
#![forbid(unsafe_code)]

use proc_macro::TokenStream;

mod ast;
mod attr;
mod expand;
mod fallback;
mod names;
mod schema_derive;
mod valid;

/// Turns a trait into a cross-process service: a client stub and a server dispatcher.
///
/// ```
/// use ipc_rpc::ipc_service;
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Debug, PartialEq, Serialize, Deserialize, ipc_rpc::Schema)]
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
/// (another service is `RpcError::Incompatible`), and the server lists its methods with
/// a fingerprint of each one's arguments' and reply's *structure*: the client calls each
/// of its methods by the server's number for it, and a method the server lacks or
/// whose structure differs fails that call only, with `RpcError::MethodMismatch`
/// showing both signatures.
///
/// # What it accepts
///
/// Methods taking `&self` and zero or more owned arguments whose types implement
/// serde's `Serialize` and `Deserialize`, and `ipc_rpc::Schema` (std types do; derive it
/// on your own: `#[derive(Serialize, Deserialize, ipc_rpc::Schema)]`); any such return
/// type, `()` or none; default
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

/// Derives `ipc_rpc::Schema`: the type's structure on the wire, which
/// `#[ipc_service]` needs for every argument and return type, so that client and
/// server find out at connect whether they agree on it.
///
/// Put it beside serde's derives; it follows their attributes (`rename`, `skip`,
/// `transparent`) and refuses those whose bytes it cannot describe (`with`,
/// `flatten`, `untagged`, ...). `#[schema(crate = "path::to::ipc_rpc")]` names the
/// facade when it is re-exported.
///
/// ```
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Serialize, Deserialize, ipc_rpc::Schema)]
/// pub struct JobSpec { pub name: String, pub priority: u8 }
///
/// #[derive(Serialize, Deserialize, ipc_rpc::Schema)]
/// pub enum JobState { Queued, Running { percent: u8 }, Done(i32) }
///
/// #[ipc_rpc::ipc_service]
/// pub trait Jobs {
///     fn submit(&self, spec: JobSpec) -> u64;
///     fn state(&self, id: u64) -> Option<JobState>;
/// }
///
/// let submit = &JobsClient::SERVICE.methods[0];
/// assert_eq!(submit.signature(), "submit(spec: JobSpec { name: String, priority: u8 }) -> u64");
/// ```
#[proc_macro_derive(Schema, attributes(schema))]
pub fn derive_schema(item: TokenStream) -> TokenStream {
    schema_derive::derive(item.into())
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}
