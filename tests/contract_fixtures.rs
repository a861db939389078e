//! Replays the event streams in `fixtures/` (described in fixtures/README.md). Each withdrawal
//! line may carry `"expect_tx": {field: value}`: the `tx` fields the withdrawal must see (the
//! string "inf" for positive infinity), computed by hand from the contract. The streams are
//! replayed with the shipped rules (for the watchlists), through the library and the CLI.

mod support;

use std::path::Path;

use riskgate::{Event, EventStream, Processed, Tx};
use serde_json::{json, Value};
use support::contract::*;

/// A `tx` field as JSON, with infinity spelled "inf".
fn field(tx: &Tx, name: &str) -> Value {
    let float = |x: f64| {
        if x == f64::INFINITY {
            json!("inf")
        } else {
            json!(x)
        }
    };
    let f = &tx.features;
    match name {
        "id" => json!(tx.id),
        "user_id" => json!(tx.user_id),
        "destination" => json!(tx.destination),
        "amount_usd" => float(tx.amount_usd),
        "account_age_days" => json!(f.account_age_days),
        "is_new_address" => json!(f.is_new_address),
        "prior_withdrawals" => json!(f.prior_withdrawals),
        "withdrawals_24h" => json!(f.withdrawals_24h),
        "amount_usd_24h" => float(f.amount_usd_24h),
        "median_amount_usd_90d" => float(f.median_amount_usd_90d),
        "hours_since_password_reset" => float(f.hours_since_password_reset),
        "device_age_hours" => float(f.device_age_hours),
        "dest_users_24h" => json!(f.dest_users_24h),
        "dest_users_30d" => json!(f.dest_users_30d),
        "dest_first_used_days" => float(f.dest_first_used_days),
        "dest_amount_usd_30d" => float(f.dest_amount_usd_30d),
        "dest_prior_withdrawals" => json!(f.dest_prior_withdrawals),
        "dest_last_amount_usd" => float(f.dest_last_amount_usd),
        "dest_rising_run" => json!(f.dest_rising_run),
        "dest_others_since_first" => json!(f.dest_others_since_first),
        "dest_first_amount_usd" => float(f.dest_first_amount_usd),
        "dest_rises" => json!(f.dest_rises),
        "new_payee_withdrawals_30d" => json!(f.new_payee_withdrawals_30d),
        "withdrawals_before_30d" => json!(f.withdrawals_before_30d),
        "dest_others_first_days" => float(f.dest_others_first_days),
        "watchlists" => json!(tx.watchlists),
        other => panic!("expect_tx names unknown field {other}"),
    }
}

fn same(expected: &Value, got: &Value) -> bool {
    match (expected.as_f64(), got.as_f64()) {
        (Some(a), Some(b)) => (a - b).abs() <= 1e-9 * a.abs().max(1.0),
        _ => expected == got,
    }
}

/// Replays one fixture; returns (line numbers of invalid lines, expectations checked).
fn replay(path: &Path) -> (Vec<usize>, usize) {
    let scorer = scorer_for(riskgate::RuleSet::load(repo().join("rules")).unwrap());
    let text = std::fs::read_to_string(path).unwrap();
    let mut stream = EventStream::new();
    let mut invalid = Vec::new();
    let mut checked = 0;
    for (i, line) in text.lines().enumerate() {
        let expect = serde_json::from_str::<Value>(line)
            .ok()
            .and_then(|v| v.get("expect_tx").cloned());
        if let (Some(expect), Ok(Event::Withdrawal(w))) = (&expect, Event::parse_line(line)) {
            let tx = scorer.tx(&w);
            for (name, value) in expect.as_object().unwrap() {
                let got = field(&tx, name);
                assert!(
                    same(value, &got),
                    "{}:{}: {} {name}: expected {value}, got {got}",
                    path.display(),
                    i + 1,
                    w.id
                );
                checked += 1;
            }
        }
        match stream.process(&scorer, Ok(line)) {
            Err(_) => invalid.push(i + 1),
            Ok(Processed::Scored(..) | Processed::Observed(_) | Processed::Blank) => {}
        }
    }
    (invalid, checked)
}

#[test]
fn boundaries() {
    let (invalid, checked) = replay(&repo().join("fixtures/boundaries.jsonl"));
    assert!(invalid.is_empty());
    assert!(checked >= 30, "{checked}");
}

#[test]
fn devices_and_resets() {
    let (invalid, checked) = replay(&repo().join("fixtures/devices-and-resets.jsonl"));
    assert!(invalid.is_empty());
    assert!(checked >= 15, "{checked}");
}

#[test]
fn mule_address() {
    let (invalid, checked) = replay(&repo().join("fixtures/mule-address.jsonl"));
    assert!(invalid.is_empty());
    assert!(checked >= 20, "{checked}");
}

#[test]
fn invalid_lines_change_no_state() {
    let (invalid, checked) = replay(&repo().join("fixtures/invalid-lines.jsonl"));
    assert_eq!(invalid, [3, 4, 5, 6, 7, 8]);
    assert_eq!(checked, 2);
}

#[test]
fn invalid_lines_through_the_cli() {
    let fixture = repo().join("fixtures/invalid-lines.jsonl");
    let rules = repo().join("rules");
    let (code, out, _) = cli(
        &[
            "score",
            "--rules",
            rules.to_str().unwrap(),
            fixture.to_str().unwrap(),
        ],
        None,
    );
    assert_eq!(code, 1);
    let lines = json_lines(&out);
    let errors: Vec<i64> = lines
        .iter()
        .filter_map(|l| l.get("line").and_then(Value::as_i64))
        .collect();
    assert_eq!(errors, [3, 4, 5, 6, 7, 8]);
    let ids: Vec<&str> = lines
        .iter()
        .filter_map(|l| l.get("id").and_then(Value::as_str))
        .collect();
    assert_eq!(ids, ["i-1", "i-4"]);
}

#[test]
fn every_fixture_scores_through_the_cli() {
    for name in ["boundaries", "devices-and-resets", "mule-address"] {
        let fixture = repo().join(format!("fixtures/{name}.jsonl"));
        let rules = repo().join("rules");
        let (code, out, err) = cli(
            &[
                "score",
                "--rules",
                rules.to_str().unwrap(),
                fixture.to_str().unwrap(),
            ],
            None,
        );
        assert_eq!(code, 0, "{name}: {err}");
        let withdrawals = std::fs::read_to_string(&fixture)
            .unwrap()
            .matches("\"kind\": \"withdrawal\"")
            .count();
        assert_eq!(
            json_lines(&out).len(),
            withdrawals,
            "{name}: one decision per withdrawal"
        );
    }
    // The mule address is on the community darklist: at least warn (the pack's min_tier).
    let fixture = repo().join("fixtures/mule-address.jsonl");
    let (_, out, _) = cli(
        &[
            "score",
            "--rules",
            repo().join("rules").to_str().unwrap(),
            fixture.to_str().unwrap(),
        ],
        None,
    );
    let v2 = json_lines(&out)
        .into_iter()
        .find(|d| d["id"] == "v-2")
        .unwrap();
    assert!(
        v2["hits"]
            .as_array()
            .unwrap()
            .iter()
            .any(|h| h["rule"] == "community-darklist/darklisted-destination"),
        "{v2}"
    );
    assert!(
        ["warn", "cool_off"].contains(&v2["tier"].as_str().unwrap()),
        "{v2}"
    );
}
