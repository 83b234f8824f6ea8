//! What a generated `{Trait}Server<S>` implements, for code generic over services.
//!
//! `#[ipc_service]` implements [`Dispatch`] for `{Trait}Server<S>`; [`crate::serve`]
//! and [`crate::serve_parent`] take any `D: Dispatch`. Name the trait when a function of
//! yours serves whatever service it is given:
//!
//! ```
//! use ipc_rpc::{Endpoint, ServeError, ServerHandle, ipc_service};
//! use ipc_rpc::dispatch::Dispatch;
//!
//! /// Serves `service` at `endpoint` and says what it serves.
//! fn start<D: Dispatch>(endpoint: &Endpoint, service: D) -> Result<ServerHandle, ServeError> {
//!     println!("serving {}", service.info());
//!     ipc_rpc::serve(endpoint, service)
//! }
//!
//! #[ipc_service]
//! pub trait Ping {
//!     fn ping(&self) -> u32;
//! }
//! struct Pong;
//! impl Ping for Pong {
//!     fn ping(&self) -> u32 { 7 }
//! }
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let server = start(&"tcp:127.0.0.1:0".parse()?, PingServer::new(Pong))?;
//! assert_eq!(PingClient::connect(&server.endpoint())?.ping()?, 7);
//! server.shutdown();
//! # Ok(())
//! # }
//! ```
//!
//! Writing a `Dispatch` by hand is possible (decode `args` with postcard, answer with
//! [`Reply::send_ok`]) but the generated one is what clients' fingerprints expect.

pub use rpc_core::buf::Payload;
pub use rpc_core::{Dispatch, DispatchError, Reply};
