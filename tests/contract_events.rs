//! Contract section 1: events. Every field validated, timestamps in RFC 3339 with any offset and
//! fractional seconds, cancelled withdrawals, labels, and how `riskgate score` treats blank,
//! invalid and duplicate lines.

mod support;

use riskgate::{Event, Label, Status};
use serde_json::{json, Value};
use support::contract::*;

fn error_of(line: &str) -> String {
    match Event::parse_line(line) {
        Ok(e) => panic!("{line} should be invalid, parsed as {e:?}"),
        Err(message) => message,
    }
}

fn base() -> W {
    wd("wd-1", "u-1", T0, 100.0, "TAddr1")
}

fn without(mut w: W, key: &str) -> String {
    w.0.as_object_mut().unwrap().remove(key);
    w.line()
}

fn without_user_field(mut w: W, key: &str) -> String {
    w.0["user"].as_object_mut().unwrap().remove(key);
    w.line()
}

#[test]
fn a_full_withdrawal_parses_with_every_field() {
    let w = base()
        .device("dev-1")
        .set("status", json!("completed"))
        .set("label", json!("scam"))
        .user("locale", json!("zh-HK"))
        .user("referral", json!("telegram"))
        .w();
    assert_eq!(w.id, "wd-1");
    assert_eq!(w.user_id, "u-1");
    assert_eq!(w.asset, "USDT");
    assert_eq!(w.network, "TRON");
    assert_eq!(w.amount_usd, 100.0);
    assert_eq!(w.destination, "TAddr1");
    assert_eq!(w.device_id.as_deref(), Some("dev-1"));
    assert_eq!(w.status, Status::Completed);
    assert_eq!(w.label, Some(Label::Scam));
    assert_eq!(w.user.country, "HK");
    assert_eq!(w.user.locale, "zh-HK");
    assert_eq!(w.user.referral, "telegram");
}

#[test]
fn optional_fields_take_their_defaults() {
    let w = base().w();
    assert_eq!(w.status, Status::Completed, "status defaults to completed");
    assert_eq!(w.user.locale, "en", "locale defaults to en");
    assert_eq!(w.user.referral, "", "referral defaults to the empty string");
    assert_eq!(w.device_id, None);
    assert_eq!(w.label, None);
}

#[test]
fn status_cancelled_and_labels_are_understood() {
    assert_eq!(base().cancelled().w().status, Status::Cancelled);
    assert_eq!(
        base().set("label", json!("legit")).w().label,
        Some(Label::Legit)
    );
    assert_eq!(
        base().set("label", json!("scam")).w().label,
        Some(Label::Scam)
    );
    error_of(&base().set("status", json!("pending")).line());
    error_of(&base().set("label", json!("fraud")).line());
}

#[test]
fn every_required_withdrawal_field_is_required() {
    for field in [
        "kind",
        "ts",
        "user_id",
        "id",
        "asset",
        "network",
        "amount_usd",
        "destination",
        "user",
    ] {
        let message = error_of(&without(base(), field));
        assert!(
            message.contains(field),
            "missing {field}: message {message:?} should name it"
        );
    }
    for field in ["country", "created_at"] {
        let message = error_of(&without_user_field(base(), field));
        assert!(
            message.contains(field),
            "missing user.{field}: message {message:?} should name it"
        );
    }
}

#[test]
fn mistyped_and_empty_fields_are_invalid() {
    let cases: Vec<(&str, Value)> = vec![
        ("user_id", json!(7)),
        ("user_id", json!("")),
        ("id", json!(12)),
        ("id", json!("")),
        ("asset", json!(null)),
        ("network", json!(["ETH"])),
        ("amount_usd", json!("100")),
        ("amount_usd", json!(-0.01)),
        ("amount_usd", json!(-5)),
        ("destination", json!(5)),
        ("destination", json!("")),
        ("user", json!("HK")),
        ("device_id", json!(5)),
        ("ts", json!(1_700_000_000)),
        ("kind", json!("deposit")),
        ("kind", json!(3)),
    ];
    for (field, value) in cases {
        let line = base().set(field, value.clone()).line();
        assert!(
            Event::parse_line(&line).is_err(),
            "{field} = {value} should be invalid"
        );
    }
    let user_cases: Vec<(&str, Value)> = vec![
        ("country", json!(1)),
        ("country", json!("")),
        ("created_at", json!("soon")),
        ("locale", json!(5)),
    ];
    for (field, value) in user_cases {
        let line = base().user(field, value.clone()).line();
        assert!(
            Event::parse_line(&line).is_err(),
            "user.{field} = {value} should be invalid"
        );
    }
}

#[test]
fn amount_zero_is_valid_and_integers_are_numbers() {
    assert_eq!(base().set("amount_usd", json!(0)).w().amount_usd, 0.0);
    assert_eq!(base().set("amount_usd", json!(250)).w().amount_usd, 250.0);
}

#[test]
fn lines_that_are_not_event_objects_are_invalid() {
    for line in ["not json", "{", "[]", "42", "null", "\"withdrawal\"", "{}"] {
        assert!(
            Event::parse_line(line).is_err(),
            "{line:?} should be invalid"
        );
    }
}

#[test]
fn password_reset_and_login_events() {
    let e = Event::parse_line(&reset("u-1", T0)).unwrap();
    assert!(matches!(e, Event::PasswordReset { ref user_id, .. } if user_id == "u-1"));
    let e = Event::parse_line(&login("u-1", T0, "dev-9")).unwrap();
    assert!(matches!(e, Event::Login { ref device_id, .. } if device_id == "dev-9"));
    // login needs its device
    let message = error_of(&json!({"kind": "login", "ts": T0, "user_id": "u-1"}).to_string());
    assert!(message.contains("device_id"), "{message}");
    // every event needs ts and a non-empty user_id
    error_of(&json!({"kind": "password_reset", "user_id": "u-1"}).to_string());
    error_of(&json!({"kind": "password_reset", "ts": T0}).to_string());
    error_of(&json!({"kind": "password_reset", "ts": T0, "user_id": ""}).to_string());
    error_of(&json!({"kind": "login", "ts": "nope", "user_id": "u", "device_id": "d"}).to_string());
}

fn micros(ts: &str) -> i64 {
    base().set("ts", json!(ts)).w().ts.as_micros()
}

#[test]
fn timestamps_accept_any_offset_and_fractional_seconds() {
    let utc = micros("2026-03-01T12:34:56Z");
    assert_eq!(micros("2026-03-01T20:34:56+08:00"), utc);
    assert_eq!(micros("2026-03-01T07:04:56-05:30"), utc);
    assert_eq!(micros("2026-03-01T12:34:56+00:00"), utc);
    assert_eq!(micros("2026-03-01T12:34:56.000Z"), utc);
    // kept to at least the millisecond
    assert_eq!(micros("2026-03-01T12:34:56.001Z") - utc, 1_000);
    assert_eq!(micros("2026-03-01T12:34:56.5Z") - utc, 500_000);
    assert_eq!(micros("2026-03-01T20:34:56.123+08:00") - utc, 123_000);
    assert!(micros("2026-03-01T12:34:56.999Z") < micros("2026-03-01T12:34:57Z"));
}

#[test]
fn timestamps_without_offset_or_out_of_range_are_invalid() {
    for ts in [
        "2026-03-01T12:34:56",
        "2026-03-01",
        "12:34:56Z",
        "2026-13-01T00:00:00Z",
        "2026-02-30T00:00:00Z",
        "2026-03-01T25:00:00Z",
        "yesterday",
        "",
    ] {
        let message = error_of(&base().set("ts", json!(ts)).line());
        assert!(
            message.contains("ts"),
            "bad ts {ts:?}: message {message:?} should name the field"
        );
        error_of(&base().user("created_at", json!(ts)).line());
    }
}

#[test]
fn extra_fields_such_as_expect_are_ignored() {
    let w = base()
        .set("expect", json!({"tier": "warn"}))
        .set("note", json!("x"))
        .w();
    assert_eq!(w.id, "wd-1");
}

// ---- through the command line -------------------------------------------------------------

/// A rule set whose one rule scores the user's `prior_withdrawals` (plus 1, so that every
/// withdrawal hits): the decision shows the state the stream has built.
fn counting_rules() -> Rules {
    let rules = Rules::new();
    rules.pack(
        "probe",
        "regions = [\"*\"]",
        &[("prior", "tx.prior_withdrawals + 1", "")],
    );
    rules
}

fn prior_of(decision: &Value) -> i64 {
    decision["hits"][0]["score"].as_i64().unwrap() - 1
}

#[test]
fn cli_blank_lines_are_skipped_and_line_numbers_count_them() {
    let rules = counting_rules();
    let input = format!(
        "\n{}\n   \n{}\n\nnot json\n",
        wd("a", "u", &at(0), 1.0, "X").line(),
        wd("b", "u", &at(60), 1.0, "X").line()
    );
    let (code, out, _) = cli(
        &["score", "--rules", rules.path().to_str().unwrap(), "-"],
        Some(&input),
    );
    let lines = json_lines(&out);
    assert_eq!(lines.len(), 3, "{out}");
    assert_eq!(lines[0]["id"], "a");
    assert_eq!(lines[1]["id"], "b");
    assert_eq!(lines[2]["line"], 6);
    assert!(lines[2]["error"].as_str().unwrap().len() > 5);
    assert_eq!(code, 1);
}

#[test]
fn cli_invalid_lines_yield_line_and_error_in_place_change_no_state_and_fail_the_run() {
    let rules = counting_rules();
    let good1 = wd("a", "u", &at(0), 10.0, "X").line();
    let negative = wd("neg", "u", &at(10), -1.0, "X").line();
    let bad_ts = wd("badts", "u", "2026-03-01T00:00:20", 1.0, "X").line();
    let unknown_kind = json!({"kind": "deposit", "ts": at(30), "user_id": "u"}).to_string();
    let missing = without(wd("miss", "u", &at(40), 1.0, "X"), "destination");
    let mistyped = wd("typed", "u", &at(50), 1.0, "X")
        .set("amount_usd", json!("1"))
        .line();
    let duplicate = wd("a", "u", &at(60), 1.0, "X").line();
    let good2 = wd("b", "u", &at(70), 1.0, "X").line();
    let input = [
        good1,
        negative,
        bad_ts,
        unknown_kind,
        missing,
        mistyped,
        "{oops".into(),
        duplicate,
        good2,
    ]
    .join("\n");
    let (code, out, _) = cli(
        &["score", "--rules", rules.path().to_str().unwrap()],
        Some(&input),
    );
    let lines = json_lines(&out);
    assert_eq!(lines.len(), 9, "one output line per input line: {out}");
    assert_eq!(lines[0]["id"], "a");
    for (i, line) in lines.iter().enumerate().take(8).skip(1) {
        let keys: Vec<&String> = line.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["error", "line"], "line {}: {line}", i + 1);
        assert_eq!(line["line"], i as i64 + 1);
        assert!(!line["error"].as_str().unwrap().is_empty());
    }
    // The raw output starts with "line": {"line":N,"error":...}
    assert!(
        out.lines()
            .nth(1)
            .unwrap()
            .starts_with("{\"line\":2,\"error\":"),
        "{out}"
    );
    assert!(
        lines[7]["error"].as_str().unwrap().contains('a'),
        "duplicate id named: {}",
        lines[7]
    );
    assert_eq!(lines[8]["id"], "b");
    assert_eq!(
        prior_of(&lines[8]),
        1,
        "only withdrawal a is history: invalid lines changed nothing"
    );
    assert_eq!(code, 1, "invalid lines make the exit status non-zero");
}

#[test]
fn cli_an_invalid_login_or_reset_changes_no_state() {
    let rules = Rules::new();
    rules.pack(
        "probe",
        "regions = [\"*\"]",
        &[
            (
                "device",
                "if tx.device_age_hours > 0.0 { 1 } else { () }",
                "",
            ),
            ("reset", "tx.hours_since_password_reset < 1000.0", ""),
        ],
    );
    let input = [
        json!({"kind": "login", "ts": at(0), "user_id": "u", "device_id": ""}).to_string(),
        json!({"kind": "password_reset", "ts": "bad", "user_id": "u"}).to_string(),
        wd("w", "u", &at(60), 1.0, "X").device("d1").line(),
    ]
    .join("\n");
    let (code, out, _) = cli(
        &["score", "--rules", rules.path().to_str().unwrap()],
        Some(&input),
    );
    let lines = json_lines(&out);
    assert_eq!(lines[0]["line"], 1);
    assert_eq!(lines[1]["line"], 2);
    assert_eq!(
        lines[2]["hits"],
        json!([]),
        "neither the login nor the reset was recorded: {}",
        lines[2]
    );
    assert_eq!(code, 1);
}

#[test]
fn cli_a_duplicate_id_is_refused_even_after_a_cancelled_withdrawal() {
    let rules = counting_rules();
    let input = [
        wd("c", "u", &at(0), 1.0, "X").cancelled().line(),
        wd("c", "u", &at(10), 1.0, "X").line(),
        wd("d", "u", &at(20), 1.0, "X").line(),
    ]
    .join("\n");
    let (code, out, _) = cli(
        &["score", "--rules", rules.path().to_str().unwrap()],
        Some(&input),
    );
    let lines = json_lines(&out);
    assert_eq!(lines[0]["id"], "c", "a cancelled withdrawal is scored");
    assert_eq!(lines[1]["line"], 2);
    assert_eq!(
        prior_of(&lines[2]),
        0,
        "neither the cancelled one nor the duplicate is history"
    );
    assert_eq!(code, 1);
}

#[test]
fn cli_the_id_of_an_invalid_line_is_not_taken() {
    let rules = counting_rules();
    let input = [
        wd("x", "u", &at(0), -1.0, "X").line(),
        wd("x", "u", &at(10), 1.0, "X").line(),
    ]
    .join("\n");
    let (code, out, _) = cli(
        &["score", "--rules", rules.path().to_str().unwrap()],
        Some(&input),
    );
    let lines = json_lines(&out);
    assert_eq!(lines[0]["line"], 1);
    assert_eq!(lines[1]["id"], "x", "{out}");
    assert_eq!(code, 1);
}

#[test]
fn cli_a_valid_stream_exits_zero_and_cancelled_withdrawals_are_scored_but_not_history() {
    let rules = counting_rules();
    let input = [
        wd("a", "u", &at(0), 1.0, "X").line(),
        wd("b", "u", &at(10), 1.0, "X").cancelled().line(),
        reset("u", &at(15)),
        login("u", &at(16), "d"),
        wd("c", "u", &at(20), 1.0, "X")
            .set("label", json!("legit"))
            .line(),
    ]
    .join("\r\n");
    let (code, out, err) = cli(
        &["score", "--rules", rules.path().to_str().unwrap()],
        Some(&input),
    );
    assert_eq!(code, 0, "{out}{err}");
    let lines = json_lines(&out);
    assert_eq!(
        lines.len(),
        3,
        "one decision per withdrawal, none for other events"
    );
    assert_eq!(
        lines
            .iter()
            .map(|l| l["id"].as_str().unwrap())
            .collect::<Vec<_>>(),
        ["a", "b", "c"]
    );
    assert_eq!(prior_of(&lines[1]), 1);
    assert_eq!(
        prior_of(&lines[2]),
        1,
        "the cancelled withdrawal never entered history"
    );
}

#[test]
fn timestamps_must_have_the_rfc_3339_shape() {
    // RFC 3339 allows a lower-case t and z, and (section 5.6, note) a space between date and time.
    let utc = micros("2026-03-01T12:34:56Z");
    assert_eq!(micros("2026-03-01t12:34:56z"), utc);
    assert_eq!(micros("2026-03-01 12:34:56Z"), utc);
    assert_eq!(micros("2026-03-01T12:34:56-00:00"), utc);
    assert_eq!(micros("2026-03-01T12:34:56.123456Z") - utc, 123_456);
    // ISO 8601 forms that are not RFC 3339
    for ts in [
        "2026-03-01T12:34Z",
        "2026-03-01T12Z",
        "20260301T123456Z",
        "2026-03-01T12:34:56+0800",
        "2026-03-01T12:34:56+08",
        "2026-03-01T12:34:56Z[Asia/Hong_Kong]",
        "2026-03-01T12:34:56,5Z",
        "2026-03-01T12:34:56.Z",
        "+002026-03-01T12:34:56Z",
        "2026-3-1T12:34:56Z",
        " 2026-03-01T12:34:56Z",
        "2026-03-01T12:34:56Z ",
    ] {
        error_of(&base().set("ts", json!(ts)).line());
    }
}
