//! The `riskgate` command line: parses arguments, calls the library, prints.

use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Write};
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
    },
    /// Verify a decision log's hash chain: prints OK with the line count, or the first line
    /// where the chain breaks (edited, removed, inserted or reordered lines) and exits 1.
    VerifyLog {
        /// The log file.
        #[arg(value_name = "FILE")]
        file: PathBuf,
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

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Score { rules, input, state, log } => {
            score(&rules, input.as_deref(), state.as_deref(), log.as_deref())
        }
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

fn score(rules: &Path, input: Option<&Path>, state: Option<&Path>, log: Option<&Path>) -> ExitCode {
    let scorer = match Scorer::from_dir(rules) {
        Ok(scorer) => scorer,
        Err(e) => {
            eprintln!("riskgate: cannot load rules from {}: {e}", rules.display());
            return ExitCode::from(UNUSABLE);
        }
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
            eprintln!("riskgate: cannot read {}: {e}", input.map_or("stdin".into(), |p| p.display().to_string()));
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
            Err(e) => {
                invalid += 1;
                let message = match e.kind() {
                    riskgate::ErrorKind::InvalidEvent { message, .. } => message.clone(),
                    _ => e.to_string(),
                };
                writeln!(out, "{}", LineError { line: stream.line(), error: &message }.to_json())
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
        eprintln!("riskgate: read error after line {}: {e}; state not saved", stream.line());
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
