//! Memory: bytes of feature state per typical user, measured with a counting global allocator
//! (live heap bytes after observing the histories of 20k users, minus before), printed. A typical
//! user here: 4-12 completed withdrawals over the last 90 days to 1-3 usual addresses, one
//! device, a password reset for one user in ten (see `common::history`). Asserts the state holds
//! every user.
//!
//! Two cases, the same users and events: `random` as `common::history` makes them (times at
//! random microseconds, amounts at full `f64` precision: the worst case for the exact compact
//! records) and `whole` with each time cut to the whole second and each amount rounded to
//! whole cents, as `riskgate gen` writes them and as exchanges commonly send them (their
//! timestamps are seconds or milliseconds; a USD amount computed as amount x price has more
//! digits, so real streams lie between the two cases).

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};

use common::Rng;
use riskgate::{Event, Scorer, Timestamp};

struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        System.alloc(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        System.dealloc(ptr, layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(
            new_size as isize - layout.size() as isize,
            Ordering::Relaxed,
        );
        System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

const USERS: usize = 20_000;

fn main() {
    let mut rng = Rng::new(0x3E3);
    let users = common::users(USERS, &mut rng);
    let mut serial = 0;
    let histories: Vec<_> = users
        .iter()
        .map(|u| common::history(u, &mut rng, &mut serial))
        .collect();
    measure("random", &histories);
    let whole: Vec<Vec<Event>> = histories
        .iter()
        .map(|h| h.iter().cloned().map(whole).collect())
        .collect();
    measure("whole", &whole);
}

/// The event with its time cut to the whole second and its amount rounded to whole cents.
fn whole(event: Event) -> Event {
    let second =
        |ts: Timestamp| Timestamp::from_micros(ts.as_micros().div_euclid(1_000_000) * 1_000_000);
    match event {
        Event::Withdrawal(mut w) => {
            w.ts = second(w.ts);
            w.amount_usd = (w.amount_usd * 100.0).round() / 100.0;
            Event::Withdrawal(w)
        }
        Event::Login {
            ts,
            user_id,
            device_id,
        } => Event::Login {
            ts: second(ts),
            user_id,
            device_id,
        },
        Event::PasswordReset { ts, user_id } => Event::PasswordReset {
            ts: second(ts),
            user_id,
        },
    }
}

fn measure(case: &str, histories: &[Vec<Event>]) {
    let events: usize = histories.iter().map(Vec::len).sum();
    let scorer = Scorer::from_dir(common::rules_dir()).expect("the shipped rules load");
    let before = LIVE.load(Ordering::Relaxed);
    for history in histories {
        for event in history {
            scorer.observe(event);
        }
    }
    let after = LIVE.load(Ordering::Relaxed);
    assert_eq!(scorer.user_count(), USERS);
    let per_user = (after - before) as f64 / USERS as f64;
    println!(
        "memory ({case}): {USERS} typical users ({:.1} events each): {} bytes of state, {per_user:.0} bytes per user (users and their destinations)",
        events as f64 / USERS as f64,
        after - before
    );
}
