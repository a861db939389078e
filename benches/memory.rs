//! Memory: bytes of feature state per typical user, measured with a counting global allocator
//! (live heap bytes after observing the histories of 20k users, minus before), printed. A typical
//! user here: 4-12 completed withdrawals over the last 90 days to 1-3 usual addresses, one
//! device, a password reset for one user in ten (see `common::history`). Asserts the state holds
//! every user.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};

use common::Rng;
use riskgate::Scorer;

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
    let events: usize = histories.iter().map(Vec::len).sum();
    let scorer = Scorer::from_dir(common::rules_dir()).expect("the shipped rules load");
    let before = LIVE.load(Ordering::Relaxed);
    for history in &histories {
        for event in history {
            scorer.observe(event);
        }
    }
    let after = LIVE.load(Ordering::Relaxed);
    assert_eq!(scorer.user_count(), USERS);
    let per_user = (after - before) as f64 / USERS as f64;
    println!(
        "memory: {USERS} typical users ({:.1} events each): {} bytes of state, {per_user:.0} bytes per user (users and their destinations)",
        events as f64 / USERS as f64,
        after - before
    );
}
