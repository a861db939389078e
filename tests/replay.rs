//! `riskgate replay` (issue 3): figures, sweep, optimizer, baseline, reports.
//!
//! Golden files live in tests/golden/; after an intended change, regenerate them with
//! `UPDATE_GOLDEN=1 cargo test --test replay` and review the diff.

use std::collections::HashMap;
use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::process::Command;

use riskgate::gen::{generate, GenConfig};
use riskgate::replay::{render_html, render_text, Replay, ReplayOptions, Report};
use riskgate::{Event, EventStream, Label, LineReader, Processed, RuleSet, Scorer, Tier};

/// The binary under test; `RISKGATE_BIN` overrides it (for worktrees sharing one target dir,
/// where `target/debug/riskgate` may be another checkout's build).
fn bin() -> PathBuf {
    std::env::var_os("RISKGATE_BIN").map_or_else(
        || PathBuf::from(env!("CARGO_BIN_EXE_riskgate")),
        PathBuf::from,
    )
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn no_timing() -> ReplayOptions {
    ReplayOptions {
        timing: false,
        ..ReplayOptions::default()
    }
}

fn replay_text(
    rules: &Path,
    baseline: Option<&Path>,
    input: &str,
    options: ReplayOptions,
) -> Report {
    let rules = RuleSet::load(rules).expect("rules load");
    let baseline = baseline.map(|b| RuleSet::load(b).expect("baseline loads"));
    let mut replay = Replay::new(rules, baseline, options);
    replay
        .feed("input.jsonl", Cursor::new(input.as_bytes()), &mut |_| {})
        .expect("in-memory read");
    replay.finish()
}

fn replay_file(
    rules: &Path,
    baseline: Option<&Path>,
    file: &Path,
    options: ReplayOptions,
) -> Report {
    let text = std::fs::read_to_string(file).expect("fixture readable");
    let rules = RuleSet::load(rules).expect("rules load");
    let baseline = baseline.map(|b| RuleSet::load(b).expect("baseline loads"));
    let mut replay = Replay::new(rules, baseline, options);
    replay
        .feed(
            "fixtures/hk-sample.jsonl",
            Cursor::new(text.into_bytes()),
            &mut |_| {},
        )
        .expect("in-memory read");
    replay.finish()
}

/// Compares with a golden file, showing the first difference; UPDATE_GOLDEN=1 rewrites it.
fn golden(name: &str, actual: &str) {
    let path = root().join("tests/golden").join(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, actual).expect("golden writable");
        return;
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|_| panic!("missing {}; run with UPDATE_GOLDEN=1", path.display()));
    if expected != actual {
        let (e, a): (Vec<&str>, Vec<&str>) = (expected.lines().collect(), actual.lines().collect());
        let at = e
            .iter()
            .zip(&a)
            .position(|(x, y)| x != y)
            .unwrap_or(e.len().min(a.len()));
        panic!(
            "{} differs at line {}:\n  expected: {:?}\n  actual:   {:?}\n({} vs {} lines; UPDATE_GOLDEN=1 cargo test --test replay to accept)",
            path.display(),
            at + 1,
            e.get(at),
            a.get(at),
            e.len(),
            a.len()
        );
    }
}

/// A rules directory written from (relative path, contents) pairs.
fn rules_dir(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    for (path, text) in files {
        let p = dir.path().join(path);
        std::fs::create_dir_all(p.parent().expect("has parent")).expect("mkdir");
        std::fs::write(p, text).expect("write");
    }
    dir
}

const POLICY: &str = r#"
[tiers]
notice = 10
warn = 50
cool_off = 90
[errors]
on_rule_error = "ignore"
[warnings.default.en]
title = "Check"
body = "Check before you send."
"#;

/// Pack `t`: `amount` scores round(amount / 100); `floor` (score 1, min_tier warn) hits the
/// destination "FLOOR"; `boost` (shadow) would add 50 from 6000 USD. The pack is capped at 100.
const PACK: &str = r#"
id = "t"
regions = ["*"]
max_score = 100
[[rules]]
id = "amount"
script = "amount.rhai"
score = 1
[[rules]]
id = "floor"
script = "floor.rhai"
score = 1
min_tier = "warn"
[[rules]]
id = "boost"
script = "boost.rhai"
score = 50
mode = "shadow"
"#;

fn hand_made_rules() -> tempfile::TempDir {
    rules_dir(&[
        ("policy.toml", POLICY),
        ("t/pack.toml", PACK),
        ("t/amount.rhai", "tx.amount_usd / 100.0"),
        ("t/floor.rhai", "tx.destination == \"FLOOR\""),
        ("t/boost.rhai", "tx.amount_usd >= 6000.0"),
    ])
}

fn wd(id: &str, user: &str, amount: f64, destination: &str, label: &str) -> String {
    format!(
        r#"{{"kind":"withdrawal","id":"{id}","ts":"2026-11-01T10:00:00Z","user_id":"{user}","asset":"USDT","network":"TRON","amount_usd":{amount},"destination":"{destination}","user":{{"country":"HK","created_at":"2025-01-01T00:00:00Z"}},"label":"{label}"}}"#
    )
}

/// Scores: w1 10 legit, w2 20 legit, w3 30 scam, w4 40 legit, w5 60 scam, w6 80 scam,
/// w7 2 legit with floor warn, w8 95 scam.
fn hand_made_stream() -> String {
    [
        wd("w1", "a", 1000.0, "X1", "legit"),
        wd("w2", "b", 2000.0, "X2", "legit"),
        wd("w3", "c", 3000.0, "X3", "scam"),
        wd("w4", "d", 4000.0, "X4", "legit"),
        wd("w5", "e", 6000.0, "X5", "scam"),
        wd("w6", "f", 8000.0, "X6", "scam"),
        wd("w7", "g", 100.0, "FLOOR", "legit"),
        wd("w8", "h", 9500.0, "X8", "scam"),
    ]
    .join("\n")
}

#[test]
fn sweep_re_tiers_recorded_scores_and_floors() {
    let rules = hand_made_rules();
    let report = replay_text(rules.path(), None, &hand_made_stream(), no_timing());
    let got: Vec<(i64, u64, u64)> = report
        .sweep
        .iter()
        .map(|p| (p.warn, p.metrics.scam_flagged, p.metrics.legit_flagged))
        .collect();
    // w7's floor keeps it flagged at every threshold.
    assert_eq!(
        got,
        vec![
            (2, 4, 4),
            (10, 4, 4),
            (20, 4, 3),
            (30, 4, 2),
            (40, 3, 2),
            (60, 3, 1),
            (80, 2, 1),
            (95, 1, 1),
            (96, 0, 1)
        ]
    );
    let at40 = &report
        .sweep
        .iter()
        .find(|p| p.warn == 40)
        .expect("40 is a candidate")
        .metrics;
    assert_eq!(at40.recall, Some(0.75));
    assert_eq!(at40.usd_recall, Some(23_500.0 / 26_500.0));
    assert_eq!(at40.precision, Some(0.6));
    assert_eq!(at40.friction, Some(0.5));
    // The policy's own figures agree with the sweep row for warn = 50 (equivalent to 60).
    let warn = report.level(Tier::Warn).expect("labeled");
    assert_eq!((warn.scam_flagged, warn.legit_flagged), (3, 1));
}

#[test]
fn optimizer_finds_the_known_best_thresholds() {
    let rules = hand_made_rules();
    let options = ReplayOptions {
        max_friction: Some(0.5),
        max_cool_off_friction: Some(0.0),
        ..no_timing()
    };
    let report = replay_text(rules.path(), None, &hand_made_stream(), options);
    let opt = report.optimum.expect("asked for");
    // 50% of 4 legit = 2: warn 30 flags all 4 scam with w4 and w7; cool_off with no legit: 60.
    assert_eq!(opt.warn, Some(30));
    assert_eq!(opt.cool_off, Some(60));
    assert_eq!(opt.notice, Some(10));
    let at_warn = opt.at_warn.expect("feasible");
    assert_eq!((at_warn.scam_flagged, at_warn.legit_flagged), (4, 2));
    let at_cool = opt.at_cool_off.expect("feasible");
    assert_eq!((at_cool.scam_flagged, at_cool.legit_flagged), (3, 0));
    assert_eq!(opt.note, None);
}

#[test]
fn optimizer_reports_when_floors_alone_break_the_budget() {
    let rules = hand_made_rules();
    let options = ReplayOptions {
        max_friction: Some(0.2),
        ..no_timing()
    };
    let report = replay_text(rules.path(), None, &hand_made_stream(), options);
    let opt = report.optimum.expect("asked for");
    assert_eq!(opt.warn, None);
    assert!(opt.note.expect("explained").contains("floors"));
}

#[test]
fn shadow_rule_tier_changes_respect_the_pack_cap() {
    let rules = hand_made_rules();
    let report = replay_text(rules.path(), None, &hand_made_stream(), no_timing());
    let boost = report
        .rules
        .iter()
        .find(|r| r.rule == "t/boost")
        .expect("reported");
    assert_eq!(boost.mode, "shadow");
    assert_eq!((boost.hits, boost.scam_hits, boost.legit_hits), (3, 3, 0));
    // w5 60 -> 100 (capped) warn -> cool_off; w6 80 -> 100 warn -> cool_off; w8 95 stays cool_off.
    assert_eq!(boost.would_change_tiers, Some(2));
    assert_eq!(boost.would_change_scam, Some(2));
    assert_eq!(boost.unique_scam_catches, 0);
    let amount = report
        .rules
        .iter()
        .find(|r| r.rule == "t/amount")
        .expect("reported");
    assert_eq!(amount.would_change_tiers, None);
    assert_eq!((amount.hits, amount.unique_scam_catches), (8, 4));
}

/// Per-withdrawal facts taken from `riskgate score`'s decision lines.
struct Scored {
    label: Option<Label>,
    usd: i128,
    tier: Tier,
    score: i64,
    live: Vec<String>,
    shadow: Vec<String>,
}

fn micros(x: f64) -> i128 {
    (x * 1e6).round() as i128
}

#[test]
fn figures_match_an_independent_recount_of_score_decisions() {
    // A held-out stream (not the shipped fixture), through the `score` command.
    let mut bytes = Vec::new();
    let mut config = GenConfig::new(424_242, 300, 30);
    config.scam_share = 0.2;
    generate(&config, &mut bytes).expect("generates");
    let dir = tempfile::tempdir().expect("tempdir");
    let input = dir.path().join("held-out.jsonl");
    std::fs::write(&input, &bytes).expect("write");
    let out = Command::new(bin())
        .args(["score", "--rules"])
        .arg(root().join("rules"))
        .arg(&input)
        .output()
        .expect("runs");
    assert!(out.status.success());
    let decisions: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .expect("utf8")
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    let events: Vec<Event> = String::from_utf8(bytes.clone())
        .expect("utf8")
        .lines()
        .map(|l| Event::parse_line(l).expect("valid"))
        .collect();
    let withdrawals: HashMap<String, (Option<Label>, f64)> = events
        .iter()
        .filter_map(|e| match e {
            Event::Withdrawal(w) => Some((w.id.clone(), (w.label, w.amount_usd))),
            _ => None,
        })
        .collect();
    let strings = |v: &serde_json::Value| -> Vec<String> {
        v.as_array()
            .expect("array")
            .iter()
            .map(|h| h["rule"].as_str().expect("rule").to_string())
            .collect()
    };
    let scored: Vec<Scored> = decisions
        .iter()
        .map(|d| {
            let (label, amount) = withdrawals[d["id"].as_str().expect("id")];
            Scored {
                label,
                usd: micros(amount),
                tier: serde_json::from_value(d["tier"].clone()).expect("tier"),
                score: d["score"].as_i64().expect("score"),
                live: strings(&d["hits"]),
                shadow: strings(&d["shadow_hits"]),
            }
        })
        .collect();

    let report = replay_file(&root().join("rules"), None, &input, no_timing());
    assert_eq!(report.stream.withdrawals, scored.len() as u64);
    assert_eq!(report.stream.invalid, 0);

    // Tiers.
    let total_usd: i128 = scored.iter().map(|s| s.usd).sum();
    for row in &report.tiers {
        let of: Vec<&Scored> = scored.iter().filter(|s| s.tier == row.tier).collect();
        let usd: i128 = of.iter().map(|s| s.usd).sum();
        assert_eq!(row.count, of.len() as u64, "{}", row.tier);
        assert_eq!(row.share, Some(of.len() as f64 / scored.len() as f64));
        assert_eq!(row.usd, usd as f64 / 1e6);
        assert_eq!(row.usd_share, Some(usd as f64 / total_usd as f64));
    }

    // Labeled figures per level.
    let scam: Vec<&Scored> = scored
        .iter()
        .filter(|s| s.label == Some(Label::Scam))
        .collect();
    let legit: Vec<&Scored> = scored
        .iter()
        .filter(|s| s.label == Some(Label::Legit))
        .collect();
    assert!(!scam.is_empty() && !legit.is_empty());
    let scam_usd: i128 = scam.iter().map(|s| s.usd).sum();
    for m in &report.levels {
        let caught: Vec<&&Scored> = scam.iter().filter(|s| s.tier >= m.level).collect();
        let flagged = legit.iter().filter(|s| s.tier >= m.level).count();
        let caught_usd: i128 = caught.iter().map(|s| s.usd).sum();
        assert_eq!(m.scam_flagged, caught.len() as u64, "{}", m.level);
        assert_eq!(m.legit_flagged, flagged as u64);
        assert_eq!(m.recall, Some(caught.len() as f64 / scam.len() as f64));
        assert_eq!(m.usd_recall, Some(caught_usd as f64 / scam_usd as f64));
        let labeled = caught.len() + flagged;
        assert_eq!(
            m.precision,
            (labeled > 0).then(|| caught.len() as f64 / labeled as f64)
        );
        assert_eq!(m.friction, Some(flagged as f64 / legit.len() as f64));
    }

    // Per rule.
    for row in &report.rules {
        let hit: Vec<&Scored> = scored
            .iter()
            .filter(|s| s.live.contains(&row.rule) || s.shadow.contains(&row.rule))
            .collect();
        assert_eq!(row.hits, hit.len() as u64, "{}", row.rule);
        assert_eq!(
            row.scam_hits,
            hit.iter().filter(|s| s.label == Some(Label::Scam)).count() as u64
        );
        assert_eq!(
            row.legit_hits,
            hit.iter().filter(|s| s.label == Some(Label::Legit)).count() as u64
        );
        let unique = scam.iter().filter(|s| s.live == [row.rule.clone()]).count();
        assert_eq!(row.unique_scam_catches, unique as u64, "{}", row.rule);
    }

    // Sweep: the floors the shipped rules impose come from their min_tier.
    let rules = RuleSet::load(root().join("rules")).expect("loads");
    let min_tier: HashMap<&str, Tier> = rules
        .rules()
        .iter()
        .filter_map(|r| Some((&*r.id, r.min_tier?)))
        .collect();
    let t = rules.policy().thresholds;
    for p in &report.sweep {
        let tier_of = |s: &Scored| {
            let floor = s
                .live
                .iter()
                .filter_map(|r| min_tier.get(r.as_str()).copied())
                .max()
                .unwrap_or(Tier::Allow);
            let by_score = if s.score >= t.cool_off.max(p.warn) {
                Tier::CoolOff
            } else if s.score >= p.warn {
                Tier::Warn
            } else if s.score >= t.notice.min(p.warn) {
                Tier::Notice
            } else {
                Tier::Allow
            };
            by_score.max(floor)
        };
        let caught = scam.iter().filter(|s| tier_of(s) >= Tier::Warn).count() as u64;
        let flagged = legit.iter().filter(|s| tier_of(s) >= Tier::Warn).count() as u64;
        assert_eq!(
            (p.metrics.scam_flagged, p.metrics.legit_flagged),
            (caught, flagged),
            "warn {}",
            p.warn
        );
    }
}

#[test]
fn golden_reports_for_the_shipped_fixture() {
    let fixture = root().join("fixtures/hk-sample.jsonl");
    let report = replay_file(&root().join("rules"), None, &fixture, no_timing());
    golden("hk-sample.txt", &render_text(&report));
    golden("hk-sample.json", &report.to_json());
    let options = ReplayOptions {
        max_friction: Some(0.02),
        ..no_timing()
    };
    let report = replay_file(&root().join("rules"), None, &fixture, options);
    golden("hk-sample-max-friction-2.txt", &render_text(&report));
}

fn run(args: &[&str]) -> std::process::Output {
    Command::new(bin())
        .current_dir(root())
        .args(args)
        .output()
        .expect("runs")
}

#[test]
fn json_without_timing_is_byte_identical_across_runs() {
    let args = [
        "replay",
        "--rules",
        "rules",
        "--baseline",
        "rules",
        "--json",
        "--no-timing",
        "--max-friction",
        "2",
        "fixtures/hk-sample.jsonl",
    ];
    let first = run(&args);
    let second = run(&args);
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    assert!(!first.stdout.is_empty());
    assert_eq!(first.stdout, second.stdout);
    let report: serde_json::Value = serde_json::from_slice(&first.stdout).expect("json");
    assert!(report.get("timing").is_none());
    assert_eq!(report["baseline"]["changed"], 0);
}

#[test]
fn timing_is_reported_apart_when_asked() {
    let out = run(&[
        "replay",
        "--rules",
        "rules",
        "--json",
        "fixtures/hk-sample.jsonl",
    ]);
    assert!(out.status.success());
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let timing = &report["timing"];
    for key in ["p50_us", "p99_us", "max_us", "withdrawals_per_second"] {
        assert!(timing[key].as_f64().is_some(), "{key}");
    }
    assert_eq!(
        timing["rules"].as_array().expect("rules").len(),
        report["rules"].as_array().expect("rules").len()
    );
}

/// The shipped rules with one rule taken out of hk-police.
fn rules_without(rule: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let copy = |from: &Path, to: &Path| {
        for entry in walk(from) {
            let rel = entry.strip_prefix(from).expect("inside");
            let dest = to.join(rel);
            std::fs::create_dir_all(dest.parent().expect("parent")).expect("mkdir");
            std::fs::copy(&entry, &dest).expect("copy");
        }
    };
    copy(&root().join("rules"), dir.path());
    let manifest = dir.path().join("hk-police/pack.toml");
    let text = std::fs::read_to_string(&manifest).expect("manifest");
    let blocks: Vec<&str> = text.split("[[rules]]").collect();
    let kept: Vec<&str> = blocks
        .iter()
        .copied()
        .filter(|b| !b.contains(&format!("id = \"{rule}\"")))
        .collect();
    assert_eq!(kept.len() + 1, blocks.len(), "rule {rule} found once");
    std::fs::write(&manifest, kept.join("[[rules]]")).expect("write");
    dir
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).expect("readable") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

#[test]
fn baseline_diff_names_the_one_rule_that_differs() {
    let baseline = rules_without("young-account-chat-referral");
    let fixture = root().join("fixtures/hk-sample.jsonl");
    let report = replay_file(
        &root().join("rules"),
        Some(baseline.path()),
        &fixture,
        no_timing(),
    );
    let b = report.baseline.as_ref().expect("asked for");
    let total: u64 = b.matrix.iter().flatten().sum();
    assert_eq!(total, report.stream.withdrawals);

    // Independent count: both rule sets through the `score` path.
    let text = std::fs::read_to_string(&fixture).expect("fixture");
    let tiers = |dir: &Path| -> Vec<(String, Tier)> {
        let scorer = Scorer::from_dir(dir).expect("loads");
        let mut stream = EventStream::new();
        let mut lines = LineReader::new(text.as_bytes());
        let mut out = Vec::new();
        while let Some(line) = lines.next_line() {
            if let Ok(Processed::Scored(w, d)) = stream.process(&scorer, line) {
                out.push((w.id.clone(), d.tier));
            }
        }
        out
    };
    let (cand, base) = (tiers(&root().join("rules")), tiers(baseline.path()));
    let mut matrix = [[0_u64; 4]; 4];
    for ((_, c), (_, b)) in cand.iter().zip(&base) {
        matrix[*b as usize][*c as usize] += 1;
    }
    assert_eq!(b.matrix, matrix);
    assert!(b.changed > 0, "the rule hits in the fixture");
    assert_eq!(
        b.changed,
        cand.iter().zip(&base).filter(|(c, b)| c.1 != b.1).count() as u64
    );
    for t in &b.transitions {
        assert!(t.to > t.from, "adding a rule only raises tiers");
        assert!(!t.examples.is_empty() && t.examples.len() <= 3);
        for e in &t.examples {
            assert_eq!(
                e.added,
                vec!["hk-police/young-account-chat-referral (20)".to_string()]
            );
            assert!(e.removed.is_empty());
            assert_eq!(e.candidate_score - e.baseline_score, 20);
        }
    }
    for (d, (c, base)) in b.deltas.iter().zip(report.levels.iter().zip(&b.levels)) {
        assert_eq!(
            d.scam_flagged,
            c.scam_flagged as i64 - base.scam_flagged as i64
        );
        assert_eq!(
            d.recall,
            Some(c.recall.expect("labeled") - base.recall.expect("labeled"))
        );
    }
    golden("hk-sample-baseline.txt", &render_text(&report));
}

#[test]
fn html_report_is_self_contained_with_every_section() {
    let baseline = rules_without("new-device");
    let fixture = root().join("fixtures/hk-sample.jsonl");
    let options = ReplayOptions {
        max_friction: Some(0.02),
        ..no_timing()
    };
    let report = replay_file(
        &root().join("rules"),
        Some(baseline.path()),
        &fixture,
        options,
    );
    let html = render_html(&report);
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert!(html.trim_end().ends_with("</html>"));
    for id in [
        "stream",
        "tiers",
        "detection",
        "optimum",
        "sweep",
        "rules",
        "typologies",
        "baseline",
    ] {
        assert!(html.contains(&format!("id=\"{id}\"")), "section {id}");
    }
    assert!(
        html.matches("<svg").count() >= 3,
        "tier, sweep and rule charts"
    );
    assert!(html.contains("class=\"matrix\""));
    assert!(html.contains("policy warn = 50"));
    assert!(html.contains("optimum warn = "));
    let lower = html.to_lowercase();
    for banned in [
        "http://", "https://", "<script", "src=", "@import", "url(", "<link",
    ] {
        assert!(!lower.contains(banned), "external reference {banned}");
    }
}

#[test]
fn html_is_written_by_the_cli() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("report.html");
    let out = run(&[
        "replay",
        "--rules",
        "rules",
        "--no-timing",
        "--html",
        path.to_str().expect("utf8"),
        "fixtures/hk-sample.jsonl",
    ]);
    assert!(out.status.success());
    let html = std::fs::read_to_string(&path).expect("written");
    assert!(html.contains("id=\"sweep\""));
    assert!(!html.contains("id=\"timing\""));
}

#[test]
fn invalid_lines_are_counted_listed_by_file_and_line_and_fail_the_run() {
    let dir = tempfile::tempdir().expect("tempdir");
    let first = dir.path().join("a.jsonl");
    let second = dir.path().join("b.jsonl");
    let good = wd("ok-1", "u", 10.0, "X", "legit");
    std::fs::write(&first, format!("{good}\nnot json\n\n")).expect("write");
    // The same id again is invalid across files too: the files are one stream.
    std::fs::write(
        &second,
        format!(
            "{good}\n{}\n",
            r#"{"kind":"login","ts":"2026-11-01T00:00:00Z","user_id":"u"}"#
        ),
    )
    .expect("write");
    let out = Command::new(bin())
        .args(["replay", "--rules"])
        .arg(root().join("rules"))
        .args(["--json", "--no-timing"])
        .arg(&first)
        .arg(&second)
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(report["stream"]["invalid"], 3);
    assert_eq!(report["stream"]["withdrawals"], 1);
    let lines: Vec<(String, u64)> = report["stream"]["invalid_lines"]
        .as_array()
        .expect("array")
        .iter()
        .map(|l| {
            (
                Path::new(l["file"].as_str().expect("file"))
                    .file_name()
                    .expect("name")
                    .to_string_lossy()
                    .into_owned(),
                l["line"].as_u64().expect("line"),
            )
        })
        .collect();
    assert_eq!(
        lines,
        vec![
            ("a.jsonl".to_string(), 2),
            ("b.jsonl".to_string(), 1),
            ("b.jsonl".to_string(), 2)
        ]
    );
    assert!(report["stream"]["invalid_lines"][1]["error"]
        .as_str()
        .expect("message")
        .contains("seen before"));
    assert_eq!(report["stream"]["files"][0]["lines"], 3);
}

#[test]
fn unlabeled_withdrawals_are_left_out_of_labeled_figures() {
    let rules = hand_made_rules();
    let mut stream = hand_made_stream();
    stream.push('\n');
    stream.push_str(&wd("w9", "i", 9000.0, "X9", "legit").replace(",\"label\":\"legit\"", ""));
    let report = replay_text(rules.path(), None, &stream, no_timing());
    assert_eq!(report.stream.unlabeled, 1);
    assert_eq!(report.stream.withdrawals, 9);
    let warn = report.level(Tier::Warn).expect("labeled");
    assert_eq!((warn.scam_flagged, warn.legit_flagged), (3, 1));
    assert_eq!(report.tiers.iter().map(|t| t.count).sum::<u64>(), 9);
}

#[test]
fn text_summary_explains_an_unlabeled_stream() {
    let rules = hand_made_rules();
    let stream = wd("w1", "a", 1000.0, "X", "legit").replace(",\"label\":\"legit\"", "");
    let options = ReplayOptions {
        max_friction: Some(0.05),
        ..no_timing()
    };
    let report = replay_text(rules.path(), None, &stream, options);
    let text = render_text(&report);
    assert!(text.contains("no labeled withdrawals"));
    assert!(!text.contains("SWEEP"));
    let opt = report.optimum.expect("asked for");
    assert_eq!(opt.warn, None);
    assert!(opt
        .note
        .expect("explained")
        .starts_with("no labeled withdrawals"));
}

#[test]
fn shadow_rule_errors_count_under_on_rule_error() {
    let policy = POLICY.replace("on_rule_error = \"ignore\"", "on_rule_error = \"cool_off\"");
    let rules = rules_dir(&[
        ("policy.toml", &policy),
        ("t/pack.toml", PACK),
        ("t/amount.rhai", "tx.amount_usd / 100.0"),
        ("t/floor.rhai", "tx.destination == \"FLOOR\""),
        (
            "t/boost.rhai",
            "if tx.amount_usd > 5000.0 { throw \"boom\" } else { false }",
        ),
    ]);
    let report = replay_text(rules.path(), None, &hand_made_stream(), no_timing());
    let boost = report
        .rules
        .iter()
        .find(|r| r.rule == "t/boost")
        .expect("reported");
    assert_eq!((boost.hits, boost.errors), (0, 3));
    // w5 (warn) and w6 (warn) would go to cool_off; w8 is there already.
    assert_eq!(boost.would_change_tiers, Some(2));
    // A shadow rule's error does not raise live tiers.
    assert_eq!(
        report.level(Tier::CoolOff).expect("labeled").scam_flagged,
        1
    );
}
