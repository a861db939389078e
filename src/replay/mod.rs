//! `riskgate replay`: streams recorded events through a fresh scorer (the semantics of
//! `riskgate score`) and reports what an analyst tunes by.
//!
//! ```no_run
//! use riskgate::replay::{Replay, ReplayOptions};
//! use riskgate::RuleSet;
//!
//! let rules = RuleSet::load("rules")?;
//! let mut replay = Replay::new(rules, None, ReplayOptions::default());
//! let file = std::io::BufReader::new(std::fs::File::open("fixtures/hk-sample.jsonl").map_err(|e| e.to_string())?);
//! replay.feed("fixtures/hk-sample.jsonl", file, &mut |_| {})?;
//! let report = replay.finish();
//! println!("{}", riskgate::replay::render_text(&report));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Memory
//! Bounded by the scorer's state, not by the stream: decisions are folded into aggregates as
//! they come (tier tallies, per-rule counters, and the exact outcome histogram keyed by
//! `(score, floor, label)` that the sweep and the optimizer re-tier), plus at most a few
//! examples per changed baseline cell and per invalid line. The only per-entity sets are the
//! distinct user ids (for the user count) and, in [`crate::EventStream`], the withdrawal ids seen
//! (to refuse duplicates as `riskgate score` does): about 40 bytes plus the id's length per
//! withdrawal. Latencies go into a fixed log-linear histogram (p50/p99 within 3%).

mod baseline;
mod effect;
mod metrics;
mod params;
mod render_html;
mod render_text;
mod sweep;
mod tune;

use std::collections::{BTreeMap, HashSet};
use std::io::BufRead;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::decision::{DecisionBuf, Tier};
use crate::error::{Error, ErrorKind};
use crate::event::Label;
use crate::rules::RuleSet;
use crate::scorer::Scorer;
use crate::stream::{EventStream, InPlace, LineReader};
use crate::time::Timestamp;

pub use baseline::{BaselineReport, Example, LevelDelta, RuleChange, Transition};
pub use effect::{
    newcombe, render_effect_text, wilson, AllowFigures, Comparison, EffectAcc, EffectReport,
    EffectRow, HoldoutInfo, UNKNOWN_WARNING,
};
pub use metrics::{LevelMetrics, RuleRow, TierRow};
pub use params::{
    describe as describe_params, user_half, ParamPoint, ParamSetting, ParamSpec, ParamSweepReport,
    MAX_COMBINATIONS, MAX_SWEPT_RULES,
};
pub use render_html::render_html;
pub use render_text::render_text;
pub use sweep::{Optimum, SweepPoint};
pub use tune::{HalfFigures, HalfStats, Tune, TuneCandidate, TuneChoice, TuneOptions, TuneReport};

use baseline::BaselineAcc;
use metrics::Accumulator;

/// How many invalid lines the report lists (all are counted).
pub const INVALID_SHOWN: usize = 5;

/// Distinct (typology, label) rows kept; further typologies are counted as `(other)`.
pub const MAX_TYPOLOGIES: usize = 64;

/// How often (in lines) the progress callback is called.
pub const PROGRESS_EVERY: u64 = 4096;

/// What to compute besides the always-present figures.
#[derive(Clone, Debug, PartialEq)]
pub struct ReplayOptions {
    /// `--max-friction`: budget of legit withdrawals at >= warn, as a fraction (0 to 1).
    pub max_friction: Option<f64>,
    /// Budget of legit withdrawals at cool_off, as a fraction; a tenth of `max_friction` when
    /// not given.
    pub max_cool_off_friction: Option<f64>,
    /// Examples kept per changed cell of the baseline matrix.
    pub examples: usize,
    /// Measure and report timing (off for byte-identical output).
    pub timing: bool,
    /// Events before this instant build feature state (history) but are left out of every
    /// figure (`riskgate review --since`).
    pub count_from: Option<Timestamp>,
}

impl Default for ReplayOptions {
    fn default() -> ReplayOptions {
        ReplayOptions {
            max_friction: None,
            max_cool_off_friction: None,
            examples: 3,
            timing: true,
            count_from: None,
        }
    }
}

/// The whole report. Everything but `timing` is a function of the rules and the input bytes.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Report {
    /// The candidate rule set.
    pub ruleset: RulesetInfo,
    /// What was read.
    pub stream: StreamStats,
    /// Tier distribution.
    pub tiers: Vec<TierRow>,
    /// Labeled figures at notice, warn and cool_off.
    pub levels: Vec<LevelMetrics>,
    /// Scam withdrawals no rule hit at all (live or shadow): no threshold can reach them.
    pub scam_without_hits: u64,
    /// Per-rule figures, in rule id order.
    pub rules: Vec<RuleRow>,
    /// Figures at >= warn for every warn threshold that makes a difference.
    pub sweep: Vec<SweepPoint>,
    /// Withdrawals by the `typology` field generated streams carry (see [`crate::gen`]) and
    /// label, with the tiers they got; empty when the stream has no such field.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub typologies: Vec<TypologyRow>,
    /// The warning effect (warned against held out), when the rule set has a `[holdout]`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub effect: Option<EffectReport>,
    /// `--max-friction` result.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub optimum: Option<Optimum>,
    /// `--baseline` comparison.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub baseline: Option<BaselineReport>,
    /// `--param` sweep: the figures for every combination of the given param values.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub param_sweep: Option<ParamSweepReport>,
    /// Timing, unless turned off.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timing: Option<Timing>,
}

/// Withdrawals of one typology and label.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TypologyRow {
    /// The `typology` field.
    pub typology: String,
    /// `scam`, `legit` or `unlabeled`.
    pub label: &'static str,
    /// Withdrawals.
    pub withdrawals: u64,
    /// At tier >= notice.
    pub notice: u64,
    /// At tier >= warn.
    pub warn: u64,
    /// At cool_off.
    pub cool_off: u64,
    /// Share at tier >= warn.
    pub warn_share: Option<f64>,
}

/// The rule set replayed.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RulesetInfo {
    /// Its id.
    pub id: String,
    /// Tier thresholds of its policy.
    pub thresholds: ThresholdsInfo,
    /// Its packs.
    pub packs: Vec<PackRow>,
}

/// Tier thresholds.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct ThresholdsInfo {
    /// Least score for notice.
    pub notice: i64,
    /// Least score for warn.
    pub warn: i64,
    /// Least score for cool_off.
    pub cool_off: i64,
}

/// A pack of the rule set.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PackRow {
    /// Pack id.
    pub id: String,
    /// Partner's version.
    pub version: String,
    /// `live` or `shadow`.
    pub mode: &'static str,
    /// Cap on its summed score.
    pub max_score: Option<i64>,
    /// Number of rules.
    pub rules: usize,
}

/// What was read.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct StreamStats {
    /// The files, in order, with their line counts.
    pub files: Vec<FileStats>,
    /// Valid events.
    pub events: u64,
    /// Withdrawals scored.
    pub withdrawals: u64,
    /// Of them, cancelled.
    pub cancelled: u64,
    /// Distinct users with any valid event.
    pub users: u64,
    /// Earliest event time (RFC 3339).
    pub first_ts: Option<String>,
    /// Latest event time.
    pub last_ts: Option<String>,
    /// Withdrawals labeled scam.
    pub scam: u64,
    /// Withdrawals labeled legit.
    pub legit: u64,
    /// Withdrawals without a label (left out of the labeled figures).
    pub unlabeled: u64,
    /// USD of scam-labeled withdrawals.
    pub scam_usd: f64,
    /// USD of legit-labeled withdrawals.
    pub legit_usd: f64,
    /// Invalid lines.
    pub invalid: u64,
    /// The first few invalid lines.
    pub invalid_lines: Vec<InvalidLine>,
}

/// One input file.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FileStats {
    /// As given.
    pub file: String,
    /// Lines read.
    pub lines: u64,
}

/// An invalid line.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct InvalidLine {
    /// Which file.
    pub file: String,
    /// 1-based line number in that file.
    pub line: u64,
    /// What is wrong with it.
    pub error: String,
}

/// Timing: the only figures that vary between runs.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Timing {
    /// Median decision latency (candidate `score`), microseconds.
    pub p50_us: f64,
    /// 99th percentile, microseconds.
    pub p99_us: f64,
    /// Maximum, microseconds.
    pub max_us: f64,
    /// Wall-clock seconds of the whole replay (reading, parsing, scoring, observing).
    pub seconds: f64,
    /// Withdrawals per wall-clock second.
    pub withdrawals_per_second: f64,
    /// Mean evaluation time per rule, microseconds, in rule id order.
    pub rules: Vec<RuleTime>,
}

/// One rule's mean evaluation time.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RuleTime {
    /// `pack/rule`.
    pub rule: String,
    /// Mean microseconds per evaluation; null when never evaluated.
    pub mean_us: Option<f64>,
}

/// Progress, for a progress bar.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Progress {
    /// Lines read so far, over all files.
    pub lines: u64,
    /// Withdrawals scored so far.
    pub withdrawals: u64,
}

/// The stream's own figures, counted line by line.
#[derive(Default)]
struct Counts {
    stats: StreamStats,
    users: HashSet<Box<str>>,
    first_ts: Option<Timestamp>,
    last_ts: Option<Timestamp>,
    scam_usd: i128,
    legit_usd: i128,
    typologies: BTreeMap<(String, &'static str), (u64, [u64; 4])>,
}

impl Counts {
    fn typology(&mut self, typology: &str, label: Option<Label>, tier: Tier) {
        let label = match label {
            Some(Label::Scam) => "scam",
            Some(Label::Legit) => "legit",
            None => "unlabeled",
        };
        let key = (typology.to_string(), label);
        let key = if self.typologies.len() >= MAX_TYPOLOGIES && !self.typologies.contains_key(&key)
        {
            ("(other)".to_string(), label)
        } else {
            key
        };
        let row = self.typologies.entry(key).or_default();
        row.0 += 1;
        if let Some(count) = row.1.get_mut(metrics::tier_index(tier)) {
            *count += 1;
        }
    }

    fn event(&mut self, ts: Timestamp, user_id: &str) {
        self.stats.events += 1;
        if !self.users.contains(user_id) {
            self.users.insert(user_id.into());
        }
        self.first_ts = Some(self.first_ts.map_or(ts, |t| t.min(ts)));
        self.last_ts = Some(self.last_ts.map_or(ts, |t| t.max(ts)));
    }

    fn withdrawal(&mut self, w: &crate::event::Withdrawal) {
        self.stats.withdrawals += 1;
        if w.status == crate::event::Status::Cancelled {
            self.stats.cancelled += 1;
        }
        let usd = metrics::micros(w.amount_usd);
        match w.label {
            Some(Label::Scam) => {
                self.stats.scam += 1;
                self.scam_usd = self.scam_usd.saturating_add(usd);
            }
            Some(Label::Legit) => {
                self.stats.legit += 1;
                self.legit_usd = self.legit_usd.saturating_add(usd);
            }
            None => self.stats.unlabeled += 1,
        }
    }
}

/// A replay in progress: feed it files in order, then [`Replay::finish`].
pub struct Replay {
    candidate: Scorer,
    candidate_rules: Arc<RuleSet>,
    baseline: Option<(Scorer, Arc<RuleSet>, Accumulator, BaselineAcc)>,
    options: ReplayOptions,
    stream: EventStream,
    /// The candidate's decisions are made into this one (reused: no allocation per decision).
    buf: DecisionBuf,
    /// The baseline's.
    baseline_buf: DecisionBuf,
    acc: Accumulator,
    counts: Counts,
    timings: Vec<Option<Duration>>,
    baseline_timings: Vec<Option<Duration>>,
    latency: LatencyHistogram,
    started: Instant,
    lines_total: u64,
    effect: Option<EffectAcc>,
    /// `--param`: the recording for a parameter sweep.
    params: Option<params::Recorder>,
}

impl Replay {
    /// A replay of `rules`, compared with `baseline` when given, each on a fresh scorer.
    pub fn new(rules: RuleSet, baseline: Option<RuleSet>, options: ReplayOptions) -> Replay {
        let candidate_rules = Arc::new(rules);
        let acc = Accumulator::new(&candidate_rules);
        let baseline = baseline.map(|b| {
            let b = Arc::new(b);
            let acc = Accumulator::new(&b);
            (
                Scorer::new_shared(b.clone()),
                b,
                acc,
                BaselineAcc::new(options.examples),
            )
        });
        Replay {
            effect: candidate_rules
                .policy()
                .holdout
                .is_some()
                .then(EffectAcc::new),
            candidate: Scorer::new_shared(candidate_rules.clone()),
            candidate_rules,
            baseline,
            options,
            stream: EventStream::new(),
            buf: DecisionBuf::new(),
            baseline_buf: DecisionBuf::new(),
            acc,
            counts: Counts::default(),
            timings: Vec::new(),
            baseline_timings: Vec::new(),
            latency: LatencyHistogram::default(),
            started: Instant::now(),
            lines_total: 0,
            params: None,
        }
    }

    /// Sweeps these params (`--param`): the report gets the figures of every combination of
    /// their values. Call before the first [`Replay::feed`]. Fails when a spec names no rule
    /// of the candidate rule set, or there are too many combinations.
    pub fn sweep_params(&mut self, specs: Vec<ParamSpec>) -> Result<(), Error> {
        if specs.is_empty() {
            self.params = None;
            return Ok(());
        }
        self.params = Some(params::Recorder::new(&self.candidate_rules, specs)?);
        Ok(())
    }

    /// Like [`Replay::new`], the candidate keeping its feature state in `store` (e.g. a shared
    /// Redis store, which may already hold state); the baseline is scored with in-process state
    /// of this replay's events. A store failure stops [`Replay::feed`] with the error.
    pub fn with_store(
        rules: RuleSet,
        baseline: Option<RuleSet>,
        options: ReplayOptions,
        store: crate::Store,
    ) -> Replay {
        let mut replay = Replay::new(rules, baseline, options);
        replay.candidate = Scorer::with_store_shared(replay.candidate_rules.clone(), store);
        replay
    }

    /// Starts from a state snapshot (see [`Scorer::load_state`]) instead of empty state: both
    /// scorers (feature state does not depend on the rules) and the withdrawal ids already seen.
    /// Call before the first [`Replay::feed`].
    pub fn load_state(
        &mut self,
        path: &std::path::Path,
    ) -> Result<crate::SnapshotInfo, crate::Error> {
        let restored = self.candidate.load_state(path)?;
        if let Some((baseline, ..)) = &self.baseline {
            baseline.load_state(path)?;
        }
        self.stream = EventStream::resuming(restored.withdrawal_ids);
        Ok(restored.info)
    }

    /// Saves the candidate scorer's state and the withdrawal ids seen, atomically (see
    /// [`Scorer::save_state_with_stream`]), so that a later replay can continue the stream.
    pub fn save_state(&self, path: &std::path::Path) -> Result<crate::SnapshotInfo, crate::Error> {
        self.candidate.save_state_with_stream(path, &self.stream)
    }

    /// Streams one file (named `name` in the report) through the scorers. Files continue one
    /// stream: state and withdrawal ids carry over. `progress` is called every
    /// [`PROGRESS_EVERY`] lines. Fails only on an I/O error.
    pub fn feed(
        &mut self,
        name: &str,
        reader: impl BufRead,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<(), Error> {
        let first_line = self.stream.line();
        let mut lines = LineReader::new(reader);
        while let Some(line) = lines.next_line() {
            self.line(name, first_line, line)?;
            self.lines_total += 1;
            if self.lines_total % PROGRESS_EVERY == 0 {
                progress(Progress {
                    lines: self.lines_total,
                    withdrawals: self.counts.stats.withdrawals,
                });
            }
        }
        self.counts.stats.files.push(FileStats {
            file: name.to_string(),
            lines: (self.stream.line() - first_line) as u64,
        });
        match lines.io_error() {
            Some(e) => Err(Error::io(
                std::path::Path::new(name),
                format!(
                    "read error after line {}: {e}",
                    self.stream.line() - first_line
                ),
            )),
            None => Ok(()),
        }
    }

    /// One line; `Err` only when the state store failed (the replay cannot go on).
    fn line(
        &mut self,
        name: &str,
        first_line: usize,
        line: Result<&str, String>,
    ) -> Result<(), Error> {
        let typology = match &line {
            Ok(text) => extract_typology(text),
            Err(_) => None,
        };
        let count_from = self.options.count_from;
        let warm = move |ts: Timestamp| count_from.is_some_and(|from| ts < from);
        let timing = self.options.timing;
        let timings = &mut self.timings;
        let latency = &mut self.latency;
        let sweep = self.params.as_ref().map(|p| (p, &*self.candidate_rules));
        let mut swept_tx: Option<(u64, Option<crate::Tx>)> = None;
        let buf = &mut self.buf;
        let processed = self
            .stream
            .process_into(&self.candidate, line, |scorer, w| {
                if let Some((recorder, rules)) = sweep {
                    let applies = recorder.applies(rules, w);
                    swept_tx = Some((applies, (applies != 0).then(|| scorer.tx(w))));
                }
                if timing && !warm(w.ts) {
                    let started = Instant::now();
                    let d = scorer.score_into_timed(w, buf, Some(timings));
                    latency.record(started.elapsed());
                    d
                } else {
                    timings.clear();
                    scorer.score_into(w, buf)
                }
            });
        match processed {
            Ok(InPlace::Blank) => {}
            Ok(InPlace::Observed(event)) if warm(event.ts()) => {
                if let Some((scorer, ..)) = &self.baseline {
                    scorer.observe(&event);
                }
            }
            Ok(InPlace::Scored(w, _)) if warm(w.ts) => {
                if let Some((scorer, ..)) = &self.baseline {
                    scorer.observe_withdrawal(w);
                }
            }
            Ok(InPlace::Observed(event)) => {
                self.counts.event(event.ts(), event.user_id());
                if let Some((scorer, ..)) = &self.baseline {
                    scorer.observe(&event);
                }
            }
            Ok(InPlace::Scored(w, decision)) => {
                if let Some(typology) = typology {
                    self.counts.typology(typology, w.label, decision.tier());
                }
                self.counts.event(w.ts, &w.user_id);
                self.counts.withdrawal(w);
                self.acc.record(w, &decision, &self.timings);
                if let Some(effect) = &mut self.effect {
                    effect.record_decision_ref(&decision, w.status, w.label);
                }
                if let (Some(recorder), Some((applies, tx))) = (&mut self.params, swept_tx) {
                    recorder.record(&self.candidate_rules, w, applies, tx.as_ref(), &decision);
                }
                if let Some((scorer, _, acc, diff)) = &mut self.baseline {
                    let base = if timing {
                        scorer.score_into_timed(
                            w,
                            &mut self.baseline_buf,
                            Some(&mut self.baseline_timings),
                        )
                    } else {
                        scorer.score_into(w, &mut self.baseline_buf)
                    };
                    scorer.observe_withdrawal(w);
                    acc.record(w, &base, &self.baseline_timings);
                    diff.record(w, &base, &decision);
                }
            }
            Err(e) if matches!(e.kind(), ErrorKind::Store { .. }) => return Err(e),
            Err(e) => {
                self.counts.stats.invalid += 1;
                if self.counts.stats.invalid_lines.len() < INVALID_SHOWN {
                    let (line, message) = match e.kind() {
                        ErrorKind::InvalidEvent { line, message } => (*line, message.clone()),
                        _ => (self.stream.line(), e.to_string()),
                    };
                    self.counts.stats.invalid_lines.push(InvalidLine {
                        file: name.to_string(),
                        line: (line - first_line) as u64,
                        error: message,
                    });
                }
            }
        }
        Ok(())
    }

    /// The report.
    pub fn finish(self) -> Report {
        self.finish_with_progress(&mut |_, _| {})
    }

    /// The report; `progress(done, total)` is called after each combination of a `--param`
    /// sweep.
    pub fn finish_with_progress(self, progress: &mut dyn FnMut(usize, usize)) -> Report {
        let elapsed = self.started.elapsed();
        let rules = &self.candidate_rules;
        let mut stats = self.counts.stats;
        stats.users = self.counts.users.len() as u64;
        stats.first_ts = self.counts.first_ts.map(|t| t.to_string());
        stats.last_ts = self.counts.last_ts.map(|t| t.to_string());
        stats.scam_usd = metrics::dollars(self.counts.scam_usd);
        stats.legit_usd = metrics::dollars(self.counts.legit_usd);
        let policy = self.acc.thresholds();
        let levels = self.acc.levels();
        let param_sweep = self.params.as_ref().map(|p| p.report(rules, progress));
        let optimum = self.options.max_friction.map(|budget| {
            let cool = self.options.max_cool_off_friction.unwrap_or(budget / 10.0);
            sweep::optimize(&self.acc.hist, policy, budget, cool)
        });
        let baseline = self.baseline.map(|(_, b_rules, b_acc, diff)| {
            diff.finish(
                b_rules.id().to_string(),
                b_acc.tier_rows(),
                b_acc.levels(),
                &levels,
            )
        });
        let timing = self.options.timing.then(|| {
            let seconds = elapsed.as_secs_f64();
            Timing {
                p50_us: self.latency.quantile(0.50),
                p99_us: self.latency.quantile(0.99),
                max_us: self.latency.max_us(),
                seconds,
                withdrawals_per_second: if seconds > 0.0 {
                    stats.withdrawals as f64 / seconds
                } else {
                    0.0
                },
                rules: rules
                    .rules()
                    .iter()
                    .zip(self.acc.rule_times())
                    .map(|(r, mean_us)| RuleTime {
                        rule: r.id.to_string(),
                        mean_us,
                    })
                    .collect(),
            }
        });
        Report {
            ruleset: RulesetInfo {
                id: rules.id().to_string(),
                thresholds: ThresholdsInfo {
                    notice: policy.notice,
                    warn: policy.warn,
                    cool_off: policy.cool_off,
                },
                packs: rules
                    .packs()
                    .iter()
                    .enumerate()
                    .map(|(i, p)| PackRow {
                        id: p.id.clone(),
                        version: p.version.clone(),
                        mode: if p.shadow { "shadow" } else { "live" },
                        max_score: p.max_score,
                        rules: rules.rules().iter().filter(|r| r.pack == i).count(),
                    })
                    .collect(),
            },
            stream: stats,
            tiers: self.acc.tier_rows(),
            levels,
            scam_without_hits: self.acc.scam_without_hits,
            rules: self.acc.rule_rows(rules),
            sweep: sweep::sweep(&self.acc.hist, policy),
            typologies: self
                .counts
                .typologies
                .into_iter()
                .map(|((typology, label), (withdrawals, tiers))| {
                    let [_, notice, warn, cool_off] = tiers;
                    let warn_or_more = warn + cool_off;
                    TypologyRow {
                        typology,
                        label,
                        withdrawals,
                        notice: notice + warn_or_more,
                        warn: warn_or_more,
                        cool_off,
                        warn_share: (withdrawals > 0)
                            .then(|| warn_or_more as f64 / withdrawals as f64),
                    }
                })
                .collect(),
            effect: self.effect.map(|e| {
                e.finish(
                    rules.id(),
                    rules.policy().holdout.as_ref().map(HoldoutInfo::from),
                )
            }),
            optimum,
            baseline,
            param_sweep,
            timing,
        }
    }
}

impl Report {
    /// The report as pretty JSON (what `--json` prints).
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self)
            .unwrap_or_else(|e| format!("{{\"error\":\"cannot serialize report: {e}\"}}"))
    }

    /// The labeled figures at `level`, when present.
    pub fn level(&self, level: Tier) -> Option<&LevelMetrics> {
        self.levels.iter().find(|l| l.level == level)
    }
}

/// The value of a `"typology": "..."` field in a raw line, without parsing the JSON again
/// (None when absent or escaped).
fn extract_typology(line: &str) -> Option<&str> {
    let at = line.find("\"typology\"")?;
    let rest = line.get(at + 10..)?.trim_start();
    let rest = rest.strip_prefix(':')?.trim_start();
    let rest = rest.strip_prefix('"')?;
    let end = rest.find('"')?;
    let value = rest.get(..end)?;
    (!value.contains('\\') && !value.is_empty()).then_some(value)
}

/// Log-linear latency histogram: exact below 64 ns, then 32 buckets per power of two (so a
/// quantile is within about 3%); fixed size.
struct LatencyHistogram {
    buckets: Vec<u64>,
    count: u64,
    max_ns: u64,
}

impl Default for LatencyHistogram {
    fn default() -> LatencyHistogram {
        LatencyHistogram {
            buckets: vec![0; 64 + 58 * 32],
            count: 0,
            max_ns: 0,
        }
    }
}

impl LatencyHistogram {
    fn bucket(ns: u64) -> usize {
        if ns < 64 {
            return ns as usize;
        }
        let exp = 63 - ns.leading_zeros() as usize; // >= 6
        let mantissa = ((ns >> (exp - 5)) & 31) as usize;
        64 + (exp - 6) * 32 + mantissa
    }

    /// The middle of a bucket, in ns.
    fn value(bucket: usize) -> f64 {
        if bucket < 64 {
            return bucket as f64;
        }
        let exp = (bucket - 64) / 32 + 6;
        let mantissa = (bucket - 64) % 32;
        let low = ((32 + mantissa) as u64) << (exp - 5);
        low as f64 + ((1_u64 << (exp - 5)) as f64) / 2.0
    }

    fn record(&mut self, d: Duration) {
        let ns = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        if let Some(b) = self.buckets.get_mut(Self::bucket(ns)) {
            *b += 1;
        }
        self.count += 1;
        self.max_ns = self.max_ns.max(ns);
    }

    fn quantile(&self, q: f64) -> f64 {
        if self.count == 0 {
            return 0.0;
        }
        let rank = ((q * self.count as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, &n) in self.buckets.iter().enumerate() {
            seen += n;
            if seen >= rank {
                return (Self::value(i).min(self.max_ns as f64) / 1000.0 * 100.0).round() / 100.0;
            }
        }
        self.max_us()
    }

    fn max_us(&self) -> f64 {
        (self.max_ns as f64 / 1000.0 * 100.0).round() / 100.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typology_is_read_from_the_raw_line() {
        assert_eq!(
            extract_typology(r#"{"kind":"withdrawal","typology":"romance"}"#),
            Some("romance")
        );
        assert_eq!(
            extract_typology(r#"{"typology" : "mule-victim" }"#),
            Some("mule-victim")
        );
        assert_eq!(extract_typology(r#"{"typology":"a\"b"}"#), None);
        assert_eq!(extract_typology(r#"{"typology":""}"#), None);
        assert_eq!(extract_typology(r#"{"kind":"login"}"#), None);
    }

    #[test]
    fn latency_buckets_round_trip_within_three_percent() {
        for ns in [
            0_u64,
            1,
            63,
            64,
            65,
            100,
            1_000,
            12_345,
            999_999,
            5_000_000_000,
        ] {
            let v = LatencyHistogram::value(LatencyHistogram::bucket(ns));
            assert!(
                (v - ns as f64).abs() <= ns as f64 * 0.03 + 0.5,
                "{ns} -> {v}"
            );
        }
    }
}
