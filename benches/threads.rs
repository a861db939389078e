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
    let expected: Vec<(Tier, i64)> = batch
        .iter()
        .map(|w| scorer.score(w))
        .map(|d| (d.tier, d.score))
        .collect();
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

    // Interleaved best-of-10 wall-clock per batch, and CPU seconds per batch: on a machine
    // where other processes hold the cores, two threads cannot show their scaling in wall time.
    let mut best = [f64::MAX; 2];
    let mut cpu = [f64::MAX; 2];
    for _ in 0..10 {
        for threads in 0..2 {
            let (c0, t0) = (common::cpu_seconds(), std::time::Instant::now());
            if threads == 0 {
                run(&scorer, &batch, &expected);
            } else {
                std::thread::scope(|s| {
                    s.spawn(|| run(&scorer, left, want_left));
                    s.spawn(|| run(&scorer, right, want_right));
                });
            }
            best[threads] = best[threads].min(t0.elapsed().as_secs_f64());
            if let (Some(a), Some(b)) = (c0, common::cpu_seconds()) {
                cpu[threads] = cpu[threads].min(b - a);
            }
        }
    }
    println!(
        "threads: best of 10 per batch of {BATCH}: 1 thread {:.1} ms ({:.0}/s), 2 threads {:.1} ms ({:.0}/s): {:.2}x; CPU per batch 1 thread {:.0} ms, 2 threads {:.0} ms; load average {}",
        best[0] * 1e3,
        BATCH as f64 / best[0],
        best[1] * 1e3,
        BATCH as f64 / best[1],
        best[0] / best[1],
        cpu[0] * 1e3,
        cpu[1] * 1e3,
        std::fs::read_to_string("/proc/loadavg").unwrap_or_default().split_whitespace().next().unwrap_or("?")
    );
}

criterion_group! { name = benches; config = common::criterion().measurement_time(std::time::Duration::from_secs(4)); targets = bench }
criterion_main!(benches);
