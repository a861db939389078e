//! The baseline comparison: the same stream decided by the rules live today (the baseline) and
//! by the candidate, as a tier transition matrix, metric deltas and a few examples per changed
//! cell with the rules that made the difference.

use serde::Serialize;

use super::metrics::{tier_index, LevelMetrics, TierRow};
use crate::decision::{DecisionRef, HitRef, Tier};
use crate::event::{Label, Withdrawal};

/// One withdrawal whose tier changed.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Example {
    /// Withdrawal id.
    pub id: String,
    /// User id.
    pub user_id: String,
    /// `scam`, `legit` or null.
    pub label: Option<&'static str>,
    /// Amount in USD.
    pub amount_usd: f64,
    /// Baseline score.
    pub baseline_score: i64,
    /// Candidate score.
    pub candidate_score: i64,
    /// Live hits only the candidate has (or with another score there): `rule (score)`.
    pub added: Vec<String>,
    /// Live hits only the baseline has (or with another score there): `rule (score)`.
    pub removed: Vec<String>,
}

/// A changed cell of the transition matrix with its examples.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Transition {
    /// Tier under the baseline.
    pub from: Tier,
    /// Tier under the candidate.
    pub to: Tier,
    /// Withdrawals that moved so.
    pub count: u64,
    /// Of them, scam.
    pub scam: u64,
    /// Of them, legit.
    pub legit: u64,
    /// The first few, in stream order, at most one per user.
    pub examples: Vec<Example>,
}

/// Candidate minus baseline at one level.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LevelDelta {
    /// The level.
    pub level: Tier,
    /// Change in scam withdrawals flagged.
    pub scam_flagged: i64,
    /// Change in legit withdrawals flagged.
    pub legit_flagged: i64,
    /// Change in recall.
    pub recall: Option<f64>,
    /// Change in USD recall.
    pub usd_recall: Option<f64>,
    /// Change in precision.
    pub precision: Option<f64>,
    /// Change in friction.
    pub friction: Option<f64>,
}

/// One rule's hits under the baseline and under the candidate (live and shadow hits alike),
/// for every rule that hit under either.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RuleChange {
    /// `pack/rule`.
    pub rule: String,
    /// Withdrawals it hit under the baseline.
    pub baseline_hits: u64,
    /// Withdrawals it hit under the candidate.
    pub candidate_hits: u64,
    /// Withdrawals it hit under the candidate and not under the baseline.
    pub new_hits: u64,
    /// Withdrawals it hit under the baseline and not under the candidate.
    pub lost_hits: u64,
}

/// The whole comparison.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct BaselineReport {
    /// The baseline rule set's id.
    pub ruleset: String,
    /// `matrix[b][c]`: withdrawals at tier `b` under the baseline and `c` under the candidate
    /// (tiers in order allow, notice, warn, cool_off).
    pub matrix: [[u64; 4]; 4],
    /// Withdrawals whose tier changed.
    pub changed: u64,
    /// The baseline's tiers.
    pub tiers: Vec<TierRow>,
    /// The baseline's labeled figures.
    pub levels: Vec<LevelMetrics>,
    /// Candidate minus baseline.
    pub deltas: Vec<LevelDelta>,
    /// The changed cells, baseline tier then candidate tier.
    pub transitions: Vec<Transition>,
    /// Per rule, hits under each side (rules that never hit are left out), by rule id.
    pub rule_changes: Vec<RuleChange>,
}

/// Collects the comparison as the stream goes.
pub(crate) struct BaselineAcc {
    matrix: [[u64; 4]; 4],
    labels: [[[u64; 2]; 4]; 4],
    examples: Vec<Vec<Example>>,
    max_examples: usize,
    /// Rule id -> [baseline hits, candidate hits, new, lost].
    rules: std::collections::BTreeMap<String, [u64; 4]>,
}

impl BaselineAcc {
    pub(crate) fn new(max_examples: usize) -> BaselineAcc {
        BaselineAcc {
            matrix: [[0; 4]; 4],
            labels: [[[0; 2]; 4]; 4],
            examples: vec![Vec::new(); 16],
            max_examples,
            rules: std::collections::BTreeMap::new(),
        }
    }

    pub(crate) fn record(
        &mut self,
        w: &Withdrawal,
        baseline: &DecisionRef<'_>,
        candidate: &DecisionRef<'_>,
    ) {
        self.count_rules(baseline, candidate);
        let (b, c) = (tier_index(baseline.tier()), tier_index(candidate.tier()));
        if let Some(cell) = self.matrix.get_mut(b).and_then(|row| row.get_mut(c)) {
            *cell += 1;
        }
        if b == c {
            return;
        }
        let label_slot = match w.label {
            Some(Label::Scam) => Some(0),
            Some(Label::Legit) => Some(1),
            None => None,
        };
        if let Some(slot) = label_slot.and_then(|l| self.labels.get_mut(b)?.get_mut(c)?.get_mut(l))
        {
            *slot += 1;
        }
        let Some(examples) = self.examples.get_mut(b * 4 + c) else {
            return;
        };
        // The first few in stream order, one per user, so that the examples show variety.
        if examples.len() >= self.max_examples || examples.iter().any(|e| e.user_id == w.user_id) {
            return;
        }
        examples.push(Example {
            id: w.id.clone(),
            user_id: w.user_id.clone(),
            label: w.label.map(|l| match l {
                Label::Scam => "scam",
                Label::Legit => "legit",
            }),
            amount_usd: w.amount_usd,
            baseline_score: baseline.score(),
            candidate_score: candidate.score(),
            added: difference(candidate, baseline),
            removed: difference(baseline, candidate),
        });
    }

    fn count_rules(&mut self, baseline: &DecisionRef<'_>, candidate: &DecisionRef<'_>) {
        let hit = |d: &DecisionRef<'_>, rule: &str| {
            d.hits().chain(d.shadow_hits()).any(|h| &**h.rule == rule)
        };
        for (side, this, other) in [(0, baseline, candidate), (1, candidate, baseline)] {
            for h in this.hits().chain(this.shadow_hits()) {
                let counts = match self.rules.get_mut(&**h.rule) {
                    Some(counts) => counts,
                    None => self.rules.entry(h.rule.to_string()).or_default(),
                };
                if let Some(n) = counts.get_mut(side) {
                    *n += 1;
                }
                if !hit(other, h.rule) {
                    // side 1 (candidate) only: new; side 0 (baseline) only: lost.
                    if let Some(n) = counts.get_mut(if side == 1 { 2 } else { 3 }) {
                        *n += 1;
                    }
                }
            }
        }
    }

    pub(crate) fn finish(
        mut self,
        ruleset: String,
        tiers: Vec<TierRow>,
        levels: Vec<LevelMetrics>,
        candidate: &[LevelMetrics],
    ) -> BaselineReport {
        let deltas = levels
            .iter()
            .zip(candidate)
            .map(|(b, c)| LevelDelta {
                level: c.level,
                scam_flagged: c.scam_flagged as i64 - b.scam_flagged as i64,
                legit_flagged: c.legit_flagged as i64 - b.legit_flagged as i64,
                recall: diff(c.recall, b.recall),
                usd_recall: diff(c.usd_recall, b.usd_recall),
                precision: diff(c.precision, b.precision),
                friction: diff(c.friction, b.friction),
            })
            .collect();
        let rule_changes = std::mem::take(&mut self.rules)
            .into_iter()
            .map(
                |(rule, [baseline_hits, candidate_hits, new_hits, lost_hits])| RuleChange {
                    rule,
                    baseline_hits,
                    candidate_hits,
                    new_hits,
                    lost_hits,
                },
            )
            .collect();
        let mut transitions = Vec::new();
        let mut changed = 0;
        let mut examples = self.examples.into_iter();
        for (b, row) in self.matrix.iter().enumerate() {
            for (c, &count) in row.iter().enumerate() {
                let cell_examples = examples.next().unwrap_or_default();
                if b == c || count == 0 {
                    continue;
                }
                changed += count;
                let [scam, legit] = self
                    .labels
                    .get(b)
                    .and_then(|r| r.get(c))
                    .copied()
                    .unwrap_or_default();
                transitions.push(Transition {
                    from: Tier::ALL.get(b).copied().unwrap_or(Tier::Allow),
                    to: Tier::ALL.get(c).copied().unwrap_or(Tier::Allow),
                    count,
                    scam,
                    legit,
                    examples: cell_examples,
                });
            }
        }
        BaselineReport {
            ruleset,
            matrix: self.matrix,
            changed,
            tiers,
            levels,
            deltas,
            transitions,
            rule_changes,
        }
    }
}

fn diff(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    Some(a? - b?)
}

/// Live hits of `a` that `b` lacks (same rule and score), as `rule (score)`.
fn difference(a: &DecisionRef<'_>, b: &DecisionRef<'_>) -> Vec<String> {
    let same = |h: &HitRef<'_>, o: &HitRef<'_>| o.rule == h.rule && o.score == h.score;
    a.hits()
        .filter(|h| !b.hits().any(|o| same(h, &o)))
        .map(|h| format!("{} ({})", h.rule, h.score))
        .collect()
}
