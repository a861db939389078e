//! Per-destination state: who paid an address, and when, for the 24-hour and 30-day windows.
//!
//! # Layout
//! One allocation per destination ([`DestRecord`]), written sequentially and read in place:
//!
//! ```text
//! refs:u32 n_payers:u16 key_len:varint key:bytes           (the normalized address)
//! { user:u32 times:i64^DEST_TIMES }^n_payers               (36 bytes each)
//! ```
//!
//! A payer is the user's interned id (see `super::table`) and their latest distinct times to
//! this address, newest first (`i64::MIN` when unused). `refs` counts the users whose known
//! destinations name this destination's id (see `super`).

use super::table::Keyed;
use super::user::{push_varint, varint_at, varint_len};
use super::{DEST_RETENTION, DEST_TIMES, MAX_DEST_USERS};
use crate::time::MICROS_PER_DAY;

const NONE: i64 = i64::MIN;
const HEADER: usize = 6;
const PAYER: usize = 4 + 8 * DEST_TIMES;

const _: () = assert!(MAX_DEST_USERS <= u16::MAX as usize);

/// The users who paid one destination (packed, see the module docs): 16 bytes inline.
#[derive(Default, Clone, PartialEq, Eq)]
pub(crate) struct DestRecord {
    data: Box<[u8]>,
}

impl std::fmt::Debug for DestRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DestRecord")
            .field("key", &self.key())
            .field("payers", &self.payers().collect::<Vec<_>>())
            .finish()
    }
}

impl Keyed for DestRecord {
    fn key_bytes(&self) -> &[u8] {
        let ((start, end), _) = self.offsets();
        self.data.get(start..end).unwrap_or_default()
    }
}

fn times_of(payer: &[u8]) -> [i64; DEST_TIMES] {
    let mut times = [NONE; DEST_TIMES];
    for (i, t) in times.iter_mut().enumerate() {
        if let Some(b) = payer.get(4 + 8 * i..).and_then(|r| r.first_chunk::<8>()) {
            *t = i64::from_le_bytes(*b);
        }
    }
    times
}

fn user_of(payer: &[u8]) -> u32 {
    payer
        .first_chunk::<4>()
        .map_or(u32::MAX, |b| u32::from_le_bytes(*b))
}

/// The latest of `times` (newest first) at or before `now` (`NONE` when there is none): it
/// alone decides whether any time lies in a window ending at `now`.
#[inline]
fn latest_at_or_before(payer: &[u8], now: i64) -> i64 {
    (0..DEST_TIMES)
        .filter_map(|i| payer.get(4 + 8 * i..).and_then(|r| r.first_chunk::<8>()))
        .map(|b| i64::from_le_bytes(*b))
        .find(|&t| t <= now)
        .unwrap_or(NONE)
}

/// Sets the payer count of a record being built.
fn set_count(data: &mut [u8], n: usize) {
    if let Some(field) = data.get_mut(4..6) {
        field.copy_from_slice(&(n.min(MAX_DEST_USERS) as u16).to_le_bytes());
    }
}

fn write_payer(out: &mut Vec<u8>, user: u32, times: &[i64; DEST_TIMES]) {
    out.extend_from_slice(&user.to_le_bytes());
    for t in times {
        out.extend_from_slice(&t.to_le_bytes());
    }
}

impl DestRecord {
    /// A destination with no payers.
    pub(crate) fn new(key: &str) -> DestRecord {
        DestRecord::build(0, key, 0, |_| ())
    }

    /// A record of `refs`, `key` and `n` payers, laid out by `payers` (one allocation).
    fn build(refs: u32, key: &str, n: usize, payers: impl FnOnce(&mut Vec<u8>)) -> DestRecord {
        let mut data = Vec::with_capacity(HEADER + varint_len(key.len()) + key.len() + n * PAYER);
        data.extend_from_slice(&refs.to_le_bytes());
        data.extend_from_slice(&(n.min(MAX_DEST_USERS) as u16).to_le_bytes());
        push_varint(&mut data, key.len());
        data.extend_from_slice(key.as_bytes());
        payers(&mut data);
        DestRecord {
            data: data.into_boxed_slice(),
        }
    }

    /// Where the key and the payers are.
    fn offsets(&self) -> ((usize, usize), usize) {
        let n = match self.data.get(4..6) {
            Some(&[lo, hi]) => usize::from(u16::from_le_bytes([lo, hi])),
            _ => 0,
        };
        let mut at = HEADER;
        let len = varint_at(&self.data, &mut at).unwrap_or(0);
        ((at, at + len), n)
    }

    /// The normalized address.
    pub(crate) fn key(&self) -> &str {
        std::str::from_utf8(self.key_bytes()).unwrap_or_default()
    }

    fn payer_bytes(&self) -> &[u8] {
        let ((_, end), n) = self.offsets();
        self.data.get(end..end + n * PAYER).unwrap_or_default()
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
        self.payer_bytes()
            .chunks_exact(PAYER)
            .map(|p| (user_of(p), times_of(p)))
    }

    /// Number of payers.
    pub(crate) fn payer_count(&self) -> usize {
        self.offsets().1
    }

    /// Distinct users other than `user` with a withdrawal here in the last 24 hours and 30 days.
    pub(crate) fn other_users(&self, user: Option<u32>, now: i64) -> (i64, i64) {
        let day_start = now.saturating_sub(MICROS_PER_DAY);
        let month_start = now.saturating_sub(30 * MICROS_PER_DAY);
        let mut day = 0;
        let mut month = 0;
        for payer in self.payer_bytes().chunks_exact(PAYER) {
            // In `(now - span, now]` for some time iff the latest at or before `now` is.
            let latest = latest_at_or_before(payer, now);
            if latest != NONE && latest > month_start && Some(user_of(payer)) != user {
                month += 1;
                day += i64::from(latest > day_start);
            }
        }
        (day, month)
    }

    /// Remembers that `user` paid this destination at `ts`: one walk over the payers (finding
    /// the user, the newest time before this one and whether any payer is due to be forgotten).
    /// Returns whether `user` is a new payer; payers forgotten (over the cap, or past
    /// retention) are appended to `dropped`.
    pub(crate) fn record(&mut self, user: u32, ts: i64, dropped: &mut Vec<u32>) -> bool {
        let ((_, key_end), n) = self.offsets();
        let mut found = None;
        let mut before = NONE;
        let mut oldest = i64::MAX;
        let mut stalest = (i64::MAX, 0);
        for (i, payer) in self.payer_bytes().chunks_exact(PAYER).enumerate() {
            let latest = times_of(payer)[0];
            before = before.max(latest);
            oldest = oldest.min(latest);
            if latest < stalest.0 {
                stalest = (latest, i);
            }
            if found.is_none() && user_of(payer) == user {
                found = Some(i);
            }
        }
        let added = match found {
            Some(i) => {
                let at = key_end + i * PAYER;
                if let Some(payer) = self.data.get_mut(at..at + PAYER) {
                    let mut times = times_of(payer);
                    insert_time(&mut times, ts);
                    for (slot, t) in payer
                        .get_mut(4..)
                        .unwrap_or_default()
                        .chunks_exact_mut(8)
                        .zip(times)
                    {
                        slot.copy_from_slice(&t.to_le_bytes());
                    }
                }
                false
            }
            None => {
                let mut times = [NONE; DEST_TIMES];
                times[0] = ts;
                let mut payer = Vec::with_capacity(PAYER);
                write_payer(&mut payer, user, &times);
                if n >= MAX_DEST_USERS && key_end + n * PAYER <= self.data.len() {
                    // At the cap the record keeps its size (no reallocation): the payer with
                    // the oldest latest time goes, the last payer takes its slot and the new
                    // one the last slot.
                    let at = key_end + stalest.1 * PAYER;
                    let last = key_end + (n - 1) * PAYER;
                    dropped.push(self.data.get(at..).map_or(u32::MAX, user_of));
                    self.data.copy_within(last..last + PAYER, at);
                    if let Some(slot) = self.data.get_mut(last..last + PAYER) {
                        slot.copy_from_slice(&payer);
                    }
                } else {
                    // Grown in place when the allocator can (`realloc`).
                    let mut data = std::mem::take(&mut self.data).into_vec();
                    data.reserve_exact(PAYER);
                    data.extend_from_slice(&payer);
                    set_count(&mut data, n + 1);
                    self.data = data.into_boxed_slice();
                }
                true
            }
        };
        // As of the earlier of this withdrawal and the newest before it: one dated far in the
        // future must not drop every other payer.
        let horizon = before.min(ts).saturating_sub(DEST_RETENTION);
        if oldest <= horizon {
            self.retain_payers(|_, times| times[0] > horizon, dropped);
        }
        added
    }

    /// Keeps the payers for which `keep` says yes; the others' users go to `dropped`.
    fn retain_payers(
        &mut self,
        mut keep: impl FnMut(u32, &[i64; DEST_TIMES]) -> bool,
        dropped: &mut Vec<u32>,
    ) {
        // Compacted in place, then shrunk (`realloc`).
        let ((_, key_end), count) = self.offsets();
        let mut data = std::mem::take(&mut self.data).into_vec();
        let mut kept = 0;
        for i in 0..count {
            let at = key_end + i * PAYER;
            let Some(payer) = data.get(at..at + PAYER) else {
                break;
            };
            let (user, times) = (user_of(payer), times_of(payer));
            if keep(user, &times) {
                data.copy_within(at..at + PAYER, key_end + kept * PAYER);
                kept += 1;
            } else {
                dropped.push(user);
            }
        }
        data.truncate(key_end + kept * PAYER);
        set_count(&mut data, kept);
        self.data = data.into_boxed_slice();
    }

    /// Forgets every payer (their users go to `dropped`).
    pub(crate) fn clear_payers(&mut self, dropped: &mut Vec<u32>) {
        if self.payer_count() > 0 {
            self.retain_payers(|_, _| false, dropped);
        }
    }

    /// A record with these payers (as read from a snapshot) and no refs.
    pub(crate) fn with_payers(key: &str, payers: &[(u32, [i64; DEST_TIMES])]) -> DestRecord {
        DestRecord::build(0, key, payers.len(), |data| {
            for (user, times) in payers {
                write_payer(data, *user, times);
            }
        })
    }

    /// The latest withdrawal time to this destination.
    pub(crate) fn newest(&self) -> i64 {
        self.payers().map(|(_, t)| t[0]).max().unwrap_or(NONE)
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

    #[test]
    fn keeps_the_latest_times_newest_first() {
        let mut times = [NONE; DEST_TIMES];
        for t in [5, 1, 9, 3, 7, 2] {
            insert_time(&mut times, t);
        }
        assert_eq!(times, [9, 7, 5, 3]);
    }
}
