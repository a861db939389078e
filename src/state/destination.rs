//! Per-destination state: who paid an address, and when, for the 24-hour and 30-day windows.
//!
//! # Layout
//! One allocation per destination ([`DestRecord`]), written sequentially and read in place:
//!
//! ```text
//! refs:u32 n_payers:u16 unit:u8 width:u8 mode<<6|slots:u8 (9 bytes)
//! key_len:varint key:bytes base:delta(0)               (key: the address; base in units)
//! earliest                                             (the earliest payments, see below:
//!                                                       mode 0: nothing; 1: first:width-byte;
//!                                                       2: first_user:u64 first:width-byte
//!                                                          other:width-byte)
//! { user:u32 time:width-byte^slots }^n_payers          (fixed stride: 4 + width * slots)
//! ```
//!
//! A payer is the user's interned id (see `super::table`) and their latest distinct times to
//! this address, newest first. The payers are kept in the order of their newest times (a payer
//! placed after those with the same newest time), so that `other_users` counts a window by
//! binary search and the newest and the stalest payer are the last and the first. `refs`
//! counts the users whose known destinations name this destination's id (see `super`).
//!
//! Times are exact and fixed-width, so that a payer is found, updated and replaced in place
//! and the payers are read at a fixed stride (`other_users` is on the hot path): a time is
//! stored as `1 + (t / unit - base)` in `width` bytes (`0`: an unused slot), where `unit` is
//! the coarsest of whole seconds, milliseconds and microseconds dividing every time held (see
//! `super::codec`), `base` the oldest held, and `width` leaves room for a span of decades
//! (4 bytes of seconds, 5 of milliseconds, 6 of microseconds); width 8 stores the `i64`
//! itself (`i64::MIN`: unused). `slots` is the most times any payer holds (1 to
//! [`DEST_TIMES`]): a destination paid once by each of its payers keeps one time per payer.
//! A time that does not fit the frame (a finer unit, before `base`, past the width)
//! re-encodes the record once in a frame that fits; a payer needing one more slot widens
//! every payer by one unused slot in the same frame. With whole
//! seconds a payer is 8 to 20 bytes, against 36 with four `i64`.
//!
//! # The earliest payments ([`First`])
//! Besides its payers, a record keeps the earliest payment recorded to it (the time and a
//! 64-bit hash of its user's id, [`super::user_hash`]) and the earliest time of a payment by a
//! user whose hash differs, both in the frame's encoding (16 bytes with whole seconds; stored
//! lazily, see below). From
//! them `others_first` gives, in O(1), the earliest payment by a user other than a given one,
//! for `dest_others_first_days`: the first user's id is hashed rather than interned because an
//! interned id is reused once its user is forgotten, while the earliest payment outlives its
//! payer. Both are minimums, exact whatever the order of the events. They are kept while
//! payers are trimmed (the cap, the retention: a busy or long-used address stays old) and
//! forgotten with the payers: when every payer is forgotten (the sweep of an idle destination)
//! and when a payment comes [`DEST_RETENTION`] or more after the destination's newest before
//! it (what the sweep would have forgotten by then, so that whether a sweep ran changes
//! nothing); `others_first` answers none for a destination whose newest payment is
//! [`DEST_RETENTION`] or more before `now`, for the same reason.
//!
//! ## Lazily ([`Stored`])
//! Most destinations are paid by one user only, a few times: their earliest payment is the
//! oldest time their payer keeps, and nobody else paid them. So the record stores only what
//! its payers' times do not tell, in one of three modes (the top two bits of the `slots`
//! byte), which only go up while the record has payers:
//! - mode 0 ([`Stored::Derived`], nothing stored): at most one payer, and the earliest
//!   payments are that payer's (its user's hash), at the oldest time it keeps, no other;
//! - mode 1 ([`Stored::Time`], one time): one payer, no other payment, but its earliest
//!   payment is not among its kept times (a fifth distinct time pushed it out of the slots,
//!   an older time than those kept was not kept, or a payment after a retention's silence
//!   started the earliest payments again while older times stay in the slots);
//! - mode 2 ([`Stored::Full`], the whole block above): anything else, from the first
//!   payment by a second user (or once the sole payer is not the earliest payment's user).
//!
//! [`DestRecord::record`] works out the earliest payments exactly as they were kept whole,
//! before changing the payers, and stores them in the lowest mode (not below the record's)
//! that gives them back exactly, so every place a sole payer's time can leave its slots
//! (slot overflow, an older time not kept, the retention, the cap) upgrades the record first.
//! In modes 0 and 1 the earliest payment's user is the sole payer, known by its interned id
//! (alive while it is a payer, see `super`): the hash is needed only when another user pays
//! for the first time (mode 2: [`DestRecord::record`] then asks the caller for it, who reads
//! it from the users table without holding the destination's lock) and for a question by
//! another user ([`Others::UnlessPaidBy`], the same). Forgetting every payer (the sweep)
//! forgets the earliest payments and goes back to mode 0.

use super::codec::{Cursor, Out, Unit};
use super::table::Keyed;
use super::{DEST_RETENTION, DEST_TIMES, MAX_DEST_USERS};
use crate::time::MICROS_PER_DAY;

const NONE: i64 = i64::MIN;
const HEADER: usize = 9;
const USER: usize = 4;
/// The `slots` byte's bits holding the slots (the top two hold the mode, see [`Stored`]).
const SLOTS_MASK: u8 = 0x3f;
const MODE_SHIFT: u32 = 6;

const _: () = assert!(MAX_DEST_USERS <= u16::MAX as usize);
const _: () = assert!(DEST_TIMES <= u8::MAX as usize);

/// The users who paid one destination (packed, see the module docs): 16 bytes inline.
#[derive(Default, Clone)]
pub(crate) struct DestRecord {
    /// The record, then (past [`SPARE_FROM`] payers) room for more payers, which the count
    /// in the header does not include.
    data: Box<[u8]>,
}

/// Payers from which a growing record keeps room for more (see [`DestRecord::grow`]).
const SPARE_FROM: usize = 64;

impl PartialEq for DestRecord {
    /// The same record, whatever room each keeps for more payers.
    fn eq(&self, other: &DestRecord) -> bool {
        self.used() == other.used()
    }
}

impl Eq for DestRecord {}

impl std::fmt::Debug for DestRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DestRecord")
            .field("key", &self.key())
            .field("stored", &self.stored())
            .field("payers", &self.payers().collect::<Vec<_>>())
            .finish()
    }
}

impl Keyed for DestRecord {
    fn key_bytes(&self) -> &[u8] {
        // Read on every lookup: the key's length only, not the whole header.
        Cursor::new(&self.data, HEADER).prefixed()
    }
}

/// How a record stores its times (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Frame {
    unit: Unit,
    /// Bytes per time, 1 to 8 (8: the `i64` itself).
    width: usize,
    /// Times per payer, 1 to `DEST_TIMES`.
    slots: usize,
    /// The oldest time, in units (unused at width 8).
    base: i64,
}

impl Frame {
    fn stride(self) -> usize {
        USER + self.width * self.slots
    }

    fn raw(self) -> bool {
        self.width >= 8
    }

    /// The largest value a time can take.
    fn max_value(self) -> u64 {
        if self.raw() {
            u64::MAX
        } else {
            (1_u64 << (8 * self.width)) - 1
        }
    }

    /// The stored value of `t` (`NONE`: 0 below width 8), when `t` fits this frame.
    fn value(self, t: i64) -> Option<u64> {
        if self.raw() {
            return Some(t as u64);
        }
        if t == NONE {
            return Some(0);
        }
        let n = self.unit.count(t);
        if self.unit.time(n) != t || n < self.base {
            return None;
        }
        let v = (n as i128 - self.base as i128 + 1) as u128;
        (v <= u128::from(self.max_value())).then_some(v as u64)
    }

    /// The time a stored value stands for (`NONE` for an unused slot).
    #[inline]
    fn time(self, v: u64) -> i64 {
        if self.raw() {
            v as i64
        } else if v == 0 {
            NONE
        } else {
            self.unit.time(self.base.wrapping_add(v as i64 - 1))
        }
    }

    /// A stored value as a number ordered as the times are (the value itself below width
    /// 8, where an unused slot is 0 and a time at least 1; the `i64` at width 8, where an
    /// unused slot is `i64::MIN`): windows and the payers walk compare these without
    /// decoding a time per payer.
    #[inline]
    fn key(self, v: u64) -> i64 {
        v as i64
    }

    /// The key of an unused slot (the smallest key).
    #[inline]
    fn none_key(self) -> i64 {
        if self.raw() {
            NONE
        } else {
            0
        }
    }

    /// The largest key whose time is at or before `t`: for a used slot, `time <= t` exactly
    /// when `key <= at_or_before(t)` (and `time > t` when `key >` it).
    fn at_or_before(self, t: i64) -> i64 {
        if self.raw() {
            return t;
        }
        // time = unit * (base + v - 1) <= t  <=>  v <= floor(t / unit) - base + 1.
        let units = i128::from(self.unit.floor(t));
        let v = units - i128::from(self.base) + 1;
        v.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64
    }

    /// The smallest frame holding `times` (and `slots` per payer), with room for decades.
    fn fitting(times: impl Iterator<Item = i64> + Clone, slots: usize) -> Frame {
        let real = times.filter(|&t| t != NONE);
        let unit = Unit::of(real.clone());
        let counts = real.map(|t| unit.count(t));
        let base = counts.clone().min().unwrap_or(0);
        let span = counts
            .max()
            .map_or(0, |max| (max as i128 - base as i128) as u128);
        // About 136 years of seconds, 34 of milliseconds, 9 of microseconds.
        let mut width = match unit.code() {
            0 => 4,
            1 => 5,
            _ => 6,
        };
        while width < 8 && span + 1 > (1_u128 << (8 * width)) - 1 {
            width += 1;
        }
        let (unit, base) = if width >= 8 {
            (Unit::from_code(2), 0)
        } else {
            (unit, base)
        };
        Frame {
            unit,
            width,
            slots: slots.clamp(1, DEST_TIMES),
            base,
        }
    }

    /// Whether every one of `times` fits, in at most `self.slots` used slots.
    fn holds(self, times: &[i64; DEST_TIMES]) -> bool {
        used(times) <= self.slots && times.iter().all(|&t| self.value(t).is_some())
    }
}

fn used(times: &[i64; DEST_TIMES]) -> usize {
    times.iter().filter(|&&t| t != NONE).count()
}

/// The earliest payments recorded to a destination (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct First {
    /// The hash of the earliest payment's user ([`super::user_hash`]).
    pub(crate) user: u64,
    /// The earliest payment's time (`i64::MIN`: none).
    pub(crate) time: i64,
    /// The earliest time of a payment by a user whose hash is not `user` (`i64::MIN`: none).
    pub(crate) other: i64,
}

impl Default for First {
    fn default() -> First {
        First::NONE
    }
}

impl First {
    /// No payment.
    pub(crate) const NONE: First = First {
        user: 0,
        time: NONE,
        other: NONE,
    };

    /// After a payment by the user of hash `user` at `ts` (minimums: any order of events
    /// gives the same).
    #[must_use]
    pub(crate) fn paid(self, user: u64, ts: i64) -> First {
        if self.time == NONE {
            First {
                user,
                time: ts,
                other: NONE,
            }
        } else if user == self.user {
            First {
                time: self.time.min(ts),
                ..self
            }
        } else if ts < self.time {
            // Every earlier payment is at or after `self.time`, by `self.user` among others.
            First {
                user,
                time: ts,
                other: self.time,
            }
        } else {
            First {
                other: if self.other == NONE {
                    ts
                } else {
                    self.other.min(ts)
                },
                ..self
            }
        }
    }

    /// The earliest time of a payment by a user other than the one of hash `user`
    /// (`i64::MIN`: none).
    pub(crate) fn others(self, user: u64) -> i64 {
        if user != self.user {
            self.time
        } else {
            self.other
        }
    }

    /// The earliest payments among `payers` (each user's hash given by `hash`): what a
    /// record read from a snapshot written before they were kept holds (the oldest times its
    /// payers kept, so a lower bound of the destination's age).
    pub(crate) fn of_payers(
        payers: &[(u32, [i64; DEST_TIMES])],
        hash: impl Fn(u32) -> u64,
    ) -> First {
        let mut first = First::NONE;
        for (user, times) in payers {
            let h = hash(*user);
            for &t in times.iter().filter(|&&t| t != NONE) {
                first = first.paid(h, t);
            }
        }
        first
    }

    fn times(self) -> [i64; 2] {
        [self.time, self.other]
    }
}

/// The earliest payments as a record stores them (see the module docs' "Lazily").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub(crate) enum Stored {
    /// Mode 0: none without payers, else the sole payer's, at the oldest time it keeps.
    #[default]
    Derived,
    /// Mode 1: the sole payer's, at this time (`i64::MIN`: none, which no record holds).
    Time(i64),
    /// Mode 2: these.
    Full(First),
}

impl Stored {
    /// The mode (0, 1, 2).
    pub(crate) fn mode(self) -> u8 {
        match self {
            Stored::Derived => 0,
            Stored::Time(_) => 1,
            Stored::Full(_) => 2,
        }
    }

    /// The times it stores (`NONE` for those it does not).
    fn times(self) -> [i64; 2] {
        match self {
            Stored::Derived => [NONE; 2],
            Stored::Time(t) => [t, NONE],
            Stored::Full(f) => f.times(),
        }
    }

    /// What a record of these payers read from a snapshot of version 5 or earlier (which kept
    /// no earliest payments) stores: the earliest payments their kept times give (each user's
    /// hash given by `hash`, asked for only with two payers or more).
    pub(crate) fn of_payers(
        payers: &[(u32, [i64; DEST_TIMES])],
        hash: impl Fn(u32) -> u64,
    ) -> Stored {
        if payers.len() <= 1 {
            Stored::Derived
        } else {
            Stored::Full(First::of_payers(payers, hash))
        }
    }

    /// The earliest payments stored as `self` in a record of these payers, the sole payer's
    /// hash given by `hash`.
    fn first(
        self,
        payers: &mut dyn Iterator<Item = (u32, [i64; DEST_TIMES])>,
        hash: impl FnOnce(u32) -> u64,
    ) -> First {
        let time = match self {
            Stored::Full(f) => return f,
            Stored::Time(t) => Some(t),
            Stored::Derived => None,
        };
        match payers.next() {
            Some((user, times)) => First {
                user: hash(user),
                time: time.unwrap_or_else(|| oldest_time(&times)),
                other: NONE,
            },
            None => First::NONE,
        }
    }
}

/// The oldest of a payer's times (`NONE`: none).
fn oldest_time(times: &[i64; DEST_TIMES]) -> i64 {
    times
        .iter()
        .rev()
        .copied()
        .find(|&t| t != NONE)
        .unwrap_or(NONE)
}

/// What [`DestRecord::others_first`] answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Others {
    /// This time (`None`: none).
    Known(Option<i64>),
    /// This time, unless the asking user's hash is that of the user of this id (the sole
    /// payer, mode 0 or 1), which the caller looks up without the destination's lock: then
    /// none.
    UnlessPaidBy(u32, i64),
}

impl Others {
    /// The answer for the user of hash `me`, a user id's hash given by `hash` (`None`: not
    /// known, so not `me`'s).
    pub(crate) fn resolve(self, me: u64, hash: impl FnOnce(u32) -> Option<u64>) -> Option<i64> {
        match self {
            Others::Known(t) => t,
            Others::UnlessPaidBy(user, t) => (hash(user) != Some(me)).then_some(t),
        }
    }
}

/// Writes the stored earliest payments; their times must fit `frame` (one that does not is
/// written as none, which no caller does).
fn write_stored(out: &mut impl Out, frame: Frame, stored: Stored) {
    let times = stored.times();
    let n = match stored {
        Stored::Derived => 0,
        Stored::Time(_) => 1,
        Stored::Full(f) => {
            out.bytes(&f.user.to_le_bytes());
            2
        }
    };
    for &t in times.iter().take(n) {
        let v = frame.value(t).unwrap_or(0);
        out.bytes(v.to_le_bytes().get(..frame.width).unwrap_or_default());
    }
}

/// The stored earliest payments at `at`, in `mode`.
fn stored_at(data: &[u8], at: usize, frame: Frame, mode: u8) -> Stored {
    let time = |at: usize| frame.time(value_at(data, at, frame.width));
    match mode {
        0 => Stored::Derived,
        1 => Stored::Time(time(at)),
        _ => {
            let user = data
                .get(at..)
                .and_then(|rest| rest.first_chunk::<8>())
                .map_or(0, |b| u64::from_le_bytes(*b));
            Stored::Full(First {
                user,
                time: time(at + 8),
                other: time(at + 8 + frame.width),
            })
        }
    }
}

/// The bytes of the stored earliest payments in `frame` and `mode`.
fn stored_len(frame: Frame, mode: u8) -> usize {
    match mode {
        0 => 0,
        1 => frame.width,
        _ => 8 + 2 * frame.width,
    }
}

/// The record's header, parsed.
#[derive(Clone, Copy)]
struct Head {
    frame: Frame,
    n: usize,
    /// The mode of the stored earliest payments ([`Stored`]).
    mode: u8,
    /// Where the stored earliest payments start.
    first: usize,
    /// Where the payers start.
    payers: usize,
}

impl Head {
    fn payer_at(&self, i: usize) -> usize {
        self.payers + i * self.frame.stride()
    }
}

/// The value of `width` bytes at `at` (0 past the end).
#[inline]
fn value_at(data: &[u8], at: usize, width: usize) -> u64 {
    let mask = if width >= 8 {
        u64::MAX
    } else {
        (1_u64 << (8 * width)) - 1
    };
    match data.get(at..).and_then(|rest| rest.first_chunk::<8>()) {
        Some(b) => u64::from_le_bytes(*b) & mask,
        None => {
            let mut b = [0_u8; 8];
            let bytes = data.get(at..).unwrap_or_default();
            for (slot, byte) in b.iter_mut().zip(bytes.iter().take(width)) {
                *slot = *byte;
            }
            u64::from_le_bytes(b) & mask
        }
    }
}

fn user_at(data: &[u8], at: usize) -> u32 {
    data.get(at..)
        .and_then(|rest| rest.first_chunk::<4>())
        .map_or(u32::MAX, |b| u32::from_le_bytes(*b))
}

/// The payer's times at `at` (its user id before them), newest first, `NONE` unused.
fn times_at(data: &[u8], at: usize, frame: Frame) -> [i64; DEST_TIMES] {
    let mut times = [NONE; DEST_TIMES];
    for (i, t) in times.iter_mut().take(frame.slots).enumerate() {
        *t = frame.time(value_at(data, at + USER + i * frame.width, frame.width));
    }
    times
}

/// The latest time at `at` (the payer's first slot).
#[inline]
fn latest_at(data: &[u8], at: usize, frame: Frame) -> i64 {
    frame.time(value_at(data, at + USER, frame.width))
}

/// The `W`-byte value at `at` of one payer's bytes (0 past them). `W` is a constant so that
/// the payer walks below compile to fixed-size loads for each width.
#[inline(always)]
fn value_w<const W: usize>(payer: &[u8], at: usize) -> u64 {
    let mut b = [0_u8; 8];
    if let (Some(dst), Some(src)) = (b.get_mut(..W), payer.get(at..at + W)) {
        dst.copy_from_slice(src);
    }
    u64::from_le_bytes(b)
}

#[inline(always)]
fn user_w(payer: &[u8]) -> u32 {
    payer
        .first_chunk::<4>()
        .map_or(u32::MAX, |b| u32::from_le_bytes(*b))
}

/// The position of `user`'s payer among `payers` (at `stride`), if any: the look for a user
/// among a destination's payers (every payer of a busy address, on the hot path of both
/// scoring and recording). The usual strides (4-6 bytes per time, 1 to 4 times) are constants
/// here, so that each payer costs a load and a compare, not a chunk's bookkeeping.
#[inline]
fn find_payer(payers: &[u8], stride: usize, user: u32) -> Option<usize> {
    macro_rules! by_stride {
        ($($s:literal)*) => {
            match stride {
                $($s => find_payer_at::<$s, { 4 * $s }>(payers, user),)*
                _ => payers.chunks_exact(stride).position(|payer| user_w(payer) == user),
            }
        };
    }
    by_stride!(8 9 10 12 14 16 19 20 22 24 28)
}

/// [`find_payer`] among all `payers` but those `searched` already (see [`Searched`]): a
/// position found there is checked (the user's id at it), else the whole look is done again;
/// none found there leaves the payers before and after the range to look at.
fn find_payer_outside(
    payers: &[u8],
    stride: usize,
    user: u32,
    searched: Option<Searched>,
) -> Option<usize> {
    let n = payers.len() / stride.max(1);
    match searched {
        Some(s) if s.from <= s.to && s.to <= n => match s.found {
            Some(i) => {
                let at = payers.get(i.saturating_mul(stride)..).unwrap_or_default();
                if i < n && user_w(at) == user {
                    Some(i)
                } else {
                    find_payer(payers, stride, user)
                }
            }
            None => {
                let before = payers.get(..s.from * stride).unwrap_or_default();
                let after = payers.get(s.to * stride..).unwrap_or_default();
                find_payer(before, stride, user)
                    .or_else(|| find_payer(after, stride, user).map(|i| s.to + i))
            }
        },
        _ => find_payer(payers, stride, user),
    }
}

/// [`find_payer`] at a constant stride `S` (at least [`USER`]), four payers (`S4` bytes) at
/// a time.
#[inline(never)]
fn find_payer_at<const S: usize, const S4: usize>(payers: &[u8], user: u32) -> Option<usize> {
    let id = |group: &[u8], k: usize| user_w(group.get(k * S..).unwrap_or_default());
    let mut groups = payers.chunks_exact(S4);
    let mut first = 0;
    for group in &mut groups {
        if id(group, 0) == user {
            return Some(first);
        }
        if id(group, 1) == user {
            return Some(first + 1);
        }
        if id(group, 2) == user {
            return Some(first + 2);
        }
        if id(group, 3) == user {
            return Some(first + 3);
        }
        first += 4;
    }
    let rest = groups.remainder().chunks_exact(S);
    rest.map(user_w).position(|u| u == user).map(|i| first + i)
}

/// The payers' bytes (`n` at a stride), without the room kept for more.
fn payer_bytes<'a>(data: &'a [u8], h: &Head) -> &'a [u8] {
    data.get(h.payers..h.payer_at(h.n)).unwrap_or_default()
}

/// Where a payer whose newest time has the key `key` goes among the payers from `from` on:
/// after every one whose newest time is at or before it (they are in that order; the last
/// is checked first, as a payment in order goes last).
fn order_point(data: &[u8], h: &Head, from: usize, key: i64) -> usize {
    let newest = |i: usize| {
        h.frame
            .key(value_at(data, h.payer_at(i) + USER, h.frame.width))
    };
    let (mut lo, mut hi) = (from, h.n);
    if lo >= hi || newest(hi - 1) <= key {
        return hi.max(lo);
    }
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if newest(mid) <= key {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    lo
}

/// Calls `f::<W>` with the frame's width as a constant (1 to 8).
macro_rules! by_width {
    ($width:expr, $f:ident($($arg:expr),*)) => {
        match $width {
            1 => $f::<1>($($arg),*),
            2 => $f::<2>($($arg),*),
            3 => $f::<3>($($arg),*),
            4 => $f::<4>($($arg),*),
            5 => $f::<5>($($arg),*),
            6 => $f::<6>($($arg),*),
            7 => $f::<7>($($arg),*),
            _ => $f::<8>($($arg),*),
        }
    };
}

/// The number of payers among the first `n` (at `stride`) whose latest time, as a key (see
/// [`Frame::key`]), is at or before `key`: payers are kept in the order of their latest times
/// (see [`DestRecord::record`]), so this is a binary search.
#[inline(always)]
fn latest_at_or_before<const W: usize>(payers: &[u8], stride: usize, n: usize, key: i64) -> usize {
    let (mut lo, mut hi) = (0, n);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        let latest = value_w::<W>(payers.get(mid * stride..).unwrap_or_default(), USER) as i64;
        if latest <= key {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    lo
}

/// [`DestRecord::other_users`]'s count at width `W`: the payers other than `me` whose latest
/// time at or before `now` (as keys, see [`Frame::key`]) lies after `day_key` and after
/// `month_key`. The payers are in the order of their first slot, their newest time: those at
/// or before `now` (all of them when events came in order) are a prefix, counted by binary
/// searches for the window bounds and a look for `me` among the payers inside the month;
/// only past that prefix (events out of order) are a payer's other slots read.
#[inline(never)]
fn count_others<const W: usize>(
    payers: &[u8],
    frame: Frame,
    me: Option<u32>,
    [now_key, day_key, month_key]: [i64; 3],
) -> (i64, i64, Searched) {
    let none = frame.none_key();
    let stride = frame.stride();
    let n = payers.len() / stride;
    // An unused slot's key (the smallest there is, never a payer's newest) is in no window.
    let (day_key, month_key) = (day_key.max(none), month_key.max(none));
    // Usually every payer: the last one's newest time is at or before `now`.
    let in_order = match n.checked_sub(1) {
        Some(last) => {
            value_w::<W>(payers.get(last * stride..).unwrap_or_default(), USER) as i64 <= now_key
        }
        None => return (0, 0, Searched::default()),
    };
    let upto = if in_order {
        n
    } else {
        latest_at_or_before::<W>(payers, stride, n, now_key)
    };
    // `now_key >= day_key >= month_key`, so `month_from <= day_from <= upto`.
    let month_from = latest_at_or_before::<W>(payers, stride, upto, month_key);
    let day_from = month_from
        + latest_at_or_before::<W>(
            payers.get(month_from * stride..).unwrap_or_default(),
            stride,
            upto - month_from,
            day_key,
        );
    let mut month = (upto - month_from) as i64;
    let mut day = (upto - day_from) as i64;
    let mut searched = Searched::default();
    if let Some(me) = me {
        let window = payers
            .get(month_from * stride..upto * stride)
            .unwrap_or_default();
        let found = find_payer(window, stride, me);
        if let Some(i) = found {
            month -= 1;
            day -= i64::from(month_from + i >= day_from);
        }
        searched = Searched {
            from: month_from,
            to: upto,
            found: found.map(|i| month_from + i),
        };
    }
    // Out of order: payers whose newest time lies after `now`, each counted by the latest of
    // its other slots at or before `now`, if any.
    let me = me.map_or(u64::MAX, u64::from);
    for payer in payers
        .get(upto * stride..)
        .unwrap_or_default()
        .chunks_exact(stride)
    {
        let mut latest = none;
        for i in 1..frame.slots {
            let k = frame.key(value_w::<W>(payer, USER + i * W));
            if k == none || k <= now_key {
                latest = k;
                break;
            }
        }
        let counted = (latest != none) & (latest > month_key) & (u64::from(user_w(payer)) != me);
        month += i64::from(counted);
        day += i64::from(counted & (latest > day_key));
    }
    (day, month, searched)
}

/// Where [`DestRecord::scored`] looked for its user among the payers: payers
/// `from..to`, and the user's position when found there. Valid for [`DestRecord::record`] of
/// that user only while the record is unchanged (see `super::PayerHint`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Searched {
    pub(crate) from: usize,
    pub(crate) to: usize,
    pub(crate) found: Option<usize>,
}

/// Writes a payer; times must fit `frame` (see [`Frame::holds`]; one that does not is
/// written as an unused slot, which no caller does).
fn write_payer(out: &mut impl Out, frame: Frame, user: u32, times: &[i64; DEST_TIMES]) {
    out.bytes(&user.to_le_bytes());
    for &t in times.iter().take(frame.slots) {
        let v = frame.value(t).unwrap_or(0);
        out.bytes(v.to_le_bytes().get(..frame.width).unwrap_or_default());
    }
}

/// Writes a payer over the bytes at `at` of `data` (same frame, same stride).
fn overwrite_payer(data: &mut [u8], at: usize, frame: Frame, user: u32, times: &[i64; DEST_TIMES]) {
    let mut payer = [0_u8; USER + 8 * DEST_TIMES];
    let mut out = Slice {
        buf: &mut payer,
        at: 0,
    };
    write_payer(&mut out, frame, user, times);
    let stride = frame.stride();
    if let (Some(slot), Some(bytes)) = (data.get_mut(at..at + stride), payer.get(..stride)) {
        slot.copy_from_slice(bytes);
    }
}

/// A fixed buffer as an [`Out`] (for one payer).
struct Slice<'a> {
    buf: &'a mut [u8],
    at: usize,
}

impl Out for Slice<'_> {
    fn bytes(&mut self, b: &[u8]) {
        if let Some(slot) = self.buf.get_mut(self.at..self.at + b.len()) {
            slot.copy_from_slice(b);
        }
        self.at += b.len();
    }
    fn varint(&mut self, _: u64) {}
    fn delta(&mut self, _: i64, _: i64) {}
    fn amount(&mut self, _: f64) {}
}

/// Sets the payer count of a record being built.
fn set_count(data: &mut [u8], n: usize) {
    if let Some(field) = data.get_mut(4..6) {
        field.copy_from_slice(&(n.min(MAX_DEST_USERS) as u16).to_le_bytes());
    }
}

/// Writes a whole record of `refs`, `key`, `stored` and `payers`, in the smallest frame
/// holding them.
fn write_record(
    out: &mut Vec<u8>,
    refs: u32,
    key: &[u8],
    stored: Stored,
    payers: &[(u32, [i64; DEST_TIMES])],
) {
    let times = payers
        .iter()
        .flat_map(|(_, t)| t.iter().copied())
        .chain(stored.times());
    let slots = payers.iter().map(|(_, t)| used(t)).max().unwrap_or(1);
    let frame = Frame::fitting(times, slots);
    let n = payers.len().min(MAX_DEST_USERS);
    out.extend_from_slice(&refs.to_le_bytes());
    out.extend_from_slice(&(n as u16).to_le_bytes());
    out.extend_from_slice(&[
        frame.unit.code(),
        frame.width as u8,
        frame.slots as u8 | stored.mode() << MODE_SHIFT,
    ]);
    out.varint(key.len() as u64);
    out.extend_from_slice(key);
    out.delta(0, frame.base);
    write_stored(out, frame, stored);
    for (user, times) in payers.iter().take(n) {
        write_payer(out, frame, *user, times);
    }
}

/// Per-thread buffers of a re-encode, reused (a re-encode is the first payment to every new
/// destination whose times are not whole seconds: it allocated four times).
#[derive(Default)]
struct Scratch {
    payers: Vec<(u32, [i64; DEST_TIMES])>,
    bytes: Vec<u8>,
}

thread_local! {
    static SCRATCH: std::cell::RefCell<Scratch> = std::cell::RefCell::new(Scratch::default());
}

fn with_scratch<R>(f: impl FnOnce(&mut Scratch) -> R) -> R {
    SCRATCH.with(|cell| match cell.try_borrow_mut() {
        Ok(mut scratch) => f(&mut scratch),
        // Only re-entered if `f` re-encoded another record (it does not).
        Err(_) => f(&mut Scratch::default()),
    })
}

impl DestRecord {
    /// A destination with no payers.
    pub(crate) fn new(key: &str) -> DestRecord {
        DestRecord::build(0, key, Stored::Derived, &[])
    }

    /// A destination with no payers yet, about to be paid at `ts`: its frame is the one the
    /// first payment would re-encode it into (unchanged when the empty frame already holds
    /// `ts`, so the bytes after that payment are what [`DestRecord::new`] then
    /// [`DestRecord::record`] write), with room for that payer. Saves the re-encode (a
    /// time that is not whole seconds) and the `realloc` of every new destination's first
    /// payment.
    pub(crate) fn new_at(key: &str, ts: i64) -> DestRecord {
        let empty = Frame::fitting(std::iter::empty(), 1);
        let frame = if empty.value(ts).is_some() {
            empty
        } else {
            Frame::fitting(std::iter::once(ts), 1)
        };
        let mut record = DestRecord::default();
        with_scratch(|scratch| {
            let data = &mut scratch.bytes;
            data.clear();
            data.extend_from_slice(&0_u32.to_le_bytes());
            data.extend_from_slice(&0_u16.to_le_bytes());
            data.extend_from_slice(&[frame.unit.code(), frame.width as u8, frame.slots as u8]);
            data.varint(key.len() as u64);
            data.extend_from_slice(key.as_bytes());
            data.delta(0, frame.base);
            write_stored(data, frame, Stored::Derived);
            data.resize(data.len() + frame.stride(), 0);
            record.store(data);
        });
        record
    }

    /// A record of `refs`, `key`, `stored` and `payers`, in the smallest frame holding them
    /// (one allocation of the exact size).
    fn build(
        refs: u32,
        key: &str,
        stored: Stored,
        payers: &[(u32, [i64; DEST_TIMES])],
    ) -> DestRecord {
        let mut record = DestRecord::default();
        record.build_into(refs, key, stored, payers);
        record
    }

    /// [`DestRecord::build`] into this record's own allocation, resized (`realloc`): a new
    /// allocation per re-encode and the old one freed would scatter the records over the
    /// heap (a sweep, which reads them in slot order, was measured several times slower).
    fn build_into(
        &mut self,
        refs: u32,
        key: &str,
        stored: Stored,
        payers: &[(u32, [i64; DEST_TIMES])],
    ) {
        with_scratch(|scratch| {
            scratch.bytes.clear();
            write_record(&mut scratch.bytes, refs, key.as_bytes(), stored, payers);
            self.store(&scratch.bytes);
        });
    }

    /// Replaces the record's bytes with `bytes`, in its own allocation resized to the exact
    /// size.
    fn store(&mut self, bytes: &[u8]) {
        let mut data = std::mem::take(&mut self.data).into_vec();
        data.clear();
        data.reserve_exact(bytes.len());
        data.extend_from_slice(bytes);
        self.data = data.into_boxed_slice();
    }

    fn head(&self) -> Head {
        let data = &*self.data;
        let byte = |at: usize| data.get(at).copied().unwrap_or(0);
        let n = usize::from(u16::from_le_bytes([byte(4), byte(5)]));
        let mut c = Cursor::new(data, HEADER);
        let len = c.short() as usize;
        c.at = c.at.saturating_add(len);
        let base = c.delta(0);
        let frame = Frame {
            unit: Unit::from_code(byte(6)),
            width: usize::from(byte(7)).clamp(1, 8),
            slots: usize::from(byte(8) & SLOTS_MASK).clamp(1, DEST_TIMES),
            base,
        };
        let mode = (byte(8) >> MODE_SHIFT).min(2);
        Head {
            frame,
            n,
            mode,
            first: c.at,
            payers: c.at + stored_len(frame, mode),
        }
    }

    /// The record's bytes without the room kept for more payers.
    fn used(&self) -> &[u8] {
        let h = self.head();
        let end = h.payer_at(h.n);
        self.data.get(..end).unwrap_or(&self.data)
    }

    /// The normalized address.
    pub(crate) fn key(&self) -> &str {
        std::str::from_utf8(self.key_bytes()).unwrap_or_default()
    }

    /// Users whose known destinations name this one (see `super`).
    pub(crate) fn refs(&self) -> u32 {
        self.data
            .first_chunk::<4>()
            .map_or(0, |b| u32::from_le_bytes(*b))
    }

    /// Adds `delta` to [`DestRecord::refs`], in place.
    pub(crate) fn add_refs(&mut self, delta: i64) {
        self.set_refs((i64::from(self.refs()) + delta).clamp(0, i64::from(u32::MAX)) as u32);
    }

    /// Sets [`DestRecord::refs`], in place.
    pub(crate) fn set_refs(&mut self, refs: u32) {
        if let Some(field) = self.data.get_mut(0..4) {
            field.copy_from_slice(&refs.to_le_bytes());
        }
    }

    /// Every payer: the user's id and their latest times, newest first (`i64::MIN` unused).
    pub(crate) fn payers(&self) -> impl Iterator<Item = (u32, [i64; DEST_TIMES])> + '_ {
        self.payers_of(self.head())
    }

    /// [`DestRecord::payers`] of the record's header `h`, read already.
    fn payers_of(&self, h: Head) -> impl Iterator<Item = (u32, [i64; DEST_TIMES])> + '_ {
        (0..h.n).map(move |i| {
            let at = h.payer_at(i);
            (user_at(&self.data, at), times_at(&self.data, at, h.frame))
        })
    }

    /// Number of payers.
    pub(crate) fn payer_count(&self) -> usize {
        self.head().n
    }

    /// Distinct users other than `user` with a withdrawal here in the last 24 hours and 30 days.
    #[cfg(test)]
    pub(crate) fn other_users(&self, user: Option<u32>, now: i64) -> (i64, i64) {
        let (day, month, _) = self.other_users_searched(user, now);
        (day, month)
    }

    /// [`DestRecord::other_users`], and where it looked for `user` among the payers (for
    /// [`DestRecord::record`] of the same withdrawal, which then need not look there again).
    #[cfg(test)]
    pub(crate) fn other_users_searched(&self, user: Option<u32>, now: i64) -> (i64, i64, Searched) {
        self.other_users_in(&self.head(), user, now)
    }

    /// What scoring a withdrawal asks of its destination, the header read once: the other
    /// users in the windows (`other_users`), where `user` was looked for among the payers (for
    /// [`DestRecord::record_searched`] of the same withdrawal, which then need not look there
    /// again) and the earliest payment by another user (`others_first`).
    pub(crate) fn scored(
        &self,
        user: Option<u32>,
        user_hash: u64,
        now: i64,
    ) -> ((i64, i64, Searched), Others) {
        let h = self.head();
        (
            self.other_users_in(&h, user, now),
            self.others_first_in(&h, user, user_hash, now),
        )
    }

    fn other_users_in(&self, h: &Head, user: Option<u32>, now: i64) -> (i64, i64, Searched) {
        let h = *h;
        let day_start = now.saturating_sub(MICROS_PER_DAY);
        let month_start = now.saturating_sub(30 * MICROS_PER_DAY);
        let data = &*self.data;
        // The window bounds in the record's stored values, once, instead of a time decoded
        // per payer.
        let now_key = h.frame.at_or_before(now);
        let day_key = h.frame.at_or_before(day_start);
        let month_key = h.frame.at_or_before(month_start);
        let keys = [now_key, day_key, month_key];
        let payers = payer_bytes(data, &h);
        by_width!(h.frame.width, count_others(payers, h.frame, user, keys))
    }

    /// Remembers that `user` (whose id's hash is `user_hash`, see [`First`]) paid this
    /// destination at `ts`. Returns whether `user` is a new payer; payers forgotten (over the
    /// cap, or past retention) are appended to `dropped`.
    ///
    /// `Err(payer)`, with nothing changed, when the record needs its sole payer's hash (see
    /// the module docs' "Lazily": another user's first payment to it): call again with
    /// `sole` that payer's id and hash.
    ///
    /// The payers are kept in the order of their newest times (their first slot; a payer
    /// whose newest time changes moves after those at or before it, a new payer goes after
    /// those at or before its time), so that the newest and the stalest payer are the last
    /// and the first, and `other_users` counts a window by binary search. Only the look for
    /// `user` reads every payer (a user id each).
    #[cfg(test)]
    pub(crate) fn record(
        &mut self,
        user: u32,
        user_hash: u64,
        ts: i64,
        sole: Option<(u32, u64)>,
        dropped: &mut Vec<u32>,
    ) -> Result<bool, u32> {
        self.record_searched(user, user_hash, ts, sole, None, dropped)
    }

    /// [`DestRecord::record`], told where `user` was looked for already (`searched`, by
    /// [`DestRecord::scored`] on this very record, unchanged since): only the
    /// payers outside that range are looked at, and a position found is checked.
    pub(crate) fn record_searched(
        &mut self,
        user: u32,
        user_hash: u64,
        ts: i64,
        sole: Option<(u32, u64)>,
        searched: Option<Searched>,
        dropped: &mut Vec<u32>,
    ) -> Result<bool, u32> {
        let h = self.head();
        let stride = h.frame.stride();
        let found = find_payer_outside(payer_bytes(&self.data, &h), stride, user, searched);
        // The newest time before this one and the oldest payer's, for the retention below.
        let (before, oldest) = match h.n.checked_sub(1) {
            Some(last) => (
                latest_at(&self.data, h.payer_at(last), h.frame),
                latest_at(&self.data, h.payer_at(0), h.frame),
            ),
            None => (NONE, i64::MAX),
        };
        // The earliest payments after this one, worked out before any time can leave the
        // slots. They start again after a retention's worth of silence (see the module docs;
        // `before` is none without payers).
        let first = if before <= ts.saturating_sub(DEST_RETENTION) {
            First::NONE
        } else {
            let stored = stored_at(&self.data, h.first, h.frame, h.mode);
            let sole_hash = |payer: u32| {
                if payer == user {
                    Ok(user_hash)
                } else {
                    match sole {
                        Some((id, hash)) if id == payer => Ok(hash),
                        _ => Err(payer),
                    }
                }
            };
            let mut needed = Ok(());
            let first = stored.first(&mut self.payers_of(h), |payer| {
                sole_hash(payer).unwrap_or_else(|p| {
                    needed = Err(p);
                    0
                })
            });
            needed?;
            first
        }
        .paid(user_hash, ts);
        // The header after the change, when it is `h` but for the count (no re-encode): read
        // again below otherwise.
        let (added, after) = match found {
            Some(i) => {
                let mut times = times_at(&self.data, h.payer_at(i), h.frame);
                insert_time(&mut times, ts);
                // One more slot, when that is all the times need (a payer paying again:
                // most re-encodes), without a re-encode.
                let h = if !h.frame.holds(&times) && self.widen(&h, &times) {
                    self.head()
                } else {
                    h
                };
                let (at, stride) = (h.payer_at(i), h.frame.stride());
                if h.frame.holds(&times) {
                    overwrite_payer(&mut self.data, at, h.frame, user, &times);
                    // Its newest time can only have grown: it moves after the payers at or
                    // before it.
                    let key = h.frame.key(h.frame.value(times[0]).unwrap_or(0));
                    let to = order_point(&self.data, &h, i + 1, key);
                    if let Some(moved) = self.data.get_mut(at..h.payer_at(to)) {
                        moved.rotate_left(stride);
                    }
                    (false, Some(h))
                } else {
                    self.rebuild(|payers| {
                        if i < payers.len() {
                            let payer = payers.remove(i);
                            let to = payers.partition_point(|p| p.1[0] <= times[0]);
                            payers.insert(to, (payer.0, times));
                        }
                    });
                    (false, None)
                }
            }
            None => {
                let mut times = [NONE; DEST_TIMES];
                times[0] = ts;
                let at_cap = h.n >= MAX_DEST_USERS;
                if h.frame.holds(&times) {
                    let key = h.frame.key(h.frame.value(ts).unwrap_or(0));
                    if at_cap && h.payer_at(h.n) <= self.data.len() {
                        // At the cap the record keeps its size (no reallocation): the stalest
                        // payer (the first) goes, those before the new one's place move down.
                        let to = order_point(&self.data, &h, 1, key);
                        dropped.push(user_at(&self.data, h.payer_at(0)));
                        self.data
                            .copy_within(h.payer_at(1)..h.payer_at(to), h.payer_at(0));
                        overwrite_payer(&mut self.data, h.payer_at(to - 1), h.frame, user, &times);
                        (true, Some(h))
                    } else {
                        let to = order_point(&self.data, &h, 0, key);
                        let end = h.payer_at(h.n);
                        if end + stride > self.data.len() {
                            self.grow(end, stride, h.n);
                        }
                        self.data
                            .copy_within(h.payer_at(to)..end, h.payer_at(to) + stride);
                        overwrite_payer(&mut self.data, h.payer_at(to), h.frame, user, &times);
                        set_count(&mut self.data, h.n + 1);
                        // As `set_count` writes it.
                        let n = (h.n + 1).min(MAX_DEST_USERS);
                        (true, Some(Head { n, ..h }))
                    }
                } else {
                    self.rebuild(|payers| {
                        if at_cap && !payers.is_empty() {
                            // As above, in the new frame.
                            dropped.push(payers.remove(0).0);
                        }
                        let to = payers.partition_point(|p| p.1[0] <= ts);
                        payers.insert(to, (user, times));
                    });
                    (true, None)
                }
            }
        };
        // As of the earlier of this withdrawal and the newest before it: one dated far in the
        // future must not drop every other payer.
        let horizon = before.min(ts).saturating_sub(DEST_RETENTION);
        let after = if oldest <= horizon {
            self.retain_payers(|_, times| times[0] > horizon, dropped);
            None
        } else {
            after
        };
        // Stored in the lowest mode, not below the record's, that gives `first` back.
        let h = after.unwrap_or_else(|| self.head());
        let sole = (h.n == 1 && user_at(&self.data, h.payer_at(0)) == user)
            .then(|| oldest_time(&times_at(&self.data, h.payer_at(0), h.frame)));
        let stored = match sole {
            Some(kept) if first.user == user_hash && first.other == NONE && h.mode < 2 => {
                if h.mode == 0 && kept == first.time {
                    Stored::Derived
                } else {
                    Stored::Time(first.time)
                }
            }
            _ => Stored::Full(first),
        };
        // Mode 0 kept (most payments: a new destination's first, its sole payer's next)
        // stores nothing.
        if !(h.mode == 0 && stored == Stored::Derived) {
            self.set_stored_in(&h, stored);
        }
        Ok(added)
    }

    /// The stored earliest payments (see the module docs' "Lazily").
    pub(crate) fn stored(&self) -> Stored {
        let h = self.head();
        stored_at(&self.data, h.first, h.frame, h.mode)
    }

    /// The earliest payments recorded (see the module docs), the sole payer's hash (modes 0
    /// and 1) given by `hash`.
    pub(crate) fn first(&self, hash: impl FnOnce(u32) -> u64) -> First {
        self.stored().first(&mut self.payers(), hash)
    }

    /// Sets the stored earliest payments in the record's frame when their times fit it: in
    /// place in the same mode, else with the payers moved (one `realloc`); re-encoded
    /// otherwise.
    fn set_stored(&mut self, stored: Stored) {
        self.set_stored_in(&self.head(), stored);
    }

    /// [`DestRecord::set_stored`] with the record's header `h`, read already.
    fn set_stored_in(&mut self, h: &Head, stored: Stored) {
        if !stored.times().iter().all(|&t| h.frame.value(t).is_some()) {
            return self.rebuild_with(stored, |_| {});
        }
        let mut bytes = [0_u8; 24];
        let mut out = Slice {
            buf: &mut bytes,
            at: 0,
        };
        write_stored(&mut out, h.frame, stored);
        let len = stored_len(h.frame, stored.mode());
        let bytes = bytes.get(..len).unwrap_or_default();
        if stored.mode() == h.mode {
            if let Some(slot) = self.data.get_mut(h.first..h.first + len) {
                slot.copy_from_slice(bytes);
            }
            return;
        }
        with_scratch(|scratch| {
            let out = &mut scratch.bytes;
            out.clear();
            out.extend_from_slice(self.data.get(..h.first).unwrap_or_default());
            if let Some(slots) = out.get_mut(8) {
                *slots = *slots & SLOTS_MASK | stored.mode() << MODE_SHIFT;
            }
            out.extend_from_slice(bytes);
            out.extend_from_slice(self.data.get(h.payers..).unwrap_or_default());
            self.store(out);
        });
    }

    /// The earliest time, at or before `now`, of a payment to this destination by a user other
    /// than the one whose id hashes to `user_hash` (interned as `user`, when known), among
    /// those remembered (see the module docs): none when there is none, or when the
    /// destination's newest payment is [`DEST_RETENTION`] or more before `now`. O(1); in
    /// modes 0 and 1, when the asking user is not the sole payer by id, the caller compares
    /// the hashes ([`Others::UnlessPaidBy`]).
    #[cfg(test)]
    pub(crate) fn others_first(&self, user: Option<u32>, user_hash: u64, now: i64) -> Others {
        self.others_first_in(&self.head(), user, user_hash, now)
    }

    fn others_first_in(&self, h: &Head, user: Option<u32>, user_hash: u64, now: i64) -> Others {
        let h = *h;
        let newest = self.newest_of(&h);
        if newest == NONE || newest <= now.saturating_sub(DEST_RETENTION) {
            return Others::Known(None);
        }
        let time = match stored_at(&self.data, h.first, h.frame, h.mode) {
            Stored::Full(f) => {
                let t = f.others(user_hash);
                return Others::Known((t != NONE && t <= now).then_some(t));
            }
            Stored::Time(t) => t,
            Stored::Derived => times_at(&self.data, h.payer_at(0), h.frame)
                .iter()
                .rev()
                .copied()
                .find(|&t| t != NONE)
                .unwrap_or(NONE),
        };
        let payer = user_at(&self.data, h.payer_at(0));
        if time == NONE || time > now || user == Some(payer) {
            Others::Known(None)
        } else {
            Others::UnlessPaidBy(payer, time)
        }
    }

    /// Makes room for one more payer after the `n` at `end` (`realloc`, in place when the
    /// allocator can). A record of [`SPARE_FROM`] payers or more gets room for an eighth more:
    /// a busy address (a mule's, an exchange's) gains payers one at a time, and a `realloc`
    /// that cannot grow in place copies the whole record each time (~4% of `replay`). The
    /// spare payers are zeroes past the count, dropped by the next re-encode or trim.
    fn grow(&mut self, end: usize, stride: usize, n: usize) {
        let spare = if n >= SPARE_FROM {
            (n / 8).min(MAX_DEST_USERS.saturating_sub(n + 1))
        } else {
            0
        };
        let mut data = std::mem::take(&mut self.data).into_vec();
        data.truncate(end);
        let len = end + stride * (1 + spare);
        data.reserve_exact(len - end);
        data.resize(len, 0);
        self.data = data.into_boxed_slice();
    }

    /// Gives every payer one more time slot (unused), in the same frame otherwise, when that
    /// is all it takes to hold `times` (one more time for a payer); `false` (nothing changed)
    /// otherwise. Reads the same as a re-encode of the same payers, for a copy of the bytes.
    fn widen(&mut self, h: &Head, times: &[i64; DEST_TIMES]) -> bool {
        let frame = Frame {
            slots: h.frame.slots + 1,
            ..h.frame
        };
        if frame.slots > DEST_TIMES || !frame.holds(times) {
            return false;
        }
        let unused = frame.value(NONE).unwrap_or(0).to_le_bytes();
        let unused = unused.get(..frame.width).unwrap_or_default();
        with_scratch(|scratch| {
            let out = &mut scratch.bytes;
            out.clear();
            out.extend_from_slice(self.data.get(..h.payers).unwrap_or_default());
            if let Some(slots) = out.get_mut(8) {
                *slots = *slots & !SLOTS_MASK | frame.slots as u8;
            }
            for payer in payer_bytes(&self.data, h).chunks_exact(h.frame.stride()) {
                out.extend_from_slice(payer);
                out.extend_from_slice(unused);
            }
            self.store(out);
        });
        true
    }

    /// Re-encodes the record, its payers changed by `change`, in a frame that holds them
    /// (rare: a finer time unit, a time before the oldest or past the width, one more slot).
    fn rebuild(&mut self, change: impl FnOnce(&mut Vec<(u32, [i64; DEST_TIMES])>)) {
        self.rebuild_with(self.stored(), change);
    }

    /// [`DestRecord::rebuild`] with the stored earliest payments set to `stored`.
    fn rebuild_with(
        &mut self,
        stored: Stored,
        change: impl FnOnce(&mut Vec<(u32, [i64; DEST_TIMES])>),
    ) {
        with_scratch(|scratch| {
            scratch.payers.clear();
            scratch.payers.extend(self.payers());
            change(&mut scratch.payers);
            scratch.bytes.clear();
            write_record(
                &mut scratch.bytes,
                self.refs(),
                self.key_bytes(),
                stored,
                &scratch.payers,
            );
            self.store(&scratch.bytes);
        });
    }

    /// Keeps the payers for which `keep` says yes; the others' users go to `dropped`.
    fn retain_payers(
        &mut self,
        mut keep: impl FnMut(u32, &[i64; DEST_TIMES]) -> bool,
        dropped: &mut Vec<u32>,
    ) {
        // Compacted in place, then shrunk (`realloc`).
        let h = self.head();
        let stride = h.frame.stride();
        let mut data = std::mem::take(&mut self.data).into_vec();
        let mut kept = 0;
        for i in 0..h.n {
            let at = h.payer_at(i);
            if at + stride > data.len() {
                break;
            }
            let (user, times) = (user_at(&data, at), times_at(&data, at, h.frame));
            if keep(user, &times) {
                data.copy_within(at..at + stride, h.payer_at(kept));
                kept += 1;
            } else {
                dropped.push(user);
            }
        }
        data.truncate(h.payer_at(kept));
        set_count(&mut data, kept);
        self.data = data.into_boxed_slice();
    }

    /// Forgets every payer (their users go to `dropped`), and the earliest payments with them
    /// (back to mode 0).
    pub(crate) fn clear_payers(&mut self, dropped: &mut Vec<u32>) {
        if self.payer_count() > 0 {
            self.retain_payers(|_, _| false, dropped);
        }
        if self.stored() != Stored::Derived {
            self.set_stored(Stored::Derived);
        }
    }

    /// A record with these stored earliest payments and payers (as read from a snapshot) and
    /// no refs; `None` when `stored` does not fit them (modes 0 and 1 are for one payer, mode
    /// 0 also for none). The payers are put in the order of their newest times (see
    /// [`DestRecord::record`]): a snapshot of an earlier version lists them in the order they
    /// came.
    pub(crate) fn with_payers(
        key: &str,
        stored: Stored,
        payers: &[(u32, [i64; DEST_TIMES])],
    ) -> Option<DestRecord> {
        let fits = match stored {
            Stored::Derived => payers.len() <= 1,
            Stored::Time(t) => payers.len() == 1 && t != NONE,
            Stored::Full(_) => true,
        };
        if !fits {
            return None;
        }
        if payers.is_sorted_by_key(|p| p.1[0]) {
            return Some(DestRecord::build(0, key, stored, payers));
        }
        let mut sorted = payers.to_vec();
        sorted.sort_by_key(|p| p.1[0]);
        Some(DestRecord::build(0, key, stored, &sorted))
    }

    /// The latest withdrawal time to this destination: the last payer's newest.
    pub(crate) fn newest(&self) -> i64 {
        self.newest_of(&self.head())
    }

    /// [`DestRecord::newest`] with the record's header `h`, read already.
    fn newest_of(&self, h: &Head) -> i64 {
        match h.n.checked_sub(1) {
            Some(last) => latest_at(&self.data, h.payer_at(last), h.frame),
            None => NONE,
        }
    }

    /// The number of payers and the times of payer `user` (as [`DestRecord::payers`] gives
    /// them), without decoding the other payers' times: a snapshot compares them with what the
    /// user's history implies.
    pub(crate) fn times_of(&self, user: u32) -> (usize, Option<[i64; DEST_TIMES]>) {
        let h = self.head();
        let times = (0..h.n)
            .map(|i| h.payer_at(i))
            .find(|&at| user_at(&self.data, at) == user)
            .map(|at| times_at(&self.data, at, h.frame));
        (h.n, times)
    }
}

/// Keeps the `DEST_TIMES` largest distinct times, newest first (a repeated time would only take
/// the slot of an older one that a window may still need).
fn insert_time(times: &mut [i64; DEST_TIMES], ts: i64) {
    if times.contains(&ts) {
        return;
    }
    if let Some(pos) = times.iter().position(|&t| ts > t) {
        times.copy_within(pos..DEST_TIMES - 1, pos + 1);
        if let Some(slot) = times.get_mut(pos) {
            *slot = ts;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The look for a payer at every stride (the constant ones and the others), at every
    /// position of runs of every length, agrees with the plain walk.
    #[test]
    fn finding_a_payer_agrees_with_the_plain_walk() {
        for stride in 5..=36 {
            for n in 0..=13_usize {
                let mut payers = vec![0xA5_u8; n * stride];
                for i in 0..n {
                    // Users 100, 101, ..., with a repeat (the first one wins).
                    let user = 100 + (i as u32 % 11);
                    if let Some(id) = payers.get_mut(i * stride..i * stride + 4) {
                        id.copy_from_slice(&user.to_le_bytes());
                    }
                }
                for user in 99..113 {
                    let plain = payers
                        .chunks_exact(stride)
                        .position(|payer| user_w(payer) == user);
                    assert_eq!(
                        find_payer(&payers, stride, user),
                        plain,
                        "{stride} {n} {user}"
                    );
                }
            }
        }
    }

    fn times(list: &[i64]) -> [i64; DEST_TIMES] {
        let mut times = [NONE; DEST_TIMES];
        for &t in list {
            insert_time(&mut times, t);
        }
        times
    }

    /// The user hash of a test's user id (any distinct numbers do).
    fn h(user: u32) -> u64 {
        u64::from(user).wrapping_mul(0x9e37_79b9_7f4a_7c15)
    }

    /// What `State` does with a record, the users' hashes given by [`h`].
    trait Lazy {
        /// [`DestRecord::record`], given the sole payer's hash when it asks.
        fn rec(&mut self, user: u32, hash: u64, ts: i64, dropped: &mut Vec<u32>) -> bool;
        /// [`DestRecord::others_first`] for the user of hash `hash`, resolved.
        fn others(&self, hash: u64, now: i64) -> Option<i64>;
    }

    impl Lazy for DestRecord {
        fn rec(&mut self, user: u32, hash: u64, ts: i64, dropped: &mut Vec<u32>) -> bool {
            match self.record(user, hash, ts, None, dropped) {
                Ok(new) => new,
                Err(payer) => {
                    let again = self.record(user, hash, ts, Some((payer, h(payer))), dropped);
                    assert!(again.is_ok(), "asked twice for a hash");
                    again.unwrap_or_default()
                }
            }
        }

        fn others(&self, hash: u64, now: i64) -> Option<i64> {
            self.others_first(None, hash, now)
                .resolve(hash, |payer| Some(h(payer)))
        }
    }

    /// The earliest payments are minimums over every payment recorded, in any order and unit
    /// (a time finer than the frame's or before its base re-encodes the record), survive the
    /// payers' trims and go with the last payer; a payment after a retention's silence starts
    /// them again.
    #[test]
    fn earliest_payments_are_kept_across_frames_and_trims() {
        const S: i64 = 1_000_000;
        let base = 1_790_000_000 * S;
        let mut dropped = Vec::new();
        let mut d = DestRecord::new("Tfirst");
        assert_eq!(d.first(h), First::NONE);
        assert_eq!(d.others(h(1), base), None);
        d.rec(1, h(1), base + 10 * S, &mut dropped);
        assert_eq!(d.others(h(1), base + 20 * S), None);
        assert_eq!(d.others(h(2), base + 20 * S), Some(base + 10 * S));
        // Before `now`: not yet.
        assert_eq!(d.others(h(2), base + 9 * S), None);
        // Another user, later; then an earlier one in milliseconds (a re-encode, a new base).
        d.rec(2, h(2), base + 30 * S, &mut dropped);
        assert_eq!(d.others(h(1), base + 40 * S), Some(base + 30 * S));
        d.rec(3, h(3), base + 5 * S + 1_000, &mut dropped);
        assert_eq!(d.head().frame.unit.code(), 1);
        assert_eq!(
            d.first(h),
            First {
                user: h(3),
                time: base + 5 * S + 1_000,
                other: base + 10 * S,
            }
        );
        assert_eq!(d.others(h(3), base + 40 * S), Some(base + 10 * S));
        assert_eq!(d.others(h(1), base + 40 * S), Some(base + 5 * S + 1_000));
        // Its own first payment again, earlier still.
        d.rec(3, h(3), base + S, &mut dropped);
        assert_eq!(d.first(h).time, base + S);
        assert_eq!(d.first(h).other, base + 10 * S);
        // Payer 1 pays four more times: its first payment leaves its slots, not the record.
        for k in 0..4 {
            d.rec(1, h(1), base + (50 + k) * S, &mut dropped);
        }
        assert!(d
            .times_of(1)
            .1
            .is_some_and(|t| !t.contains(&(base + 10 * S))));
        assert_eq!(d.first(h).other, base + 10 * S);
        // The retention trims payers 2 and 3 (their newest are 400 days or more before payer
        // 1's last payment and the newest before it), not the earliest payments.
        let late = base + 40 * S + DEST_RETENTION;
        d.rec(4, h(4), late, &mut dropped);
        assert_eq!(d.payer_count(), 4);
        d.rec(1, h(1), late + S, &mut dropped);
        assert_eq!(d.payer_count(), 2);
        assert_eq!(d.first(h).time, base + S);
        assert_eq!(d.others(h(4), late + S), Some(base + S));
        // Silent for the retention: none, and a payment then starts them again.
        let silent = late + S + DEST_RETENTION;
        assert_eq!(d.others(h(5), silent), None);
        assert_eq!(d.others(h(5), silent - 1), Some(base + S));
        d.rec(5, h(5), silent, &mut dropped);
        assert_eq!(
            d.first(h),
            First {
                user: h(5),
                time: silent,
                other: NONE,
            }
        );
        // Read back as a snapshot writes it; gone with the payers.
        let payers: Vec<_> = d.payers().collect();
        let read = DestRecord::with_payers("Tfirst", d.stored(), &payers).unwrap_or_default();
        assert_eq!(
            (read.first(h), read.payers().collect::<Vec<_>>()),
            (d.first(h), payers)
        );
        d.clear_payers(&mut dropped);
        assert_eq!(d.first(h), First::NONE);
        assert_eq!(d.others(h(1), silent), None);
    }

    /// Records `user` at `ts` in `d` and in `shadow`, the earliest payments kept whole as
    /// before the lazy modes (a retention's silence starts them again); checks that the record
    /// gives them back, to the asking users 1 to 4 too, and that its mode never goes down.
    fn step(d: &mut DestRecord, shadow: &mut First, user: u32, ts: i64) {
        let mode = d.head().mode;
        let before = d.newest();
        if before <= ts.saturating_sub(DEST_RETENTION) {
            *shadow = First::NONE;
        }
        *shadow = shadow.paid(h(user), ts);
        d.rec(user, h(user), ts, &mut Vec::new());
        assert_eq!(d.first(h), *shadow, "{user} at {ts}: {d:?}");
        assert!(
            d.head().mode >= mode,
            "{user} at {ts}: mode {mode} to {d:?}"
        );
        for asking in 1..=4 {
            let t = shadow.others(h(asking));
            let want = (t != NONE && t <= ts).then_some(t);
            assert_eq!(
                d.others(h(asking), ts),
                want,
                "{asking} asks after {user} at {ts}"
            );
            // The same when the asking user is known by its id.
            let known = d
                .others_first(Some(asking), h(asking), ts)
                .resolve(h(asking), |payer| Some(h(payer)));
            assert_eq!(known, want, "{asking} (known) asks after {user} at {ts}");
        }
        // A snapshot keeps the stored form.
        let payers: Vec<_> = d.payers().collect();
        let read = DestRecord::with_payers(d.key(), d.stored(), &payers).unwrap_or_default();
        assert_eq!(
            (read.stored(), read.first(h)),
            (d.stored(), *shadow),
            "{user} at {ts}"
        );
    }

    /// Each way a sole payer's earliest time can leave its slots upgrades the record (mode 0
    /// to 1), a second payer makes it whole (mode 2), and the answers are those of the whole
    /// block throughout.
    #[test]
    fn lazy_earliest_payments_upgrade_before_a_time_is_lost() {
        const S: i64 = 1_000_000;
        let base = 1_790_000_000 * S;
        let t = |k: i64| base + k * S;
        let mode = |d: &DestRecord| d.head().mode;
        // Four distinct times: mode 0 (a repeated time too); the fifth drops the first: mode 1.
        let (mut d, mut shadow) = (DestRecord::new("T5th"), First::NONE);
        for k in [10, 20, 30, 30, 40] {
            step(&mut d, &mut shadow, 1, t(k));
            assert_eq!(mode(&d), 0);
        }
        assert_eq!(d.stored(), Stored::Derived);
        step(&mut d, &mut shadow, 1, t(50));
        assert_eq!(d.stored(), Stored::Time(t(10)));
        // Older still (not kept): the stored time moves.
        step(&mut d, &mut shadow, 1, t(5));
        assert_eq!(d.stored(), Stored::Time(t(5)));
        // In milliseconds: re-encoded, still mode 1.
        step(&mut d, &mut shadow, 1, t(4) + 1_000);
        assert_eq!(d.stored(), Stored::Time(t(4) + 1_000));
        assert_eq!(d.head().frame.unit.code(), 1);
        // A second user: mode 2, the first user's hash asked for.
        step(&mut d, &mut shadow, 2, t(60));
        assert_eq!(
            d.stored(),
            Stored::Full(First {
                user: h(1),
                time: t(4) + 1_000,
                other: t(60),
            })
        );

        // Four times kept, then an older one not kept: mode 1 at once.
        let (mut d, mut shadow) = (DestRecord::new("Told"), First::NONE);
        for k in [20, 30, 40, 50] {
            step(&mut d, &mut shadow, 1, t(k));
        }
        assert_eq!(mode(&d), 0);
        step(&mut d, &mut shadow, 1, t(10));
        assert_eq!(d.stored(), Stored::Time(t(10)));
        // An older time that is kept (fewer than four): still mode 0.
        let (mut d, mut shadow) = (DestRecord::new("Tkept"), First::NONE);
        for k in [20, 10, 15] {
            step(&mut d, &mut shadow, 1, t(k));
        }
        assert_eq!(d.stored(), Stored::Derived);
        assert_eq!(d.first(h).time, t(10));

        // A payment after a retention's silence starts them again while the older times stay
        // in the slots: mode 1 at the new time.
        let (mut d, mut shadow) = (DestRecord::new("Tsilent"), First::NONE);
        step(&mut d, &mut shadow, 1, t(10));
        step(&mut d, &mut shadow, 1, t(20));
        let late = t(20) + DEST_RETENTION;
        step(&mut d, &mut shadow, 1, late);
        assert_eq!(d.stored(), Stored::Time(late));
        assert_eq!(d.payers().next().map(|p| p.1[1]), Some(t(20)));
        // Then the old payer is trimmed by another user's payments: mode 2 stays.
        step(&mut d, &mut shadow, 2, late + DEST_RETENTION);
        step(&mut d, &mut shadow, 2, late + DEST_RETENTION + S);
        assert_eq!(mode(&d), 2);

        // A second user earlier than the first: mode 2 (no hash needed: the new user's).
        let (mut d, mut shadow) = (DestRecord::new("Tearlier"), First::NONE);
        step(&mut d, &mut shadow, 1, t(10));
        assert!(d.record(2, h(2), t(5), None, &mut Vec::new()) == Err(1));
        step(&mut d, &mut shadow, 2, t(5));
        assert_eq!(
            d.stored(),
            Stored::Full(First {
                user: h(2),
                time: t(5),
                other: t(10),
            })
        );
        // After a retention's silence, another user's payment asks no hash (they start again).
        let (mut d, mut shadow) = (DestRecord::new("Tagain"), First::NONE);
        step(&mut d, &mut shadow, 1, t(10));
        assert!(d
            .record(2, h(2), t(10) + DEST_RETENTION, None, &mut Vec::new())
            .is_ok());
        shadow = First::NONE.paid(h(2), t(10) + DEST_RETENTION);
        assert_eq!(d.first(h), shadow);
        assert_eq!(mode(&d), 2);

        // The sweep forgets every payer: mode 0, none.
        let mut dropped = Vec::new();
        d.clear_payers(&mut dropped);
        assert_eq!((d.stored(), d.first(h)), (Stored::Derived, First::NONE));
        assert_eq!(d.others(h(3), t(20) + DEST_RETENTION), None);
    }

    /// Random payments by one to three users (repeated times, older ones, milliseconds,
    /// retention-long silences, sweeps): the lazy record answers as the whole block does.
    #[test]
    fn lazy_earliest_payments_match_the_whole_block() {
        const S: i64 = 1_000_000;
        let base = 1_790_000_000 * S;
        let mut next = super::super::test_rng(0x2545_f491_4f6c_dd1d_u64);
        let mut modes = [0; 3];
        for round in 0..400 {
            let (mut d, mut shadow) = (DestRecord::new("Trandom"), First::NONE);
            let mut now = base;
            let users = 1 + next(3) as u32;
            // Most rounds: one user for a while.
            let second_after = if round % 2 == 0 { 6 } else { 0 };
            for i in 0..12 {
                now += match next(10) {
                    0 => DEST_RETENTION,
                    1 => -(next(40) as i64) * S,
                    2 => 0,
                    _ => next(10) as i64 * S,
                };
                let ts = if next(8) == 0 { now + 1_000 } else { now };
                let user = if i < second_after {
                    1
                } else {
                    1 + next(u64::from(users)) as u32
                };
                step(&mut d, &mut shadow, user, ts);
                if next(30) == 0 {
                    d.clear_payers(&mut Vec::new());
                    shadow = First::NONE;
                    assert_eq!(d.first(h), shadow);
                }
            }
            if let Some(seen) = modes.get_mut(usize::from(d.head().mode)) {
                *seen += 1;
            }
        }
        // Every mode was reached.
        assert!(modes.iter().all(|&n| n > 0), "{modes:?}");
    }

    /// `First::of_payers` is what recording every kept time gives.
    #[test]
    fn earliest_payments_of_payers_are_their_oldest_times() {
        let payers = [
            (1, [30, 20, NONE, NONE]),
            (2, [25, 10, 5, NONE]),
            (3, [40, NONE, NONE, NONE]),
        ];
        let first = First::of_payers(&payers, h);
        assert_eq!(
            first,
            First {
                user: h(2),
                time: 5,
                other: 20,
            }
        );
        assert_eq!(first.others(h(2)), 20);
        assert_eq!(first.others(h(3)), 5);
        assert_eq!(First::of_payers(&[], h), First::NONE);
    }

    /// Payers recorded in every order, unit and span (a re-encode each time the frame must
    /// change) read back exactly, and a capped record keeps its size while the frame holds.
    #[test]
    fn payers_round_trip_through_every_frame() {
        const S: i64 = 1_000_000;
        let base = 1_793_491_200 * S;
        let steps: [(u32, i64); 10] = [
            (1, base),
            (2, base + 86_400 * S),
            (1, base + 3 * S),
            (3, base - 7 * 86_400 * S),
            (1, base + 1_500),
            (2, base + 2),
            (4, i64::MAX),
            (1, -base),
            (5, i64::MIN + 1),
            (1, base + 4 * S),
        ];
        let mut d = DestRecord::new("Taddr");
        d.set_refs(9);
        let mut want: Vec<(u32, Vec<i64>)> = Vec::new();
        let mut dropped = Vec::new();
        for (user, ts) in steps {
            let new = d.rec(user, h(user), ts, &mut dropped);
            match want.iter_mut().find(|(u, _)| *u == user) {
                Some((_, list)) => {
                    assert!(!new);
                    list.push(ts);
                }
                None => {
                    assert!(new);
                    want.push((user, vec![ts]));
                }
            }
            // The retention forgets payers: compare with what is left.
            want.retain(|(u, _)| !dropped.contains(u));
            let mut got: Vec<(u32, [i64; DEST_TIMES])> = d.payers().collect();
            assert!(got.is_sorted_by_key(|p| p.1[0]), "after {user} at {ts}");
            got.sort_by_key(|p| p.0);
            let mut expected: Vec<(u32, [i64; DEST_TIMES])> =
                want.iter().map(|(u, list)| (*u, times(list))).collect();
            expected.sort_by_key(|p| p.0);
            assert_eq!(got, expected, "after {user} at {ts}");
            assert_eq!((d.key(), d.refs()), ("Taddr", 9));
            // Listed in any order (a snapshot's), they are put in order.
            let rebuilt = DestRecord::with_payers("Taddr", d.stored(), &got).unwrap_or_default();
            let mut again: Vec<_> = rebuilt.payers().collect();
            assert!(again.is_sorted_by_key(|p| p.1[0]));
            again.sort_by_key(|p| p.0);
            assert_eq!(again, got);
        }
        // Seconds throughout: 4-byte times, one slot while each payer has paid once.
        let mut d = DestRecord::new("Tsec");
        for user in 0..10 {
            d.rec(user, h(user), base + i64::from(user) * S, &mut dropped);
        }
        assert_eq!(d.head().frame.stride(), 8);
        d.rec(3, h(3), base + 100 * S, &mut dropped);
        assert_eq!(d.head().frame.stride(), 12);
        // The newest payment: payer 3 moved last.
        assert_eq!(
            d.payers().last(),
            Some((3, times(&[base + 3 * S, base + 100 * S])))
        );
        assert_eq!(d.payers().nth(3).map(|p| p.0), Some(4));
        // The slot was added in the record's own frame (a re-encode would have moved its base
        // from the empty record's 0 to the oldest time), reading as a re-encode does.
        assert_eq!(d.head().frame.base, 0);
        let payers: Vec<_> = d.payers().collect();
        let encoded = DestRecord::with_payers("Tsec", d.stored(), &payers).unwrap_or_default();
        assert_ne!(encoded.head().frame.base, 0);
        assert_eq!(encoded.payers().collect::<Vec<_>>(), payers);
    }

    /// At the cap, a new payer replaces the stalest payer (the first) and takes its place in
    /// the order of newest times, whether its time needs a new frame or fits the record's (which
    /// then keeps its size).
    #[test]
    fn the_cap_holds_across_a_change_of_frame() {
        const S: i64 = 1_000_000;
        let base = 1_793_491_200 * S;
        let mut d = DestRecord::new("Tcap");
        let mut dropped = Vec::new();
        for user in 0..MAX_DEST_USERS as u32 {
            // User 5 is the stalest.
            let ts = base + if user == 5 { -S } else { i64::from(user) * S };
            d.rec(user, h(user), ts, &mut dropped);
        }
        assert!(dropped.is_empty());
        let mut want: Vec<_> = d.payers().collect();
        assert_eq!(want.first().map(|p| p.0), Some(5));
        let width = d.head().frame.width;
        assert!(d.rec(99_999, h(99_999), base + 7, &mut dropped));
        assert_eq!(dropped, [5]);
        assert!(d.head().frame.width > width);
        want.remove(0);
        want.insert(1, (99_999, times(&[base + 7])));
        assert_eq!(d.payers().collect::<Vec<_>>(), want);
        // In the frame now (microseconds): the stalest (user 0) goes, in place.
        dropped.clear();
        let size = d.data.len();
        assert!(d.rec(77_777, h(77_777), base + 2 * S + 1, &mut dropped));
        assert_eq!(dropped, [0]);
        assert_eq!(d.data.len(), size);
        want.remove(0);
        want.insert(3, (77_777, times(&[base + 2 * S + 1])));
        assert_eq!(d.payers().collect::<Vec<_>>(), want);
        assert_eq!(d.payers().nth(2).map(|p| p.0), Some(2));
    }

    /// A busy record keeps room for more payers past `SPARE_FROM` and reads (and compares)
    /// as the exact record of the same payers; a trim gives the room back.
    #[test]
    fn room_for_more_payers_is_not_part_of_the_record() {
        const S: i64 = 1_000_000;
        let base = 1_793_491_200 * S;
        let mut d = DestRecord::new("Tbusy");
        let mut dropped = Vec::new();
        let mut want = Vec::new();
        for user in 0..100_u32 {
            assert!(d.rec(user, h(user), base + i64::from(user) * S, &mut dropped));
            want.push((user, times(&[base + i64::from(user) * S])));
            assert_eq!(d.payers().collect::<Vec<_>>(), want);
            if (user as usize) < SPARE_FROM {
                assert_eq!(d.data.len(), d.used().len());
            }
        }
        assert!(d.data.len() > d.used().len());
        // Compared without the room: the same record with none is equal.
        let mut exact = d.clone();
        exact.data = exact.used().into();
        assert_eq!(d, exact);
        assert_eq!(d.payers().last(), Some((99, times(&[base + 99 * S]))));
        assert_eq!(d.newest(), base + 99 * S);
        assert_eq!(d.other_users(Some(3), base + 99 * S), (99, 99));
        assert_eq!(d.other_users(None, base + 49 * S), (50, 50));
        // Far later (the retention runs from the earlier of a payment and the newest before
        // it: the second such payment trims): the first 100 payers are forgotten.
        let late = base + DEST_RETENTION + 200 * S;
        assert!(d.rec(500, h(500), late, &mut dropped));
        assert!(dropped.is_empty());
        assert!(d.rec(501, h(501), late + S, &mut dropped));
        assert_eq!(dropped, (0..100).collect::<Vec<u32>>());
        assert_eq!(d.data.len(), d.used().len());
        assert_eq!(
            d.payers().collect::<Vec<_>>(),
            [(500, times(&[late])), (501, times(&[late + S]))]
        );
    }

    /// A destination made for its first payment writes, once paid, the very bytes of one
    /// made empty and then paid, whatever the time's unit and size.
    #[test]
    fn made_for_its_first_payment_is_made_empty_then_paid() {
        const S: i64 = 1_000_000;
        let base = 1_793_491_200 * S;
        for ts in [
            base,
            base + 1_000,
            base + 7,
            0,
            -S,
            -1,
            5_000 * 365 * 86_400 * S,
            i64::MAX,
            i64::MIN + 1,
        ] {
            let mut empty = DestRecord::new("Tfirst");
            let mut made = DestRecord::new_at("Tfirst", ts);
            let (mut a, mut b) = (Vec::new(), Vec::new());
            assert!(empty.rec(42, h(42), ts, &mut a));
            assert!(made.rec(42, h(42), ts, &mut b));
            assert_eq!(made.data, empty.data, "at {ts}");
            assert_eq!(made.payers().collect::<Vec<_>>(), [(42, times(&[ts]))]);
            // And so after a second payer.
            assert!(empty.rec(7, h(7), ts.saturating_add(S), &mut a));
            assert!(made.rec(7, h(7), ts.saturating_add(S), &mut b));
            assert_eq!(made.data, empty.data, "at {ts}");
        }
    }

    /// The look for a payer outside a range already searched finds what the whole look
    /// finds, for every range and position (and a wrong position found is looked for again).
    #[test]
    fn a_look_outside_a_searched_range_finds_what_the_whole_look_finds() {
        for stride in [8, 9, 13] {
            let n = 11;
            let mut payers = vec![0_u8; n * stride];
            for (i, payer) in payers.chunks_exact_mut(stride).enumerate() {
                if let Some(id) = payer.get_mut(..4) {
                    id.copy_from_slice(&(100 + i as u32).to_le_bytes());
                }
            }
            for user in 99..=100 + n as u32 {
                let whole = find_payer(&payers, stride, user);
                assert_eq!(find_payer_outside(&payers, stride, user, None), whole);
                for from in 0..=n {
                    for to in from..=n {
                        let inside = whole.filter(|&i| (from..to).contains(&i));
                        let searched = Searched {
                            from,
                            to,
                            found: inside,
                        };
                        assert_eq!(
                            find_payer_outside(&payers, stride, user, Some(searched)),
                            whole
                        );
                        let wrong = Searched {
                            from,
                            to,
                            found: Some((from + 1) % n),
                        };
                        if wrong.found != whole {
                            assert_eq!(
                                find_payer_outside(&payers, stride, user, Some(wrong)),
                                whole
                            );
                        }
                    }
                }
            }
        }
    }

    /// `other_users` (its one pass for events in order and its exact walk otherwise) counts
    /// what the decoded payers say, in every frame, with payments in and out of order, past
    /// the retention and at every `now` before, among and after them.
    #[test]
    fn other_users_counts_what_the_payers_say() {
        const S: i64 = 1_000_000;
        let mut next = super::super::test_rng(0x9e37_79b9_7f4a_7c15_u64);
        let naive = |d: &DestRecord, me: Option<u32>, now: i64| {
            let (mut day, mut month) = (0, 0);
            for (user, times) in d.payers() {
                let latest = times
                    .iter()
                    .copied()
                    .filter(|&t| t != NONE && t <= now)
                    .max();
                if let Some(t) = latest {
                    if Some(user) != me && t > now - 30 * MICROS_PER_DAY {
                        month += 1;
                        day += i64::from(t > now - MICROS_PER_DAY);
                    }
                }
            }
            (day, month)
        };
        for round in 0..40 {
            let mut d = DestRecord::new_at("Tcount", 1_793_491_200 * S);
            let mut ts = 1_793_491_200 * S;
            let mut dropped = Vec::new();
            for _ in 0..150 {
                ts += match next(20) {
                    0 => -(next(40 * 86_400) as i64) * S,
                    1 if round % 4 == 0 => DEST_RETENTION / 3,
                    2 => next(1_000) as i64,
                    3 => 1_000 * next(1_000) as i64,
                    _ => next(4 * 3_600) as i64 * S,
                };
                let user = next(60) as u32;
                d.rec(user, h(user), ts, &mut dropped);
                // In the order of their newest times, which the counts rely on; listed in
                // another order (a snapshot's), they are put back in it.
                let payers: Vec<_> = d.payers().collect();
                assert!(payers.is_sorted_by_key(|p| p.1[0]));
                let reversed: Vec<_> = payers.iter().rev().copied().collect();
                let rebuilt =
                    DestRecord::with_payers("Tcount", d.stored(), &reversed).unwrap_or_default();
                for now in [
                    ts,
                    ts - next(86_400) as i64 * S,
                    ts + 40 * 86_400 * S,
                    ts - 1,
                ] {
                    for me in [None, Some(user), Some(999)] {
                        assert_eq!(d.other_users(me, now), naive(&d, me, now), "{now}");
                        assert_eq!(rebuilt.other_users(me, now), naive(&d, me, now), "{now}");
                    }
                }
            }
        }
    }

    #[test]
    fn keeps_the_latest_times_newest_first() {
        let mut times = [NONE; DEST_TIMES];
        for t in [5, 1, 9, 3, 7, 2] {
            insert_time(&mut times, t);
        }
        assert_eq!(times, [9, 7, 5, 3]);
    }
}
