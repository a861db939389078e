//! `riskgate serve --store redis://...` (contract sections 5 and 6): the service over a real
//! `redis-server` started by the test on a free local port.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use std::path::PathBuf;

use support::redis_server::RedisServer;
use support::serve::*;

const BIN: &str = env!("CARGO_BIN_EXE_riskgate");

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn rules() -> PathBuf {
    root().join("rules")
}

fn with_redis(redis: &RedisServer, prefix: &str) -> Server {
    let url = redis.url();
    Server::start(BIN, &rules(), &["--store", &url, "--store-prefix", prefix])
}

#[test]
fn the_service_over_redis_decides_every_shipped_stream_exactly_as_riskgate_score() {
    let redis = RedisServer::start();
    for (i, file) in shipped_streams(&root()).into_iter().enumerate() {
        let expected = score_outcomes(&score_cli(BIN, &rules(), &file));
        let server = with_redis(&redis, &format!("t{i}:"));
        let got = stream_through(&mut server.client(), &read_lines(&file), |_, _| {});
        assert_eq!(got.len(), expected.len(), "{}", file.display());
        for (n, (got, expected)) in got.iter().zip(&expected).enumerate() {
            assert_eq!(got, expected, "{}: output line {}", file.display(), n + 1);
        }
    }
    assert!(redis.keys().iter().all(|k| k.starts_with('t')));
}

#[test]
fn two_services_sharing_one_redis_decide_as_one_process() {
    let redis = RedisServer::start();
    let file = root().join("fixtures/hk-sample.jsonl");
    let lines = read_lines(&file);
    let expected = score_outcomes(&score_cli(BIN, &rules(), &file));
    let a = with_redis(&redis, "fleet:");
    let b = with_redis(&redis, "fleet:");
    let mut clients = [a.client(), b.client()];
    // Alternate chunks of 40 lines between the two instances.
    let mut got = Vec::new();
    for (c, chunk) in lines.chunks(40).enumerate() {
        got.extend(stream_through(&mut clients[c % 2], chunk, |_, _| {}));
    }
    assert_eq!(got.len(), expected.len());
    for (n, (got, expected)) in got.iter().zip(&expected).enumerate() {
        assert_eq!(got, expected, "output line {}", n + 1);
    }
    // An id recorded through one instance is a duplicate on the other.
    let recorded = lines.iter().find(|l| is_withdrawal(l)).unwrap();
    for client in &mut clients {
        assert_eq!(client.post("/v1/score", recorded).status, 409);
        assert_eq!(client.post("/v1/events", recorded).status, 409);
    }
}

#[test]
fn a_lost_store_gives_503_on_score_events_and_healthz() {
    let mut redis = RedisServer::start();
    let server = with_redis(&redis, "lost:");
    let mut client = server.client();
    let lines = read_lines(&root().join("fixtures/mule-address.jsonl"));
    let withdrawal = lines.iter().find(|l| is_withdrawal(l)).unwrap();
    assert_eq!(client.get("/healthz").status, 200);
    assert_eq!(client.post("/v1/score", withdrawal).status, 200);
    redis.kill();
    let health = client.get("/healthz");
    assert_eq!(health.status, 503, "{}", health.body);
    for path in ["/v1/score", "/v1/events"] {
        let answer = client.post(path, withdrawal);
        assert_eq!(answer.status, 503, "{path}: {}", answer.body);
        assert!(answer.json()["error"].as_str().unwrap().contains("store"));
    }
    // Bad bodies are still 400 (nothing to ask the store), and the failures are counted.
    assert_eq!(client.post("/v1/score", "not JSON").status, 400);
    let metrics = client.get("/metrics").body;
    let errors: f64 = metrics
        .lines()
        .find(|l| l.starts_with("riskgate_store_errors_total"))
        .and_then(|l| l.rsplit(' ').next())
        .unwrap()
        .parse()
        .unwrap();
    assert!(errors >= 2.0, "{metrics}");
}

#[test]
fn an_unreachable_store_at_start_is_an_error() {
    let port = support::redis_server::free_port();
    let output = std::process::Command::new(BIN)
        .args(["serve", "--rules"])
        .arg(rules())
        .args(["--listen", "127.0.0.1:0", "--store"])
        .arg(format!("redis://127.0.0.1:{port}"))
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("store"), "{stderr}");
}
