//! The raw baseline: the same exchanges written directly on each mechanism's system
//! calls, with no framing, codec or dispatch. Both sides know the message sizes in
//! advance (they are on the server's command line), which is what a hand-written
//! program would do.
//!
//! The server reads `count` messages of `req` bytes each into a private buffer, then
//! answers with `reply` bytes, until its peer goes away. Echo is `count = 1, reply = req`;
//! producer-consumer is `count = batch, reply = 8` (the consumer's acknowledgement).

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

use nix::mqueue::{MQ_OFlag, MqAttr, MqdT, mq_close, mq_open, mq_receive, mq_send, mq_unlink};
use nix::sys::stat::Mode;

use crate::shm_raw::{ShmConn, Strategy};

/// A mechanism as the raw baseline uses it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RawKind {
    /// Two anonymous pipes (the child's stdin and stdout).
    Pipe,
    /// Two FIFOs.
    Fifo,
    /// Two POSIX message queues holding `depth` messages of `msgsize` bytes each;
    /// larger messages are split.
    Mq {
        /// Messages per queue.
        depth: usize,
        /// Largest message.
        msgsize: usize,
    },
    /// Two rings in one shared-memory segment, waiting with a strategy.
    Shm(Strategy),
    /// A UNIX stream socket.
    Unix,
    /// A TCP connection on loopback, `TCP_NODELAY`.
    Tcp,
}

impl RawKind {
    /// The name on the command line and in the results.
    pub fn arg(self) -> String {
        match self {
            RawKind::Pipe => "pipe".into(),
            RawKind::Fifo => "fifo".into(),
            RawKind::Mq { depth, msgsize } => format!("mq-{depth}x{msgsize}"),
            RawKind::Shm(s) => format!("shm-{}", s.name()),
            RawKind::Unix => "unix".into(),
            RawKind::Tcp => "tcp".into(),
        }
    }

    fn parse(arg: &str) -> Option<Self> {
        Some(match arg {
            "pipe" => RawKind::Pipe,
            "fifo" => RawKind::Fifo,
            "unix" => RawKind::Unix,
            "tcp" => RawKind::Tcp,
            other => match other.strip_prefix("mq-") {
                Some(geometry) => {
                    let (depth, msgsize) = geometry.split_once('x')?;
                    RawKind::Mq {
                        depth: depth.parse().ok()?,
                        msgsize: msgsize.parse().ok()?,
                    }
                }
                None => RawKind::Shm(Strategy::parse(other.strip_prefix("shm-")?)?),
            },
        })
    }
}

/// One side of a raw connection: whole buffers in, whole buffers out.
pub trait RawConn {
    /// Sends all of `buf`.
    fn send(&mut self, buf: &[u8]) -> io::Result<()>;
    /// Fills all of `buf`.
    fn recv(&mut self, buf: &mut [u8]) -> io::Result<()>;
}

struct Stream<R, W> {
    r: R,
    w: W,
}

impl<R: Read, W: Write> RawConn for Stream<R, W> {
    fn send(&mut self, buf: &[u8]) -> io::Result<()> {
        self.w.write_all(buf)
    }
    fn recv(&mut self, buf: &mut [u8]) -> io::Result<()> {
        self.r.read_exact(buf)
    }
}

impl RawConn for ShmConn {
    fn send(&mut self, buf: &[u8]) -> io::Result<()> {
        ShmConn::send(self, buf)
    }
    fn recv(&mut self, buf: &mut [u8]) -> io::Result<()> {
        ShmConn::recv(self, buf)
    }
}

struct Mq {
    tx: Option<MqdT>,
    rx: Option<MqdT>,
    msgsize: usize,
    scratch: Vec<u8>,
}

impl Mq {
    fn tx(&self) -> &MqdT {
        self.tx.as_ref().expect("open until drop")
    }
    fn rx(&self) -> &MqdT {
        self.rx.as_ref().expect("open until drop")
    }
}

impl RawConn for Mq {
    fn send(&mut self, buf: &[u8]) -> io::Result<()> {
        for chunk in buf.chunks(self.msgsize) {
            mq_send(self.tx(), chunk, 0)?;
        }
        Ok(())
    }
    fn recv(&mut self, buf: &mut [u8]) -> io::Result<()> {
        let mut done = 0;
        let mut prio = 0;
        while done < buf.len() {
            if buf.len() - done >= self.msgsize {
                done += mq_receive(self.rx(), &mut buf[done..], &mut prio)?;
            } else {
                let mut scratch = std::mem::take(&mut self.scratch);
                let n = mq_receive(self.rx(), &mut scratch, &mut prio)?;
                let n = n.min(buf.len() - done);
                buf[done..done + n].copy_from_slice(&scratch[..n]);
                self.scratch = scratch;
                done += n;
            }
        }
        Ok(())
    }
}

impl Drop for Mq {
    fn drop(&mut self) {
        for q in [self.tx.take(), self.rx.take()].into_iter().flatten() {
            let _ = mq_close(q);
        }
    }
}

fn mq_pair(name: &str, depth: usize, msgsize: usize, create: bool) -> io::Result<Mq> {
    let attr = MqAttr::new(0, depth as _, msgsize as _, 0);
    let open = |suffix: &str| -> io::Result<MqdT> {
        let n = format!("{name}.{suffix}");
        let flags = if create {
            MQ_OFlag::O_CREAT | MQ_OFlag::O_EXCL | MQ_OFlag::O_RDWR
        } else {
            MQ_OFlag::O_RDWR
        };
        Ok(mq_open(
            n.as_str(),
            flags,
            Mode::S_IRUSR | Mode::S_IWUSR,
            Some(&attr),
        )?)
    };
    let (c2s, s2c) = (open("c2s")?, open("s2c")?);
    let (tx, rx) = if create { (c2s, s2c) } else { (s2c, c2s) };
    Ok(Mq {
        tx: Some(tx),
        rx: Some(rx),
        msgsize,
        scratch: vec![0; msgsize],
    })
}

/// A raw server child and our connection to it.
pub struct RawPeer {
    kind: RawKind,
    conn: Option<Box<dyn RawConn>>,
    child: Child,
    cleanup: Vec<Cleanup>,
}

enum Cleanup {
    Dir(PathBuf),
    File(PathBuf),
    Mq(String),
    Shm(String),
}

static NEXT: AtomicUsize = AtomicUsize::new(0);

/// What the benchmark puts in the names of its OS objects: the run tag CI sets in
/// `IPC_RPC_RUN_TAG` (so that CI's leftovers check finds them), then the pid.
pub(crate) fn run_id() -> String {
    let tag = std::env::var("IPC_RPC_RUN_TAG").unwrap_or_default();
    format!("{tag}{}", std::process::id())
}

fn unique(what: &str) -> String {
    format!(
        "ipc-rpc-bench.{}.{what}{}",
        run_id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

impl RawPeer {
    /// Starts a raw server for `kind` in a child (pinned to `cpu`) that reads `count`
    /// messages of `req` bytes and answers `reply` bytes, and connects to it.
    pub fn start(
        kind: RawKind,
        req: usize,
        count: usize,
        reply: usize,
        cpu: Option<usize>,
    ) -> io::Result<Self> {
        let mut cmd = Command::new(std::env::current_exe()?);
        cmd.env(crate::roles::ROLE_ENV, "raw").stdin(Stdio::null());
        if let Some(cpu) = cpu {
            cmd.env(crate::roles::CPU_ENV, cpu.to_string());
        }
        let sizes = [req.to_string(), count.to_string(), reply.to_string()];
        let mut cleanup = Vec::new();
        let (conn, child): (Box<dyn RawConn>, Child) = match kind {
            RawKind::Pipe => {
                let mut child = cmd
                    .args([kind.arg(), "-".into()])
                    .args(&sizes)
                    .stdin(Stdio::piped())
                    .stdout(Stdio::piped())
                    .spawn()?;
                let w = child
                    .stdin
                    .take()
                    .ok_or_else(|| io::Error::other("no stdin"))?;
                let r = child
                    .stdout
                    .take()
                    .ok_or_else(|| io::Error::other("no stdout"))?;
                (Box::new(Stream { r, w }), child)
            }
            RawKind::Fifo => {
                let dir = std::env::temp_dir().join(unique("fifo"));
                std::fs::create_dir(&dir)?;
                cleanup.push(Cleanup::Dir(dir.clone()));
                for f in ["c2s", "s2c"] {
                    nix::unistd::mkfifo(&dir.join(f), Mode::S_IRUSR | Mode::S_IWUSR)?;
                }
                let child = cmd.arg(kind.arg()).arg(&dir).args(&sizes).spawn()?;
                // The same order on both sides: c2s, then s2c.
                let w = OpenOptions::new().write(true).open(dir.join("c2s"))?;
                let r = File::open(dir.join("s2c"))?;
                (Box::new(Stream { r, w }), child)
            }
            RawKind::Mq { depth, msgsize } => {
                let name = format!("/{}", unique("mq"));
                let conn = mq_pair(&name, depth, msgsize, true)?;
                cleanup.push(Cleanup::Mq(format!("{name}.c2s")));
                cleanup.push(Cleanup::Mq(format!("{name}.s2c")));
                let child = cmd.arg(kind.arg()).arg(&name).args(&sizes).spawn()?;
                (Box::new(conn), child)
            }
            RawKind::Shm(strategy) => {
                let name = format!("/{}", unique("shm"));
                let conn = ShmConn::create(&name, strategy)?;
                cleanup.push(Cleanup::Shm(name.clone()));
                let child = cmd.arg(kind.arg()).arg(&name).args(&sizes).spawn()?;
                (Box::new(conn), child)
            }
            RawKind::Unix => {
                let path = std::env::temp_dir().join(format!("{}.sock", unique("unix")));
                let listener = UnixListener::bind(&path)?;
                cleanup.push(Cleanup::File(path.clone()));
                let child = cmd.arg(kind.arg()).arg(&path).args(&sizes).spawn()?;
                let (s, _) = listener.accept()?;
                (
                    Box::new(Stream {
                        r: s.try_clone()?,
                        w: s,
                    }),
                    child,
                )
            }
            RawKind::Tcp => {
                let listener = TcpListener::bind("127.0.0.1:0")?;
                let addr = listener.local_addr()?.to_string();
                let child = cmd.arg(kind.arg()).arg(&addr).args(&sizes).spawn()?;
                let (s, _) = listener.accept()?;
                s.set_nodelay(true)?;
                (
                    Box::new(Stream {
                        r: s.try_clone()?,
                        w: s,
                    }),
                    child,
                )
            }
        };
        let mut peer = Self {
            kind,
            conn: Some(conn),
            child,
            cleanup,
        };
        // The server says it is connected; then every name can go.
        let mut ready = [0_u8; 1];
        peer.conn().recv(&mut ready)?;
        peer.unlink();
        Ok(peer)
    }

    /// Our side of the connection.
    pub fn conn(&mut self) -> &mut dyn RawConn {
        self.conn.as_deref_mut().expect("connected until finish")
    }

    fn unlink(&mut self) {
        for c in self.cleanup.drain(..) {
            let _ = match c {
                Cleanup::Dir(d) => std::fs::remove_dir_all(d),
                Cleanup::File(f) => std::fs::remove_file(f),
                Cleanup::Mq(n) => mq_unlink(n.as_str()).map_err(io::Error::from),
                Cleanup::Shm(n) => {
                    crate::shm_raw::unlink(&n);
                    Ok(())
                }
            };
        }
    }

    /// Closes the connection and reaps the server.
    pub fn finish(mut self) {
        self.conn = None;
        if matches!(self.kind, RawKind::Mq { .. }) {
            // A message queue has no end-of-file to tell the server we are gone.
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

impl Drop for RawPeer {
    fn drop(&mut self) {
        self.unlink();
        if self.conn.take().is_some() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The server role: `raw KIND ADDR REQ COUNT REPLY`.
pub fn serve(args: &[String]) -> io::Result<()> {
    let usage = || io::Error::other("raw server: KIND ADDR REQ COUNT REPLY");
    let [kind, addr, req, count, reply] = args else {
        return Err(usage());
    };
    let kind = RawKind::parse(kind).ok_or_else(usage)?;
    let num = |s: &String| s.parse::<usize>().map_err(|_| usage());
    let (req, count, reply) = (num(req)?, num(count)?, num(reply)?);
    let mut conn: Box<dyn RawConn> = match kind {
        RawKind::Pipe => {
            let r = File::from(io::stdin().as_fd().try_clone_to_owned()?);
            let w = File::from(io::stdout().as_fd().try_clone_to_owned()?);
            Box::new(Stream { r, w })
        }
        RawKind::Fifo => {
            let dir = PathBuf::from(addr);
            let r = File::open(dir.join("c2s"))?;
            let w = OpenOptions::new().write(true).open(dir.join("s2c"))?;
            Box::new(Stream { r, w })
        }
        RawKind::Mq { depth, msgsize } => Box::new(mq_pair(addr, depth, msgsize, false)?),
        RawKind::Shm(strategy) => Box::new(ShmConn::open(addr, strategy)?),
        RawKind::Unix => {
            let s = UnixStream::connect(addr)?;
            Box::new(Stream {
                r: s.try_clone()?,
                w: s,
            })
        }
        RawKind::Tcp => {
            let s = TcpStream::connect(addr)?;
            s.set_nodelay(true)?;
            Box::new(Stream {
                r: s.try_clone()?,
                w: s,
            })
        }
    };
    conn.send(b"R")?;
    let mut buf = vec![0_u8; req.max(reply)];
    loop {
        for _ in 0..count {
            if conn.recv(&mut buf[..req]).is_err() {
                return Ok(());
            }
        }
        if conn.send(&buf[..reply]).is_err() {
            return Ok(());
        }
    }
}
