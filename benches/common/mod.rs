//! Shared by the benches: a deterministic generator of users, histories and withdrawals for
//! the shipped `rules/` (HK police pack and community darklist), so every run sees the same data.
#![allow(dead_code)]

use std::path::PathBuf;
use std::time::Duration;

use riskgate::{Event, Scorer, Status, Timestamp, UserProfile, Withdrawal};

/// Criterion settings that keep a bench run short on a 2-core machine.
pub fn criterion() -> criterion::Criterion {
    criterion::Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(20)
        .without_plots()
}

/// CPU seconds this process has used (user + system), from `/proc/self/stat` (Linux; 10 ms
/// ticks). `None` elsewhere. Lets a bench report per-core throughput on a busy machine.
pub fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let after_name = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // Fields 14 and 15 of the file (utime, stime) are 11 and 12 after the name.
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

/// The on-CPU time of the calling thread, in nanoseconds, from `/proc/thread-self/schedstat`
/// (Linux; `None` elsewhere). Finer than [`cpu_seconds`]' 10 ms ticks, which quantize a
/// half-second run by 2%; only for work done on this one thread.
pub fn thread_cpu_ns() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    stat.split_whitespace().next()?.parse().ok()
}

/// SplitMix64: small, fast, deterministic.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
    pub fn pick_str(&mut self, items: &[&'static str]) -> &'static str {
        items[self.below(items.len() as u64) as usize]
    }
}

pub const MICROS_PER_HOUR: i64 = 3_600_000_000;
pub const MICROS_PER_DAY: i64 = 24 * MICROS_PER_HOUR;
/// "Now" of the generated world: 2026-11-01T00:00:00Z.
pub const NOW: i64 = 1_793_491_200_000_000;

pub fn rules_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("rules")
}

/// Addresses on the shipped watchlists (one Scameter entry, one darklist entry).
pub const SCAMETER: &str = "TQ5hy8bGn6ZpLmD1oYdHuWxZ3fQ2sJkN9a";
pub const DARKLISTED: &str = "0xF193a9aFb00715AaCF7ca9Ebffafe02C77517C2E";

pub fn user_id(i: usize) -> String {
    format!("u-{i:06}")
}

fn tron_address(rng: &mut Rng) -> String {
    const ALPHABET: &[u8] = b"123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";
    let mut s = String::with_capacity(34);
    s.push('T');
    for _ in 0..33 {
        s.push(*rng.pick(ALPHABET) as char);
    }
    s
}

/// The fixed facts of one generated user.
pub struct User {
    pub id: String,
    pub created_at: i64,
    pub referral: &'static str,
    pub locale: &'static str,
    pub device: String,
    /// Addresses the user pays regularly.
    pub usual: Vec<String>,
    pub typical_amount: f64,
}

pub fn users(n: usize, rng: &mut Rng) -> Vec<User> {
    (0..n)
        .map(|i| User {
            id: user_id(i),
            created_at: NOW - (1 + rng.below(1500) as i64) * MICROS_PER_DAY,
            referral: rng.pick_str(&["organic", "ads", "telegram", "organic", ""]),
            locale: rng.pick_str(&["en", "zh-HK", "zh-HK", "en-GB"]),
            device: format!("dev-{i}-{}", rng.below(3)),
            usual: (0..1 + rng.below(3)).map(|_| tron_address(rng)).collect(),
            typical_amount: 50.0 + (rng.below(2000) as f64),
        })
        .collect()
}

pub fn withdrawal(
    id: String,
    ts: i64,
    user: &User,
    amount_usd: f64,
    destination: String,
    device: Option<String>,
) -> Withdrawal {
    Withdrawal {
        id,
        ts: Timestamp::from_micros(ts),
        user_id: user.id.clone(),
        asset: "USDT".to_string(),
        network: "TRON".to_string(),
        amount_usd,
        destination,
        user: UserProfile {
            country: "HK".to_string(),
            created_at: Timestamp::from_micros(user.created_at),
            locale: user.locale.to_string(),
            referral: user.referral.to_string(),
        },
        device_id: device,
        status: Status::Completed,
        label: None,
    }
}

/// A typical user's history: ~8 completed withdrawals over the last 90 days to their usual
/// addresses, a login, sometimes a password reset. Events in time order per user.
pub fn history(user: &User, rng: &mut Rng, serial: &mut u64) -> Vec<Event> {
    let mut events = Vec::new();
    let start = NOW - 90 * MICROS_PER_DAY;
    events.push(Event::Login {
        ts: Timestamp::from_micros(start),
        user_id: user.id.clone(),
        device_id: user.device.clone(),
    });
    let n = 4 + rng.below(9);
    let mut ts = start;
    for _ in 0..n {
        ts += (rng.below(10 * MICROS_PER_DAY as u64) + 1) as i64;
        *serial += 1;
        let amount = user.typical_amount * (0.5 + rng.unit());
        let dest = rng.pick(&user.usual).clone();
        events.push(Event::Withdrawal(withdrawal(
            format!("h-{serial}"),
            ts.min(NOW - MICROS_PER_HOUR),
            user,
            amount,
            dest,
            Some(user.device.clone()),
        )));
    }
    if rng.chance(0.1) {
        events.push(Event::PasswordReset {
            ts: Timestamp::from_micros(NOW - rng.below(48 * MICROS_PER_HOUR as u64) as i64),
            user_id: user.id.clone(),
        });
    }
    events
}

/// A scorer on the shipped rules with warm state: `n` users with history.
pub fn warm_scorer(users: &[User], rng: &mut Rng) -> Scorer {
    let scorer = Scorer::from_dir(rules_dir()).expect("the shipped rules load");
    let mut serial = 0;
    for user in users {
        for event in history(user, rng, &mut serial) {
            scorer.observe(&event);
        }
    }
    scorer
}

/// Varied withdrawals at about `NOW` by the generated users: usual and new addresses, large
/// amounts, new devices, shared mule addresses, watchlisted destinations.
pub fn withdrawals(n: usize, users: &[User], rng: &mut Rng, id_prefix: &str) -> Vec<Withdrawal> {
    let mules: Vec<String> = (0..20).map(|_| tron_address(rng)).collect();
    (0..n)
        .map(|i| {
            let user = &users[rng.below(users.len() as u64) as usize];
            let roll = rng.unit();
            let dest = if roll < 0.55 {
                rng.pick(&user.usual).clone()
            } else if roll < 0.85 {
                tron_address(rng)
            } else if roll < 0.95 {
                rng.pick(&mules).clone()
            } else if roll < 0.975 {
                SCAMETER.to_string()
            } else {
                DARKLISTED.to_string()
            };
            let amount = if rng.chance(0.15) {
                user.typical_amount * 20.0
            } else {
                user.typical_amount * (0.5 + rng.unit())
            };
            let device = if rng.chance(0.9) {
                Some(user.device.clone())
            } else if rng.chance(0.5) {
                Some(format!("new-{i}"))
            } else {
                None
            };
            let ts = NOW + (i as i64) * 1_000_000;
            withdrawal(
                format!("{id_prefix}-{i}"),
                ts,
                user,
                (amount * 100.0).round() / 100.0,
                dest,
                device,
            )
        })
        .collect()
}
