//! Per-user state: history of completed withdrawals, known destinations, devices and resets.
//!
//! # Layout
//! A user is one allocation, whatever they hold: a byte record written sequentially and read
//! in place ([`UserRecord`]):
//!
//! ```text
//! refs:u32 n_history:u16 n_resets:u8 n_devices:u8 n_known:u8 unit:u8       (10 bytes)
//! key_len:varint key:bytes completed:varint base:delta(0)          (base: the newest time)
//! { id:u32 first_ts:delta(base) last_ts:delta(first_ts) }^n_known  (id: see below)
//! { ts:delta(previous) }^n_resets                           (ascending; the first from base)
//! { len:varint id:bytes first_ts:delta(base) last_ts:delta(first_ts) }^n_devices
//! { dest:u8 ts:delta(previous) amount_usd:amount }^n_history (the first from base; dest: known
//!                                                             index)
//! ```
//!
//! Exact and compact (see `super::codec`): every time is a number of the record's `unit`
//! (whole seconds, milliseconds or microseconds: the coarsest that divides all its times),
//! written as a zig-zag varint of the difference from the time named; an amount is a varint
//! of whole cents when that gives the `f64` back bit for bit, else 9 bytes. A history entry
//! of whole-second times and whole-cent amounts is about 8 bytes, against 17 with an `i64`
//! and an `f64`. `base` is the newest time of the history, devices and resets (so
//! [`UserRecord::newest`] reads one number). A known destination is a `u32`: in the
//! in-process state the destination's interned id (see `super::table`), so that recognising
//! one is an integer comparison; in a [`UserState`] (a user alone, as the shared store keeps
//! it) an index into that user's own address list. `refs` counts the destination payer
//! entries that name this user's id (see `super`).
//!
//! Reading (`fill`, the hot path) walks the record once, in place; a change (recording an
//! event, rarer than reading) unpacks it into reusable per-thread vectors ([`Unpacked`]),
//! changes those, and packs it again into a record of the exact size. The usual withdrawal,
//! login or password reset (the user's newest event, nothing to trim, no cap reached) skips
//! the unpacking: one pass rewrites the few deltas from `base` and appends the entry
//! (`UserRecord::append`).

use std::cell::RefCell;
use std::sync::Arc;

use super::codec::{self, Cursor, Out, Unit};
use super::table::Keyed;
use super::{TxFeatures, MAX_DESTINATIONS, MAX_DEVICES, MAX_HISTORY, MAX_RESETS, RETENTION_DAYS};
use crate::time::{Timestamp, MICROS_PER_DAY};

/// One completed withdrawal in a user's history (about 8 bytes in the record with whole-second
/// times and whole-cent amounts, at most 20; see the module docs).
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Entry {
    pub(crate) ts: i64,
    pub(crate) amount_usd: f64,
    /// Index into the user's known destinations.
    pub(crate) dest: u8,
}

// A destination index must fit the entry's byte, and the counts their header fields.
const _: () = assert!(MAX_DESTINATIONS <= u8::MAX as usize);
// And the 128-bit set of new payees in `fill`.
const _: () = assert!(MAX_DESTINATIONS <= 128);
const _: () = assert!(MAX_HISTORY <= u16::MAX as usize);
const _: () = assert!(MAX_RESETS <= u8::MAX as usize);
const _: () = assert!(MAX_DEVICES <= u8::MAX as usize);

const HEADER: usize = 10;
const REFS_AT: usize = 0;

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

#[inline]
fn read_known(c: &mut Cursor<'_>, h: &Head) -> Known {
    let dest = c.u32();
    let first = c.delta(h.base);
    let last = c.delta(first);
    Known {
        dest,
        first_ts: h.unit.time(first),
        last_ts: h.unit.time(last),
    }
}

#[inline]
fn read_device<'a>(c: &mut Cursor<'a>, h: &Head) -> DeviceSeen<'a> {
    let len = c.short() as usize;
    let id = c.str(len);
    let first = c.delta(h.base);
    let last = c.delta(first);
    DeviceSeen {
        id,
        first_ts: h.unit.time(first),
        last_ts: h.unit.time(last),
    }
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
        Cursor::new(&self.data, HEADER).prefixed()
    }
}

/// The header's counts and the record's time frame, and where its sections start.
#[derive(Clone, Copy)]
struct Head {
    n_history: usize,
    n_resets: usize,
    n_devices: usize,
    n_known: usize,
    unit: Unit,
    completed: u64,
    /// The newest time, in units.
    base: i64,
    /// Where the known destinations start (right after `base`).
    known: usize,
}

impl UserRecord {
    /// An empty user with this key.
    pub(crate) fn new(key: &str) -> UserRecord {
        let mut u = Unpacked::default();
        u.key.push_str(key);
        u.pack()
    }

    fn head(&self) -> Head {
        let data = &*self.data;
        let byte = |at: usize| data.get(at).copied().unwrap_or(0);
        let mut c = Cursor::new(data, HEADER);
        let key_len = c.short() as usize;
        c.at = c.at.saturating_add(key_len);
        let completed = c.short();
        let base = c.delta(0);
        Head {
            n_history: usize::from(u16::from_le_bytes([byte(4), byte(5)])),
            n_resets: usize::from(byte(6)),
            n_devices: usize::from(byte(7)),
            n_known: usize::from(byte(8)),
            unit: Unit::from_code(byte(9)),
            completed,
            base,
            known: c.at,
        }
    }

    /// A cursor at the resets, past the known destinations.
    fn resets_cursor(&self, h: &Head) -> Cursor<'_> {
        let mut c = Cursor::new(&self.data, h.known);
        for _ in 0..h.n_known {
            c.at += 4;
            c.skip_varint();
            c.skip_varint();
        }
        c
    }

    /// A cursor at the devices, past the resets.
    fn devices_cursor(&self, h: &Head) -> Cursor<'_> {
        let mut c = self.resets_cursor(h);
        for _ in 0..h.n_resets {
            c.skip_varint();
        }
        c
    }

    /// A cursor at the history, past the devices.
    fn history_cursor(&self, h: &Head) -> Cursor<'_> {
        let mut c = self.devices_cursor(h);
        for _ in 0..h.n_devices {
            let len = c.short() as usize;
            c.at = c.at.saturating_add(len);
            c.skip_varint();
            c.skip_varint();
        }
        c
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
        Cursor::new(&self.data, REFS_AT).u32()
    }

    /// Adds `delta` to [`UserRecord::refs`], in place.
    pub(crate) fn add_refs(&mut self, delta: i64) {
        self.set_refs((i64::from(self.refs()) + delta).clamp(0, i64::from(u32::MAX)) as u32);
    }

    /// Completed withdrawals ever recorded (history trimming does not lower it).
    pub(crate) fn completed(&self) -> u64 {
        self.head().completed
    }

    /// The history, in the order it was recorded.
    pub(crate) fn history(&self) -> impl Iterator<Item = Entry> + '_ {
        let h = self.head();
        let mut c = self.history_cursor(&h);
        let mut prev = h.base;
        (0..h.n_history).map(move |_| {
            let dest = c.byte();
            prev = c.delta(prev);
            Entry {
                ts: h.unit.time(prev),
                amount_usd: c.amount(),
                dest,
            }
        })
    }

    /// The known destinations (history entries refer to them by position).
    pub(crate) fn destinations(&self) -> impl Iterator<Item = Known> + '_ {
        let h = self.head();
        let mut c = Cursor::new(&self.data, h.known);
        (0..h.n_known).map(move |_| read_known(&mut c, &h))
    }

    /// Password reset times, ascending.
    pub(crate) fn resets(&self) -> impl DoubleEndedIterator<Item = i64> + '_ {
        let h = self.head();
        let mut c = self.resets_cursor(&h);
        let mut times = [0_i64; MAX_RESETS];
        let mut prev = h.base;
        for t in times.iter_mut().take(h.n_resets) {
            prev = c.delta(prev);
            *t = h.unit.time(prev);
        }
        times.into_iter().take(h.n_resets)
    }

    /// The devices the user was seen on.
    pub(crate) fn devices(&self) -> impl Iterator<Item = DeviceSeen<'_>> + '_ {
        let h = self.head();
        let mut c = self.devices_cursor(&h);
        (0..h.n_devices).map(move |_| read_device(&mut c, &h))
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
        // One walk over the record: known destinations, resets, devices, then the history.
        let h = self.head();
        f.prior_withdrawals = i64::try_from(h.completed).unwrap_or(i64::MAX);
        let mut c = Cursor::new(&self.data, h.known);
        let mut known = None;
        let month_start = now.saturating_sub(30 * MICROS_PER_DAY);
        // The destinations first paid in the last 30 days: bit i for index i (MAX_DESTINATIONS
        // <= 128).
        let mut new_payees = 0_u128;
        for i in 0..h.n_known {
            // Only the matching destination's times are decoded in full.
            let start = c.at;
            let id = c.u32();
            if known.is_none() && Some(id) == destination {
                c.at = start;
                let k = read_known(&mut c, &h);
                if k.first_ts > month_start {
                    new_payees |= bit(i);
                }
                known = Some((i, k));
            } else {
                if h.unit.time(c.delta(h.base)) > month_start {
                    new_payees |= bit(i);
                }
                c.skip_varint();
            }
        }
        // Ascending: the last at or before `now` is the latest.
        let mut reset = None;
        let mut prev = h.base;
        for _ in 0..h.n_resets {
            prev = c.delta(prev);
            let r = h.unit.time(prev);
            if r <= now {
                reset = Some(r);
            }
        }
        let mut device_first = None;
        let device_bytes = device.map(str::as_bytes);
        for _ in 0..h.n_devices {
            // Compared as bytes: what `read_device` would check as UTF-8 was a `&str`.
            let len = c.short() as usize;
            let id = c.data.get(c.at..c.at.saturating_add(len));
            c.at = c.at.saturating_add(len);
            let first = c.delta(h.base);
            c.skip_varint();
            if device_first.is_none() && id.is_some() && id == device_bytes {
                device_first = Some(h.unit.time(first));
            }
        }
        // Amounts in the 90-day window, for the median: on the stack for the usual few, on
        // the heap past that (a zeroed array of MAX_HISTORY would cost more than the rest).
        let mut recent_inline = [0.0_f64; RECENT_INLINE];
        let mut recent_len = 0;
        let mut recent_heap: Vec<f64> = Vec::new();
        let day_start = now.saturating_sub(MICROS_PER_DAY);
        let quarter_start = now.saturating_sub(90 * MICROS_PER_DAY);
        let dest_index = known.map(|(i, _)| i as u8);
        let mut prev = h.base;
        for _ in 0..h.n_history {
            let dest = c.byte();
            prev = c.delta(prev);
            let e = Entry {
                ts: h.unit.time(prev),
                amount_usd: c.amount(),
                dest,
            };
            // The payee's own record covers all retained history, in recording order: it carries
            // the growth of successive payments to one payee (romance scams), which no window does.
            if Some(e.dest) == dest_index {
                if f.dest_prior_withdrawals > 0 && e.amount_usd > f.dest_last_amount_usd {
                    f.dest_rising_run += 1;
                    f.dest_rises += 1;
                } else {
                    f.dest_rising_run = 0;
                }
                if f.dest_prior_withdrawals == 0 {
                    f.dest_first_amount_usd = e.amount_usd;
                }
                f.dest_prior_withdrawals += 1;
                f.dest_last_amount_usd = e.amount_usd;
            } else if f.dest_prior_withdrawals > 0 {
                // Whether the user still pays anyone else since this payee appeared.
                f.dest_others_since_first += 1;
            }
            // A spree of payments to new payees (coaches rotate addresses), against the
            // user's older history.
            if e.ts <= month_start {
                f.withdrawals_before_30d += 1;
            } else if e.ts <= now && new_payees & bit(usize::from(e.dest)) != 0 {
                f.new_payee_withdrawals_30d += 1;
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
        if let Some(reset) = reset {
            f.hours_since_password_reset = now_ts.hours_since(reset);
        }
        if device.is_some() {
            f.device_age_hours = match device_first {
                Some(first_ts) if first_ts <= now => now_ts.hours_since(first_ts),
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
        match self.append(Some((dest, amount_usd)), ts, device, false) {
            Some(new) => new,
            None => self.edit(|u| u.record_withdrawal(dest, ts, amount_usd, device, forgotten)),
        }
    }

    /// The usual withdrawal, recorded in one pass over the record without unpacking it: the
    /// user's newest event, in the record's time unit, with room under every cap and nothing
    /// to trim. The new base (`ts`) rewrites the first delta of each section; the rest of the
    /// history is copied as it is and the entry appended. The bytes are those the full path
    /// writes. `None` (nothing changed) when the full path is needed.
    /// Also a device seen at the user's newest time (a login), with no withdrawal, and a
    /// password reset at it (`reset`: appended to the resets, under their cap).
    fn append(
        &mut self,
        withdrawal: Option<(u32, f64)>,
        ts: i64,
        device: Option<&str>,
        reset: bool,
    ) -> Option<bool> {
        let h = self.head();
        let unit = h.unit;
        if h.n_history + h.n_devices + h.n_resets == 0
            || (withdrawal.is_some() && h.n_history >= MAX_HISTORY)
            || (reset && h.n_resets >= MAX_RESETS)
            || unit.time(unit.count(ts)) != ts
            || ts < unit.time(h.base)
        {
            return None;
        }
        // What the full path's trim would drop: it must drop nothing (a login trims nothing,
        // but a user with something to trim is rare enough to take the full path).
        let horizon = unit
            .time(h.base)
            .saturating_sub(RETENTION_DAYS * MICROS_PER_DAY);
        let stale = |t: i64| unit.time(t) <= horizon;
        let completed = match withdrawal {
            Some(_) => h.completed.checked_add(1)?,
            None => h.completed,
        };
        let base = unit.count(ts);
        let data = &*self.data;
        PACKED
            .with(|packed| {
                let mut guard = packed.try_borrow_mut().ok()?;
                let out: &mut Vec<u8> = &mut guard;
                out.clear();
                out.extend_from_slice(data.get(..HEADER)?);
                let mut c = Cursor::new(data, HEADER);
                let key_len = c.short() as usize;
                out.extend_from_slice(data.get(HEADER..c.at.checked_add(key_len)?)?);
                out.varint(completed);
                out.delta(0, base);
                let mut c = Cursor::new(data, h.known);
                let mut index = None;
                for i in 0..h.n_known {
                    let id = c.u32();
                    let first = c.delta(h.base);
                    out.bytes(&id.to_le_bytes());
                    if index.is_none() && withdrawal.map(|w| w.0) == Some(id) {
                        index = Some(i);
                        write_touched(out, &mut c, first, base, stale)?;
                    } else {
                        out.delta(base, first);
                        copy_last(out, &mut c, first, stale)?;
                    }
                }
                let (new, index) = match (withdrawal, index) {
                    (None, _) => (false, 0),
                    (Some(_), Some(i)) => (false, i),
                    (Some((dest, _)), None) if h.n_known < MAX_DESTINATIONS => {
                        out.bytes(&dest.to_le_bytes());
                        out.delta(base, base);
                        out.delta(base, base);
                        (true, h.n_known)
                    }
                    (Some(_), None) => return None,
                };
                let (mut prev, mut prev_out) = (h.base, base);
                for _ in 0..h.n_resets {
                    prev = c.delta(prev);
                    if stale(prev) {
                        return None;
                    }
                    out.delta(prev_out, prev);
                    prev_out = prev;
                }
                // The newest reset, last (they are ascending and none is after `ts`).
                if reset {
                    out.delta(prev_out, base);
                }
                let mut device_found = device.is_none();
                for _ in 0..h.n_devices {
                    let len = c.short() as usize;
                    let id = data.get(c.at..c.at.checked_add(len)?)?;
                    c.at += len;
                    let first = c.delta(h.base);
                    out.varint(len as u64);
                    out.bytes(id);
                    if !device_found && device.map(str::as_bytes) == Some(id) {
                        device_found = true;
                        write_touched(out, &mut c, first, base, stale)?;
                    } else {
                        out.delta(base, first);
                        copy_last(out, &mut c, first, stale)?;
                    }
                }
                let n_devices = match device {
                    Some(id) if !device_found => {
                        if h.n_devices >= MAX_DEVICES {
                            return None;
                        }
                        out.varint(id.len() as u64);
                        out.bytes(id.as_bytes());
                        out.delta(base, base);
                        out.delta(base, base);
                        h.n_devices + 1
                    }
                    _ => h.n_devices,
                };
                let mut prev = h.base;
                // Past the first entry the history is copied as it is, in one piece once it
                // was checked (a copy per entry was most of this function's `memmove`).
                let mut rest = c.at;
                for i in 0..h.n_history {
                    let dest = c.byte();
                    prev = c.delta(prev);
                    let amount_at = c.at;
                    c.skip_amount();
                    if stale(prev) {
                        return None;
                    }
                    if i == 0 {
                        out.bytes(&[dest]);
                        out.delta(base, prev);
                        out.bytes(data.get(amount_at..c.at)?);
                        rest = c.at;
                    }
                }
                if c.at != data.len() {
                    return None;
                }
                out.bytes(data.get(rest..)?);
                let n_history = match withdrawal {
                    Some((_, amount_usd)) => {
                        // `index < MAX_DESTINATIONS <= 255`.
                        out.bytes(&[u8::try_from(index).ok()?]);
                        // From the previous entry, or from the base for the first.
                        out.delta(if h.n_history == 0 { base } else { prev }, base);
                        out.amount(amount_usd);
                        h.n_history + 1
                    }
                    None => h.n_history,
                };
                // The counts: n_history (u16), n_resets, n_devices, n_known.
                let [h0, h1] = (n_history as u16).to_le_bytes();
                let n_resets = h.n_resets + usize::from(reset);
                let counts = out.get_mut(4..9)?.first_chunk_mut::<5>()?;
                *counts = [
                    h0,
                    h1,
                    n_resets as u8,
                    n_devices as u8,
                    (h.n_known + usize::from(new)) as u8,
                ];
                Some(new)
            })
            .inspect(|_| {
                // Stored once `data` (a borrow of the old bytes) is done with.
                PACKED.with(|packed| {
                    if let Ok(buf) = packed.try_borrow() {
                        store(self, &buf);
                    }
                });
            })
    }

    pub(crate) fn record_device(&mut self, id: &str, ts: i64) {
        if self.append(None, ts, Some(id), false).is_none() {
            self.edit(|u| u.record_device(id, ts));
        }
    }

    pub(crate) fn record_reset(&mut self, ts: i64) {
        if self.append(None, ts, None, true).is_none() {
            self.edit(|u| u.record_reset(ts));
        }
    }

    /// The newest time anything happened to this user.
    pub(crate) fn newest(&self) -> i64 {
        let h = self.head();
        if h.n_history + h.n_devices + h.n_resets == 0 {
            i64::MIN
        } else {
            h.unit.time(h.base)
        }
    }

    /// Replaces each known destination's `u32` with `map(it)` (in place).
    pub(crate) fn map_destinations(&mut self, mut map: impl FnMut(u32) -> u32) {
        let h = self.head();
        let mut at = h.known;
        for _ in 0..h.n_known {
            if let Some(field) = self.data.get_mut(at..at + 4) {
                let id = map(Cursor::new(field, 0).u32());
                field.copy_from_slice(&id.to_le_bytes());
            }
            let mut c = Cursor::new(&self.data, at + 4);
            c.skip_varint();
            c.skip_varint();
            at = c.at;
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

/// Copies a `last_ts` delta (from `first`, at `c`, moved past) to `out` as it is, its entry
/// unchanged; `None` when the time is stale. Decoded only when `first` is stale or the delta
/// negative (its zig-zag low bit): else the time is after `first`, so not stale either (a
/// decode and an encode fewer per destination and device of [`UserRecord::append`]).
#[inline(always)]
fn copy_last(
    out: &mut Vec<u8>,
    c: &mut Cursor<'_>,
    first: i64,
    stale: impl Fn(i64) -> bool,
) -> Option<()> {
    let at = c.at;
    if stale(first) || c.data.get(at).is_none_or(|b| b & 1 == 1) {
        if stale(c.delta(first)) {
            return None;
        }
    } else {
        c.skip_varint();
    }
    // A fixed-size copy cut to the length (as `codec::push_u64` writes), not a `memcpy` call.
    match c.data.get(at..).and_then(|rest| rest.first_chunk::<8>()) {
        Some(word) if c.at - at <= 8 => {
            let end = out.len() + (c.at - at);
            out.extend_from_slice(word);
            out.truncate(end);
        }
        _ => out.extend_from_slice(c.data.get(at..c.at)?),
    }
    Some(())
}

/// Writes the entry this event touches (the destination paid, the device used): its `first`
/// and `last_ts` (from `first`, at `c`, moved past) widened to hold `base`, the event's time,
/// from the new base; `None` when the old `last_ts` is stale.
#[inline(always)]
fn write_touched(
    out: &mut Vec<u8>,
    c: &mut Cursor<'_>,
    first: i64,
    base: i64,
    stale: impl Fn(i64) -> bool,
) -> Option<()> {
    let last = c.delta(first);
    if stale(last) {
        return None;
    }
    let first = first.min(base);
    out.delta(base, first);
    out.delta(first, last.max(base));
    Some(())
}

thread_local! {
    /// The vectors a change unpacks a user into, reused by every change on this thread.
    static SCRATCH: RefCell<Unpacked> = RefCell::new(Unpacked::default());
    /// The bytes a record is packed into before they are copied into its allocation.
    static PACKED: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Copies `bytes` into `record`'s own allocation (see [`Unpacked::pack_into`]): in place when
/// the size is the same, else into a new allocation of the exact size, the old one freed.
fn store(record: &mut UserRecord, bytes: &[u8]) {
    // The same size (a login on a known device, most often): in place, no allocation.
    if record.data.len() == bytes.len() {
        record.data.copy_from_slice(bytes);
        return;
    }
    // Not `realloc` of the cleared old allocation: when it cannot grow in place (a user's
    // neighbours in the heap are other users' records), `realloc` copies the old bytes only
    // for them to be overwritten. A fresh allocation copies once: replay/events 14.42k ->
    // 14.13k instructions per withdrawal (pack 2026.12.5), the same bytes held.
    record.data = bytes.into();
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
        // Written once into a reused per-thread buffer, then copied at the exact size.
        PACKED.with(|packed| {
            let mut scratch = Vec::new();
            let mut guard = packed.try_borrow_mut();
            let buf = match &mut guard {
                Ok(buf) => &mut **buf,
                Err(_) => &mut scratch,
            };
            buf.clear();
            self.write(buf);
            store(record, buf);
        });
    }

    /// Writes the record (see the module docs).
    fn write(&self, out: &mut impl codec::Out) {
        // The caps keep the counts inside their fields (asserted at compile time above);
        // whatever lies past a cap is not written.
        let history = self.history.get(..MAX_HISTORY).unwrap_or(&self.history);
        let known = (self.destinations.get(..MAX_DESTINATIONS)).unwrap_or(&self.destinations);
        let resets = self.resets.get(..MAX_RESETS).unwrap_or(&self.resets);
        let devices = self.devices.get(..MAX_DEVICES).unwrap_or(&self.devices);
        let device_times = devices.iter().flat_map(|d| [d.first_ts, d.last_ts]);
        let known_times = known.iter().flat_map(|d| [d.first_ts, d.last_ts]);
        let times = || {
            history
                .iter()
                .map(|e| e.ts)
                .chain(resets.iter().copied())
                .chain(device_times.clone())
        };
        let unit = Unit::of(times().chain(known_times));
        // The newest time as [`UserRecord::newest`] defines it (0 when there is none).
        let newest = history
            .iter()
            .map(|e| e.ts)
            .chain(resets.last().copied())
            .chain(devices.iter().map(|d| d.last_ts))
            .max()
            .unwrap_or(0);
        let base = unit.count(newest);
        out.bytes(&self.refs.to_le_bytes());
        out.bytes(&(history.len() as u16).to_le_bytes());
        out.bytes(&[
            resets.len() as u8,
            devices.len() as u8,
            known.len() as u8,
            unit.code(),
        ]);
        out.varint(self.key.len() as u64);
        out.bytes(self.key.as_bytes());
        out.varint(self.completed);
        out.delta(0, base);
        for d in known {
            out.bytes(&d.dest.to_le_bytes());
            out.delta(base, unit.count(d.first_ts));
            out.delta(unit.count(d.first_ts), unit.count(d.last_ts));
        }
        let mut prev = base;
        for &r in resets {
            out.delta(prev, unit.count(r));
            prev = unit.count(r);
        }
        for d in devices {
            let id = self.device_id(d);
            out.varint(id.len() as u64);
            out.bytes(id.as_bytes());
            out.delta(base, unit.count(d.first_ts));
            out.delta(unit.count(d.first_ts), unit.count(d.last_ts));
        }
        let mut prev = base;
        for e in history {
            out.bytes(&[e.dest]);
            out.delta(prev, unit.count(e.ts));
            out.amount(e.amount_usd);
            prev = unit.count(e.ts);
        }
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

/// Bit `i` of a 128-bit set (none past it: a destination index is below 128).
fn bit(i: usize) -> u128 {
    u32::try_from(i)
        .ok()
        .and_then(|i| 1_u128.checked_shl(i))
        .unwrap_or(0)
}

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
    use super::*;

    /// Every field of a user packed and read back, with times of each unit and far apart
    /// (the i64 extremes included), amounts exact in cents and not, out of order.
    #[test]
    fn every_field_round_trips_through_the_packed_record() {
        let time_sets: [&[i64]; 4] = [
            &[
                1_793_491_200_000_000,
                1_793_491_100_000_000,
                1_793_491_300_000_000,
            ],
            &[1_793_491_200_001_000, -5_000, 1_793_491_100_000_000],
            &[1_793_491_200_000_001, 0, -1, 1_000_000],
            &[i64::MIN, i64::MAX, 0, i64::MIN + 1, i64::MAX - 1],
        ];
        let amounts = [173.81, 0.0, -0.0, 1.0 / 3.0, 1e300, 100.0, 0.005, f64::MAX];
        for times in time_sets {
            let mut u = Unpacked::default();
            u.key.push_str("user-\u{e9}");
            u.refs = 7;
            u.completed = u64::MAX;
            for (i, &ts) in times.iter().enumerate() {
                u.history.push(Entry {
                    ts,
                    amount_usd: amounts.get(i % amounts.len()).copied().unwrap_or(1.0),
                    dest: (i % 3) as u8,
                });
                u.destinations.push(Known {
                    dest: u32::MAX - i as u32,
                    first_ts: ts,
                    last_ts: times.iter().copied().max().unwrap_or(ts),
                });
                u.push_device(&format!("dev-{i}"), ts, ts.max(0));
            }
            let mut resets: Vec<i64> = times.to_vec();
            resets.sort_unstable();
            u.resets.extend(resets.iter().take(MAX_RESETS));
            let record = u.pack();
            assert_eq!(record.key(), "user-\u{e9}");
            assert_eq!(record.refs(), 7);
            assert_eq!(record.completed(), u64::MAX);
            let history: Vec<Entry> = record.history().collect();
            assert_eq!(history.len(), u.history.len());
            for (got, want) in history.iter().zip(&u.history) {
                assert_eq!((got.ts, got.dest), (want.ts, want.dest));
                assert_eq!(got.amount_usd.to_bits(), want.amount_usd.to_bits());
            }
            assert_eq!(record.destinations().collect::<Vec<_>>(), u.destinations);
            assert_eq!(record.resets().collect::<Vec<_>>(), u.resets);
            let devices: Vec<(String, i64, i64)> = record
                .devices()
                .map(|d| (d.id.to_string(), d.first_ts, d.last_ts))
                .collect();
            let want: Vec<(String, i64, i64)> = u
                .devices
                .iter()
                .map(|d| (u.device_id(d).to_string(), d.first_ts, d.last_ts))
                .collect();
            assert_eq!(devices, want);
            let newest = times.iter().copied().chain(want.iter().map(|d| d.2)).max();
            assert_eq!(Some(record.newest()), newest);
            // Unpacked again and packed again: the very same bytes.
            let mut again = Unpacked::default();
            record.unpack_into(&mut again);
            assert_eq!(again.pack(), record);
            // Ids mapped in place keep every other field.
            let mut mapped = record.clone();
            mapped.map_destinations(|id| id ^ 0x5555);
            let ids: Vec<u32> = mapped.destinations().map(|d| d.dest).collect();
            let want_ids: Vec<u32> = u.destinations.iter().map(|d| d.dest ^ 0x5555).collect();
            assert_eq!(ids, want_ids);
            assert_eq!(mapped.history().count(), history.len());
            assert_eq!(mapped.resets().collect::<Vec<_>>(), u.resets);
        }
        assert_eq!(UserRecord::new("x").newest(), i64::MIN);
    }

    /// Whole seconds and whole cents, as exchanges send them: a history entry is 8 bytes or
    /// fewer (17 with an `i64` and an `f64`).
    #[test]
    fn whole_seconds_and_cents_pack_small() {
        let mut u = Unpacked::default();
        u.key.push_str("u-000001");
        for i in 0..8_i64 {
            u.history.push(Entry {
                ts: 1_793_491_200_000_000 - i * 400_000_000_000,
                amount_usd: 173.81 + i as f64,
                dest: 0,
            });
        }
        let small = u.pack().data.len();
        for e in &mut u.history {
            e.ts += 1;
        }
        let micros = u.pack().data.len();
        assert!(small + 8 * 2 <= micros, "{small} {micros}");
        assert!(small <= 10 + 1 + 9 + 5 + 8 * 8, "{small}");
    }

    /// The one-pass append (of a withdrawal, a login or a password reset) writes the very bytes the full path
    /// writes, or leaves the record alone: on a user's events mostly in order, with out-of-order ones, finer units, gaps
    /// past retention, new and known destinations and devices, and every cap reached.
    #[test]
    fn appending_a_withdrawal_writes_what_the_full_path_writes() {
        let mut next = super::super::test_rng(0x2545_f491_4f6c_dd1d_u64);
        let mut record = UserRecord::new("u-1");
        let mut ts = 1_793_491_200_000_000_i64;
        let (mut appended, mut withdrawals, mut logins_appended) = (0, 0, 0);
        let mut resets_appended = 0;
        for i in 0..20_000 {
            // Users of a few hundred events (so that some reach the caps, most do not).
            if i % 300 == 0 {
                record = UserRecord::new("u-1");
            }
            ts += match next(100) {
                0..=2 => -(next(3_600) as i64) * 1_000_000,
                3 => (RETENTION_DAYS + 1) * MICROS_PER_DAY,
                4 => 1_000,
                5 => 7,
                _ => next(3_600) as i64 * 1_000_000,
            };
            let device = format!("d-{}", next(MAX_DEVICES as u64 + 3));
            match next(10) {
                0 => {
                    let mut full = record.clone();
                    full.edit(|u| u.record_reset(ts));
                    let mut fast = record.clone();
                    match fast.append(None, ts, None, true) {
                        Some(new) => {
                            resets_appended += 1;
                            assert_eq!(fast, full);
                            assert!(!new);
                        }
                        None => assert_eq!(fast, record),
                    }
                    record = full;
                }
                1 => {
                    let mut full = record.clone();
                    full.edit(|u| u.record_device(&device, ts));
                    let mut fast = record.clone();
                    match fast.append(None, ts, Some(&device), false) {
                        Some(new) => {
                            logins_appended += 1;
                            assert_eq!(fast, full);
                            assert!(!new);
                        }
                        None => assert_eq!(fast, record),
                    }
                    record = full;
                }
                _ => {
                    withdrawals += 1;
                    let dest = next(MAX_DESTINATIONS as u64 + 10) as u32;
                    let amount = if next(4) == 0 { 0.1 + 0.2 } else { 173.81 };
                    let device = (next(3) > 0).then_some(device.as_str());
                    let mut full = record.clone();
                    let mut forgotten = Vec::new();
                    let new = full
                        .edit(|u| u.record_withdrawal(dest, ts, amount, device, &mut forgotten));
                    let mut fast = record.clone();
                    match fast.append(Some((dest, amount)), ts, device, false) {
                        Some(fast_new) => {
                            appended += 1;
                            assert_eq!(fast, full);
                            assert_eq!(fast_new, new);
                            assert!(forgotten.is_empty());
                        }
                        None => assert_eq!(fast, record),
                    }
                    record = full;
                }
            }
        }
        // Most take the append; enough fall back to cover the other paths.
        assert!(appended * 2 > withdrawals, "{appended} of {withdrawals}");
        assert!(appended < withdrawals);
        assert!(logins_appended > 0);
        assert!(resets_appended > 0);
    }

    #[test]
    fn median_of_odd_even_and_empty() {
        assert_eq!(median(&mut []), 0.0);
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&mut [4.0, 1.0, 3.0, 2.0]), 2.5);
    }
}
