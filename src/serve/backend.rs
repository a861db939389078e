//! Where the service keeps feature state and the set of recorded withdrawal ids: the three
//! operations it needs (score without changing state, record, check the store).

use dashmap::DashSet;

use crate::decision::Decision;
use crate::event::{Event, Withdrawal};
use crate::scorer::Scorer;

/// Why an operation was refused (nothing changed).
#[derive(Debug)]
pub(crate) enum Refusal {
    /// The withdrawal id was already recorded (409).
    Duplicate,
    /// The store could not be reached or failed (503).
    #[allow(dead_code)] // the in-process store cannot fail; a shared store can
    Store(String),
}

/// State behind the service. Every method may be called from many threads at once.
pub(crate) trait Backend: Send + Sync + 'static {
    /// The scorer (its live rule set; reloads go through it).
    fn scorer(&self) -> &Scorer;

    /// Decides a withdrawal without changing state; a recorded id is a duplicate.
    fn try_score(&self, w: &Withdrawal) -> Result<Decision, Refusal>;

    /// Records an event exactly as `riskgate score` does; a withdrawal id is marked processed
    /// at the same moment (a second one is a duplicate and changes nothing).
    fn try_record(&self, event: &Event) -> Result<(), Refusal>;

    /// Whether the store can be reached now.
    fn check_store(&self) -> Result<(), Refusal>;
}

/// In-process state: a [`Scorer`] plus the withdrawal ids recorded so far (as `riskgate score`
/// remembers the ids of its stream; they are kept for the life of the process).
pub(crate) struct Memory {
    scorer: Scorer,
    recorded: DashSet<Box<str>, crate::state::Hasher>,
}

impl Memory {
    pub(crate) fn new(scorer: Scorer) -> Memory {
        Memory {
            scorer,
            recorded: DashSet::with_hasher(crate::state::Hasher::default()),
        }
    }
}

impl Backend for Memory {
    fn scorer(&self) -> &Scorer {
        &self.scorer
    }

    fn try_score(&self, w: &Withdrawal) -> Result<Decision, Refusal> {
        if self.recorded.contains(w.id.as_str()) {
            return Err(Refusal::Duplicate);
        }
        Ok(self.scorer.score(w))
    }

    fn try_record(&self, event: &Event) -> Result<(), Refusal> {
        if let Event::Withdrawal(w) = event {
            // Insert-if-absent is one atomic step: of two concurrent posts of one id, exactly
            // one is recorded.
            if !self.recorded.insert(w.id.as_str().into()) {
                return Err(Refusal::Duplicate);
            }
        }
        self.scorer.observe(event);
        Ok(())
    }

    fn check_store(&self) -> Result<(), Refusal> {
        Ok(())
    }
}
