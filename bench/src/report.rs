//! The outputs: the Markdown table, the JSON file and the SVG chart.

use std::error::Error;
use std::path::{Path, PathBuf};

use plotters::prelude::*;
use serde_json::{Value, json};

use crate::measure::{Fig, Measure, Row, SIZES, loadavg, size_name};
use crate::{Budget, Placement, Transport};

/// `target/ipc-rpc-bench`, next to the binary's profile directory.
pub fn out_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .or_else(|| {
            let exe = std::env::current_exe().ok()?;
            Some(exe.parent()?.parent()?.to_path_buf())
        })
        .unwrap_or_else(|| PathBuf::from("target"));
    target.join("ipc-rpc-bench")
}

fn measure_name(m: Measure) -> String {
    match m {
        Measure::Rtt(size) => format!("round trip {} (µs)", size_name(size)),
        Measure::Rate {
            callers,
            clients,
            unpinned,
        } => {
            let who = match (callers, clients) {
                (1, 1) => "1 caller".to_owned(),
                (_, 1) => format!("{callers} callers, 1 client"),
                _ => format!("{clients} clients"),
            };
            let unpinned = if unpinned { ", unpinned" } else { "" };
            format!("calls/s, {who}{unpinned}")
        }
        Measure::Stream(size) => format!("stream {} msgs (MB/s)", size_name(size)),
        Measure::Push(size) => format!(
            "push {} events (events/s; raw: msgs/s streamed)",
            size_name(size)
        ),
        Measure::HeadOfLine => "64 B p50 beside a 1 s call, 7 callers, 1 client (µs)".into(),
        Measure::SlowHandler => "calls/s of a 1 ms handler, 8 callers, 1 client".into(),
        Measure::Idle(n) => format!("fresh client's connect + first call, {n} idle clients (µs)"),
    }
}

fn num(v: f64) -> String {
    if !v.is_finite() {
        "n/a".into()
    } else if v >= 1000.0 {
        format!("{v:.0}")
    } else if v >= 100.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

fn cell(f: Option<Fig>, pick: fn(Fig) -> Option<f64>) -> String {
    f.and_then(pick).map_or_else(|| "n/a".into(), num)
}

fn ratio(r: &Row) -> Option<f64> {
    Some(r.ours?.value() / r.raw?.value())
}

/// Prints the table (Markdown) on stdout.
pub fn print_table(rows: &[Row], pl: Placement) {
    println!(
        "placement: {}; {} CPUs; kernel {}; load average now {}",
        pl.name,
        cores(),
        kernel(),
        num(loadavg())
    );
    println!();
    println!(
        "| transport | measure | raw mechanism | raw p50 / rate | ours p50 / rate | ours/raw | raw p99 | ours p99 | raw mean | ours mean | load 1m | steal % |"
    );
    println!("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let p99 = |f: Fig| match f {
        Fig::Lat(l) => Some(l.p99),
        Fig::Rate(_) => None,
    };
    let mean = |f: Fig| match f {
        Fig::Lat(l) => Some(l.mean),
        Fig::Rate(_) => None,
    };
    for r in rows {
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {:.2} | {:.0} |",
            r.transport,
            measure_name(r.measure)
                + &if r.stalls > 0 {
                    format!(" ({} stalled)", r.stalls)
                } else {
                    String::new()
                },
            r.raw_kind.map_or_else(|| "—".into(), |k| k.arg()),
            cell(r.raw, |f| Some(f.value())),
            cell(r.ours, |f| Some(f.value())),
            ratio(r).map_or_else(|| "—".into(), |x| format!("{x:.2}")),
            cell(r.raw, p99),
            cell(r.ours, p99),
            cell(r.raw, mean),
            cell(r.ours, mean),
            r.load,
            r.steal,
        );
    }
    println!();
    println!(
        "ours/raw: for latency below 1 is better for ours, for calls/s and MB/s above 1 is. \
         Raw calls/s is the raw 64 B ping-pong's rate. The two rows on one client compare \
         ours with ours: beside a 1 s call, the raw column is the same callers' p50 with no \
         slow call (ratio near 1: no head-of-line blocking); for the 1 ms handler, it is one \
         caller's calls/s (ratio near 8: the handlers ran in parallel). Beside idle clients, \
         the raw column is a fresh client's connect and first call with no idle client. \
         Unpinned calls/s rows: the same three, with the callers and a server of their own \
         wherever the kernel puts them (pinned, all of a client's threads share one CPU). \
         steal %: CPU time the hypervisor gave to other guests during the row; rows with \
         much of it are noise."
    );
    for r in rows {
        if let (Measure::Idle(n), Some(cost)) = (r.measure, r.detail) {
            println!();
            println!(
                "{} with {n} idle clients: {} server threads ({} with none), {:.1} KiB of \
                 server memory (RSS) per idle connection",
                r.transport, cost.threads, cost.threads_before, cost.rss_kib_per_connection
            );
        }
    }
    for r in rows {
        if let Some(note) = &r.note {
            println!();
            println!("n/a in {} {}: {note}", r.transport, measure_name(r.measure));
        }
    }
}

fn read(path: &str) -> String {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_owned())
        .unwrap_or_default()
}

/// CPUs online (not our affinity mask, which pinning narrows).
fn cores() -> usize {
    read("/proc/cpuinfo")
        .lines()
        .filter(|l| l.starts_with("processor"))
        .count()
}

fn kernel() -> String {
    read("/proc/sys/kernel/osrelease")
}

fn fig_json(f: Option<Fig>) -> Value {
    match f {
        None => Value::Null,
        Some(Fig::Lat(l)) => {
            json!({"p50_us": l.p50, "p99_us": l.p99, "mean_us": l.mean, "samples": l.n})
        }
        Some(Fig::Rate(r)) => json!(r),
    }
}

/// Every figure and the machine's facts, as JSON text.
pub fn json(rows: &[Row], pl: Placement, b: Budget, quick: bool) -> String {
    let cpu = read("/proc/cpuinfo")
        .lines()
        .find_map(|l| l.strip_prefix("model name")?.split(':').nth(1))
        .map(str::trim)
        .unwrap_or_default()
        .to_owned();
    let rows: Vec<Value> = rows
        .iter()
        .map(|r| {
            let (kind, size, callers, clients) = match r.measure {
                Measure::Rtt(s) => ("round_trip_us", Some(s), None, None),
                Measure::Rate {
                    callers,
                    clients,
                    unpinned: false,
                } => ("calls_per_s", None, Some(callers), Some(clients)),
                Measure::Rate {
                    callers, clients, ..
                } => ("calls_per_s_unpinned", None, Some(callers), Some(clients)),
                Measure::Stream(s) => ("stream_mb_per_s", Some(s), None, None),
                Measure::Push(s) => ("push_events_per_s", Some(s), None, None),
                Measure::HeadOfLine => (
                    "head_of_line_p50_us",
                    Some(64),
                    Some(crate::measure::BESIDE),
                    Some(1),
                ),
                Measure::SlowHandler => (
                    "slow_handler_calls_per_s",
                    None,
                    Some(crate::measure::CALLERS),
                    Some(1),
                ),
                Measure::Idle(n) => ("fresh_client_beside_idle_us", Some(64), None, Some(n)),
            };
            json!({
                "transport": r.transport,
                "measure": kind,
                "size": size,
                "callers": callers,
                "clients": clients,
                "raw_mechanism": r.raw_kind.map(|k| k.arg()),
                "raw": fig_json(r.raw),
                "ours": fig_json(r.ours),
                "ours_over_raw": ratio(r),
                "loadavg_1m": r.load,
                "steal_percent": r.steal,
                "stalled_calls": r.stalls,
                "note": r.note,
                "server_threads_before": r.detail.map(|d| d.threads_before),
                "server_threads": r.detail.map(|d| d.threads),
                "server_rss_kib_per_idle_connection": r.detail.map(|d| d.rss_kib_per_connection),
            })
        })
        .collect();
    let v = json!({
        "machine": {
            "cores": cores(),
            "cpu": cpu,
            "kernel": kernel(),
            "loadavg_at_end": read("/proc/loadavg"),
            "mqueue": {
                "msg_max": read("/proc/sys/fs/mqueue/msg_max"),
                "msgsize_max": read("/proc/sys/fs/mqueue/msgsize_max"),
                "queues_max": read("/proc/sys/fs/mqueue/queues_max"),
            },
        },
        "run": {
            "placement": pl.name,
            "quick": quick,
            "latency_ms_per_variant": b.latency.as_millis() as u64,
            "rounds": b.rounds,
            "rate_ms": b.rate.as_millis() as u64,
            "stream_ms_per_variant": b.stream.as_millis() as u64,
            "stream_batch_bytes": crate::measure::BATCH,
        },
        "rows": rows,
    });
    serde_json::to_string_pretty(&v).unwrap_or_default()
}

/// Latency (p50) against size, ours and raw, per transport, on log-log axes.
pub fn chart(rows: &[Row], path: &Path) -> Result<(), Box<dyn Error>> {
    let lat = |t: &str, ours: bool| -> Vec<(f64, f64)> {
        SIZES
            .iter()
            .filter_map(|&s| {
                let r = rows
                    .iter()
                    .find(|r| r.transport == t && r.measure == Measure::Rtt(s))?;
                let f = if ours { r.ours } else { r.raw };
                Some((s as f64, f?.value()))
            })
            .collect()
    };
    let all: Vec<f64> = Transport::ALL
        .iter()
        .flat_map(|t| [lat(t.name(), true), lat(t.name(), false)])
        .flatten()
        .map(|(_, y)| y)
        .collect();
    let lo = all.iter().copied().fold(f64::INFINITY, f64::min).max(0.1) * 0.7;
    let hi = all.iter().copied().fold(0.0, f64::max).max(lo * 10.0) * 1.5;
    let root = SVGBackend::new(path, (900, 600)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "round trip p50 (µs) vs payload: ours solid, raw thin",
            ("sans-serif", 20),
        )
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d((40.0..1.6e6_f64).log_scale(), (lo..hi).log_scale())?;
    chart
        .configure_mesh()
        .x_desc("payload bytes")
        .y_desc("µs")
        .draw()?;
    for (i, t) in Transport::ALL.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        chart
            .draw_series(LineSeries::new(lat(t.name(), true), color.stroke_width(3)))?
            .label(t.name())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(3))
            });
        chart.draw_series(LineSeries::new(lat(t.name(), false), color.stroke_width(1)))?;
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperLeft)
        .draw()?;
    root.present()?;
    Ok(())
}
