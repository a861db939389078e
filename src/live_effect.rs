//! `riskgate effect`: the warning effect measured live, from the hash-chained decision log that
//! `riskgate score --log` (or the service) writes, joined by withdrawal id to the events that
//! tell how each withdrawal ended.
//!
//! The log is verified as it is read (the same checks as [`crate::verify_log`]); a broken chain
//! is refused, not measured. An outcome is a valid withdrawal event in the event files: its
//! `status` (`completed` when absent, as the contract says) and its `label` when it has one.
//! Decisions without an outcome and outcomes without a decision are counted and named (a few
//! ids each), never guessed. When a withdrawal id was decided more than once (the service may
//! score a withdrawal again before it is recorded), the last decision counts; when it has more
//! than one outcome event, the first counts. Both are reported.
//!
//! ```no_run
//! let report = riskgate::live_effect::measure(
//!     std::path::Path::new("decisions.log"),
//!     &[std::path::PathBuf::from("outcomes.jsonl")],
//! )?;
//! println!("{}", riskgate::live_effect::render_text(&report));
//! # Ok::<(), riskgate::Error>(())
//! ```

use std::collections::HashMap;
use std::fmt::Write;
use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::audit::{chain_hash, seq_of, split_line, GENESIS_HASH};
use crate::decision::Tier;
use crate::error::Error;
use crate::event::{Event, Label, Status};
use crate::replay::{render_effect_text, EffectAcc, EffectReport};
use crate::stream::LineReader;

/// How many ids each list of unmatched or repeated withdrawals names (all are counted).
pub const IDS_SHOWN: usize = 5;

/// A count with the first few ids.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Unmatched {
    /// How many.
    pub count: u64,
    /// The first [`IDS_SHOWN`] of them.
    pub ids: Vec<String>,
}

impl Unmatched {
    fn add(&mut self, id: &str) {
        self.count += 1;
        if self.ids.len() < IDS_SHOWN {
            self.ids.push(id.to_string());
        }
    }
}

/// An event line that could not be used.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct BadLine {
    /// The file.
    pub file: String,
    /// 1-based line.
    pub line: u64,
    /// What is wrong.
    pub error: String,
}

/// The live measurement.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LiveEffect {
    /// The decision log read.
    pub log: String,
    /// Its lines, all verified.
    pub log_lines: u64,
    /// Decision lines in it.
    pub decisions: u64,
    /// Withdrawal events read from the event files.
    pub outcomes: u64,
    /// Decisions joined to an outcome (what the figures count).
    pub matched: u64,
    /// One report per rule set that decided, in the order they first appear in the log.
    pub rulesets: Vec<EffectReport>,
    /// Decisions (the last one per id) with no outcome event: left out.
    pub without_outcome: Unmatched,
    /// Outcome events whose withdrawal has no decision in the log: left out.
    pub without_decision: Unmatched,
    /// Withdrawal ids decided more than once (the last decision counts).
    pub decided_again: Unmatched,
    /// Withdrawal ids with more than one outcome event (the first counts).
    pub outcome_again: Unmatched,
    /// Event lines that are not valid events (blank lines are skipped).
    pub invalid_events: u64,
    /// The first few of them.
    pub invalid_lines: Vec<BadLine>,
}

#[derive(Deserialize)]
struct LogLine {
    kind: String,
    #[serde(default)]
    decision: Option<LoggedDecision>,
}

#[derive(Deserialize)]
struct LoggedDecision {
    id: String,
    tier: Tier,
    #[serde(default)]
    holdout: bool,
    #[serde(default)]
    warning: Option<KeyLocale>,
    #[serde(default)]
    withheld: Option<KeyLocale>,
    ruleset: String,
}

#[derive(Deserialize, PartialEq, Eq, Hash, Clone)]
struct KeyLocale {
    key: String,
    locale: String,
}

/// A decision kept for the join: indexes into interned rule sets and warnings.
struct Kept {
    ruleset: usize,
    tier: Tier,
    warning: Option<usize>,
    holdout: bool,
}

/// Reads and verifies `log`, reads the event files in order, joins them and measures.
/// Errors on an unreadable file and on a log whose chain is broken.
pub fn measure(log: &Path, events: &[PathBuf]) -> Result<LiveEffect, Error> {
    let mut rulesets: Vec<String> = Vec::new();
    let mut warnings: Vec<KeyLocale> = Vec::new();
    let mut warning_index: HashMap<KeyLocale, usize> = HashMap::new();
    let mut decisions: HashMap<String, Kept> = HashMap::new();
    let mut order: Vec<String> = Vec::new();
    let mut decided_again = Unmatched::default();
    let mut decision_lines = 0_u64;

    let file = File::open(log).map_err(|e| Error::io(log, e))?;
    let mut lines = LineReader::new(BufReader::with_capacity(1 << 16, file));
    let mut prev = GENESIS_HASH.to_string();
    let mut line_no = 0_u64;
    let broken = |line: u64, why: &str| {
        Error::corrupt(
            log,
            format!("the decision log's chain breaks at line {line}: {why}; nothing was measured (check it with `riskgate verify-log`)"),
        )
    };
    while let Some(line) = lines.next_line() {
        line_no += 1;
        let text = line.map_err(|e| broken(line_no, &e))?;
        let (body, hash) = split_line(text).ok_or_else(|| {
            broken(
                line_no,
                "not a chained log line (no trailing \"hash\" field)",
            )
        })?;
        if seq_of(body) != Some(line_no) {
            return Err(broken(
                line_no,
                "wrong sequence number: a line was removed, inserted or reordered",
            ));
        }
        if chain_hash(&prev, body.as_bytes()) != hash {
            return Err(broken(line_no, "hash does not match: a line was edited"));
        }
        prev = hash.to_string();
        let parsed: LogLine = serde_json::from_str(&format!("{body}}}"))
            .map_err(|e| broken(line_no, &format!("not a log line: {e}")))?;
        if parsed.kind != "decision" {
            continue;
        }
        let Some(d) = parsed.decision else {
            return Err(broken(line_no, "a decision line without its decision"));
        };
        decision_lines += 1;
        let ruleset = match rulesets.iter().position(|r| *r == d.ruleset) {
            Some(i) => i,
            None => {
                rulesets.push(d.ruleset.clone());
                rulesets.len() - 1
            }
        };
        let shown = d.warning.or(d.withheld);
        let warning = shown.map(|w| match warning_index.get(&w) {
            Some(&i) => i,
            None => {
                warnings.push(w.clone());
                warning_index.insert(w, warnings.len() - 1);
                warnings.len() - 1
            }
        });
        let kept = Kept {
            ruleset,
            tier: d.tier,
            warning,
            holdout: d.holdout,
        };
        if decisions.insert(d.id.clone(), kept).is_some() {
            decided_again.add(&d.id);
        } else {
            order.push(d.id);
        }
    }
    if let Some(e) = lines.io_error() {
        return Err(Error::io(
            log,
            format!("read error after line {line_no}: {e}"),
        ));
    }
    // A log cut short mid-line: the reader above yields the partial line, whose hash suffix is
    // then missing, so it was refused already.

    let mut outcomes: HashMap<String, (Status, Option<Label>)> = HashMap::new();
    let mut outcome_order: Vec<String> = Vec::new();
    let mut outcome_again = Unmatched::default();
    let mut invalid_events = 0_u64;
    let mut invalid_lines = Vec::new();
    let mut withdrawal_events = 0_u64;
    for path in events {
        let name = path.display().to_string();
        let file = File::open(path).map_err(|e| Error::io(path, e))?;
        let mut lines = LineReader::new(BufReader::with_capacity(1 << 16, file));
        let mut n = 0_u64;
        while let Some(line) = lines.next_line() {
            n += 1;
            let event = match line {
                Ok(text) if text.trim().is_empty() => continue,
                Ok(text) => Event::parse_line(text),
                Err(e) => Err(e),
            };
            match event {
                Ok(Event::Withdrawal(w)) => {
                    withdrawal_events += 1;
                    if outcomes.contains_key(&w.id) {
                        outcome_again.add(&w.id);
                    } else {
                        outcomes.insert(w.id.clone(), (w.status, w.label));
                        outcome_order.push(w.id);
                    }
                }
                Ok(_) => {}
                Err(error) => {
                    invalid_events += 1;
                    if invalid_lines.len() < IDS_SHOWN {
                        invalid_lines.push(BadLine {
                            file: name.clone(),
                            line: n,
                            error,
                        });
                    }
                }
            }
        }
        if let Some(e) = lines.io_error() {
            return Err(Error::io(path, format!("read error after line {n}: {e}")));
        }
    }

    let mut accs: Vec<EffectAcc> = rulesets.iter().map(|_| EffectAcc::new()).collect();
    let mut without_outcome = Unmatched::default();
    let mut matched = 0_u64;
    for id in &order {
        let Some(kept) = decisions.get(id) else {
            continue;
        };
        let Some(&(status, label)) = outcomes.get(id) else {
            without_outcome.add(id);
            continue;
        };
        matched += 1;
        let warning = kept.warning.and_then(|i| warnings.get(i));
        if let Some(acc) = accs.get_mut(kept.ruleset) {
            acc.record(
                kept.tier,
                warning.map_or(crate::replay::UNKNOWN_WARNING, |w| w.key.as_str()),
                warning.map_or("", |w| w.locale.as_str()),
                kept.holdout,
                status == Status::Cancelled,
                label,
            );
        }
    }
    let mut without_decision = Unmatched::default();
    for id in &outcome_order {
        if !decisions.contains_key(id) {
            without_decision.add(id);
        }
    }
    Ok(LiveEffect {
        log: log.display().to_string(),
        log_lines: line_no,
        decisions: decision_lines,
        outcomes: withdrawal_events,
        matched,
        rulesets: rulesets
            .iter()
            .zip(accs)
            .map(|(id, acc)| {
                let mut report = acc.finish(id, None);
                report.note = format!(
                    "Measured on the decisions rule set {id} made live (from the decision log), \
                     joined to how each withdrawal ended."
                );
                report
            })
            .collect(),
        without_outcome,
        without_decision,
        decided_again,
        outcome_again,
        invalid_events,
        invalid_lines,
    })
}

fn ids(u: &Unmatched) -> String {
    if u.ids.is_empty() {
        String::new()
    } else {
        let more = if u.count > u.ids.len() as u64 {
            ", ..."
        } else {
            ""
        };
        format!(" ({}{more})", u.ids.join(", "))
    }
}

/// The terminal report.
pub fn render_text(r: &LiveEffect) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "riskgate effect  log {} ({} line(s), chain intact, {} decision(s))",
        r.log, r.log_lines, r.decisions
    );
    let _ = writeln!(
        o,
        "  {} withdrawal event(s) read as outcomes; {} decision(s) joined to one",
        r.outcomes, r.matched
    );
    let _ = writeln!(
        o,
        "  decisions without an outcome (left out): {}{}",
        r.without_outcome.count,
        ids(&r.without_outcome)
    );
    let _ = writeln!(
        o,
        "  outcomes without a decision (left out): {}{}",
        r.without_decision.count,
        ids(&r.without_decision)
    );
    if r.decided_again.count > 0 {
        let _ = writeln!(
            o,
            "  withdrawals decided more than once (the last decision counts): {}{}",
            r.decided_again.count,
            ids(&r.decided_again)
        );
    }
    if r.outcome_again.count > 0 {
        let _ = writeln!(
            o,
            "  withdrawals with more than one outcome event (the first counts): {}{}",
            r.outcome_again.count,
            ids(&r.outcome_again)
        );
    }
    if r.invalid_events > 0 {
        let _ = writeln!(o, "  INVALID EVENT LINES: {} (left out)", r.invalid_events);
        for l in &r.invalid_lines {
            let _ = writeln!(o, "    {}:{}: {}", l.file, l.line, l.error);
        }
    }
    if r.rulesets.is_empty() {
        let _ = writeln!(o, "\n  no decision in the log");
    }
    for e in &r.rulesets {
        o.push_str(&render_effect_text(e));
    }
    o
}

impl LiveEffect {
    /// The report as pretty JSON (what `--json` prints).
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self)
            .unwrap_or_else(|e| format!("{{\"error\":\"cannot serialize report: {e}\"}}"))
    }
}
