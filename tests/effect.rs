//! Measuring what warnings do: the warning effect in `replay` (text, JSON, HTML), the live
//! measurement `riskgate effect` over a decision log, and the response model `riskgate respond`
//! whose true effect replay must recover.

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;
use support::contract::{cli, json_lines, repo};

/// The shipped rules with a `[holdout]` table appended, in a temp dir.
fn shipped_rules_with(holdout: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&repo().join("rules"), dir.path());
    let policy = dir.path().join("policy.toml");
    let mut text = std::fs::read_to_string(&policy).unwrap();
    text.push_str(&format!("\n[holdout]\n{holdout}\n"));
    std::fs::write(&policy, text).unwrap();
    dir
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn run_ok(args: &[&str]) -> String {
    let (code, out, err) = cli(args, None);
    assert_eq!(code, 0, "{args:?}: {err}");
    out
}

/// A generated stream written to `dir/gen.jsonl`.
fn generated(dir: &Path, users: &str, seed: &str) -> PathBuf {
    let path = dir.join("gen.jsonl");
    run_ok(&[
        "gen",
        "--users",
        users,
        "--days",
        "30",
        "--seed",
        seed,
        "--out",
        s(&path),
    ]);
    path
}

/// `riskgate respond` with the given extra arguments, written to `dir/<name>`.
fn responded(dir: &Path, rules: &Path, input: &Path, name: &str, model: &[&str]) -> PathBuf {
    let path = dir.join(name);
    let mut args = vec!["respond", "--rules", s(rules), "--out", s(&path)];
    args.extend_from_slice(model);
    args.push(s(input));
    run_ok(&args);
    path
}

fn replay_json(rules: &Path, stream: &Path) -> Value {
    let out = run_ok(&[
        "replay",
        "--rules",
        s(rules),
        "--no-timing",
        "--json",
        s(stream),
    ]);
    serde_json::from_str(&out).unwrap()
}

fn tier_row<'a>(effect: &'a Value, tier: &str) -> &'a Value {
    effect["tiers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["tier"] == tier)
        .unwrap_or_else(|| panic!("no {tier} row in {effect}"))
}

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

// ---- the generator's true effect is recovered ----------------------------------------------

#[test]
fn replay_interval_contains_the_true_effect_of_the_response_model() {
    let dir = tempfile::tempdir().unwrap();
    let rules =
        shipped_rules_with("share = 0.5\nsalt = \"effect-test\"\ntiers = [\"notice\", \"warn\"]");
    let stream = generated(dir.path(), "2000", "3");
    let out = responded(
        dir.path(),
        rules.path(),
        &stream,
        "r.jsonl",
        &[
            "--cancel-if-warned",
            "0.35",
            "--base-cancel",
            "0.10",
            "--seed",
            "5",
        ],
    );
    let report = replay_json(rules.path(), &out);
    let notice = tier_row(&report["effect"], "notice");
    assert!(
        f(&notice["warned"]) >= 300.0 && f(&notice["held_out"]) >= 300.0,
        "{notice}"
    );
    let truth = 0.35 - 0.10;
    let (low, high) = (f(&notice["ci_low"]), f(&notice["ci_high"]));
    assert!(
        low <= truth && truth <= high,
        "true effect {truth} outside [{low}, {high}]"
    );
    assert!(
        low > 0.0,
        "an effect this large is detected: [{low}, {high}]"
    );
    // Labeled streams: the same split by scam and legit, each summing to the whole.
    for field in [
        "warned",
        "warned_cancelled",
        "held_out",
        "held_out_cancelled",
    ] {
        assert_eq!(
            f(&notice["scam"][field]) + f(&notice["legit"][field]),
            f(&notice[field]),
            "{field}"
        );
    }
}

#[test]
fn with_no_true_effect_the_interval_covers_zero() {
    let dir = tempfile::tempdir().unwrap();
    let rules =
        shipped_rules_with("share = 0.5\nsalt = \"effect-test\"\ntiers = [\"notice\", \"warn\"]");
    let stream = generated(dir.path(), "2000", "3");
    let out = responded(
        dir.path(),
        rules.path(),
        &stream,
        "r.jsonl",
        &[
            "--cancel-if-warned",
            "0.10",
            "--base-cancel",
            "0.10",
            // A 95% interval misses zero once in twenty draws by design: with pack 2026.12.4
            // the draw of seed 9 does (notice: [-0.076, -0.005]); over seeds 1-12, 2 of 24
            // intervals miss (1 of 24 with pack 2026.12.3), as chance has it.
            "--seed",
            "1",
        ],
    );
    let report = replay_json(rules.path(), &out);
    for tier in ["notice", "warn"] {
        let row = tier_row(&report["effect"], tier);
        let (low, high) = (f(&row["ci_low"]), f(&row["ci_high"]));
        assert!(low <= 0.0 && 0.0 <= high, "{tier}: [{low}, {high}]");
    }
}

#[test]
fn respond_is_deterministic_and_sets_status_on_every_withdrawal() {
    let dir = tempfile::tempdir().unwrap();
    let rules = shipped_rules_with("share = 0.2\nsalt = \"s\"");
    let stream = generated(dir.path(), "200", "1");
    let model = [
        "--cancel-if-warned",
        "0.5",
        "--base-cancel",
        "0.05",
        "--seed",
        "2",
    ];
    let a = responded(dir.path(), rules.path(), &stream, "a.jsonl", &model);
    let b = responded(dir.path(), rules.path(), &stream, "b.jsonl", &model);
    let a_text = std::fs::read_to_string(&a).unwrap();
    assert_eq!(a_text, std::fs::read_to_string(&b).unwrap());
    let input = json_lines(&std::fs::read_to_string(&stream).unwrap());
    let output = json_lines(&a_text);
    assert_eq!(input.len(), output.len());
    for (i, o) in input.iter().zip(&output) {
        if o["kind"] == "withdrawal" {
            assert!(
                o["status"] == "completed" || o["status"] == "cancelled",
                "{o}"
            );
            assert_eq!(i["typology"], o["typology"]);
            assert_eq!(i["id"], o["id"]);
        } else {
            assert_eq!(i, o);
        }
    }
}

#[test]
fn per_typology_and_per_key_probabilities_pick_exactly_the_warned_users() {
    let dir = tempfile::tempdir().unwrap();
    let rules = shipped_rules_with("share = 0.3\nsalt = \"s\"\ntiers = [\"notice\", \"warn\"]");
    let stream = generated(dir.path(), "400", "4");
    // Only warned telegram-coach withdrawals, and warned ones shown hk-police/scameter, cancel.
    let out = responded(
        dir.path(),
        rules.path(),
        &stream,
        "r.jsonl",
        &[
            "--cancel-if-warned-typology",
            "telegram-coach=1",
            "--cancel-if-warned-key",
            "hk-police/scameter=1",
        ],
    );
    // Score the responded stream: it observes the same statuses, so it decides as respond did.
    let (_, decisions, err) = cli(&["score", "--rules", s(rules.path()), s(&out)], None);
    assert!(err.is_empty(), "{err}");
    let decisions = json_lines(&decisions);
    let events: Vec<Value> = json_lines(&std::fs::read_to_string(&out).unwrap())
        .into_iter()
        .filter(|e| e["kind"] == "withdrawal")
        .collect();
    assert_eq!(events.len(), decisions.len());
    let mut cancelled = 0;
    for (e, d) in events.iter().zip(&decisions) {
        assert_eq!(e["id"], d["id"]);
        let shown = d["warning"].is_object();
        let expected = shown
            && (e["typology"] == "telegram-coach" || d["warning"]["key"] == "hk-police/scameter");
        assert_eq!(e["status"] == "cancelled", expected, "{e} {d}");
        cancelled += usize::from(expected);
    }
    assert!(cancelled > 0);
}

// ---- replay's figures, recomputed from `riskgate score` output -----------------------------

/// The Wilson interval and Newcombe's hybrid score interval, written out again here.
fn newcombe(x1: f64, n1: f64, x2: f64, n2: f64) -> (f64, f64, f64) {
    let z: f64 = 1.959963984540054;
    let wilson = |x: f64, n: f64| {
        let p = x / n;
        let d = 1.0 + z * z / n;
        let c = (p + z * z / (2.0 * n)) / d;
        let h = z * (p * (1.0 - p) / n + z * z / (4.0 * n * n)).sqrt() / d;
        (c - h, c + h)
    };
    let ((l1, u1), (l2, u2)) = (wilson(x1, n1), wilson(x2, n2));
    let (p1, p2) = (x1 / n1, x2 / n2);
    let d = p1 - p2;
    (
        d,
        d - ((p1 - l1).powi(2) + (u2 - p2).powi(2)).sqrt(),
        d + ((u1 - p1).powi(2) + (p2 - l2).powi(2)).sqrt(),
    )
}

#[test]
fn replay_figures_match_a_recount_of_score_output_and_statuses() {
    let dir = tempfile::tempdir().unwrap();
    let rules =
        shipped_rules_with("share = 0.4\nsalt = \"recount\"\ntiers = [\"notice\", \"warn\"]");
    let stream = generated(dir.path(), "600", "8");
    let out = responded(
        dir.path(),
        rules.path(),
        &stream,
        "r.jsonl",
        &[
            "--cancel-if-warned",
            "0.3",
            "--base-cancel",
            "0.1",
            "--seed",
            "1",
        ],
    );
    let decisions = json_lines(&run_ok(&["score", "--rules", s(rules.path()), s(&out)]));
    let events: Vec<Value> = json_lines(&std::fs::read_to_string(&out).unwrap())
        .into_iter()
        .filter(|e| e["kind"] == "withdrawal")
        .collect();
    // (tier, key, locale) -> [warned, warned cancelled, held, held cancelled]
    let mut cells: BTreeMap<(String, String, String), [f64; 4]> = BTreeMap::new();
    let mut tiers: BTreeMap<String, [f64; 4]> = BTreeMap::new();
    for (e, d) in events.iter().zip(&decisions) {
        assert_eq!(e["id"], d["id"]);
        if d["tier"] == "allow" {
            continue;
        }
        let held = d["holdout"] == true;
        let w = if held { &d["withheld"] } else { &d["warning"] };
        let key = (
            d["tier"].as_str().unwrap().to_string(),
            w["key"].as_str().unwrap().to_string(),
            w["locale"].as_str().unwrap().to_string(),
        );
        let cancelled = f64::from(u8::from(e["status"] == "cancelled"));
        let at = if held { 2 } else { 0 };
        for counts in [
            cells.entry(key.clone()).or_default(),
            tiers.entry(key.0).or_default(),
        ] {
            counts[at] += 1.0;
            counts[at + 1] += cancelled;
        }
    }
    let report = replay_json(rules.path(), &out);
    let effect = &report["effect"];
    let check = |row: &Value, c: &[f64; 4]| {
        assert_eq!(f(&row["warned"]), c[0], "{row}");
        assert_eq!(f(&row["warned_cancelled"]), c[1], "{row}");
        assert_eq!(f(&row["held_out"]), c[2], "{row}");
        assert_eq!(f(&row["held_out_cancelled"]), c[3], "{row}");
        if c[0] > 0.0 && c[2] > 0.0 {
            let (d, l, u) = newcombe(c[1], c[0], c[3], c[2]);
            assert!((f(&row["difference"]) - d).abs() < 1e-9, "{row}");
            assert!((f(&row["ci_low"]) - l.max(-1.0)).abs() < 1e-9, "{row}");
            assert!((f(&row["ci_high"]) - u.min(1.0)).abs() < 1e-9, "{row}");
        } else {
            assert!(row["difference"].is_null(), "{row}");
        }
    };
    assert_eq!(effect["tiers"].as_array().unwrap().len(), tiers.len());
    for (tier, c) in &tiers {
        check(tier_row(effect, tier), c);
    }
    let rows = effect["warnings"].as_array().unwrap();
    assert_eq!(rows.len(), cells.len());
    for ((tier, key, locale), c) in &cells {
        let row = rows
            .iter()
            .find(|r| {
                r["tier"] == tier.as_str()
                    && r["warning"] == key.as_str()
                    && r["locale"] == locale.as_str()
            })
            .unwrap_or_else(|| panic!("no row for {tier} {key} {locale}"));
        check(row, c);
    }
    assert!(
        tiers["notice"][2] > 0.0,
        "some notice withdrawals were held out"
    );
    assert_eq!(effect["ruleset"], report["ruleset"]["id"]);
}

#[test]
fn replay_reports_name_the_rule_set_the_figures_hold_for() {
    let dir = tempfile::tempdir().unwrap();
    let rules = shipped_rules_with("share = 0.1\nsalt = \"s\"");
    let fixture = repo().join("fixtures/hk-sample.jsonl");
    let html = dir.path().join("r.html");
    let text = run_ok(&[
        "replay",
        "--rules",
        s(rules.path()),
        "--no-timing",
        "--html",
        s(&html),
        s(&fixture),
    ]);
    let id = replay_json(rules.path(), &fixture)["ruleset"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(text.contains("WARNING EFFECT"), "{text}");
    let words = text.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        words.contains(&format!(
            "rule set {id} only if it was the rule set live when the stream was recorded"
        )),
        "{text}"
    );
    let html = std::fs::read_to_string(html).unwrap();
    assert!(html.contains("id=\"effect\""));
    assert!(html.contains(&id));
}

#[test]
fn replay_without_a_holdout_has_no_effect_section() {
    let fixture = repo().join("fixtures/hk-sample.jsonl");
    let report = replay_json(&repo().join("rules"), &fixture);
    assert!(report.get("effect").is_none());
}

// ---- riskgate effect: the live measurement -------------------------------------------------

#[test]
fn effect_over_the_decision_log_gives_the_replay_figures() {
    let dir = tempfile::tempdir().unwrap();
    let rules = shipped_rules_with("share = 0.4\nsalt = \"live\"\ntiers = [\"notice\", \"warn\"]");
    let stream = generated(dir.path(), "400", "2");
    let out = responded(
        dir.path(),
        rules.path(),
        &stream,
        "r.jsonl",
        &["--cancel-if-warned", "0.3", "--base-cancel", "0.1"],
    );
    let log = dir.path().join("decisions.log");
    run_ok(&[
        "score",
        "--rules",
        s(rules.path()),
        "--log",
        s(&log),
        s(&out),
    ]);
    let live: Value =
        serde_json::from_str(&run_ok(&["effect", "--log", s(&log), "--json", s(&out)])).unwrap();
    let replayed = replay_json(rules.path(), &out);
    assert_eq!(live["without_outcome"]["count"], 0);
    assert_eq!(live["without_decision"]["count"], 0);
    let rulesets = live["rulesets"].as_array().unwrap();
    assert_eq!(rulesets.len(), 1);
    let (a, b) = (&rulesets[0], &replayed["effect"]);
    assert_eq!(a["ruleset"], b["ruleset"]);
    assert_eq!(a["tiers"], b["tiers"]);
    assert_eq!(a["warnings"], b["warnings"]);
    assert_eq!(a["allow"], b["allow"]);
    let text = run_ok(&["effect", "--log", s(&log), s(&out)]);
    assert!(text.contains("WARNING EFFECT"), "{text}");
    assert!(text.contains(a["ruleset"].as_str().unwrap()), "{text}");
}

#[test]
fn effect_names_decisions_without_outcome_and_outcomes_without_decision() {
    let dir = tempfile::tempdir().unwrap();
    let rules = shipped_rules_with("share = 0.4\nsalt = \"live\"");
    let fixture = repo().join("fixtures/hk-sample.jsonl");
    let log = dir.path().join("decisions.log");
    run_ok(&[
        "score",
        "--rules",
        s(rules.path()),
        "--log",
        s(&log),
        s(&fixture),
    ]);
    // Outcomes: every withdrawal but the first three, plus two the log never decided.
    let lines: Vec<String> = std::fs::read_to_string(&fixture)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    let withdrawals: Vec<&String> = lines
        .iter()
        .filter(|l| l.contains("\"withdrawal\""))
        .collect();
    let dropped: Vec<String> = withdrawals[..3]
        .iter()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["id"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    let mut outcomes: Vec<String> = withdrawals[3..].iter().map(|l| l.to_string()).collect();
    for id in ["never-1", "never-2"] {
        let mut v: Value = serde_json::from_str(withdrawals[0]).unwrap();
        v["id"] = Value::from(id);
        v["status"] = Value::from("cancelled");
        outcomes.push(v.to_string());
    }
    let events = dir.path().join("outcomes.jsonl");
    std::fs::write(&events, outcomes.join("\n")).unwrap();
    let live: Value =
        serde_json::from_str(&run_ok(&["effect", "--log", s(&log), "--json", s(&events)])).unwrap();
    assert_eq!(live["without_outcome"]["count"], 3);
    assert_eq!(live["without_outcome"]["ids"], serde_json::json!(dropped));
    assert_eq!(live["without_decision"]["count"], 2);
    assert_eq!(
        live["without_decision"]["ids"],
        serde_json::json!(["never-1", "never-2"])
    );
    assert_eq!(
        live["matched"].as_u64().unwrap() as usize,
        withdrawals.len() - 3
    );
    let text = run_ok(&["effect", "--log", s(&log), s(&events)]);
    assert!(
        text.contains("decisions without an outcome (left out): 3"),
        "{text}"
    );
    assert!(text.contains("never-1"), "{text}");
}

#[test]
fn effect_refuses_a_broken_log() {
    let dir = tempfile::tempdir().unwrap();
    let rules = shipped_rules_with("share = 0.4\nsalt = \"live\"");
    let fixture = repo().join("fixtures/hk-sample.jsonl");
    let log = dir.path().join("decisions.log");
    run_ok(&[
        "score",
        "--rules",
        s(rules.path()),
        "--log",
        s(&log),
        s(&fixture),
    ]);
    let text = std::fs::read_to_string(&log).unwrap();
    let tampered = text.replacen("\"holdout\":true", "\"holdout\":false", 1);
    assert_ne!(text, tampered, "some decision was held out");
    std::fs::write(&log, tampered).unwrap();
    let (code, out, err) = cli(&["effect", "--log", s(&log), s(&fixture)], None);
    assert_ne!(code, 0);
    assert!(out.is_empty(), "{out}");
    assert!(err.contains("chain breaks at line"), "{err}");
}
