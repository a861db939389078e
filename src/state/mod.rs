//! Feature state (contract section 2): what riskgate remembers about users and destinations,
//! and the `tx` features computed from it.
//!
//! State lives in two [`DashMap`]s (per user, per destination) so that many threads can score
//! and observe at once; a lock is held only while a feature vector is being read or an event
//! recorded, never while rules run.
//!
//! # Memory bound
//! Per user: at most [`MAX_HISTORY`] withdrawals, [`MAX_DESTINATIONS`] destinations,
//! [`MAX_DEVICES`] devices and [`MAX_RESETS`] password resets; when a withdrawal is recorded,
//! whatever lies more than [`RETENTION_DAYS`] days before it (or before the user's newest event,
//! if that is earlier) is forgotten. Per destination: at most [`MAX_DEST_USERS`] users, each with
//! their [`DEST_TIMES`] latest distinct withdrawal times, trimmed the same way. Idle users and
//! destinations are swept out as the stream moves on. "Before it" rather than "before the newest
//! ever seen", so that one event dated far in the future does not wipe history. Known limit: a
//! payer's withdrawals to a destination dated before its [`DEST_TIMES`] latest ones are not
//! counted by `dest_users_*` (only possible when events arrive out of order).

mod destination;
mod features;
pub(crate) mod snapshot;
mod user;

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;

use dashmap::DashMap;

pub use features::TxFeatures;

use crate::event::{normalize_address, Event, Status, Withdrawal};
use crate::time::MICROS_PER_DAY;
use destination::DestinationState;
pub(crate) use user::UserState;

/// Withdrawals kept per user (newest by time).
pub const MAX_HISTORY: usize = 256;
/// Distinct destinations remembered per user (least recently used forgotten first).
pub const MAX_DESTINATIONS: usize = 128;
/// Devices remembered per user.
pub const MAX_DEVICES: usize = 32;
/// Password resets remembered per user.
pub const MAX_RESETS: usize = 8;
/// Users remembered per destination.
pub const MAX_DEST_USERS: usize = 4096;
/// Withdrawal times kept per (destination, user).
pub const DEST_TIMES: usize = 4;
/// History older than this (relative to the user's newest event) is forgotten.
pub const RETENTION_DAYS: i64 = 400;
/// Per-destination payers are kept this long after the destination's newest withdrawal: the
/// windows reach back only 30 days, but an event processed out of order may be dated well
/// before the newest, and the contract allows forgetting only what is older than 400 days.
pub(crate) const DEST_RETENTION: i64 = RETENTION_DAYS * MICROS_PER_DAY;
/// How many observations between sweeps of idle users and destinations.
const SWEEP_EVERY: u64 = 1 << 16;

/// The maps' hasher: foldhash, seeded per process (ids and addresses come from outside, so
/// the seed is random), several times faster than the standard SipHash on short keys.
pub(crate) type Hasher = foldhash::fast::RandomState;

/// All feature state. Cheap to share: every method takes `&self`.
#[derive(Default)]
pub(crate) struct State {
    users: DashMap<Arc<str>, UserState, Hasher>,
    destinations: DashMap<Arc<str>, DestinationState, Hasher>,
    observed: AtomicU64,
    newest_ts: AtomicI64,
}

impl State {
    /// The state-derived features of a withdrawal (contract section 2), without changing state.
    /// `destination` is the withdrawal's normalized destination.
    pub(crate) fn features(&self, w: &Withdrawal, destination: &str) -> TxFeatures {
        let now = w.ts.as_micros();
        let mut f = TxFeatures::empty(w);
        if let Some(user) = self.users.get(w.user_id.as_str()) {
            user.fill(&mut f, now, destination, w.device_id.as_deref());
        }
        if let Some(dest) = self.destinations.get(destination) {
            let (users_24h, users_30d) = dest.other_users(&w.user_id, now);
            f.dest_users_24h = users_24h;
            f.dest_users_30d = users_30d;
        }
        f
    }

    /// Records an event: a completed withdrawal enters history; logins and password resets are
    /// remembered; cancelled withdrawals change nothing.
    pub(crate) fn observe(&self, event: &Event) {
        let ts = event.ts().as_micros();
        match event {
            Event::Withdrawal(w) => return self.observe_withdrawal(w),
            Event::PasswordReset { user_id, .. } => self.user_mut(user_id, |u| u.record_reset(ts)),
            Event::Login {
                user_id, device_id, ..
            } => self.user_mut(user_id, |u| u.record_device(device_id, ts)),
        }
        self.observed_at(ts);
    }

    /// Records a withdrawal: completed ones enter history, cancelled ones change nothing.
    pub(crate) fn observe_withdrawal(&self, w: &Withdrawal) {
        if w.status == Status::Completed {
            self.record_withdrawal(w);
            self.observed_at(w.ts.as_micros());
        }
    }

    fn observed_at(&self, ts: i64) {
        self.newest_ts.fetch_max(ts, Ordering::Relaxed);
        if self.observed.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == SWEEP_EVERY - 1 {
            self.sweep(ts);
        }
    }

    fn record_withdrawal(&self, w: &Withdrawal) {
        let ts = w.ts.as_micros();
        let destination = normalize_address(&w.destination);
        let user_key: Arc<str> = match self.users.get(w.user_id.as_str()) {
            Some(entry) => entry.key().clone(),
            None => Arc::from(w.user_id.as_str()),
        };
        let dest_key: Arc<str> = {
            let mut entry = match self.destinations.get_mut(destination.as_ref()) {
                Some(entry) => entry,
                None => self
                    .destinations
                    .entry(Arc::from(destination.as_ref()))
                    .or_default(),
            };
            entry.record(&user_key, ts);
            entry.key().clone()
        };
        let mut user = self.users.entry(user_key).or_default();
        user.record_withdrawal(dest_key, ts, w.amount_usd, w.device_id.as_deref());
    }

    fn user_mut(&self, user_id: &str, update: impl FnOnce(&mut UserState)) {
        match self.users.get_mut(user_id) {
            Some(mut user) => update(&mut user),
            None => update(&mut self.users.entry(Arc::from(user_id)).or_default()),
        }
    }

    /// Drops users and destinations with nothing inside their windows any more, as of the event
    /// being observed (`now`) rather than the newest ever seen: one event dated far in the future
    /// must not make everyone's history look stale.
    fn sweep(&self, now: i64) {
        let newest = self.newest_ts.load(Ordering::Relaxed).min(now);
        let user_horizon = newest.saturating_sub(RETENTION_DAYS * MICROS_PER_DAY);
        self.users.retain(|_, u| u.newest() > user_horizon);
        let dest_horizon = newest.saturating_sub(DEST_RETENTION);
        self.destinations.retain(|_, d| d.newest() > dest_horizon);
    }

    /// Calls `visit` with every user (id, record) and then every destination (address, its
    /// payers: user id and latest times newest first, unused slots dropped).
    #[cfg_attr(not(feature = "redis"), allow(dead_code))] // used by the Redis store
    pub(crate) fn for_each_record(&self, mut visit: impl FnMut(Record<'_>)) {
        for entry in self.users.iter() {
            visit(Record::User(entry.key(), entry.value()));
        }
        for entry in self.destinations.iter() {
            let payers = entry
                .value()
                .payers
                .iter()
                .map(|p| {
                    let times = p.times.iter().copied().filter(|&t| t != i64::MIN);
                    (&*p.user, times.collect())
                })
                .collect();
            visit(Record::Destination(entry.key(), payers));
        }
    }

    /// Number of users with state.
    pub(crate) fn user_count(&self) -> usize {
        self.users.len()
    }
}

/// One record of [`State::for_each_record`].
#[cfg_attr(not(feature = "redis"), allow(dead_code))]
pub(crate) enum Record<'a> {
    User(&'a str, &'a UserState),
    Destination(&'a str, Vec<(&'a str, Vec<i64>)>),
}

/// A fixed-seed hash of an id or address (foldhash: a few nanoseconds for an address), kept
/// inline next to ids and addresses held on the heap, as a filter before comparing them:
/// comparing the strings themselves means following a pointer per candidate (a cache miss, on
/// a large state). Fixed, so that it is the same after a snapshot is restored; a collision
/// only costs a string comparison.
pub(crate) fn id_hash(id: &str) -> u64 {
    use std::hash::BuildHasher;
    foldhash::fast::FixedState::default().hash_one(id)
}

/// Per-user and per-destination lists are boxed slices, not vectors: 16 bytes inline instead
/// of 24 and no spare capacity (most users have a few withdrawals, destinations and devices,
/// and most addresses a single payer). A change goes through a vector: `edit` lends one
/// (taken from the box without copying) and boxes it again, reallocating only when the length
/// changed. Changes are rare next to reads (a withdrawal's record, not its scoring).
pub(crate) fn edit<T, R>(items: &mut Box<[T]>, change: impl FnOnce(&mut Vec<T>) -> R) -> R {
    let mut list = std::mem::take(items).into_vec();
    let result = change(&mut list);
    *items = list.into_boxed_slice();
    result
}
