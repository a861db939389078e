//! Load generator for `riskgate serve` (README "Running the service"): starts the release
//! binary on a free port, records a generated stream through /v1/events, then posts withdrawals
//! to /v1/score over its own kept-alive connections:
//!
//! - saturation: closed loop on `SAT_CONNECTIONS` connections for a few seconds -> decisions/s;
//! - open loop at 2k and 10k requests/s: request k is *scheduled* at `t0 + k / rate` and its
//!   latency counted from that scheduled instant (not from when it was sent), so a server that
//!   falls behind shows its queueing in the figures (no coordinated omission).
//!
//! Then the same (saturation, 2k req/s) with `--store redis://...` on a local `redis-server`
//! started here (skipped with `RISKGATE_BENCH_NO_REDIS=1`).
//!
//! `cargo bench --bench serve` (about 40 s). `RISKGATE_BENCH_SECONDS` changes the length of each
//! phase (default 3).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

#[path = "../tests/support/mod.rs"]
mod support;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use support::serve::{Client, Server};

const BIN: &str = env!("CARGO_BIN_EXE_riskgate");
const SAT_CONNECTIONS: usize = 8;

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo test --benches` lists benches; nothing to list here
    }
    let seconds: f64 = std::env::var("RISKGATE_BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3.0);
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let extra: Vec<String> = std::env::var("RISKGATE_BENCH_SERVE_ARGS")
        .map(|s| s.split_whitespace().map(str::to_string).collect())
        .unwrap_or_default();
    let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
    run(&root, &extra, seconds, &[(2_000.0, 8), (10_000.0, 32)]);
    if extra.is_empty() && std::env::var_os("RISKGATE_BENCH_NO_REDIS").is_none() {
        // The same against a local redis-server started here (no persistence).
        let redis = support::redis_server::RedisServer::start();
        let url = redis.url();
        run(&root, &["--store", &url], seconds, &[(2_000.0, 8)]);
    }
}

fn run(root: &std::path::Path, extra: &[&str], seconds: f64, open_loops: &[(f64, usize)]) {
    let server = Server::start(BIN, &root.join("rules"), extra);
    let (history, probes) = stream();
    let started = Instant::now();
    let mut client = server.client();
    for line in &history {
        let answer = client.post("/v1/events", line);
        assert!(answer.status == 204 || answer.status == 409, "{answer:?}");
    }
    println!(
        "serve bench ({}): recorded {} events in {:.1} s; {} withdrawals to score",
        if extra.is_empty() {
            "memory store".to_string()
        } else {
            extra.join(" ")
        },
        history.len(),
        started.elapsed().as_secs_f64(),
        probes.len()
    );
    println!(
        "load average before: {}",
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
    );
    let probes = Arc::new(probes);
    let cpu_before = process_cpu_seconds(server.pid());
    let (count, elapsed) = saturate(&server.addr, &probes, Duration::from_secs_f64(seconds));
    let cpu = process_cpu_seconds(server.pid())
        .zip(cpu_before)
        .map(|(after, before)| after - before);
    println!(
        "saturation ({SAT_CONNECTIONS} connections, closed loop): {:.0} decisions/s ({count} in {:.2} s){}",
        count as f64 / elapsed,
        elapsed,
        cpu.map(|c| format!(
            "; server CPU {:.2} s = {:.1} us/decision",
            c,
            c * 1e6 / count as f64
        ))
        .unwrap_or_default()
    );
    for &(rate, connections) in open_loops {
        let report = open_loop(&server.addr, &probes, rate, connections, seconds);
        println!("{report}");
    }
}

/// A generated stream: the first 85% of its events to record, the withdrawals of the rest to
/// score (never recorded, so they can be scored again and again).
fn stream() -> (Vec<String>, Vec<String>) {
    let config = riskgate::gen::GenConfig::new(11, 2000, 30);
    let mut bytes = Vec::new();
    riskgate::gen::generate(&config, &mut bytes).unwrap();
    let lines: Vec<String> = String::from_utf8(bytes)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    let cut = lines.len() * 85 / 100;
    let history = lines[..cut].to_vec();
    let probes = lines[cut..]
        .iter()
        .filter(|l| support::serve::is_withdrawal(l))
        .cloned()
        .collect();
    (history, probes)
}

fn saturate(addr: &str, probes: &Arc<Vec<String>>, length: Duration) -> (u64, f64) {
    let done = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    // Warm up the connections first.
    let mut clients: Vec<Client> = (0..SAT_CONNECTIONS)
        .map(|_| Client::connect(addr))
        .collect();
    for client in &mut clients {
        assert_eq!(client.post("/v1/score", &probes[0]).status, 200);
    }
    let started = Instant::now();
    let threads: Vec<_> = clients
        .into_iter()
        .enumerate()
        .map(|(j, mut client)| {
            let (probes, done, stop) = (probes.clone(), done.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut k = j;
                while !stop.load(Ordering::Relaxed) {
                    let answer = client.post("/v1/score", &probes[k % probes.len()]);
                    assert_eq!(answer.status, 200, "{}", answer.body);
                    done.fetch_add(1, Ordering::Relaxed);
                    k += SAT_CONNECTIONS;
                }
            })
        })
        .collect();
    std::thread::sleep(length);
    stop.store(true, Ordering::Relaxed);
    let count = done.load(Ordering::Relaxed);
    let elapsed = started.elapsed().as_secs_f64();
    for t in threads {
        t.join().unwrap();
    }
    (count, elapsed)
}

fn open_loop(
    addr: &str,
    probes: &Arc<Vec<String>>,
    rate: f64,
    connections: usize,
    seconds: f64,
) -> String {
    let total = (rate * seconds) as usize;
    let mut clients: Vec<Client> = (0..connections).map(|_| Client::connect(addr)).collect();
    for client in &mut clients {
        assert_eq!(client.post("/v1/score", &probes[0]).status, 200);
    }
    let t0 = Instant::now() + Duration::from_millis(50);
    let threads: Vec<_> = clients
        .into_iter()
        .enumerate()
        .map(|(j, mut client)| {
            let probes = probes.clone();
            std::thread::spawn(move || {
                let mut latencies = Vec::with_capacity(total / connections + 1);
                let mut send_lags = Vec::with_capacity(total / connections + 1);
                let mut round_trips = Vec::with_capacity(total / connections + 1);
                for k in (j..total).step_by(connections) {
                    let scheduled = t0 + Duration::from_secs_f64(k as f64 / rate);
                    let now = Instant::now();
                    if scheduled > now {
                        std::thread::sleep(scheduled - now);
                    }
                    let sent = Instant::now();
                    send_lags.push(sent.saturating_duration_since(scheduled));
                    let answer = client.post("/v1/score", &probes[k % probes.len()]);
                    assert_eq!(answer.status, 200, "{}", answer.body);
                    let now = Instant::now();
                    latencies.push(now - scheduled);
                    round_trips.push(now - sent);
                }
                (latencies, send_lags, round_trips)
            })
        })
        .collect();
    let mut latencies = Vec::with_capacity(total);
    let mut lags = Vec::with_capacity(total);
    let mut round_trips = Vec::with_capacity(total);
    for t in threads {
        let (l, s, r) = t.join().unwrap();
        latencies.extend(l);
        lags.extend(s);
        round_trips.extend(r);
    }
    round_trips.sort();
    let elapsed = t0.elapsed().as_secs_f64();
    latencies.sort();
    lags.sort();
    let q = |v: &[Duration], p: f64| -> f64 {
        v[((v.len() as f64 * p) as usize).min(v.len() - 1)].as_secs_f64() * 1e3
    };
    format!(
        "open loop {rate:.0} req/s ({connections} connections, {total} requests, achieved {:.0}/s): \
         latency from the scheduled instant p50 {:.3} ms, p99 {:.3} ms, p99.9 {:.3} ms, max {:.3} ms \
         (of which the generator's own wake-up lag p50 {:.3} ms, p99 {:.3} ms; \
         from send to answer p50 {:.3} ms, p99 {:.3} ms)",
        total as f64 / elapsed,
        q(&latencies, 0.50),
        q(&latencies, 0.99),
        q(&latencies, 0.999),
        q(&latencies, 1.0),
        q(&lags, 0.50),
        q(&lags, 0.99),
        q(&round_trips, 0.50),
        q(&round_trips, 0.99),
    )
}

/// CPU seconds (user + system) used by process `pid` so far (Linux `/proc`, 10 ms ticks).
fn process_cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_name = stat.get(stat.rfind(')')? + 2..)?;
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}
