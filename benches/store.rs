//! `store/score/memory` vs `store/score/redis` vs `store/score/cluster`: the full
//! `Scorer::try_score` (features, every rule of the shipped `rules/`, the decision) on the same
//! warm state of 2k users, kept in process, in a `redis-server` on localhost, or in a local
//! three-node Redis Cluster (`redis+cluster://`), which the bench starts itself (free ports, no
//! persistence) and stops. Each decision is asserted equal across the two stores. Also prints
//! p50/p99 per decision over individually timed calls (criterion reports mean and median),
//! and the state's size in Redis (`INFO memory` used_memory, before and after).
//!
//! `cargo bench --bench store -- --warm-up-time 1 --measurement-time 3`

mod common;
#[path = "../tests/support/mod.rs"]
mod support;

use std::hint::black_box;
use std::time::Instant;

use common::Rng;
use criterion::{criterion_group, criterion_main, Criterion};
use riskgate::{RuleSet, Scorer, Store};

const USERS: usize = 2_000;
const WITHDRAWALS: usize = 2_000;
const TIMED: usize = 4_000;

fn used_memory(server: &support::redis_server::RedisServer) -> u64 {
    let mut con = server.connection().expect("connect");
    let info: String = redis::cmd("INFO")
        .arg("memory")
        .query(&mut con)
        .expect("INFO");
    info.lines()
        .find_map(|l| l.strip_prefix("used_memory:"))
        .and_then(|v| v.trim().parse().ok())
        .expect("used_memory")
}

fn bench(c: &mut Criterion) {
    let server = support::redis_server::RedisServer::start();
    let cluster = support::redis_server::RedisCluster::start();
    let rules = || RuleSet::load(common::rules_dir()).expect("the shipped rules load");
    let memory = Scorer::new(rules());
    let store = Store::open(&server.url(), "bench:").expect("open the bench redis");
    let redis = Scorer::with_store(rules(), store);
    let store = Store::open(&cluster.url(), "bench:").expect("open the bench cluster");
    let on_cluster = Scorer::with_store(rules(), store);
    let before = used_memory(&server);
    let mut rng = Rng::new(0x5703E);
    let people = common::users(USERS, &mut rng);
    let mut serial = 0;
    let mut events = 0;
    for user in &people {
        for event in common::history(user, &mut rng, &mut serial) {
            memory.try_record(&event).expect("record in memory");
            redis.try_record(&event).expect("record in redis");
            on_cluster
                .try_record(&event)
                .expect("record in the cluster");
            events += 1;
        }
    }
    let after = used_memory(&server);
    println!(
        "store: {USERS} users, {events} events recorded; Redis used_memory {} -> {} bytes: {} bytes per user",
        before,
        after,
        (after - before) / USERS as u64
    );
    let withdrawals = common::withdrawals(WITHDRAWALS, &people, &mut rng, "bench-wd");
    for w in &withdrawals {
        let m = memory.try_score(w).unwrap();
        for shared in [&redis, &on_cluster] {
            let r = shared.try_score(w).unwrap();
            assert_eq!(
                (m.tier, m.score, &m.hits),
                (r.tier, r.score, &r.hits),
                "{}",
                w.id
            );
        }
    }
    for (name, scorer) in [
        ("store/score/memory", &memory),
        ("store/score/redis", &redis),
        ("store/score/cluster", &on_cluster),
    ] {
        c.bench_function(name, |b| {
            let mut i = 0;
            b.iter(|| {
                let d = scorer.try_score(black_box(&withdrawals[i % WITHDRAWALS]));
                i += 1;
                d.expect("scored")
            })
        });
        let mut times: Vec<u128> = (0..TIMED)
            .map(|i| {
                let started = Instant::now();
                black_box(
                    scorer
                        .try_score(&withdrawals[i % WITHDRAWALS])
                        .expect("scored"),
                );
                started.elapsed().as_nanos()
            })
            .collect();
        times.sort_unstable();
        let pick = |q: f64| times[((times.len() as f64 * q) as usize).min(times.len() - 1)];
        println!(
            "{name}: p50 {:.1} us, p99 {:.1} us over {TIMED} single calls",
            pick(0.50) as f64 / 1e3,
            pick(0.99) as f64 / 1e3
        );
    }
    // Recording, through the store: one withdrawal per call, fresh ids.
    for (name, scorer) in [
        ("store/record/redis", &redis),
        ("store/record/cluster", &on_cluster),
    ] {
        let mut n = 0;
        let mut times: Vec<u128> = withdrawals
            .iter()
            .take(1_000)
            .map(|w| {
                let mut w = w.clone();
                n += 1;
                w.id = format!("bench-record-{n}");
                let event = riskgate::Event::Withdrawal(w);
                let started = Instant::now();
                scorer.try_record(&event).expect("recorded");
                started.elapsed().as_nanos()
            })
            .collect();
        times.sort_unstable();
        println!(
            "{name}: p50 {:.1} us, p99 {:.1} us over {} single calls",
            times[times.len() / 2] as f64 / 1e3,
            times[times.len() * 99 / 100] as f64 / 1e3,
            times.len()
        );
    }
}

criterion_group! {
    name = benches;
    config = common::criterion();
    targets = bench
}
criterion_main!(benches);
