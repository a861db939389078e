//! `threads`: throughput of one and of two threads sharing one `Scorer` (warm state of 20k
//! users with history, the shipped `rules/`), scoring the same batch of 20k varied withdrawals
//! (split in halves between the two threads). Every decision is asserted against a first pass.

mod common;

use std::hint::black_box;

use common::Rng;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use riskgate::{Scorer, Tier, Withdrawal};

const USERS: usize = 20_000;
const BATCH: usize = 20_000;

fn run(scorer: &Scorer, batch: &[Withdrawal], expected: &[(Tier, i64)]) {
    for (w, want) in batch.iter().zip(expected) {
        let d = scorer.score(black_box(w));
        assert_eq!((d.tier, d.score), *want);
    }
}

fn bench(c: &mut Criterion) {
    let mut rng = Rng::new(0x7_4EAD);
    let users = common::users(USERS, &mut rng);
    let scorer = common::warm_scorer(&users, &mut rng);
    let batch = common::withdrawals(BATCH, &users, &mut rng, "th");
    let expected: Vec<(Tier, i64)> = batch.iter().map(|w| scorer.score(w)).map(|d| (d.tier, d.score)).collect();
    let (left, right) = batch.split_at(BATCH / 2);
    let (want_left, want_right) = expected.split_at(BATCH / 2);

    let mut group = c.benchmark_group("threads");
    group.throughput(Throughput::Elements(BATCH as u64));
    group.bench_function("1", |b| b.iter(|| run(&scorer, &batch, &expected)));
    group.bench_function("2", |b| {
        b.iter(|| {
            std::thread::scope(|s| {
                s.spawn(|| run(&scorer, left, want_left));
                s.spawn(|| run(&scorer, right, want_right));
            })
        })
    });
    group.finish();
}

criterion_group! { name = benches; config = common::criterion().measurement_time(std::time::Duration::from_secs(4)); targets = bench }
criterion_main!(benches);
