//! Per-destination state: who paid an address, and when, for the 24-hour and 30-day windows.

use std::sync::Arc;

use super::{id_hash as user_hash, DEST_RETENTION, DEST_TIMES, MAX_DEST_USERS};
use crate::time::MICROS_PER_DAY;

const NONE: i64 = i64::MIN;

/// The users who paid one destination, each with their latest few withdrawal times.
#[derive(Default, Clone, Debug)]
pub(crate) struct DestinationState {
    pub(crate) payers: Box<[Payer]>,
}

/// One user's latest withdrawal times to a destination, newest first (`i64::MIN` when unused).
#[derive(Clone, Debug)]
pub(crate) struct Payer {
    pub(crate) user: Arc<str>,
    /// [`super::id_hash`] of `user`, kept inline: a popular address has thousands of payers, and
    /// comparing hashes first spares following each payer's pointer to its id.
    pub(crate) user_hash: u64,
    pub(crate) times: [i64; DEST_TIMES],
}

impl Payer {
    /// A payer with one withdrawal time.
    pub(crate) fn new(user: Arc<str>, ts: i64) -> Payer {
        let mut times = [NONE; DEST_TIMES];
        times[0] = ts;
        Payer {
            user_hash: user_hash(&user),
            user,
            times,
        }
    }

    fn is(&self, user: &str, hash: u64) -> bool {
        self.user_hash == hash && &*self.user == user
    }

    /// The latest of the times at or before `now` (`NONE` when there is none): the times are
    /// newest first, so it alone decides whether any time lies in a window ending at `now`.
    #[inline]
    fn latest_at_or_before(&self, now: i64) -> i64 {
        match self.times {
            [first, ..] if first <= now => first,
            times => times.into_iter().find(|&t| t <= now).unwrap_or(NONE),
        }
    }
}

impl DestinationState {
    /// Distinct users other than `user` with a withdrawal here in the last 24 hours and 30 days.
    pub(crate) fn other_users(&self, user: &str, now: i64) -> (i64, i64) {
        let hash = user_hash(user);
        let day_start = now.saturating_sub(MICROS_PER_DAY);
        let month_start = now.saturating_sub(30 * MICROS_PER_DAY);
        let mut day = 0;
        let mut month = 0;
        for payer in self.payers.iter() {
            // In `(now - span, now]` for some time iff the latest at or before `now` is.
            let latest = payer.latest_at_or_before(now);
            if latest != NONE && latest > month_start && !payer.is(user, hash) {
                month += 1;
                day += i64::from(latest > day_start);
            }
        }
        (day, month)
    }

    /// Remembers that `user` paid this destination at `ts`: one walk over the payers (finding
    /// the user, the newest time before this one and whether any payer is due to be forgotten).
    pub(crate) fn record(&mut self, user: &Arc<str>, ts: i64) {
        let hash = user_hash(user);
        let mut found = None;
        let mut before = NONE;
        let mut oldest = i64::MAX;
        for (i, payer) in self.payers.iter().enumerate() {
            let [latest, ..] = payer.times;
            before = before.max(latest);
            oldest = oldest.min(latest);
            if found.is_none() && payer.is(user, hash) {
                found = Some(i);
            }
        }
        match found.and_then(|i| self.payers.get_mut(i)) {
            Some(payer) => insert_time(&mut payer.times, ts),
            None => super::edit(&mut self.payers, |payers| {
                if payers.len() >= MAX_DEST_USERS {
                    let stalest = payers
                        .iter()
                        .enumerate()
                        .min_by_key(|(_, p)| p.times[0])
                        .map(|(i, _)| i);
                    if let Some(i) = stalest {
                        payers.swap_remove(i);
                    }
                } else {
                    payers.reserve_exact(1);
                }
                payers.push(Payer::new(user.clone(), ts));
            }),
        }
        // As of the earlier of this withdrawal and the newest before it: one dated far in the
        // future must not drop every other payer.
        let horizon = before.min(ts).saturating_sub(DEST_RETENTION);
        if oldest <= horizon {
            super::edit(&mut self.payers, |p| p.retain(|p| p.times[0] > horizon));
        }
    }

    /// The latest withdrawal time to this destination.
    pub(crate) fn newest(&self) -> i64 {
        self.payers.iter().map(|p| p.times[0]).max().unwrap_or(NONE)
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
