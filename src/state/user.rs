//! Per-user state: history of completed withdrawals, known destinations, devices and resets.

use std::sync::Arc;

use super::{
    id_hash, TxFeatures, MAX_DESTINATIONS, MAX_DEVICES, MAX_HISTORY, MAX_RESETS, RETENTION_DAYS,
};
use crate::time::{Timestamp, MICROS_PER_DAY};

/// One completed withdrawal in a user's history: 17 bytes, packed (the exact `i64` time and
/// `f64` amount, and a one-byte destination index: a user keeps at most
/// [`MAX_DESTINATIONS`] = 128 destinations), instead of 24 with alignment padding. Fields are
/// only ever read and written by value (no reference to a packed field is taken).
#[derive(Clone, Copy, Debug)]
#[repr(C, packed)]
pub(crate) struct Entry {
    pub(crate) ts: i64,
    pub(crate) amount_usd: f64,
    /// Index into [`UserState::destinations`].
    pub(crate) dest: u8,
}

// A destination index must fit the entry's byte.
const _: () = assert!(MAX_DESTINATIONS <= 1 << 8);

/// A destination the user has paid.
#[derive(Clone, Debug)]
pub(crate) struct KnownDestination {
    pub(crate) address: Arc<str>,
    /// [`id_hash`] of `address`.
    hash: u64,
    pub(crate) first_ts: i64,
    pub(crate) last_ts: i64,
}

impl KnownDestination {
    pub(crate) fn new(address: Arc<str>, first_ts: i64, last_ts: i64) -> KnownDestination {
        KnownDestination {
            hash: id_hash(&address),
            address,
            first_ts,
            last_ts,
        }
    }

    fn is(&self, address: &str, hash: u64) -> bool {
        self.hash == hash && &*self.address == address
    }
}

/// A device the user has been seen on.
#[derive(Clone, Debug)]
pub(crate) struct Device {
    pub(crate) id: Box<str>,
    /// [`id_hash`] of `id`.
    hash: u64,
    pub(crate) first_ts: i64,
    pub(crate) last_ts: i64,
}

impl Device {
    pub(crate) fn new(id: Box<str>, first_ts: i64, last_ts: i64) -> Device {
        Device {
            hash: id_hash(&id),
            id,
            first_ts,
            last_ts,
        }
    }

    fn is(&self, id: &str, hash: u64) -> bool {
        self.hash == hash && &*self.id == id
    }
}

#[derive(Default, Clone, Debug)]
pub(crate) struct UserState {
    /// Completed withdrawals ever recorded (history trimming does not lower it).
    pub(crate) completed: u64,
    pub(crate) history: Box<[Entry]>,
    pub(crate) destinations: Box<[KnownDestination]>,
    pub(crate) devices: Box<[Device]>,
    /// Password reset times, ascending.
    pub(crate) resets: Box<[i64]>,
}

impl UserState {
    /// Fills the state-derived features of a withdrawal at `now`.
    pub(crate) fn fill(
        &self,
        f: &mut TxFeatures,
        now: i64,
        destination: &str,
        device: Option<&str>,
    ) {
        f.prior_withdrawals = i64::try_from(self.completed).unwrap_or(i64::MAX);
        let hash = id_hash(destination);
        let dest = self
            .destinations
            .iter()
            .position(|d| d.is(destination, hash));
        // Amounts in the 90-day window, for the median: on the stack for the usual few, on
        // the heap past that (a zeroed array of MAX_HISTORY would cost more than the rest).
        let mut recent_inline = [0.0_f64; RECENT_INLINE];
        let mut recent_len = 0;
        let mut recent_heap: Vec<f64> = Vec::new();
        let day_start = now.saturating_sub(MICROS_PER_DAY);
        let month_start = now.saturating_sub(30 * MICROS_PER_DAY);
        let quarter_start = now.saturating_sub(90 * MICROS_PER_DAY);
        let dest_index = dest.map(|i| i as u8);
        for &e in self.history.iter() {
            // The payee's own record covers all retained history, in recording order: it carries
            // the growth of successive payments to one payee (romance scams), which no window does.
            if Some(e.dest) == dest_index {
                if f.dest_prior_withdrawals > 0 && e.amount_usd > f.dest_last_amount_usd {
                    f.dest_rising_run += 1;
                } else {
                    f.dest_rising_run = 0;
                }
                f.dest_prior_withdrawals += 1;
                f.dest_last_amount_usd = e.amount_usd;
            }
            // Every window is `(now - span, now]`.
            if e.ts > now || e.ts <= quarter_start {
                continue;
            }
            let amount_usd = e.amount_usd;
            match recent_inline.get_mut(recent_len) {
                Some(slot) => *slot = amount_usd,
                None => {
                    if recent_heap.is_empty() {
                        recent_heap.extend_from_slice(&recent_inline);
                    }
                    recent_heap.push(amount_usd);
                }
            }
            recent_len += 1;
            if e.ts > day_start {
                f.withdrawals_24h += 1;
                f.amount_usd_24h += amount_usd;
            }
            if Some(e.dest) == dest_index && e.ts > month_start {
                f.dest_amount_usd_30d += amount_usd;
            }
        }
        f.median_amount_usd_90d = if recent_heap.is_empty() {
            median(recent_inline.get_mut(..recent_len).unwrap_or_default())
        } else {
            median(&mut recent_heap)
        };
        if let Some(known) = dest.and_then(|i| self.destinations.get(i)) {
            f.is_new_address = false;
            f.dest_first_used_days =
                (now.saturating_sub(known.first_ts) as f64 / MICROS_PER_DAY as f64).max(0.0);
        }
        let now_ts = Timestamp::from_micros(now);
        if let Some(&reset) = self.resets.iter().rev().find(|&&r| r <= now) {
            f.hours_since_password_reset = now_ts.hours_since(reset);
        }
        if let Some(device) = device {
            let hash = id_hash(device);
            f.device_age_hours = match self.devices.iter().find(|d| d.is(device, hash)) {
                Some(d) if d.first_ts <= now => now_ts.hours_since(d.first_ts),
                _ => 0.0,
            };
        }
    }

    pub(crate) fn record_withdrawal(
        &mut self,
        address: Arc<str>,
        ts: i64,
        amount_usd: f64,
        device: Option<&str>,
    ) {
        let before = self.newest();
        self.completed += 1;
        let hash = id_hash(&address);
        let dest = match self.destinations.iter().position(|d| d.is(&address, hash)) {
            Some(i) => i,
            None => {
                if self.destinations.len() >= MAX_DESTINATIONS {
                    self.forget_stalest_destination();
                }
                super::push(
                    &mut self.destinations,
                    KnownDestination::new(address, ts, ts),
                );
                self.destinations.len() - 1
            }
        };
        if let Some(known) = self.destinations.get_mut(dest) {
            known.first_ts = known.first_ts.min(ts);
            known.last_ts = known.last_ts.max(ts);
        }
        let entry = Entry {
            ts,
            amount_usd,
            // `dest < MAX_DESTINATIONS <= 256`.
            dest: u8::try_from(dest).unwrap_or(u8::MAX),
        };
        super::edit(&mut self.history, |history| {
            if history.len() >= MAX_HISTORY {
                // The oldest by time goes, the order of the others is kept.
                let oldest = history
                    .iter()
                    .enumerate()
                    .min_by_key(|(_, e)| e.ts)
                    .map(|(i, _)| i);
                if let Some(i) = oldest {
                    history.remove(i);
                }
            } else {
                history.reserve_exact(1);
            }
            history.push(entry);
        });
        if let Some(device) = device {
            self.record_device(device, ts);
        }
        self.trim(before.min(ts));
    }

    pub(crate) fn record_device(&mut self, id: &str, ts: i64) {
        let hash = id_hash(id);
        match self.devices.iter_mut().find(|d| d.is(id, hash)) {
            Some(d) => {
                d.first_ts = d.first_ts.min(ts);
                d.last_ts = d.last_ts.max(ts);
            }
            None => super::edit(&mut self.devices, |devices| {
                if devices.len() >= MAX_DEVICES {
                    let stalest = devices
                        .iter()
                        .enumerate()
                        .min_by_key(|(_, d)| d.last_ts)
                        .map(|(i, _)| i);
                    if let Some(i) = stalest {
                        devices.swap_remove(i);
                    }
                } else {
                    devices.reserve_exact(1);
                }
                devices.push(Device::new(id.into(), ts, ts));
            }),
        }
    }

    pub(crate) fn record_reset(&mut self, ts: i64) {
        super::edit(&mut self.resets, |resets| {
            let at = resets.partition_point(|&r| r <= ts);
            resets.reserve_exact(1);
            resets.insert(at, ts);
            if resets.len() > MAX_RESETS {
                resets.remove(0);
            }
        });
    }

    /// The newest time anything happened to this user.
    pub(crate) fn newest(&self) -> i64 {
        let history = self.history.iter().map(|e| e.ts);
        let devices = self.devices.iter().map(|d| d.last_ts);
        history
            .chain(devices)
            .chain(self.resets.last().copied())
            .max()
            .unwrap_or(i64::MIN)
    }

    /// Forgets what lies more than [`RETENTION_DAYS`] before `now`: the earlier of the withdrawal
    /// being recorded and the user's newest event before it, so that one event dated far in the
    /// future (a login, a reset or a withdrawal) does not wipe the user's history.
    fn trim(&mut self, now: i64) {
        let horizon = now.saturating_sub(RETENTION_DAYS * MICROS_PER_DAY);
        if self.history.iter().any(|e| e.ts <= horizon) {
            super::edit(&mut self.history, |h| h.retain(|e| e.ts > horizon));
        }
        let stale = self.destinations.iter().position(|d| d.last_ts <= horizon);
        if stale.is_some() {
            while let Some(i) = self.destinations.iter().position(|d| d.last_ts <= horizon) {
                self.remove_destination(i);
            }
        }
        if self.devices.iter().any(|d| d.last_ts <= horizon) {
            super::edit(&mut self.devices, |d| d.retain(|d| d.last_ts > horizon));
        }
        if self.resets.iter().any(|&r| r <= horizon) {
            super::edit(&mut self.resets, |r| r.retain(|&r| r > horizon));
        }
    }

    fn forget_stalest_destination(&mut self) {
        let stalest = self
            .destinations
            .iter()
            .enumerate()
            .min_by_key(|(_, d)| d.last_ts)
            .map(|(i, _)| i);
        if let Some(i) = stalest {
            self.remove_destination(i);
        }
    }

    /// Removes destination `i` with its history entries, keeping indices consistent.
    fn remove_destination(&mut self, i: usize) {
        if i >= self.destinations.len() {
            return;
        }
        super::edit(&mut self.destinations, |d| d.remove(i));
        let i = i as u8;
        super::edit(&mut self.history, |history| {
            history.retain(|e| e.dest != i);
            for e in history.iter_mut() {
                if e.dest > i {
                    e.dest -= 1;
                }
            }
        });
    }
}

/// 90-day amounts kept on the stack while computing the median.
const RECENT_INLINE: usize = 32;

/// Median of `values`; the mean of the two middle values for an even count; 0.0 when empty.
fn median(values: &mut [f64]) -> f64 {
    let n = values.len();
    if n == 0 {
        return 0.0;
    }
    let (lower, upper_mid, _) = values.select_nth_unstable_by(n / 2, f64::total_cmp);
    let upper = *upper_mid;
    if n % 2 == 1 {
        upper
    } else {
        let lower_mid = lower.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        (lower_mid + upper) / 2.0
    }
}

#[cfg(test)]
mod tests {
    use super::median;

    #[test]
    fn median_of_odd_even_and_empty() {
        assert_eq!(median(&mut []), 0.0);
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&mut [4.0, 1.0, 3.0, 2.0]), 2.5);
    }
}
