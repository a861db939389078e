//! Figures over recorded decisions: tiers, labeled metrics per level, per-rule outcomes.
//!
//! Everything here is an aggregate of fixed size (or bounded by the number of distinct scores),
//! so memory does not grow with the stream. Amounts are summed in exact fixed point (micro-USD,
//! `i128`), so that sums do not depend on the order in which they are added.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use serde::Serialize;

use crate::decision::{DecisionRef, Tier};
use crate::event::{Label, Withdrawal};
use crate::rules::{RuleSet, Thresholds};

/// A withdrawal's amount in micro-USD (rounded to the micro-dollar).
pub(crate) fn micros(amount_usd: f64) -> i128 {
    let m = (amount_usd * 1e6).round();
    if m.is_finite() {
        m as i128
    } else {
        0
    }
}

/// Micro-USD back to dollars, for reports.
pub(crate) fn dollars(micros: i128) -> f64 {
    micros as f64 / 1e6
}

fn ratio(num: u64, den: u64) -> Option<f64> {
    (den > 0).then(|| num as f64 / den as f64)
}

fn ratio_usd(num: i128, den: i128) -> Option<f64> {
    (den > 0).then(|| num as f64 / den as f64)
}

/// A count and the USD it carries.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Tally {
    pub(crate) count: u64,
    pub(crate) usd: i128,
}

impl Tally {
    pub(crate) fn add(&mut self, usd: i128) {
        self.count += 1;
        self.usd = self.usd.saturating_add(usd);
    }

    fn merge(&mut self, other: Tally) {
        self.count += other.count;
        self.usd = self.usd.saturating_add(other.usd);
    }
}

/// Ground truth of a withdrawal, as a histogram key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Truth {
    Unlabeled,
    Legit,
    Scam,
}

impl Truth {
    pub(crate) fn of(label: Option<Label>) -> Truth {
        match label {
            None => Truth::Unlabeled,
            Some(Label::Legit) => Truth::Legit,
            Some(Label::Scam) => Truth::Scam,
        }
    }
}

/// The exact outcome histogram the sweep works on: withdrawals (and USD) by
/// `(score, floor, truth)`. A decision's tier under any thresholds is
/// `max(thresholds.tier(score), floor)`, so this is all a re-tiering needs.
pub(crate) type Histogram = BTreeMap<(i64, Tier, Truth), Tally>;

/// One tier's share of the stream.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TierRow {
    /// The tier.
    pub tier: Tier,
    /// Withdrawals decided at this tier.
    pub count: u64,
    /// Their share of all withdrawals (null when there are none).
    pub share: Option<f64>,
    /// Their summed `amount_usd`.
    pub usd: f64,
    /// Their share of all USD.
    pub usd_share: Option<f64>,
}

/// Labeled figures at one level: withdrawals at tier >= `level`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LevelMetrics {
    /// The level L.
    pub level: Tier,
    /// Scam withdrawals at >= L.
    pub scam_flagged: u64,
    /// Legit withdrawals at >= L.
    pub legit_flagged: u64,
    /// Scam at >= L / scam withdrawals.
    pub recall: Option<f64>,
    /// Scam USD at >= L / scam USD.
    pub usd_recall: Option<f64>,
    /// Scam at >= L / labeled at >= L.
    pub precision: Option<f64>,
    /// Legit at >= L / legit withdrawals.
    pub friction: Option<f64>,
}

/// Totals of the labeled withdrawals.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(crate) struct LabelTotals {
    pub(crate) scam: Tally,
    pub(crate) legit: Tally,
}

pub(crate) fn label_totals(hist: &Histogram) -> LabelTotals {
    let mut totals = LabelTotals::default();
    for (&(_, _, truth), tally) in hist {
        match truth {
            Truth::Scam => totals.scam.merge(*tally),
            Truth::Legit => totals.legit.merge(*tally),
            Truth::Unlabeled => {}
        }
    }
    totals
}

/// The labeled figures at `level` when tiers come from `thresholds` (and the recorded floors).
pub(crate) fn level_metrics(
    hist: &Histogram,
    totals: LabelTotals,
    thresholds: &Thresholds,
    level: Tier,
) -> LevelMetrics {
    let mut scam = Tally::default();
    let mut legit = Tally::default();
    for (&(score, floor, truth), tally) in hist {
        if thresholds.tier(score).max(floor) < level {
            continue;
        }
        match truth {
            Truth::Scam => scam.merge(*tally),
            Truth::Legit => legit.merge(*tally),
            Truth::Unlabeled => {}
        }
    }
    LevelMetrics {
        level,
        scam_flagged: scam.count,
        legit_flagged: legit.count,
        recall: ratio(scam.count, totals.scam.count),
        usd_recall: ratio_usd(scam.usd, totals.scam.usd),
        precision: ratio(scam.count, scam.count + legit.count),
        friction: ratio(legit.count, totals.legit.count),
    }
}

/// Per-rule figures.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RuleRow {
    /// `pack/rule`.
    pub rule: String,
    /// `live` or `shadow`.
    pub mode: &'static str,
    /// The manifest's score.
    pub score: i64,
    /// The manifest's reason.
    pub reason: String,
    /// Withdrawals the rule was evaluated on (its pack applied).
    pub evaluated: u64,
    /// Withdrawals it hit.
    pub hits: u64,
    /// Hits on scam withdrawals.
    pub scam_hits: u64,
    /// Hits on legit withdrawals.
    pub legit_hits: u64,
    /// Scam hits / labeled hits.
    pub precision: Option<f64>,
    /// Withdrawals on which it failed.
    pub errors: u64,
    /// Live rule: scam withdrawals it hit and no other live rule hit. Shadow rule: scam
    /// withdrawals it hit and no live rule hit.
    pub unique_scam_catches: u64,
    /// Shadow rules only: withdrawals whose tier would change if this rule alone went live
    /// (its hits scored under its pack's cap, its `min_tier`, its errors under `on_rule_error`).
    pub would_change_tiers: Option<u64>,
    /// Of those, scam withdrawals.
    pub would_change_scam: Option<u64>,
    /// Of those, legit withdrawals.
    pub would_change_legit: Option<u64>,
}

#[derive(Clone, Debug, Default)]
struct RuleAcc {
    evaluated: u64,
    hits: u64,
    scam_hits: u64,
    legit_hits: u64,
    errors: u64,
    unique_scam: u64,
    changes: u64,
    changes_scam: u64,
    changes_legit: u64,
    time: Duration,
}

/// Aggregates of one rule set's decisions over a stream.
pub(crate) struct Accumulator {
    thresholds: Thresholds,
    on_rule_error: Option<Tier>,
    rule_index: HashMap<String, usize>,
    rule_pack: Vec<usize>,
    rule_shadow: Vec<bool>,
    rule_min_tier: Vec<Option<Tier>>,
    pack_caps: Vec<Option<i64>>,
    rows: Vec<RuleAcc>,
    pub(crate) tiers: [Tally; 4],
    pub(crate) hist: Histogram,
    /// Scam withdrawals that no rule hit, live or shadow: no threshold reaches them.
    pub(crate) scam_without_hits: u64,
    /// Scratch: live hit sums per pack for the decision at hand.
    pack_sums: Vec<i64>,
    /// Scratch: indices of the live rules that hit.
    live: Vec<usize>,
}

impl Accumulator {
    pub(crate) fn new(rules: &RuleSet) -> Accumulator {
        let list = rules.rules();
        Accumulator {
            thresholds: rules.policy().thresholds,
            on_rule_error: rules.policy().on_rule_error,
            rule_index: list
                .iter()
                .enumerate()
                .map(|(i, r)| (r.id.to_string(), i))
                .collect(),
            rule_pack: list.iter().map(|r| r.pack).collect(),
            rule_shadow: list.iter().map(|r| r.shadow).collect(),
            rule_min_tier: list.iter().map(|r| r.min_tier).collect(),
            pack_caps: rules.packs().iter().map(|p| p.max_score).collect(),
            rows: vec![RuleAcc::default(); list.len()],
            tiers: [Tally::default(); 4],
            hist: Histogram::new(),
            scam_without_hits: 0,
            pack_sums: vec![0; rules.packs().len()],
            live: Vec::new(),
        }
    }

    /// Records one decision. `timings[i]` is rule `i`'s evaluation time (`None`: not evaluated).
    pub(crate) fn record(
        &mut self,
        w: &Withdrawal,
        d: &DecisionRef<'_>,
        timings: &[Option<Duration>],
    ) {
        let usd = micros(w.amount_usd);
        let truth = Truth::of(w.label);
        if let Some(t) = self.tiers.get_mut(tier_index(d.tier())) {
            t.add(usd);
        }
        self.hist
            .entry((d.score(), d.floor(), truth))
            .or_default()
            .add(usd);
        for (row, time) in self.rows.iter_mut().zip(timings) {
            if let Some(time) = time {
                row.evaluated += 1;
                row.time += *time;
            }
        }

        self.pack_sums.iter_mut().for_each(|s| *s = 0);
        self.live.clear();
        for hit in d.hits() {
            let Some(&i) = self.rule_index.get(&**hit.rule) else {
                continue;
            };
            self.live.push(i);
            if let Some(sum) = self
                .rule_pack
                .get(i)
                .and_then(|&p| self.pack_sums.get_mut(p))
            {
                *sum = sum.saturating_add(hit.score);
            }
            if let Some(row) = self.rows.get_mut(i) {
                count_hit(row, truth);
            }
        }
        if truth == Truth::Scam && d.hits().next().is_none() && d.shadow_hits().next().is_none() {
            self.scam_without_hits += 1;
        }
        if truth == Truth::Scam {
            if let [only] = self.live.as_slice() {
                if let Some(row) = self.rows.get_mut(*only) {
                    row.unique_scam += 1;
                }
            }
        }
        for hit in d.shadow_hits() {
            let Some(&i) = self.rule_index.get(&**hit.rule) else {
                continue;
            };
            if let Some(row) = self.rows.get_mut(i) {
                count_hit(row, truth);
                if truth == Truth::Scam && self.live.is_empty() {
                    row.unique_scam += 1;
                }
            }
            let tier = self.tier_if_live(i, Some(hit.score), false, d);
            self.count_change(i, tier, d.tier(), truth);
        }
        for error in d.errors() {
            let Some(&i) = self.rule_index.get(&*error.rule) else {
                continue;
            };
            if let Some(row) = self.rows.get_mut(i) {
                row.errors += 1;
            }
            if self.rule_shadow.get(i).copied().unwrap_or(false) {
                let tier = self.tier_if_live(i, None, true, d);
                self.count_change(i, tier, d.tier(), truth);
            }
        }
    }

    /// The tier `d` would have had if shadow rule `i` were live (with its hit or error).
    fn tier_if_live(&self, i: usize, hit: Option<i64>, failed: bool, d: &DecisionRef<'_>) -> Tier {
        let pack = self.rule_pack.get(i).copied();
        let score = self
            .pack_sums
            .iter()
            .zip(&self.pack_caps)
            .enumerate()
            .map(|(p, (&sum, cap))| {
                let sum = if Some(p) == pack {
                    sum.saturating_add(hit.unwrap_or(0))
                } else {
                    sum
                };
                cap.map_or(sum, |c| sum.min(c))
            })
            .fold(0_i64, i64::saturating_add);
        let mut floor = d.floor();
        if hit.is_some() {
            if let Some(min) = self.rule_min_tier.get(i).copied().flatten() {
                floor = floor.max(min);
            }
        }
        if failed {
            if let Some(t) = self.on_rule_error {
                floor = floor.max(t);
            }
        }
        self.thresholds.tier(score).max(floor)
    }

    fn count_change(&mut self, i: usize, new: Tier, old: Tier, truth: Truth) {
        if new == old {
            return;
        }
        if let Some(row) = self.rows.get_mut(i) {
            row.changes += 1;
            match truth {
                Truth::Scam => row.changes_scam += 1,
                Truth::Legit => row.changes_legit += 1,
                Truth::Unlabeled => {}
            }
        }
    }

    /// Per-tier rows.
    pub(crate) fn tier_rows(&self) -> Vec<TierRow> {
        let total = self.tiers.iter().map(|t| t.count).sum::<u64>();
        let total_usd = self
            .tiers
            .iter()
            .map(|t| t.usd)
            .fold(0_i128, i128::saturating_add);
        Tier::ALL
            .iter()
            .zip(&self.tiers)
            .map(|(&tier, t)| TierRow {
                tier,
                count: t.count,
                share: ratio(t.count, total),
                usd: dollars(t.usd),
                usd_share: ratio_usd(t.usd, total_usd),
            })
            .collect()
    }

    /// Labeled figures at notice, warn and cool_off with the policy's thresholds.
    pub(crate) fn levels(&self) -> Vec<LevelMetrics> {
        let totals = label_totals(&self.hist);
        [Tier::Notice, Tier::Warn, Tier::CoolOff]
            .into_iter()
            .map(|level| level_metrics(&self.hist, totals, &self.thresholds, level))
            .collect()
    }

    /// Per-rule rows, in rule id order.
    pub(crate) fn rule_rows(&self, rules: &RuleSet) -> Vec<RuleRow> {
        rules
            .rules()
            .iter()
            .zip(&self.rows)
            .map(|(rule, acc)| RuleRow {
                rule: rule.id.to_string(),
                mode: if rule.shadow { "shadow" } else { "live" },
                score: rule.score,
                reason: rule.reason.to_string(),
                evaluated: acc.evaluated,
                hits: acc.hits,
                scam_hits: acc.scam_hits,
                legit_hits: acc.legit_hits,
                precision: ratio(acc.scam_hits, acc.scam_hits + acc.legit_hits),
                errors: acc.errors,
                unique_scam_catches: acc.unique_scam,
                would_change_tiers: rule.shadow.then_some(acc.changes),
                would_change_scam: rule.shadow.then_some(acc.changes_scam),
                would_change_legit: rule.shadow.then_some(acc.changes_legit),
            })
            .collect()
    }

    /// Mean evaluation time per rule, in microseconds (None when never evaluated).
    pub(crate) fn rule_times(&self) -> Vec<Option<f64>> {
        self.rows
            .iter()
            .map(|r| (r.evaluated > 0).then(|| r.time.as_secs_f64() * 1e6 / r.evaluated as f64))
            .collect()
    }

    pub(crate) fn thresholds(&self) -> Thresholds {
        self.thresholds
    }
}

fn count_hit(row: &mut RuleAcc, truth: Truth) {
    row.hits += 1;
    match truth {
        Truth::Scam => row.scam_hits += 1,
        Truth::Legit => row.legit_hits += 1,
        Truth::Unlabeled => {}
    }
}

pub(crate) fn tier_index(tier: Tier) -> usize {
    match tier {
        Tier::Allow => 0,
        Tier::Notice => 1,
        Tier::Warn => 2,
        Tier::CoolOff => 3,
    }
}
