//! The connect request on a FIFO endpoint's rendezvous FIFO; the directory's names
//! are built in [`crate::names::fifo`].
//!
//! ```text
//! fifo:/run/calc  →  /run/calc/            0700, created by the server
//!                     ├── lock              owner lock (flock) of the live server
//!                     ├── connect           rendezvous FIFO 0600, read by the server
//!                     ├── <id>.c2s          a connecting client's request FIFO  ┐ unlinked once
//!                     └── <id>.s2c          its reply FIFO                      ┘ both ends are open
//!
//! request on `connect` (one atomic write, < PIPE_BUF):  "CONNECT <id>\n"
//! <id> = <client pid>-<counter>, digits and one dash only
//! ```

use crate::names::fifo::valid_id;

const PREFIX: &[u8] = b"CONNECT ";
/// Longest request line accepted; far below PIPE_BUF (4096), so writes are atomic.
pub const MAX_REQUEST: usize = 64;

/// The request line a client writes.
pub fn request(id: &str) -> Vec<u8> {
    let mut line = PREFIX.to_vec();
    line.extend_from_slice(id.as_bytes());
    line.push(b'\n');
    line
}

/// Takes the next complete line off `pending` and returns the client id it requests,
/// or `None` for a line that is not a valid request (skipped). Returns `Err(())` when
/// no complete line is buffered; an over-long partial line is dropped.
#[allow(clippy::result_unit_err)]
pub fn next_request(pending: &mut Vec<u8>) -> Result<Option<String>, ()> {
    let Some(end) = pending.iter().position(|&b| b == b'\n') else {
        if pending.len() > MAX_REQUEST {
            pending.clear();
        }
        return Err(());
    };
    let line: Vec<u8> = pending.drain(..=end).collect();
    let line = &line[..line.len() - 1];
    // Honest requests are single atomic writes, so a request always ends a line: junk
    // a stranger wrote without a newline before it is skipped, not glued to it.
    let id = line
        .windows(PREFIX.len())
        .rposition(|w| w == PREFIX)
        .map(|at| &line[at + PREFIX.len()..])
        .and_then(|id| std::str::from_utf8(id).ok())
        .filter(|id| valid_id(id));
    Ok(id.map(str::to_owned))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_round_trip_and_garbage_is_skipped() {
        let mut pending = Vec::new();
        pending.extend(request("12-3"));
        pending.extend(b"CONNECT ../../etc/passwd\nnoise\n");
        pending.extend(request("7-0"));
        pending.extend(b"CONNECT 9-");
        assert_eq!(next_request(&mut pending), Ok(Some("12-3".into())));
        assert_eq!(next_request(&mut pending), Ok(None));
        assert_eq!(next_request(&mut pending), Ok(None));
        assert_eq!(next_request(&mut pending), Ok(Some("7-0".into())));
        assert_eq!(next_request(&mut pending), Err(()));
        assert_eq!(pending, b"CONNECT 9-");
    }

    #[test]
    fn long_partial_lines_are_dropped() {
        let mut pending = vec![b'x'; MAX_REQUEST + 1];
        assert_eq!(next_request(&mut pending), Err(()));
        assert!(pending.is_empty());
    }

    #[test]
    fn junk_without_newline_does_not_swallow_the_next_request() {
        let mut pending = b"CONNECT 12".to_vec();
        pending.extend(request("7-1"));
        assert_eq!(next_request(&mut pending), Ok(Some("7-1".into())));
    }
}
