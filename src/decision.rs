//! Decisions (contract section 4): from rule outcomes to a tier, a score and a warning.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::event::Withdrawal;
use crate::rules::{Outcome, RuleSet, WarningText};

/// Risk tiers, ordered `allow < notice < warn < cool_off`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Tier {
    /// No warning.
    Allow,
    /// A light notice.
    Notice,
    /// The anti-scam warning.
    Warn,
    /// The withdrawal waits through a cooling-off period.
    CoolOff,
}

impl Tier {
    /// All tiers, lowest first.
    pub const ALL: [Tier; 4] = [Tier::Allow, Tier::Notice, Tier::Warn, Tier::CoolOff];

    /// The tier's name in files and JSON.
    pub fn name(self) -> &'static str {
        match self {
            Tier::Allow => "allow",
            Tier::Notice => "notice",
            Tier::Warn => "warn",
            Tier::CoolOff => "cool_off",
        }
    }

    /// Parses a tier name.
    pub fn from_name(name: &str) -> Option<Tier> {
        Tier::ALL.into_iter().find(|t| t.name() == name)
    }
}

impl std::fmt::Display for Tier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A rule that hit.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Hit {
    /// `pack/rule`.
    pub rule: String,
    /// The rule's own score, before any pack cap.
    pub score: i64,
    /// The manifest's reason.
    pub reason: String,
}

/// A rule that failed (runtime error, limit, deadline or wrong return type).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RuleError {
    /// `pack/rule`.
    pub rule: String,
    /// What happened.
    pub error: String,
}

/// The answer for one withdrawal. Serializes to the contract's JSON.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Decision {
    /// The withdrawal's id.
    pub id: String,
    /// The user's id.
    pub user_id: String,
    /// The risk tier.
    pub tier: Tier,
    /// Sum over packs of live hit scores, each pack capped at its `max_score`.
    pub score: i64,
    /// The policy's cooling-off hours when the tier is `cool_off`.
    pub cool_off_hours: Option<u32>,
    /// The warning to show, when the tier is above `allow`.
    pub warning: Option<WarningText>,
    /// Live hits, sorted by rule id.
    pub hits: Vec<Hit>,
    /// Shadow hits, sorted by rule id.
    pub shadow_hits: Vec<Hit>,
    /// Every failed rule, live or shadow, sorted by rule id.
    pub errors: Vec<RuleError>,
    /// The id of the rule set that decided.
    pub ruleset: Arc<str>,
    /// The least tier the floors impose (`min_tier` of live hits, `on_rule_error`); replays
    /// re-tier with other thresholds as `max(thresholds.tier(score), floor)`.
    #[serde(skip)]
    pub floor: Tier,
}

impl Decision {
    /// The decision as one line of JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self)
            .unwrap_or_else(|e| format!("{{\"error\":\"cannot serialize decision: {e}\"}}"))
    }
}

/// Builds the decision from each rule's outcome (`outcomes[i]` for `rules.rules()[i]`, `None`
/// for a rule whose pack did not apply).
pub(crate) fn decide(
    rules: &RuleSet,
    w: &Withdrawal,
    destination: &str,
    outcomes: &[Option<Outcome>],
) -> Decision {
    let policy = rules.policy();
    let mut pack_sums = vec![0_i64; rules.packs.len()];
    let mut hits = Vec::new();
    let mut shadow_hits = Vec::new();
    let mut errors = Vec::new();
    let mut floor = Tier::Allow;
    let mut live_error = false;
    let mut best_warning: Option<(i64, usize)> = None;
    for (rule, outcome) in rules.rules.iter().zip(outcomes) {
        match outcome {
            None | Some(Outcome::NoHit) => {}
            Some(Outcome::Hit(score)) => {
                let hit = Hit {
                    rule: rule.id.clone(),
                    score: *score,
                    reason: rule.reason.clone(),
                };
                if rule.shadow {
                    shadow_hits.push(hit);
                    continue;
                }
                hits.push(hit);
                if let Some(sum) = pack_sums.get_mut(rule.pack) {
                    *sum = sum.saturating_add(*score);
                }
                if let Some(min) = rule.min_tier {
                    floor = floor.max(min);
                }
                if let Some(warning) = rule.warning {
                    // Rules are sorted by id, so the first of equal scores wins the tie.
                    if best_warning.is_none_or(|(best, _)| *score > best) {
                        best_warning = Some((*score, warning));
                    }
                }
            }
            Some(Outcome::Error(message)) => {
                errors.push(RuleError {
                    rule: rule.id.clone(),
                    error: message.clone(),
                });
                live_error |= !rule.shadow;
            }
        }
    }
    let score = rules
        .packs
        .iter()
        .zip(&pack_sums)
        .map(|(pack, &sum)| pack.max_score.map_or(sum, |cap| sum.min(cap)))
        .fold(0_i64, i64::saturating_add);
    if live_error {
        if let Some(tier) = policy.on_rule_error {
            floor = floor.max(tier);
        }
    }
    let tier = policy.thresholds.tier(score).max(floor);
    let warning = if tier > Tier::Allow {
        let chosen = best_warning
            .and_then(|(_, i)| rules.warnings.get(i))
            .unwrap_or(&policy.default_warning);
        chosen.render(&w.user.locale, w, destination)
    } else {
        None
    };
    Decision {
        id: w.id.clone(),
        user_id: w.user_id.clone(),
        tier,
        score,
        cool_off_hours: (tier == Tier::CoolOff).then_some(policy.cool_off_hours),
        warning,
        hits,
        shadow_hits,
        errors,
        ruleset: rules.id_arc().clone(),
        floor,
    }
}
