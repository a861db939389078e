//! The threshold sweep and the friction-budget optimizer, over the recorded outcome histogram.
//!
//! No script runs again: a decision's tier under other thresholds is
//! `max(thresholds.tier(score), floor)`, with `score` and `floor` recorded at replay time.
//! Metrics only change at observed scores, so the sweep visits every distinct observed score
//! (and one past the highest, where only the floors flag anything): that is every warn threshold
//! there is, up to equivalence.

use serde::Serialize;

use super::metrics::{label_totals, level_metrics, Histogram, LevelMetrics};
use crate::decision::Tier;
use crate::rules::Thresholds;

/// One warn threshold and the figures at >= warn it would give.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SweepPoint {
    /// The warn threshold (cool_off raised to it when lower; notice lowered to it when higher).
    pub warn: i64,
    /// The figures at >= warn.
    #[serde(flatten)]
    pub metrics: LevelMetrics,
}

/// What `--max-friction` found.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Optimum {
    /// The friction budget at >= warn (a fraction, 0 to 1).
    pub max_friction: f64,
    /// The friction budget at cool_off (a fraction).
    pub max_cool_off_friction: f64,
    /// The chosen warn threshold; null when even the floors alone exceed the budget.
    pub warn: Option<i64>,
    /// The chosen cool_off threshold; null when none fits its budget.
    pub cool_off: Option<i64>,
    /// The notice threshold used with them (the policy's, lowered to `warn` when above it).
    pub notice: Option<i64>,
    /// The figures at >= warn with the chosen thresholds.
    pub at_warn: Option<LevelMetrics>,
    /// The figures at cool_off with the chosen thresholds.
    pub at_cool_off: Option<LevelMetrics>,
    /// Why a threshold is missing, when one is.
    pub note: Option<String>,
}

/// Every threshold worth trying: the distinct observed scores and one past the highest.
pub(crate) fn candidates(hist: &Histogram) -> Vec<i64> {
    let mut scores: Vec<i64> = hist.keys().map(|&(score, _, _)| score).collect();
    scores.sort_unstable();
    scores.dedup();
    if let Some(&max) = scores.last() {
        scores.push(max.saturating_add(1));
    }
    scores
}

/// Thresholds with `warn` moved, the others kept in order around it.
pub(crate) fn with_warn(policy: Thresholds, warn: i64) -> Thresholds {
    Thresholds {
        notice: policy.notice.min(warn),
        warn,
        cool_off: policy.cool_off.max(warn),
    }
}

/// The figures at >= warn for every candidate warn threshold, lowest first.
pub(crate) fn sweep(hist: &Histogram, policy: Thresholds) -> Vec<SweepPoint> {
    let totals = label_totals(hist);
    candidates(hist)
        .into_iter()
        .map(|warn| SweepPoint {
            warn,
            metrics: level_metrics(hist, totals, &with_warn(policy, warn), Tier::Warn),
        })
        .collect()
}

/// Best within budget: most scam withdrawals flagged; ties go to less friction, then to the
/// higher threshold.
fn better(candidate: &LevelMetrics, best: Option<&LevelMetrics>) -> bool {
    match best {
        None => true,
        Some(b) => {
            (
                candidate.scam_flagged,
                std::cmp::Reverse(candidate.legit_flagged),
            ) > (b.scam_flagged, std::cmp::Reverse(b.legit_flagged))
                || (candidate.scam_flagged == b.scam_flagged
                    && candidate.legit_flagged == b.legit_flagged)
        }
    }
}

fn within(m: &LevelMetrics, budget: f64) -> bool {
    // No legit withdrawals: nothing to cost.
    m.friction.is_none_or(|f| f <= budget + 1e-12)
}

/// The warn and cool_off thresholds that flag the most scam withdrawals while the friction
/// at warn or above stays within `max_friction` and the friction at cool_off within
/// `max_cool_off_friction` (fractions). Warn is chosen first (the scam withdrawals a user is
/// warned about); cool_off then among the thresholds at or above it.
pub(crate) fn optimize(
    hist: &Histogram,
    policy: Thresholds,
    max_friction: f64,
    max_cool_off_friction: f64,
) -> Optimum {
    let totals = label_totals(hist);
    let options = candidates(hist);
    let mut best_warn: Option<(i64, LevelMetrics)> = None;
    for &warn in &options {
        let m = level_metrics(hist, totals, &with_warn(policy, warn), Tier::Warn);
        if within(&m, max_friction) && better(&m, best_warn.as_ref().map(|(_, b)| b)) {
            best_warn = Some((warn, m));
        }
    }
    let mut optimum = Optimum {
        max_friction,
        max_cool_off_friction,
        warn: None,
        cool_off: None,
        notice: None,
        at_warn: None,
        at_cool_off: None,
        note: None,
    };
    if totals.scam.count + totals.legit.count == 0 {
        optimum.note = Some(
            "no labeled withdrawals: label them \"scam\" or \"legit\" to optimize thresholds"
                .into(),
        );
        return optimum;
    }
    let Some((warn, at_warn)) = best_warn else {
        optimum.note = Some("no warn threshold keeps friction within the budget: the rules' min_tier and on_rule_error floors alone flag more legit withdrawals".into());
        return optimum;
    };
    let mut best_cool: Option<(i64, LevelMetrics)> = None;
    for &cool in options.iter().filter(|&&c| c >= warn) {
        let thresholds = Thresholds {
            notice: policy.notice.min(warn),
            warn,
            cool_off: cool,
        };
        let m = level_metrics(hist, totals, &thresholds, Tier::CoolOff);
        if within(&m, max_cool_off_friction) && better(&m, best_cool.as_ref().map(|(_, b)| b)) {
            best_cool = Some((cool, m));
        }
    }
    optimum.warn = Some(warn);
    optimum.notice = Some(policy.notice.min(warn));
    optimum.at_warn = Some(at_warn);
    match best_cool {
        Some((cool, m)) => {
            optimum.cool_off = Some(cool);
            optimum.at_cool_off = Some(m);
        }
        None => {
            optimum.note = Some("no cool_off threshold keeps cool-off friction within its budget: the min_tier floors alone put more legit withdrawals in cool-off".into());
        }
    }
    optimum
}
