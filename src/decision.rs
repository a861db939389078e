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

/// Where a [`DecisionBuilder`] puts hits and errors: owned [`Hit`]s for a [`Decision`], or
/// (rule index, score) pairs in a [`DecisionBuf`]'s reused buffers for a [`DecisionRef`].
enum Sink<'s> {
    Owned {
        live: Vec<Hit>,
        shadow: Vec<Hit>,
        errors: Vec<RuleError>,
    },
    Buffered {
        live: &'s mut Vec<(usize, i64)>,
        shadow: &'s mut Vec<(usize, i64)>,
        errors: &'s mut Vec<RuleError>,
    },
}

impl Sink<'_> {
    fn errors(&mut self) -> &mut Vec<RuleError> {
        match self {
            Sink::Owned { errors, .. } => errors,
            Sink::Buffered { errors, .. } => errors,
        }
    }
}

/// Builds a decision from rule outcomes handed over in rule order (rules whose pack did not
/// apply are simply not handed over): no per-decision table of outcomes.
pub(crate) struct DecisionBuilder<'r> {
    rules: &'r RuleSet,
    pack_sums_inline: [i64; INLINE_PACKS],
    pack_sums_heap: Vec<i64>,
    sink: Sink<'r>,
    floor: Tier,
    live_error: bool,
    best_warning: Option<(i64, usize)>,
    /// Set by [`DecisionBuilder::fail_closed`]: the store's failure, listed under rule `store`.
    store_failure: Option<String>,
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
        DecisionBuilder::with_sink(
            rules,
            Sink::Owned {
                live: Vec::new(),
                shadow: Vec::new(),
                errors: Vec::new(),
            },
        )
    }

    /// A builder for [`DecisionBuilder::finish_view`] deciding with the rule set `live`
    /// (kept in `buf`), keeping hits and errors in `buf` (cleared); also hands back `buf`'s
    /// title and body.
    pub(crate) fn in_buf(
        buf: &'r mut DecisionBuf,
        live: arc_swap::Guard<Arc<RuleSet>>,
    ) -> (DecisionBuilder<'r>, &'r mut String, &'r mut String) {
        let DecisionBuf {
            rules,
            hits,
            shadow_hits,
            errors,
            title,
            body,
        } = buf;
        // The same set from one decision to the next: no reference count touched.
        if !rules.as_ref().is_some_and(|r| Arc::ptr_eq(r, &live)) {
            *rules = None;
        }
        let rules: &'r RuleSet = rules.get_or_insert_with(|| arc_swap::Guard::into_inner(live));
        hits.clear();
        shadow_hits.clear();
        errors.clear();
        let builder = DecisionBuilder::with_sink(
            rules,
            Sink::Buffered {
                live: hits,
                shadow: shadow_hits,
                errors,
            },
        );
        (builder, title, body)
    }

    /// The rule set deciding.
    pub(crate) fn rules(&self) -> &'r RuleSet {
        self.rules
    }

    fn with_sink(rules: &'r RuleSet, sink: Sink<'r>) -> DecisionBuilder<'r> {
        let packs = rules.packs.len();
        DecisionBuilder {
            rules,
            pack_sums_inline: [0; INLINE_PACKS],
            pack_sums_heap: if packs > INLINE_PACKS {
                vec![0; packs]
            } else {
                Vec::new()
            },
            sink,
            floor: Tier::Allow,
            live_error: false,
            best_warning: None,
            store_failure: None,
        }
    }

    /// Makes the decision the fail-closed one of a store failure (call with no outcome
    /// added): tier and floor `cool_off`, the policy's default warning, `error` listed under
    /// rule `store`.
    #[cfg(feature = "redis")]
    pub(crate) fn fail_closed(&mut self, error: String) {
        self.store_failure = Some(error);
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
                match &mut self.sink {
                    Sink::Owned { live, shadow, .. } => {
                        let hit = Hit {
                            rule: rule.id.clone(),
                            score,
                            reason: rule.reason.clone(),
                        };
                        if rule.shadow { shadow } else { live }.push(hit);
                    }
                    Sink::Buffered { live, shadow, .. } => {
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
                self.sink.errors().push(RuleError {
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
        // Fail closed: `cool_off` (never held out), and with no hit the policy's default
        // warning.
        if let Some(error) = self.store_failure.take() {
            self.sink.errors().push(RuleError {
                rule: "store".into(),
                error,
            });
            floor = Tier::CoolOff;
        }
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
        let rules = self.rules;
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
        let (hits, shadow_hits, errors) = match self.sink {
            Sink::Owned {
                live,
                shadow,
                errors,
            } => (live, shadow, errors),
            // Not built this way (see `finish_view`); owned hits from the indices all the same.
            Sink::Buffered {
                live,
                shadow,
                errors,
            } => (
                owned_hits(rules, live),
                owned_hits(rules, shadow),
                errors.clone(),
            ),
        };
        Decision {
            id: w.id.clone(),
            user_id: w.user_id.clone(),
            tier: s.tier,
            score: s.score,
            cool_off_hours: (s.tier == Tier::CoolOff).then_some(rules.policy().cool_off_hours),
            warning,
            hits,
            shadow_hits,
            errors,
            holdout: s.holdout,
            ruleset: rules.id_arc().clone(),
            withheld,
            floor: s.floor,
        }
    }

    /// The decision for `w` as a [`DecisionRef`]: [`DecisionBuilder::finish`]'s decision,
    /// with the warning rendered into `title` and `body` and nothing else allocated (built
    /// with [`DecisionBuilder::in_buf`]).
    pub(crate) fn finish_view<'a>(
        mut self,
        w: &'a Withdrawal,
        destination: &str,
        title: &'a mut String,
        body: &'a mut String,
    ) -> DecisionRef<'a>
    where
        'r: 'a,
    {
        let s = self.settle(w);
        let rules = self.rules;
        let locale = &w.user.locale;
        let text = s.warning.and_then(|chosen| {
            chosen
                .render_into(locale, w, destination, title, body)
                .map(|locale| (&chosen.key, locale))
        });
        let (warning, withheld) = match text {
            Some((key, locale)) if s.holdout => (None, Some((key, locale))),
            Some((key, locale)) => (Some((key, locale)), None),
            None => (None, None),
        };
        let (live, shadow, errors): (&'a [_], &'a [_], &'a [_]) = match self.sink {
            Sink::Buffered {
                live,
                shadow,
                errors,
            } => (live, shadow, errors),
            Sink::Owned { .. } => (&[], &[], &[]),
        };
        DecisionRef {
            id: &w.id,
            user_id: &w.user_id,
            tier: s.tier,
            score: s.score,
            floor: s.floor,
            cool_off_hours: (s.tier == Tier::CoolOff).then_some(rules.policy().cool_off_hours),
            warning: warning.map(|(key, locale)| WarningRef {
                key,
                locale,
                title,
                body,
            }),
            hits: Hits { rules, hits: live },
            shadow_hits: Hits {
                rules,
                hits: shadow,
            },
            errors,
            holdout: s.holdout,
            rules,
            withheld: withheld.map(|(key, locale)| WithheldRef { key, locale }),
        }
    }
}

/// Owned [`Hit`]s of (rule index, score) pairs.
fn owned_hits(rules: &RuleSet, list: &[(usize, i64)]) -> Vec<Hit> {
    list.iter()
        .filter_map(|&(i, score)| {
            rules.rules.get(i).map(|rule| Hit {
                rule: rule.id.clone(),
                score,
                reason: rule.reason.clone(),
            })
        })
        .collect()
}

/// Buffers reused from one decision to the next by [`crate::Scorer::score_into`], which
/// fills them in place and hands back a [`DecisionRef`] borrowing them: once they have grown,
/// deciding allocates nothing (no strings for the ids, the warning or the hits). Also keeps
/// the rule set that made the last decision.
#[derive(Debug, Default)]
pub struct DecisionBuf {
    rules: Option<Arc<RuleSet>>,
    hits: Vec<(usize, i64)>,
    shadow_hits: Vec<(usize, i64)>,
    errors: Vec<RuleError>,
    title: String,
    body: String,
}

impl DecisionBuf {
    /// Empty buffers.
    pub fn new() -> DecisionBuf {
        DecisionBuf::default()
    }
}

/// A decision borrowed from a [`DecisionBuf`], the withdrawal and the rule set that decided:
/// the same decision as [`crate::Scorer::score`]'s [`Decision`] (see
/// [`DecisionRef::to_decision`]) and the same JSON (see [`DecisionRef::write_json`]), read
/// through methods named after [`Decision`]'s fields.
#[derive(Clone, Copy, Debug)]
pub struct DecisionRef<'a> {
    id: &'a str,
    user_id: &'a str,
    tier: Tier,
    score: i64,
    floor: Tier,
    cool_off_hours: Option<u32>,
    warning: Option<WarningRef<'a>>,
    hits: Hits<'a>,
    shadow_hits: Hits<'a>,
    errors: &'a [RuleError],
    holdout: bool,
    rules: &'a RuleSet,
    withheld: Option<WithheldRef<'a>>,
}

/// [`WarningText`]'s fields, borrowed.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct WarningRef<'a> {
    /// `pack/key` (or `default`, the policy's).
    pub key: &'a Arc<str>,
    /// The locale of the text chosen, as the pack spells it.
    pub locale: &'a Arc<str>,
    /// Title, placeholders filled in.
    pub title: &'a str,
    /// Body, placeholders filled in.
    pub body: &'a str,
}

/// [`WithheldWarning`]'s fields, borrowed.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct WithheldRef<'a> {
    /// `pack/key` (or `default`).
    pub key: &'a Arc<str>,
    /// The locale of the text that would have been chosen.
    pub locale: &'a Arc<str>,
}

/// A [`Hit`], borrowed from the rule set.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct HitRef<'a> {
    /// The rule's position in [`RuleSet::rules`] of the rule set that decided
    /// ([`DecisionRef::rules`]).
    pub index: usize,
    /// `pack/rule`.
    pub rule: &'a Arc<str>,
    /// The rule's own score, before any pack cap.
    pub score: i64,
    /// The manifest's reason.
    pub reason: &'a Arc<str>,
}

impl HitRef<'_> {
    /// The hit, owned (its strings shared with the rule set).
    pub fn to_hit(&self) -> Hit {
        Hit {
            rule: self.rule.clone(),
            score: self.score,
            reason: self.reason.clone(),
        }
    }
}

/// Hits as (rule index, score) pairs of a rule set.
#[derive(Clone, Copy)]
struct Hits<'a> {
    rules: &'a RuleSet,
    hits: &'a [(usize, i64)],
}

impl std::fmt::Debug for Hits<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl<'a> Hits<'a> {
    fn iter(self) -> impl Iterator<Item = HitRef<'a>> + 'a {
        let rules = self.rules;
        self.hits.iter().filter_map(move |&(index, score)| {
            rules.rules.get(index).map(|rule| HitRef {
                index,
                rule: &rule.id,
                score,
                reason: &rule.reason,
            })
        })
    }
}

impl<'a> DecisionRef<'a> {
    /// The withdrawal's id.
    pub fn id(&self) -> &'a str {
        self.id
    }

    /// The user's id.
    pub fn user_id(&self) -> &'a str {
        self.user_id
    }

    /// The risk tier.
    pub fn tier(&self) -> Tier {
        self.tier
    }

    /// Sum over packs of live hit scores, each pack capped at its `max_score`.
    pub fn score(&self) -> i64 {
        self.score
    }

    /// The least tier the floors impose ([`Decision::floor`]).
    pub fn floor(&self) -> Tier {
        self.floor
    }

    /// The policy's cooling-off hours when the tier is `cool_off`.
    pub fn cool_off_hours(&self) -> Option<u32> {
        self.cool_off_hours
    }

    /// The warning to show, when the tier is above `allow`.
    pub fn warning(&self) -> Option<WarningRef<'a>> {
        self.warning
    }

    /// Live hits, sorted by rule id.
    pub fn hits(&self) -> impl Iterator<Item = HitRef<'a>> + 'a {
        self.hits.iter()
    }

    /// Shadow hits, sorted by rule id.
    pub fn shadow_hits(&self) -> impl Iterator<Item = HitRef<'a>> + 'a {
        self.shadow_hits.iter()
    }

    /// Every failed rule, live or shadow, sorted by rule id.
    pub fn errors(&self) -> &'a [RuleError] {
        self.errors
    }

    /// Held out ([`Decision::holdout`]).
    pub fn holdout(&self) -> bool {
        self.holdout
    }

    /// The id of the rule set that decided.
    pub fn ruleset(&self) -> &'a str {
        self.rules.id()
    }

    /// The rule set that decided (what [`HitRef::index`] refers to).
    pub fn rules(&self) -> &'a RuleSet {
        self.rules
    }

    /// For a held-out decision, the warning it would have shown.
    pub fn withheld(&self) -> Option<WithheldRef<'a>> {
        self.withheld
    }

    /// The owned [`Decision`]: equal to what [`crate::Scorer::score`] answers.
    pub fn to_decision(&self) -> Decision {
        Decision {
            id: self.id.to_string(),
            user_id: self.user_id.to_string(),
            tier: self.tier,
            score: self.score,
            cool_off_hours: self.cool_off_hours,
            warning: self.warning.map(|w| WarningText {
                key: w.key.clone(),
                locale: w.locale.clone(),
                title: w.title.to_string(),
                body: w.body.to_string(),
            }),
            hits: self.hits().map(|h| h.to_hit()).collect(),
            shadow_hits: self.shadow_hits().map(|h| h.to_hit()).collect(),
            errors: self.errors.to_vec(),
            holdout: self.holdout,
            ruleset: self.rules.id_arc().clone(),
            withheld: self.withheld.map(|w| WithheldWarning {
                key: w.key.clone(),
                locale: w.locale.clone(),
            }),
            floor: self.floor,
        }
    }

    /// The decision as one line of JSON ([`Decision::to_json`]'s, byte for byte).
    pub fn to_json(&self) -> String {
        let mut out = Vec::new();
        self.write_json(&mut out);
        String::from_utf8(out).unwrap_or_default()
    }

    /// Appends the decision's JSON line (without the line end) to `out`: what serde_json
    /// writes for the [`Decision`], byte for byte. By hand, because serde_json's string
    /// escaping goes byte by byte through a table, and a decision line is ~400 bytes of strings
    /// (warning texts above all): it was ~15% of `riskgate score`'s instructions.
    pub fn write_json(&self, out: &mut Vec<u8>) {
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
        json::write_str(out, self.rules.id());
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

impl Hits<'_> {
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
