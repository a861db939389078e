//! Snapshot size and save/load time for a synthetic state of one million users (issue 6).
//!
//! `cargo bench --bench snapshot` (set `RISKGATE_BENCH_USERS` for another size). The state is
//! built through `Scorer::observe`, as a live scorer builds it: each user has a device seen at
//! login, four completed withdrawals over 20 days (three to the user's own wallet, one to one of
//! 10,000 shared EVM addresses, so each shared address has about 100 payers) and, for one user
//! in ten, a password reset. The snapshot file goes to a temporary directory on the same disk
//! as the repository, so the fsync and rename are real. Loads go into a fresh scorer each time
//! (start-up); dropping the loaded state is not timed.

use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use riskgate::{Event, Scorer, Status, Timestamp, UserProfile, Withdrawal};

const DAY: i64 = 86_400_000_000;

fn users() -> usize {
    std::env::var("RISKGATE_BENCH_USERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000)
}

fn synthetic_scorer(users: usize) -> Scorer {
    let rules =
        riskgate::RuleSet::load(concat!(env!("CARGO_MANIFEST_DIR"), "/rules")).expect("rules");
    let scorer = Scorer::new(rules);
    let start = 1_790_000_000_000_000_i64;
    let profile = UserProfile {
        country: "HK".into(),
        created_at: Timestamp::from_micros(start - 400 * DAY),
        locale: "zh-HK".into(),
        referral: "organic".into(),
    };
    for u in 0..users {
        let user_id = format!("user-{u:07}");
        let device_id = format!("device-{u:07}-a");
        let offset = (u as i64 % 1000) * 1_000_000;
        scorer.observe(&Event::Login {
            ts: Timestamp::from_micros(start + offset),
            user_id: user_id.clone(),
            device_id: device_id.clone(),
        });
        if u % 10 == 0 {
            scorer.observe(&Event::PasswordReset {
                ts: Timestamp::from_micros(start + DAY + offset),
                user_id: user_id.clone(),
            });
        }
        for k in 0..4_i64 {
            let destination = if k == 3 {
                format!("0x{:040x}", (u * 7919) % 10_000)
            } else {
                format!("TWallet{u:07}Own000000000000000000000")
            };
            scorer.observe_withdrawal(&Withdrawal {
                id: format!("w-{u}-{k}"),
                ts: Timestamp::from_micros(start + (2 + k * 5) * DAY + offset),
                user_id: user_id.clone(),
                asset: "USDT".into(),
                network: "TRON".into(),
                amount_usd: 100.0 + (u % 900) as f64 + k as f64 * 10.0,
                destination,
                user: profile.clone(),
                device_id: Some(device_id.clone()),
                status: Status::Completed,
                label: None,
            });
        }
    }
    scorer
}

fn snapshot(c: &mut Criterion) {
    let users = users();
    let built = Instant::now();
    let scorer = synthetic_scorer(users);
    eprintln!(
        "built a state of {} users in {:.1?}",
        scorer.user_count(),
        built.elapsed()
    );
    let dir = tempfile::tempdir_in(env!("CARGO_MANIFEST_DIR")).expect("tempdir");
    let path = dir.path().join("state.bin");
    let info = scorer.save_state(&path).expect("save");
    eprintln!(
        "snapshot: {} users, {} destinations, {} bytes ({:.1} MB, {:.0} bytes per user)",
        info.users,
        info.destinations,
        info.bytes,
        info.bytes as f64 / 1e6,
        info.bytes as f64 / info.users as f64
    );

    pauses(&scorer, &path);

    let mut group = c.benchmark_group("snapshot");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(10));
    group.bench_function(format!("save_{users}_users"), |b| {
        b.iter(|| scorer.save_state(&path).expect("save"))
    });
    // Start-up: each load goes into a fresh scorer (dropping the loaded state is not timed).
    let fresh_scorer = || {
        Scorer::new(
            riskgate::RuleSet::load(concat!(env!("CARGO_MANIFEST_DIR"), "/rules")).expect("rules"),
        )
    };
    group.bench_function(format!("load_{users}_users"), |b| {
        b.iter_batched(
            fresh_scorer,
            |target| {
                target.load_state(&path).expect("load");
                target
            },
            BatchSize::PerIteration,
        )
    });
    group.finish();
}

/// How long single `score` + `observe` calls take on another thread while a save runs, against
/// the same loop with no save: the "moment" a save may hold scoring up. Printed, not asserted.
fn pauses(scorer: &Scorer, path: &std::path::Path) {
    let users = scorer.user_count().max(1);
    let run = |saving: bool| {
        let done = std::sync::atomic::AtomicBool::new(false);
        let mut latencies = std::thread::scope(|scope| {
            let worker = scope.spawn(|| {
                let mut latencies = Vec::new();
                let mut i = 0_usize;
                while !done.load(std::sync::atomic::Ordering::Relaxed) || latencies.len() < 100_000
                {
                    let w = withdrawal((i * 7_919) % users, i);
                    let started = Instant::now();
                    let _ = scorer.score(&w);
                    scorer.observe_withdrawal(&w);
                    latencies.push(started.elapsed());
                    i += 1;
                }
                latencies
            });
            if saving {
                scorer.save_state(path).expect("save");
            } else {
                std::thread::sleep(Duration::from_secs(2));
            }
            done.store(true, std::sync::atomic::Ordering::Relaxed);
            worker.join().expect("worker")
        });
        latencies.sort();
        let at = |q: f64| latencies[((latencies.len() - 1) as f64 * q) as usize];
        eprintln!(
            "score+observe {} a save: {} calls, median {:?}, p99 {:?}, p99.9 {:?}, max {:?}",
            if saving { "during" } else { "without" },
            latencies.len(),
            at(0.5),
            at(0.99),
            at(0.999),
            at(1.0)
        );
    };
    run(false);
    run(true);
}

/// A withdrawal by existing user `u` to the user's own wallet, later than the built state.
fn withdrawal(u: usize, i: usize) -> Withdrawal {
    let start = 1_790_000_000_000_000_i64 + 19 * DAY;
    Withdrawal {
        id: format!("p-{i}"),
        ts: Timestamp::from_micros(start + i as i64 * 1_000),
        user_id: format!("user-{u:07}"),
        asset: "USDT".into(),
        network: "TRON".into(),
        amount_usd: 250.0,
        destination: format!("TWallet{u:07}Own000000000000000000000"),
        user: UserProfile {
            country: "HK".into(),
            created_at: Timestamp::from_micros(start - 400 * DAY),
            locale: "zh-HK".into(),
            referral: "organic".into(),
        },
        device_id: Some(format!("device-{u:07}-a")),
        status: Status::Completed,
        label: None,
    }
}

criterion_group!(benches, snapshot);
criterion_main!(benches);
