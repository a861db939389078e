//! Contract section 5, `--store redis://...`: feature state and processed withdrawal ids in a
//! Redis server shared by several riskgate processes, which together decide exactly as one
//! process that saw all their events in the same order. Every test starts its own
//! `redis-server` on a free local port (see `support::redis_server`) and stops it.
#![cfg(feature = "redis")]

mod support;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

use riskgate::{ErrorKind, Event, Scorer, Status, Store};
use support::contract::*;
use support::redis_server::{RedisCluster, RedisServer, TlsFiles};

fn riskgate() -> Command {
    Command::new(env!("CARGO_BIN_EXE_riskgate"))
}

/// A prefix no other test of this process uses.
fn fresh_prefix() -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "t{}-{}:",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// `riskgate score --rules rules FILE` with extra arguments: (exit code, stdout).
fn score_file(file: &Path, extra: &[&str]) -> (i32, String) {
    let out = riskgate()
        .arg("score")
        .arg("--rules")
        .arg(repo().join("rules"))
        .args(extra)
        .arg(file)
        .output()
        .expect("run riskgate");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).expect("utf-8 output"),
    )
}

fn streams() -> Vec<PathBuf> {
    let mut files = Vec::new();
    for dir in [repo().join("fixtures")].into_iter().chain(
        std::fs::read_dir(repo().join("rules"))
            .unwrap()
            .filter_map(|e| {
                let path = e.ok()?.path().join("tests");
                path.is_dir().then_some(path)
            }),
    ) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "jsonl") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

/// A generated, labeled stream (the `gen` command), as lines.
fn generated(users: u32, days: u32, seed: u64) -> Vec<String> {
    let out = riskgate()
        .args([
            "gen",
            "--users",
            &users.to_string(),
            "--days",
            &days.to_string(),
        ])
        .args(["--seed", &seed.to_string()])
        .output()
        .expect("run riskgate gen");
    assert!(out.status.success());
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

#[test]
fn every_fixture_and_pack_test_stream_decides_byte_for_byte_as_in_memory() {
    let server = RedisServer::start();
    let url = server.url();
    let files = streams();
    assert!(files.len() >= 7, "{files:?}");
    for file in files {
        let memory = score_file(&file, &[]);
        let prefix = fresh_prefix();
        let shared = score_file(&file, &["--store", &url, "--store-prefix", &prefix]);
        assert_eq!(memory, shared, "{}", file.display());
    }
}

/// Splits a stream into chunks of about `size` lines, each ending on a withdrawal.
fn chunks_ending_on_withdrawals(lines: &[String], size: usize) -> Vec<Vec<String>> {
    let mut chunks = vec![Vec::new()];
    for line in lines {
        let current = chunks.last_mut().unwrap();
        current.push(line.clone());
        if current.len() >= size && line.contains("\"withdrawal\"") {
            chunks.push(Vec::new());
        }
    }
    chunks.retain(|c| !c.is_empty());
    chunks
}

/// Waits until the withdrawal `line` is recorded completely: its id is claimed before its user
/// and its destination are written (other slots, another step), so a completed one is
/// recorded once its user lists its id and its destination holds its time.
fn wait_recorded(con: &mut redis::Connection, prefix: &str, line: &str) {
    let Event::Withdrawal(w) = Event::parse_line(line).unwrap() else {
        panic!("not a withdrawal: {line}")
    };
    let destination = riskgate::normalize_address(&w.destination);
    let ts = w.ts.as_micros().to_string();
    let done = |con: &mut redis::Connection| match w.status {
        Status::Cancelled => redis::cmd("EXISTS")
            .arg(format!("{prefix}{{w:{}}}", w.id))
            .query::<bool>(con)
            .unwrap(),
        Status::Completed => {
            let applied: Option<f64> = redis::cmd("ZSCORE")
                .arg(format!("{prefix}{{u:{}}}:w", w.user_id))
                .arg(&w.id)
                .query(con)
                .unwrap();
            let times: Option<String> = redis::cmd("HGET")
                .arg(format!("{prefix}{{d:{destination}}}"))
                .arg(&w.user_id)
                .query(con)
                .unwrap();
            applied.is_some() && times.is_some_and(|t| t.split(',').any(|t| t == ts))
        }
    };
    while !done(con) {
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
}

/// What one in-process `riskgate score` answers for the whole stream (read from a file: the
/// output of a long stream would fill a pipe the test is still writing to).
fn memory_decisions(lines: &[String]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("stream.jsonl");
    std::fs::write(&file, lines.join("\n") + "\n").unwrap();
    let (code, out) = score_file(&file, &[]);
    assert_eq!(code, 0);
    out
}

#[test]
fn separate_processes_on_consecutive_chunks_decide_as_one_process() {
    let server = RedisServer::start();
    chunks_in_separate_processes_decide_as_one(&server.url());
}

#[test]
fn on_a_cluster_separate_processes_on_consecutive_chunks_decide_as_one_process() {
    let cluster = RedisCluster::start();
    chunks_in_separate_processes_decide_as_one(&cluster.url());
    // Every kind of key was written, spread over the nodes.
    let keys = cluster.keys();
    for kind in ["{u:", "{d:", "{w:", "{g:start}"] {
        assert!(keys.iter().any(|k| k.contains(kind)), "no {kind} key");
    }
    assert!(cluster.nodes.iter().all(|n| !n.keys().is_empty()));
}

fn chunks_in_separate_processes_decide_as_one(url: &str) {
    let lines = generated(150, 20, 3);
    let expected = memory_decisions(&lines);
    let prefix = fresh_prefix();
    let mut got = String::new();
    for chunk in lines.chunks(97) {
        let (code, out, err) = cli(
            &[
                "score",
                "--rules",
                repo().join("rules").to_str().unwrap(),
                "--store",
                url,
                "--store-prefix",
                &prefix,
            ],
            Some(&(chunk.join("\n") + "\n")),
        );
        assert_eq!(code, 0, "{err}");
        got.push_str(&out);
    }
    assert_eq!(got, expected);
}

#[test]
fn two_long_running_processes_on_alternating_chunks_decide_as_one_process() {
    let server = RedisServer::start();
    let lines = generated(150, 20, 7);
    let expected = memory_decisions(&lines);
    let prefix = fresh_prefix();
    let spawn = || {
        riskgate()
            .args(["score", "--rules"])
            .arg(repo().join("rules"))
            .args(["--store", &server.url(), "--store-prefix", &prefix])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn riskgate score")
    };
    let mut children = [spawn(), spawn()];
    let mut inputs: Vec<_> = children
        .iter_mut()
        .map(|c| c.stdin.take().unwrap())
        .collect();
    // Read each process's output as it comes, so that a full pipe never blocks it.
    let readers: Vec<_> = children
        .iter_mut()
        .map(|c| {
            let mut stdout = c.stdout.take().unwrap();
            std::thread::spawn(move || {
                let mut text = String::new();
                std::io::Read::read_to_string(&mut stdout, &mut text).unwrap();
                text
            })
        })
        .collect();
    let mut con = server.connection().unwrap();
    let chunks = chunks_ending_on_withdrawals(&lines, 40);
    assert!(chunks.len() >= 10);
    let mut counts = [Vec::new(), Vec::new()];
    for (n, chunk) in chunks.iter().enumerate() {
        let who = n % 2;
        for line in chunk {
            writeln!(inputs[who], "{line}").unwrap();
        }
        inputs[who].flush().unwrap();
        // The chunk ends on a withdrawal: once it is recorded, the whole chunk was and the
        // other process may go on.
        wait_recorded(&mut con, &prefix, chunk.last().unwrap());
        counts[who].push(
            chunk
                .iter()
                .filter(|l| l.contains("\"withdrawal\""))
                .count(),
        );
    }
    drop(inputs);
    let outputs: Vec<String> = readers.into_iter().map(|r| r.join().unwrap()).collect();
    for mut child in children {
        assert!(child.wait().unwrap().success());
    }
    // Put the decisions back in stream order: chunk n came from process n % 2.
    let mut per_process: Vec<std::vec::IntoIter<String>> = outputs
        .iter()
        .map(|o| o.lines().map(str::to_owned).collect::<Vec<_>>().into_iter())
        .collect();
    let mut taken = [0, 0];
    let mut got = String::new();
    for n in 0..chunks.len() {
        let who = n % 2;
        for _ in 0..counts[who][taken[who]] {
            got.push_str(&per_process[who].next().unwrap());
            got.push('\n');
        }
        taken[who] += 1;
    }
    assert_eq!(got, expected);
}

const WORKER_USERS: usize = 4;
const WORKER_EACH: usize = 30;
const CLAIMS: usize = 20;

/// Run by [`two_processes_with_two_threads_each_lose_no_update`] in child processes (ignored
/// otherwise): two threads recording the same users and destination at once, and trying to
/// record the same withdrawal ids; prints how many of those it got.
#[test]
#[ignore = "a worker process of two_processes_with_two_threads_each_lose_no_update"]
fn concurrency_worker() {
    let url = std::env::var("RISKGATE_TEST_WORKER_URL").expect("run by the concurrency test");
    let prefix = std::env::var("RISKGATE_TEST_WORKER_PREFIX").unwrap();
    let name = std::env::var("RISKGATE_TEST_WORKER_NAME").unwrap();
    let scorer = Scorer::with_store(Rules::new().load(), Store::open(&url, &prefix).unwrap());
    let claimed = AtomicU32::new(0);
    std::thread::scope(|s| {
        for thread in 0..2 {
            let (scorer, claimed, name) = (&scorer, &claimed, &name);
            s.spawn(move || {
                for i in 0..WORKER_EACH {
                    for u in 0..WORKER_USERS {
                        let id = format!("{name}-{thread}-{u}-{i}");
                        let w = wd(
                            &id,
                            &format!("u{u}"),
                            &at(i as i64),
                            10.0 + i as f64,
                            "dest-shared",
                        );
                        scorer.try_record(&w.event()).unwrap();
                    }
                    if i < CLAIMS {
                        let w = wd(
                            &format!("claim-{i}"),
                            "claimer",
                            &at(i as i64),
                            1.0,
                            "claim-dest",
                        );
                        match scorer.try_record(&w.event()) {
                            Ok(()) => {
                                claimed.fetch_add(1, Ordering::Relaxed);
                            }
                            Err(e) => {
                                assert!(matches!(e.kind(), ErrorKind::Duplicate { .. }), "{e}")
                            }
                        }
                    }
                }
            });
        }
    });
    println!("claimed {}", claimed.load(Ordering::Relaxed));
}

#[test]
fn two_processes_with_two_threads_each_lose_no_update() {
    let server = RedisServer::start();
    two_processes_with_two_threads_each(&server.url());
}

#[test]
fn on_a_cluster_two_processes_with_two_threads_each_lose_no_update() {
    let cluster = RedisCluster::start();
    two_processes_with_two_threads_each(&cluster.url());
}

fn two_processes_with_two_threads_each(url: &str) {
    let prefix = fresh_prefix();
    let workers: Vec<_> = ["a", "b"]
        .iter()
        .map(|name| {
            Command::new(std::env::current_exe().unwrap())
                .args([
                    "--exact",
                    "concurrency_worker",
                    "--ignored",
                    "--nocapture",
                    "--test-threads",
                    "1",
                ])
                .env("RISKGATE_TEST_WORKER_URL", url)
                .env("RISKGATE_TEST_WORKER_PREFIX", &prefix)
                .env("RISKGATE_TEST_WORKER_NAME", name)
                .stdout(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut claimed = 0;
    for worker in workers {
        let out = worker.wait_with_output().unwrap();
        assert!(out.status.success());
        let text = String::from_utf8(out.stdout).unwrap();
        // libtest may print "test concurrency_worker ... " on the same line first.
        let report = text.split("claimed ").nth(1).expect("worker report");
        let digits: String = report.chars().take_while(char::is_ascii_digit).collect();
        claimed += digits.parse::<usize>().unwrap();
    }
    // Every contested id was recorded exactly once, by one process or the other.
    assert_eq!(claimed, CLAIMS);
    let scorer = Scorer::with_store(Rules::new().load(), Store::open(url, &prefix).unwrap());
    let recorded = 2 * 2 * WORKER_EACH;
    let amounts: f64 = 4.0 * (0..WORKER_EACH).map(|i| 10.0 + i as f64).sum::<f64>();
    for u in 0..WORKER_USERS {
        let tx = scorer.tx(&wd("probe", &format!("u{u}"), &at(HOUR), 1.0, "dest-shared").w());
        assert_eq!(tx.features.prior_withdrawals, recorded as i64);
        assert_eq!(tx.features.withdrawals_24h, recorded as i64);
        assert_eq!(tx.features.amount_usd_24h, amounts);
        assert_eq!(tx.features.dest_users_24h, WORKER_USERS as i64 - 1);
    }
    let tx = scorer.tx(&wd("probe", "newcomer", &at(HOUR), 1.0, "dest-shared").w());
    assert_eq!(tx.features.dest_users_30d, WORKER_USERS as i64);
    let tx = scorer.tx(&wd("probe", "claimer", &at(HOUR), 1.0, "claim-dest").w());
    assert_eq!(tx.features.prior_withdrawals, CLAIMS as i64);
}

#[test]
fn a_store_lost_mid_stream_stops_score_with_no_decision_after_it() {
    let mut server = RedisServer::start();
    let prefix = fresh_prefix();
    let mut child = riskgate()
        .args(["score", "--rules"])
        .arg(repo().join("rules"))
        .args(["--store", &server.url(), "--store-prefix", &prefix])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    for i in 0..5 {
        writeln!(
            input,
            "{}",
            wd(&format!("before-{i}"), "u1", &at(i), 10.0, "d1").line()
        )
        .unwrap();
    }
    input.flush().unwrap();
    let mut con = server.connection().unwrap();
    wait_recorded(
        &mut con,
        &prefix,
        &wd("before-4", "u1", &at(4), 10.0, "d1").line(),
    );
    server.kill();
    for i in 0..5 {
        // The process may already have stopped: a broken pipe is expected then.
        let _ = writeln!(
            input,
            "{}",
            wd(&format!("after-{i}"), "u1", &at(100 + i), 10.0, "d1").line()
        );
    }
    drop(input);
    let out = child.wait_with_output().unwrap();
    assert_ne!(out.status.code(), Some(0));
    let stdout = String::from_utf8(out.stdout).unwrap();
    let ids: Vec<String> = json_lines(&stdout)
        .iter()
        .map(|d| d["id"].as_str().unwrap_or("(not a decision)").to_owned())
        .collect();
    assert_eq!(
        ids,
        (0..5).map(|i| format!("before-{i}")).collect::<Vec<_>>()
    );
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("state store"), "{stderr}");
}

#[test]
fn a_store_unreachable_at_start_is_an_error() {
    let port = support::redis_server::free_port();
    let (code, out, err) = cli(
        &[
            "score",
            "--rules",
            repo().join("rules").to_str().unwrap(),
            "--store",
            &format!("redis://127.0.0.1:{port}"),
        ],
        Some(&(wd("w1", "u1", &at(0), 10.0, "d1").line() + "\n")),
    );
    assert_ne!(code, 0);
    assert_eq!(out, "");
    assert!(err.contains("cannot connect"), "{err}");
    let e = Store::open(&format!("redis://127.0.0.1:{port}"), "p:").unwrap_err();
    assert!(matches!(e.kind(), ErrorKind::Store { .. }));
    // TLS and a cluster too: attempted, and said so.
    let e = Store::open(&format!("rediss://127.0.0.1:{port}"), "p:").unwrap_err();
    assert!(e.to_string().contains("cannot connect over TLS"), "{e}");
    let e = Store::open(&format!("redis+cluster://127.0.0.1:{port}"), "p:").unwrap_err();
    assert!(matches!(e.kind(), ErrorKind::Store { .. }), "{e}");
    // A snapshot file belongs to the memory store.
    let (code, _, err) = cli(
        &[
            "score",
            "--rules",
            repo().join("rules").to_str().unwrap(),
            "--store",
            &format!("redis://127.0.0.1:{port}"),
            "--state",
            "x.bin",
        ],
        Some(""),
    );
    assert_eq!(code, 2);
    assert!(err.contains("store-import"), "{err}");
}

#[test]
fn every_key_begins_with_the_prefix_exactly_as_given() {
    let server = RedisServer::start();
    let prefix = "acme/riskgate v2:";
    let file = repo().join("fixtures/hk-sample.jsonl");
    let (code, _) = score_file(&file, &["--store", &server.url(), "--store-prefix", prefix]);
    assert_eq!(code, 0);
    let keys = server.keys();
    assert!(keys.len() > 10, "{keys:?}");
    for key in &keys {
        assert!(key.starts_with(prefix), "{key}");
    }
    // Every key that decides a feature carries the wall-clock safety net, longer than the
    // 400-day horizon; a user's recently applied withdrawal ids (`{u:USER}:w`, which only
    // keep a resumed record from applying twice) live a day; the one key holding the earliest
    // event (`{g:start}`, written only when an event is earlier) never expires: expiring it
    // would put the rules back in cold-start mode.
    let mut con = server.connection().unwrap();
    for key in &keys {
        let ttl: i64 = redis::cmd("TTL").arg(key).query(&mut con).unwrap();
        if key.ends_with(":w") && key[prefix.len()..].starts_with("{u:") {
            assert!(ttl > 0 && ttl <= 86_400, "{key}: TTL {ttl}");
        } else if &key[prefix.len()..] == "{g:start}" {
            assert_eq!(ttl, -1, "{key}: TTL {ttl}");
        } else {
            assert!(ttl > 400 * 86_400, "{key}: TTL {ttl}");
        }
    }
    for kind in ["{u:", "{d:", "{w:"] {
        assert!(
            keys.iter().any(|k| k[prefix.len()..].starts_with(kind)),
            "no {kind} key"
        );
    }
    // Another prefix is another, empty, state: the same stream decides as on a fresh store.
    let (_, first) = score_file(
        &file,
        &["--store", &server.url(), "--store-prefix", "other:"],
    );
    assert_eq!(first, score_file(&file, &[]).1);
}

#[test]
fn a_withdrawal_id_recorded_by_another_process_is_an_invalid_line() {
    let server = RedisServer::start();
    let prefix = fresh_prefix();
    let rules = repo().join("rules");
    let args = [
        "score",
        "--rules",
        rules.to_str().unwrap(),
        "--store",
        &server.url(),
        "--store-prefix",
        &prefix,
    ];
    let first = wd("w1", "u1", &at(0), 10.0, "d1").line() + "\n";
    let (code, out, _) = cli(&args, Some(&first));
    assert_eq!((code, json_lines(&out).len()), (0, 1));
    // Another user, the same id: refused, and u2 has no history afterwards.
    let again = format!(
        "{}\n{}\n",
        wd("w1", "u2", &at(10), 10.0, "d1").line(),
        wd("w2", "u2", &at(20), 10.0, "d1").line()
    );
    let (code, out, _) = cli(&args, Some(&again));
    assert_eq!(code, 1);
    let lines = json_lines(&out);
    assert_eq!(lines[0]["line"], 1);
    assert!(lines[0]["error"].as_str().unwrap().contains("w1"));
    assert_eq!(lines[1]["id"], "w2");
    let scorer = Scorer::with_store(
        Rules::new().load(),
        Store::open(&server.url(), &prefix).unwrap(),
    );
    let tx = scorer.tx(&wd("probe", "u2", &at(30), 1.0, "d1").w());
    assert_eq!(tx.features.prior_withdrawals, 1); // w2 only
    assert_eq!(tx.features.dest_users_24h, 1); // u1
}

#[test]
fn the_library_api_reports_duplicates_and_a_failing_store() {
    let mut server = RedisServer::start();
    let scorer = Scorer::with_store(
        Rules::new().load(),
        Store::open(&server.url(), &fresh_prefix()).unwrap(),
    );
    scorer.check_store().unwrap();
    let w = wd("w1", "u1", &at(0), 10.0, "d1");
    assert!(scorer.try_score(&w.w()).is_ok());
    scorer.try_record(&w.event()).unwrap();
    let again = scorer.try_score(&w.w()).unwrap_err();
    assert!(
        matches!(again.kind(), ErrorKind::Duplicate { .. }),
        "{again}"
    );
    let again = scorer.try_record(&w.event()).unwrap_err();
    assert!(
        matches!(again.kind(), ErrorKind::Duplicate { .. }),
        "{again}"
    );
    // A cancelled withdrawal's id is recorded too.
    let c = wd("c1", "u1", &at(1), 10.0, "d1").cancelled();
    scorer.try_record(&c.event()).unwrap();
    assert!(scorer.try_record(&c.event()).is_err());
    server.kill();
    let e = scorer.check_store().unwrap_err();
    assert!(matches!(e.kind(), ErrorKind::Store { .. }), "{e}");
    let e = scorer
        .try_score(&wd("w2", "u1", &at(2), 10.0, "d1").w())
        .unwrap_err();
    assert!(matches!(e.kind(), ErrorKind::Store { .. }), "{e}");
    // The infallible API never decides on empty state: it fails closed and keeps the error.
    let d = scorer.score(&wd("w3", "u1", &at(3), 10.0, "d1").w());
    assert_eq!(d.tier, riskgate::Tier::CoolOff);
    assert!(scorer.take_store_failure().is_some());
    // So does the buffered one, with the same decision (the store's message aside).
    let w = wd("w4", "u1", &at(4), 10.0, "d1").w();
    let mut owned = scorer.score(&w);
    assert!(scorer.take_store_failure().is_some());
    let mut buf = riskgate::DecisionBuf::new();
    let mut buffered = scorer.score_into(&w, &mut buf).to_decision();
    assert!(scorer.take_store_failure().is_some());
    for d in [&mut owned, &mut buffered] {
        assert_eq!(d.errors.len(), 1);
        assert_eq!(&*d.errors[0].rule, "store");
        d.errors.clear();
    }
    assert_eq!(buffered, owned);
    // Cool-off (never held out) with the policy's default warning.
    assert!(owned.cool_off_hours.is_some() && !owned.holdout && owned.withheld.is_none());
    assert_eq!(&*owned.warning.as_ref().expect("a warning").key, "default");
}

#[test]
fn the_memory_store_reports_duplicates_through_the_same_api() {
    let scorer = Scorer::with_store(
        Rules::new().load(),
        Store::open("memory", "ignored").unwrap(),
    );
    let w = wd("w1", "u1", &at(0), 10.0, "d1");
    scorer.try_record(&w.event()).unwrap();
    assert!(matches!(
        scorer.try_score(&w.w()).unwrap_err().kind(),
        ErrorKind::Duplicate { .. }
    ));
    assert!(matches!(
        scorer.try_record(&w.event()).unwrap_err().kind(),
        ErrorKind::Duplicate { .. }
    ));
    let tx = scorer.tx(&wd("w2", "u1", &at(1), 1.0, "d1").w());
    assert_eq!(tx.features.prior_withdrawals, 1);
}

#[test]
fn replay_through_the_shared_store_reports_as_in_memory() {
    let server = RedisServer::start();
    let rules = repo().join("rules");
    let file = repo().join("fixtures/hk-sample.jsonl");
    let run = |extra: &[&str]| {
        let out = riskgate()
            .args(["replay", "--json", "--no-timing", "--rules"])
            .arg(&rules)
            .args(extra)
            .arg(&file)
            .output()
            .unwrap();
        (out.status.code(), String::from_utf8(out.stdout).unwrap())
    };
    let memory = run(&[]);
    assert_eq!(memory.0, Some(0));
    assert_eq!(
        run(&["--store", &server.url(), "--store-prefix", &fresh_prefix()]),
        memory
    );
}

#[test]
fn a_snapshot_moved_into_redis_continues_the_stream_as_one_process() {
    let server = RedisServer::start();
    let lines = generated(120, 20, 11);
    let expected = memory_decisions(&lines);
    let (first, second) = lines.split_at(lines.len() / 2);
    let dir = tempfile::tempdir().unwrap();
    let (a, b, state) = (
        dir.path().join("a.jsonl"),
        dir.path().join("b.jsonl"),
        dir.path().join("state.bin"),
    );
    std::fs::write(&a, first.join("\n") + "\n").unwrap();
    std::fs::write(&b, second.join("\n") + "\n").unwrap();
    let (code, mut got) = score_file(&a, &["--state", state.to_str().unwrap()]);
    assert_eq!(code, 0);
    let prefix = fresh_prefix();
    let import = |prefix: &str| {
        riskgate()
            .args(["store-import", "--state"])
            .arg(&state)
            .args(["--store", &server.url(), "--store-prefix", prefix])
            .output()
            .unwrap()
    };
    let out = import(&prefix);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8(out.stdout)
        .unwrap()
        .starts_with("imported "));
    // A second import into the same prefix is refused: it would mix two states.
    assert!(!import(&prefix).status.success());
    let (code, rest) = score_file(&b, &["--store", &server.url(), "--store-prefix", &prefix]);
    assert_eq!(code, 0);
    got.push_str(&rest);
    assert_eq!(got, expected);
    // The withdrawal ids came along: the first half again is all duplicates.
    let (code, again) = score_file(&a, &["--store", &server.url(), "--store-prefix", &prefix]);
    assert_eq!(code, 1);
    assert!(json_lines(&again)
        .iter()
        .all(|l| l.get("error").is_some() || l.get("id").is_none()));
}

#[test]
fn rediss_verifies_the_server_certificate_and_decides_as_in_memory() {
    let dir = tempfile::tempdir().unwrap();
    let tls = TlsFiles::generate(dir.path(), "good");
    let stranger = TlsFiles::generate(dir.path(), "stranger");
    let server = RedisServer::start_tls(&tls);
    let file = repo().join("fixtures/hk-sample.jsonl");
    let run = |ca: &Path| {
        let out = riskgate()
            .arg("score")
            .arg("--rules")
            .arg(repo().join("rules"))
            .args([
                "--store",
                &server.tls_url(),
                "--store-prefix",
                &fresh_prefix(),
            ])
            .arg(&file)
            .env("SSL_CERT_FILE", ca)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8(out.stdout).unwrap(),
            String::from_utf8(out.stderr).unwrap(),
        )
    };
    let (code, out, err) = run(&tls.ca);
    assert_eq!(
        (code, out.as_str()),
        (Some(0), score_file(&file, &[]).1.as_str()),
        "{err}"
    );
    // It went over TLS: the keys are in the server.
    assert!(server.keys().iter().any(|k| k.contains("{u:")));
    // A server whose certificate no trusted CA signed: refused before any decision.
    let (code, out, err) = run(&stranger.ca);
    assert_eq!((code, out.as_str()), (Some(2), ""));
    assert!(err.contains("TLS") && err.contains("certificate"), "{err}");
}

/// A record interrupted between its steps (the id claimed, the user or the destination not yet
/// written), as a crash would leave it, is finished by the same withdrawal sent again, never
/// applied twice; a claim by other content, or too old to resume, is a duplicate.
#[test]
fn a_record_interrupted_between_steps_is_finished_by_a_retry_and_never_applied_twice() {
    let server = RedisServer::start();
    let mut con = server.connection().unwrap();
    let open = |prefix: &str| {
        Scorer::with_store(
            Rules::new().load(),
            Store::open(&server.url(), prefix).unwrap(),
        )
    };
    let w = wd("w1", "u1", &at(0), 10.0, "d1");
    let probe = |scorer: &Scorer| {
        let mine = scorer
            .tx(&wd("probe", "u1", &at(60), 1.0, "d1").w())
            .features;
        let other = scorer
            .tx(&wd("probe", "u2", &at(60), 1.0, "d1").w())
            .features;
        (mine.prior_withdrawals, other.dest_users_24h)
    };
    // The claim a completed record leaves on its id (`c:DIGEST:SECONDS`).
    let done = fresh_prefix();
    open(&done).try_record(&w.event()).unwrap();
    let claim: String = redis::cmd("GET")
        .arg(format!("{done}{{w:w1}}"))
        .query(&mut con)
        .unwrap();
    let set = |con: &mut redis::Connection, key: String, value: &str| {
        redis::cmd("SET")
            .arg(key)
            .arg(value)
            .query::<()>(con)
            .unwrap()
    };

    // Stopped after the claim: the retry applies the user and the destination, once.
    let prefix = fresh_prefix();
    set(&mut con, format!("{prefix}{{w:w1}}"), &claim);
    let scorer = open(&prefix);
    assert_eq!(probe(&scorer), (0, 0));
    scorer.try_record(&w.event()).unwrap();
    assert_eq!(probe(&scorer), (1, 1));
    let again = scorer.try_record(&w.event()).unwrap_err();
    assert!(
        matches!(again.kind(), ErrorKind::Duplicate { .. }),
        "{again}"
    );
    assert_eq!(probe(&scorer), (1, 1));

    // Stopped after the user, before the destination: the retry writes the destination and
    // answers Duplicate (the user had it), without counting the withdrawal twice.
    let scorer = open(&done);
    let dest: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{done}{{d:*"))
        .query(&mut con)
        .unwrap();
    assert_eq!(
        dest.len(),
        3,
        "payers, their sorted set, the earliest payments: {dest:?}"
    );
    redis::cmd("DEL").arg(&dest).query::<()>(&mut con).unwrap();
    assert_eq!(probe(&scorer), (1, 0));
    let again = scorer.try_record(&w.event()).unwrap_err();
    assert!(
        matches!(again.kind(), ErrorKind::Duplicate { .. }),
        "{again}"
    );
    assert_eq!(probe(&scorer), (1, 1));

    // The same id claimed by other content, or by this one too long ago: a duplicate, and
    // nothing is written.
    let (_, rest) = claim.split_once(':').unwrap();
    let (digest, _) = rest.split_once(':').unwrap();
    for held in ["c:0123456789ab:1", &format!("c:{digest}:1")] {
        let prefix = fresh_prefix();
        set(&mut con, format!("{prefix}{{w:w1}}"), held);
        let scorer = open(&prefix);
        let e = scorer.try_record(&w.event()).unwrap_err();
        assert!(matches!(e.kind(), ErrorKind::Duplicate { .. }), "{e}");
        assert_eq!(probe(&scorer), (0, 0));
    }
    // A recent claim by other content (another amount) is a duplicate too.
    let prefix = fresh_prefix();
    set(&mut con, format!("{prefix}{{w:w1}}"), &claim);
    let scorer = open(&prefix);
    let other = wd("w1", "u1", &at(0), 11.0, "d1");
    let e = scorer.try_record(&other.event()).unwrap_err();
    assert!(matches!(e.kind(), ErrorKind::Duplicate { .. }), "{e}");
    assert_eq!(probe(&scorer), (0, 0));
}
