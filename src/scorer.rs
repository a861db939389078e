//! The [`Scorer`]: state plus the live rule set, shared by every thread of the host.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;

use crate::audit::{DecisionLog, RulesetRecord};
use crate::decision::{Decision, DecisionBuf, DecisionBuilder, DecisionRef};
use crate::error::Error;
use crate::event::{normalize_address, Event, Withdrawal};
use crate::rules::{RuleSet, TxView, Watchlists};
use crate::state::{State, TxFeatures};
use crate::store::{Store, StoreKind};
use crate::stream::IdSet;

/// Scores withdrawals against the live rule set and remembers what it observes.
///
/// `Send + Sync`: share one behind an `Arc` across threads. [`Scorer::score`] never panics,
/// never blocks on I/O and holds no lock while rules run. [`Scorer::reload`] swaps the whole
/// rule set at once; decisions in flight finish on the set they started with.
pub struct Scorer {
    rules: ArcSwap<RuleSet>,
    state: State,
    /// Where feature state lives: `state` above (memory) or a shared server.
    store: Store,
    /// Withdrawal ids recorded through [`Scorer::try_record`] with the memory store (a shared
    /// store keeps them itself).
    processed: parking_lot::Mutex<IdSet>,
    /// The last store failure met by the infallible [`Scorer::score`] (see its docs).
    store_failure: parking_lot::Mutex<Option<Error>>,
    /// Every rule set made live, oldest first (at most [`RULESET_HISTORY`]).
    history: parking_lot::Mutex<std::collections::VecDeque<RulesetRecord>>,
    /// Where rule-set changes are logged, when attached.
    audit_log: parking_lot::Mutex<Option<Arc<DecisionLog>>>,
}

/// How many rule-set changes [`Scorer::ruleset_history`] keeps (the oldest are dropped first).
pub const RULESET_HISTORY: usize = 1024;

impl std::fmt::Debug for Scorer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scorer")
            .field("ruleset", &self.rules.load().id())
            .field("users", &self.state.user_count())
            .finish()
    }
}

pub use crate::tx::Tx;

impl Scorer {
    /// A scorer with no state, deciding with `rules`.
    pub fn new(rules: RuleSet) -> Scorer {
        Scorer::new_shared(Arc::new(rules))
    }

    /// A scorer with no state, deciding with an already shared rule set.
    pub fn new_shared(rules: Arc<RuleSet>) -> Scorer {
        Scorer::with_store_shared(rules, Store::memory())
    }

    /// A scorer whose feature state (and processed withdrawal ids) live in `store`: with a
    /// shared store, any number of scorers in any number of processes decide as one that saw
    /// all their events (contract section 5). Use [`Scorer::try_score`] and
    /// [`Scorer::try_record`] with a shared store: they report a store failure.
    pub fn with_store(rules: RuleSet, store: Store) -> Scorer {
        Scorer::with_store_shared(Arc::new(rules), store)
    }

    /// [`Scorer::with_store`] with an already shared rule set.
    pub fn with_store_shared(rules: Arc<RuleSet>, store: Store) -> Scorer {
        let first = RulesetRecord::now(&rules);
        Scorer {
            rules: ArcSwap::new(rules),
            state: State::default(),
            store,
            processed: parking_lot::Mutex::new(IdSet::default()),
            store_failure: parking_lot::Mutex::new(None),
            history: parking_lot::Mutex::new(std::collections::VecDeque::from([first])),
            audit_log: parking_lot::Mutex::new(None),
        }
    }

    /// Loads the rule set in `dir` (see [`RuleSet::load`]).
    pub fn from_dir(dir: impl AsRef<Path>) -> Result<Scorer, Error> {
        RuleSet::load(dir).map(Scorer::new)
    }

    /// Loads `dir` and, when it loads without a problem, makes it the live rule set at once.
    /// On any problem the current set stays live and the error lists every problem found.
    /// The change is recorded in [`Scorer::ruleset_history`] and, when a log is attached, in
    /// the log before the new set decides anything (a log write error keeps the current set).
    pub fn reload(&self, dir: impl AsRef<Path>) -> Result<Arc<RuleSet>, Error> {
        let rules = Arc::new(RuleSet::load(dir)?);
        self.go_live(rules.clone())?;
        Ok(rules)
    }

    /// Makes an already loaded rule set live (recorded like [`Scorer::reload`]).
    pub fn replace_rules(&self, rules: RuleSet) -> Result<(), Error> {
        self.go_live(Arc::new(rules))
    }

    fn go_live(&self, rules: Arc<RuleSet>) -> Result<(), Error> {
        // One change at a time, so that the history, the log and the live set agree on order.
        let mut history = self.history.lock();
        let record = RulesetRecord::now(&rules);
        let log = self.audit_log.lock().clone();
        if let Some(log) = log {
            log.append_ruleset(&record)?;
        }
        if history.len() >= RULESET_HISTORY {
            history.pop_front();
        }
        history.push_back(record);
        self.rules.store(rules);
        Ok(())
    }

    /// Every successful load and reload, oldest first: when, which ruleset id, which packs
    /// at which versions. The first entry is the set the scorer was built with.
    pub fn ruleset_history(&self) -> Vec<RulesetRecord> {
        self.history.lock().iter().cloned().collect()
    }

    /// Attaches a decision log: the live rule set is logged at once, and every later reload
    /// before it decides. Decisions are logged by the caller with
    /// [`DecisionLog::append_decision`] (scoring itself never does I/O).
    pub fn set_audit_log(&self, log: Arc<DecisionLog>) -> Result<(), Error> {
        let _no_reload_meanwhile = self.history.lock();
        let mut slot = self.audit_log.lock();
        log.append_ruleset(&RulesetRecord::now(&self.rules.load()))?;
        *slot = Some(log);
        Ok(())
    }

    /// The live rule set.
    pub fn rules(&self) -> Arc<RuleSet> {
        self.rules.load_full()
    }

    /// Decides a withdrawal. Reads state, never changes it: call [`Scorer::observe`] with the
    /// withdrawal afterwards so that it enters history (when completed).
    ///
    /// With a shared store ([`Scorer::with_store`]) prefer [`Scorer::try_score`]: this one
    /// cannot return the store's failure, so it then answers a fail-closed decision (tier
    /// `cool_off`, the error listed under rule `store`) and keeps the error for
    /// [`Scorer::take_store_failure`]. It does not check for a duplicate id.
    pub fn score(&self, w: &Withdrawal) -> Decision {
        match &self.store.kind {
            StoreKind::Memory => self.evaluate(w, None, |d| self.state.features(w, d)),
            #[cfg(feature = "redis")]
            StoreKind::Redis(_) => self.score_shared(w, None),
        }
    }

    /// Like [`Scorer::score`], also recording how long each rule took (`timings[i]` for rule
    /// `i` of the rule set; `None` when its pack did not apply).
    pub fn score_timed(&self, w: &Withdrawal, timings: &mut Vec<Option<Duration>>) -> Decision {
        match &self.store.kind {
            StoreKind::Memory => self.evaluate(w, Some(timings), |d| self.state.features(w, d)),
            #[cfg(feature = "redis")]
            StoreKind::Redis(_) => self.score_shared(w, Some(timings)),
        }
    }

    /// Decides a withdrawal without changing state. `Err` with [`crate::ErrorKind::Store`]
    /// when the store failed (nothing was decided), with [`crate::ErrorKind::Duplicate`] when
    /// the withdrawal id was already recorded (through [`Scorer::try_record`], by any process
    /// sharing the store). With a shared store: one round trip.
    pub fn try_score(&self, w: &Withdrawal) -> Result<Decision, Error> {
        match &self.store.kind {
            StoreKind::Memory => {
                if self.processed.lock().contains(w.id.as_str()) {
                    return Err(Error::duplicate(&w.id));
                }
                Ok(self.evaluate(w, None, |d| self.state.features(w, d)))
            }
            #[cfg(feature = "redis")]
            StoreKind::Redis(redis) => {
                let destination = normalize_address(&w.destination);
                let (features, id_seen) = redis.features(w, &destination)?;
                if id_seen {
                    return Err(Error::duplicate(&w.id));
                }
                Ok(self.evaluate(w, None, |_| features))
            }
        }
    }

    /// Records an event as `riskgate score` does: a withdrawal's id is marked processed
    /// together with its entering history (when completed); `Err` with
    /// [`crate::ErrorKind::Duplicate`] and no change when the id was recorded before, with
    /// [`crate::ErrorKind::Store`] when the store failed (then the event may or may not have
    /// been recorded: a shared store records it whole or not at all).
    pub fn try_record(&self, event: &Event) -> Result<(), Error> {
        match &self.store.kind {
            StoreKind::Memory => {
                if let Event::Withdrawal(w) = event {
                    return self.try_record_withdrawal(w);
                }
                self.state.observe(event);
                Ok(())
            }
            #[cfg(feature = "redis")]
            StoreKind::Redis(redis) => redis.record(event),
        }
    }

    /// [`Scorer::try_record`] of a withdrawal, without wrapping it in an [`Event`].
    pub(crate) fn try_record_withdrawal(&self, w: &Withdrawal) -> Result<(), Error> {
        match &self.store.kind {
            StoreKind::Memory => {
                let mut processed = self.processed.lock();
                if processed.contains(w.id.as_str()) {
                    return Err(Error::duplicate(&w.id));
                }
                processed.insert(&w.id);
                self.state.observe_withdrawal(w);
                Ok(())
            }
            #[cfg(feature = "redis")]
            StoreKind::Redis(redis) => redis.record_withdrawal_event(w),
        }
    }

    /// `Ok` while the store answers (always, for the memory store).
    pub fn check_store(&self) -> Result<(), Error> {
        match &self.store.kind {
            StoreKind::Memory => Ok(()),
            #[cfg(feature = "redis")]
            StoreKind::Redis(redis) => redis.check(),
        }
    }

    /// The store this scorer keeps its state in.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The store failure the infallible [`Scorer::score`] last met, if any (taken: the next
    /// call answers `None` until another failure).
    pub fn take_store_failure(&self) -> Option<Error> {
        self.store_failure.lock().take()
    }

    /// [`Scorer::score`] through a shared store: the features in one round trip, then the
    /// rules; on a store failure, the fail-closed decision.
    #[cfg(feature = "redis")]
    fn score_shared(
        &self,
        w: &Withdrawal,
        timings: Option<&mut Vec<Option<Duration>>>,
    ) -> Decision {
        let StoreKind::Redis(redis) = &self.store.kind else {
            return self.evaluate(w, timings, |d| self.state.features(w, d));
        };
        let destination = normalize_address(&w.destination);
        let fetched = redis.features(w, &destination).map(|(f, _)| f);
        match fetched {
            Ok(features) => self.evaluate(w, timings, |_| features),
            Err(e) => {
                let decision = self.fail_closed(w, &destination, &e);
                *self.store_failure.lock() = Some(e);
                decision
            }
        }
    }

    /// The decision when state could not be read: `cool_off`, the policy's default warning,
    /// the failure listed as an error of rule `store`.
    #[cfg(feature = "redis")]
    fn fail_closed(&self, w: &Withdrawal, destination: &str, e: &Error) -> Decision {
        let rules = self.rules.load();
        let mut decision = DecisionBuilder::new(&rules);
        decision.fail_closed(e.to_string());
        decision.finish(w, destination)
    }

    /// Records an event: completed withdrawals enter history, logins and password resets are
    /// remembered, cancelled withdrawals change nothing. With a shared store, use
    /// [`Scorer::try_record`] (this one keeps a failure for [`Scorer::take_store_failure`]
    /// and ignores a duplicate id).
    pub fn observe(&self, event: &Event) {
        match &self.store.kind {
            StoreKind::Memory => self.state.observe(event),
            #[cfg(feature = "redis")]
            StoreKind::Redis(redis) => match redis.record(event) {
                Ok(()) => {}
                Err(e) if matches!(e.kind(), crate::ErrorKind::Duplicate { .. }) => {}
                Err(e) => *self.store_failure.lock() = Some(e),
            },
        }
    }

    /// Records a withdrawal (the same as [`Scorer::observe`] with [`Event::Withdrawal`]).
    pub fn observe_withdrawal(&self, w: &Withdrawal) {
        match &self.store.kind {
            StoreKind::Memory => self.state.observe_withdrawal(w),
            #[cfg(feature = "redis")]
            StoreKind::Redis(redis) => match redis.record_withdrawal_event(w) {
                Ok(()) => {}
                Err(e) if matches!(e.kind(), crate::ErrorKind::Duplicate { .. }) => {}
                Err(e) => *self.store_failure.lock() = Some(e),
            },
        }
    }

    /// The `tx` a rule would see for this withdrawal now.
    pub fn tx(&self, w: &Withdrawal) -> Tx {
        let rules = self.rules.load();
        let destination = normalize_address(&w.destination).into_owned();
        let features = match &self.store.kind {
            StoreKind::Memory => self.state.features(w, &destination),
            #[cfg(feature = "redis")]
            StoreKind::Redis(redis) => match redis.features(w, &destination) {
                Ok((features, _)) => features,
                Err(e) => {
                    // Inspection only (never a decision); the failure is kept as for `score`.
                    *self.store_failure.lock() = Some(e);
                    TxFeatures::empty(w)
                }
            },
        };
        let watchlists = rules
            .watchlists_of(&destination)
            .map(|ids| ids.iter().map(|d| d.to_string()).collect())
            .unwrap_or_default();
        Tx {
            id: w.id.clone(),
            user_id: w.user_id.clone(),
            asset: w.asset.clone(),
            network: w.network.clone(),
            country: w.user.country.clone(),
            locale: w.user.locale.clone(),
            referral: w.user.referral.clone(),
            destination,
            amount_usd: w.amount_usd,
            features,
            watchlists,
        }
    }

    /// Number of users the scorer holds state for.
    pub fn user_count(&self) -> usize {
        self.state.user_count()
    }

    pub(crate) fn state(&self) -> &State {
        &self.state
    }

    /// Runs the rules on `w`; `features` computes the state-derived fields from the
    /// normalized destination (only when some rule applies).
    fn evaluate(
        &self,
        w: &Withdrawal,
        timings: Option<&mut Vec<Option<Duration>>>,
        features: impl FnOnce(&str) -> TxFeatures,
    ) -> Decision {
        let rules = self.rules.load();
        let destination = normalize_address(&w.destination);
        let mut decision = DecisionBuilder::new(&rules);
        run_rules(&rules, w, &destination, timings, features, &mut decision);
        decision.finish(w, &destination)
    }

    /// [`Scorer::score`] into reused buffers: the same decision (see
    /// [`DecisionRef::to_decision`]), read through a [`DecisionRef`] that borrows `buf`, `w`
    /// and the rule set instead of owning its strings. Once `buf` has grown, nothing is
    /// allocated per decision: for a host (or `riskgate replay`, `riskgate score`) that only
    /// reads or writes out each decision. With a shared store, the same fail-closed decision
    /// as [`Scorer::score`] on a store failure.
    pub fn score_into<'a>(&self, w: &'a Withdrawal, buf: &'a mut DecisionBuf) -> DecisionRef<'a> {
        self.score_into_timed(w, buf, None)
    }

    /// [`Scorer::score_into`], also recording each rule's time as [`Scorer::score_timed`]
    /// does when `timings` is given.
    pub(crate) fn score_into_timed<'a>(
        &self,
        w: &'a Withdrawal,
        buf: &'a mut DecisionBuf,
        timings: Option<&mut Vec<Option<Duration>>>,
    ) -> DecisionRef<'a> {
        let (mut decision, title, body) = DecisionBuilder::in_buf(buf, self.rules.load());
        let rules = decision.rules();
        let destination = normalize_address(&w.destination);
        match &self.store.kind {
            StoreKind::Memory => {
                let features = |d: &str| self.state.features(w, d);
                run_rules(rules, w, &destination, timings, features, &mut decision);
            }
            #[cfg(feature = "redis")]
            StoreKind::Redis(redis) => match redis.features(w, &destination) {
                Ok((features, _)) => {
                    run_rules(rules, w, &destination, timings, |_| features, &mut decision);
                }
                Err(e) => {
                    decision.fail_closed(e.to_string());
                    *self.store_failure.lock() = Some(e);
                }
            },
        }
        decision.finish_view(w, &destination, title, body)
    }
}

/// Runs the rules of `rules` that apply to `w` into `decision`; `features` computes the
/// state-derived fields from the normalized `destination` (only when some rule applies).
fn run_rules(
    rules: &RuleSet,
    w: &Withdrawal,
    destination: &str,
    mut timings: Option<&mut Vec<Option<Duration>>>,
    features: impl FnOnce(&str) -> TxFeatures,
    decision: &mut DecisionBuilder<'_>,
) {
    let now = w.ts.as_micros();
    // Which packs apply (region, campaign window): on the stack for up to 64 packs.
    let packs = rules.packs.len();
    let mut applies_inline = [false; 64];
    let mut applies_heap = Vec::new();
    let applies: &mut [bool] = if packs <= applies_inline.len() {
        applies_inline.get_mut(..packs).unwrap_or_default()
    } else {
        applies_heap.resize(packs, false);
        &mut applies_heap
    };
    for (slot, pack) in applies.iter_mut().zip(&rules.packs) {
        *slot = pack.applies(&w.user.country, now);
    }
    let applies = |pack: usize| applies.get(pack).copied().unwrap_or(false);
    if let Some(t) = timings.as_deref_mut() {
        t.clear();
        t.resize(rules.rules.len(), None);
    }
    if !rules.rules.iter().any(|r| applies(r.pack)) {
        return;
    }
    // The fast path reads this view directly; the Rhai map is built from it only when an
    // applicable rule needs the interpreter.
    let watchlists = rules
        .watchlists_of(destination)
        .map(|l| l.as_slice())
        .unwrap_or_default();
    let tx = TxView::new(
        [
            &w.id,
            &w.user_id,
            &w.asset,
            &w.network,
            &w.user.country,
            &w.user.locale,
            &w.user.referral,
            destination,
        ],
        w.amount_usd,
        features(destination),
        Watchlists::Dynamic(watchlists),
    );
    rules.run_rules(&tx, applies, timings.is_some(), |i, outcome, took| {
        if let (Some(t), Some(took)) = (timings.as_deref_mut(), took) {
            if let Some(slot) = t.get_mut(i) {
                *slot = Some(took);
            }
        }
        decision.add(i, outcome);
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send_sync<T: Send + Sync>() {}

    #[test]
    fn scorer_is_send_and_sync() {
        assert_send_sync::<Scorer>();
    }
}
