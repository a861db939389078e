//! The `riskgate` command line: parses arguments, calls the library, prints.

use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, IsTerminal, Write};
use std::mem::ManuallyDrop;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use std::sync::Arc;

use riskgate::stream::Stopped;
use riskgate::{DecisionLog, EventStream, LineReader, Scorer};

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
        /// Sweep a rule param: report the figures for every combination of the values given
        /// (may repeat; the combinations multiply), as if written as overrides in policy.toml.
        #[arg(long = "param", value_name = "PACK/RULE.NAME=V1,V2,...")]
        params: Vec<String>,
        /// Event files (JSON Lines), replayed in order as one stream; `-` for standard input.
        #[arg(value_name = "FILE", required = true)]
        files: Vec<PathBuf>,
    },
    /// Search param values and tier thresholds for the most scam withdrawals at >= warn within
    /// friction budgets, on half of the users; report both halves and print the suggested
    /// policy.toml overrides and [tiers].
    ///
    /// Users are split by the SHA-256 of their id (first byte even: tuning half, odd: checking
    /// half). The output is the same bytes for the same rules, arguments and input.
    Tune {
        /// The rules directory.
        #[arg(long, value_name = "DIR")]
        rules: PathBuf,
        /// Most legit withdrawals at >= warn, in percent.
        #[arg(long, value_name = "PCT")]
        max_friction: f64,
        /// Most legit withdrawals at cool_off, in percent (default: a tenth of --max-friction).
        #[arg(long, value_name = "PCT")]
        max_cool_off: Option<f64>,
        /// A rule param and the values to try (may repeat; the combinations multiply).
        #[arg(long = "param", value_name = "PACK/RULE.NAME=V1,V2,...")]
        params: Vec<String>,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
        /// Event files (JSON Lines), replayed in order as one stream; `-` for standard input.
        #[arg(value_name = "FILE", required = true)]
        files: Vec<PathBuf>,
    },
    /// Generate a deterministic, labeled event stream (JSON Lines) to tune rules on.
    ///
    /// Honest typologies (regular, merchant-payer, p2p-payer, whale, traveller, first-large,
    /// telegram-newcomer, reset-legit, cold-wallet, big-purchase) and scam typologies
    /// (telegram-coach, fake-support, mule-victim, romance, job-scam); every withdrawal of the
    /// measured window carries "label" and "typology". The same arguments give the same bytes.
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
        /// Days of unlabeled honest history before --start (accounts are old and known).
        #[arg(long, default_value_t = 0)]
        warmup_days: u32,
        /// Typology weights overriding the defaults: NAME=WEIGHT,... (relative, within the
        /// honest users or within the victims), e.g. romance=3,job-scam=0.
        #[arg(long, value_name = "MIX")]
        mix: Option<String>,
        /// Multiplies every amount.
        #[arg(long, default_value_t = 1.0)]
        amount_scale: f64,
        /// Multiplies scam amounts only.
        #[arg(long, default_value_t = 1.0)]
        scam_amount_scale: f64,
        /// Multiplies the gaps between a victim's scam transfers (0.5: twice as fast).
        #[arg(long, default_value_t = 1.0)]
        pace: f64,
        /// Victims per coach gang and job-scam platform (mule campaigns have one more).
        #[arg(long, default_value_t = 5)]
        gang_size: u32,
        /// Write to FILE instead of standard output.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// Measure what warnings do, live: the decision log of `score --log` (verified as it is
    /// read) joined by withdrawal id to the events telling how each withdrawal ended.
    ///
    /// Per tier, warning and locale: withdrawals warned and held out ([holdout] in the policy),
    /// the share cancelled in each, and the difference with a 95% interval. Decisions without
    /// an outcome and outcomes without a decision are counted and named, not guessed.
    Effect {
        /// The hash-chained decision log.
        #[arg(long, value_name = "FILE")]
        log: PathBuf,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
        /// Event files (JSON Lines) with the withdrawals' outcomes (`status`).
        #[arg(value_name = "EVENTS", required = true)]
        events: Vec<PathBuf>,
    },
    /// Simulate how users answer warnings: score a stream (e.g. from `gen`) with a rule set and
    /// write it back with each withdrawal's `status` drawn from a response model.
    ///
    /// A user shown a warning (tier above allow, not held out) cancels with the probability
    /// given for the withdrawal's typology, else for the warning's key, else --cancel-if-warned;
    /// a user shown nothing (held out, or allow) cancels with --base-cancel. Cancelled
    /// withdrawals never enter history, as in `score`. The same arguments give the same bytes.
    Respond {
        /// The rules directory (with a [holdout] to measure against).
        #[arg(long, value_name = "DIR")]
        rules: PathBuf,
        /// Probability that a warned user cancels.
        #[arg(long, value_name = "P", default_value_t = 0.0)]
        cancel_if_warned: f64,
        /// Per typology: TYPOLOGY=P (repeatable).
        #[arg(long, value_name = "T=P")]
        cancel_if_warned_typology: Vec<String>,
        /// Per warning key: KEY=P, e.g. hk-police/investment-scam=0.3 (repeatable).
        #[arg(long, value_name = "KEY=P")]
        cancel_if_warned_key: Vec<String>,
        /// Probability that a user shown nothing (held out, or allow) cancels.
        #[arg(long, value_name = "P", default_value_t = 0.0)]
        base_cancel: f64,
        /// Seed of the draws.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Write to FILE instead of standard output.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        /// The stream to read; `-` or nothing for standard input.
        #[arg(value_name = "FILE|-")]
        input: Option<PathBuf>,
    },
    /// Run the HTTP/1.1 JSON service: POST /v1/score, /v1/events, /v1/reload; GET /healthz,
    /// /metrics. SIGHUP reloads the rules; SIGTERM stops it gracefully.
    #[cfg(feature = "serve")]
    Serve {
        /// The rules directory (policy.toml and one folder per pack).
        #[arg(long, value_name = "DIR")]
        rules: PathBuf,
        /// Where feature state lives: `memory` (in process), redis://[:PASSWORD@]HOST:PORT[/DB],
        /// rediss://... (TLS) or redis+cluster://HOST:PORT[,HOST:PORT...] (shared by every
        /// instance using it).
        #[arg(long, value_name = "URL", default_value = "memory")]
        store: String,
        /// Prefix of every key in a shared store.
        #[arg(long, value_name = "P", default_value = "riskgate:")]
        store_prefix: String,
        /// Address to listen on (`HOST:PORT`; port 0 picks a free one, named in the log).
        #[arg(long, value_name = "ADDR", default_value = riskgate::serve::DEFAULT_LISTEN)]
        listen: String,
        /// Append every /v1/score decision to this hash-chained log (as `score --log`).
        #[arg(long, value_name = "FILE")]
        log: Option<PathBuf>,
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
    /// Write a new Ed25519 secret key to OUT (owner-only) and print its public key
    /// (`ed25519:BASE64`, for `[partners.<id>] public_key` in policy.toml).
    Keygen {
        /// The secret key file to write.
        #[arg(value_name = "OUT")]
        out: PathBuf,
    },
    /// Sign a pack folder with a secret key: writes PACKDIR/pack.sig.
    Sign {
        /// The secret key file (from `riskgate keygen`).
        #[arg(long, value_name = "FILE")]
        key: PathBuf,
        /// The pack folder.
        #[arg(value_name = "PACKDIR")]
        pack: PathBuf,
    },
    /// Review a partner's new pack (or new version) before it goes live.
    ///
    /// (1) signature and authority under the live policy, (2) the pack's own tests, (3) the live
    /// set with the candidate swapped in, replayed against the live set on the recorded stream.
    /// Exit status: 0 review passed, 1 the pack is refused or its tests fail, 2 usage or I/O
    /// (the live set does not load, a file cannot be read).
    Review {
        /// The live rules directory (its policy.toml grants partners their authority).
        #[arg(long, value_name = "LIVE_DIR")]
        rules: PathBuf,
        /// The candidate pack folder (named after its pack id); not copied, not changed.
        #[arg(long, value_name = "PACK_DIR")]
        candidate: PathBuf,
        /// Report only the last DAYS of the stream (earlier events still build feature state).
        #[arg(long, value_name = "DAYS")]
        since: Option<f64>,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
        /// Leave timing out, so that the output is byte-identical across runs.
        #[arg(long)]
        no_timing: bool,
        /// Also write a self-contained HTML report to PATH.
        #[arg(long, value_name = "PATH")]
        html: Option<PathBuf>,
        /// Event files (JSON Lines), replayed in order as one stream.
        #[arg(value_name = "EVENTS", required = true)]
        files: Vec<PathBuf>,
    },
}

/// Where feature state lives (`--store`, `--store-prefix`).
#[derive(clap::Args)]
struct StoreArgs {
    /// `memory` (in process), redis://[:PASSWORD@]HOST:PORT[/DB], rediss://... (TLS; a private
    /// CA through SSL_CERT_FILE) or redis+cluster://HOST:PORT[,HOST:PORT...] (a Redis Cluster):
    /// shared by every riskgate process given the same URL and prefix.
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
            params,
            store,
            files,
        } => {
            if let Err(code) = check_percentages(&[
                ("--max-friction", max_friction),
                ("--max-cool-off-friction", max_cool_off_friction),
            ]) {
                return code;
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
                &params,
                &store,
            )
        }
        Command::Tune {
            rules,
            max_friction,
            max_cool_off,
            params,
            json,
            files,
        } => tune(&rules, max_friction, max_cool_off, &params, json, &files),
        Command::Gen {
            seed,
            users,
            days,
            region,
            start,
            scam_share,
            warmup_days,
            mix,
            amount_scale,
            scam_amount_scale,
            pace,
            gang_size,
            out,
        } => gen(
            seed,
            users,
            days,
            region,
            &start,
            scam_share,
            GenKnobs {
                warmup_days,
                mix,
                amount_scale,
                scam_amount_scale,
                pace,
                gang_size,
            },
            out.as_deref(),
        ),
        Command::Effect { log, json, events } => {
            match riskgate::live_effect::measure(&log, &events) {
                Ok(report) if json => print_out(&report.to_json()),
                Ok(report) => print_out(&riskgate::live_effect::render_text(&report)),
                Err(e) => {
                    eprintln!("riskgate: {e}");
                    ExitCode::from(UNUSABLE)
                }
            }
        }
        Command::Respond {
            rules,
            cancel_if_warned,
            cancel_if_warned_typology,
            cancel_if_warned_key,
            base_cancel,
            seed,
            out,
            input,
        } => {
            let pairs =
                |list: &[String]| -> Result<std::collections::BTreeMap<String, f64>, String> {
                    list.iter()
                        .map(|item| {
                            let (k, p) = item
                                .rsplit_once('=')
                                .ok_or(format!("{item:?} is not NAME=P"))?;
                            let p: f64 = p
                                .parse()
                                .map_err(|_| format!("{item:?}: {p:?} is not a number"))?;
                            Ok((k.to_string(), p))
                        })
                        .collect()
                };
            let model = match (
                pairs(&cancel_if_warned_typology),
                pairs(&cancel_if_warned_key),
            ) {
                (Ok(by_typology), Ok(by_warning)) => riskgate::respond::ResponseModel {
                    cancel_if_warned,
                    by_typology,
                    by_warning,
                    base_cancel,
                    seed,
                },
                (Err(e), _) | (_, Err(e)) => {
                    eprintln!("riskgate: {e}");
                    return ExitCode::from(UNUSABLE);
                }
            };
            respond(&rules, &model, input.as_deref(), out.as_deref())
        }
        Command::Keygen { out } => match riskgate::signing::keygen(&out) {
            Ok(public) => {
                println!("{public}");
                eprintln!("riskgate: secret key written to {} (keep it private; give the exchange the public key above)", out.display());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("riskgate: {e}");
                ExitCode::from(UNUSABLE)
            }
        },
        Command::Sign { key, pack } => match riskgate::signing::sign_pack(&key, &pack) {
            Ok(signed) => {
                println!(
                    "signed {} file(s): {} (public key {})",
                    signed.files,
                    signed.path.display(),
                    signed.public_key
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("riskgate: cannot sign {}: {e}", pack.display());
                match e.kind() {
                    riskgate::ErrorKind::Load(_) => ExitCode::FAILURE,
                    _ => ExitCode::from(UNUSABLE),
                }
            }
        },
        Command::Review {
            rules,
            candidate,
            since,
            json,
            no_timing,
            html,
            files,
        } => {
            let options = riskgate::review::ReviewOptions {
                since_days: since,
                replay: riskgate::replay::ReplayOptions {
                    timing: !no_timing,
                    ..Default::default()
                },
            };
            let report = match riskgate::review::review(&rules, &candidate, &files, &options) {
                Ok(report) => report,
                Err(e) => {
                    eprintln!("riskgate: cannot review {}: {e}", candidate.display());
                    return ExitCode::from(UNUSABLE);
                }
            };
            let text = if json {
                report.to_json()
            } else {
                riskgate::review::render_text(&report)
            };
            let html = html
                .as_deref()
                .map(|path| (path, riskgate::review::render_html(&report)));
            if let Err(code) = write_report(html, &text) {
                return code;
            }
            if report.passed() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        #[cfg(feature = "serve")]
        Command::Serve {
            rules,
            store,
            store_prefix,
            listen,
            log,
        } => {
            let options = riskgate::serve::ServeOptions {
                rules,
                store,
                store_prefix,
                listen,
                log,
            };
            match riskgate::serve::run(options) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("riskgate: {e}");
                    ExitCode::from(UNUSABLE)
                }
            }
        }
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
    // Never dropped: the process ends with this function, and freeing the state and the seen
    // ids one allocation at a time took a fifth of a large run. The decision log is synced
    // explicitly (`close_log`) on every path that leaves it open.
    let scorer = match store.open(state) {
        Ok(store) => ManuallyDrop::new(Scorer::with_store(rules, store)),
        Err(code) => return code,
    };
    let mut stream = ManuallyDrop::new(EventStream::new());
    if let Some(path) = state.filter(|p| p.exists()) {
        match scorer.load_state(path) {
            Ok(restored) => {
                stream = ManuallyDrop::new(EventStream::resuming(restored.withdrawal_ids))
            }
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
    let mut out = BufWriter::with_capacity(1 << 16, io::stdout().lock());
    let mut lines = LineReader::new(reader);
    let invalid = match stream.write_decisions(&scorer, &mut lines, &mut out, log.as_deref()) {
        Ok(invalid) => invalid,
        Err(Stopped::Store(e)) => {
            // Never a decision on state that could not be read or written: stop here.
            let _ = out.flush();
            let _ = close_log(log);
            eprintln!("riskgate: {e}; stopped at line {}", stream.line());
            return ExitCode::from(UNUSABLE);
        }
        Err(Stopped::Log(e)) => {
            eprintln!("riskgate: {e}");
            return ExitCode::from(UNUSABLE);
        }
        Err(Stopped::Write(e)) if e.kind() == io::ErrorKind::BrokenPipe => {
            // The reader went away: the log keeps what was decided; the state is not saved
            // because the input was not read to the end.
            return close_log(log).unwrap_or(ExitCode::SUCCESS);
        }
        Err(Stopped::Write(e)) => {
            let _ = log.map(|log| log.sync());
            eprintln!("riskgate: cannot write output: {e}");
            return ExitCode::from(UNUSABLE);
        }
    };
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
    params: &[String],
    store: &StoreArgs,
) -> ExitCode {
    let candidate = match load_rules(rules) {
        Ok(r) => r,
        Err(code) => return code,
    };
    let specs = match param_specs(params, &candidate) {
        Ok(specs) => specs,
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
    if let Err(e) = replay.sweep_params(specs) {
        eprintln!("riskgate: {e}");
        return ExitCode::from(UNUSABLE);
    }
    if let Some(path) = state.filter(|p| p.exists()) {
        if let Err(e) = replay.load_state(path) {
            eprintln!("riskgate: cannot load state: {e}");
            return ExitCode::from(UNUSABLE);
        }
    }
    if let Err(code) = feed_files(files, |name, reader, progress| {
        replay.feed(name, reader, progress)
    }) {
        return code;
    }
    if let Some(path) = state {
        if let Err(e) = replay.save_state(path) {
            eprintln!("riskgate: cannot save state: {e}");
            return ExitCode::from(UNUSABLE);
        }
    }
    let report = replay.finish();
    let text = if json {
        report.to_json()
    } else {
        riskgate::replay::render_text(&report)
    };
    let html = html.map(|path| (path, riskgate::replay::render_html(&report)));
    if let Err(code) = write_report(html, &text) {
        return code;
    }
    if report.stream.invalid > 0 {
        eprintln!("riskgate: {} invalid line(s)", report.stream.invalid);
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

/// `riskgate gen`'s options beyond the stream's size and place.
struct GenKnobs {
    warmup_days: u32,
    mix: Option<String>,
    amount_scale: f64,
    scam_amount_scale: f64,
    pace: f64,
    gang_size: u32,
}

#[allow(clippy::too_many_arguments)]
fn gen(
    seed: u64,
    users: u32,
    days: u32,
    region: String,
    start: &str,
    scam_share: f64,
    knobs: GenKnobs,
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
    let mix = match knobs.mix.as_deref().map(riskgate::gen::parse_mix) {
        None => Vec::new(),
        Some(Ok(mix)) => mix,
        Some(Err(e)) => {
            eprintln!("riskgate: --mix: {e}");
            return ExitCode::from(UNUSABLE);
        }
    };
    for (name, x) in [
        ("--amount-scale", knobs.amount_scale),
        ("--scam-amount-scale", knobs.scam_amount_scale),
        ("--pace", knobs.pace),
    ] {
        if !(x.is_finite() && x > 0.0) {
            eprintln!("riskgate: {name} must be a number above 0, got {x}");
            return ExitCode::from(UNUSABLE);
        }
    }
    let config = riskgate::gen::GenConfig {
        seed,
        users,
        days,
        region,
        start,
        scam_share,
        warmup_days: knobs.warmup_days,
        mix,
        amount_scale: knobs.amount_scale,
        scam_amount_scale: knobs.scam_amount_scale,
        pace: knobs.pace,
        gang_size: knobs.gang_size.max(1),
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

fn respond(
    rules: &Path,
    model: &riskgate::respond::ResponseModel,
    input: Option<&Path>,
    out: Option<&Path>,
) -> ExitCode {
    if let Some(problem) = model.problems().first() {
        eprintln!("riskgate: --{problem}");
        return ExitCode::from(UNUSABLE);
    }
    let rules = match load_rules(rules) {
        Ok(r) => r,
        Err(code) => return code,
    };
    let reader = match open_input(input) {
        Ok(reader) => reader,
        Err(e) => {
            eprintln!("riskgate: cannot read input: {e}");
            return ExitCode::from(UNUSABLE);
        }
    };
    let result = match out {
        Some(path) => match File::create(path) {
            Ok(f) => riskgate::respond::respond(rules, model, reader, &mut BufWriter::new(f)),
            Err(e) => {
                eprintln!("riskgate: cannot write {}: {e}", path.display());
                return ExitCode::from(UNUSABLE);
            }
        },
        None => riskgate::respond::respond(
            rules,
            model,
            reader,
            &mut BufWriter::new(io::stdout().lock()),
        ),
    };
    match result {
        Ok(s) => {
            eprintln!(
                "riskgate respond: {} withdrawals: {} warned ({} cancelled), {} held out ({} cancelled), {} allowed; {} cancelled in all; {} invalid line(s) copied",
                s.withdrawals, s.warned, s.warned_cancelled, s.held_out, s.held_out_cancelled, s.allowed, s.cancelled, s.invalid
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("riskgate: {e}");
            ExitCode::from(UNUSABLE)
        }
    }
}

/// Prints a report; a closed pipe is not an error.
fn print_out(text: &str) -> ExitCode {
    match write_report(None, text) {
        Ok(()) => ExitCode::SUCCESS,
        Err(code) => code,
    }
}

/// Writes the HTML report when asked (path, page), then prints `text` on standard output (a
/// closed pipe, as with `| head`, is not an error).
fn write_report(html: Option<(&Path, String)>, text: &str) -> Result<(), ExitCode> {
    if let Some((path, page)) = html {
        if let Err(e) = std::fs::write(path, page) {
            eprintln!("riskgate: cannot write {}: {e}", path.display());
            return Err(ExitCode::from(UNUSABLE));
        }
    }
    match writeln!(io::stdout().lock(), "{}", text.trim_end()) {
        Err(e) if e.kind() != io::ErrorKind::BrokenPipe => {
            eprintln!("riskgate: cannot write output: {e}");
            Err(ExitCode::from(UNUSABLE))
        }
        _ => Ok(()),
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

/// `riskgate tune`: reads the files through the library's [`riskgate::replay::Tune`] with a
/// progress bar on a terminal, then prints the report.
fn tune(
    rules: &Path,
    max_friction: f64,
    max_cool_off: Option<f64>,
    params: &[String],
    json: bool,
    files: &[PathBuf],
) -> ExitCode {
    if let Err(code) = check_percentages(&[
        ("--max-friction", Some(max_friction)),
        ("--max-cool-off", max_cool_off),
    ]) {
        return code;
    }
    let rules = match load_rules(rules) {
        Ok(r) => r,
        Err(code) => return code,
    };
    let specs = match param_specs(params, &rules) {
        Ok(specs) => specs,
        Err(code) => return code,
    };
    let options = riskgate::replay::TuneOptions {
        max_friction: max_friction / 100.0,
        max_cool_off_friction: max_cool_off.map(|p| p / 100.0),
    };
    let mut tune = match riskgate::replay::Tune::new(rules, specs, options) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("riskgate: {e}");
            return ExitCode::from(UNUSABLE);
        }
    };
    if let Err(code) = feed_files(files, |name, reader, progress| {
        tune.feed(name, reader, progress)
    }) {
        return code;
    }
    let searching = progress_bar(0, "searching [{bar:30}] {pos}/{len} combinations");
    let report = tune.finish(&mut |done, total| {
        searching.set_length(total as u64);
        searching.set_position(done as u64);
    });
    searching.finish_and_clear();
    let text = if json {
        report.to_json()
    } else {
        report.render_text()
    };
    let mut out = io::stdout().lock();
    if let Err(e) = writeln!(out, "{}", text.trim_end()) {
        if e.kind() != io::ErrorKind::BrokenPipe {
            eprintln!("riskgate: cannot write output: {e}");
            return ExitCode::from(UNUSABLE);
        }
    }
    if report.invalid > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// A progress bar on standard error, drawn only when it is a terminal (nothing else goes there).
fn progress_bar(len: u64, template: &str) -> indicatif::ProgressBar {
    if !io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::with_draw_target(
        Some(len),
        indicatif::ProgressDrawTarget::stderr(),
    );
    if let Ok(style) = indicatif::ProgressStyle::with_template(template) {
        bar.set_style(style);
    }
    bar
}

/// Opens each file (`-`: standard input) in order and hands it to `feed` with a progress
/// callback, showing the bytes read over all files on a progress bar. A file that cannot be
/// opened or fed stops everything with the exit status for an unusable input.
fn feed_files(
    files: &[PathBuf],
    mut feed: impl FnMut(
        &str,
        BufReader<Counting<Box<dyn io::Read + '_>>>,
        &mut dyn FnMut(riskgate::replay::Progress),
    ) -> Result<(), riskgate::Error>,
) -> Result<(), ExitCode> {
    let total: u64 = files
        .iter()
        .filter_map(|f| std::fs::metadata(f).ok())
        .map(|m| m.len())
        .sum();
    let reading = progress_bar(total, "reading  [{bar:30}] {percent:>3}%  {msg}");
    let read = std::rc::Rc::new(std::cell::Cell::new(0_u64));
    for file in files {
        let name = file.display().to_string();
        let reader: Box<dyn io::Read> = if file.as_os_str() == "-" {
            Box::new(io::stdin().lock())
        } else {
            match File::open(file) {
                Ok(f) => Box::new(f),
                Err(e) => {
                    reading.abandon();
                    eprintln!("riskgate: cannot read {name}: {e}");
                    return Err(ExitCode::from(UNUSABLE));
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
            reading.set_position(read.get());
            reading.set_message(format!("{} lines, {} withdrawals", p.lines, p.withdrawals));
        };
        if let Err(e) = feed(&name, reader, &mut progress) {
            reading.abandon();
            eprintln!("riskgate: {e}");
            return Err(ExitCode::from(UNUSABLE));
        }
    }
    reading.finish_and_clear();
    Ok(())
}

/// Each option given must be a percentage between 0 and 100.
fn check_percentages(options: &[(&str, Option<f64>)]) -> Result<(), ExitCode> {
    for (name, value) in options {
        if value.is_some_and(|p| !(0.0..=100.0).contains(&p)) {
            eprintln!("riskgate: {name} is a percentage between 0 and 100");
            return Err(ExitCode::from(UNUSABLE));
        }
    }
    Ok(())
}

/// Parses the `--param pack/rule.name=V1,V2,...` arguments against the rules they sweep.
fn param_specs(
    params: &[String],
    rules: &riskgate::RuleSet,
) -> Result<Vec<riskgate::replay::ParamSpec>, ExitCode> {
    params
        .iter()
        .map(|p| riskgate::replay::ParamSpec::parse(p, rules))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| {
            eprintln!("riskgate: {e}");
            ExitCode::from(UNUSABLE)
        })
}
