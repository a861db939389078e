//! The `riskgate` command line: parses arguments, calls the library, prints.

use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use std::sync::Arc;

use riskgate::{DecisionLog, EventStream, LineReader, Processed, Scorer};

/// Scores crypto withdrawals for scam risk against sandboxed Rhai rule packs.
#[derive(Parser)]
#[command(name = "riskgate", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Score a stream of events (JSON Lines): one decision line per withdrawal.
    ///
    /// Events are processed in order; each withdrawal is decided, then remembered. An invalid
    /// line prints {"line":N,"error":"..."} in its place, changes nothing, and makes the exit
    /// status 1 once the stream ends.
    Score {
        /// The rules directory (policy.toml and one folder per pack).
        #[arg(long, value_name = "DIR")]
        rules: PathBuf,
        /// Events to read; `-` or nothing for standard input.
        #[arg(value_name = "FILE|-")]
        input: Option<PathBuf>,
        /// State snapshot: read at start when the file exists (a corrupt one is refused), and
        /// written atomically at the end when the whole input was read.
        #[arg(long, value_name = "FILE")]
        state: Option<PathBuf>,
        /// Append every decision to this hash-chained JSON Lines log (created when missing;
        /// an existing log's chain is continued). Check it with `riskgate verify-log`.
        #[arg(long, value_name = "FILE")]
        log: Option<PathBuf>,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Verify a decision log's hash chain: prints OK with the line count, or the first line
    /// where the chain breaks (edited, removed, inserted or reordered lines) and exits 1.
    VerifyLog {
        /// The log file.
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
    /// Replay recorded event streams and report what an analyst tunes by.
    ///
    /// Streams the files, in order, through a fresh scorer (the semantics of `score`) and
    /// prints: stream figures, the tier distribution, recall / precision / friction on labeled
    /// withdrawals, per-rule figures, a sweep of the warn threshold, and with --baseline a tier
    /// transition matrix against another rule set. Exit status 1 when any line was invalid.
    Replay {
        /// The candidate rules directory.
        #[arg(long, value_name = "DIR")]
        rules: PathBuf,
        /// Rules to compare with (e.g. the set live today), scored on the same stream.
        #[arg(long, value_name = "DIR")]
        baseline: Option<PathBuf>,
        /// Print the report as JSON instead of the terminal summary.
        #[arg(long)]
        json: bool,
        /// Leave timing out, so that the output is byte-identical across runs.
        #[arg(long)]
        no_timing: bool,
        /// Also write a self-contained HTML report to PATH.
        #[arg(long, value_name = "PATH")]
        html: Option<PathBuf>,
        /// Find the warn and cool_off thresholds that catch the most scam withdrawals with at
        /// most PCT percent of legit withdrawals at >= warn (and PCT/10 at cool_off).
        #[arg(long, value_name = "PCT")]
        max_friction: Option<f64>,
        /// Cool-off friction budget in percent for --max-friction (default: a tenth of it).
        #[arg(long, value_name = "PCT", requires = "max_friction")]
        max_cool_off_friction: Option<f64>,
        /// State snapshot: read at start when the file exists (feature state and the withdrawal
        /// ids seen), written atomically at the end when every file was read.
        #[arg(long, value_name = "FILE")]
        state: Option<PathBuf>,
        #[command(flatten)]
        store: StoreArgs,
        /// Event files (JSON Lines), replayed in order as one stream; `-` for standard input.
        #[arg(value_name = "FILE", required = true)]
        files: Vec<PathBuf>,
    },
    /// Generate a deterministic, labeled event stream (JSON Lines) to tune rules on.
    ///
    /// Honest typologies (regular, whale, traveller, first-large, telegram-newcomer,
    /// reset-legit) and scam typologies (telegram-coach, fake-support, mule-victim, romance);
    /// every withdrawal carries "label" and "typology". The same arguments give the same bytes.
    Gen {
        /// Seed of the pseudo-random generator.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Number of users.
        #[arg(long, default_value_t = 1000)]
        users: u32,
        /// Days of activity.
        #[arg(long, default_value_t = 30)]
        days: u32,
        /// The users' country (ISO 3166 alpha-2).
        #[arg(long, default_value = "HK")]
        region: String,
        /// First instant of the stream (RFC 3339).
        #[arg(long, default_value = "2026-11-01T00:00:00Z")]
        start: String,
        /// Share of users who fall victim to a scam (0 to 1).
        #[arg(long, default_value_t = 0.12)]
        scam_share: f64,
        /// Write to FILE instead of standard output.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// Move a state snapshot (`--state` file of `score` or `replay`) into a shared store.
    ///
    /// The store's prefix must hold no key yet. Users, destinations and the withdrawal ids saved
    /// with the snapshot are written; then `riskgate score --store URL` goes on from there.
    StoreImport {
        /// The snapshot file.
        #[arg(long, value_name = "FILE")]
        state: PathBuf,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Load the policy and every pack, then run each pack's tests/*.jsonl with that pack alone.
    ///
    /// Exit status 0 only when everything loads and every expectation holds.
    Check {
        /// The rules directory.
        #[arg(value_name = "DIR")]
        dir: PathBuf,
    },
}

/// Where feature state lives (`--store`, `--store-prefix`).
#[derive(clap::Args)]
struct StoreArgs {
    /// `memory` (in process) or redis://[:PASSWORD@]HOST:PORT[/DB]: a Redis server shared by
    /// every riskgate process given the same URL and prefix.
    #[arg(long = "store", value_name = "URL", default_value = "memory")]
    url: String,
    /// Every Redis key begins with this, exactly as given.
    #[arg(long, value_name = "P", default_value = riskgate::DEFAULT_STORE_PREFIX)]
    store_prefix: String,
}

impl StoreArgs {
    /// Opens the store (an error within 10 s when Redis cannot be reached).
    fn open(&self, state: Option<&Path>) -> Result<riskgate::Store, ExitCode> {
        if self.url != "memory" && state.is_some() {
            eprintln!(
                "riskgate: --state is for the memory store; move a snapshot into a shared \
                 store with `riskgate store-import`"
            );
            return Err(ExitCode::from(UNUSABLE));
        }
        riskgate::Store::open(&self.url, &self.store_prefix).map_err(|e| {
            eprintln!("riskgate: {e}");
            ExitCode::from(UNUSABLE)
        })
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Score {
            rules,
            input,
            state,
            log,
            store,
        } => score(
            &rules,
            input.as_deref(),
            state.as_deref(),
            log.as_deref(),
            &store,
        ),
        Command::VerifyLog { file } => match riskgate::verify_log(&file) {
            Ok(report) => {
                println!("{report}");
                if report.is_intact() {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::FAILURE
                }
            }
            Err(e) => {
                eprintln!("riskgate: {e}");
                ExitCode::from(UNUSABLE)
            }
        },
        Command::Replay {
            rules,
            baseline,
            json,
            no_timing,
            html,
            max_friction,
            max_cool_off_friction,
            state,
            store,
            files,
        } => {
            for (name, value) in [
                ("--max-friction", max_friction),
                ("--max-cool-off-friction", max_cool_off_friction),
            ] {
                if value.is_some_and(|p| !(0.0..=100.0).contains(&p)) {
                    eprintln!("riskgate: {name} is a percentage between 0 and 100");
                    return ExitCode::from(UNUSABLE);
                }
            }
            let options = riskgate::replay::ReplayOptions {
                max_friction: max_friction.map(|p| p / 100.0),
                max_cool_off_friction: max_cool_off_friction.map(|p| p / 100.0),
                timing: !no_timing,
                ..Default::default()
            };
            replay(
                &rules,
                baseline.as_deref(),
                &files,
                options,
                json,
                html.as_deref(),
                state.as_deref(),
                &store,
            )
        }
        Command::Gen {
            seed,
            users,
            days,
            region,
            start,
            scam_share,
            out,
        } => gen(
            seed,
            users,
            days,
            region,
            &start,
            scam_share,
            out.as_deref(),
        ),
        Command::StoreImport { state, store } => {
            let imported = store.open(None).and_then(|s| {
                s.import_snapshot(&state).map_err(|e| {
                    eprintln!("riskgate: {e}");
                    ExitCode::from(UNUSABLE)
                })
            });
            match imported {
                Ok(info) => {
                    println!(
                        "imported {} users, {} destinations, {} withdrawal ids",
                        info.users, info.destinations, info.withdrawal_ids
                    );
                    ExitCode::SUCCESS
                }
                Err(code) => code,
            }
        }
        Command::Check { dir } => {
            let report = riskgate::check(&dir);
            println!("{report}");
            if report.passed() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

/// `{"line":N,"error":"..."}`, in that order.
#[derive(serde::Serialize)]
struct LineError<'a> {
    line: usize,
    error: &'a str,
}

impl LineError<'_> {
    fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// Exit status for a rule set or input that could not be used at all.
const UNUSABLE: u8 = 2;

fn open_input(input: Option<&Path>) -> io::Result<Box<dyn BufRead>> {
    match input {
        None => Ok(Box::new(BufReader::new(io::stdin().lock()))),
        Some(p) if p.as_os_str() == "-" => Ok(Box::new(BufReader::new(io::stdin().lock()))),
        Some(p) => Ok(Box::new(BufReader::with_capacity(1 << 16, File::open(p)?))),
    }
}

fn score(
    rules: &Path,
    input: Option<&Path>,
    state: Option<&Path>,
    log: Option<&Path>,
    store: &StoreArgs,
) -> ExitCode {
    let rules = match load_rules(rules) {
        Ok(rules) => rules,
        Err(code) => return code,
    };
    let scorer = match store.open(state) {
        Ok(store) => Scorer::with_store(rules, store),
        Err(code) => return code,
    };
    let mut stream = EventStream::new();
    if let Some(path) = state.filter(|p| p.exists()) {
        match scorer.load_state(path) {
            Ok(restored) => stream = EventStream::resuming(restored.withdrawal_ids),
            Err(e) => {
                eprintln!("riskgate: cannot use the state snapshot: {e}");
                return ExitCode::from(UNUSABLE);
            }
        }
    }
    let log = match log.map(DecisionLog::open).transpose() {
        Ok(log) => log.map(Arc::new),
        Err(e) => {
            eprintln!("riskgate: cannot open decision log: {e}");
            return ExitCode::from(UNUSABLE);
        }
    };
    if let Some(log) = &log {
        if let Err(e) = scorer.set_audit_log(log.clone()) {
            eprintln!("riskgate: {e}");
            return ExitCode::from(UNUSABLE);
        }
    }
    let reader = match open_input(input) {
        Ok(reader) => reader,
        Err(e) => {
            eprintln!(
                "riskgate: cannot read {}: {e}",
                input.map_or("stdin".into(), |p| p.display().to_string())
            );
            return ExitCode::from(UNUSABLE);
        }
    };
    let mut out = BufWriter::new(io::stdout().lock());
    let mut lines = LineReader::new(reader);
    let mut invalid = 0_usize;
    while let Some(line) = lines.next_line() {
        let written = match stream.process(&scorer, line) {
            Ok(Processed::Scored(_, decision)) => {
                if let Some(Err(e)) = log.as_ref().map(|log| log.append_decision(&decision)) {
                    eprintln!("riskgate: {e}");
                    return ExitCode::from(UNUSABLE);
                }
                writeln!(out, "{}", decision.to_json())
            }
            Ok(_) => Ok(()),
            Err(e) if matches!(e.kind(), riskgate::ErrorKind::Store { .. }) => {
                // Never a decision on state that could not be read or written: stop here.
                let _ = out.flush();
                let _ = close_log(log);
                eprintln!("riskgate: {e}; stopped at line {}", stream.line());
                return ExitCode::from(UNUSABLE);
            }
            Err(e) => {
                invalid += 1;
                let message = match e.kind() {
                    riskgate::ErrorKind::InvalidEvent { message, .. } => message.clone(),
                    _ => e.to_string(),
                };
                writeln!(
                    out,
                    "{}",
                    LineError {
                        line: stream.line(),
                        error: &message
                    }
                    .to_json()
                )
            }
        };
        if let Err(e) = written {
            if e.kind() == io::ErrorKind::BrokenPipe {
                // The reader went away: the log keeps what was decided; the state is not saved
                // because the input was not read to the end.
                return close_log(log).unwrap_or(ExitCode::SUCCESS);
            }
            eprintln!("riskgate: cannot write output: {e}");
            return ExitCode::from(UNUSABLE);
        }
    }
    let _ = out.flush();
    if let Some(code) = close_log(log) {
        return code;
    }
    if let Some(e) = lines.io_error() {
        eprintln!(
            "riskgate: read error after line {}: {e}; state not saved",
            stream.line()
        );
        return ExitCode::from(UNUSABLE);
    }
    if let Some(path) = state {
        if let Err(e) = scorer.save_state_with_stream(path, &stream) {
            eprintln!("riskgate: {e}");
            return ExitCode::from(UNUSABLE);
        }
    }
    if invalid > 0 {
        eprintln!("riskgate: {invalid} invalid line(s)");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

fn load_rules(dir: &Path) -> Result<riskgate::RuleSet, ExitCode> {
    riskgate::RuleSet::load(dir).map_err(|e| {
        eprintln!("riskgate: cannot load rules from {}: {e}", dir.display());
        ExitCode::from(UNUSABLE)
    })
}

/// Counts the bytes read through it, for the progress bar.
struct Counting<R> {
    inner: R,
    count: std::rc::Rc<std::cell::Cell<u64>>,
}

impl<R: io::Read> io::Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.set(self.count.get() + n as u64);
        Ok(n)
    }
}

#[allow(clippy::too_many_arguments)]
fn replay(
    rules: &Path,
    baseline: Option<&Path>,
    files: &[PathBuf],
    options: riskgate::replay::ReplayOptions,
    json: bool,
    html: Option<&Path>,
    state: Option<&Path>,
    store: &StoreArgs,
) -> ExitCode {
    let candidate = match load_rules(rules) {
        Ok(r) => r,
        Err(code) => return code,
    };
    let baseline = match baseline.map(load_rules).transpose() {
        Ok(b) => b,
        Err(code) => return code,
    };
    let store = match store.open(state) {
        Ok(store) => store,
        Err(code) => return code,
    };
    let mut replay = riskgate::replay::Replay::with_store(candidate, baseline, options, store);
    if let Some(path) = state.filter(|p| p.exists()) {
        if let Err(e) = replay.load_state(path) {
            eprintln!("riskgate: cannot load state: {e}");
            return ExitCode::from(UNUSABLE);
        }
    }
    let show_progress = io::stderr().is_terminal();
    let total: u64 = files
        .iter()
        .filter_map(|f| std::fs::metadata(f).ok())
        .map(|m| m.len())
        .sum();
    let read = std::rc::Rc::new(std::cell::Cell::new(0_u64));
    let mut shown = false;
    for file in files {
        let name = file.display().to_string();
        let reader: Box<dyn io::Read> = if file.as_os_str() == "-" {
            Box::new(io::stdin().lock())
        } else {
            match File::open(file) {
                Ok(f) => Box::new(f),
                Err(e) => {
                    eprintln!("riskgate: cannot read {name}: {e}");
                    return ExitCode::from(UNUSABLE);
                }
            }
        };
        let reader = BufReader::with_capacity(
            1 << 16,
            Counting {
                inner: reader,
                count: read.clone(),
            },
        );
        let mut progress = |p: riskgate::replay::Progress| {
            if show_progress {
                shown = true;
                let done = read.get();
                let fraction = if total > 0 {
                    (done as f64 / total as f64).min(1.0)
                } else {
                    0.0
                };
                let filled = (fraction * 30.0) as usize;
                eprint!(
                    "\r[{}{}] {:>5.1}%  {} lines, {} withdrawals ",
                    "#".repeat(filled),
                    " ".repeat(30 - filled),
                    fraction * 100.0,
                    p.lines,
                    p.withdrawals
                );
            }
        };
        if let Err(e) = replay.feed(&name, reader, &mut progress) {
            if shown {
                eprintln!();
            }
            eprintln!("riskgate: {e}");
            return ExitCode::from(UNUSABLE);
        }
    }
    if shown {
        eprint!("\r{}\r", " ".repeat(80));
    }
    if let Some(path) = state {
        if let Err(e) = replay.save_state(path) {
            eprintln!("riskgate: cannot save state: {e}");
            return ExitCode::from(UNUSABLE);
        }
    }
    let report = replay.finish();
    if let Some(path) = html {
        if let Err(e) = std::fs::write(path, riskgate::replay::render_html(&report)) {
            eprintln!("riskgate: cannot write {}: {e}", path.display());
            return ExitCode::from(UNUSABLE);
        }
    }
    let text = if json {
        report.to_json()
    } else {
        riskgate::replay::render_text(&report)
    };
    let mut out = io::stdout().lock();
    if let Err(e) = writeln!(out, "{}", text.trim_end()) {
        if e.kind() != io::ErrorKind::BrokenPipe {
            eprintln!("riskgate: cannot write output: {e}");
            return ExitCode::from(UNUSABLE);
        }
    }
    if report.stream.invalid > 0 {
        eprintln!("riskgate: {} invalid line(s)", report.stream.invalid);
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

#[allow(clippy::too_many_arguments)]
fn gen(
    seed: u64,
    users: u32,
    days: u32,
    region: String,
    start: &str,
    scam_share: f64,
    out: Option<&Path>,
) -> ExitCode {
    let start = match riskgate::Timestamp::parse(start) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("riskgate: --start: {e}");
            return ExitCode::from(UNUSABLE);
        }
    };
    if region.len() != 2 || !region.bytes().all(|b| b.is_ascii_alphabetic()) {
        eprintln!("riskgate: --region must be an ISO 3166 alpha-2 code such as HK, got {region:?}");
        return ExitCode::from(UNUSABLE);
    }
    if !(0.0..=1.0).contains(&scam_share) {
        eprintln!("riskgate: --scam-share must be between 0 and 1, got {scam_share}");
        return ExitCode::from(UNUSABLE);
    }
    let config = riskgate::gen::GenConfig {
        seed,
        users,
        days,
        region,
        start,
        scam_share,
    };
    let result = match out {
        Some(path) => match File::create(path) {
            Ok(f) => riskgate::gen::generate(&config, &mut BufWriter::new(f)),
            Err(e) => {
                eprintln!("riskgate: cannot write {}: {e}", path.display());
                return ExitCode::from(UNUSABLE);
            }
        },
        None => riskgate::gen::generate(&config, &mut BufWriter::new(io::stdout().lock())),
    };
    match result {
        Ok(summary) => {
            eprintln!(
                "riskgate gen: {} events, {} withdrawals ({} scam)",
                summary.events, summary.withdrawals, summary.scam_withdrawals
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("riskgate: {e}");
            ExitCode::from(UNUSABLE)
        }
    }
}

/// Syncs and closes the decision log; `Some(status)` when that failed.
fn close_log(log: Option<Arc<DecisionLog>>) -> Option<ExitCode> {
    let log = log?;
    match log.sync() {
        Ok(()) => None,
        Err(e) => {
            eprintln!("riskgate: {e}");
            Some(ExitCode::from(UNUSABLE))
        }
    }
}
