//! `riskgate serve` (contract section 6), tested through the real binary over HTTP/1.1.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use std::path::{Path, PathBuf};

use support::serve::*;

const BIN: &str = env!("CARGO_BIN_EXE_riskgate");

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn rules() -> PathBuf {
    root().join("rules")
}

fn sample() -> Vec<String> {
    read_lines(&root().join("fixtures/hk-sample.jsonl"))
}

/// The first `n` lines of the sample as a temporary file, with what `riskgate score` prints.
fn sample_head(n: usize, dir: &Path) -> (Vec<String>, Vec<String>) {
    let lines: Vec<String> = sample().into_iter().take(n).collect();
    let file = dir.join("head.jsonl");
    std::fs::write(&file, lines.join("\n") + "\n").unwrap();
    let expected = score_outcomes(&score_cli(BIN, &rules(), &file));
    (lines, expected)
}

fn a_withdrawal(id: &str, amount: f64) -> String {
    serde_json::json!({
        "kind": "withdrawal", "id": id, "ts": "2026-11-20T10:00:00Z", "user_id": "u-probe",
        "asset": "USDT", "network": "TRON", "amount_usd": amount,
        "destination": "TProbeDestination0000000000000000",
        "user": {"country": "HK", "created_at": "2026-11-19T00:00:00Z", "locale": "en", "referral": "telegram"},
        "device_id": "d-probe"
    })
    .to_string()
}

#[test]
fn the_service_decides_every_shipped_stream_exactly_as_riskgate_score() {
    let streams = shipped_streams(&root());
    assert!(streams.len() >= 7, "{streams:?}");
    for file in streams {
        let expected = score_outcomes(&score_cli(BIN, &rules(), &file));
        let server = Server::start(BIN, &rules(), &[]);
        let mut client = server.client();
        let got = stream_through(&mut client, &read_lines(&file), |_, _| {});
        assert_eq!(
            got.len(),
            expected.len(),
            "{}: line counts differ",
            file.display()
        );
        for (i, (got, expected)) in got.iter().zip(&expected).enumerate() {
            assert_eq!(got, expected, "{}: output line {}", file.display(), i + 1);
        }
    }
}

#[test]
fn malformed_bodies_get_400_and_change_no_state() {
    let dir = tempfile::tempdir().unwrap();
    let (lines, expected) = sample_head(600, dir.path());
    let login =
        r#"{"kind":"login","ts":"2026-11-01T00:00:00Z","user_id":"u-0001","device_id":"d-x"}"#;
    let bad: Vec<(&str, Vec<u8>)> = vec![
        ("/v1/score", b"this is not JSON".to_vec()),
        ("/v1/events", b"{\"kind\":".to_vec()),
        ("/v1/score", b"".to_vec()),
        ("/v1/events", b"   \n".to_vec()),
        ("/v1/score", b"[1,2,3]".to_vec()),
        (
            "/v1/events",
            b"{\"kind\":\"deposit\",\"ts\":\"2026-11-01T00:00:00Z\",\"user_id\":\"u-0001\"}"
                .to_vec(),
        ),
        ("/v1/score", login.as_bytes().to_vec()),
        ("/v1/score", a_withdrawal("bad-1", -5.0).into_bytes()),
        ("/v1/events", a_withdrawal("bad-1", -5.0).into_bytes()),
        (
            "/v1/events",
            a_withdrawal("bad-2", 5.0)
                .replace("2026-11-20T10:00:00Z", "2026-11-20 10:00")
                .into_bytes(),
        ),
        (
            "/v1/events",
            a_withdrawal("bad-3", 5.0)
                .replace("\"HK\"", "\"HKG\"")
                .into_bytes(),
        ),
        ("/v1/score", vec![0xff, 0xfe, b'{', b'}']),
        ("/v1/events", format!("\u{feff}{login}").into_bytes()),
        (
            "/v1/events",
            br#"{"kind":"login","ts":"2026-11-01T00:00:00Z","user_id":"","device_id":"d"}"#
                .to_vec(),
        ),
    ];
    let server = Server::start(BIN, &rules(), &[]);
    let mut client = server.client();
    let got = stream_through(&mut client, &lines, |client, i| {
        if i % 7 == 0 {
            let (path, body) = &bad[(i / 7) % bad.len()];
            let answer = client.send("POST", path, body);
            assert_eq!(
                answer.status,
                400,
                "{path} {:?}: {}",
                String::from_utf8_lossy(body),
                answer.body
            );
            let error = answer.json()["error"].as_str().unwrap().to_string();
            assert!(!error.is_empty());
        }
    });
    assert_eq!(
        got, expected,
        "bad requests changed what the stream decides"
    );
    // A refused withdrawal left its id free.
    let answer = client.post("/v1/events", &a_withdrawal("bad-1", 5.0));
    assert_eq!(answer.status, 204, "{}", answer.body);
}

#[test]
fn a_body_over_1_mib_gets_413_and_changes_nothing() {
    let server = Server::start(BIN, &rules(), &[]);
    let probe = a_withdrawal("probe-1", 900.0);
    let before = server.client().post("/v1/score", &probe);
    assert_eq!(before.status, 200);
    // One byte over: a valid event padded with spaces.
    for path in ["/v1/score", "/v1/events"] {
        let event = a_withdrawal("big-1", 10.0);
        let mut body = event.into_bytes();
        body.resize(MAX + 1, b' ');
        let mut client = server.client();
        client.write_request("POST", path, &body, &[]);
        let answer = client.read_response();
        assert_eq!(answer.status, 413, "{path}: {}", answer.body);
        assert!(answer.json()["error"].as_str().unwrap().contains("1048576"));
    }
    let after = server.client().post("/v1/score", &probe);
    assert_eq!(after.body, before.body);
    // Exactly 1 MiB is read.
    let mut body = a_withdrawal("big-2", 10.0).into_bytes();
    body.resize(MAX, b' ');
    let answer = server.client().send("POST", "/v1/events", &body);
    assert_eq!(answer.status, 204, "{}", answer.body);
}

const MAX: usize = 1024 * 1024;

#[test]
fn a_recorded_withdrawal_id_gets_409_on_both_endpoints_and_changes_nothing() {
    let server = Server::start(BIN, &rules(), &[]);
    let mut client = server.client();
    let first = a_withdrawal("dup-1", 100.0);
    assert_eq!(client.post("/v1/score", &first).status, 200);
    // Scoring changes nothing: the id is still free, and scoring again gives the same.
    assert_eq!(client.post("/v1/score", &first).status, 200);
    assert_eq!(client.post("/v1/events", &first).status, 204);
    let probe =
        a_withdrawal("probe-2", 2500.0).replace("2026-11-20T10:00:00Z", "2026-11-20T11:00:00Z");
    let before = client.post("/v1/score", &probe);
    assert_eq!(before.status, 200);
    // The same id again, even with other fields: 409, and nothing recorded.
    let again =
        a_withdrawal("dup-1", 5000.0).replace("2026-11-20T10:00:00Z", "2026-11-20T10:30:00Z");
    for path in ["/v1/score", "/v1/events"] {
        let answer = client.post(path, &again);
        assert_eq!(answer.status, 409, "{path}: {}", answer.body);
        assert!(answer.json()["error"].as_str().unwrap().contains("dup-1"));
    }
    let after = client.post("/v1/score", &probe);
    assert_eq!(after.body, before.body);
    let tx_count_before: serde_json::Value = before.json();
    assert_eq!(tx_count_before["id"], "probe-2");
}

#[test]
fn reload_makes_a_good_set_live_and_keeps_the_current_one_on_problems() {
    let dir = tempfile::tempdir().unwrap();
    let rules_dir = dir.path().join("rules");
    copy_dir(&rules(), &rules_dir);
    let server = Server::start(BIN, &rules_dir, &[]);
    let mut client = server.client();
    let probe = a_withdrawal("probe-3", 2500.0);
    let first = client.post("/v1/score", &probe).json();
    let old_id = first["ruleset"].as_str().unwrap().to_string();

    // A valid change: 200 with the new id, which decides from then on.
    let policy = rules_dir.join("policy.toml");
    let text = std::fs::read_to_string(&policy).unwrap();
    std::fs::write(&policy, text.replace("notice = 20", "notice = 21")).unwrap();
    let answer = client.send("POST", "/v1/reload", b"");
    assert_eq!(answer.status, 200, "{}", answer.body);
    let new_id = answer.json()["ruleset"].as_str().unwrap().to_string();
    assert_ne!(new_id, old_id);
    assert_eq!(
        client.post("/v1/score", &probe).json()["ruleset"],
        new_id.as_str()
    );
    let metrics = client.get("/metrics").body;
    assert!(
        metrics.contains(&format!("riskgate_ruleset_info{{ruleset=\"{new_id}\"}} 1")),
        "{metrics}"
    );
    assert!(
        !metrics.contains(&old_id),
        "only the live set is shown: {metrics}"
    );

    // A broken script: 422 with every problem as file:line:column, and the set kept.
    let script = rules_dir.join("hk-police/new_device.rhai");
    std::fs::write(&script, "let x = ;\n").unwrap();
    let answer = client.send("POST", "/v1/reload", b"");
    assert_eq!(answer.status, 422, "{}", answer.body);
    let problems = answer.json()["problems"].as_array().unwrap().clone();
    assert!(!problems.is_empty());
    let problem = problems[0].as_str().unwrap();
    assert!(problem.contains("new_device.rhai:1:"), "{problem}");
    let kept = client.post("/v1/score", &probe);
    assert_eq!(kept.status, 200);
    assert_eq!(kept.json()["ruleset"], new_id.as_str());
    let health = client.get("/healthz");
    assert_eq!(health.status, 200);
    let metrics = client.get("/metrics").body;
    assert!(metrics.contains(&format!("riskgate_ruleset_info{{ruleset=\"{new_id}\"}} 1")));
}

#[test]
fn sighup_reloads_the_rules_directory() {
    let dir = tempfile::tempdir().unwrap();
    let rules_dir = dir.path().join("rules");
    copy_dir(&rules(), &rules_dir);
    let server = Server::start(BIN, &rules_dir, &[]);
    let mut client = server.client();
    let probe = a_withdrawal("probe-4", 2500.0);
    let old_id = client.post("/v1/score", &probe).json()["ruleset"]
        .as_str()
        .unwrap()
        .to_string();
    let policy = rules_dir.join("policy.toml");
    let text = std::fs::read_to_string(&policy).unwrap();
    std::fs::write(&policy, text.replace("warn = 50", "warn = 49")).unwrap();
    server.signal("HUP");
    // Wait for the reload to land (bounded generously; not a timing assertion).
    let mut new_id = old_id.clone();
    for _ in 0..600 {
        new_id = client.post("/v1/score", &probe).json()["ruleset"]
            .as_str()
            .unwrap()
            .to_string();
        if new_id != old_id {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_ne!(
        new_id,
        old_id,
        "SIGHUP did not reload: {}",
        server.log_text()
    );
    // A broken set on SIGHUP is refused and the current one kept; the process lives on.
    std::fs::write(rules_dir.join("policy.toml"), "[tiers\n").unwrap();
    server.signal("HUP");
    for _ in 0..600 {
        if server.log_text().contains("reload refused") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(
        server.log_text().contains("reload refused"),
        "{}",
        server.log_text()
    );
    assert_eq!(
        client.post("/v1/score", &probe).json()["ruleset"],
        new_id.as_str()
    );
}

#[test]
fn sigterm_finishes_the_request_in_flight_then_exits() {
    let mut server = Server::start(BIN, &rules(), &[]);
    let body = a_withdrawal("flight-1", 100.0);
    let (head, tail) = body.split_at(body.len() / 2);
    // A request in flight: its head and half its body are sent.
    let mut in_flight = server.client();
    in_flight.write_raw(
        format!(
            "POST /v1/score HTTP/1.1\r\nhost: localhost\r\ncontent-length: {}\r\n\r\n{head}",
            body.len()
        )
        .as_bytes(),
    );
    // Make sure the server has read the head (a second request on another connection).
    assert_eq!(server.client().get("/healthz").status, 200);
    server.signal("TERM");
    // Wait until new connections are refused: the service stopped accepting.
    let mut refused = false;
    for _ in 0..600 {
        if std::net::TcpStream::connect(&server.addr).is_err() {
            refused = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(
        refused,
        "still accepting after SIGTERM: {}",
        server.log_text()
    );
    in_flight.write_raw(tail.as_bytes());
    let answer = in_flight.read_response();
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.json()["id"], "flight-1");
    let status = server.wait();
    assert!(status.success(), "{status:?}: {}", server.log_text());
}

#[test]
fn metrics_name_what_was_decided_and_healthz_answers() {
    let dir = tempfile::tempdir().unwrap();
    let (lines, expected) = sample_head(400, dir.path());
    let server = Server::start(BIN, &rules(), &[]);
    let mut client = server.client();
    let health = client.get("/healthz");
    assert_eq!(health.status, 200);
    stream_through(&mut client, &lines, |_, _| {});
    let decisions = expected.iter().filter(|l| *l != "invalid").count();
    let metrics = client.get("/metrics");
    assert_eq!(metrics.status, 200);
    let text = metrics.body;
    for name in [
        "riskgate_decisions_total{tier=\"allow\"}",
        "riskgate_decisions_total{tier=\"notice\"}",
        "riskgate_decisions_total{tier=\"warn\"}",
        "riskgate_decisions_total{tier=\"cool_off\"}",
        "riskgate_rule_hits_total{rule=\"hk-police/new-device\"}",
        "riskgate_rule_errors_total{rule=\"hk-police/new-device\"} 0",
        "riskgate_holdouts_total",
        "riskgate_decision_seconds_bucket{le=",
        "riskgate_decision_seconds_count",
        "riskgate_decision_seconds_sum",
        "riskgate_ruleset_info{ruleset=",
        "riskgate_store_errors_total 0",
    ] {
        assert!(text.contains(name), "{name} missing from:\n{text}");
    }
    let value = |prefix: &str| -> f64 {
        text.lines()
            .filter(|l| l.starts_with(prefix))
            .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
            .sum()
    };
    assert_eq!(value("riskgate_decisions_total") as usize, decisions);
    assert_eq!(value("riskgate_decision_seconds_count") as usize, decisions);
    // Per tier, as the decisions said.
    for tier in ["allow", "notice", "warn", "cool_off"] {
        let n = expected
            .iter()
            .filter(|l| l.contains(&format!("\"tier\":\"{tier}\"")))
            .count();
        assert_eq!(
            value(&format!("riskgate_decisions_total{{tier=\"{tier}\"}}")) as usize,
            n,
            "{tier}"
        );
    }
    let hits = expected
        .iter()
        .filter(|l| l.contains("\"rule\":\"hk-police/new-device\""))
        .count();
    assert_eq!(
        value("riskgate_rule_hits_total{rule=\"hk-police/new-device\"}") as usize,
        hits
    );
    // An unknown path is a JSON 404.
    let missing = client.get("/v2/nothing");
    assert_eq!(missing.status, 404);
    assert!(missing.json()["error"].is_string());
}

#[test]
fn log_holds_every_scored_decision_in_a_verified_chain() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("decisions.log");
    let mut server = Server::start(BIN, &rules(), &["--log", log.to_str().unwrap()]);
    let mut client = server.client();
    let mut answers = Vec::new();
    for (i, amount) in [10.0, 2500.0, 40.0].into_iter().enumerate() {
        let answer = client.post("/v1/score", &a_withdrawal(&format!("log-{i}"), amount));
        assert_eq!(answer.status, 200);
        answers.push(answer.json());
    }
    server.signal("TERM");
    assert!(server.wait().success());
    let verify = std::process::Command::new(BIN)
        .arg("verify-log")
        .arg(&log)
        .output()
        .unwrap();
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stdout)
    );
    let text = std::fs::read_to_string(&log).unwrap();
    let logged: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| v["kind"] == "decision")
        .collect();
    assert_eq!(logged.len(), 3);
    for (line, answer) in logged.iter().zip(&answers) {
        assert_eq!(line["event"], answer["id"]);
        assert_eq!(line["decision"]["tier"], answer["tier"]);
        assert_eq!(line["decision"]["score"], answer["score"]);
    }
    assert!(text
        .lines()
        .next()
        .unwrap()
        .contains("\"kind\":\"ruleset\""));
}

#[test]
fn a_stalled_request_does_not_keep_the_service_alive_after_sigterm() {
    let mut server = Server::start(BIN, &rules(), &[]);
    let mut stalled = server.client();
    // A head promising a body that never comes.
    stalled.write_raw(
        b"POST /v1/score HTTP/1.1\r\nhost: localhost\r\ncontent-length: 100\r\n\r\n{\"kind\":",
    );
    assert_eq!(server.client().get("/healthz").status, 200);
    server.signal("TERM");
    // The contract allows 10 s; `wait` only bounds the test generously (no timing assertion).
    let status = server.wait();
    assert!(status.success(), "{status:?}: {}", server.log_text());
    assert!(
        server.log_text().contains("grace period"),
        "{}",
        server.log_text()
    );
}
