//! Contract section 3, "Rule parameters": a rule's `params` in `pack.toml`, the read-only map
//! `params` a script sees, and the overrides in `policy.toml` (`[params."pack/rule"]`), with
//! every refusal at load naming `file:line:column`. The whole file also runs with the fast
//! path off (`RISKGATE_NO_FASTPATH=1 cargo test`); `tests/fastpath_params.rs` compares the two.

mod support;

use riskgate::{ParamValue, RuleSet, Tier};
use serde_json::json;
use support::contract::*;

/// The policy with `extra` appended (overrides go there).
fn policy_with(extra: &str) -> String {
    format!("{}\n{extra}\n", policy_default_limits("ignore"))
}

/// One pack `p` with the rule `big` = `tx.amount_usd >= params.min_amount_usd` (score 60,
/// params `{ min_amount_usd = 5000.0, max_account_days = 30 }`) and `extra` appended to the
/// rules.
fn big_amount(policy_extra: &str) -> Rules {
    let rules = Rules::with_policy(&policy_with(policy_extra));
    rules.pack(
        "p",
        "regions = [\"*\"]",
        &[(
            "big",
            "tx.amount_usd >= params.min_amount_usd",
            "score = 60\nparams = { min_amount_usd = 5000.0, max_account_days = 30 }",
        )],
    );
    rules
}

fn amount(x: f64) -> W {
    wd("w1", "u1", T0, x, "T-dest")
}

fn assert_located(problems: &[String]) {
    for p in problems {
        let mut parts = p.splitn(4, ':');
        let file = parts.next().unwrap_or("");
        let line: usize = parts.next().unwrap_or("").parse().unwrap_or(0);
        let column: usize = parts.next().unwrap_or("").parse().unwrap_or(0);
        assert!(
            !file.is_empty() && line >= 1 && column >= 1,
            "not file:line:column: message: {p}"
        );
    }
}

/// The one problem of a rule set that must not load, located.
fn only_problem(rules: &Rules) -> String {
    let problems = rules.problems();
    assert_located(&problems);
    assert_eq!(problems.len(), 1, "{problems:#?}");
    problems.into_iter().next().unwrap_or_default()
}

// ---- what a script sees ---------------------------------------------------------------------

#[test]
fn a_script_reads_its_params() {
    let rules = big_amount("");
    let hit = decide(&rules, &amount(5000.0));
    assert_eq!(ids(&hit.hits), ["p/big"]);
    assert_eq!(hit.tier, Tier::Warn);
    let miss = decide(&rules, &amount(4999.99));
    assert!(miss.hits.is_empty() && miss.errors.is_empty(), "{miss:?}");
    let loaded = rules.load();
    let params = loaded.rules()[0].params();
    assert_eq!(
        params.get("min_amount_usd"),
        Some(&ParamValue::Float(5000.0))
    );
    assert_eq!(params.get("max_account_days"), Some(&ParamValue::Int(30)));
}

#[test]
fn integer_bool_and_string_params_keep_their_types() {
    let rules = Rules::new();
    rules.pack(
        "p",
        "regions = [\"*\"]",
        &[
            (
                "typed",
                "type_of(params.n) == \"i64\" && type_of(params.x) == \"f64\" \
                 && type_of(params.on) == \"bool\" && type_of(params.channel) == \"string\"",
                "params = { n = 3, x = 2.5, on = true, channel = \"telegram\" }",
            ),
            (
                "uses",
                "params.on && tx.referral == params.channel && tx.account_age_days >= params.n",
                "params = { n = 3, on = true, channel = \"telegram\" }",
            ),
            (
                "off",
                "params.on && tx.amount_usd > 0.0",
                "params = { on = false }",
            ),
        ],
    );
    let d = decide(&rules, &amount(10.0).user("referral", json!("telegram")));
    assert_eq!(ids(&d.hits), ["p/typed", "p/uses"], "{d:?}");
    assert!(d.errors.is_empty(), "{d:?}");
}

#[test]
fn reading_a_param_that_is_not_there_is_a_rule_error_as_for_tx() {
    let rules = Rules::with_policy(&policy_default_limits("warn"));
    rules.pack(
        "p",
        "regions = [\"*\"]",
        &[
            (
                "missing-param",
                "tx.amount_usd >= params.min_amount",
                "params = { min_amount_usd = 1.0 }",
            ),
            ("missing-field", "tx.amount >= 1.0", ""),
            ("no-params", "params.anything == 1", ""),
        ],
    );
    let d = decide(&rules, &amount(10.0));
    assert!(d.hits.is_empty(), "{d:?}");
    let failed: Vec<&str> = d.errors.iter().map(|e| &*e.rule).collect();
    assert_eq!(
        failed,
        ["p/missing-field", "p/missing-param", "p/no-params"]
    );
    assert_eq!(d.tier, Tier::Warn, "on_rule_error = warn applies");
}

#[test]
fn a_rule_without_params_sees_an_empty_map() {
    let rules = Rules::new();
    rules.pack(
        "p",
        "regions = [\"*\"]",
        &[
            (
                "empty",
                "type_of(params) == \"map\" && params.len() == 0",
                "",
            ),
            ("absent", "!(\"x\" in params)", ""),
            (
                "has-one",
                "params.len() == 1 && \"x\" in params",
                "params = { x = 1 }",
            ),
        ],
    );
    let d = decide(&rules, &amount(1.0));
    assert_eq!(ids(&d.hits), ["p/absent", "p/empty", "p/has-one"], "{d:?}");
}

#[test]
fn a_script_cannot_change_params() {
    let rules = Rules::new();
    rules.pack(
        "p",
        "regions = [\"*\"]",
        &[
            ("assign", "params.limit = 0; true", "params = { limit = 5 }"),
            ("add", "params.extra = 1; true", "params = { limit = 5 }"),
            ("whole", "params = #{}; true", "params = { limit = 5 }"),
            (
                "after",
                "params.limit == 5 && !(\"extra\" in params)",
                "params = { limit = 5 }",
            ),
        ],
    );
    let scorer = rules.scorer();
    for id in ["w1", "w2"] {
        let d = scorer.score(&wd(id, "u1", T0, 1.0, "T-dest").w());
        assert_eq!(ids(&d.hits), ["p/after"], "{d:?}");
        let failed: Vec<&str> = d.errors.iter().map(|e| &*e.rule).collect();
        assert_eq!(failed, ["p/add", "p/assign", "p/whole"], "{d:?}");
    }
}

// ---- refused in the manifest ----------------------------------------------------------------

#[test]
fn a_param_that_is_an_array_a_table_or_a_date_is_refused_at_load() {
    for (value, what) in [
        ("[1, 2]", "array"),
        ("{ a = 1 }", "table"),
        ("2026-01-01T00:00:00Z", "date"),
        ("2026-01-01", "date"),
    ] {
        let rules = Rules::new();
        rules.pack(
            "p",
            "regions = [\"*\"]",
            &[(
                "r",
                "true",
                &format!("params = {{ ok = 1, bad = {value} }}"),
            )],
        );
        let problem = only_problem(&rules);
        // The manifest: id, name, version, regions, blank, [[rules]], id, script, score,
        // reason, then params on line 11.
        assert!(problem.starts_with("p/pack.toml:11:"), "{value}: {problem}");
        assert!(
            problem.contains("bad") && problem.contains(what),
            "{problem}"
        );
    }
}

#[test]
fn a_param_with_a_bad_name_is_refused_at_load() {
    for name in ["Min", "min-amount", "\"two words\"", "\"9lives\"", "\"\""] {
        let rules = Rules::new();
        rules.pack(
            "p",
            "regions = [\"*\"]",
            &[("r", "true", &format!("params = {{ {name} = 1 }}"))],
        );
        let problem = only_problem(&rules);
        assert!(problem.starts_with("p/pack.toml:11:"), "{name}: {problem}");
        assert!(problem.contains("[a-z_][a-z0-9_]*"), "{problem}");
    }
}

#[test]
fn params_as_a_table_section_load_too() {
    let rules = Rules::new();
    rules.pack(
        "p",
        "regions = [\"*\"]",
        &[("r", "tx.amount_usd >= params.min", "")],
    );
    rules.append("p/pack.toml", "[rules.params]\nmin = 100.0\n");
    let d = decide(&rules, &amount(100.0));
    assert_eq!(ids(&d.hits), ["p/r"]);
}

// ---- overrides in policy.toml ---------------------------------------------------------------

#[test]
fn an_override_changes_the_decision() {
    let plain = big_amount("");
    let lowered = big_amount("[params.\"p/big\"]\nmin_amount_usd = 3000.0\n");
    let w = amount(3500.0);
    assert!(decide(&plain, &w).hits.is_empty());
    assert_eq!(ids(&decide(&lowered, &w).hits), ["p/big"]);
    assert_eq!(
        lowered.load().rules()[0].params().get("min_amount_usd"),
        Some(&ParamValue::Float(3000.0))
    );
    // The other param keeps the pack's value.
    assert_eq!(
        lowered.load().rules()[0].params().get("max_account_days"),
        Some(&ParamValue::Int(30))
    );
}

#[test]
fn an_integer_override_of_a_float_param_becomes_a_float() {
    let rules = Rules::with_policy(&policy_with("[params.\"p/r\"]\nmin = 3000\n"));
    rules.pack(
        "p",
        "regions = [\"*\"]",
        &[(
            "r",
            "type_of(params.min) == \"f64\" && tx.amount_usd >= params.min",
            "params = { min = 5000.0 }",
        )],
    );
    assert_eq!(
        rules.load().rules()[0].params().get("min"),
        Some(&ParamValue::Float(3000.0))
    );
    assert_eq!(ids(&decide(&rules, &amount(3000.0)).hits), ["p/r"]);
}

#[test]
fn bool_and_string_overrides() {
    let rules = Rules::with_policy(&policy_with(
        "[params.\"p/r\"]\non = true\nchannel = \"ads\"\n",
    ));
    rules.pack(
        "p",
        "regions = [\"*\"]",
        &[(
            "r",
            "params.on && tx.referral == params.channel",
            "params = { on = false, channel = \"telegram\" }",
        )],
    );
    let ads = amount(1.0).user("referral", json!("ads"));
    assert_eq!(ids(&decide(&rules, &ads).hits), ["p/r"]);
    let telegram = amount(1.0).user("referral", json!("telegram"));
    assert!(decide(&rules, &telegram).hits.is_empty());
}

/// Policy lines: the standard policy's 18 lines, a blank line, then `extra` from line 20.
const FIRST_EXTRA_LINE: usize = 20;

#[test]
fn every_bad_override_is_refused_naming_policy_toml_line_and_column() {
    let cases: [(&str, &str, usize); 12] = [
        (
            "no such rule",
            "[params.\"p/nope\"]\nmin_amount_usd = 1.0\n",
            0,
        ),
        (
            "no such pack",
            "[params.\"q/big\"]\nmin_amount_usd = 1.0\n",
            0,
        ),
        ("not pack/rule", "[params.big]\nmin_amount_usd = 1.0\n", 0),
        ("empty table of no rule", "[params.\"p/nope\"]\n", 0),
        ("no such param", "[params.\"p/big\"]\nmin_amount = 1.0\n", 1),
        (
            "string for a float",
            "[params.\"p/big\"]\nmin_amount_usd = \"1\"\n",
            1,
        ),
        (
            "bool for a float",
            "[params.\"p/big\"]\nmin_amount_usd = true\n",
            1,
        ),
        (
            "float for an integer",
            "[params.\"p/big\"]\nmax_account_days = 30.0\n",
            1,
        ),
        (
            "string for an integer",
            "[params.\"p/big\"]\nmax_account_days = \"30\"\n",
            1,
        ),
        ("array", "[params.\"p/big\"]\nmax_account_days = [30]\n", 1),
        (
            "table",
            "[params.\"p/big\"]\nmax_account_days = { a = 1 }\n",
            1,
        ),
        (
            "date",
            "[params.\"p/big\"]\nmax_account_days = 2026-01-01\n",
            1,
        ),
    ];
    for (what, extra, line_offset) in cases {
        let rules = big_amount(extra);
        let problem = only_problem(&rules);
        let at = format!("policy.toml:{}:", FIRST_EXTRA_LINE + line_offset);
        assert!(problem.starts_with(&at), "{what}: {problem}");
        assert!(problem.contains("params"), "{what}: {problem}");
    }
}

#[test]
fn params_of_the_wrong_shape_are_refused() {
    for extra in ["params = 5\n", "[params]\n\"p/big\" = 5\n"] {
        let rules = big_amount("");
        rules.file(
            "policy.toml",
            &format!("{extra}\n{}", policy_default_limits("ignore")),
        );
        let problem = only_problem(&rules);
        assert!(problem.starts_with("policy.toml:"), "{extra}: {problem}");
    }
}

#[test]
fn all_bad_overrides_are_reported_at_once() {
    let rules = big_amount(
        "[params.\"p/big\"]\nmin_amount_usd = \"x\"\nmax_account_days = 1.5\nnope = 1\n\n[params.\"p/gone\"]\na = 1\n",
    );
    let problems = rules.problems();
    assert_located(&problems);
    assert_eq!(problems.len(), 4, "{problems:#?}");
}

#[test]
fn an_override_of_a_pack_that_failed_to_load_reports_only_the_packs_problems() {
    let rules = big_amount("[params.\"p/big\"]\nmin_amount_usd = 1.0\n");
    rules.file("p/big.rhai", "tx.amount_usd >= ");
    let problems = rules.problems();
    assert_eq!(problems.len(), 1, "{problems:#?}");
    assert!(problems[0].starts_with("p/big.rhai:"), "{problems:#?}");
}

#[test]
fn check_ignores_overrides_of_other_packs_rules() {
    // Overrides of pack `q` (one of them wrong) don't stop pack `p` from loading alone.
    let rules = big_amount(
        "[params.\"q/r\"]\nlimit = \"not an integer\"\n\n[params.\"gone/r\"]\nx = 1\n\n[params.\"p/big\"]\nmin_amount_usd = 3000.0\n",
    );
    rules.pack(
        "q",
        "regions = [\"*\"]",
        &[(
            "r",
            "tx.amount_usd >= params.limit",
            "params = { limit = 10 }",
        )],
    );
    let p = RuleSet::load_pack(rules.path(), "p").expect("p loads alone");
    // Its own override applies.
    assert_eq!(
        p.rules()[0].params().get("min_amount_usd"),
        Some(&ParamValue::Float(3000.0))
    );
    let q = RuleSet::load_pack(rules.path(), "q").expect_err("q's override is wrong");
    let problems: Vec<String> = q.problems().iter().map(|p| p.to_string()).collect();
    assert_eq!(problems.len(), 1, "{problems:#?}");
    assert!(problems[0].starts_with("policy.toml:"), "{problems:#?}");
    // The whole set refuses both the wrong override and the one of a pack that is not there.
    assert_eq!(rules.problems().len(), 2, "{:#?}", rules.problems());
}

#[test]
fn riskgate_check_runs_each_pack_with_its_overrides() {
    let rules = big_amount("[params.\"p/big\"]\nmin_amount_usd = 3000.0\n");
    let expect = |id: &str, amount: f64, tier: &str, hits: &[&str]| {
        let mut line = wd(id, "u1", T0, amount, "T-dest").0;
        line["expect"] = json!({"tier": tier, "hits": hits});
        line.to_string()
    };
    let tests = [
        expect("w1", 3000.0, "warn", &["p/big"]),
        expect("w2", 2999.0, "allow", &[]),
    ]
    .join("\n");
    rules.file("p/tests/overrides.jsonl", &tests);
    let dir = rules.path().to_str().unwrap_or_default();
    let (code, out, err) = cli(&["check", dir], None);
    assert_eq!(code, 0, "{out}\n{err}");
}

#[test]
fn the_ruleset_id_changes_with_the_overrides() {
    let a = big_amount("[params.\"p/big\"]\nmin_amount_usd = 3000.0\n");
    let b = big_amount("[params.\"p/big\"]\nmin_amount_usd = 3001.0\n");
    let none = big_amount("");
    let ids = [a.load(), b.load(), none.load()].map(|r| r.id().to_string());
    assert_ne!(ids[0], ids[1]);
    assert_ne!(ids[0], ids[2]);
    assert_ne!(ids[1], ids[2]);
}
