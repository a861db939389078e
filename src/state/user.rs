//! Per-user state: history of completed withdrawals, known destinations, devices and resets.
//!
//! # Layout
//! A user is two allocations, whatever they hold: the addresses of their known destinations
//! (`Arc`s shared with the destination map's keys) and one byte record with everything else,
//! written sequentially and read in place:
//!
//! ```text
//! completed:u64  n_history:u16  n_resets:u8  n_devices:u8               (header, 12 bytes)
//! { ts:i64 amount_usd:f64 dest:u8 }^n_history                           (17 bytes each)
//! { hash:u64 first_ts:i64 last_ts:i64 }^addresses.len()                 (24 bytes each)
//! { ts:i64 }^n_resets                                                   (ascending)
//! { len:varint id:bytes first_ts:i64 last_ts:i64 }^n_devices            (device ids inline)
//! ```
//!
//! All little endian, exact (`i64` microseconds, `f64` amounts as given). Before issue 14's
//! second round a user was a 72-byte struct of four boxed slices, each known destination and
//! device a 40-byte item, each device id its own allocation. Reading (`fill`, the hot path)
//! walks the record in place; a change (recording an event, rarer than reading) unpacks it into
//! reusable per-thread vectors ([`Unpacked`]), changes those, and packs it again into a
//! record of the exact size.

use std::cell::RefCell;
use std::sync::Arc;

use super::{
    id_hash, TxFeatures, MAX_DESTINATIONS, MAX_DEVICES, MAX_HISTORY, MAX_RESETS, RETENTION_DAYS,
};
use crate::time::{Timestamp, MICROS_PER_DAY};

/// One completed withdrawal in a user's history (17 bytes in the record).
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Entry {
    pub(crate) ts: i64,
    pub(crate) amount_usd: f64,
    /// Index into the user's destinations.
    pub(crate) dest: u8,
}

// A destination index must fit the entry's byte, and the counts their header fields.
const _: () = assert!(MAX_DESTINATIONS <= 1 << 8);
const _: () = assert!(MAX_HISTORY <= u16::MAX as usize);
const _: () = assert!(MAX_RESETS <= u8::MAX as usize && MAX_DEVICES <= u8::MAX as usize);

const HEADER: usize = 12;
const ENTRY: usize = 17;
const KNOWN: usize = 24;
const RESET: usize = 8;

/// A destination the user has paid.
#[derive(Clone, Debug)]
pub(crate) struct KnownDestination {
    pub(crate) address: Arc<str>,
    /// [`id_hash`] of `address`, compared before the string (which lives elsewhere).
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

/// A known destination as read from the record.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Known<'a> {
    pub(crate) address: &'a Arc<str>,
    hash: u64,
    pub(crate) first_ts: i64,
    pub(crate) last_ts: i64,
}

/// A device as read from the record.
#[derive(Clone, Copy, Debug)]
pub(crate) struct DeviceSeen<'a> {
    pub(crate) id: &'a str,
    pub(crate) first_ts: i64,
    pub(crate) last_ts: i64,
}

/// One user's state, packed (see the module docs): 32 bytes inline.
#[derive(Default, Clone, PartialEq, Eq)]
pub(crate) struct UserState {
    addresses: Box<[Arc<str>]>,
    data: Box<[u8]>,
}

impl std::fmt::Debug for UserState {
    /// Every field, decoded (snapshot tests compare records through this).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserState")
            .field("completed", &self.completed())
            .field("history", &self.history().collect::<Vec<_>>())
            .field("destinations", &self.destinations().collect::<Vec<_>>())
            .field("devices", &self.devices().collect::<Vec<_>>())
            .field("resets", &self.resets().collect::<Vec<_>>())
            .finish()
    }
}

fn u64_at(data: &[u8], at: usize) -> u64 {
    data.get(at..)
        .and_then(|rest| rest.first_chunk::<8>())
        .map_or(0, |b| u64::from_le_bytes(*b))
}

fn i64_at(data: &[u8], at: usize) -> i64 {
    u64_at(data, at) as i64
}

/// A LEB128 varint at `*at`, advancing it; `None` when the record ends inside it.
fn varint_at(data: &[u8], at: &mut usize) -> Option<usize> {
    let mut value = 0_usize;
    for shift in (0..usize::BITS).step_by(7) {
        let byte = *data.get(*at)?;
        *at += 1;
        value |= usize::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

fn push_varint(out: &mut Vec<u8>, mut v: usize) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn varint_len(mut v: usize) -> usize {
    let mut n = 1;
    while v >= 0x80 {
        v >>= 7;
        n += 1;
    }
    n
}

impl UserState {
    /// Completed withdrawals ever recorded (history trimming does not lower it).
    pub(crate) fn completed(&self) -> u64 {
        u64_at(&self.data, 0)
    }

    fn counts(&self) -> (usize, usize, usize) {
        let header = self.data.get(8..HEADER).unwrap_or_default();
        match *header {
            [h0, h1, resets, devices] => (
                usize::from(u16::from_le_bytes([h0, h1])),
                usize::from(resets),
                usize::from(devices),
            ),
            _ => (0, 0, 0),
        }
    }

    fn history_bytes(&self) -> &[u8] {
        let (n, _, _) = self.counts();
        self.data
            .get(HEADER..HEADER + n * ENTRY)
            .unwrap_or_default()
    }

    fn known_start(&self) -> usize {
        HEADER + self.counts().0 * ENTRY
    }

    fn resets_start(&self) -> usize {
        self.known_start() + self.addresses.len() * KNOWN
    }

    /// The history, in the order it was recorded.
    pub(crate) fn history(&self) -> impl Iterator<Item = Entry> + '_ {
        self.history_bytes().chunks_exact(ENTRY).map(|e| Entry {
            ts: i64_at(e, 0),
            amount_usd: f64::from_bits(u64_at(e, 8)),
            dest: e.get(16).copied().unwrap_or(u8::MAX),
        })
    }

    /// The known destinations (history entries refer to them by position).
    pub(crate) fn destinations(&self) -> impl Iterator<Item = Known<'_>> + '_ {
        let start = self.known_start();
        let bytes = self
            .data
            .get(start..start + self.addresses.len() * KNOWN)
            .unwrap_or_default();
        self.addresses
            .iter()
            .zip(bytes.chunks_exact(KNOWN))
            .map(|(address, d)| Known {
                address,
                hash: u64_at(d, 0),
                first_ts: i64_at(d, 8),
                last_ts: i64_at(d, 16),
            })
    }

    /// Password reset times, ascending.
    pub(crate) fn resets(&self) -> impl Iterator<Item = i64> + DoubleEndedIterator + '_ {
        let start = self.resets_start();
        let (_, n, _) = self.counts();
        self.data
            .get(start..start + n * RESET)
            .unwrap_or_default()
            .chunks_exact(RESET)
            .map(|r| i64_at(r, 0))
    }

    /// The devices the user was seen on.
    pub(crate) fn devices(&self) -> impl Iterator<Item = DeviceSeen<'_>> + '_ {
        let (_, resets, n) = self.counts();
        let mut at = self.resets_start() + resets * RESET;
        let data = &*self.data;
        (0..n).map_while(move |_| {
            let len = varint_at(data, &mut at)?;
            let id = data.get(at..at.checked_add(len)?)?;
            let id = std::str::from_utf8(id).ok()?;
            at += len;
            let device = DeviceSeen {
                id,
                first_ts: i64_at(data, at),
                last_ts: i64_at(data, at + 8),
            };
            at += 16;
            Some(device)
        })
    }

    /// Fills the state-derived features of a withdrawal at `now`.
    pub(crate) fn fill(
        &self,
        f: &mut TxFeatures,
        now: i64,
        destination: &str,
        device: Option<&str>,
    ) {
        f.prior_withdrawals = i64::try_from(self.completed()).unwrap_or(i64::MAX);
        let hash = id_hash(destination);
        let known = self
            .destinations()
            .enumerate()
            .find(|(_, d)| d.hash == hash && &**d.address == destination);
        // Amounts in the 90-day window, for the median: on the stack for the usual few, on
        // the heap past that (a zeroed array of MAX_HISTORY would cost more than the rest).
        let mut recent_inline = [0.0_f64; RECENT_INLINE];
        let mut recent_len = 0;
        let mut recent_heap: Vec<f64> = Vec::new();
        let day_start = now.saturating_sub(MICROS_PER_DAY);
        let month_start = now.saturating_sub(30 * MICROS_PER_DAY);
        let quarter_start = now.saturating_sub(90 * MICROS_PER_DAY);
        let dest_index = known.map(|(i, _)| i as u8);
        for e in self.history() {
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
        if let Some((_, known)) = known {
            f.is_new_address = false;
            f.dest_first_used_days =
                (now.saturating_sub(known.first_ts) as f64 / MICROS_PER_DAY as f64).max(0.0);
        }
        let now_ts = Timestamp::from_micros(now);
        if let Some(reset) = self.resets().rev().find(|&r| r <= now) {
            f.hours_since_password_reset = now_ts.hours_since(reset);
        }
        if let Some(device) = device {
            f.device_age_hours = match self.devices().find(|d| d.id == device) {
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
        self.edit(|u| u.record_withdrawal(address, ts, amount_usd, device));
    }

    pub(crate) fn record_device(&mut self, id: &str, ts: i64) {
        self.edit(|u| u.record_device(id, ts));
    }

    pub(crate) fn record_reset(&mut self, ts: i64) {
        self.edit(|u| u.record_reset(ts));
    }

    /// The newest time anything happened to this user.
    pub(crate) fn newest(&self) -> i64 {
        let history = self.history().map(|e| e.ts);
        let devices = self.devices().map(|d| d.last_ts);
        history
            .chain(devices)
            .chain(self.resets().next_back())
            .max()
            .unwrap_or(i64::MIN)
    }

    /// Unpacks into `u` (cleared first), changes it, packs it back. The addresses move
    /// (no reference count changes); the vectors keep their capacity for the next change.
    fn edit<R>(&mut self, change: impl FnOnce(&mut Unpacked) -> R) -> R {
        SCRATCH.with(|scratch| match scratch.try_borrow_mut() {
            Ok(mut u) => self.edit_with(&mut u, change),
            // Only if `change` itself recorded into another user (it does not).
            Err(_) => self.edit_with(&mut Unpacked::default(), change),
        })
    }

    fn edit_with<R>(&mut self, u: &mut Unpacked, change: impl FnOnce(&mut Unpacked) -> R) -> R {
        self.unpack_into(u);
        let result = change(u);
        *self = u.pack();
        result
    }

    /// This record, unpacked into `u` (whatever `u` held is dropped); `self` is left empty.
    pub(crate) fn unpack_into(&mut self, u: &mut Unpacked) {
        u.clear();
        u.completed = self.completed();
        u.history.extend(self.history());
        u.resets.extend(self.resets());
        for d in self.devices() {
            let start = u.device_ids.len();
            u.device_ids.push_str(d.id);
            u.devices.push(Device {
                id: start..u.device_ids.len(),
                first_ts: d.first_ts,
                last_ts: d.last_ts,
            });
        }
        let start = self.known_start();
        let n = self.addresses.len();
        let addresses = std::mem::take(&mut self.addresses).into_vec();
        let times = self.data.get(start..start + n * KNOWN).unwrap_or_default();
        u.destinations
            .extend(
                addresses
                    .into_iter()
                    .zip(times.chunks_exact(KNOWN))
                    .map(|(address, d)| KnownDestination {
                        address,
                        hash: u64_at(d, 0),
                        first_ts: i64_at(d, 8),
                        last_ts: i64_at(d, 16),
                    }),
            );
        self.data = Box::default();
    }
}

thread_local! {
    /// The vectors a change unpacks a user into, reused by every change on this thread.
    static SCRATCH: RefCell<Unpacked> = RefCell::new(Unpacked::default());
}

/// A device while unpacked: its id is a range of [`Unpacked::device_ids`].
#[derive(Clone, Debug)]
pub(crate) struct Device {
    id: std::ops::Range<usize>,
    pub(crate) first_ts: i64,
    pub(crate) last_ts: i64,
}

/// A user unpacked into vectors, to be changed and packed again (and what a decoder builds).
#[derive(Default, Debug)]
pub(crate) struct Unpacked {
    pub(crate) completed: u64,
    pub(crate) history: Vec<Entry>,
    pub(crate) destinations: Vec<KnownDestination>,
    devices: Vec<Device>,
    /// The device ids, back to back (a removed device's bytes stay until the next pack).
    device_ids: String,
    /// Password reset times, ascending.
    pub(crate) resets: Vec<i64>,
}

impl Unpacked {
    pub(crate) fn clear(&mut self) {
        self.completed = 0;
        self.history.clear();
        self.destinations.clear();
        self.devices.clear();
        self.device_ids.clear();
        self.resets.clear();
    }

    /// Adds a device as read from a snapshot or the shared store (no check for duplicates).
    pub(crate) fn push_device(&mut self, id: &str, first_ts: i64, last_ts: i64) {
        let start = self.device_ids.len();
        self.device_ids.push_str(id);
        self.devices.push(Device {
            id: start..self.device_ids.len(),
            first_ts,
            last_ts,
        });
    }

    fn device_id(&self, d: &Device) -> &str {
        self.device_ids.get(d.id.clone()).unwrap_or_default()
    }

    /// Packs into a record of the exact size; the destinations' addresses move into it, the
    /// rest of `self` is left as it was (cleared by the next unpack).
    pub(crate) fn pack(&mut self) -> UserState {
        let device_bytes: usize = self
            .devices
            .iter()
            .map(|d| varint_len(d.id.len()) + d.id.len() + 16)
            .sum();
        let size = HEADER
            + self.history.len() * ENTRY
            + self.destinations.len() * KNOWN
            + self.resets.len() * RESET
            + device_bytes;
        let mut data = Vec::with_capacity(size);
        data.extend_from_slice(&self.completed.to_le_bytes());
        // The caps keep the counts inside their fields (asserted at compile time above).
        data.extend_from_slice(&(self.history.len().min(MAX_HISTORY) as u16).to_le_bytes());
        data.push(self.resets.len().min(MAX_RESETS) as u8);
        data.push(self.devices.len().min(MAX_DEVICES) as u8);
        for e in &self.history {
            data.extend_from_slice(&e.ts.to_le_bytes());
            data.extend_from_slice(&e.amount_usd.to_bits().to_le_bytes());
            data.push(e.dest);
        }
        for d in &self.destinations {
            data.extend_from_slice(&d.hash.to_le_bytes());
            data.extend_from_slice(&d.first_ts.to_le_bytes());
            data.extend_from_slice(&d.last_ts.to_le_bytes());
        }
        for r in &self.resets {
            data.extend_from_slice(&r.to_le_bytes());
        }
        for d in &self.devices {
            let id = self.device_ids.get(d.id.clone()).unwrap_or_default();
            push_varint(&mut data, id.len());
            data.extend_from_slice(id.as_bytes());
            data.extend_from_slice(&d.first_ts.to_le_bytes());
            data.extend_from_slice(&d.last_ts.to_le_bytes());
        }
        let addresses: Box<[Arc<str>]> = self.destinations.drain(..).map(|d| d.address).collect();
        UserState {
            addresses,
            data: data.into_boxed_slice(),
        }
    }

    fn record_withdrawal(
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
                self.destinations
                    .push(KnownDestination::new(address, ts, ts));
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
        if self.history.len() >= MAX_HISTORY {
            // The oldest by time goes, the order of the others is kept.
            let oldest = self
                .history
                .iter()
                .enumerate()
                .min_by_key(|(_, e)| e.ts)
                .map(|(i, _)| i);
            if let Some(i) = oldest {
                self.history.remove(i);
            }
        }
        self.history.push(entry);
        if let Some(device) = device {
            self.record_device(device, ts);
        }
        self.trim(before.min(ts));
    }

    fn record_device(&mut self, id: &str, ts: i64) {
        let found = self.devices.iter().position(|d| self.device_id(d) == id);
        match found.and_then(|i| self.devices.get_mut(i)) {
            Some(d) => {
                d.first_ts = d.first_ts.min(ts);
                d.last_ts = d.last_ts.max(ts);
            }
            None => {
                if self.devices.len() >= MAX_DEVICES {
                    let stalest = self
                        .devices
                        .iter()
                        .enumerate()
                        .min_by_key(|(_, d)| d.last_ts)
                        .map(|(i, _)| i);
                    if let Some(i) = stalest {
                        self.devices.swap_remove(i);
                    }
                }
                self.push_device(id, ts, ts);
            }
        }
    }

    fn record_reset(&mut self, ts: i64) {
        let at = self.resets.partition_point(|&r| r <= ts);
        self.resets.insert(at, ts);
        if self.resets.len() > MAX_RESETS {
            self.resets.remove(0);
        }
    }

    fn newest(&self) -> i64 {
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
        self.history.retain(|e| e.ts > horizon);
        while let Some(i) = self.destinations.iter().position(|d| d.last_ts <= horizon) {
            self.remove_destination(i);
        }
        self.devices.retain(|d| d.last_ts > horizon);
        self.resets.retain(|&r| r > horizon);
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
        self.destinations.remove(i);
        let i = i as u8;
        self.history.retain(|e| e.dest != i);
        for e in self.history.iter_mut() {
            if e.dest > i {
                e.dest -= 1;
            }
        }
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
