//! `shm:/name` options: `ring`, `spin_us`, `allow_uid`.

use std::fmt;
use std::time::Duration;

use super::syntax::{self, KindOptions, OptionError, Query, Uids};

/// The keys an `shm:` endpoint takes, in canonical order.
pub(super) const KEYS: &[&str] = &["ring", "spin_us", "allow_uid"];

/// Smallest ring.
const MIN_RING: usize = 4096;

/// Largest ring.
const MAX_RING: usize = 1 << 30;

/// Longest spin budget, in microseconds.
const MAX_SPIN_US: u64 = 1_000_000;

fn ring_ok(bytes: &usize) -> bool {
    bytes.is_power_of_two() && (MIN_RING..=MAX_RING).contains(bytes)
}

/// The options of an `shm:` endpoint. Unset options take the transport's defaults
/// (`transports::shm`: a 2 MiB ring, 20 µs of spinning).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use rpc_core::endpoint::{Endpoint, EndpointKind, ShmOptions};
/// let ep: Endpoint = "shm:/calc?ring=65536&spin_us=0".parse().unwrap();
/// let EndpointKind::Shm { opts, .. } = ep.kind() else { unreachable!() };
/// assert_eq!(opts.ring(), Some(65536));
/// assert_eq!(opts, &ShmOptions::default().with_ring(65536).with_spin(Duration::ZERO));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct ShmOptions {
    ring: Option<usize>,
    spin_us: Option<u64>,
    allow_uid: Vec<u32>,
}

impl ShmOptions {
    /// Bytes per ring, if set (`?ring=`).
    pub fn ring(&self) -> Option<usize> {
        self.ring
    }

    /// How long a waiter spins while the peer runs on another CPU, if set
    /// (`?spin_us=`).
    pub fn spin(&self) -> Option<Duration> {
        self.spin_us.map(Duration::from_micros)
    }

    /// User ids allowed to connect besides the server's own (`?allow_uid=1000,1001`),
    /// checked on the rendezvous socket (`SO_PEERCRED`).
    pub fn allowed_uids(&self) -> &[u32] {
        &self.allow_uid
    }

    /// These options with rings of `bytes` each.
    ///
    /// # Panics
    ///
    /// If `bytes` is not a power of two from 4096 to 1073741824.
    pub fn with_ring(mut self, bytes: usize) -> Self {
        assert!(
            ring_ok(&bytes),
            "ring must be a power of two from {MIN_RING} to {MAX_RING} bytes"
        );
        self.ring = Some(bytes);
        self
    }

    /// These options with a spin budget of `spin`, in whole microseconds.
    ///
    /// # Panics
    ///
    /// If `spin` is over one second.
    pub fn with_spin(mut self, spin: Duration) -> Self {
        let us = u64::try_from(spin.as_micros()).unwrap_or(u64::MAX);
        assert!(
            us <= MAX_SPIN_US,
            "spin must be from 0 to {MAX_SPIN_US} microseconds"
        );
        self.spin_us = Some(us);
        self
    }

    /// These options allowing `uids` besides the server's own user.
    pub fn with_allowed_uids(mut self, uids: impl IntoIterator<Item = u32>) -> Self {
        self.allow_uid = uids.into_iter().collect();
        self
    }
}

impl KindOptions for ShmOptions {
    fn set(&mut self, key: &str, value: &str) -> Result<(), OptionError> {
        match key {
            "ring" => {
                self.ring = Some(
                    syntax::size(value, ring_ok, || {
                        format!("ring must be a power of two from {MIN_RING} to {MAX_RING} bytes")
                    })
                    .map_err(OptionError::Invalid)?,
                );
            }
            "spin_us" => {
                self.spin_us = Some(
                    syntax::number(
                        value,
                        |n| *n <= MAX_SPIN_US,
                        || format!("spin_us must be microseconds from 0 to {MAX_SPIN_US}"),
                    )
                    .map_err(OptionError::Invalid)?,
                );
            }
            "allow_uid" => self.allow_uid = syntax::uids(value).map_err(OptionError::Invalid)?,
            _ => return Err(OptionError::NotMine),
        }
        Ok(())
    }

    fn write(&self, query: &mut Query<'_, '_>) -> fmt::Result {
        query.option("ring", self.ring)?;
        query.option("spin_us", self.spin_us)?;
        query.option(
            "allow_uid",
            (!self.allow_uid.is_empty()).then_some(Uids(&self.allow_uid)),
        )
    }
}
