//! `riskgate tune`: searches the given param values and the tier thresholds for the most scam
//! withdrawals at `warn` or above within friction budgets, on one half of the users, and
//! reports the other half too, so that over-fitting shows.
//!
//! Users are split by the first byte of the SHA-256 of their id ([`super::user_half`]): even
//! is the tuning half, odd the checking half. The stream is replayed once (features computed
//! once, over all users, as in production); then for every combination of param values only
//! the swept rules run again (see [`super::ParamSweepReport`]), and the threshold optimizer of
//! `replay --max-friction` picks warn and cool_off on the tuning half's outcomes. The best
//! combination has the most scam withdrawals at >= warn on the tuning half; ties go to fewer
//! legit withdrawals flagged, then to the first combination in the order of the values given.
//!
//! The output is a function of the rules, the arguments and the input bytes alone.

use std::fmt::Write as _;
use std::io::BufRead;

use serde::Serialize;

use super::metrics::{label_totals, level_metrics, Histogram, LevelMetrics};
use super::params::{describe, ParamSetting, ParamSpec, Recorder};
use super::render_text::thousands;
use super::sweep::optimize;
use super::{Progress, Replay, ReplayOptions};
use crate::decision::Tier;
use crate::error::Error;
use crate::rules::{RuleSet, Thresholds};

/// The budgets.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TuneOptions {
    /// Most legit (honest) withdrawals at >= warn, as a fraction (0 to 1).
    pub max_friction: f64,
    /// Most legit withdrawals at cool_off, as a fraction; a tenth of `max_friction` when not
    /// given.
    pub max_cool_off_friction: Option<f64>,
}

/// Withdrawals of one half of the users.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct HalfStats {
    /// Withdrawals scored.
    pub withdrawals: u64,
    /// Labeled scam.
    pub scam: u64,
    /// Labeled legit.
    pub legit: u64,
}

/// Figures of one half with the chosen params and thresholds.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct HalfFigures {
    /// At >= warn.
    pub at_warn: LevelMetrics,
    /// At cool_off.
    pub at_cool_off: LevelMetrics,
}

/// What the optimizer found for one combination on the tuning half.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TuneCandidate {
    /// The param values.
    pub params: Vec<ParamSetting>,
    /// The warn threshold; null when no threshold fits the budgets.
    pub warn: Option<i64>,
    /// The cool_off threshold; null when none fits.
    pub cool_off: Option<i64>,
    /// Figures at >= warn on the tuning half with them.
    pub at_warn: Option<LevelMetrics>,
}

/// The suggestion.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TuneChoice {
    /// The param values (as overrides for `policy.toml`).
    pub params: Vec<ParamSetting>,
    /// The tier thresholds.
    pub notice: i64,
    /// Least score for warn.
    pub warn: i64,
    /// Least score for cool_off.
    pub cool_off: i64,
    /// On the tuning half (what was optimized).
    pub tuning: HalfFigures,
    /// On the checking half (never seen by the search).
    pub checking: HalfFigures,
}

/// The result of a tune.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TuneReport {
    /// The rule set's id.
    pub ruleset: String,
    /// Its thresholds.
    pub policy_tiers: [i64; 3],
    /// Budget at >= warn (a fraction).
    pub max_friction: f64,
    /// Budget at cool_off (a fraction).
    pub max_cool_off_friction: f64,
    /// The params searched.
    pub params: Vec<ParamSpec>,
    /// Lines read.
    pub lines: u64,
    /// Invalid lines (skipped).
    pub invalid: u64,
    /// Tuning half, checking half.
    pub halves: [HalfStats; 2],
    /// Every combination, in order.
    pub candidates: Vec<TuneCandidate>,
    /// The best, when any combination fits the budgets.
    pub best: Option<TuneChoice>,
}

/// A tune in progress: feed it files in order, then [`Tune::finish`].
pub struct Tune {
    replay: Replay,
    options: TuneOptions,
}

impl Tune {
    /// A tune of `rules` over the values of `specs` (none: thresholds only).
    pub fn new(rules: RuleSet, specs: Vec<ParamSpec>, options: TuneOptions) -> Result<Tune, Error> {
        let recorder = Recorder::new(&rules, specs)?;
        let mut replay = Replay::new(
            rules,
            None,
            ReplayOptions {
                timing: false,
                examples: 0,
                ..ReplayOptions::default()
            },
        );
        replay.params = Some(recorder);
        Ok(Tune { replay, options })
    }

    /// Streams one file (see [`Replay::feed`]).
    pub fn feed(
        &mut self,
        name: &str,
        reader: impl BufRead,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<(), Error> {
        self.replay.feed(name, reader, progress)
    }

    /// The search; `progress(done, total)` after each combination.
    pub fn finish(self, progress: &mut dyn FnMut(usize, usize)) -> TuneReport {
        let Tune { replay, options } = self;
        let rules = &replay.candidate_rules;
        let policy = rules.policy().thresholds;
        let max_friction = options.max_friction;
        let max_cool = options.max_cool_off_friction.unwrap_or(max_friction / 10.0);
        let mut report = TuneReport {
            ruleset: rules.id().to_string(),
            policy_tiers: [policy.notice, policy.warn, policy.cool_off],
            max_friction,
            max_cool_off_friction: max_cool,
            params: Vec::new(),
            lines: replay.lines_total,
            invalid: replay.counts.stats.invalid,
            halves: Default::default(),
            candidates: Vec::new(),
            best: None,
        };
        let Some(recorder) = replay.params.as_ref() else {
            return report;
        };
        report.params = recorder.specs.clone();
        let combos = recorder.combinations();
        let total = combos.len();
        let mut best: Option<Best> = None;
        for (n, combo) in combos.iter().enumerate() {
            let hists = recorder.histograms(rules, combo);
            if n == 0 {
                report.halves = [half_stats(&hists[0]), half_stats(&hists[1])];
            }
            let opt = optimize(&hists[0], policy, max_friction, max_cool);
            let fits = match (opt.notice, opt.warn, opt.cool_off, &opt.at_warn) {
                (Some(notice), Some(warn), Some(cool_off), Some(at_warn)) => Some((
                    (
                        at_warn.scam_flagged,
                        std::cmp::Reverse(at_warn.legit_flagged),
                    ),
                    Thresholds {
                        notice,
                        warn,
                        cool_off,
                    },
                )),
                _ => None,
            };
            report.candidates.push(TuneCandidate {
                params: combo.clone(),
                warn: opt.warn,
                cool_off: opt.cool_off,
                at_warn: opt.at_warn.clone(),
            });
            if let Some((key, thresholds)) = fits {
                if best.as_ref().is_none_or(|(k, ..)| key > *k) {
                    best = Some((key, thresholds, hists, n));
                }
            }
            progress(n + 1, total);
        }
        report.best = best.and_then(|(_, t, [tuning, checking], n)| {
            Some(TuneChoice {
                params: combos.get(n)?.clone(),
                notice: t.notice,
                warn: t.warn,
                cool_off: t.cool_off,
                tuning: figures(&tuning, &t),
                checking: figures(&checking, &t),
            })
        });
        report
    }
}

/// The best so far: rank key (scam flagged, fewer legit flagged), thresholds, both halves'
/// histograms, combination index.
type Best = (
    (u64, std::cmp::Reverse<u64>),
    Thresholds,
    [Histogram; 2],
    usize,
);

fn half_stats(hist: &Histogram) -> HalfStats {
    let totals = label_totals(hist);
    HalfStats {
        withdrawals: hist.values().map(|t| t.count).sum(),
        scam: totals.scam.count,
        legit: totals.legit.count,
    }
}

fn figures(hist: &Histogram, thresholds: &Thresholds) -> HalfFigures {
    let totals = label_totals(hist);
    HalfFigures {
        at_warn: level_metrics(hist, totals, thresholds, Tier::Warn),
        at_cool_off: level_metrics(hist, totals, thresholds, Tier::CoolOff),
    }
}

/// A fraction as a percentage with two decimals.
fn pct2(x: Option<f64>) -> String {
    x.map_or_else(|| "-".to_string(), |x| format!("{:.2}%", x * 100.0))
}

impl TuneReport {
    /// The suggested `policy.toml` overrides and `[tiers]`, as TOML (empty when nothing fits).
    pub fn suggested_toml(&self) -> String {
        let Some(best) = &self.best else {
            return String::new();
        };
        let mut out = String::new();
        let mut rules: Vec<&str> = Vec::new();
        for s in &best.params {
            if !rules.contains(&s.rule.as_str()) {
                rules.push(&s.rule);
            }
        }
        for rule in rules {
            let _ = writeln!(out, "[params.\"{rule}\"]");
            for s in best.params.iter().filter(|s| s.rule == rule) {
                let _ = writeln!(out, "{} = {}", s.name, s.value);
            }
            out.push('\n');
        }
        let _ = writeln!(
            out,
            "[tiers]\nnotice = {}\nwarn = {}\ncool_off = {}",
            best.notice, best.warn, best.cool_off
        );
        out
    }

    /// The terminal summary, ending with the suggested TOML.
    pub fn render_text(&self) -> String {
        let mut o = String::new();
        let [n, w, c] = self.policy_tiers;
        let _ = writeln!(
            o,
            "riskgate tune  rule set {}  (policy tiers: notice {n}, warn {w}, cool_off {c})",
            self.ruleset
        );
        let _ = writeln!(
            o,
            "budgets: friction <= {} of legit withdrawals at >= warn, <= {} at cool_off",
            pct2(Some(self.max_friction)),
            pct2(Some(self.max_cool_off_friction))
        );
        let _ = writeln!(
            o,
            "{} line(s), {} invalid; users split by SHA-256(user_id), first byte even = tuning half",
            thousands(self.lines),
            thousands(self.invalid)
        );
        for (name, h) in ["tuning half", "checking half"].iter().zip(&self.halves) {
            let _ = writeln!(
                o,
                "  {name:<14} {} withdrawals ({} scam, {} legit)",
                thousands(h.withdrawals),
                thousands(h.scam),
                thousands(h.legit)
            );
        }
        let _ = writeln!(
            o,
            "\nCOMBINATIONS  ({} searched; the best warn and cool_off of each on the tuning half)",
            self.candidates.len()
        );
        let best_params = self.best.as_ref().map(|b| &b.params);
        for cand in &self.candidates {
            let what = if cand.params.is_empty() {
                "(the rules' own params)".to_string()
            } else {
                describe(&cand.params)
            };
            let mark = if Some(&cand.params) == best_params {
                "  <- best"
            } else {
                ""
            };
            match (cand.warn, cand.cool_off, &cand.at_warn) {
                (Some(warn), Some(cool), Some(m)) => {
                    let _ = writeln!(
                        o,
                        "  {what}\n      warn {warn}, cool_off {cool}: recall {}, friction {}{mark}",
                        pct2(m.recall),
                        pct2(m.friction)
                    );
                }
                _ => {
                    let _ = writeln!(o, "  {what}\n      no thresholds within the budgets");
                }
            }
        }
        match &self.best {
            None => {
                let _ = writeln!(
                    o,
                    "\nNo combination fits the budgets on the tuning half (the rules' min_tier and on_rule_error floors alone flag too many legit withdrawals, or nothing is labeled)."
                );
            }
            Some(best) => {
                let _ = writeln!(
                    o,
                    "\nBEST  thresholds: notice {}, warn {}, cool_off {}",
                    best.notice, best.warn, best.cool_off
                );
                let _ = writeln!(
                    o,
                    "  {:<14} {:<9} {:>8} {:>11} {:>10} {:>9} {:>12} {:>14}",
                    "users",
                    "level",
                    "recall",
                    "USD recall",
                    "precision",
                    "friction",
                    "scam caught",
                    "legit flagged"
                );
                for (name, f) in [
                    ("tuning half", &best.tuning),
                    ("checking half", &best.checking),
                ] {
                    for m in [&f.at_warn, &f.at_cool_off] {
                        let _ = writeln!(
                            o,
                            "  {:<14} {:<9} {:>8} {:>11} {:>10} {:>9} {:>12} {:>14}",
                            if m.level == Tier::Warn { name } else { "" },
                            m.level.name(),
                            pct2(m.recall),
                            pct2(m.usd_recall),
                            pct2(m.precision),
                            pct2(m.friction),
                            thousands(m.scam_flagged),
                            thousands(m.legit_flagged)
                        );
                    }
                }
                let _ = writeln!(o, "\nSUGGESTED policy.toml\n{}", self.suggested_toml());
            }
        }
        o
    }

    /// The report as pretty JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self)
            .unwrap_or_else(|e| format!("{{\"error\":\"cannot serialize report: {e}\"}}"))
    }
}
