//! `mq:/name` options: `depth`, `msgsize` (the queues a client creates).

use std::fmt;

use super::syntax::{self, KindOptions, OptionError, Query};

/// The keys an `mq:` endpoint takes, in canonical order.
pub(super) const KEYS: &[&str] = &["depth", "msgsize"];

/// Largest accepted `depth` (Linux's own ceiling for `msg_max`).
const MAX_DEPTH: u32 = 65_536;

/// Smallest accepted `msgsize`: what the chunking needs.
const MIN_MSGSIZE: u32 = 64;

/// Largest accepted `msgsize`: what a peer accepts.
const MAX_MSGSIZE: u32 = 1 << 20;

fn depth_ok(n: &u32) -> bool {
    (1..=MAX_DEPTH).contains(n)
}

fn msgsize_ok(n: &u32) -> bool {
    (MIN_MSGSIZE..=MAX_MSGSIZE).contains(n)
}

/// The options of an `mq:` endpoint: the size of the two queues each client creates.
/// Unset options take the transport's defaults, lowered to what
/// `/proc/sys/fs/mqueue` allows.
///
/// # Examples
///
/// ```
/// use rpc_core::endpoint::{Endpoint, EndpointKind, MqOptions};
/// let ep: Endpoint = "mq:/calc?depth=10&msgsize=8192".parse().unwrap();
/// let EndpointKind::Mq { opts, .. } = ep.kind() else { unreachable!() };
/// assert_eq!((opts.depth(), opts.msgsize()), (Some(10), Some(8192)));
/// assert_eq!(opts, &MqOptions::default().with_depth(10).with_msgsize(8192));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct MqOptions {
    depth: Option<u32>,
    msgsize: Option<u32>,
}

impl MqOptions {
    /// Messages each of a client's two queues holds, if set (`?depth=`).
    /// The default is 1, so that many clients fit the per-user queue memory limit;
    /// deeper queues let large frames stream with fewer wake-ups.
    pub fn depth(&self) -> Option<u32> {
        self.depth
    }

    /// Largest message of a client's queues in bytes, if set (`?msgsize=`; default
    /// 4096). Frames up to it are one message.
    pub fn msgsize(&self) -> Option<u32> {
        self.msgsize
    }

    /// These options with queues of `depth` messages.
    ///
    /// # Panics
    ///
    /// If `depth` is 0 or over 65536.
    pub fn with_depth(mut self, depth: u32) -> Self {
        assert!(
            depth_ok(&depth),
            "depth must be a message count from 1 to {MAX_DEPTH}"
        );
        self.depth = Some(depth);
        self
    }

    /// These options with messages of up to `msgsize` bytes.
    ///
    /// # Panics
    ///
    /// If `msgsize` is under 64 or over 1048576.
    pub fn with_msgsize(mut self, msgsize: u32) -> Self {
        assert!(
            msgsize_ok(&msgsize),
            "msgsize must be a byte count from {MIN_MSGSIZE} to {MAX_MSGSIZE}"
        );
        self.msgsize = Some(msgsize);
        self
    }
}

impl KindOptions for MqOptions {
    fn set(&mut self, key: &str, value: &str) -> Result<(), OptionError> {
        match key {
            "depth" => {
                self.depth = Some(
                    syntax::number(value, depth_ok, || {
                        format!("depth must be a message count from 1 to {MAX_DEPTH}")
                    })
                    .map_err(OptionError::Invalid)?,
                );
            }
            "msgsize" => {
                self.msgsize = Some(
                    syntax::size(value, msgsize_ok, || {
                        format!("msgsize must be a byte count from {MIN_MSGSIZE} to {MAX_MSGSIZE}")
                    })
                    .map_err(OptionError::Invalid)?,
                );
            }
            _ => return Err(OptionError::NotMine),
        }
        Ok(())
    }

    fn write(&self, query: &mut Query<'_, '_>) -> fmt::Result {
        query.option("depth", self.depth)?;
        query.option("msgsize", self.msgsize)
    }
}
