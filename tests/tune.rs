//! `riskgate tune` (issue 10): param values x tier thresholds searched on half of the users
//! for the most scam withdrawals at >= warn within friction budgets; both halves reported;
//! the suggestion printed as `policy.toml` TOML; the same bytes on every run.

use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use riskgate::replay::{ParamSpec, Replay, ReplayOptions, Tune, TuneOptions, TuneReport};
use riskgate::{RuleSet, Tier};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn fixture() -> PathBuf {
    root().join("fixtures/hk-sample.jsonl")
}

const POLICY: &str = r#"[tiers]
notice = 20
warn = 50
cool_off = 90

[errors]
on_rule_error = "ignore"

[warnings.default.en]
title = "t"
body = "b"
"#;

const PACK: &str = r#"id = "a"
name = "A"
version = "1"
regions = ["*"]

[[rules]]
id = "big"
script = "big.rhai"
score = 40
params = { min_amount_usd = 5000.0 }

[[rules]]
id = "shared"
script = "shared.rhai"
score = 50
params = { min_users = 3 }

[[rules]]
id = "young"
script = "young.rhai"
score = 30
params = { max_days = 30 }

[[rules]]
id = "first"
script = "first.rhai"
score = 20
"#;

fn rules_dir(dir: &Path, extra_policy: &str) {
    let files = [
        ("policy.toml", format!("{POLICY}\n{extra_policy}")),
        ("a/pack.toml", PACK.to_string()),
        (
            "a/big.rhai",
            "tx.amount_usd >= params.min_amount_usd".into(),
        ),
        (
            "a/shared.rhai",
            "tx.dest_users_24h >= params.min_users".into(),
        ),
        (
            "a/young.rhai",
            "tx.account_age_days <= params.max_days && tx.is_new_address".into(),
        ),
        ("a/first.rhai", "tx.prior_withdrawals == 0".into()),
    ];
    for (name, text) in files {
        let path = dir.join(name);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, text).expect("write");
    }
}

const PARAMS: [&str; 3] = [
    "a/big.min_amount_usd=1000,3000,5000",
    "a/shared.min_users=2,4",
    "a/young.max_days=7,30,90",
];

fn tune_lib(dir: &Path, max_friction: f64) -> TuneReport {
    let rules = RuleSet::load(dir).expect("rules load");
    let specs = PARAMS
        .iter()
        .map(|p| ParamSpec::parse(p, &rules).expect("spec"))
        .collect();
    let options = TuneOptions {
        max_friction,
        max_cool_off_friction: None,
    };
    let mut tune = Tune::new(rules, specs, options).expect("tune");
    let text = std::fs::read(fixture()).expect("fixture");
    tune.feed("hk-sample.jsonl", Cursor::new(text), &mut |_| {})
        .expect("read");
    tune.finish(&mut |_, _| {})
}

fn cli(args: &[&str], dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_riskgate"))
        .arg("tune")
        .arg("--rules")
        .arg(dir)
        .args(args)
        .arg(fixture())
        .output()
        .expect("runs")
}

#[test]
fn the_output_is_byte_identical_across_runs() {
    let dir = tempfile::tempdir().expect("tempdir");
    rules_dir(dir.path(), "");
    let mut args = vec!["--max-friction", "5"];
    for p in PARAMS {
        args.extend(["--param", p]);
    }
    let first = cli(&args, dir.path());
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let second = cli(&args, dir.path());
    assert_eq!(first.stdout, second.stdout);
    // Not a terminal: no progress bar on stderr.
    assert!(
        first.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let text = String::from_utf8_lossy(&first.stdout);
    for part in [
        "tuning half",
        "checking half",
        "SUGGESTED policy.toml",
        "[params.\"a/big\"]",
        "[tiers]",
    ] {
        assert!(text.contains(part), "missing {part}:\n{text}");
    }
    args.push("--json");
    let json_a = cli(&args, dir.path());
    let json_b = cli(&args, dir.path());
    assert!(json_a.status.success());
    assert_eq!(json_a.stdout, json_b.stdout);
    let report: serde_json::Value = serde_json::from_slice(&json_a.stdout).expect("JSON");
    assert_eq!(report["candidates"].as_array().map(Vec::len), Some(18));
}

#[test]
fn the_best_combination_has_the_highest_recall_at_warn_within_the_budgets() {
    let dir = tempfile::tempdir().expect("tempdir");
    rules_dir(dir.path(), "");
    let budget = 0.05;
    let report = tune_lib(dir.path(), budget);
    assert_eq!(report.candidates.len(), 18);
    let best = report.best.as_ref().expect("something fits 5%");
    let warn = &best.tuning.at_warn;
    assert_eq!(warn.level, Tier::Warn);
    assert!(warn.friction.unwrap_or(0.0) <= budget + 1e-12, "{warn:?}");
    assert!(
        best.tuning.at_cool_off.friction.unwrap_or(0.0) <= budget / 10.0 + 1e-12,
        "{:?}",
        best.tuning.at_cool_off
    );
    let most = report
        .candidates
        .iter()
        .filter(|c| c.cool_off.is_some())
        .filter_map(|c| c.at_warn.as_ref())
        .map(|m| m.scam_flagged)
        .max();
    assert_eq!(Some(warn.scam_flagged), most);
    // The halves split the withdrawals, and both have some.
    let [tuning, checking] = &report.halves;
    assert!(tuning.withdrawals > 0 && checking.withdrawals > 0);
}

#[test]
fn the_suggestion_written_into_policy_toml_decides_as_reported() {
    let dir = tempfile::tempdir().expect("tempdir");
    rules_dir(dir.path(), "");
    let report = tune_lib(dir.path(), 0.05);
    let best = report.best.as_ref().expect("something fits");
    // The suggested TOML replaces [tiers] and adds the overrides.
    let suggested = report.suggested_toml();
    let written = tempfile::tempdir().expect("tempdir");
    rules_dir(written.path(), "");
    let policy = POLICY.replace("[tiers]\nnotice = 20\nwarn = 50\ncool_off = 90\n", "");
    std::fs::write(
        written.path().join("policy.toml"),
        format!("{policy}\n{suggested}"),
    )
    .expect("write");
    let rules = RuleSet::load(written.path()).expect("the suggestion loads");
    let t = rules.policy().thresholds;
    assert_eq!(
        (t.notice, t.warn, t.cool_off),
        (best.notice, best.warn, best.cool_off)
    );
    let mut replay = Replay::new(
        rules,
        None,
        ReplayOptions {
            timing: false,
            ..ReplayOptions::default()
        },
    );
    let text = std::fs::read(fixture()).expect("fixture");
    replay
        .feed("hk-sample.jsonl", Cursor::new(text), &mut |_| {})
        .expect("read");
    let plain = replay.finish();
    // Over all users, the two halves' figures add up.
    for (level, tuning, checking) in [
        (Tier::Warn, &best.tuning.at_warn, &best.checking.at_warn),
        (
            Tier::CoolOff,
            &best.tuning.at_cool_off,
            &best.checking.at_cool_off,
        ),
    ] {
        let all = plain.level(level).expect("level");
        assert_eq!(
            all.scam_flagged,
            tuning.scam_flagged + checking.scam_flagged
        );
        assert_eq!(
            all.legit_flagged,
            tuning.legit_flagged + checking.legit_flagged
        );
    }
}

#[test]
fn tune_without_params_searches_the_thresholds_alone() {
    let dir = tempfile::tempdir().expect("tempdir");
    rules_dir(dir.path(), "");
    let out = cli(
        &["--max-friction", "3", "--max-cool-off", "0.5"],
        dir.path(),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("(the rules' own params)"), "{text}");
    assert!(!text.contains("[params."), "{text}");
}

#[test]
fn bad_arguments_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    rules_dir(dir.path(), "");
    for args in [
        &["--max-friction", "500"][..],
        &["--max-friction", "2", "--param", "a/big.nope=1"][..],
        &["--max-friction", "2", "--param", "a/big.min_amount_usd=x"][..],
    ] {
        let out = cli(args, dir.path());
        assert!(!out.status.success(), "{args:?}");
        assert!(!out.stderr.is_empty());
    }
}
