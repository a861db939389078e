//! `score/hk`: the full `Scorer::score` (features from the warm state of 100k users with
//! history, every rule of the shipped `rules/` (HK police pack and community darklist), the
//! decision) on varied withdrawals. Each call is asserted to give the decision a first pass
//! computed. Also prints p50/p99 per decision over individually timed calls (criterion reports
//! mean and median only).
//!
//! `score/hk_1m_users`: the same with 1M users (issue 14: p99 <= 2 us there), their state built
//! through `Scorer::observe` like the others (about 10M events; the setup takes a while).
//!
//! `score/hk_1k_users`: the same with 1k users, whose state stays in the CPU caches: the floor
//! without main-memory misses (at 100k users the state is ~90 MB, and each decision follows a
//! handful of pointers into it).

mod common;

use std::hint::black_box;
use std::time::Instant;

use common::{Rng, NOW};
use criterion::{criterion_group, criterion_main, Criterion};
use riskgate::Tier;

const USERS: usize = 100_000;
const WITHDRAWALS: usize = 20_000;

fn bench(c: &mut Criterion) {
    run(c, "score/hk", USERS);
    run(c, "score/hk_1k_users", 1_000);
    run(c, "score/hk_1m_users", 1_000_000);
}

fn run(c: &mut Criterion, name: &str, users: usize) {
    let mut rng = Rng::new(0x0005_C02E);
    let started = Instant::now();
    let people = common::users(users, &mut rng);
    // Made before the state, as a service's freshly parsed request is hot in the caches: made
    // after it, their ~200k small strings land in the holes of a fragmented 1 GB heap, and a
    // decision then also waits for misses on its own input (see README "Benches").
    let withdrawals = common::withdrawals(WITHDRAWALS, &people, &mut Rng::new(0x0005_C02F), "wd");
    let scorer = common::warm_scorer(&people, &mut rng);
    assert_eq!(scorer.user_count(), users);
    println!(
        "{name}: state of {users} users built in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    // Expected decisions, computed once; score() never changes state, so they must repeat.
    let expected: Vec<(Tier, i64)> = withdrawals
        .iter()
        .map(|w| scorer.score(w))
        .map(|d| (d.tier, d.score))
        .collect();
    let mut tiers = [0usize; 4];
    for (tier, _) in &expected {
        tiers[*tier as usize] += 1;
    }
    println!("{name}: {users} users; {WITHDRAWALS} withdrawals; tiers allow/notice/warn/cool_off = {tiers:?}");
    assert!(
        tiers.iter().all(|&n| n > 0),
        "the generated withdrawals reach every tier"
    );

    c.bench_function(name, |b| {
        let mut i = 0;
        b.iter(|| {
            let w = &withdrawals[i % WITHDRAWALS];
            let d = scorer.score(black_box(w));
            assert_eq!((d.tier, d.score), expected[i % WITHDRAWALS]);
            i += 1;
        })
    });

    // p50 / p99: time single calls (Instant::now() itself costs ~20-30 ns and is included).
    let rounds = 10;
    let mut samples = Vec::with_capacity(rounds * WITHDRAWALS);
    for _ in 0..rounds {
        for (w, want) in withdrawals.iter().zip(&expected) {
            let started = Instant::now();
            let d = scorer.score(black_box(w));
            let took = started.elapsed();
            assert_eq!((d.tier, d.score), *want);
            samples.push(took.as_nanos() as u64);
        }
    }
    samples.sort_unstable();
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q) as usize];
    println!(
        "{name} per decision over {} timed calls: p50 {} ns, p90 {} ns, p99 {} ns, p99.9 {} ns, max {} ns",
        samples.len(),
        at(0.50),
        at(0.90),
        at(0.99),
        at(0.999),
        samples[samples.len() - 1]
    );
    let _ = NOW;
}

criterion_group! { name = benches; config = common::criterion(); targets = bench }
criterion_main!(benches);
