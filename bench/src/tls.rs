//! The `tls` row's certificates: an authority and a server certificate for
//! `127.0.0.1`, made for the run in a temp directory removed at its end (the test
//! suite's generator, shared).

use std::sync::{Mutex, MutexGuard, PoisonError};

use ipc_rpc::{Endpoint, EndpointKind, TlsOptions};

#[path = "../../transports/tests/support/certs.rs"]
mod support;

pub use support::Certs;

static CERTS: Mutex<Option<Certs>> = Mutex::new(None);

/// The run's certificates, made on first use.
pub fn certs() -> CertsRef {
    let mut slot = CERTS.lock().unwrap_or_else(PoisonError::into_inner);
    slot.get_or_insert_with(Certs::new);
    CertsRef(slot)
}

/// The run's certificates, borrowed.
pub struct CertsRef(MutexGuard<'static, Option<Certs>>);

impl std::ops::Deref for CertsRef {
    type Target = Certs;
    fn deref(&self) -> &Certs {
        self.0.as_ref().expect("made by certs()")
    }
}

/// Where a client connects for the server that printed `bound`: the same address,
/// trusting the run's authority.
pub fn client_endpoint(bound: &Endpoint) -> Endpoint {
    match bound.kind() {
        EndpointKind::Tls { host, port, .. } => Endpoint::tls(
            host.clone(),
            *port,
            TlsOptions::default().with_ca(certs().path("ca.pem")),
        ),
        _ => bound.clone(),
    }
}

/// Removes the certificates' directory.
pub fn remove_certs() {
    drop(CERTS.lock().unwrap_or_else(PoisonError::into_inner).take());
}
