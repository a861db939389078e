//! Where the service keeps feature state and the set of recorded withdrawal ids: the three
//! operations it needs (score without changing state, record, check the store), over the
//! [`Scorer`]'s store (in process, or Redis shared by a fleet).

use crate::decision::Decision;
use crate::error::{Error, ErrorKind};
use crate::event::{Event, Withdrawal};
use crate::scorer::Scorer;

/// Why an operation was refused (nothing changed).
#[derive(Debug)]
pub(crate) enum Refusal {
    /// The withdrawal id was already recorded (409).
    Duplicate,
    /// The store could not be reached or failed (503).
    Store(String),
}

impl From<Error> for Refusal {
    fn from(e: Error) -> Refusal {
        match e.kind() {
            ErrorKind::Duplicate { .. } => Refusal::Duplicate,
            ErrorKind::Store { message } => Refusal::Store(message.clone()),
            _ => Refusal::Store(e.to_string()),
        }
    }
}

/// State behind the service. Every method may be called from many threads at once.
pub(crate) trait Backend: Send + Sync + 'static {
    /// The scorer (its live rule set; reloads go through it).
    fn scorer(&self) -> &Scorer;

    /// Whether the operations below may wait on the network (a shared store): the service
    /// then runs them where a blocked thread does not hold up other requests.
    fn may_block(&self) -> bool;

    /// Decides a withdrawal without changing state; a recorded id is a duplicate.
    fn try_score(&self, w: &Withdrawal) -> Result<Decision, Refusal>;

    /// Records an event exactly as `riskgate score` does; a withdrawal id is marked processed
    /// at the same moment (a second one is a duplicate and changes nothing).
    fn try_record(&self, event: &Event) -> Result<(), Refusal>;

    /// Whether the store can be reached now.
    fn check_store(&self) -> Result<(), Refusal>;
}

impl Backend for Scorer {
    fn scorer(&self) -> &Scorer {
        self
    }

    fn may_block(&self) -> bool {
        !self.store().is_memory()
    }

    fn try_score(&self, w: &Withdrawal) -> Result<Decision, Refusal> {
        Ok(Scorer::try_score(self, w)?)
    }

    fn try_record(&self, event: &Event) -> Result<(), Refusal> {
        Ok(Scorer::try_record(self, event)?)
    }

    fn check_store(&self) -> Result<(), Refusal> {
        Ok(Scorer::check_store(self)?)
    }
}
