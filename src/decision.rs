//! Decisions (contract section 4): from rule outcomes to a tier, a score and a warning.

use std::sync::Arc;

use serde::Serialize;

use crate::event::Withdrawal;
use crate::json;
use crate::rules::{Outcome, RuleSet, Warning, WarningText, WithheldWarning};

pub use crate::tier::Tier;

/// A rule that hit.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Hit {
    /// `pack/rule`, shared with the rule set (a hit copies no string).
    pub rule: Arc<str>,
    /// The rule's own score, before any pack cap.
    pub score: i64,
    /// The manifest's reason, shared with the rule set.
    pub reason: Arc<str>,
}

/// A rule that failed (runtime error, limit, deadline or wrong return type).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RuleError {
    /// `pack/rule`, shared with the rule set.
    pub rule: Arc<str>,
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

/// Where a [`DecisionBuilder`] puts hits: owned [`Hit`]s for a [`Decision`], or (rule index,
/// score) pairs in a caller's reused buffers for a [`DecisionView`].
enum Hits<'s> {
    Owned {
        live: Vec<Hit>,
        shadow: Vec<Hit>,
    },
    Indexed {
        live: &'s mut Vec<(usize, i64)>,
        shadow: &'s mut Vec<(usize, i64)>,
    },
}

/// Builds a decision from rule outcomes handed over in rule order (rules whose pack did not
/// apply are simply not handed over): no per-decision table of outcomes.
pub(crate) struct DecisionBuilder<'r> {
    rules: &'r RuleSet,
    pack_sums_inline: [i64; INLINE_PACKS],
    pack_sums_heap: Vec<i64>,
    hits: Hits<'r>,
    errors: Vec<RuleError>,
    floor: Tier,
    live_error: bool,
    best_warning: Option<(i64, usize)>,
}

/// What [`DecisionBuilder::finish`] and [`DecisionBuilder::finish_view`] share.
struct Settled<'r> {
    tier: Tier,
    score: i64,
    floor: Tier,
    /// The warning to render, when the tier is above `allow`.
    warning: Option<&'r Warning>,
    holdout: bool,
}

impl<'r> DecisionBuilder<'r> {
    pub(crate) fn new(rules: &'r RuleSet) -> DecisionBuilder<'r> {
        DecisionBuilder::with_hits(
            rules,
            Hits::Owned {
                live: Vec::new(),
                shadow: Vec::new(),
            },
        )
    }

    /// A builder for [`DecisionBuilder::finish_view`], keeping hits in `scratch` (cleared).
    pub(crate) fn in_scratch(
        rules: &'r RuleSet,
        scratch: &'r mut DecisionScratch,
    ) -> (DecisionBuilder<'r>, &'r mut String, &'r mut String) {
        let DecisionScratch {
            hits,
            shadow_hits,
            title,
            body,
        } = scratch;
        hits.clear();
        shadow_hits.clear();
        let builder = DecisionBuilder::with_hits(
            rules,
            Hits::Indexed {
                live: hits,
                shadow: shadow_hits,
            },
        );
        (builder, title, body)
    }

    fn with_hits(rules: &'r RuleSet, hits: Hits<'r>) -> DecisionBuilder<'r> {
        let packs = rules.packs.len();
        DecisionBuilder {
            rules,
            pack_sums_inline: [0; INLINE_PACKS],
            pack_sums_heap: if packs > INLINE_PACKS {
                vec![0; packs]
            } else {
                Vec::new()
            },
            hits,
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
    #[inline]
    pub(crate) fn add(&mut self, i: usize, outcome: Outcome) {
        // Most outcomes are misses: inlined, they cost a compare instead of a call that moves
        // and drops the outcome.
        if !matches!(outcome, Outcome::NoHit) {
            self.add_hit_or_error(i, outcome);
        }
    }

    /// [`DecisionBuilder::add`] for a hit or an error.
    #[inline(never)]
    fn add_hit_or_error(&mut self, i: usize, outcome: Outcome) {
        let Some(rule) = self.rules.rules.get(i) else {
            return;
        };
        match outcome {
            Outcome::NoHit => {}
            Outcome::Hit(score) => {
                match &mut self.hits {
                    Hits::Owned { live, shadow } => {
                        let hit = Hit {
                            rule: rule.id.clone(),
                            score,
                            reason: rule.reason.clone(),
                        };
                        if rule.shadow { shadow } else { live }.push(hit);
                    }
                    Hits::Indexed { live, shadow } => {
                        if rule.shadow { shadow } else { live }.push((i, score));
                    }
                }
                if rule.shadow {
                    return;
                }
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

    /// Tier, score, floor, which warning and whether held out.
    fn settle(&mut self, w: &Withdrawal) -> Settled<'r> {
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
        let warning = (tier > Tier::Allow).then(|| {
            self.best_warning
                .and_then(|(_, i)| rules.warnings.get(i))
                .unwrap_or(&policy.default_warning)
        });
        let holdout = policy
            .holdout
            .as_ref()
            .is_some_and(|h| h.holds_out(tier, &w.user_id));
        Settled {
            tier,
            score,
            floor,
            warning,
            holdout,
        }
    }

    /// The decision for `w` (whose normalized destination is `destination`).
    pub(crate) fn finish(mut self, w: &Withdrawal, destination: &str) -> Decision {
        let s = self.settle(w);
        let warning = s
            .warning
            .and_then(|chosen| chosen.render(&w.user.locale, w, destination));
        let (warning, withheld) = match warning {
            Some(text) if s.holdout => (
                None,
                Some(WithheldWarning {
                    key: text.key,
                    locale: text.locale,
                }),
            ),
            warning => (warning, None),
        };
        let (hits, shadow_hits) = match self.hits {
            Hits::Owned { live, shadow } => (live, shadow),
            // Not built this way (see `finish_view`); owned hits from the indices all the same.
            Hits::Indexed { live, shadow } => {
                let owned = |list: &[(usize, i64)]| -> Vec<Hit> {
                    list.iter()
                        .filter_map(|&(i, score)| {
                            self.rules.rules.get(i).map(|rule| Hit {
                                rule: rule.id.clone(),
                                score,
                                reason: rule.reason.clone(),
                            })
                        })
                        .collect()
                };
                (owned(live), owned(shadow))
            }
        };
        Decision {
            id: w.id.clone(),
            user_id: w.user_id.clone(),
            tier: s.tier,
            score: s.score,
            cool_off_hours: (s.tier == Tier::CoolOff).then_some(self.rules.policy().cool_off_hours),
            warning,
            hits,
            shadow_hits,
            errors: self.errors,
            holdout: s.holdout,
            ruleset: self.rules.id_arc().clone(),
            withheld,
            floor: s.floor,
        }
    }

    /// The decision for `w` as [`DecisionView`]: [`DecisionBuilder::finish`]'s JSON, with the
    /// warning rendered into `title` and `body` and nothing else allocated (built with
    /// [`DecisionBuilder::in_scratch`]).
    pub(crate) fn finish_view<'a>(
        mut self,
        w: &'a Withdrawal,
        destination: &str,
        title: &'a mut String,
        body: &'a mut String,
    ) -> DecisionView<'a>
    where
        'r: 'a,
    {
        let s = self.settle(w);
        let rules = self.rules;
        let text = s.warning.and_then(|chosen| {
            chosen
                .render_into(&w.user.locale, w, destination, title, body)
                .map(|locale| (&*chosen.key, locale))
        });
        let (warning, withheld) = match text {
            Some((key, locale)) if s.holdout => (None, Some(WithheldView { key, locale })),
            Some((key, locale)) => (
                Some(WarningView {
                    key,
                    locale,
                    title,
                    body,
                }),
                None,
            ),
            None => (None, None),
        };
        let (live, shadow): (&'a [_], &'a [_]) = match self.hits {
            Hits::Indexed { live, shadow } => (live, shadow),
            Hits::Owned { .. } => (&[], &[]),
        };
        DecisionView {
            id: &w.id,
            user_id: &w.user_id,
            tier: s.tier,
            score: s.score,
            cool_off_hours: (s.tier == Tier::CoolOff).then_some(rules.policy().cool_off_hours),
            warning,
            hits: HitList { rules, hits: live },
            shadow_hits: HitList {
                rules,
                hits: shadow,
            },
            errors: self.errors,
            holdout: s.holdout,
            ruleset: rules.id(),
            withheld,
        }
    }
}

/// Buffers a [`DecisionView`] borrows, reused from one decision to the next (`riskgate
/// score` writes a million decisions without allocating for any of them once these grew).
#[derive(Default)]
pub(crate) struct DecisionScratch {
    hits: Vec<(usize, i64)>,
    shadow_hits: Vec<(usize, i64)>,
    title: String,
    body: String,
}

/// A decision as [`Decision`] serializes it (the same fields in the same order, so the same
/// JSON, byte for byte: see [`DecisionView::write_json`]), borrowing from the withdrawal, the
/// rule set and a [`DecisionScratch`].
pub(crate) struct DecisionView<'a> {
    id: &'a str,
    user_id: &'a str,
    tier: Tier,
    score: i64,
    cool_off_hours: Option<u32>,
    warning: Option<WarningView<'a>>,
    hits: HitList<'a>,
    shadow_hits: HitList<'a>,
    errors: Vec<RuleError>,
    holdout: bool,
    ruleset: &'a str,
    withheld: Option<WithheldView<'a>>,
}

/// [`WarningText`]'s fields.
struct WarningView<'a> {
    key: &'a str,
    locale: &'a str,
    title: &'a str,
    body: &'a str,
}

/// [`WithheldWarning`]'s fields.
struct WithheldView<'a> {
    key: &'a str,
    locale: &'a str,
}

/// Hits as (rule index, score), written as [`Hit`]s.
struct HitList<'a> {
    rules: &'a RuleSet,
    hits: &'a [(usize, i64)],
}

impl DecisionView<'_> {
    /// Appends the decision's JSON line (without the line end) to `out`: what serde_json
    /// writes for the [`Decision`], byte for byte. By hand, because serde_json's string
    /// escaping goes byte by byte through a table, and a decision line is ~400 bytes of strings
    /// (warning texts above all): it was ~15% of `riskgate score`'s instructions.
    pub(crate) fn write_json(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"{\"id\":");
        json::write_str(out, self.id);
        out.extend_from_slice(b",\"user_id\":");
        json::write_str(out, self.user_id);
        out.extend_from_slice(b",\"tier\":\"");
        out.extend_from_slice(self.tier.name().as_bytes());
        out.extend_from_slice(b"\",\"score\":");
        json::write_int(out, self.score);
        out.extend_from_slice(b",\"cool_off_hours\":");
        match self.cool_off_hours {
            Some(hours) => json::write_int(out, i64::from(hours)),
            None => out.extend_from_slice(b"null"),
        }
        out.extend_from_slice(b",\"warning\":");
        match &self.warning {
            Some(warning) => {
                out.extend_from_slice(b"{\"key\":");
                json::write_str(out, warning.key);
                out.extend_from_slice(b",\"locale\":");
                json::write_str(out, warning.locale);
                out.extend_from_slice(b",\"title\":");
                json::write_str(out, warning.title);
                out.extend_from_slice(b",\"body\":");
                json::write_str(out, warning.body);
                out.push(b'}');
            }
            None => out.extend_from_slice(b"null"),
        }
        out.extend_from_slice(b",\"hits\":");
        self.hits.write_json(out);
        out.extend_from_slice(b",\"shadow_hits\":");
        self.shadow_hits.write_json(out);
        out.extend_from_slice(b",\"errors\":[");
        for (n, error) in self.errors.iter().enumerate() {
            if n > 0 {
                out.push(b',');
            }
            out.extend_from_slice(b"{\"rule\":");
            json::write_str(out, &error.rule);
            out.extend_from_slice(b",\"error\":");
            json::write_str(out, &error.error);
            out.push(b'}');
        }
        out.extend_from_slice(if self.holdout {
            b"],\"holdout\":true,\"ruleset\":"
        } else {
            b"],\"holdout\":false,\"ruleset\":"
        });
        json::write_str(out, self.ruleset);
        if let Some(withheld) = &self.withheld {
            out.extend_from_slice(b",\"withheld\":{\"key\":");
            json::write_str(out, withheld.key);
            out.extend_from_slice(b",\"locale\":");
            json::write_str(out, withheld.locale);
            out.push(b'}');
        }
        out.push(b'}');
    }
}

impl HitList<'_> {
    /// `[{"rule":...,"score":...,"reason":...},...]`, as serde_json writes [`Hit`]s.
    fn write_json(&self, out: &mut Vec<u8>) {
        out.push(b'[');
        let rules = self
            .hits
            .iter()
            .filter_map(|&(i, score)| self.rules.rules.get(i).map(|rule| (rule, score)));
        for (n, (rule, score)) in rules.enumerate() {
            if n > 0 {
                out.push(b',');
            }
            out.extend_from_slice(b"{\"rule\":");
            json::write_str(out, &rule.id);
            out.extend_from_slice(b",\"score\":");
            json::write_int(out, score);
            out.extend_from_slice(b",\"reason\":");
            json::write_str(out, &rule.reason);
            out.push(b'}');
        }
        out.push(b']');
    }
}
