//! Per-user state: history of completed withdrawals, known destinations, devices and resets.
//!
//! # Layout
//! A user is one allocation, whatever they hold: a byte record written sequentially and read
//! in place ([`UserRecord`]):
//!
//! ```text
//! completed:u64 n_history:u16 n_resets:u8 n_devices:u8 n_known:u8 refs:u32   (17 bytes)
//! key_len:varint key:bytes                                                     (the user id)
//! { ts:i64 amount_usd:f64 dest:u8 }^n_history                 (17 bytes; dest: known index)
//! { id:u32 first_ts:i64 last_ts:i64 }^n_known                 (20 bytes; id: see below)
//! { ts:i64 }^n_resets                                         (ascending)
//! { len:varint id:bytes first_ts:i64 last_ts:i64 }^n_devices  (device ids inline)
//! ```
//!
//! All little endian and exact (`i64` microseconds, `f64` amounts as given). A known
//! destination is a `u32`: in the in-process state the destination's interned id (see
//! `super::table`), so that recognising one is an integer comparison; in a [`UserState`] (a
//! user alone, as the shared store keeps it) an index into that user's own address list.
//! `refs` counts the destination payer entries that name this user's id (see `super`).
//!
//! Reading (`fill`, the hot path) walks the record in place; a change (recording an event,
//! rarer than reading) unpacks it into reusable per-thread vectors ([`Unpacked`]), changes
//! those, and packs it again into a record of the exact size.

use std::cell::RefCell;
use std::sync::Arc;

use super::table::Keyed;
use super::{TxFeatures, MAX_DESTINATIONS, MAX_DEVICES, MAX_HISTORY, MAX_RESETS, RETENTION_DAYS};
use crate::time::{Timestamp, MICROS_PER_DAY};

/// One completed withdrawal in a user's history (17 bytes in the record).
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Entry {
    pub(crate) ts: i64,
    pub(crate) amount_usd: f64,
    /// Index into the user's known destinations.
    pub(crate) dest: u8,
}

// A destination index must fit the entry's byte, and the counts their header fields.
const _: () = assert!(MAX_DESTINATIONS <= u8::MAX as usize);
const _: () = assert!(MAX_HISTORY <= u16::MAX as usize);
const _: () = assert!(MAX_RESETS <= u8::MAX as usize);
const _: () = assert!(MAX_DEVICES <= u8::MAX as usize);

const HEADER: usize = 17;
const REFS_AT: usize = 13;
const ENTRY: usize = 17;
const KNOWN: usize = 20;
const RESET: usize = 8;

/// A destination the user has paid: its `u32` (interned id, or index in a [`UserState`]'s
/// address list) and the first and last times.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Known {
    pub(crate) dest: u32,
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

/// One user's state, packed (see the module docs): 16 bytes inline, one allocation.
#[derive(Default, Clone, PartialEq, Eq)]
pub(crate) struct UserRecord {
    data: Box<[u8]>,
}

impl std::fmt::Debug for UserRecord {
    /// Every field, decoded (snapshot tests compare records through this).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserRecord")
            .field("key", &self.key())
            .field("completed", &self.completed())
            .field("history", &self.history().collect::<Vec<_>>())
            .field("destinations", &self.destinations().collect::<Vec<_>>())
            .field("devices", &self.devices().collect::<Vec<_>>())
            .field("resets", &self.resets().collect::<Vec<_>>())
            .finish()
    }
}

impl Keyed for UserRecord {
    fn key_bytes(&self) -> &[u8] {
        let (start, end) = self.offsets().key;
        self.data.get(start..end).unwrap_or_default()
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

fn u32_at(data: &[u8], at: usize) -> u32 {
    data.get(at..)
        .and_then(|rest| rest.first_chunk::<4>())
        .map_or(0, |b| u32::from_le_bytes(*b))
}

/// A LEB128 varint at `*at`, advancing it; `None` when the record ends inside it.
pub(crate) fn varint_at(data: &[u8], at: &mut usize) -> Option<usize> {
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

pub(crate) fn push_varint(out: &mut Vec<u8>, mut v: usize) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

pub(crate) fn varint_len(mut v: usize) -> usize {
    let mut n = 1;
    while v >= 0x80 {
        v >>= 7;
        n += 1;
    }
    n
}

/// Where each part of a record starts.
#[derive(Clone, Copy)]
struct Offsets {
    key: (usize, usize),
    history: usize,
    n_history: usize,
    known: usize,
    n_known: usize,
    resets: usize,
    n_resets: usize,
    devices: usize,
    n_devices: usize,
}

impl UserRecord {
    /// An empty user with this key.
    pub(crate) fn new(key: &str) -> UserRecord {
        let mut u = Unpacked::default();
        u.key.push_str(key);
        u.pack()
    }

    fn offsets(&self) -> Offsets {
        let data = &*self.data;
        let byte = |at: usize| usize::from(data.get(at).copied().unwrap_or(0));
        let n_history = byte(8) | byte(9) << 8;
        let (n_resets, n_devices, n_known) = (byte(10), byte(11), byte(12));
        let mut at = HEADER;
        let key_len = varint_at(data, &mut at).unwrap_or(0);
        let key = (at, at + key_len);
        let history = key.1;
        let known = history + n_history * ENTRY;
        let resets = known + n_known * KNOWN;
        let devices = resets + n_resets * RESET;
        Offsets {
            key,
            history,
            n_history,
            known,
            n_known,
            resets,
            n_resets,
            devices,
            n_devices,
        }
    }

    /// The user id.
    pub(crate) fn key(&self) -> &str {
        std::str::from_utf8(self.key_bytes()).unwrap_or_default()
    }

    /// Sets [`UserRecord::refs`], in place.
    pub(crate) fn set_refs(&mut self, refs: u32) {
        if let Some(field) = self.data.get_mut(REFS_AT..REFS_AT + 4) {
            field.copy_from_slice(&refs.to_le_bytes());
        }
    }

    /// Payer entries naming this user (see `super`).
    pub(crate) fn refs(&self) -> u32 {
        u32_at(&self.data, REFS_AT)
    }

    /// Adds `delta` to [`UserRecord::refs`], in place.
    pub(crate) fn add_refs(&mut self, delta: i64) {
        self.set_refs((i64::from(self.refs()) + delta).clamp(0, i64::from(u32::MAX)) as u32);
    }

    /// Completed withdrawals ever recorded (history trimming does not lower it).
    pub(crate) fn completed(&self) -> u64 {
        u64_at(&self.data, 0)
    }

    /// The history, in the order it was recorded.
    pub(crate) fn history(&self) -> impl Iterator<Item = Entry> + '_ {
        let o = self.offsets();
        self.data
            .get(o.history..o.history + o.n_history * ENTRY)
            .unwrap_or_default()
            .chunks_exact(ENTRY)
            .map(|e| Entry {
                ts: i64_at(e, 0),
                amount_usd: f64::from_bits(u64_at(e, 8)),
                dest: e.get(16).copied().unwrap_or(u8::MAX),
            })
    }

    /// The known destinations (history entries refer to them by position).
    pub(crate) fn destinations(&self) -> impl Iterator<Item = Known> + '_ {
        let o = self.offsets();
        self.data
            .get(o.known..o.known + o.n_known * KNOWN)
            .unwrap_or_default()
            .chunks_exact(KNOWN)
            .map(|d| Known {
                dest: u32_at(d, 0),
                first_ts: i64_at(d, 4),
                last_ts: i64_at(d, 12),
            })
    }

    /// Password reset times, ascending.
    pub(crate) fn resets(&self) -> impl DoubleEndedIterator<Item = i64> + '_ {
        let o = self.offsets();
        self.data
            .get(o.resets..o.resets + o.n_resets * RESET)
            .unwrap_or_default()
            .chunks_exact(RESET)
            .map(|r| i64_at(r, 0))
    }

    /// The devices the user was seen on.
    pub(crate) fn devices(&self) -> impl Iterator<Item = DeviceSeen<'_>> + '_ {
        let o = self.offsets();
        let mut at = o.devices;
        let data = &*self.data;
        (0..o.n_devices).map_while(move |_| {
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

    /// Fills the state-derived features of a withdrawal at `now` to the destination whose
    /// `u32` is `destination` (`None`: one this user cannot know).
    pub(crate) fn fill(
        &self,
        f: &mut TxFeatures,
        now: i64,
        destination: Option<u32>,
        device: Option<&str>,
    ) {
        f.prior_withdrawals = i64::try_from(self.completed()).unwrap_or(i64::MAX);
        let known = destination.and_then(|dest| {
            self.destinations()
                .enumerate()
                .find(|(_, d)| d.dest == dest)
        });
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
            } else if f.dest_prior_withdrawals > 0 {
                // Whether the user still pays anyone else since this payee appeared.
                f.dest_others_since_first += 1;
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

    /// Records a completed withdrawal to destination `dest`. Returns whether `dest` was not
    /// known before; the destinations the user forgets (over the cap, or past retention) are
    /// appended to `forgotten`.
    pub(crate) fn record_withdrawal(
        &mut self,
        dest: u32,
        ts: i64,
        amount_usd: f64,
        device: Option<&str>,
        forgotten: &mut Vec<u32>,
    ) -> bool {
        self.edit(|u| u.record_withdrawal(dest, ts, amount_usd, device, forgotten))
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

    /// Replaces each known destination's `u32` with `map(it)` (in place).
    pub(crate) fn map_destinations(&mut self, mut map: impl FnMut(u32) -> u32) {
        let o = self.offsets();
        if let Some(known) = self.data.get_mut(o.known..o.known + o.n_known * KNOWN) {
            for d in known.chunks_exact_mut(KNOWN) {
                if let Some(field) = d.get_mut(0..4) {
                    let id = map(u32_at(field, 0));
                    field.copy_from_slice(&id.to_le_bytes());
                }
            }
        }
    }

    /// Unpacks into `u` (cleared first), changes it, packs it back; the vectors keep their
    /// capacity for the next change on this thread.
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
        u.pack_into(self);
        result
    }

    /// This record, unpacked into `u` (whatever `u` held is dropped).
    pub(crate) fn unpack_into(&self, u: &mut Unpacked) {
        u.clear();
        u.key.push_str(self.key());
        u.refs = self.refs();
        u.completed = self.completed();
        u.history.extend(self.history());
        u.destinations.extend(self.destinations());
        u.resets.extend(self.resets());
        for d in self.devices() {
            u.push_device(d.id, d.first_ts, d.last_ts);
        }
    }
}

thread_local! {
    /// The vectors a change unpacks a user into, reused by every change on this thread.
    static SCRATCH: RefCell<Unpacked> = RefCell::new(Unpacked::default());
}

/// A device while unpacked: its id is a range of [`Unpacked::device_ids`].
#[derive(Clone, Debug)]
struct Device {
    id: std::ops::Range<usize>,
    first_ts: i64,
    last_ts: i64,
}

/// A user unpacked into vectors, to be changed and packed again (and what a decoder builds).
#[derive(Default, Debug)]
pub(crate) struct Unpacked {
    pub(crate) key: String,
    pub(crate) refs: u32,
    pub(crate) completed: u64,
    pub(crate) history: Vec<Entry>,
    pub(crate) destinations: Vec<Known>,
    devices: Vec<Device>,
    /// The device ids, back to back (a removed device's bytes stay until the next pack).
    device_ids: String,
    /// Password reset times, ascending.
    pub(crate) resets: Vec<i64>,
}

impl Unpacked {
    pub(crate) fn clear(&mut self) {
        self.key.clear();
        self.refs = 0;
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

    /// Packs into a record of the exact size (`self` is left as it was).
    pub(crate) fn pack(&self) -> UserRecord {
        let mut record = UserRecord::default();
        self.pack_into(&mut record);
        record
    }

    /// Packs into `record`'s own allocation, resized in place (`realloc`): a new allocation
    /// per change and the old one freed would leave the heap full of holes a little too small
    /// for the next, longer record (measured: several times the live bytes in RSS).
    pub(crate) fn pack_into(&self, record: &mut UserRecord) {
        let device_bytes: usize = self
            .devices
            .iter()
            .map(|d| varint_len(d.id.len()) + d.id.len() + 16)
            .sum();
        // The caps keep the counts inside their fields (asserted at compile time above);
        // whatever lies past a cap is not written.
        let n_history = self.history.len().min(MAX_HISTORY);
        let n_known = self.destinations.len().min(MAX_DESTINATIONS);
        let n_resets = self.resets.len().min(MAX_RESETS);
        let n_devices = self.devices.len().min(MAX_DEVICES);
        let size = HEADER
            + varint_len(self.key.len())
            + self.key.len()
            + n_history * ENTRY
            + n_known * KNOWN
            + n_resets * RESET
            + device_bytes;
        let mut data = std::mem::take(&mut record.data).into_vec();
        data.clear();
        data.reserve_exact(size);
        data.extend_from_slice(&self.completed.to_le_bytes());
        data.extend_from_slice(&(n_history as u16).to_le_bytes());
        data.push(n_resets as u8);
        data.push(n_devices as u8);
        data.push(n_known as u8);
        data.extend_from_slice(&self.refs.to_le_bytes());
        push_varint(&mut data, self.key.len());
        data.extend_from_slice(self.key.as_bytes());
        for e in self.history.iter().take(n_history) {
            data.extend_from_slice(&e.ts.to_le_bytes());
            data.extend_from_slice(&e.amount_usd.to_bits().to_le_bytes());
            data.push(e.dest);
        }
        for d in self.destinations.iter().take(n_known) {
            data.extend_from_slice(&d.dest.to_le_bytes());
            data.extend_from_slice(&d.first_ts.to_le_bytes());
            data.extend_from_slice(&d.last_ts.to_le_bytes());
        }
        for r in self.resets.iter().take(n_resets) {
            data.extend_from_slice(&r.to_le_bytes());
        }
        for d in self.devices.iter().take(n_devices) {
            let id = self.device_id(d);
            push_varint(&mut data, id.len());
            data.extend_from_slice(id.as_bytes());
            data.extend_from_slice(&d.first_ts.to_le_bytes());
            data.extend_from_slice(&d.last_ts.to_le_bytes());
        }
        record.data = data.into_boxed_slice();
    }

    fn record_withdrawal(
        &mut self,
        dest: u32,
        ts: i64,
        amount_usd: f64,
        device: Option<&str>,
        forgotten: &mut Vec<u32>,
    ) -> bool {
        let before = self.newest();
        self.completed += 1;
        let (index, new) = match self.destinations.iter().position(|d| d.dest == dest) {
            Some(i) => (i, false),
            None => {
                if self.destinations.len() >= MAX_DESTINATIONS {
                    self.forget_stalest_destination(forgotten);
                }
                self.destinations.push(Known {
                    dest,
                    first_ts: ts,
                    last_ts: ts,
                });
                (self.destinations.len() - 1, true)
            }
        };
        if let Some(known) = self.destinations.get_mut(index) {
            known.first_ts = known.first_ts.min(ts);
            known.last_ts = known.last_ts.max(ts);
        }
        let entry = Entry {
            ts,
            amount_usd,
            // `index < MAX_DESTINATIONS <= 255`.
            dest: u8::try_from(index).unwrap_or(u8::MAX),
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
        self.trim(before.min(ts), forgotten);
        new
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
    fn trim(&mut self, now: i64, forgotten: &mut Vec<u32>) {
        let horizon = now.saturating_sub(RETENTION_DAYS * MICROS_PER_DAY);
        self.history.retain(|e| e.ts > horizon);
        while let Some(i) = self.destinations.iter().position(|d| d.last_ts <= horizon) {
            self.remove_destination(i, forgotten);
        }
        self.devices.retain(|d| d.last_ts > horizon);
        self.resets.retain(|&r| r > horizon);
    }

    fn forget_stalest_destination(&mut self, forgotten: &mut Vec<u32>) {
        let stalest = self
            .destinations
            .iter()
            .enumerate()
            .min_by_key(|(_, d)| d.last_ts)
            .map(|(i, _)| i);
        if let Some(i) = stalest {
            self.remove_destination(i, forgotten);
        }
    }

    /// Removes destination `i` with its history entries, keeping indices consistent.
    fn remove_destination(&mut self, i: usize, forgotten: &mut Vec<u32>) {
        if i >= self.destinations.len() {
            return;
        }
        forgotten.push(self.destinations.remove(i).dest);
        let i = i as u8;
        self.history.retain(|e| e.dest != i);
        for e in self.history.iter_mut() {
            if e.dest > i {
                e.dest -= 1;
            }
        }
    }
}

/// A user alone, as the shared store keeps them: the record with its known destinations
/// numbered by position in `addresses` (no interned ids outside one process).
#[derive(Default, Clone, Debug)]
pub(crate) struct UserState {
    pub(crate) record: UserRecord,
    /// Known destinations' addresses, by the `u32` the record holds (may hold addresses the
    /// record no longer names; encoding writes only the named ones).
    pub(crate) addresses: Vec<Arc<str>>,
}

#[cfg_attr(not(feature = "redis"), allow(dead_code))] // used by the Redis store
impl UserState {
    fn token(&self, address: &str) -> Option<u32> {
        self.addresses
            .iter()
            .position(|a| &**a == address)
            .map(|i| i as u32)
    }

    /// Fills the state-derived features of a withdrawal at `now` to `destination`.
    pub(crate) fn fill(
        &self,
        f: &mut TxFeatures,
        now: i64,
        destination: &str,
        device: Option<&str>,
    ) {
        self.record.fill(f, now, self.token(destination), device);
    }

    pub(crate) fn record_withdrawal(
        &mut self,
        address: Arc<str>,
        ts: i64,
        amount_usd: f64,
        device: Option<&str>,
    ) {
        let token = match self.token(&address) {
            Some(token) => token,
            None => {
                self.addresses.push(address);
                (self.addresses.len() - 1) as u32
            }
        };
        self.record
            .record_withdrawal(token, ts, amount_usd, device, &mut Vec::new());
    }

    pub(crate) fn record_device(&mut self, id: &str, ts: i64) {
        self.record.record_device(id, ts);
    }

    pub(crate) fn record_reset(&mut self, ts: i64) {
        self.record.record_reset(ts);
    }

    /// The address of a known destination's `u32`.
    pub(crate) fn address(&self, token: u32) -> Option<&Arc<str>> {
        self.addresses.get(token as usize)
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
