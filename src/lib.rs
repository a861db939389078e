#![doc = include_str!("../README.md")]
// Library code must not bring down the withdrawal service.
#![deny(clippy::unwrap_used)] // a None or Err here is a bug we report, not a crash
#![deny(clippy::expect_used)] // same as unwrap
#![deny(clippy::panic)] // score() promises never to panic
#![deny(clippy::indexing_slicing)] // use get(): an index out of range would panic
#![deny(clippy::todo, clippy::unimplemented)] // no stubs
#![warn(missing_docs)] // the README doubles as the crate docs; items need theirs
#![forbid(unsafe_code)] // nothing here needs it

pub mod audit;
pub mod check;
pub mod decision;
mod error;
pub mod event;
pub mod gen;
mod json;
pub mod live_effect;
mod problem;
pub mod replay;
pub mod respond;
pub mod review;
pub mod rules;
mod scorer;
#[cfg(feature = "serve")]
pub mod serve;
pub mod signing;
pub mod snapshot;
mod state;
mod store;
pub mod stream;
mod tier;
mod time;
mod tx;

pub use audit::{verify_log, DecisionLog, LogOptions, LogReport, RulesetRecord};
pub use check::{check, CheckReport};
pub use decision::{
    Decision, DecisionBuf, DecisionRef, Hit, HitRef, RuleError, Tier, WarningRef, WithheldRef,
};
pub use error::{Error, ErrorKind};
pub use event::{normalize_address, Event, Label, Status, UserProfile, Withdrawal};
pub use rules::{
    Holdout, Limits, Outcome, ParamValue, Params, Policy, Problem, RuleSet, WarningText,
    WithheldWarning,
};
pub use scorer::{Scorer, Tx, RULESET_HISTORY};
pub use snapshot::{Restored, SnapshotInfo};
pub use state::{
    TxFeatures, DEST_TIMES, MAX_DESTINATIONS, MAX_DEST_USERS, MAX_DEVICES, MAX_HISTORY, MAX_RESETS,
    RETENTION_DAYS,
};
pub use store::{Store, DEFAULT_PREFIX as DEFAULT_STORE_PREFIX};
pub use stream::{EventStream, LineReader, Processed};
pub use time::Timestamp;
