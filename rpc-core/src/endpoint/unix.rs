//! `unix:/path.sock` options: `allow_uid`.

use std::fmt;

use super::syntax::{self, KindOptions, OptionError, Query, Uids};

/// Longest UNIX socket path: `sun_path` is 108 bytes with the terminating NUL.
pub const MAX_UNIX_PATH: usize = 107;

/// The keys a `unix:` endpoint takes, in canonical order.
pub(super) const KEYS: &[&str] = &["allow_uid"];

/// The options of a `unix:` endpoint.
///
/// # Examples
///
/// ```
/// use rpc_core::endpoint::{Endpoint, EndpointKind, UnixOptions};
/// let ep: Endpoint = "unix:/tmp/calc.sock?allow_uid=1000".parse().unwrap();
/// let EndpointKind::Unix { opts, .. } = ep.kind() else { unreachable!() };
/// assert_eq!(opts, &UnixOptions::default().with_allowed_uids([1000]));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct UnixOptions {
    allow_uid: Vec<u32>,
}

impl UnixOptions {
    /// User ids allowed to connect besides the server's own (`?allow_uid=1000,1001`).
    /// The server reads each client's uid from the kernel (`SO_PEERCRED`) and closes
    /// connections of other users at once.
    pub fn allowed_uids(&self) -> &[u32] {
        &self.allow_uid
    }

    /// These options allowing `uids` besides the server's own user.
    pub fn with_allowed_uids(mut self, uids: impl IntoIterator<Item = u32>) -> Self {
        self.allow_uid = uids.into_iter().collect();
        self
    }
}

impl KindOptions for UnixOptions {
    fn set(&mut self, key: &str, value: &str) -> Result<(), OptionError> {
        match key {
            "allow_uid" => self.allow_uid = syntax::uids(value).map_err(OptionError::Invalid)?,
            _ => return Err(OptionError::NotMine),
        }
        Ok(())
    }

    fn write(&self, query: &mut Query<'_, '_>) -> fmt::Result {
        query.option(
            "allow_uid",
            (!self.allow_uid.is_empty()).then_some(Uids(&self.allow_uid)),
        )
    }
}

/// The socket path of `unix:<p>`.
pub(super) fn path(p: &str) -> Result<String, String> {
    syntax::path(p, "unix:/path.sock", MAX_UNIX_PATH)
}
