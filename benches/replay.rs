//! `replay`: withdrawals per second replaying a generated stream of 240k events (about 200k
//! withdrawals, plus logins and password resets) on the shipped `rules/` (HK pack + darklist),
//! one thread: every withdrawal is scored, then every event observed, in order, from a fresh
//! scorer each iteration. `replay/events` starts from parsed events; `replay/jsonl` from JSON
//! Lines text through `EventStream` (parsing and validation included). Each iteration asserts
//! the tier counts of the whole replay equal those of a first pass. After criterion, each is
//! replayed best of `RISKGATE_BENCH_RUNS` (default 3) for CPU-time figures;
//! `RISKGATE_REPLAY_ONLY=events` (or `jsonl`) keeps one (a filter argument such as `nomatch`
//! skips criterion: `cargo bench --bench replay -- nomatch`, e.g. under cachegrind).

mod common;

use std::sync::Arc;

use common::{Rng, MICROS_PER_DAY, MICROS_PER_HOUR, NOW};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use riskgate::{DecisionBuf, Event, EventStream, Processed, RuleSet, Scorer, Timestamp};

const EVENTS: usize = 240_000;
const USERS: usize = 20_000;

/// The stream: events every ~10 s over ~4 weeks, 85% withdrawals, 10% logins, 5% resets.
fn stream() -> Vec<Event> {
    let mut rng = Rng::new(0xE7E7);
    let users = common::users(USERS, &mut rng);
    let mules: Vec<String> = (0..30).map(|i| format!("TMule{i:029}")).collect();
    let mut ts = NOW - 28 * MICROS_PER_DAY;
    (0..EVENTS)
        .map(|i| {
            ts += 1 + rng.below(20_000_000) as i64;
            let user = &users[rng.below(USERS as u64) as usize];
            let roll = rng.unit();
            if roll < 0.10 {
                let device = if rng.chance(0.8) {
                    user.device.clone()
                } else {
                    format!("dev-new-{i}")
                };
                Event::Login {
                    ts: Timestamp::from_micros(ts),
                    user_id: user.id.clone(),
                    device_id: device,
                }
            } else if roll < 0.15 {
                Event::PasswordReset {
                    ts: Timestamp::from_micros(ts - rng.below(MICROS_PER_HOUR as u64) as i64),
                    user_id: user.id.clone(),
                }
            } else {
                let r = rng.unit();
                let dest = if r < 0.6 {
                    rng.pick(&user.usual).clone()
                } else if r < 0.85 {
                    format!("TNew{:030}", rng.below(1 << 40))
                } else if r < 0.97 {
                    rng.pick(&mules).clone()
                } else if r < 0.985 {
                    common::SCAMETER.to_string()
                } else {
                    common::DARKLISTED.to_string()
                };
                let amount = if rng.chance(0.1) {
                    user.typical_amount * 15.0
                } else {
                    user.typical_amount * (0.5 + rng.unit())
                };
                let mut w = common::withdrawal(
                    format!("wd-{i}"),
                    ts,
                    user,
                    (amount * 100.0).round() / 100.0,
                    dest,
                    Some(user.device.clone()),
                );
                if rng.chance(0.03) {
                    w.status = riskgate::Status::Cancelled;
                }
                Event::Withdrawal(w)
            }
        })
        .collect()
}

fn to_json(e: &Event) -> String {
    let ts = |t: Timestamp| t.to_string();
    match e {
        Event::Login { ts: t, user_id, device_id } => {
            serde_json::json!({"kind": "login", "ts": ts(*t), "user_id": user_id, "device_id": device_id}).to_string()
        }
        Event::PasswordReset { ts: t, user_id } => serde_json::json!({"kind": "password_reset", "ts": ts(*t), "user_id": user_id}).to_string(),
        Event::Withdrawal(w) => serde_json::json!({
            "kind": "withdrawal", "ts": ts(w.ts), "user_id": w.user_id, "id": w.id, "asset": w.asset,
            "network": w.network, "amount_usd": w.amount_usd, "destination": w.destination,
            "device_id": w.device_id,
            "status": if w.status == riskgate::Status::Cancelled { "cancelled" } else { "completed" },
            "user": {"country": w.user.country, "created_at": ts(w.user.created_at), "locale": w.user.locale, "referral": w.user.referral},
        })
        .to_string(),
    }
}

// Not inlined, so that a profiler can collect this function alone
// (`valgrind --tool=callgrind --toggle-collect=replay::replay_events`).
#[inline(never)]
fn replay_events(scorer: &Scorer, events: &[Event]) -> [usize; 4] {
    let mut tiers = [0; 4];
    // Reused from one decision to the next, as `riskgate replay` does: no allocation per
    // decision.
    let mut buf = DecisionBuf::new();
    for e in events {
        if let Event::Withdrawal(w) = e {
            tiers[scorer.score_into(w, &mut buf).tier() as usize] += 1;
        }
        scorer.observe(e);
    }
    tiers
}

fn replay_jsonl(scorer: &Scorer, lines: &[String]) -> [usize; 4] {
    let mut tiers = [0; 4];
    let mut stream = EventStream::new();
    for line in lines {
        if let Processed::Scored(_, d) = stream.process(scorer, Ok(line)).expect("valid line") {
            tiers[d.tier as usize] += 1;
        }
    }
    tiers
}

fn bench(c: &mut Criterion) {
    let events = stream();
    let withdrawals = events
        .iter()
        .filter(|e| matches!(e, Event::Withdrawal(_)))
        .count();
    let lines: Vec<String> = events.iter().map(to_json).collect();
    let rules = Arc::new(RuleSet::load(common::rules_dir()).expect("the shipped rules load"));
    let expected = replay_events(&Scorer::new_shared(rules.clone()), &events);
    assert_eq!(
        replay_jsonl(&Scorer::new_shared(rules.clone()), &lines),
        expected
    );
    println!("replay: {EVENTS} events, {withdrawals} withdrawals, tiers allow/notice/warn/cool_off = {expected:?}");
    assert!(expected.iter().all(|&n| n > 0));

    let mut group = c.benchmark_group("replay");
    group.sample_size(10);
    group.throughput(Throughput::Elements(withdrawals as u64));
    group.bench_function("events", |b| {
        b.iter_batched(
            || Scorer::new_shared(rules.clone()),
            |scorer| assert_eq!(replay_events(&scorer, &events), expected),
            BatchSize::PerIteration,
        )
    });
    group.bench_function("jsonl", |b| {
        b.iter_batched(
            || Scorer::new_shared(rules.clone()),
            |scorer| assert_eq!(replay_jsonl(&scorer, &lines), expected),
            BatchSize::PerIteration,
        )
    });
    group.finish();

    // Per core: withdrawals per CPU-second of this (single-threaded) replay, which other
    // processes on a busy machine do not inflate the way they inflate wall-clock time.
    let runs: usize = std::env::var("RISKGATE_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let only = std::env::var("RISKGATE_REPLAY_ONLY").ok();
    for (name, jsonl) in [("events", false), ("jsonl", true)] {
        if only.as_deref().is_some_and(|o| o != name) {
            continue;
        }
        let mut best_wall = f64::MAX;
        let mut best_cpu = f64::MAX;
        for _ in 0..runs {
            let scorer = Scorer::new_shared(rules.clone());
            // The replay runs on this thread alone: its on-CPU time, to the nanosecond.
            let (cpu0, t0) = (common::thread_cpu_ns(), std::time::Instant::now());
            let tiers = if jsonl {
                replay_jsonl(&scorer, &lines)
            } else {
                replay_events(&scorer, &events)
            };
            let wall = t0.elapsed().as_secs_f64();
            assert_eq!(tiers, expected);
            best_wall = best_wall.min(wall);
            if let (Some(a), Some(b)) = (cpu0, common::thread_cpu_ns()) {
                best_cpu = best_cpu.min(b.saturating_sub(a) as f64 / 1e9);
            }
            drop(scorer);
        }
        println!(
            "replay/{name}: {withdrawals} withdrawals; best of {runs}: {:.0} withdrawals/s wall-clock, {:.0} withdrawals per CPU-second",
            withdrawals as f64 / best_wall,
            withdrawals as f64 / best_cpu
        );
    }
}

criterion_group! { name = benches; config = common::criterion().measurement_time(std::time::Duration::from_secs(8)); targets = bench }
criterion_main!(benches);
