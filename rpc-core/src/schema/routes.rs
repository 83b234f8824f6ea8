//! Where a client's methods are on one server.

use std::sync::Arc;

use super::service::ServiceInfo;
use crate::error::RpcError;

/// A method as the server described it in its welcome.
#[derive(Debug, Clone, Copy)]
pub struct ServerMethod<'a> {
    /// Its name.
    pub name: &'a str,
    /// Its [`fingerprint`](super::fingerprint).
    pub fingerprint: u64,
    /// Its [`MethodInfo::signature`](super::MethodInfo::signature); empty if the server left it out.
    pub signature: &'a str,
}

/// Where each of a client's methods goes on one server: the server's method number, or
/// why it cannot be called there.
#[derive(Debug)]
pub struct MethodRoutes {
    service: &'static ServiceInfo,
    routes: Box<[Route]>,
}

#[derive(Debug)]
enum Route {
    At(u16),
    /// The server has a method of that name with another fingerprint: its signature.
    Differs(Box<str>),
    Missing,
}

impl MethodRoutes {
    /// Maps `service`'s methods to `server`'s, by name and fingerprint.
    pub fn new<'a>(
        service: &'static ServiceInfo,
        server: impl IntoIterator<Item = ServerMethod<'a>> + Clone,
    ) -> MethodRoutes {
        let routes = service
            .methods
            .iter()
            .map(|mine| {
                let found = server
                    .clone()
                    .into_iter()
                    .enumerate()
                    .find(|(_, theirs)| theirs.name == mine.name);
                match found {
                    Some((at, theirs)) if theirs.fingerprint == mine.fingerprint => {
                        u16::try_from(at).map_or(Route::Missing, Route::At)
                    }
                    Some((_, theirs)) => Route::Differs(theirs.signature.into()),
                    None => Route::Missing,
                }
            })
            .collect();
        MethodRoutes { service, routes }
    }

    /// Every method at its own number: a server of the same build (a pool's workers,
    /// which run this binary).
    pub fn identity(service: &'static ServiceInfo) -> MethodRoutes {
        MethodRoutes {
            service,
            routes: (0..service.methods.len())
                .map(|i| u16::try_from(i).map_or(Route::Missing, Route::At))
                .collect(),
        }
    }

    /// The server's number for this client's method `method`, or
    /// [`RpcError::MethodMismatch`] saying why it cannot be called on `peer`.
    #[inline]
    pub fn wire_method(&self, method: u16, peer: &Arc<str>) -> Result<u16, RpcError> {
        match self.routes.get(usize::from(method)) {
            Some(Route::At(at)) => Ok(*at),
            // A hand-written stub's number beyond the service's: the server says.
            None => Ok(method),
            Some(route) => Err(self.mismatch(method, route, peer)),
        }
    }

    #[cold]
    fn mismatch(&self, method: u16, route: &Route, peer: &Arc<str>) -> RpcError {
        let mine = &self.service.methods[usize::from(method)];
        RpcError::MethodMismatch {
            peer: peer.clone(),
            service: self.service.name,
            method: mine.name,
            client: mine.signature().into(),
            server: match route {
                Route::Differs(theirs) if theirs.is_empty() => {
                    Some("(another one; too long to send within this client's max_frame)".into())
                }
                Route::Differs(theirs) => Some(theirs.clone()),
                _ => None,
            },
        }
    }

    /// How many of this client's methods the server can run as they are.
    pub fn callable(&self) -> usize {
        self.routes
            .iter()
            .filter(|r| matches!(r, Route::At(_)))
            .count()
    }
}
