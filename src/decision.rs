//! Decisions (contract section 4): from rule outcomes to a tier, a score and a warning.

use std::sync::Arc;

use serde::Serialize;

use crate::event::Withdrawal;
use crate::rules::{Outcome, RuleSet, WarningText, WithheldWarning};

pub use crate::tier::Tier;

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
    /// Held out (`[holdout]`): the user is in the holdout group and the tier is listed, so no
    /// warning is shown although the tier is above `allow`.
    pub holdout: bool,
    /// The id of the rule set that decided.
    pub ruleset: Arc<str>,
    /// For a held-out decision, the warning it would have shown (absent otherwise).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub withheld: Option<WithheldWarning>,
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

/// Packs whose sums are kept on the stack; a rule set with more uses the heap.
const INLINE_PACKS: usize = 16;

/// Builds a decision from rule outcomes handed over in rule order (rules whose pack did not
/// apply are simply not handed over): no per-decision table of outcomes.
pub(crate) struct DecisionBuilder<'r> {
    rules: &'r RuleSet,
    pack_sums_inline: [i64; INLINE_PACKS],
    pack_sums_heap: Vec<i64>,
    hits: Vec<Hit>,
    shadow_hits: Vec<Hit>,
    errors: Vec<RuleError>,
    floor: Tier,
    live_error: bool,
    best_warning: Option<(i64, usize)>,
}

impl<'r> DecisionBuilder<'r> {
    pub(crate) fn new(rules: &'r RuleSet) -> DecisionBuilder<'r> {
        let packs = rules.packs.len();
        DecisionBuilder {
            rules,
            pack_sums_inline: [0; INLINE_PACKS],
            pack_sums_heap: if packs > INLINE_PACKS {
                vec![0; packs]
            } else {
                Vec::new()
            },
            hits: Vec::new(),
            shadow_hits: Vec::new(),
            errors: Vec::new(),
            floor: Tier::Allow,
            live_error: false,
            best_warning: None,
        }
    }

    fn pack_sums(&mut self) -> &mut [i64] {
        let packs = self.rules.packs.len();
        if packs > INLINE_PACKS {
            &mut self.pack_sums_heap
        } else {
            self.pack_sums_inline.get_mut(..packs).unwrap_or_default()
        }
    }

    /// The outcome of rule `i` (`rules.rules()[i]`); call in increasing `i`.
    pub(crate) fn add(&mut self, i: usize, outcome: Outcome) {
        let Some(rule) = self.rules.rules.get(i) else {
            return;
        };
        match outcome {
            Outcome::NoHit => {}
            Outcome::Hit(score) => {
                let hit = Hit {
                    rule: rule.id.clone(),
                    score,
                    reason: rule.reason.clone(),
                };
                if rule.shadow {
                    self.shadow_hits.push(hit);
                    return;
                }
                self.hits.push(hit);
                if let Some(sum) = self.pack_sums().get_mut(rule.pack) {
                    *sum = sum.saturating_add(score);
                }
                if let Some(min) = rule.min_tier {
                    self.floor = self.floor.max(min);
                }
                if let Some(warning) = rule.warning {
                    // Rules come in id order, so the first of equal scores wins the tie.
                    if self.best_warning.is_none_or(|(best, _)| score > best) {
                        self.best_warning = Some((score, warning));
                    }
                }
            }
            Outcome::Error(message) => {
                self.errors.push(RuleError {
                    rule: rule.id.clone(),
                    error: message,
                });
                self.live_error |= !rule.shadow;
            }
        }
    }

    /// The decision for `w` (whose normalized destination is `destination`).
    pub(crate) fn finish(mut self, w: &Withdrawal, destination: &str) -> Decision {
        let rules = self.rules;
        let policy = rules.policy();
        let score = rules
            .packs
            .iter()
            .zip(&*self.pack_sums())
            .map(|(pack, &sum)| pack.max_score.map_or(sum, |cap| sum.min(cap)))
            .fold(0_i64, i64::saturating_add);
        let mut floor = self.floor;
        if self.live_error {
            if let Some(tier) = policy.on_rule_error {
                floor = floor.max(tier);
            }
        }
        let tier = policy.thresholds.tier(score).max(floor);
        let warning = if tier > Tier::Allow {
            let chosen = self
                .best_warning
                .and_then(|(_, i)| rules.warnings.get(i))
                .unwrap_or(&policy.default_warning);
            chosen.render(&w.user.locale, w, destination)
        } else {
            None
        };
        let holdout = policy
            .holdout
            .as_ref()
            .is_some_and(|h| h.holds_out(tier, &w.user_id));
        let (warning, withheld) = match warning {
            Some(text) if holdout => (
                None,
                Some(WithheldWarning {
                    key: text.key,
                    locale: text.locale,
                }),
            ),
            warning => (warning, None),
        };
        Decision {
            id: w.id.clone(),
            user_id: w.user_id.clone(),
            tier,
            score,
            cool_off_hours: (tier == Tier::CoolOff).then_some(policy.cool_off_hours),
            warning,
            hits: self.hits,
            shadow_hits: self.shadow_hits,
            errors: self.errors,
            holdout,
            ruleset: rules.id_arc().clone(),
            withheld,
            floor,
        }
    }
}
