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
mod table;
mod user;

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

pub use features::TxFeatures;

use crate::event::{normalize_address, Event, Status, Withdrawal};
use crate::time::MICROS_PER_DAY;
use destination::DestRecord;
use table::Table;
use user::UserRecord;
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

/// The hasher of hash maps keyed by outside strings: foldhash, seeded per process (ids and
/// addresses come from outside, so the seed is random), several times faster than the
/// standard SipHash on short keys.
pub(crate) type Hasher = foldhash::fast::RandomState;

/// All feature state. Cheap to share: every method takes `&self`.
///
/// Users and destinations are interned in two [`Table`]s: a user's known destinations are
/// destination ids, a destination's payers are user ids (4 bytes each). An id is reused once
/// its record is removed, so a record is removed only when nothing names its id: a user's
/// record counts the payer entries naming it, a destination's the users knowing it (`refs`),
/// and the sweep removes only records with no references. A stale destination still known by
/// a user loses its payers (as a removed one would) but keeps its id; a stale user still named
/// by a payer stays until the payer is forgotten (within the destination's own retention).
///
/// Locks: one shard lock at a time, except that reading features holds the user's shard
/// (read) while reading the destination's (read); nothing takes a user lock while holding a
/// destination lock, so the two cannot wait on each other.
#[derive(Default)]
pub(crate) struct State {
    users: Table<UserRecord>,
    destinations: Table<DestRecord>,
    observed: AtomicU64,
    newest_ts: AtomicI64,
}

impl State {
    /// The state-derived features of a withdrawal (contract section 2), without changing state.
    /// `destination` is the withdrawal's normalized destination.
    pub(crate) fn features(&self, w: &Withdrawal, destination: &str) -> TxFeatures {
        let now = w.ts.as_micros();
        let mut f = TxFeatures::empty(w);
        let known = self.users.read(w.user_id.as_str(), |uid, user| {
            let dest = self.destinations.read(destination, |did, d| {
                let (users_24h, users_30d) = d.other_users(Some(uid), now);
                f.dest_users_24h = users_24h;
                f.dest_users_30d = users_30d;
                did
            });
            user.fill(&mut f, now, dest, w.device_id.as_deref());
        });
        if known.is_none() {
            if let Some((day, month)) = self
                .destinations
                .read(destination, |_, d| d.other_users(None, now))
            {
                f.dest_users_24h = day;
                f.dest_users_30d = month;
            }
        }
        f
    }

    /// Records an event: a completed withdrawal enters history; logins and password resets are
    /// remembered; cancelled withdrawals change nothing.
    pub(crate) fn observe(&self, event: &Event) {
        let ts = event.ts().as_micros();
        match event {
            Event::Withdrawal(w) => return self.observe_withdrawal(w),
            Event::PasswordReset { user_id, .. } => {
                self.users.write(
                    user_id,
                    || UserRecord::new(user_id),
                    |_, u| u.record_reset(ts),
                );
            }
            Event::Login {
                user_id, device_id, ..
            } => {
                self.users.write(
                    user_id,
                    || UserRecord::new(user_id),
                    |_, u| u.record_device(device_id, ts),
                );
            }
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

    /// Three steps, one lock at a time: the user's id (pinned by a reference, so that a sweep
    /// cannot remove a user just created), the destination's payers (the destination pinned
    /// the same way), then the user's history; references are then settled.
    fn record_withdrawal(&self, w: &Withdrawal) {
        let ts = w.ts.as_micros();
        let destination = normalize_address(&w.destination);
        let user_id = w.user_id.as_str();
        let Some(uid) = self.users.write(
            user_id,
            || UserRecord::new(user_id),
            |uid, u| {
                u.add_refs(1);
                uid
            },
        ) else {
            return;
        };
        let mut dropped_users = Vec::new();
        let recorded = self.destinations.write(
            &destination,
            || DestRecord::new(&destination),
            |did, d| {
                d.add_refs(1);
                (did, d.record(uid, ts, &mut dropped_users))
            },
        );
        let mut forgotten = Vec::new();
        let mut user_refs = 0;
        if let Some((did, new_payer)) = recorded {
            let newly_known = self.users.write_id(uid, |u| {
                u.record_withdrawal(
                    did,
                    ts,
                    w.amount_usd,
                    w.device_id.as_deref(),
                    &mut forgotten,
                )
            });
            if newly_known != Some(true) {
                forgotten.push(did);
            }
            // The pin becomes the new payer entry's reference.
            if new_payer {
                user_refs = 1;
            }
        }
        self.users.write_id(uid, |u| u.add_refs(user_refs - 1));
        for did in forgotten {
            self.destinations.write_id(did, |d| d.add_refs(-1));
        }
        for user in dropped_users {
            self.users.write_id(user, |u| u.add_refs(-1));
        }
    }

    /// Drops users and destinations with nothing inside their windows any more, as of the event
    /// being observed (`now`) rather than the newest ever seen: one event dated far in the future
    /// must not make everyone's history look stale. Records still named by another are kept
    /// (see [`State`]).
    fn sweep(&self, now: i64) {
        let newest = self.newest_ts.load(Ordering::Relaxed).min(now);
        let user_horizon = newest.saturating_sub(RETENTION_DAYS * MICROS_PER_DAY);
        let mut forgotten = Vec::new();
        self.users.retain(
            |u| u.refs() > 0 || u.newest() > user_horizon,
            |u| forgotten.extend(u.destinations().map(|d| d.dest)),
        );
        for did in forgotten {
            self.destinations.write_id(did, |d| d.add_refs(-1));
        }
        let dest_horizon = newest.saturating_sub(DEST_RETENTION);
        let mut dropped = Vec::new();
        self.destinations.retain(
            |d| {
                if d.newest() > dest_horizon {
                    return true;
                }
                d.clear_payers(&mut dropped);
                d.refs() > 0
            },
            |_| {},
        );
        for user in dropped {
            self.users.write_id(user, |u| u.add_refs(-1));
        }
    }

    /// Calls `visit` with every user (id, record) and then every destination (address, its
    /// payers: user id and latest times newest first, unused slots dropped).
    #[cfg_attr(not(feature = "redis"), allow(dead_code))] // used by the Redis store
    pub(crate) fn for_each_record(&self, mut visit: impl FnMut(Record<'_>)) {
        // Records are copied out of each shard before other tables are read (see `State`).
        let mut users = Vec::new();
        self.users.for_each(|_, u| users.push(u.clone()));
        for record in users {
            let mut user = UserState {
                record,
                addresses: Vec::new(),
            };
            let mut addresses = Vec::new();
            user.record.map_destinations(|did| {
                let address = self.destinations.read_id(did, |d| d.key().to_owned());
                addresses.push(std::sync::Arc::from(address.unwrap_or_default()));
                (addresses.len() - 1) as u32
            });
            user.addresses = addresses;
            visit(Record::User(user.record.key(), &user));
        }
        let mut destinations = Vec::new();
        self.destinations
            .for_each(|_, d| destinations.push(d.clone()));
        for d in destinations {
            let payers: Vec<(String, Vec<i64>)> = d
                .payers()
                .map(|(uid, times)| {
                    let user = self.users.read_id(uid, |u| u.key().to_owned());
                    let times = times.iter().copied().filter(|&t| t != i64::MIN);
                    (user.unwrap_or_default(), times.collect())
                })
                .collect();
            let payers = payers
                .iter()
                .map(|(u, t)| (u.as_str(), t.clone()))
                .collect();
            visit(Record::Destination(d.key(), payers));
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
