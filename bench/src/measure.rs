//! The measurements: per transport, raw and ours interleaved round by round, so both
//! see the same machine.

use std::error::Error;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

use crate::raw::{RawKind, RawPeer};
use crate::{BenchClient, Budget, Msg, Ours, Placement, Selection, Transport};
use ipc_rpc::Endpoint;

/// Round-trip payload sizes.
pub const SIZES: [usize; 4] = [64, 4096, 65536, 1 << 20];
/// Producer-consumer message sizes.
pub const STREAM_SIZES: [usize; 2] = [64, 65536];
/// Bytes per producer-consumer batch (one call of ours, one acknowledgement of raw).
pub const BATCH: usize = 256 * 1024;
/// Concurrent callers (and clients) of the calls/s figures.
pub const CALLERS: usize = 8;

/// Latency statistics, in µs.
#[derive(Clone, Copy, Debug)]
pub struct Lat {
    /// Median.
    pub p50: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Mean.
    pub mean: f64,
    /// Samples.
    pub n: usize,
}

impl Lat {
    fn of(mut samples: Vec<Duration>) -> Self {
        samples.sort_unstable();
        let at = |q: f64| samples[((samples.len() - 1) as f64 * q) as usize].as_secs_f64() * 1e6;
        let total: Duration = samples.iter().sum();
        Self {
            p50: at(0.5),
            p99: at(0.99),
            mean: total.as_secs_f64() * 1e6 / samples.len() as f64,
            n: samples.len(),
        }
    }
}

/// One figure.
#[derive(Clone, Copy, Debug)]
pub enum Fig {
    /// A latency distribution.
    Lat(Lat),
    /// A rate: calls/s or MB/s.
    Rate(f64),
}

impl Fig {
    /// The headline number: p50 or the rate.
    pub fn value(self) -> f64 {
        match self {
            Fig::Lat(l) => l.p50,
            Fig::Rate(r) => r,
        }
    }
}

/// What a row measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Measure {
    /// Sequential echo round trip of `size` bytes each way.
    Rtt(usize),
    /// Calls/s of 64 B echoes: callers sharing one client, and clients.
    Rate {
        /// Calling threads.
        callers: usize,
        /// Clients they share.
        clients: usize,
        /// Run where the kernel puts them, callers and server, in a pinned run (a
        /// client's threads confined to one CPU are not how an application runs).
        unpinned: bool,
    },
    /// Producer-consumer MB/s of `size`-byte messages.
    Stream(usize),
    /// Events/s of `size` bytes pushed by the server through one subscription; its
    /// baseline (the `raw` figure) is the raw mechanism's streaming rate of the same
    /// messages, in messages/s.
    Push(usize),
    /// p50 of 64 B echoes by [`BESIDE`] threads sharing one client while another call
    /// of that client sleeps 1 s on the server; its baseline (the `raw` figure) is the
    /// same threads' p50 with no sleeping call.
    HeadOfLine,
    /// Calls/s of [`CALLERS`] threads sharing one client, each calling a handler that
    /// sleeps 1 ms; its baseline (the `raw` figure) is one caller's calls/s.
    SlowHandler,
    /// p50 of a fresh client's connect and first call while this many other clients
    /// hold idle connections; its baseline (the `raw` figure) is the same with none.
    /// The row's `detail` gives the server's threads and memory per idle connection.
    Idle(usize),
}

/// Threads that call beside the sleeping call of the head-of-line row.
pub const BESIDE: usize = 7;

/// One line of the table.
#[derive(Clone, Debug)]
pub struct Row {
    /// The transport.
    pub transport: &'static str,
    /// What is measured.
    pub measure: Measure,
    /// The raw mechanism of the `raw` figure.
    pub raw_kind: Option<RawKind>,
    /// The raw mechanism's figure.
    pub raw: Option<Fig>,
    /// Ours.
    pub ours: Option<Fig>,
    /// The 1-minute load average read as the row finished.
    pub load: f64,
    /// Percent of CPU time the hypervisor gave to others while the row was measured
    /// (steal time): how much of the row's noise was not ours to control.
    pub steal: f64,
    /// Calls that got no reply within the cell's time plus [`STALL`] (calls/s rows).
    pub stalls: usize,
    /// Why a figure is missing, when one could not be taken.
    pub note: Option<String>,
    /// What the row found besides its figures (the idle-connection row: the server's
    /// threads and memory).
    pub detail: Option<IdleCost>,
}

/// What idle connections cost the server process.
#[derive(Clone, Copy, Debug)]
pub struct IdleCost {
    /// The server's threads with no idle connection.
    pub threads_before: usize,
    /// The server's threads with them.
    pub threads: usize,
    /// The server's resident memory per idle connection, KiB.
    pub rss_kib_per_connection: f64,
}

/// How long past its cell a calls/s caller waits for a reply before it counts the
/// call as stalled and stops (a lost wake-up would otherwise hang the run).
pub const STALL: Duration = Duration::from_secs(1);

/// The machine's CPU time counters (`/proc/stat`), to tell how much time the
/// hypervisor stole during a measurement.
#[derive(Clone, Copy)]
pub struct CpuTimes {
    total: u64,
    steal: u64,
}

impl CpuTimes {
    /// The counters now (zeros where `/proc/stat` cannot be read).
    pub fn now() -> Self {
        let line = std::fs::read_to_string("/proc/stat").unwrap_or_default();
        let fields: Vec<u64> = line
            .lines()
            .next()
            .unwrap_or_default()
            .split_whitespace()
            .skip(1)
            .filter_map(|f| f.parse().ok())
            .collect();
        CpuTimes {
            // user nice system idle iowait irq softirq steal (guest time is in user).
            total: fields.iter().take(8).sum(),
            steal: fields.get(7).copied().unwrap_or(0),
        }
    }

    /// Steal time since `self`, in percent of all CPU time.
    pub fn steal_since(self) -> f64 {
        let now = CpuTimes::now();
        let total = now.total.saturating_sub(self.total);
        if total == 0 {
            return 0.0;
        }
        100.0 * now.steal.saturating_sub(self.steal) as f64 / total as f64
    }
}

/// The machine's 1-minute load average.
pub fn loadavg() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(f64::NAN)
}

/// A size as people write it.
pub fn size_name(size: usize) -> String {
    match size {
        s if s >= 1 << 20 && s % (1 << 20) == 0 => format!("{} MiB", s >> 20),
        s if s >= 1024 && s % 1024 == 0 => format!("{} KiB", s >> 10),
        s => format!("{s} B"),
    }
}

/// Runs every measurement of every transport.
pub fn run(pl: Placement, b: Budget, only: &Selection) -> Result<Vec<Row>, Box<dyn Error>> {
    let others = if only.round_trips_only {
        0
    } else {
        4 + 2 * STREAM_SIZES.len()
    };
    let cells = only.transports.len() * (only.sizes.len() + others);
    let bar = ProgressBar::new(cells as u64);
    bar.set_style(
        ProgressStyle::with_template("{elapsed:>4} [{bar:30}] {pos}/{len} {msg}")?
            .progress_chars("=> "),
    );
    let mut rows = Vec::new();
    for &t in &only.transports {
        let mut ours = Ours::start(t, pl.child)?;
        let mut raw_rate = None;
        for &size in &only.sizes {
            bar.set_message(format!("{} round trip {}", t.name(), size_name(size)));
            let cpu = CpuTimes::now();
            let (raw, ours_lat) = rtt_cell(t, &mut ours, size, pl, b)?;
            let steal = cpu.steal_since();
            if size == 64 {
                raw_rate = raw.first().map(|(_, l)| 1e6 / l.mean);
            }
            let raw = raw.into_iter().map(|(k, l)| (k, Fig::Lat(l)));
            rows.extend(compared(
                t,
                Measure::Rtt(size),
                raw,
                Fig::Lat(ours_lat),
                steal,
            ));
            bar.inc(1);
        }
        if only.round_trips_only {
            ours.finish();
            continue;
        }
        bar.set_message(format!(
            "{} calls/s: 1 caller, {CALLERS} callers, {CALLERS} clients",
            t.name()
        ));
        rows.extend(rate_rows(t, &ours, b.rate, raw_rate, false));
        // Where the unpinned rows go, once this transport's server is gone.
        let unpinned_at = rows.len();
        bar.inc(1);
        bar.set_message(format!("{} concurrency on one client", t.name()));
        for (measure, cell) in [
            (Measure::HeadOfLine, head_of_line as ConcurrencyCell),
            (Measure::SlowHandler, slow_handler),
        ] {
            let cpu = CpuTimes::now();
            let (base, ours_fig, note) = match cell(&ours, b.rate) {
                Ok((base, fig)) => (Some(base), Some(fig), None),
                Err(e) => (None, None, Some(e.to_string())),
            };
            rows.push(Row {
                transport: t.name(),
                measure,
                raw_kind: None,
                raw: base,
                ours: ours_fig,
                load: loadavg(),
                steal: cpu.steal_since(),
                stalls: 0,
                note,
                detail: None,
            });
        }
        bar.inc(1);
        if let Some(endpoint) = &ours.endpoint {
            let n = t.idle_connections(b.quick);
            bar.set_message(format!("{} {n} idle connections", t.name()));
            let cpu = CpuTimes::now();
            let (base, fig, detail, note) = match idle_cost(endpoint, ours.server_pid(), n) {
                Ok((base, fig, cost)) => (Some(base), Some(fig), Some(cost), None),
                Err(e) => (None, None, None, Some(e.to_string())),
            };
            rows.push(Row {
                transport: t.name(),
                measure: Measure::Idle(n),
                raw_kind: None,
                raw: base,
                ours: fig,
                load: loadavg(),
                steal: cpu.steal_since(),
                stalls: 0,
                note,
                detail,
            });
        }
        bar.inc(1);
        for size in STREAM_SIZES {
            bar.set_message(format!("{} streaming {}", t.name(), size_name(size)));
            let cpu = CpuTimes::now();
            let (raw, ours_rate) = stream_cell(t, &mut ours, size, pl, b)?;
            let steal = cpu.steal_since();
            let per_msg = 1e6 / size as f64;
            let raw_msgs: Vec<_> = raw
                .iter()
                .map(|&(k, r)| (k, Fig::Rate(r * per_msg)))
                .collect();
            let raw = raw.into_iter().map(|(k, r)| (k, Fig::Rate(r)));
            rows.extend(compared(
                t,
                Measure::Stream(size),
                raw,
                Fig::Rate(ours_rate),
                steal,
            ));
            bar.inc(1);
            bar.set_message(format!("{} push {}", t.name(), size_name(size)));
            let cpu = CpuTimes::now();
            let events = push_cell(&ours, size, b)?;
            rows.extend(compared(
                t,
                Measure::Push(size),
                raw_msgs.into_iter(),
                Fig::Rate(events),
                cpu.steal_since(),
            ));
            bar.inc(1);
        }
        ours.finish();
        if pl.child.is_some() {
            // The calls/s rows again with the callers and a server of their own where
            // the kernel puts them: pinned, all of a client's threads share one CPU.
            bar.set_message(format!("{} calls/s unpinned", t.name()));
            let free = Ours::start(t, None)?;
            let unpinned = rate_rows(t, &free, b.rate, None, true);
            free.finish();
            rows.splice(unpinned_at..unpinned_at, unpinned);
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    Ok(rows)
}

/// The rows of a cell: one per raw variant, each against the same figure of ours.
fn compared(
    t: Transport,
    measure: Measure,
    raw: impl Iterator<Item = (RawKind, Fig)>,
    ours: Fig,
    steal: f64,
) -> Vec<Row> {
    let load = loadavg();
    raw.map(|(kind, fig)| Row {
        detail: None,
        transport: t.name(),
        measure,
        raw_kind: Some(kind),
        raw: Some(fig),
        ours: Some(ours),
        load,
        steal,
        stalls: 0,
        note: None,
    })
    .collect()
}

/// Runs `step` at least once, then again until `slice` has elapsed.
fn for_slice(
    slice: Duration,
    mut step: impl FnMut() -> Result<(), Box<dyn Error>>,
) -> Result<(), Box<dyn Error>> {
    let until = Instant::now() + slice;
    loop {
        step()?;
        if Instant::now() >= until {
            return Ok(());
        }
    }
}

type RawLats = Vec<(RawKind, Lat)>;

/// How long a freshly started raw server is exercised before it is measured.
const WARM: Duration = Duration::from_millis(20);

/// Whether a raw server is kept for the next round. Servers stay up, as ours does, and
/// are warmed once; only a pure-spin server is stopped after its round, since while idle
/// it would burn the CPU that the other servers need.
fn keep(kind: RawKind) -> bool {
    kind != RawKind::Shm(crate::shm_raw::Strategy::Spin)
}

/// The raw server in `slot`, started and warmed with `exchange` if it is not running.
fn peer(
    slot: &mut Option<RawPeer>,
    start: impl FnOnce() -> std::io::Result<RawPeer>,
    mut exchange: impl FnMut(&mut RawPeer) -> std::io::Result<()>,
) -> std::io::Result<&mut RawPeer> {
    if slot.is_none() {
        let mut p = start()?;
        let until = Instant::now() + WARM;
        while Instant::now() < until {
            exchange(&mut p)?;
        }
        *slot = Some(p);
    }
    Ok(slot.as_mut().expect("just started"))
}
type RawRates = Vec<(RawKind, f64)>;

/// Round trips of `size` bytes: per round, each raw variant, then ours.
fn rtt_cell(
    t: Transport,
    ours: &mut Ours,
    size: usize,
    pl: Placement,
    b: Budget,
) -> Result<(RawLats, Lat), Box<dyn Error>> {
    let kinds = t.raw();
    let payload = vec![0x5A_u8; size];
    let mut reply = vec![0_u8; size];
    let until = Instant::now() + WARM;
    while Instant::now() < until {
        ours.client.echo(payload.clone())?;
    }
    let slice = b.latency / b.rounds;
    let mut peers: Vec<Option<RawPeer>> = kinds.iter().map(|_| None).collect();
    let mut raw_samples = vec![Vec::new(); kinds.len()];
    let mut ours_samples = Vec::new();
    for _ in 0..b.rounds {
        for ((&kind, slot), samples) in kinds.iter().zip(&mut peers).zip(&mut raw_samples) {
            let p = peer(
                slot,
                || RawPeer::start(kind, size, 1, size, pl.child),
                |p| {
                    p.conn().send(&payload)?;
                    p.conn().recv(&mut reply)
                },
            )?;
            for_slice(slice, || {
                let t0 = Instant::now();
                p.conn().send(&payload)?;
                // Into private memory, as any receiver that keeps the data must.
                p.conn().recv(&mut reply)?;
                samples.push(t0.elapsed());
                Ok(())
            })?;
            if !keep(kind)
                && let Some(p) = slot.take()
            {
                p.finish();
            }
        }
        for_slice(slice, || {
            let arg = payload.clone();
            let t0 = Instant::now();
            let back = ours.client.echo(arg)?;
            ours_samples.push(t0.elapsed());
            if back.len() != size {
                return Err("echo returned the wrong length".into());
            }
            Ok(())
        })?;
    }
    peers.into_iter().flatten().for_each(RawPeer::finish);
    let raw = kinds
        .into_iter()
        .zip(raw_samples)
        .map(|(k, s)| (k, Lat::of(s)))
        .collect();
    Ok((raw, Lat::of(ours_samples)))
}

/// How many windows each calls/s figure is measured in: the configurations take turns
/// window by window, so that a change in the machine (placement, steal) during the run
/// weighs on each of them alike and their ratios compare like with like.
const RATE_WINDOWS: u32 = 10;

/// Calls/s of each `(callers, clients)` configuration, and how many calls stalled: the
/// configurations alternate in [`RATE_WINDOWS`] windows that share `dur` between them
/// (each gets `dur` in all); clients are connected and warmed once, before the first.
fn rates(
    ours: &Ours,
    configs: &[(usize, usize)],
    dur: Duration,
    unpinned: bool,
) -> Vec<Result<(f64, usize), String>> {
    let payload = vec![0x5A_u8; 64];
    let mut pools: Vec<Result<Vec<BenchClient>, String>> = configs
        .iter()
        .map(|&(_, clients)| {
            let pool = if clients > 1 {
                let endpoint = ours
                    .endpoint
                    .as_ref()
                    .ok_or_else(|| "a pipe connects one client".to_owned())?;
                (0..clients)
                    .map(|_| crate::BenchClient::connect(endpoint))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| e.to_string())?
            } else {
                vec![ours.client.clone()]
            };
            for c in &pool {
                for _ in 0..50 {
                    c.echo(payload.clone()).map_err(|e| e.to_string())?;
                }
            }
            Ok(pool)
        })
        .collect();
    let window = dur / RATE_WINDOWS;
    let mut totals = vec![(0_usize, Duration::ZERO, 0_usize); configs.len()];
    for _ in 0..RATE_WINDOWS {
        for (i, &(callers, _)) in configs.iter().enumerate() {
            let Ok(pool) = &pools[i] else { continue };
            let (calls, stalls, took) = rate_window(pool, callers, window, &payload, unpinned);
            totals[i].0 += calls;
            totals[i].1 += took;
            totals[i].2 += stalls;
            if stalls > 0 && calls == 0 {
                pools[i] = Err("every call stalled".into());
            }
        }
    }
    pools
        .into_iter()
        .zip(totals)
        .map(|(pool, (calls, took, stalls))| {
            pool.map(|_| (calls as f64 / took.as_secs_f64().max(1e-9), stalls))
        })
        .collect()
}

/// The calls/s rows of `t`: 1 caller, [`CALLERS`] callers on one client, as many
/// clients (see [`rates`]); `raw_rate` is the raw round trip's, for the first.
fn rate_rows(
    t: Transport,
    ours: &Ours,
    dur: Duration,
    raw_rate: Option<f64>,
    unpinned: bool,
) -> Vec<Row> {
    let configs = [(1, 1), (CALLERS, 1), (CALLERS, CALLERS)];
    let cpu = CpuTimes::now();
    let rates = rates(ours, &configs, dur, unpinned);
    let steal = cpu.steal_since();
    configs
        .into_iter()
        .zip(rates)
        .map(|((callers, clients), result)| {
            let (ours_rate, stalls, note) = match result {
                Ok((r, stalls)) => (Some(Fig::Rate(r)), stalls, None),
                // E.g. deep mq queues for 9 clients exceed RLIMIT_MSGQUEUE, or a pipe
                // connects one client: the row says so, and the run goes on.
                Err(e) => (None, 0, Some(e)),
            };
            let raw = raw_rate.filter(|_| callers == 1);
            Row {
                transport: t.name(),
                measure: Measure::Rate {
                    callers,
                    clients,
                    unpinned,
                },
                raw_kind: raw.map(|_| t.raw()[0]),
                raw: raw.map(Fig::Rate),
                ours: ours_rate,
                load: loadavg(),
                steal,
                stalls,
                note,
                detail: None,
            }
        })
        .collect()
}

/// One window of `callers` threads calling over `pool` (round robin) for `dur`: calls
/// made, calls that stalled, and how long the window took.
fn rate_window(
    pool: &[BenchClient],
    callers: usize,
    dur: Duration,
    payload: &[u8],
    unpinned: bool,
) -> (usize, usize, Duration) {
    let start = Instant::now();
    let until = start + dur;
    let (calls, stalls, end) = std::thread::scope(|s| {
        let handles: Vec<_> = (0..callers)
            .map(|i| {
                let c = pool[i % pool.len()].with_timeout(dur + STALL);
                s.spawn(move || {
                    if unpinned {
                        crate::unpin();
                    }
                    let mut n = 0_usize;
                    loop {
                        if c.echo(payload.to_vec()).is_err() {
                            return (n, 1, until);
                        }
                        n += 1;
                        let now = Instant::now();
                        if now >= until {
                            return (n, 0, now);
                        }
                    }
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or((0, 1, until)))
            .fold((0, 0, until), |(n, s, e), (n1, s1, e1)| {
                (n + n1, s + s1, e.max(e1))
            })
    });
    (calls, stalls, end - start)
}

/// A concurrency cell: its baseline figure and ours.
type ConcurrencyCell = fn(&Ours, Duration) -> Result<(Fig, Fig), Box<dyn Error>>;

/// p50 of 64 B echoes by [`BESIDE`] threads on one client, first alone, then while
/// another call of the same client sleeps 1 s on the server.
fn head_of_line(ours: &Ours, dur: Duration) -> Result<(Fig, Fig), Box<dyn Error>> {
    // The sleeping call lasts 1 s; the calls beside it stay well inside that.
    let dur = dur.min(Duration::from_millis(700));
    let echoes = |until: Instant| -> Result<Vec<Duration>, Box<dyn Error + Send + Sync>> {
        std::thread::scope(|s| {
            let handles: Vec<_> = (0..BESIDE)
                .map(|_| {
                    let c = ours.client.with_timeout(Duration::from_secs(5));
                    s.spawn(move || {
                        let payload = vec![0x5A_u8; 64];
                        let mut samples = Vec::new();
                        while Instant::now() < until {
                            let t0 = Instant::now();
                            c.echo(payload.clone())?;
                            samples.push(t0.elapsed());
                        }
                        Ok::<_, ipc_rpc::RpcError>(samples)
                    })
                })
                .collect();
            let mut all = Vec::new();
            for h in handles {
                all.extend(h.join().map_err(|_| "a caller panicked")??);
            }
            Ok(all)
        })
    };
    let idle = echoes(Instant::now() + dur).map_err(|e| e.to_string())?;
    let sleeper = ours.client.with_timeout(Duration::from_secs(10));
    let beside = std::thread::scope(|s| {
        let slow = s.spawn(move || sleeper.sleep_ms(1000));
        std::thread::sleep(Duration::from_millis(20));
        let beside = echoes(Instant::now() + dur);
        let slept = slow.join();
        match (beside, slept) {
            (Ok(b), Ok(Ok(_))) => Ok(b),
            (Err(e), _) => Err(e.to_string()),
            (_, Ok(Err(e))) => Err(e.to_string()),
            (_, Err(_)) => Err("the sleeping caller panicked".to_owned()),
        }
    })?;
    Ok((Fig::Lat(Lat::of(idle)), Fig::Lat(Lat::of(beside))))
}

/// Fresh clients' connect and first call, with no other client and then beside `n`
/// idle ones; the server's threads and memory per idle connection.
fn idle_cost(
    endpoint: &Endpoint,
    pid: u32,
    n: usize,
) -> Result<(Fig, Fig, IdleCost), Box<dyn Error>> {
    const FRESH: usize = 30;
    let fresh = || -> Result<Lat, Box<dyn Error>> {
        let mut samples = Vec::with_capacity(FRESH);
        for _ in 0..FRESH {
            let t0 = Instant::now();
            let c = BenchClient::connect(endpoint)?;
            c.echo(vec![0x5A; 64])?;
            samples.push(t0.elapsed());
        }
        Ok(Lat::of(samples))
    };
    // Let the connections of earlier rows go, and their readers park.
    std::thread::sleep(SETTLE);
    let threads_before = proc_threads(pid)?;
    let rss_before = proc_rss_kib(pid)?;
    let base = fresh()?;
    let mut idle = Vec::with_capacity(n);
    for i in 0..n {
        let c =
            BenchClient::connect(endpoint).map_err(|e| format!("idle client {i} of {n}: {e}"))?;
        idle.push(c);
    }
    std::thread::sleep(SETTLE);
    let threads = proc_threads(pid)?;
    let rss = proc_rss_kib(pid)?;
    let beside = fresh()?;
    drop(idle);
    let cost = IdleCost {
        threads_before,
        threads,
        rss_kib_per_connection: rss.saturating_sub(rss_before) as f64 / n.max(1) as f64,
    };
    Ok((Fig::Lat(base), Fig::Lat(beside), cost))
}

/// Time for a server's readers to park after their clients went quiet.
const SETTLE: Duration = Duration::from_millis(300);

fn proc_threads(pid: u32) -> Result<usize, Box<dyn Error>> {
    Ok(std::fs::read_dir(format!("/proc/{pid}/task"))?.count())
}

fn proc_rss_kib(pid: u32) -> Result<u64, Box<dyn Error>> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| "no VmRSS in /proc/<pid>/status".into())
}

/// Calls/s of a handler that sleeps 1 ms: one caller, then [`CALLERS`] sharing a client.
fn slow_handler(ours: &Ours, dur: Duration) -> Result<(Fig, Fig), Box<dyn Error>> {
    let rate = |callers: usize| -> Result<f64, String> {
        let start = Instant::now();
        let until = start + dur;
        let calls = std::thread::scope(|s| {
            let handles: Vec<_> = (0..callers)
                .map(|_| {
                    let c = ours.client.with_timeout(Duration::from_secs(5));
                    s.spawn(move || {
                        let mut n = 0_u64;
                        while Instant::now() < until {
                            c.sleep_ms(1).map_err(|e| e.to_string())?;
                            n += 1;
                        }
                        Ok::<_, String>(n)
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().map_err(|_| "a caller panicked".to_owned())?)
                .sum::<Result<u64, String>>()
        })?;
        Ok(calls as f64 / start.elapsed().as_secs_f64())
    };
    let one = rate(1)?;
    let many = rate(CALLERS)?;
    Ok((Fig::Rate(one), Fig::Rate(many)))
}

/// Producer-consumer of `size`-byte messages in batches of [`BATCH`] bytes: raw sends
/// each message on its own and the consumer acknowledges each batch; ours makes one
/// `consume(batch)` call per batch. Rounds as in [`rtt_cell`].
fn stream_cell(
    t: Transport,
    ours: &mut Ours,
    size: usize,
    pl: Placement,
    b: Budget,
) -> Result<(RawRates, f64), Box<dyn Error>> {
    let kinds = t.raw();
    let count = BATCH / size;
    let msg = vec![0xA5_u8; size];
    let batch: Vec<Msg> = (0..count).map(|_| Msg(msg.clone())).collect();
    let mut ack = [0_u8; 8];
    let mut raw_batch = |p: &mut RawPeer| -> std::io::Result<()> {
        for _ in 0..count {
            p.conn().send(&msg)?;
        }
        p.conn().recv(&mut ack)
    };
    let until = Instant::now() + WARM;
    while Instant::now() < until {
        ours.client.consume(batch.clone())?;
    }
    let slice = b.stream / b.rounds;
    let mut peers: Vec<Option<RawPeer>> = kinds.iter().map(|_| None).collect();
    let mut raw_time = vec![(0_usize, Duration::ZERO); kinds.len()];
    let (mut ours_bytes, mut ours_time) = (0_u64, Duration::ZERO);
    for _ in 0..b.rounds {
        for ((&kind, slot), (bytes, time)) in kinds.iter().zip(&mut peers).zip(&mut raw_time) {
            let p = peer(
                slot,
                || RawPeer::start(kind, size, count, 8, pl.child),
                &mut raw_batch,
            )?;
            for_slice(slice, || {
                let t0 = Instant::now();
                raw_batch(p)?;
                *time += t0.elapsed();
                *bytes += count * size;
                Ok(())
            })?;
            if !keep(kind)
                && let Some(p) = slot.take()
            {
                p.finish();
            }
        }
        for_slice(slice, || {
            // Producing the messages is the producer's work, not the transport's.
            let arg = batch.clone();
            let t0 = Instant::now();
            ours_bytes += ours.client.consume(arg)?;
            ours_time += t0.elapsed();
            Ok(())
        })?;
    }
    peers.into_iter().flatten().for_each(RawPeer::finish);
    let mbps = |bytes: f64, time: Duration| bytes / time.as_secs_f64() / 1e6;
    let raw = kinds
        .into_iter()
        .zip(raw_time)
        .map(|(k, (bytes, time))| (k, mbps(bytes as f64, time)))
        .collect();
    Ok((raw, mbps(ours_bytes as f64, ours_time)))
}

/// Events per subscription of the push rows: a streaming batch's worth, at least
/// [`PUSH_MIN`].
const PUSH_MIN: usize = 256;

/// Server push of `size`-byte events: subscriptions of [`BATCH`] bytes (at least
/// [`PUSH_MIN`] events) each, one after another, for the cell's streaming time; events/s
/// from the subscribe call to the stream's end.
fn push_cell(ours: &Ours, size: usize, b: Budget) -> Result<f64, Box<dyn Error>> {
    let count = (BATCH / size).max(PUSH_MIN);
    let one = || -> Result<Duration, Box<dyn Error>> {
        let t0 = Instant::now();
        let mut got = 0;
        for event in ours.client.push(count as u32, size as u32)? {
            got += usize::from(event?.0.len() == size);
        }
        if got != count {
            return Err(format!("push: {got} of {count} events of {size} B arrived").into());
        }
        Ok(t0.elapsed())
    };
    let until = Instant::now() + WARM;
    while Instant::now() < until {
        one()?;
    }
    let (mut events, mut time) = (0_usize, Duration::ZERO);
    for_slice(b.stream, || {
        time += one()?;
        events += count;
        Ok(())
    })?;
    Ok(events as f64 / time.as_secs_f64())
}
