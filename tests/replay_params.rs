//! Parameter sweeps in replay (issue 10): `riskgate replay --param pack/rule.name=V1,V2,...`
//! gives, for every combination of values, the figures a plain replay gives with those values
//! written into `policy.toml` as overrides.

use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::process::Command;

use riskgate::replay::{ParamSetting, ParamSpec, Replay, ReplayOptions, Report};
use riskgate::RuleSet;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn sample() -> String {
    std::fs::read_to_string(root().join("fixtures/hk-sample.jsonl")).expect("fixture")
}

const POLICY: &str = r#"[tiers]
notice = 20
warn = 50
cool_off = 90

[errors]
on_rule_error = "notice"

[warnings.default.en]
title = "t"
body = "b"
"#;

const PACK_A: &str = r#"id = "a"
name = "A"
version = "1"
regions = ["*"]
max_score = 70

[[rules]]
id = "big"
script = "big.rhai"
score = 40
params = { min_amount_usd = 5000.0 }

[[rules]]
id = "shared"
script = "shared.rhai"
score = 50
min_tier = "warn"
params = { min_users = 3 }

[[rules]]
id = "flaky"
script = "flaky.rhai"
score = 10
params = { error_above = 1e12 }

[[rules]]
id = "interp"
script = "interp.rhai"
score = 25
params = { limit = 1000.0 }

[[rules]]
id = "steady"
script = "steady.rhai"
score = 20
"#;

const PACK_B: &str = r#"id = "b"
name = "B"
version = "1"
regions = ["HK"]

[[rules]]
id = "reset"
script = "reset.rhai"
score = 30
params = { hours = 24.0, on = true }

[[rules]]
id = "watch"
script = "watch.rhai"
score = 90
mode = "shadow"
params = { min = 1 }
"#;

/// A rules directory with two packs of param rules (fast path and interpreter, a pack cap,
/// a floor, errors under `on_rule_error`, a shadow rule) and `overrides` in the policy.
fn rules_dir(dir: &Path, overrides: &str) {
    let files = [
        ("policy.toml", format!("{POLICY}\n{overrides}")),
        ("a/pack.toml", PACK_A.to_string()),
        (
            "a/big.rhai",
            "tx.amount_usd >= params.min_amount_usd".into(),
        ),
        (
            "a/shared.rhai",
            "tx.dest_users_24h >= params.min_users".into(),
        ),
        (
            "a/flaky.rhai",
            "if tx.amount_usd > params.error_above { tx.no_such_field } else { tx.is_new_address }"
                .into(),
        ),
        // Arrays keep this one in the interpreter.
        (
            "a/interp.rhai",
            "let v = [tx.amount_usd];\nv[0] >= params.limit".into(),
        ),
        ("a/steady.rhai", "tx.prior_withdrawals == 0".into()),
        ("b/pack.toml", PACK_B.to_string()),
        (
            "b/reset.rhai",
            "params.on && tx.hours_since_password_reset < params.hours".into(),
        ),
        ("b/watch.rhai", "tx.withdrawals_24h >= params.min".into()),
    ];
    for (name, text) in files {
        let path = dir.join(name);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, text).expect("write");
    }
}

fn options() -> ReplayOptions {
    ReplayOptions {
        timing: false,
        ..ReplayOptions::default()
    }
}

fn replay(rules: RuleSet, specs: Vec<ParamSpec>, input: &str) -> Report {
    let mut replay = Replay::new(rules, None, options());
    replay.sweep_params(specs).expect("sweep accepted");
    replay
        .feed(
            "hk-sample.jsonl",
            Cursor::new(input.as_bytes()),
            &mut |_| {},
        )
        .expect("in-memory read");
    replay.finish()
}

/// A combination written as `policy.toml` overrides.
fn overrides(combo: &[ParamSetting]) -> String {
    let mut out = String::new();
    let mut rules: Vec<&str> = combo.iter().map(|s| s.rule.as_str()).collect();
    rules.dedup();
    for rule in rules {
        out.push_str(&format!("[params.\"{rule}\"]\n"));
        for s in combo.iter().filter(|s| s.rule == rule) {
            out.push_str(&format!("{} = {}\n", s.name, s.value));
        }
        out.push('\n');
    }
    out
}

#[test]
fn sweep_figures_equal_a_replay_with_the_overrides_in_policy_toml() {
    let input = sample();
    let dir = tempfile::tempdir().expect("tempdir");
    rules_dir(dir.path(), "");
    let rules = RuleSet::load(dir.path()).expect("rules load");
    let specs: Vec<ParamSpec> = [
        "a/big.min_amount_usd=1000,5000",
        "a/shared.min_users=2,5",
        "a/flaky.error_above=1e12,3000",
        "a/interp.limit=500,1e9",
        "b/reset.hours=1,72",
        "b/watch.min=1,3",
    ]
    .iter()
    .map(|s| ParamSpec::parse(s, &rules).expect("valid spec"))
    .collect();
    let report = replay(rules, specs, &input);
    let sweep = report.param_sweep.as_ref().expect("a sweep report");
    assert_eq!(sweep.points.len(), 64);
    let mut distinct = std::collections::BTreeSet::new();
    for point in &sweep.points {
        let written = tempfile::tempdir().expect("tempdir");
        rules_dir(written.path(), &overrides(&point.params));
        let plain = replay(
            RuleSet::load(written.path()).expect("overrides load"),
            Vec::new(),
            &input,
        );
        assert_eq!(
            point.levels,
            plain.levels,
            "{}",
            riskgate::replay::describe_params(&point.params)
        );
        distinct.insert(format!("{:?}", point.levels));
    }
    // The values matter: the combinations do not all give the same figures.
    assert!(distinct.len() > 8, "{} distinct", distinct.len());
    // The swept values as given: an integer for a float param became a float.
    assert_eq!(
        sweep.points[0].params[0].value,
        riskgate::ParamValue::Float(1000.0)
    );
}

#[test]
fn the_report_without_a_sweep_is_unchanged_and_a_sweep_of_the_packs_values_matches_it() {
    let input = sample();
    let dir = tempfile::tempdir().expect("tempdir");
    rules_dir(dir.path(), "");
    let plain = replay(RuleSet::load(dir.path()).expect("load"), Vec::new(), &input);
    assert!(plain.param_sweep.is_none());
    let rules = RuleSet::load(dir.path()).expect("load");
    let spec = ParamSpec::parse("a/big.min_amount_usd=5000.0", &rules).expect("spec");
    let swept = replay(rules, vec![spec], &input);
    let sweep = swept.param_sweep.as_ref().expect("sweep");
    assert_eq!(sweep.points.len(), 1);
    assert_eq!(sweep.points[0].levels, plain.levels);
    // Everything else in the report is the plain replay's.
    assert_eq!(swept.levels, plain.levels);
    assert_eq!(swept.rules, plain.rules);
}

#[test]
fn bad_param_specs_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    rules_dir(dir.path(), "");
    let rules = RuleSet::load(dir.path()).expect("load");
    for bad in [
        "a/big.min_amount_usd",
        "a/big=1",
        "a/nope.x=1",
        "a/big.nope=1",
        "a/big.min_amount_usd=cheap",
        "a/shared.min_users=2.5",
        "b/reset.on=yes",
        "a/steady.x=1",
    ] {
        let e = ParamSpec::parse(bad, &rules).expect_err(bad);
        assert!(e.to_string().contains("--param"), "{bad}: {e}");
    }
}

#[test]
fn replay_param_on_the_command_line_text_and_json() {
    let dir = tempfile::tempdir().expect("tempdir");
    rules_dir(dir.path(), "");
    let fixture = root().join("fixtures/hk-sample.jsonl");
    let run = |extra: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_riskgate"))
            .args(["replay", "--no-timing", "--rules"])
            .arg(dir.path())
            .args(extra)
            .arg(&fixture)
            .output()
            .expect("runs")
    };
    let json = run(&[
        "--json",
        "--param",
        "a/big.min_amount_usd=1000,5000",
        "--param",
        "b/reset.hours=1,72",
    ]);
    assert!(
        json.status.success(),
        "{}",
        String::from_utf8_lossy(&json.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&json.stdout).expect("JSON");
    let points = report["param_sweep"]["points"].as_array().expect("points");
    assert_eq!(points.len(), 4);
    assert_eq!(points[1]["params"][1]["value"], serde_json::json!(72.0));
    let levels: Vec<&str> = points[0]["levels"]
        .as_array()
        .expect("levels")
        .iter()
        .map(|l| l["level"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(levels, ["notice", "warn", "cool_off"]);
    for key in ["recall", "usd_recall", "precision", "friction"] {
        assert!(points[0]["levels"][1].get(key).is_some(), "{key}");
    }

    let text = run(&["--param", "a/big.min_amount_usd=1000,5000"]);
    assert!(text.status.success());
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("PARAM SWEEP"), "{text}");
    assert!(text.contains("a/big.min_amount_usd=1000.0"), "{text}");

    // The HTML report has the sweep too: a row per combination with its values and figures,
    // which are the JSON's.
    let html_path = dir.path().join("report.html");
    let html_run = run(&[
        "--html",
        html_path.to_str().expect("utf-8 path"),
        "--param",
        "a/big.min_amount_usd=1000,5000",
        "--param",
        "b/reset.hours=1,72",
    ]);
    assert!(html_run.status.success());
    let html = std::fs::read_to_string(&html_path).expect("html written");
    let section = html
        .split("<section id=\"param-sweep\">")
        .nth(1)
        .and_then(|rest| rest.split("</section>").next())
        .expect("a param sweep section");
    assert!(
        section.contains("<code>a/big.min_amount_usd</code>"),
        "{section}"
    );
    assert!(section.contains("<code>b/reset.hours</code>"), "{section}");
    assert_eq!(section.matches("<tr><td>").count(), 4, "{section}");
    let warn_recall = |p: &serde_json::Value| {
        format!(
            "{:.1}%",
            p["levels"][1]["recall"].as_f64().expect("recall") * 100.0
        )
    };
    let second_row = section.split("<tr><td>2</td>").nth(1).expect("row 2");
    assert!(
        second_row.starts_with(&format!(
            "<td>1000.0</td><td>72.0</td><td>{}</td>",
            warn_recall(&points[1])
        )),
        "{second_row}"
    );

    let bad = run(&["--param", "a/big.nope=1"]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("no param"));
}
