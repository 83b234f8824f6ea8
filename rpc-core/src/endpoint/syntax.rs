//! The pieces of endpoint syntax that more than one kind shares: paths, POSIX names,
//! numbers, user-id lists, and the `?key=value&…` query that options are written to.
//!
//! A kind's options implement [`KindOptions`]; the top-level parser in `mod.rs`
//! handles the scheme, the address and `max_frame`, and hands every other key to them.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// Longest POSIX mq / shm name after the leading `/` (Linux `NAME_MAX`).
pub const MAX_POSIX_NAME: usize = 255;

/// Why a kind's options did not take a key.
pub(super) enum OptionError {
    /// Not a key of this kind: the caller says which kinds take it.
    NotMine,
    /// A key of this kind with a value it refuses: what to write instead.
    Invalid(String),
}

/// The `?key=value` options of one kind of endpoint.
pub(super) trait KindOptions {
    /// Takes `key=value`.
    fn set(&mut self, key: &str, value: &str) -> Result<(), OptionError>;

    /// Writes the options that are set, in canonical order.
    fn write(&self, query: &mut Query<'_, '_>) -> fmt::Result;
}

/// Writes `?key=value&key=value` after an endpoint's address.
pub(super) struct Query<'a, 'f> {
    f: &'a mut fmt::Formatter<'f>,
    separator: char,
}

impl<'a, 'f> Query<'a, 'f> {
    /// A query written to `f`, nothing written yet.
    pub(super) fn new(f: &'a mut fmt::Formatter<'f>) -> Self {
        Query { f, separator: '?' }
    }

    /// Writes `key=value`, after `?` for the first pair and `&` for the others.
    pub(super) fn pair(&mut self, key: &str, value: impl fmt::Display) -> fmt::Result {
        write!(self.f, "{}{key}={value}", self.separator)?;
        self.separator = '&';
        Ok(())
    }

    /// Writes `key=value` if there is a value.
    pub(super) fn option(&mut self, key: &str, value: Option<impl fmt::Display>) -> fmt::Result {
        match value {
            Some(v) => self.pair(key, v),
            None => Ok(()),
        }
    }
}

/// `value` as a number that `ok` accepts; otherwise what `expected` says, and what was
/// written instead.
pub(super) fn number<T: FromStr>(
    value: &str,
    ok: impl Fn(&T) -> bool,
    expected: impl FnOnce() -> String,
) -> Result<T, String> {
    value
        .parse()
        .ok()
        .filter(|n| ok(n))
        .ok_or_else(|| format!("{}, not `{value}`", expected()))
}

/// A byte count: a number, optionally followed by `k`/`K`/`KiB` (× 1024), `M`/`MiB`
/// (× 1024²) or `G`/`GiB` (× 1024³), that `ok` accepts; otherwise what `expected` says,
/// and what was written instead.
pub(super) fn size<T: TryFrom<u64>>(
    value: &str,
    ok: impl Fn(&T) -> bool,
    expected: impl FnOnce() -> String,
) -> Result<T, String> {
    let split = value
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(value.len());
    let (digits, unit) = value.split_at(split);
    let shift = match unit {
        "" => Some(0),
        "k" | "K" | "KiB" => Some(10),
        "M" | "MiB" => Some(20),
        "G" | "GiB" => Some(30),
        _ => None,
    };
    shift
        .and_then(|shift| {
            digits
                .parse::<u64>()
                .ok()?
                .checked_mul(1 << shift)
        })
        .and_then(|n| T::try_from(n).ok())
        .filter(|n| ok(n))
        .ok_or_else(|| {
            format!(
                "{} (a number of bytes, or with `k`/`KiB`, `M`/`MiB` or `G`/`GiB`: `64k`), not `{value}`",
                expected()
            )
        })
}

/// A duration written as a whole number of `ms`, `s` or `m` (`250ms`, `5s`, `2m`),
/// from 1 ms to `max`.
pub(super) fn duration(value: &str, key: &str, max: Duration) -> Result<Duration, String> {
    let expected = || {
        format!(
            "{key} takes a duration such as `500ms`, `5s` or `2m`, from 1ms to {}s, not `{value}`",
            max.as_secs()
        )
    };
    let split = value
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(expected)?;
    let (digits, unit) = value.split_at(split);
    let n: u64 = digits.parse().map_err(|_| expected())?;
    let d = match unit {
        "ms" => Duration::from_millis(n),
        "s" => Duration::from_secs(n),
        "m" => Duration::from_secs(n.saturating_mul(60)),
        _ => return Err(expected()),
    };
    if d.is_zero() || d > max {
        return Err(expected());
    }
    Ok(d)
}

/// Writes a duration as [`duration`] reads it: whole seconds as `5s`, else `250ms`.
pub(super) struct Millis(pub(super) Duration);

impl fmt::Display for Millis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0.as_millis();
        if ms.is_multiple_of(1000) {
            write!(f, "{}s", ms / 1000)
        } else {
            write!(f, "{ms}ms")
        }
    }
}

/// `allow_uid=0,1000`: user ids separated by commas.
pub(super) fn uids(value: &str) -> Result<Vec<u32>, String> {
    value
        .split(',')
        .map(|u| u.parse::<u32>())
        .collect::<Result<_, _>>()
        .map_err(|_| format!("allow_uid takes user ids separated by commas, not `{value}`"))
}

/// Writes user ids as `allow_uid` takes them: `0,1000`.
pub(super) struct Uids<'a>(pub(super) &'a [u32]);

impl fmt::Display for Uids<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, uid) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{uid}")?;
        }
        Ok(())
    }
}

/// An absolute file-system path of at most `max` bytes; `form` shows how to write one.
/// A relative path is refused: client and server would each resolve it against their
/// own working directory.
pub(super) fn path(p: &str, form: &str, max: usize) -> Result<String, String> {
    if p.is_empty() {
        return Err(format!("empty path; write {form}"));
    }
    if !p.starts_with('/') {
        return Err(format!(
            "`{p}` is a relative path, which each process would resolve against its own \
             working directory; write an absolute path, e.g. {form}"
        ));
    }
    if p.contains('\0') {
        return Err("the path contains a NUL byte".into());
    }
    if p.len() > max {
        return Err(format!(
            "the path is {} bytes but UNIX socket paths are limited to {max}; use a shorter path",
            p.len()
        ));
    }
    Ok(p.to_owned())
}

/// A POSIX mq or shm name: `/` then up to [`MAX_POSIX_NAME`] bytes without `/`.
pub(super) fn posix_name(n: &str, scheme: &str) -> Result<String, String> {
    let Some(bare) = n.strip_prefix('/') else {
        return Err(format!(
            "a {scheme} name starts with `/`, e.g. `{scheme}:/calc`"
        ));
    };
    if bare.is_empty() || bare.contains('/') || bare.contains('\0') {
        return Err(format!(
            "a {scheme} name is `/` then one or more characters other than `/`, e.g. `{scheme}:/calc`"
        ));
    }
    if bare.len() > MAX_POSIX_NAME {
        return Err(format!(
            "the name is {} bytes; the limit is {MAX_POSIX_NAME}",
            bare.len()
        ));
    }
    Ok(n.to_owned())
}
