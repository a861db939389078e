//! Contract section 5: the command line. `riskgate score` from a file and from stdin, and
//! `riskgate check` with its exit status and expectations, passing and failing.

mod support;

use serde_json::json;
use support::contract::*;

fn two_pack_rules() -> Rules {
    let rules = Rules::new();
    rules.pack(
        "alpha",
        "regions = [\"*\"]",
        &[(
            "big",
            "tx.amount_usd >= 1000.0",
            "score = 60\nwarning = \"big\"",
        )],
    );
    rules.append(
        "alpha/pack.toml",
        "[warnings.big.en]\ntitle = \"Big\"\nbody = \"{amount_usd}\"\n",
    );
    rules.pack(
        "beta",
        "regions = [\"*\"]",
        &[("repeat", "tx.prior_withdrawals >= 1", "score = 25")],
    );
    rules
}

fn stream() -> String {
    [
        wd("w1", "u", &at(0), 5000.0, "X").line(),
        login("u", &at(10), "d"),
        wd("w2", "u", &at(20), 10.0, "X").line(),
        String::new(),
    ]
    .join("\n")
}

#[test]
fn score_reads_a_file_or_stdin_and_writes_one_decision_per_withdrawal() {
    let rules = two_pack_rules();
    let dir = rules.path().to_str().unwrap();
    let file = rules.path().join("events.jsonl");
    std::fs::write(&file, stream()).unwrap();
    let (code, from_file, err) = cli(&["score", "--rules", dir, file.to_str().unwrap()], None);
    assert_eq!(code, 0, "{err}");
    let (code, from_dash, _) = cli(&["score", "--rules", dir, "-"], Some(&stream()));
    assert_eq!(code, 0);
    let (code, from_stdin, _) = cli(&["score", "--rules", dir], Some(&stream()));
    assert_eq!(code, 0);
    // The rule set id is the same (events.jsonl was written before the first run).
    assert_eq!(from_file, from_dash);
    assert_eq!(from_dash, from_stdin);
    let lines = json_lines(&from_file);
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["id"], "w1");
    assert_eq!(lines[0]["tier"], "warn");
    assert_eq!(lines[0]["score"], 60);
    assert_eq!(lines[0]["warning"]["key"], "alpha/big");
    assert_eq!(lines[0]["warning"]["body"], "5000.00");
    assert_eq!(lines[1]["id"], "w2");
    assert_eq!(
        lines[1]["hits"],
        json!([{"rule": "beta/repeat", "score": 25, "reason": "reason of repeat"}])
    );
    assert_eq!(lines[1]["tier"], "notice");
    assert!(lines[1]["ruleset"].as_str().is_some_and(|s| !s.is_empty()));
}

#[test]
fn score_with_empty_input_prints_nothing_and_succeeds() {
    let rules = two_pack_rules();
    let (code, out, _) = cli(
        &["score", "--rules", rules.path().to_str().unwrap(), "-"],
        Some("\n\n"),
    );
    assert_eq!((code, out.as_str()), (0, ""));
}

#[test]
fn score_refuses_a_rule_set_that_does_not_load_naming_every_problem() {
    let rules = Rules::new();
    rules.pack(
        "p",
        "regions = [\"*\"]",
        &[("a", "true &&", ""), ("b", "eval(\"1\")", "")],
    );
    let (code, out, err) = cli(
        &["score", "--rules", rules.path().to_str().unwrap(), "-"],
        Some(&stream()),
    );
    assert_ne!(code, 0);
    assert_eq!(out, "", "no decisions from a broken rule set");
    assert!(err.contains("p/a.rhai:1:"), "{err}");
    assert!(err.contains("p/b.rhai:1:"), "{err}");
}

#[test]
fn score_fails_on_a_missing_input_file() {
    let rules = two_pack_rules();
    let (code, _, err) = cli(
        &[
            "score",
            "--rules",
            rules.path().to_str().unwrap(),
            "/nonexistent/events.jsonl",
        ],
        None,
    );
    assert_ne!(code, 0);
    assert!(!err.is_empty());
}

#[test]
fn help_describes_both_commands() {
    let (code, out, _) = cli(&["--help"], None);
    assert_eq!(code, 0);
    assert!(out.contains("score") && out.contains("check"), "{out}");
    let (code, out, _) = cli(&["score", "--help"], None);
    assert_eq!(code, 0);
    assert!(out.contains("--rules"), "{out}");
}

// ---- check -------------------------------------------------------------------------------

fn expecting(w: W, tier: &str, hits: &[&str]) -> String {
    w.set("expect", json!({"tier": tier, "hits": hits})).line()
}

/// Writes `alpha/tests/<name>.jsonl`.
fn alpha_test(rules: &Rules, name: &str, lines: &[String]) {
    rules.file(
        &format!("alpha/tests/{name}.jsonl"),
        &(lines.join("\n") + "\n"),
    );
}

#[test]
fn check_passes_when_everything_loads_and_every_expectation_holds() {
    let rules = two_pack_rules();
    // Each pack's tests run with the policy and that pack alone: beta/repeat would hit w2.
    alpha_test(
        &rules,
        "basic",
        &[
            expecting(wd("w1", "u", &at(0), 5000.0, "X"), "warn", &["alpha/big"]),
            "".into(),
            login("u", &at(5), "d"),
            expecting(wd("w2", "u", &at(10), 10.0, "X"), "allow", &[]),
            wd("w3", "u", &at(20), 10.0, "X").line(), // no expectation
        ],
    );
    rules.file(
        "beta/tests/repeat.jsonl",
        &[
            expecting(wd("w1", "u", &at(0), 5000.0, "X"), "allow", &[]),
            expecting(
                wd("w2", "u", &at(10), 10.0, "X"),
                "notice",
                &["beta/repeat"],
            ),
        ]
        .join("\n"),
    );
    let (code, out, err) = cli(&["check", rules.path().to_str().unwrap()], None);
    assert_eq!(code, 0, "{out}{err}");
}

#[test]
fn check_passes_on_the_shipped_rules() {
    let (code, out, err) = cli(&["check", repo().join("rules").to_str().unwrap()], None);
    assert_eq!(code, 0, "{out}{err}");
}

#[test]
fn check_fails_on_a_wrong_tier_or_hits_and_names_the_line() {
    let cases = [
        (
            "tier",
            expecting(
                wd("w1", "u", &at(0), 5000.0, "X"),
                "cool_off",
                &["alpha/big"],
            ),
        ),
        (
            "missing-hit",
            expecting(wd("w1", "u", &at(0), 5000.0, "X"), "warn", &[]),
        ),
        (
            "extra-hit",
            expecting(wd("w1", "u", &at(0), 5.0, "X"), "allow", &["alpha/big"]),
        ),
        (
            "other-pack",
            expecting(
                wd("w1", "u", &at(0), 5000.0, "X"),
                "warn",
                &["alpha/big", "beta/repeat"],
            ),
        ),
        (
            "not-a-tier",
            expecting(wd("w1", "u", &at(0), 5000.0, "X"), "severe", &["alpha/big"]),
        ),
    ];
    for (name, line) in cases {
        let rules = two_pack_rules();
        alpha_test(&rules, name, &[login("u", &at(0), "d"), line]);
        let (code, out, err) = cli(&["check", rules.path().to_str().unwrap()], None);
        assert_ne!(code, 0, "{name}: {out}{err}");
        let location = format!("{name}.jsonl:2");
        assert!(
            out.contains(&location) || err.contains(&location),
            "{name}: the failing line is named: {out}{err}"
        );
    }
}

#[test]
fn check_fails_on_an_invalid_line_in_a_pack_test() {
    let rules = two_pack_rules();
    alpha_test(
        &rules,
        "bad",
        &[
            expecting(wd("w1", "u", &at(0), 5000.0, "X"), "warn", &["alpha/big"]),
            "{not json".into(),
        ],
    );
    let (code, out, err) = cli(&["check", rules.path().to_str().unwrap()], None);
    assert_ne!(code, 0, "{out}{err}");
}

#[test]
fn check_fails_when_anything_does_not_load_and_names_every_problem() {
    let rules = two_pack_rules();
    rules.pack(
        "gamma",
        "regions = [\"*\"]",
        &[("a", "import \"m\" as m; true", ""), ("b", "let = 1", "")],
    );
    let (code, out, err) = cli(&["check", rules.path().to_str().unwrap()], None);
    assert_ne!(code, 0);
    let all = format!("{out}{err}");
    assert!(
        all.contains("gamma/a.rhai:1:") && all.contains("gamma/b.rhai:1:"),
        "{all}"
    );

    let rules = two_pack_rules();
    rules.file("policy.toml", "[tiers]\nnotice = 1\n");
    let (code, out, err) = cli(&["check", rules.path().to_str().unwrap()], None);
    assert_ne!(code, 0);
    assert!(format!("{out}{err}").contains("policy.toml:"), "{out}{err}");
}

#[test]
fn check_fails_when_a_pack_id_differs_from_its_folder() {
    let rules = two_pack_rules();
    let manifest = std::fs::read_to_string(rules.path().join("beta/pack.toml")).unwrap();
    rules.file(
        "beta/pack.toml",
        &manifest.replace("id = \"beta\"", "id = \"gamma\""),
    );
    let (code, out, err) = cli(&["check", rules.path().to_str().unwrap()], None);
    assert_ne!(code, 0);
    assert!(
        format!("{out}{err}").contains("beta/pack.toml:1:"),
        "{out}{err}"
    );
}
