//! Prometheus metrics (`GET /metrics`), through `prometheus-client`.

use std::sync::Arc;
use std::time::Duration;

use dashmap::DashMap;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::decision::{Decision, Tier};
use crate::rules::RuleSet;

/// One label, `name="value"`.
type Label = [(&'static str, Arc<str>); 1];

/// Upper bounds of the `riskgate_decision_seconds` buckets: 25 µs to 100 ms.
const DECISION_BUCKETS: [f64; 12] = [
    0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1,
];

/// The service's metrics. Counting a decision takes a few atomic increments and no allocation
/// once each rule has been seen.
pub(crate) struct Metrics {
    registry: Registry,
    /// Indexed like [`Tier::ALL`].
    decisions: [Counter; 4],
    rule_hits: Family<Label, Counter>,
    rule_errors: Family<Label, Counter>,
    /// Counters by rule id, so that a hit does not build a label.
    hit_counters: DashMap<Box<str>, Counter, crate::state::Hasher>,
    error_counters: DashMap<Box<str>, Counter, crate::state::Hasher>,
    holdouts: Counter,
    decision_seconds: Histogram,
    ruleset_info: Family<Label, Gauge>,
    /// Serializes ruleset changes so that exactly one id is shown.
    ruleset_lock: parking_lot::Mutex<()>,
    store_errors: Counter,
    events: Family<Label, Counter>,
    reloads: Family<Label, Counter>,
}

impl Metrics {
    pub(crate) fn new(rules: &RuleSet) -> Metrics {
        let by_tier = Family::<Label, Counter>::default();
        // Counters cloned out of a family share its values: `inc` on ours shows under the label.
        let decisions =
            Tier::ALL.map(|tier| by_tier.get_or_create_owned(&[("tier", tier.name().into())]));
        let mut metrics = Metrics {
            registry: Registry::default(),
            decisions,
            rule_hits: Family::default(),
            rule_errors: Family::default(),
            hit_counters: DashMap::with_hasher(crate::state::Hasher::default()),
            error_counters: DashMap::with_hasher(crate::state::Hasher::default()),
            holdouts: Counter::default(),
            decision_seconds: Histogram::new(DECISION_BUCKETS),
            ruleset_info: Family::default(),
            ruleset_lock: parking_lot::Mutex::new(()),
            store_errors: Counter::default(),
            events: Family::default(),
            reloads: Family::default(),
        };
        let registry = &mut metrics.registry;
        registry.register(
            "riskgate_decisions",
            "Decisions answered by /v1/score, by tier",
            by_tier,
        );
        registry.register(
            "riskgate_rule_hits",
            "Hits by rule id (live and shadow rules)",
            metrics.rule_hits.clone(),
        );
        registry.register(
            "riskgate_rule_errors",
            "Rule failures by rule id (live and shadow rules)",
            metrics.rule_errors.clone(),
        );
        registry.register(
            "riskgate_holdouts",
            "Decisions held out (holdout group: tier kept, no warning shown)",
            metrics.holdouts.clone(),
        );
        registry.register(
            "riskgate_decision_seconds",
            "Time to decide a withdrawal (state read and rules), in seconds",
            metrics.decision_seconds.clone(),
        );
        registry.register(
            "riskgate_ruleset_info",
            "The live rule set (value 1, label ruleset = its id)",
            metrics.ruleset_info.clone(),
        );
        registry.register(
            "riskgate_store_errors",
            "Requests refused because the state store was unreachable or failed",
            metrics.store_errors.clone(),
        );
        registry.register(
            "riskgate_events",
            "Events recorded by /v1/events, by kind",
            metrics.events.clone(),
        );
        registry.register(
            "riskgate_reloads",
            "Rule-set reloads (/v1/reload and SIGHUP), by result (ok, refused)",
            metrics.reloads.clone(),
        );
        metrics.set_ruleset(rules);
        metrics
    }

    /// Counts one decision and how long it took.
    pub(crate) fn decided(&self, decision: &Decision, took: Duration) {
        if let Some(counter) = Tier::ALL
            .iter()
            .position(|t| *t == decision.tier)
            .and_then(|i| self.decisions.get(i))
        {
            counter.inc();
        }
        for hit in decision.hits.iter().chain(&decision.shadow_hits) {
            count(&self.hit_counters, &self.rule_hits, &hit.rule);
        }
        for error in &decision.errors {
            count(&self.error_counters, &self.rule_errors, &error.rule);
        }
        if decision.holdout {
            self.holdouts.inc();
        }
        self.decision_seconds.observe(took.as_secs_f64());
    }

    /// Counts a recorded event.
    pub(crate) fn recorded(&self, kind: &'static str) {
        self.events.get_or_create(&[("kind", kind.into())]).inc();
    }

    /// Counts a request refused because of the store.
    pub(crate) fn store_error(&self) {
        self.store_errors.inc();
    }

    /// Counts a reload attempt.
    pub(crate) fn reload(&self, ok: bool) {
        let result = if ok { "ok" } else { "refused" };
        self.reloads
            .get_or_create(&[("result", result.into())])
            .inc();
    }

    /// Shows `rules` as the one live rule set, and every rule of it in the hit and error
    /// counters (at 0 until it hits or fails; rules of earlier sets keep their counts).
    pub(crate) fn set_ruleset(&self, rules: &RuleSet) {
        for rule in rules.rules() {
            for (cache, family) in [
                (&self.hit_counters, &self.rule_hits),
                (&self.error_counters, &self.rule_errors),
            ] {
                if !cache.contains_key(&*rule.id) {
                    let counter = family.get_or_create_owned(&[("rule", rule.id.clone())]);
                    cache.insert(rule.id.as_ref().into(), counter);
                }
            }
        }
        let _one_at_a_time = self.ruleset_lock.lock();
        self.ruleset_info.clear();
        self.ruleset_info
            .get_or_create(&[("ruleset", rules.id().into())])
            .set(1);
    }

    /// The Prometheus (OpenMetrics) text exposition.
    pub(crate) fn render(&self) -> String {
        let mut text = String::with_capacity(4096);
        let _one_ruleset = self.ruleset_lock.lock();
        if encode(&mut text, &self.registry).is_err() {
            text.clear();
        }
        text
    }
}

fn count(
    cache: &DashMap<Box<str>, Counter, crate::state::Hasher>,
    family: &Family<Label, Counter>,
    rule: &str,
) {
    if let Some(counter) = cache.get(rule) {
        counter.inc();
        return;
    }
    let counter = family.get_or_create_owned(&[("rule", rule.into())]);
    counter.inc();
    cache.insert(rule.into(), counter);
}
