//! A response model for generated streams (`riskgate respond`): how users answer warnings.
//!
//! Given an event stream (e.g. from `riskgate gen`) and a rule set, every withdrawal is scored
//! in order, exactly as `riskgate score` would. A user who is shown a warning (tier above
//! `allow` and not held out) cancels with a probability chosen, in this order, by the
//! withdrawal's `typology` field ([`ResponseModel::by_typology`]), by the warning's key
//! ([`ResponseModel::by_warning`]), else [`ResponseModel::cancel_if_warned`]. A user shown
//! nothing (held out, or `allow`) cancels with [`ResponseModel::base_cancel`]. Every withdrawal
//! is written back with `status` set (`completed` or `cancelled`, replacing any status it had),
//! and the scorer observes that status, so a cancelled withdrawal never enters history and later
//! decisions see what the users did. Other fields, field order and other events are kept.
//!
//! The true effect of a warning on cancellations is then `p_warned - base_cancel` for each
//! group, which `riskgate replay` estimates from the held-out users (see the README's
//! "Measuring what warnings do"). The draws come from a SplitMix64 generator seeded with
//! [`ResponseModel::seed`]: the same input, rules and model give the same bytes.

use std::collections::{BTreeMap, HashSet};
use std::io::{BufRead, Write};

use serde::de::{MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::decision::Tier;
use crate::error::Error;
use crate::event::{Event, Status};
use crate::rules::RuleSet;
use crate::scorer::Scorer;
use crate::stream::LineReader;

/// Cancellation probabilities.
#[derive(Clone, Debug, PartialEq)]
pub struct ResponseModel {
    /// Probability that a user shown a warning cancels (when no more specific entry applies).
    pub cancel_if_warned: f64,
    /// Per `typology` field: probability that a warned user of that typology cancels.
    pub by_typology: BTreeMap<String, f64>,
    /// Per warning key (`pack/key` or `default`): probability that a user shown it cancels.
    pub by_warning: BTreeMap<String, f64>,
    /// Probability that a user shown nothing (held out, or `allow`) cancels.
    pub base_cancel: f64,
    /// Seed of the draws.
    pub seed: u64,
}

impl Default for ResponseModel {
    fn default() -> ResponseModel {
        ResponseModel {
            cancel_if_warned: 0.0,
            by_typology: BTreeMap::new(),
            by_warning: BTreeMap::new(),
            base_cancel: 0.0,
            seed: 1,
        }
    }
}

impl ResponseModel {
    /// The probabilities out of `[0, 1]`, as messages (empty when the model is valid).
    pub fn problems(&self) -> Vec<String> {
        let bad = |p: f64| !(0.0..=1.0).contains(&p);
        let mut out = Vec::new();
        if bad(self.cancel_if_warned) {
            out.push(format!(
                "cancel-if-warned must be between 0 and 1, got {}",
                self.cancel_if_warned
            ));
        }
        if bad(self.base_cancel) {
            out.push(format!(
                "base-cancel must be between 0 and 1, got {}",
                self.base_cancel
            ));
        }
        for (name, map) in [
            ("typology", &self.by_typology),
            ("warning", &self.by_warning),
        ] {
            for (k, p) in map {
                if bad(*p) {
                    out.push(format!(
                        "cancel-if-warned for {name} {k} must be between 0 and 1, got {p}"
                    ));
                }
            }
        }
        out
    }

    /// The probability of cancelling for a user shown `warning` (None: shown nothing) whose
    /// withdrawal has `typology`.
    pub fn cancel_probability(&self, warning: Option<&str>, typology: Option<&str>) -> f64 {
        let Some(key) = warning else {
            return self.base_cancel;
        };
        typology
            .and_then(|t| self.by_typology.get(t))
            .or_else(|| self.by_warning.get(key))
            .copied()
            .unwrap_or(self.cancel_if_warned)
    }
}

/// What [`respond`] did.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct ResponseSummary {
    /// Withdrawals scored.
    pub withdrawals: u64,
    /// Of them, shown a warning.
    pub warned: u64,
    /// Held out (tier above allow, warning withheld).
    pub held_out: u64,
    /// At allow.
    pub allowed: u64,
    /// Cancelled, in all.
    pub cancelled: u64,
    /// Cancelled after a warning.
    pub warned_cancelled: u64,
    /// Cancelled when held out.
    pub held_out_cancelled: u64,
    /// Lines that are not valid events, copied unchanged (replay and score will name them).
    pub invalid: u64,
}

/// SplitMix64.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1_u64 << 53) as f64
    }
}

/// A JSON object with its fields in their original order.
struct Ordered(Vec<(String, serde_json::Value)>);

impl<'de> Deserialize<'de> for Ordered {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Ordered, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Ordered;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Ordered, A::Error> {
                let mut fields = Vec::new();
                while let Some(entry) = map.next_entry::<String, serde_json::Value>()? {
                    fields.push(entry);
                }
                Ok(Ordered(fields))
            }
        }
        d.deserialize_map(V)
    }
}

impl Serialize for Ordered {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

impl Ordered {
    fn get_str(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .and_then(|(_, v)| v.as_str())
    }

    fn set(&mut self, key: &str, value: serde_json::Value) {
        match self.0.iter_mut().find(|(k, _)| k == key) {
            Some((_, v)) => *v = value,
            None => self.0.push((key.to_string(), value)),
        }
    }
}

/// Scores `input` with `rules`, draws each withdrawal's outcome with `model`, and writes the
/// stream with `status` set to `out`. Fails on an invalid model or an I/O error.
pub fn respond(
    rules: RuleSet,
    model: &ResponseModel,
    input: impl BufRead,
    out: &mut impl Write,
) -> Result<ResponseSummary, Error> {
    let problems = model.problems();
    if !problems.is_empty() {
        return Err(Error::io(
            std::path::Path::new("response model"),
            problems.join("; "),
        ));
    }
    let scorer = Scorer::new(rules);
    let mut rng = Rng(model.seed);
    let mut seen: HashSet<String> = HashSet::new();
    // Each decision is only read: made into one reused buffer.
    let mut buf = crate::DecisionBuf::new();
    let mut summary = ResponseSummary::default();
    let mut lines = LineReader::new(input);
    let stdout = std::path::Path::new("output");
    let write = |out: &mut dyn Write, text: &str| {
        out.write_all(text.as_bytes())
            .and_then(|()| out.write_all(b"\n"))
            .map_err(|e| Error::io(stdout, e))
    };
    while let Some(line) = lines.next_line() {
        let text = match line {
            Ok(text) => text,
            Err(_) => {
                summary.invalid += 1;
                continue;
            }
        };
        if text.trim().is_empty() {
            continue;
        }
        let event = match Event::parse_line(text) {
            Ok(event) => event,
            Err(_) => {
                summary.invalid += 1;
                write(out, text)?;
                continue;
            }
        };
        let mut w = match event {
            Event::Withdrawal(w) => w,
            other => {
                scorer.observe(&other);
                write(out, text)?;
                continue;
            }
        };
        if !seen.insert(w.id.clone()) {
            summary.invalid += 1;
            write(out, text)?;
            continue;
        }
        let Ok(mut object) = serde_json::from_str::<Ordered>(text) else {
            summary.invalid += 1;
            write(out, text)?;
            continue;
        };
        let decision = scorer.score_into(&w, &mut buf);
        let shown = decision.warning().map(|x| &**x.key);
        let p = model.cancel_probability(shown, object.get_str("typology"));
        let cancelled = rng.unit() < p;
        summary.withdrawals += 1;
        summary.cancelled += u64::from(cancelled);
        let (holdout, tier) = (decision.holdout(), decision.tier());
        if holdout {
            summary.held_out += 1;
            summary.held_out_cancelled += u64::from(cancelled);
        } else if tier > Tier::Allow {
            summary.warned += 1;
            summary.warned_cancelled += u64::from(cancelled);
        } else {
            summary.allowed += 1;
        }
        w.status = if cancelled {
            Status::Cancelled
        } else {
            Status::Completed
        };
        scorer.observe_withdrawal(&w);
        object.set(
            "status",
            serde_json::Value::from(if cancelled { "cancelled" } else { "completed" }),
        );
        let json = serde_json::to_string(&object)
            .map_err(|e| Error::io(stdout, format!("cannot encode event: {e}")))?;
        write(out, &json)?;
    }
    if let Some(e) = lines.io_error() {
        return Err(Error::io(std::path::Path::new("input"), e));
    }
    out.flush().map_err(|e| Error::io(stdout, e))?;
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typology_then_warning_then_default() {
        let model = ResponseModel {
            cancel_if_warned: 0.2,
            by_typology: [("romance".to_string(), 0.5)].into_iter().collect(),
            by_warning: [("p/a".to_string(), 0.3)].into_iter().collect(),
            base_cancel: 0.05,
            seed: 1,
        };
        assert_eq!(model.cancel_probability(None, Some("romance")), 0.05);
        assert_eq!(model.cancel_probability(Some("p/a"), Some("romance")), 0.5);
        assert_eq!(model.cancel_probability(Some("p/a"), Some("regular")), 0.3);
        assert_eq!(model.cancel_probability(Some("p/b"), None), 0.2);
    }

    #[test]
    fn draws_are_uniform_enough() {
        let mut rng = Rng(7);
        let n = 100_000;
        let below: usize = (0..n).filter(|_| rng.unit() < 0.25).count();
        assert!((below as f64 / n as f64 - 0.25).abs() < 0.01, "{below}");
    }

    #[test]
    fn fields_keep_their_order_and_status_is_set() {
        let parsed = serde_json::from_str::<Ordered>(r#"{"b":1,"a":"x","status":"cancelled"}"#);
        assert!(parsed.is_ok());
        let Ok(mut o) = parsed else { return };
        o.set("status", serde_json::Value::from("completed"));
        o.set("z", serde_json::Value::from(2));
        assert_eq!(
            serde_json::to_string(&o).unwrap_or_default(),
            r#"{"b":1,"a":"x","status":"completed","z":2}"#
        );
    }
}
