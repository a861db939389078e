//! `throughput`: `riskgate score` against the JSON-parsing floor on the stream of
//! `riskgate gen --seed 5 --users 200000 --days 30` (issue 14: score within 1.5 times the floor).
//!
//! The stream is generated once into a temporary file. Then, interleaved, best of N (wall-clock
//! and CPU time, this process):
//! - `floor`: read the lines, parse each with serde_json into a typed struct of every contract
//!   field (strings borrowed from the line, so no allocation), write one small line per
//!   withdrawal (`{"id":...,"tier":"allow"}`);
//! - `floor/value`: the same parsing into `serde_json::Value` (what a quick script would do);
//! - `score`: what `riskgate score` runs, [`EventStream::write_decisions`] with the same
//!   reader and writer sizes, from loading the rules to the last flushed decision;
//! - `score/cli`: the built `riskgate score --rules rules FILE` itself, stdout to `/dev/null`
//!   (wall-clock only; process start, rule loading and exit included).
//!
//! All outputs go to `/dev/null` through a writer that counts lines; each run asserts one line
//! per withdrawal. Prints the times and the ratios to the `floor`.
//! `RISKGATE_BENCH_RUNS=N` sets the rounds (default 3).

mod common;

use std::borrow::Cow;
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use riskgate::{EventStream, LineReader, Scorer};
use serde::Deserialize;

const BUFFER: usize = 1 << 16;

/// Every field of a contract event, borrowed where the line has no escapes.
#[derive(Deserialize)]
#[allow(dead_code)] // parsed to be parsed: the floor reads only `kind` and `id`
struct FloorEvent<'a> {
    #[serde(borrow)]
    kind: Cow<'a, str>,
    #[serde(borrow)]
    ts: Cow<'a, str>,
    #[serde(borrow)]
    user_id: Cow<'a, str>,
    #[serde(borrow, default)]
    id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    asset: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    network: Option<Cow<'a, str>>,
    amount_usd: Option<f64>,
    #[serde(borrow, default)]
    destination: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    user: Option<FloorUser<'a>>,
    #[serde(borrow, default)]
    device_id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    status: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    label: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
#[allow(dead_code)]
struct FloorUser<'a> {
    #[serde(borrow)]
    country: Cow<'a, str>,
    #[serde(borrow)]
    created_at: Cow<'a, str>,
    #[serde(borrow, default)]
    locale: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    referral: Option<Cow<'a, str>>,
}

#[derive(serde::Serialize)]
struct SmallLine<'a> {
    id: &'a str,
    tier: &'static str,
}

/// `/dev/null`, counting the lines written through it.
struct Sink {
    file: File,
    lines: usize,
}

impl Sink {
    fn new() -> Sink {
        Sink {
            file: File::create("/dev/null").expect("/dev/null opens"),
            lines: 0,
        }
    }
}

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.file.write(buf)?;
        self.lines += buf[..n].iter().filter(|&&b| b == b'\n').count();
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

fn floor(path: &Path, value: bool) -> usize {
    let mut reader = BufReader::with_capacity(BUFFER, File::open(path).expect("stream opens"));
    let mut out = BufWriter::with_capacity(BUFFER, Sink::new());
    let mut line = Vec::new();
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line).expect("read") == 0 {
            break;
        }
        let text = std::str::from_utf8(&line).expect("UTF-8");
        if value {
            let v: serde_json::Value = serde_json::from_str(text).expect("valid JSON");
            if v["kind"] == "withdrawal" {
                let id = v["id"].as_str().expect("an id");
                serde_json::to_writer(&mut out, &SmallLine { id, tier: "allow" }).expect("write");
                out.write_all(b"\n").expect("write");
            }
        } else {
            let e: FloorEvent = serde_json::from_str(text).expect("valid event");
            if e.kind == "withdrawal" {
                let id = e.id.as_deref().expect("an id");
                serde_json::to_writer(&mut out, &SmallLine { id, tier: "allow" }).expect("write");
                out.write_all(b"\n").expect("write");
            }
        }
    }
    let sink = out.into_inner().ok().expect("flushed");
    sink.lines
}

/// `riskgate score`'s path in process; returns the decision lines and the scorer, which the
/// caller drops outside the timed region (the CLI never drops it).
fn score(path: &Path) -> (usize, Scorer) {
    let scorer = Scorer::from_dir(common::rules_dir()).expect("the shipped rules load");
    let reader = BufReader::with_capacity(BUFFER, File::open(path).expect("stream opens"));
    let mut lines = LineReader::new(reader);
    let mut out = BufWriter::with_capacity(BUFFER, Sink::new());
    let mut stream = EventStream::new();
    let invalid = stream
        .write_decisions(&scorer, &mut lines, &mut out, None)
        .expect("scored to the end");
    assert_eq!(invalid, 0);
    let sink = out.into_inner().ok().expect("flushed");
    (sink.lines, scorer)
}

fn score_cli(path: &Path) -> usize {
    let out = Command::new(env!("CARGO_BIN_EXE_riskgate"))
        .arg("score")
        .arg("--rules")
        .arg(common::rules_dir())
        .arg(path)
        .stdout(Stdio::null())
        .status()
        .expect("riskgate runs");
    assert!(out.success(), "riskgate score: {out}");
    0
}

#[derive(Clone, Copy)]
struct Best {
    wall: f64,
    cpu: f64,
}

fn main() {
    // `cargo bench` passes `--bench`; a filter argument picks nothing here.
    let runs: usize = std::env::var("RISKGATE_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let dir = tempfile::tempdir().expect("a temp dir");
    let path = dir.path().join("seed5.jsonl");
    let started = Instant::now();
    let summary = {
        let mut out = BufWriter::new(File::create(&path).expect("temp file"));
        let config = riskgate::gen::GenConfig::new(5, 200_000, 30);
        let summary = riskgate::gen::generate(&config, &mut out).expect("generated");
        out.flush().expect("written");
        summary
    };
    let withdrawals = summary.withdrawals as usize;
    println!(
        "throughput: riskgate gen --seed 5 --users 200000 --days 30: {} events, {} withdrawals, {} MB (generated in {:.1} s)",
        summary.events,
        withdrawals,
        std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0) / 1_000_000,
        started.elapsed().as_secs_f64()
    );

    let names = ["floor", "floor/value", "score", "score/cli"];
    let mut best = [Best {
        wall: f64::MAX,
        cpu: f64::MAX,
    }; 4];
    for round in 0..runs {
        for (i, name) in names.iter().enumerate() {
            let cpu0 = common::cpu_seconds();
            let t0 = Instant::now();
            let (lines, scorer) = match i {
                0 => (floor(&path, false), None),
                1 => (floor(&path, true), None),
                2 => {
                    let (lines, scorer) = score(&path);
                    (lines, Some(scorer))
                }
                _ => (score_cli(&path), None),
            };
            let wall = t0.elapsed().as_secs_f64();
            let cpu = match (cpu0, common::cpu_seconds()) {
                (Some(a), Some(b)) if i != 3 => b - a,
                _ => f64::NAN,
            };
            drop(scorer);
            if i != 3 {
                assert_eq!(lines, withdrawals, "{name}: one line per withdrawal");
            }
            best[i].wall = best[i].wall.min(wall);
            best[i].cpu = best[i].cpu.min(cpu);
            println!(
                "  round {}: {name:<12} {wall:6.2} s wall, {cpu:6.2} s CPU",
                round + 1
            );
        }
    }
    println!("throughput: best of {runs} (wall-clock s, CPU s, ratio to floor by wall and CPU):");
    for (name, b) in names.iter().zip(&best) {
        let cpu = if b.cpu == f64::MAX {
            "     - s CPU      -x CPU".to_string()
        } else {
            format!("{:6.2} s CPU  {:5.2}x CPU", b.cpu, b.cpu / best[0].cpu)
        };
        println!(
            "  {name:<12} {:6.2} s  {:5.2}x  {cpu}  ({:.0} withdrawals/s)",
            b.wall,
            b.wall / best[0].wall,
            withdrawals as f64 / b.wall
        );
    }
}
