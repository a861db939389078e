//! Feature state (contract section 2): what riskgate remembers about users and destinations,
//! and the `tx` features computed from it.
//!
//! State lives in two sharded tables (per user, per destination; see `table`) so that many
//! threads can score and observe at once; a lock is held only while a feature vector is being
//! read or an event recorded, never while rules run. Each user and each destination is one
//! packed allocation (see `user` and `destination`); they refer to each other by dense `u32`
//! ids (see [`State`]).
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
//! counted by `dest_users_*` (only possible when events arrive out of order). A user idle past
//! the retention but still named by a destination's payers stays until those payers are
//! forgotten (the contract allows forgetting, not requires it).

mod codec;
mod destination;
mod features;
pub(crate) mod snapshot;
mod table;
mod user;

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};

pub use features::TxFeatures;

use crate::event::{normalize_address, Event, Status, Withdrawal};
use crate::time::MICROS_PER_DAY;
#[cfg_attr(not(feature = "redis"), allow(unused_imports))]
pub(crate) use destination::First;
use destination::{DestRecord, Others};
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

/// The hash that identifies a destination's earliest payer (`dest_others_first_days`): 64-bit
/// FNV-1a of the user id's UTF-8 bytes. Fixed (not seeded per process) so that a snapshot and
/// the Redis store keep it; two users with the same hash count as one there (about one chance
/// in 2^64 per pair).
pub(crate) fn user_hash(user_id: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in user_id.as_bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// `dest_others_first_days` from the earliest other payment at or before `now` (-1.0 when
/// none).
pub(crate) fn others_first_days(first: Option<i64>, now: i64) -> f64 {
    match first {
        Some(t) => (now - t) as f64 / MICROS_PER_DAY as f64,
        None => -1.0,
    }
}

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
    /// Held (read) by every snapshot being written and taken (write, without waiting) by a
    /// sweep: a snapshot names records by id, and a sweep frees ids that a new record may take
    /// at once, so a sweep never runs during a save (see [`State::observed_at`]).
    saving: parking_lot::RwLock<()>,
    /// A sweep fell due while a snapshot was being written: the next observation tries again.
    sweep_due: AtomicBool,
    /// Lower bounds of every user's and every destination's newest time, so that a sweep
    /// whose horizon lies below one skips that table without touching a record (reading each
    /// record's first byte was a cache miss per record per sweep: 12% of `riskgate score`).
    user_floor: Floor,
    dest_floor: Floor,
    /// The earliest time of any event recorded (`state_days`).
    earliest: Earliest,
}

/// The earliest time of any event the state recorded (a completed withdrawal, a login, a
/// password reset), whatever the order they came in; `i64::MAX` while none was. One number per
/// state: how long the engine has been watching (`state_days`).
pub(crate) struct Earliest(AtomicI64);

impl Default for Earliest {
    fn default() -> Earliest {
        Earliest(AtomicI64::new(i64::MAX))
    }
}

impl Earliest {
    pub(crate) fn lower(&self, ts: i64) {
        if ts < self.0.load(Ordering::Relaxed) {
            self.0.fetch_min(ts, Ordering::Relaxed);
        }
    }

    pub(crate) fn get(&self) -> Option<i64> {
        match self.0.load(Ordering::Relaxed) {
            i64::MAX => None,
            t => Some(t),
        }
    }

    fn set(&self, earliest: Option<i64>) {
        self.0
            .store(earliest.unwrap_or(i64::MAX), Ordering::Relaxed);
    }
}

/// `state_days` from the earliest recorded event (`None`: nothing recorded): days to `now`,
/// never below 0.
pub(crate) fn state_days(earliest: Option<i64>, now: i64) -> f64 {
    match earliest {
        Some(t) if t < now => (now - t) as f64 / MICROS_PER_DAY as f64,
        _ => 0.0,
    }
}

/// A lower bound of the newest time of every record in a table (`i64::MIN`: unknown, until
/// the next full sweep of the table). Recording an event at `ts` leaves the record's newest
/// time at `ts` or later, so lowering the bound to `ts` after each change keeps it true.
struct Floor(AtomicI64);

impl Default for Floor {
    fn default() -> Floor {
        Floor(AtomicI64::new(i64::MIN))
    }
}

impl Floor {
    /// After a record was changed (under its shard lock) by an event at `ts`. A sweep that
    /// reset the bound before taking that shard's lock is seen by this load (the lock orders
    /// them); one that took the lock before the change saw the change.
    fn lower(&self, ts: i64) {
        if ts < self.0.load(Ordering::Relaxed) {
            self.0.fetch_min(ts, Ordering::Relaxed);
        }
    }

    /// Whether a sweep dropping what is at or before `horizon` could drop anything.
    fn reaches(&self, horizon: i64) -> bool {
        self.0.load(Ordering::Relaxed) <= horizon
    }

    /// The bound becomes unknown (state replaced from outside).
    fn forget(&self) {
        self.0.store(i64::MIN, Ordering::Relaxed);
    }

    /// Starts a full sweep of the table: its records (and changes meanwhile) lower it again.
    fn restart(&self) {
        self.0.store(i64::MAX, Ordering::Relaxed);
    }
}

/// Where [`State::features`] last looked for a user among a destination's payers, on this
/// thread: recording the same withdrawal next ([`State::record_withdrawal`]) looks only at
/// the payers outside that range, while the record's [`table::Version`] is unchanged (any
/// change in between, by this thread or another, and it looks at every payer again).
#[derive(Clone, Copy)]
struct PayerHint {
    version: table::Version,
    user: u32,
    searched: destination::Searched,
}

thread_local! {
    static PAYER_HINT: std::cell::Cell<Option<PayerHint>> = const { std::cell::Cell::new(None) };
}

impl State {
    /// The state-derived features of a withdrawal (contract section 2), without changing state.
    /// `destination` is the withdrawal's normalized destination.
    pub(crate) fn features(&self, w: &Withdrawal, destination: &str) -> TxFeatures {
        let now = w.ts.as_micros();
        let mut f = TxFeatures::empty(w);
        let me = user_hash(&w.user_id);
        let mut others = Others::Known(None);
        let known = self.users.read(w.user_id.as_str(), |uid, user| {
            let dest = self
                .destinations
                .read_versioned(destination, |did, version, d| {
                    let ((users_24h, users_30d, searched), first) = d.scored(Some(uid), me, now);
                    f.dest_users_24h = users_24h;
                    f.dest_users_30d = users_30d;
                    others = first;
                    PAYER_HINT.set(Some(PayerHint {
                        version,
                        user: uid,
                        searched,
                    }));
                    did
                });
            user.fill(&mut f, now, dest, w.device_id.as_deref());
        });
        if known.is_none() {
            if let Some((day, month, first)) = self.destinations.read(destination, |_, d| {
                let ((day, month, _), first) = d.scored(None, me, now);
                (day, month, first)
            }) {
                f.dest_users_24h = day;
                f.dest_users_30d = month;
                others = first;
            }
        }
        // The sole payer's hash, if asked for, read with no lock held (see `State`).
        let first = others.resolve(me, |payer| {
            self.users.read_id(payer, |u| user_hash(u.key()))
        });
        f.dest_others_first_days = others_first_days(first, now);
        f.state_days = state_days(self.earliest.get(), now);
        f
    }

    /// The earliest time of any event recorded (`None`: none yet).
    pub(crate) fn earliest(&self) -> Option<i64> {
        self.earliest.get()
    }

    pub(crate) fn set_earliest(&self, earliest: Option<i64>) {
        self.earliest.set(earliest);
    }

    /// The earliest time the user records hold (history, known destinations' first payments,
    /// devices, password resets): what a snapshot of format version 6 or earlier, which kept
    /// no earliest event, gives for it (no earlier than the truth; later when older events
    /// were forgotten).
    pub(crate) fn earliest_in_records(&self) -> Option<i64> {
        let mut earliest = i64::MAX;
        self.users.for_each(|_, u| {
            let times = u.history().map(|e| e.ts);
            let times = times.chain(u.destinations().map(|k| k.first_ts));
            let times = times.chain(u.devices().map(|d| d.first_ts));
            for t in times.chain(u.resets()) {
                earliest = earliest.min(t);
            }
        });
        (earliest != i64::MAX).then_some(earliest)
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
                self.user_floor.lower(ts);
            }
            Event::Login {
                user_id, device_id, ..
            } => {
                self.users.write(
                    user_id,
                    || UserRecord::new(user_id),
                    |_, u| u.record_device(device_id, ts),
                );
                self.user_floor.lower(ts);
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
        self.earliest.lower(ts);
        self.newest_ts.fetch_max(ts, Ordering::Relaxed);
        let due = self.observed.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == SWEEP_EVERY - 1;
        if due || self.sweep_due.load(Ordering::Relaxed) {
            // Deferred, never waited for, while a snapshot is written (see `saving`); also
            // keeps two sweeps from running at once.
            match self.saving.try_write() {
                Some(_no_save) => {
                    self.sweep_due.store(false, Ordering::Relaxed);
                    self.sweep(ts);
                }
                None => self.sweep_due.store(true, Ordering::Relaxed),
            }
        }
    }

    /// Keeps sweeps (which free ids) from running until the guard is dropped.
    pub(crate) fn hold_sweeps(&self) -> parking_lot::RwLockReadGuard<'_, ()> {
        self.saving.read()
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
        let hash = user_hash(user_id);
        let mut sole = None;
        let recorded = loop {
            let recorded = self.destinations.write_versioned(
                &destination,
                || DestRecord::new_at(&destination, ts),
                |did, version, d| {
                    // Where scoring this withdrawal looked for the user among the payers,
                    // when the record is as it was then.
                    let searched = PAYER_HINT
                        .take()
                        .filter(|hint| Some(hint.version) == version && hint.user == uid)
                        .map(|hint| hint.searched);
                    let new_payer =
                        d.record_searched(uid, hash, ts, sole, searched, &mut dropped_users)?;
                    d.add_refs(1);
                    Ok((did, new_payer))
                },
            );
            match recorded {
                // The first payment by another user than the sole payer: its hash, read with no
                // lock held (see `State`), then again (rare: once per destination that gains
                // a second payer).
                Some(Err(payer)) => {
                    let payer_hash = self.users.read_id(payer, |u| user_hash(u.key()));
                    sole = Some((payer, payer_hash.unwrap_or(0)));
                }
                Some(Ok(recorded)) => break Some(recorded),
                None => break None,
            }
        };
        let mut forgotten = Vec::new();
        match recorded {
            Some((did, new_payer)) => {
                let newly_known = self.users.write_id(uid, |u| {
                    // The pin becomes the new payer entry's reference, or goes.
                    u.add_refs(if new_payer { 0 } else { -1 });
                    u.record_withdrawal(
                        did,
                        ts,
                        w.amount_usd,
                        w.device_id.as_deref(),
                        &mut forgotten,
                    )
                });
                if newly_known != Some(true) {
                    // The pin goes: a known destination, the usual case (not through
                    // `forgotten`, which would then be allocated for nearly every withdrawal).
                    self.destinations.write_id(did, |d| d.add_refs(-1));
                }
                self.dest_floor.lower(ts);
                self.user_floor.lower(ts);
            }
            None => {
                self.users.write_id(uid, |u| u.add_refs(-1));
                // The user may be left empty (no newest time).
                self.user_floor.lower(i64::MIN);
            }
        }
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
        if self.user_floor.reaches(user_horizon) {
            self.user_floor.restart();
            let mut floor = i64::MAX;
            self.users.retain(
                |u| {
                    let newest = u.newest();
                    let keep = u.refs() > 0 || newest > user_horizon;
                    if keep {
                        floor = floor.min(newest);
                    }
                    keep
                },
                |u| forgotten.extend(u.destinations().map(|d| d.dest)),
            );
            self.user_floor.lower(floor);
        }
        for did in forgotten {
            self.destinations.write_id(did, |d| d.add_refs(-1));
        }
        let dest_horizon = newest.saturating_sub(DEST_RETENTION);
        let mut dropped = Vec::new();
        if self.dest_floor.reaches(dest_horizon) {
            self.dest_floor.restart();
            let mut floor = i64::MAX;
            self.destinations.retain(
                |d| {
                    let newest = d.newest();
                    if newest > dest_horizon {
                        floor = floor.min(newest);
                        return true;
                    }
                    d.clear_payers(&mut dropped);
                    // Kept without payers: no newest time.
                    let keep = d.refs() > 0;
                    if keep {
                        floor = i64::MIN;
                    }
                    keep
                },
                |_| {},
            );
            self.dest_floor.lower(floor);
        }
        for user in dropped {
            self.users.write_id(user, |u| u.add_refs(-1));
        }
    }

    /// Calls `visit` with every user (id, record) and then every destination (address, its
    /// payers: user id and latest times newest first, unused slots dropped; its earliest
    /// payments).
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
            let first = d.first(|payer| {
                self.users
                    .read_id(payer, |u| user_hash(u.key()))
                    .unwrap_or(0)
            });
            visit(Record::Destination(d.key(), payers, first));
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
    Destination(&'a str, Vec<(&'a str, Vec<i64>)>, First),
}

/// A deterministic xorshift generator for the state's randomized tests: `next(n)` is in
/// `0..n`.
#[cfg(test)]
fn test_rng(mut seed: u64) -> impl FnMut(u64) -> u64 {
    move |n| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::event::UserProfile;
    use crate::time::Timestamp;

    const T0: i64 = 1_790_000_000_000_000;

    fn withdrawal(user: &str, destination: &str, ts: i64, amount_usd: f64) -> Event {
        Event::Withdrawal(plain_withdrawal(user, destination, ts, amount_usd))
    }

    fn plain_withdrawal(user: &str, destination: &str, ts: i64, amount_usd: f64) -> Withdrawal {
        Withdrawal {
            id: format!("w-{user}-{destination}-{ts}"),
            ts: Timestamp::from_micros(ts),
            user_id: user.into(),
            asset: "USDT".into(),
            network: "TRON".into(),
            amount_usd,
            destination: destination.into(),
            user: UserProfile {
                country: "HK".into(),
                created_at: Timestamp::from_micros(T0 - 1000 * MICROS_PER_DAY),
                locale: "en".into(),
                referral: String::new(),
            },
            device_id: Some(format!("d-{user}")),
            status: Status::Completed,
            label: None,
        }
    }

    fn features(state: &State, user: &str, destination: &str, ts: i64) -> TxFeatures {
        state.features(&plain_withdrawal(user, destination, ts, 1.0), destination)
    }

    /// Every reference count equals the references it counts, and every id named by a record
    /// is a live record: what id reuse relies on.
    fn assert_references_consistent(state: &State) {
        let mut dest_refs: HashMap<u32, u32> = HashMap::new();
        let mut user_refs: HashMap<u32, u32> = HashMap::new();
        state.users.for_each(|_, u| {
            for d in u.destinations() {
                *dest_refs.entry(d.dest).or_default() += 1;
            }
        });
        state.destinations.for_each(|_, d| {
            for (uid, _) in d.payers() {
                *user_refs.entry(uid).or_default() += 1;
            }
        });
        state.users.for_each(|uid, u| {
            assert_eq!(
                u.refs(),
                user_refs.remove(&uid).unwrap_or(0),
                "user {}",
                u.key()
            );
        });
        state.destinations.for_each(|did, d| {
            assert_eq!(
                d.refs(),
                dest_refs.remove(&did).unwrap_or(0),
                "dest {}",
                d.key()
            );
        });
        assert!(
            user_refs.is_empty(),
            "payers name missing users: {user_refs:?}"
        );
        assert!(
            dest_refs.is_empty(),
            "users know missing destinations: {dest_refs:?}"
        );
    }

    /// A small xorshift generator (the streams only need to be varied and repeatable).
    struct Rng(u64);

    impl Rng {
        fn below(&mut self, n: u64) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0 % n
        }
    }

    /// Events over three years, out of order by up to a week, some users paying more than
    /// `MAX_DESTINATIONS` addresses, users and addresses going idle for more than the retention
    /// (so that sweeps free ids and new records reuse them), with sweeps along the way.
    #[test]
    fn references_stay_consistent_through_caps_sweeps_and_snapshots() {
        let state = State::default();
        let mut rng = Rng(0x5EED);
        let days = 3 * 365;
        for i in 0..40_000_i64 {
            let day = i * days / 40_000;
            let ts = T0 + day * MICROS_PER_DAY - rng.below(7 * MICROS_PER_DAY as u64) as i64;
            // Each year its own users and addresses, a few shared with the next.
            let era = (day / 365) as u64;
            let user = format!("u{}-{}", era, rng.below(60));
            let event = match rng.below(10) {
                0 => Event::Login {
                    ts: Timestamp::from_micros(ts),
                    user_id: user,
                    device_id: format!("dev{}", rng.below(40)),
                },
                1 => Event::PasswordReset {
                    ts: Timestamp::from_micros(ts),
                    user_id: user,
                },
                _ => {
                    let destination = if rng.below(4) == 0 && !user.ends_with("-7") {
                        format!("Tshared{}-{}", era, rng.below(5))
                    } else if user.ends_with("-7") {
                        // This user pays far more addresses than the cap.
                        format!("Tmany{}", rng.below(1000))
                    } else {
                        format!("T{}-{}", era, rng.below(300))
                    };
                    withdrawal(&user, &destination, ts, rng.below(10_000) as f64 / 100.0)
                }
            };
            state.observe(&event);
            if i % 2_000 == 1_999 {
                state.sweep(ts);
                assert_references_consistent(&state);
            }
        }
        assert_references_consistent(&state);
        let capped = state.users.read("u2-7", |_, u| u.destinations().count());
        assert_eq!(capped, Some(MAX_DESTINATIONS));

        // Through a snapshot: the same records (by key), consistent counts again.
        let mut bytes = Vec::new();
        let written = state.encode(None, |chunk| {
            bytes.extend_from_slice(chunk);
            Ok::<(), ()>(())
        });
        assert!(written.is_ok());
        let restored = State::default();
        let decoded = snapshot::decode(&bytes, 0, crate::snapshot::SNAPSHOT_VERSION);
        assert!(decoded.is_ok(), "{:?}", decoded.as_ref().err());
        if let Ok(decoded) = decoded {
            restored.restore(decoded);
        }
        assert_references_consistent(&restored);
        assert_eq!(restored.users.len(), state.users.len());
        assert_eq!(restored.destinations.len(), state.destinations.len());
        for (user, destination) in [("u2-3", "T2-5"), ("u2-7", "Tmany3"), ("u1-1", "Tshared2-1")] {
            let at = T0 + (days - 1) * MICROS_PER_DAY;
            assert_eq!(
                features(&state, user, destination, at),
                features(&restored, user, destination, at)
            );
        }
    }

    /// A user and a destination idle past the retention are removed once nothing names them,
    /// and their ids go to new records without carrying anything over.
    #[test]
    fn no_sweep_runs_while_a_snapshot_is_written_and_the_due_one_follows() {
        let state = State::default();
        state.observe(&withdrawal("old", "Told", T0, 10.0));
        let later = T0 + (RETENTION_DAYS + 1) * MICROS_PER_DAY;
        let login = |i: u64| Event::Login {
            ts: Timestamp::from_micros(later),
            user_id: format!("fresh{}", i % 8),
            device_id: "d".into(),
        };
        {
            // What a save holds: a sweep that falls due meanwhile frees nothing.
            let _saving = state.hold_sweeps();
            for i in 0..SWEEP_EVERY * 2 {
                state.observe(&login(i));
            }
            assert!(state.users.read("old", |_, _| ()).is_some());
            assert!(state.sweep_due.load(Ordering::Relaxed));
        }
        // The next observations run the deferred sweeps: the payers go, then the records.
        state.observe(&login(0));
        assert!(!state.sweep_due.load(Ordering::Relaxed));
        assert_eq!(
            state.destinations.read("Told", |_, d| d.payer_count()),
            Some(0)
        );
        for i in 0..SWEEP_EVERY {
            state.observe(&login(i));
        }
        assert!(state.users.read("old", |_, _| ()).is_none());
        assert_references_consistent(&state);
    }

    /// A sweep skips a table while its floor shows nothing can be stale, and state restored
    /// from a snapshot has no floor: its stale records still go.
    #[test]
    fn sweeps_skip_fresh_tables_but_not_restored_stale_records() {
        let old = State::default();
        old.observe(&withdrawal("old", "Told", T0, 10.0));
        let mut bytes = Vec::new();
        let written = old.encode(None, |chunk| {
            bytes.extend_from_slice(chunk);
            Ok::<(), ()>(())
        });
        assert!(written.is_ok());
        let later = T0 + (RETENTION_DAYS + 1) * MICROS_PER_DAY;
        let state = State::default();
        state.observe(&withdrawal("new", "Tnew", later, 10.0));
        state.sweep(later);
        assert!(!state
            .user_floor
            .reaches(later - RETENTION_DAYS * MICROS_PER_DAY));
        assert!(!state.dest_floor.reaches(later - DEST_RETENTION));
        let decoded = snapshot::decode(&bytes, 0, crate::snapshot::SNAPSHOT_VERSION);
        assert!(decoded.is_ok());
        if let Ok(decoded) = decoded {
            state.restore(decoded);
        }
        assert!(state.users.read("old", |_, _| ()).is_some());
        let login = Event::Login {
            ts: Timestamp::from_micros(later),
            user_id: "fresh".into(),
            device_id: "d".into(),
        };
        state.observe(&login);
        state.sweep(later);
        state.sweep(later);
        assert!(state.users.read("old", |_, _| ()).is_none());
        assert!(state.destinations.read("Told", |_, _| ()).is_none());
        assert_references_consistent(&state);
    }

    #[test]
    fn a_swept_id_is_reused_only_when_nothing_names_it() {
        let state = State::default();
        state.observe(&withdrawal("old", "Told", T0, 10.0));
        state.observe(&withdrawal("other", "Told", T0, 10.0));
        let other_uid = state.users.read("other", |uid, _| uid);
        let (old_uid, old_did) = (
            state.users.read("old", |uid, _| uid),
            state.destinations.read("Told", |did, _| did),
        );
        let later = T0 + (RETENTION_DAYS + 1) * MICROS_PER_DAY;
        state.observe(&Event::Login {
            ts: Timestamp::from_micros(later),
            user_id: "fresh".into(),
            device_id: "d".into(),
        });
        // First sweep: the users are still named by the address's payers, which go; the
        // address is still known by its users.
        state.sweep(later);
        assert_references_consistent(&state);
        assert_eq!(
            state.destinations.read("Told", |_, d| d.payer_count()),
            Some(0)
        );
        assert!(state.users.read("old", |_, _| ()).is_some());
        // Second sweep: nothing names them any more.
        state.sweep(later);
        assert_references_consistent(&state);
        assert!(state.users.read("old", |_, _| ()).is_none());
        assert!(state.destinations.read("Told", |_, _| ()).is_none());
        assert_eq!(state.users.len(), 1);
        assert_eq!(state.destinations.len(), 0);

        // New records in the same shards take the freed slots, and start empty.
        let same_shard = |table_shard: usize, prefix: &str, shard: &dyn Fn(&str) -> usize| {
            (0..)
                .map(|i| format!("{prefix}{i}"))
                .find(|k| shard(k) == table_shard)
                .unwrap_or_default()
        };
        let new_user = same_shard(state.users.shard_of("old"), "new", &|k| {
            state.users.shard_of(k)
        });
        let new_dest = same_shard(state.destinations.shard_of("Told"), "Tnew", &|k| {
            state.destinations.shard_of(k)
        });
        state.observe(&withdrawal(&new_user, &new_dest, later, 5.0));
        // "other" was freed too, possibly in the same shard (the last freed slot goes first).
        let new_uid = state.users.read(&new_user, |uid, _| uid);
        assert!(new_uid == old_uid || new_uid == other_uid);
        assert_eq!(state.destinations.read(&new_dest, |did, _| did), old_did);
        let f = features(&state, &new_user, &new_dest, later + 1);
        assert!(!f.is_new_address);
        assert_eq!(f.prior_withdrawals, 1);
        assert_eq!((f.dest_users_24h, f.dest_users_30d), (0, 0));
        let f = features(&state, "old", "Told", later + 1);
        assert!(f.is_new_address);
        assert_eq!(f.prior_withdrawals, 0);
        assert_eq!((f.dest_users_24h, f.dest_users_30d), (0, 0));
        assert_references_consistent(&state);
    }

    /// Where scoring looked for the user among the payers is used by recording the same
    /// withdrawal only while the destination is unchanged: a payment by the same user recorded
    /// in between on another thread (whose look this thread's hint does not know) makes it
    /// look again, so the user stays one payer; and a hint from another table is never taken.
    #[test]
    fn a_payer_hint_outlived_by_a_change_is_not_used() {
        let state = State::default();
        for i in 0..40 {
            state.observe(&withdrawal(&format!("p{i}"), "Tbusy", T0 + i, 1.0));
        }
        state.observe(&withdrawal("me", "Telse", T0 + 50, 1.0));
        let payers = || state.destinations.read("Tbusy", |_, d| d.payer_count());
        // Scored here: "me" is no payer of Tbusy (the hint says so) ...
        assert_eq!(features(&state, "me", "Tbusy", T0 + 100).dest_users_30d, 40);
        // ... then paid on another thread (dated among the others: placed inside the range
        // this thread's look covered), then recorded here.
        std::thread::scope(|s| {
            s.spawn(|| state.observe(&withdrawal("me", "Tbusy", T0 + 5, 1.0)));
        });
        assert_eq!(payers(), Some(41));
        state.observe(&withdrawal("me", "Tbusy", T0 + 200, 2.0));
        assert_eq!(payers(), Some(41));
        assert_eq!(features(&state, "me", "Tbusy", T0 + 300).dest_users_30d, 40);
        assert_eq!(features(&state, "p0", "Tbusy", T0 + 300).dest_users_30d, 40);
        // Scored on one state, recorded on another with the same history: looks again.
        let other = State::default();
        for i in 0..40 {
            other.observe(&withdrawal(&format!("p{i}"), "Tbusy", T0 + i, 1.0));
        }
        other.observe(&withdrawal("me", "Telse", T0 + 50, 1.0));
        other.observe(&withdrawal("me", "Tbusy", T0 + 100, 1.0));
        assert_eq!(features(&state, "p5", "Tbusy", T0 + 300).dest_users_30d, 40);
        other.observe(&withdrawal("p5", "Tbusy", T0 + 300, 1.0));
        assert_eq!(
            other.destinations.read("Tbusy", |_, d| d.payer_count()),
            Some(41)
        );
        assert_references_consistent(&state);
        assert_references_consistent(&other);
    }

    /// Over the per-destination cap the payer with the oldest latest time goes, and its user no
    /// longer counts it.
    #[test]
    fn the_payer_cap_releases_the_forgotten_payer() {
        let state = State::default();
        for i in 0..=MAX_DEST_USERS as i64 {
            state.observe(&withdrawal(&format!("p{i}"), "Tpopular", T0 + i, 1.0));
        }
        assert_eq!(
            state.destinations.read("Tpopular", |_, d| d.payer_count()),
            Some(MAX_DEST_USERS)
        );
        assert_eq!(state.users.read("p0", |_, u| u.refs()), Some(0));
        assert_eq!(state.users.read("p1", |_, u| u.refs()), Some(1));
        assert_references_consistent(&state);
        let f = features(&state, "p1", "Tpopular", T0 + 10_000);
        assert_eq!(f.dest_users_24h, MAX_DEST_USERS as i64 - 1);
    }
}
