//! Snapshot size and save/load time for a synthetic state of one million users (issue 6).
//!
//! `cargo bench --bench snapshot` (set `RISKGATE_BENCH_USERS` for another size). The state is
//! built through `Scorer::observe`, as a live scorer builds it: each user has a device seen at
//! login, four completed withdrawals over 20 days (three to the user's own wallet, one to one of
//! 10,000 shared EVM addresses, so each shared address has about 100 payers) and, for one user
//! in ten, a password reset. The snapshot file goes to a temporary directory on the same disk
//! as the repository, so the fsync and rename are real. Loads go into a fresh scorer each time
//! (start-up); dropping the loaded state is not timed.
//!
//! `RISKGATE_BENCH_DATA` picks the strings (issue 14): `realistic` (the default) gives random
//! ids shaped like real ones, so that sizes say something about production files: user ids as
//! 9-digit exchange UIDs (Binance style; one in five a lower-case UUID), device ids as iOS
//! vendor ids (upper-case UUIDs), Android ids (16 lower-case hex digits) or lower-case UUIDs,
//! own wallets as TRON addresses (base58check, `T` and 33 characters) for half of the users and
//! EVM addresses for the other half (a third EIP-55 checksummed, a third upper-case hex, a
//! third lower-case; the state lower-cases them all), and 10,000 random shared EVM addresses.
//! `sequential` gives the older strings (`user-0000042`, `device-0000042-a`,
//! `TWallet0000042Own000…`, zero-padded `0x000…`), which compress far better than real ones.
//! `RISKGATE_BENCH_KEEP=FILE` copies the snapshot there (for a look with other tools).

mod common;

use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use riskgate::{Event, Scorer, Status, Timestamp, UserProfile, Withdrawal};
use sha2::{Digest, Sha256};

const DAY: i64 = 86_400_000_000;

fn users() -> usize {
    std::env::var("RISKGATE_BENCH_USERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000)
}

/// The strings of user `u` (see the module docs).
#[derive(Clone, Copy)]
enum Data {
    Sequential,
    Realistic,
}

impl Data {
    fn from_env() -> Data {
        match std::env::var("RISKGATE_BENCH_DATA").as_deref() {
            Ok("sequential") => Data::Sequential,
            Ok("realistic") | Err(_) => Data::Realistic,
            Ok(other) => panic!("RISKGATE_BENCH_DATA={other}: use realistic or sequential"),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Data::Sequential => "sequential",
            Data::Realistic => "realistic",
        }
    }

    fn user_id(self, u: usize) -> String {
        match self {
            Data::Sequential => format!("user-{u:07}"),
            // A permutation of 100,000,000..999,999,999 (the multiplier is prime to 9e8), so
            // ids are distinct and look random.
            Data::Realistic if u % 5 == 4 => uuid(random(u as u64, 1), false),
            Data::Realistic => {
                format!(
                    "{}",
                    100_000_000 + (u as u64 * 387_420_491 + 12_345) % 900_000_000
                )
            }
        }
    }

    fn device_id(self, u: usize) -> String {
        match self {
            Data::Sequential => format!("device-{u:07}-a"),
            Data::Realistic => match u % 10 {
                0..=4 => uuid(random(u as u64, 2), true),
                5..=7 => format!("{:016x}", random(u as u64, 2) as u64),
                _ => uuid(random(u as u64, 2), false),
            },
        }
    }

    /// The user's own wallet (three of the four withdrawals).
    fn own_wallet(self, u: usize) -> String {
        match self {
            Data::Sequential => format!("TWallet{u:07}Own000000000000000000000"),
            Data::Realistic => {
                let bytes = twenty(u as u64, 3);
                match u % 6 {
                    0..=2 => tron(&bytes),
                    3 => eip55(&bytes),
                    4 => format!("0x{}", hex(&bytes).to_ascii_uppercase()),
                    _ => format!("0x{}", hex(&bytes)),
                }
            }
        }
    }

    /// The user's login time (from the start; the reset is a day later) and its four
    /// withdrawals' times: sequential, at 2, 7, 12 and 17 days plus `u % 1000` seconds;
    /// realistic, a login in the first day and withdrawals at random milliseconds over days 2
    /// to 20, in order.
    fn times(self, u: usize) -> (i64, [i64; 4]) {
        let offset = (u as i64 % 1000) * 1_000_000;
        match self {
            Data::Sequential => (offset, [2, 7, 12, 17].map(|d| d * DAY + offset)),
            Data::Realistic => {
                let bits = random(u as u64, 5);
                let login = (bits as u64 % 86_400) as i64 * 1_000_000;
                let mut at = [0, 1, 2, 3].map(|k| {
                    let r = (bits >> (32 + 24 * k)) as u64 & 0xff_ffff;
                    2 * DAY + ((r as i64 * (18 * DAY / 1_000)) >> 24) * 1_000
                });
                at.sort_unstable();
                (login, at)
            }
        }
    }

    /// Withdrawal `k`'s amount: sequential, whole dollars from 100; realistic, random cents
    /// from 20 to about 5,000 dollars, more of them small (log-uniform).
    fn amount(self, u: usize, k: i64) -> f64 {
        match self {
            Data::Sequential => 100.0 + (u % 900) as f64 + k as f64 * 10.0,
            Data::Realistic => {
                let r = (random(u as u64, 6 + k as u64) as u64 >> 11) as f64 / (1u64 << 53) as f64;
                (2_000.0 * 250_f64.powf(r)).round() / 100.0
            }
        }
    }

    /// One of 10,000 addresses shared by about 100 users each.
    fn shared_wallet(self, u: usize) -> String {
        let n = (u * 7919) % 10_000;
        match self {
            Data::Sequential => format!("0x{n:040x}"),
            Data::Realistic => eip55(&twenty(n as u64, 4)),
        }
    }
}

/// 128 pseudo-random bits from `n` and a stream number (splitmix64 twice; deterministic, so
/// every run builds the same state).
fn random(n: u64, stream: u64) -> u128 {
    let mix = |mut z: u64| {
        z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    let a = mix(n ^ stream.rotate_left(40));
    let b = mix(a ^ stream);
    u128::from(a) << 64 | u128::from(b)
}

fn twenty(n: u64, stream: u64) -> [u8; 20] {
    let mut out = [0_u8; 20];
    out[..16].copy_from_slice(&random(n, stream).to_le_bytes());
    out[16..].copy_from_slice(&random(n, stream + 100).to_le_bytes()[..4]);
    out
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn uuid(bits: u128, upper: bool) -> String {
    let h = format!("{bits:032x}");
    let text = format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    );
    if upper {
        text.to_ascii_uppercase()
    } else {
        text
    }
}

/// `0x` and the address in EIP-55 mixed case (a hex letter is upper-case where the Keccak-256
/// of the lower-case hex has a nibble of 8 or more).
fn eip55(bytes: &[u8; 20]) -> String {
    use tiny_keccak::Hasher;
    let lower = hex(bytes);
    let mut hash = [0_u8; 32];
    let mut keccak = tiny_keccak::Keccak::v256();
    keccak.update(lower.as_bytes());
    keccak.finalize(&mut hash);
    let cased: String = lower
        .chars()
        .enumerate()
        .map(|(i, c)| {
            let nibble = (hash[i / 2] >> if i % 2 == 0 { 4 } else { 0 }) & 15;
            if nibble >= 8 {
                c.to_ascii_uppercase()
            } else {
                c
            }
        })
        .collect();
    format!("0x{cased}")
}

/// A TRON address: base58check of `0x41` and the 20 bytes.
fn tron(bytes: &[u8; 20]) -> String {
    let mut raw = Vec::with_capacity(25);
    raw.push(0x41);
    raw.extend_from_slice(bytes);
    let check = Sha256::digest(Sha256::digest(&raw));
    raw.extend_from_slice(&check[..4]);
    bs58::encode(raw).into_string()
}

fn synthetic_scorer(users: usize, data: Data) -> Scorer {
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
        let user_id = data.user_id(u);
        let device_id = data.device_id(u);
        let (offset, withdrawn) = data.times(u);
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
                data.shared_wallet(u)
            } else {
                data.own_wallet(u)
            };
            scorer.observe_withdrawal(&Withdrawal {
                id: format!("w-{u}-{k}"),
                ts: Timestamp::from_micros(start + withdrawn[k as usize]),
                user_id: user_id.clone(),
                asset: "USDT".into(),
                network: "TRON".into(),
                amount_usd: data.amount(u, k),
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
    let data = Data::from_env();
    for u in [0, 3, 4, 5, 8] {
        eprintln!(
            "user {u}: {} device {} wallet {} shared {}",
            data.user_id(u),
            data.device_id(u),
            data.own_wallet(u),
            data.shared_wallet(u)
        );
    }
    let built = Instant::now();
    let scorer = synthetic_scorer(users, data);
    eprintln!(
        "built a state of {} users ({} strings) in {:.1?}",
        scorer.user_count(),
        data.name(),
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

    if let Ok(keep) = std::env::var("RISKGATE_BENCH_KEEP") {
        // A copy for inspection with other tools (compressors, a hex dump).
        std::fs::copy(&path, &keep).expect("copy the snapshot");
    }

    cpu_times(&scorer, &path);
    pauses(&scorer, &path, data);

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

/// The on-CPU time of the whole process, threads that ended included, in nanoseconds (Linux:
/// user and system time in `/proc/self/stat`, in clock ticks of 10 ms): a save or load that
/// runs on several threads costs this much of the machine.
fn process_cpu_ns() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let mut fields = stat.rsplit_once(')')?.1.split_whitespace().skip(11);
    let user: u64 = fields.next()?.parse().ok()?;
    let system: u64 = fields.next()?.parse().ok()?;
    Some((user + system) * 10_000_000)
}

/// Save and load timed by the thread's on-CPU time rather than the wall clock, five times
/// each, medians printed: on a machine shared with other work the wall-clock figures above
/// grow with the load, these much less (waiting for a core or for the disk is not counted;
/// cache misses caused by other processes still are).
fn cpu_times(scorer: &Scorer, path: &std::path::Path) {
    let Some(_) = common::thread_cpu_ns() else {
        return;
    };
    let median = |mut runs: Vec<u64>| {
        runs.sort_unstable();
        runs[runs.len() / 2] as f64 / 1e6
    };
    let (mut saves, mut loads) = (Vec::new(), Vec::new());
    let (mut process_saves, mut process_loads) = (Vec::new(), Vec::new());
    let process = || process_cpu_ns().unwrap_or(0);
    for _ in 0..5 {
        let (before, process_before) = (common::thread_cpu_ns().unwrap_or(0), process());
        scorer.save_state(path).expect("save");
        saves.push(common::thread_cpu_ns().unwrap_or(0) - before);
        process_saves.push(process() - process_before);
        let target = Scorer::new(
            riskgate::RuleSet::load(concat!(env!("CARGO_MANIFEST_DIR"), "/rules")).expect("rules"),
        );
        let (before, process_before) = (common::thread_cpu_ns().unwrap_or(0), process());
        target.load_state(path).expect("load");
        loads.push(common::thread_cpu_ns().unwrap_or(0) - before);
        process_loads.push(process() - process_before);
        drop(target);
    }
    eprintln!(
        "on-CPU time of the saving/loading thread, median of 5: save {:.0} ms, load {:.0} ms",
        median(saves),
        median(loads)
    );
    eprintln!(
        "on-CPU time of the process (all its threads), median of 5: save {:.0} ms, load {:.0} ms",
        median(process_saves),
        median(process_loads)
    );
}

/// How long single `score` + `observe` calls take on another thread while a save runs, against
/// the same loop with no save: the "moment" a save may hold scoring up. Printed, not asserted.
fn pauses(scorer: &Scorer, path: &std::path::Path, data: Data) {
    let users = scorer.user_count().max(1);
    let run = |saving: bool| {
        let done = std::sync::atomic::AtomicBool::new(false);
        let mut latencies = std::thread::scope(|scope| {
            let worker = scope.spawn(|| {
                let mut latencies = Vec::new();
                let mut i = 0_usize;
                while !done.load(std::sync::atomic::Ordering::Relaxed) || latencies.len() < 100_000
                {
                    let w = withdrawal(data, (i * 7_919) % users, i);
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
fn withdrawal(data: Data, u: usize, i: usize) -> Withdrawal {
    let start = 1_790_000_000_000_000_i64 + 19 * DAY;
    Withdrawal {
        id: format!("p-{i}"),
        ts: Timestamp::from_micros(start + i as i64 * 1_000),
        user_id: data.user_id(u),
        asset: "USDT".into(),
        network: "TRON".into(),
        amount_usd: 250.0,
        destination: data.own_wallet(u),
        user: UserProfile {
            country: "HK".into(),
            created_at: Timestamp::from_micros(start - 400 * DAY),
            locale: "zh-HK".into(),
            referral: "organic".into(),
        },
        device_id: Some(data.device_id(u)),
        status: Status::Completed,
        label: None,
    }
}

criterion_group!(benches, snapshot);
criterion_main!(benches);
