//! Contract section 3: rule sets on disk. Policy and pack parsing, both watchlist formats,
//! load problems as `pack/file:line:column: message` (all of them at once), scripts refused at
//! load, what a script's value means, sandbox limits, and reload keeping the old set.

mod support;

use riskgate::{Decision, Scorer, Tier};
use support::contract::*;

/// Runs `script` as the one rule (score 40) of a pack applying everywhere, on a plain
/// withdrawal.
fn run(script: &str) -> Decision {
    run_with_policy(&policy_default_limits("ignore"), script)
}

fn run_with_policy(policy_text: &str, script: &str) -> Decision {
    let rules = Rules::with_policy(policy_text);
    rules.pack("p", "regions = [\"*\"]", &[("r", script, "score = 40")]);
    decide(&rules, &wd("w", "u", T0, 1234.5, "X"))
}

fn hit_score(script: &str) -> Option<i64> {
    let d = run(script);
    assert!(
        d.errors.is_empty(),
        "{script}: unexpected error {:?}",
        d.errors
    );
    d.hits.first().map(|h| h.score)
}

fn rule_error(script: &str) -> String {
    let d = run(script);
    assert!(d.hits.is_empty(), "{script}: a failed rule has no hit");
    assert_eq!(
        d.errors.len(),
        1,
        "{script}: expected a rule error, got {d:?}"
    );
    assert_eq!(&*d.errors[0].rule, "p/r");
    d.errors[0].error.clone()
}

/// Asserts every problem reads `file:line:column: message`.
fn assert_located(problems: &[String]) {
    for p in problems {
        let mut parts = p.splitn(4, ':');
        let file = parts.next().unwrap();
        let line = parts.next().unwrap_or("");
        let column = parts.next().unwrap_or("");
        let message = parts.next().unwrap_or("");
        assert!(
            !file.is_empty() && !file.starts_with('/'),
            "relative file in {p:?}"
        );
        assert!(line.parse::<usize>().is_ok_and(|n| n >= 1), "line in {p:?}");
        assert!(
            column.parse::<usize>().is_ok_and(|n| n >= 1),
            "column in {p:?}"
        );
        assert!(
            message.starts_with(' ') && message.len() > 3,
            "message in {p:?}"
        );
    }
}

fn has(problems: &[String], prefix: &str) -> bool {
    problems.iter().any(|p| p.starts_with(prefix))
}

// ---- parsing -------------------------------------------------------------------------------

#[test]
fn a_full_pack_loads_with_every_manifest_field() {
    let rules = Rules::new();
    rules.pack(
        "hk-test",
        "regions = [\"HK\", \"MO\"]\nmode = \"live\"\nmax_score = 100\nactive_from = 2026-12-01T00:00:00Z\nactive_until = 2027-03-01T08:00:00+08:00",
        &[
            ("b-rule", "true", "score = 40\nwarning = \"scam\"\nmin_tier = \"warn\"\nmode = \"live\""),
            ("a-rule", "false", "score = 5\nmode = \"shadow\""),
        ],
    );
    rules.append("hk-test/pack.toml", "[warnings.scam.en]\ntitle = \"t\"\nbody = \"b\"\n[warnings.scam.\"zh-HK\"]\ntitle = \"t\"\nbody = \"b\"\n");
    let set = rules.load();
    let pack = &set.packs()[0];
    assert_eq!(pack.id, "hk-test");
    assert_eq!(pack.name, "Test pack hk-test");
    assert_eq!(pack.version, "1");
    assert!(!pack.shadow);
    assert_eq!(pack.max_score, Some(100));
    let micros = |s: &str| wd("x", "u", s, 1.0, "X").w().ts.as_micros();
    assert_eq!(pack.active_from, Some(micros("2026-12-01T00:00:00Z")));
    assert_eq!(pack.active_until, Some(micros("2027-03-01T00:00:00Z")));
    let ids: Vec<&str> = set.rules().iter().map(|r| &*r.id).collect();
    assert_eq!(
        ids,
        ["hk-test/a-rule", "hk-test/b-rule"],
        "rules reported as pack/rule, sorted"
    );
    assert!(set.rules()[0].shadow);
    assert_eq!(set.rules()[1].score, 40);
    assert_eq!(set.rules()[1].min_tier, Some(Tier::Warn));
    assert!(!set.rules()[1].shadow);
}

#[test]
fn the_policy_sets_tiers_cool_off_errors_and_limits() {
    let text = policy_default_limits("warn").replace(
        "[warnings.default.en]",
        "[limits]\nmax_rule_ms = 5\nmax_operations = 500\n\n[warnings.default.en]",
    );
    let set = Rules::with_policy(&text).load();
    let p = set.policy();
    assert_eq!(
        (
            p.thresholds.notice,
            p.thresholds.warn,
            p.thresholds.cool_off
        ),
        (20, 50, 90)
    );
    assert_eq!(p.cool_off_hours, 24);
    assert_eq!(p.on_rule_error, Some(Tier::Warn));
    assert_eq!(p.limits.max_rule_ms, 5.0);
    assert_eq!(p.limits.max_operations, 500);
    assert_eq!(
        p.limits.max_call_levels, 16,
        "unset limits take the defaults"
    );
    assert_eq!(p.limits.max_expr_depth, 64);
    assert_eq!(p.limits.max_string_size, 4096);
    assert_eq!(p.limits.max_array_size, 1024);
    assert_eq!(p.limits.max_map_size, 256);
    assert_eq!(
        Rules::new().load().policy().on_rule_error,
        None,
        "\"ignore\""
    );
}

#[test]
fn a_rules_dir_with_only_a_policy_loads() {
    assert!(Rules::new().load().rules().is_empty());
}

#[test]
fn watchlists_in_both_formats_load() {
    let rules = Rules::new();
    rules.pack(
        "p",
        "regions = [\"*\"]",
        &[(
            "listed",
            "\"p/txt\" in tx.watchlists && \"p/json\" in tx.watchlists",
            "",
        )],
    );
    rules.append("p/pack.toml", "[[watchlists]]\nid = \"txt\"\nfile = \"watchlists/a.txt\"\n[[watchlists]]\nid = \"json\"\nfile = \"watchlists/b.json\"\n");
    rules.file("p/watchlists/a.txt", "# reported by victims\n\n  TBad  \n");
    rules.file(
        "p/watchlists/b.json",
        r#"[{"address": "TBad ", "source": "victim", "amount": 5}]"#,
    );
    let d = decide(&rules, &wd("w", "u", T0, 1.0, "TBad"));
    assert_eq!(ids(&d.hits), ["p/listed"]);
}

// ---- load problems -------------------------------------------------------------------------

#[test]
fn pack_id_must_equal_the_folder_name() {
    let rules = Rules::new();
    rules.file(
        "right/pack.toml",
        "name = \"x\"\n\nid = \"wrong\"\nregions = [\"*\"]\n",
    );
    let problems = rules.problems();
    assert_located(&problems);
    assert!(has(&problems, "right/pack.toml:3:"), "{problems:?}");
}

#[test]
fn scripts_using_import_or_eval_nesting_too_deep_or_not_parsing_are_refused_at_load() {
    let deep = format!("{}1{}", "(".repeat(100), ")".repeat(100));
    let cases = [
        ("import", "import \"other\" as o;\ntrue"),
        ("eval", "let x = 1;\neval(\"40\")"),
        ("eval-bare", "eval"),
        ("deep", deep.as_str()),
        ("syntax", "let x = ;\ntrue"),
        ("unclosed", "if tx.amount_usd > 1 {\n true"),
        ("undefined-variable", "amount > 5"),
    ];
    for (name, script) in cases {
        let rules = Rules::new();
        rules.pack("p", "regions = [\"*\"]", &[(name, script, "")]);
        let problems = rules.problems();
        assert_located(&problems);
        let file = format!("p/{}.rhai:", name.replace('-', "_"));
        assert!(has(&problems, &file), "{name}: {problems:?}");
    }
}

#[test]
fn nesting_is_measured_against_the_policys_max_expr_depth() {
    let nested = |n: usize| format!("{}1{} > 0", "(".repeat(n), ")".repeat(n));
    let text = policy_default_limits("ignore").replace(
        "[warnings.default.en]",
        "[limits]\nmax_expr_depth = 8\n\n[warnings.default.en]",
    );
    let rules = Rules::with_policy(&text);
    rules.pack(
        "p",
        "regions = [\"*\"]",
        &[("deep", &nested(20), ""), ("flat", &nested(1), "")],
    );
    let problems = rules.problems();
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(has(&problems, "p/deep.rhai:1:"), "{problems:?}");
}

#[test]
fn every_problem_is_reported_at_once_with_file_line_and_column() {
    let rules = Rules::with_policy(&policy_default_limits("sometimes"));
    rules.pack(
        "one",
        "regions = [\"*\"]",
        &[
            ("bad-syntax", "true &&", ""),
            ("bad-tier", "true", "min_tier = \"severe\""),
            ("bad-warning", "true", "warning = \"nope\""),
            ("bad-mode", "true", "mode = \"maybe\""),
            ("missing", "true", ""),
        ],
    );
    std::fs::remove_file(rules.path().join("one/missing.rhai")).unwrap();
    rules.append("one/pack.toml", "[[watchlists]]\nid = \"l\"\nfile = \"l.json\"\n\n[warnings.nolang.fr]\ntitle = \"t\"\nbody = \"b\"\n");
    rules.file("one/l.json", "{\"address\": \"x\"}");
    rules.pack("two", "regions = [\"*\"]", &[("eval", "eval(\"1\")", "")]);
    rules.file("three/pack.toml", "id = \"three\"\nregions = [\"*\"\n"); // TOML syntax error
    rules.file("four/pack.toml", "id = \"not-four\"\nregions = [\"*\"]\n");
    let problems = rules.problems();
    assert_located(&problems);
    for expected in [
        "policy.toml:",
        "one/bad_syntax.rhai:1:",
        "one/pack.toml:",
        "one/l.json:1:",
        "two/eval.rhai:1:",
        "three/pack.toml:",
        "four/pack.toml:1:",
    ] {
        assert!(
            has(&problems, expected),
            "missing {expected}: {problems:#?}"
        );
    }
    let manifest_problems = problems
        .iter()
        .filter(|p| p.starts_with("one/pack.toml:"))
        .count();
    assert!(
        manifest_problems >= 4,
        "tier, warning, mode, warning without en: {problems:#?}"
    );
    assert!(
        has(&problems, "one/missing.rhai:1:1:"),
        "a missing script is named: {problems:#?}"
    );
    // the problem lines point at the offending entries
    let manifest = std::fs::read_to_string(rules.path().join("one/pack.toml")).unwrap();
    let line_of = |needle: &str| manifest.lines().position(|l| l.contains(needle)).unwrap() + 1;
    for needle in [
        "\"severe\"",
        "\"nope\"",
        "\"maybe\"",
        "[warnings.nolang.fr]",
    ] {
        let prefix = format!("one/pack.toml:{}:", line_of(needle));
        assert!(
            has(&problems, &prefix),
            "{needle} at {prefix}: {problems:#?}"
        );
    }
}

#[test]
fn policy_problems_are_reported() {
    let no_default = "[tiers]\nnotice = 20\nwarn = 50\ncool_off = 90\n";
    assert!(has(
        &Rules::with_policy(no_default).problems(),
        "policy.toml:"
    ));
    let decreasing = policy_default_limits("ignore").replace("warn = 50", "warn = 10");
    assert!(has(
        &Rules::with_policy(&decreasing).problems(),
        "policy.toml:"
    ));
    let bad_error = policy_default_limits("panic");
    let problems = Rules::with_policy(&bad_error).problems();
    assert!(
        has(&problems, "policy.toml:10:"),
        "on_rule_error is on line 10: {problems:?}"
    );
    let missing = Rules {
        dir: tempfile::tempdir().unwrap(),
    };
    assert_located(&missing.problems());
}

#[test]
fn every_warning_needs_an_en_text() {
    let rules = Rules::new();
    rules.pack(
        "p",
        "regions = [\"*\"]",
        &[("r", "true", "warning = \"w\"")],
    );
    rules.append(
        "p/pack.toml",
        "[warnings.w.\"zh-HK\"]\ntitle = \"t\"\nbody = \"b\"\n",
    );
    let problems = rules.problems();
    assert_located(&problems);
    assert!(has(&problems, "p/pack.toml:"), "{problems:?}");
}

#[test]
fn a_broken_pack_is_refused_as_a_whole() {
    let rules = Rules::new();
    rules.pack(
        "p",
        "regions = [\"*\"]",
        &[("good", "true", ""), ("bad", "this is not rhai", "")],
    );
    rules.pack("q", "regions = [\"*\"]", &[("good", "true", "")]);
    assert!(
        riskgate::RuleSet::load(rules.path()).is_err(),
        "no rule set loads with a broken pack in it"
    );
}

#[test]
fn duplicate_rule_ids_in_a_pack_are_refused() {
    let rules = Rules::new();
    rules.pack("p", "regions = [\"*\"]", &[("r", "true", "")]);
    rules.append(
        "p/pack.toml",
        "[[rules]]\nid = \"r\"\nscript = \"r.rhai\"\nscore = 1\nreason = \"again\"\n",
    );
    assert!(has(&rules.problems(), "p/pack.toml:"));
}

// ---- what a script's value means -----------------------------------------------------------

#[test]
fn true_scores_the_manifest_score_false_and_unit_do_not_hit() {
    assert_eq!(hit_score("true"), Some(40));
    assert_eq!(hit_score("tx.amount_usd > 1000.0"), Some(40));
    assert_eq!(hit_score("false"), None);
    assert_eq!(hit_score("()"), None);
    assert_eq!(hit_score(""), None, "an empty script is ()");
    assert_eq!(
        hit_score("if tx.amount_usd > 1e9 { true }"),
        None,
        "an if without else is ()"
    );
}

#[test]
fn numbers_are_scores_rounded_half_away_from_zero_and_at_most_zero_is_no_hit() {
    assert_eq!(hit_score("7"), Some(7));
    assert_eq!(hit_score("1"), Some(1));
    assert_eq!(hit_score("0"), None);
    assert_eq!(hit_score("-3"), None);
    assert_eq!(hit_score("2.5"), Some(3));
    assert_eq!(hit_score("3.5"), Some(4));
    assert_eq!(hit_score("0.5"), Some(1));
    assert_eq!(hit_score("0.49"), None);
    assert_eq!(hit_score("1.4999"), Some(1));
    assert_eq!(hit_score("-0.4"), None);
    assert_eq!(hit_score("-2.5"), None);
    assert_eq!(hit_score("0.0"), None);
    assert_eq!(hit_score("tx.amount_usd / 100.0"), Some(12), "12.345");
}

#[test]
fn other_values_are_rule_errors() {
    for script in [
        "\"yes\"",
        "0.0 / 0.0",
        "1.0 / 0.0",
        "-1.0 / 0.0",
        "[1]",
        "#{a: 1}",
        "'c'",
        "tx",
        "tx.watchlists",
        "tx.destination",
        "tx.id + \"\"",
        "tx.hours_since_password_reset",
        "tx.device_age_hours",
        "tx.amount_usd / 0.0",
        "if tx.amount_usd > 0.0 { \"yes\" } else { false }",
        "[]",
        "#{}",
    ] {
        rule_error(script);
    }
}

#[test]
fn runtime_errors_are_rule_errors() {
    for script in [
        "throw \"boom\"",
        "tx.no_such_field > 1",
        "1 / 0",
        "let a = [1]; a[5]",
        "\"x\" + no_fn(1)",
        "tx.amount_usd.foo()",
    ] {
        rule_error(script);
    }
}

#[test]
fn no_clock_no_randomness_no_eval_at_runtime_and_print_debug_do_nothing() {
    rule_error("timestamp()");
    rule_error("let t = timestamp(); true");
    rule_error("rand()");
    rule_error("random() > 0.5");
    rule_error("let f = Fn(\"ev\" + \"al\"); f.call(\"true\")");
    rule_error("call(\"eval\", \"true\")");
    rule_error("sleep(1); true");
    rule_error("parse_json(\"{}\"); true");
    assert_eq!(hit_score("print(\"hello\"); debug(\"x\"); true"), Some(40));
}

#[test]
fn sandbox_limits_stop_hostile_scripts_as_rule_errors() {
    let hostile = [
        ("infinite loop", "loop { }"),
        ("while loop", "let x = 0; while true { x += 1; } true"),
        ("string bomb", "let s = \"x\"; loop { s += s; } true"),
        ("array bomb", "let a = []; loop { a.push(1); } true"),
        ("array pad bomb", "let a = []; a.pad(100000, 0); true"),
        (
            "map bomb",
            "let m = #{}; let i = 0; loop { m[`k${i}`] = i; i += 1; } true",
        ),
        ("string repeat", "let s = \"ab\"; s.pad(1000000, 'x'); true"),
        ("deep recursion", "fn f(n) { f(n + 1) } f(0)"),
        ("mutual recursion", "fn a(n) { b(n) } fn b(n) { a(n) } a(1)"),
        ("caught loop", "try { loop { } } catch { } true"),
        (
            "caught string bomb",
            "try { let s = \"x\"; loop { s += s; } } catch { } true",
        ),
        (
            "caught array bomb",
            "try { let a = []; loop { a.push(1); } } catch { } true",
        ),
        (
            "caught recursion",
            "fn f(n) { f(n + 1) } try { f(0) } catch { } true",
        ),
    ];
    for (name, script) in hostile {
        let d = run(script);
        assert!(d.hits.is_empty(), "{name}: no hit");
        assert_eq!(d.errors.len(), 1, "{name}: a rule error, got {d:?}");
    }
}

#[test]
fn the_wall_clock_deadline_stops_a_rule_that_is_within_its_operation_budget() {
    let text = policy_default_limits("ignore").replace(
        "[warnings.default.en]",
        "[limits]\nmax_rule_ms = 1\nmax_operations = 1000000000000\n\n[warnings.default.en]",
    );
    for script in ["loop { }", "try { loop { } } catch { } true"] {
        let d = run_with_policy(&text, script);
        assert!(d.hits.is_empty(), "{script}: {d:?}");
        assert_eq!(d.errors.len(), 1, "{script}: {d:?}");
        assert!(
            d.errors[0].error.contains("deadline"),
            "{}",
            d.errors[0].error
        );
    }
}

#[test]
fn a_rule_cannot_change_tx_for_the_rules_after_it() {
    let rules = Rules::new();
    rules.pack(
        "p",
        "regions = [\"*\"]",
        &[
            (
                "a-mutate",
                "tx.watchlists.push(\"p/fake\"); tx.amount_usd = 0.0; true",
                "",
            ),
            (
                "a-shadow-var",
                "let tx = #{amount_usd: 0.0}; tx.amount_usd == 0.0",
                "",
            ),
            (
                "b-check",
                "tx.amount_usd == 500.0 && tx.watchlists.len() == 0",
                "",
            ),
        ],
    );
    let d = decide(&rules, &wd("w", "u", T0, 500.0, "X"));
    assert!(ids(&d.hits).contains(&"p/b-check".to_string()), "{d:?}");
}

#[test]
fn a_failing_rule_never_fails_the_decision_and_other_rules_still_run() {
    let rules = Rules::new();
    rules.pack(
        "p",
        "regions = [\"*\"]",
        &[
            ("a", "loop {}", ""),
            ("b", "throw \"x\"", ""),
            ("c", "true", "score = 25"),
        ],
    );
    let d = decide(&rules, &wd("w", "u", T0, 1.0, "X"));
    assert_eq!(ids(&d.hits), ["p/c"]);
    assert_eq!(
        d.errors.iter().map(|e| &*e.rule).collect::<Vec<_>>(),
        ["p/a", "p/b"]
    );
    assert_eq!(d.score, 25);
}

// ---- reload ------------------------------------------------------------------------------

#[test]
fn reload_keeps_the_current_rule_set_on_any_problem_and_reports_them_all() {
    let rules = Rules::new();
    rules.pack("p", "regions = [\"*\"]", &[("r", "true", "score = 30")]);
    let scorer = Scorer::from_dir(rules.path()).unwrap();
    let before = scorer.rules().id().to_string();
    let w = wd("w", "u", T0, 1.0, "X").w();
    assert_eq!(scorer.score(&w).score, 30);

    let broken = Rules::new();
    broken.pack(
        "p",
        "regions = [\"*\"]",
        &[
            ("r", "true &&", "score = 99"),
            ("s", "import \"x\" as y; true", ""),
        ],
    );
    let err = scorer.reload(broken.path()).unwrap_err();
    assert_eq!(err.problems().len(), 2, "{err}");
    assert_eq!(scorer.rules().id(), before, "the old set stays live");
    let d = scorer.score(&w);
    assert_eq!((d.score, d.ruleset.as_ref()), (30, before.as_str()));

    let fixed = Rules::new();
    fixed.pack("p", "regions = [\"*\"]", &[("r", "true", "score = 60")]);
    scorer.reload(fixed.path()).unwrap();
    assert_ne!(scorer.rules().id(), before);
    assert_eq!(scorer.score(&w).score, 60);
}

#[test]
fn hostile_scripts_are_refused_at_load_or_fail_as_rule_errors_without_crashing() {
    let n = 20_000;
    let hostile = [
        ("unary-not", format!("{}true", "!".repeat(n))),
        ("unary-minus", format!("{}1", "-".repeat(n))),
        ("parens", format!("{}1{}", "(".repeat(n), ")".repeat(n))),
        ("arrays", format!("{}1{}", "[".repeat(n), "]".repeat(n))),
        (
            "maps",
            format!("{}1{}", "#{a:".repeat(n / 4), "}".repeat(n / 4)),
        ),
        ("blocks", format!("{}true{}", "{".repeat(n), "}".repeat(n))),
        (
            "ifs",
            format!("{}true{}", "if true { ".repeat(n / 10), " }".repeat(n / 10)),
        ),
        (
            "else-if",
            format!(
                "if false {{ 1 }} {} else {{ 2 }}",
                "else if false { 1 } ".repeat(n / 20)
            ),
        ),
        (
            "closures",
            format!("{}1{}", "|| ".repeat(n / 4), "".repeat(0)),
        ),
        (
            "chained-calls",
            format!("\"x\"{}", ".to_upper()".repeat(n / 12)),
        ),
        ("index", format!("[1]{}", "[0]".repeat(n / 3))),
        ("properties", format!("tx{}", ".a".repeat(n / 2))),
        ("additions", format!("1{}", " + 1".repeat(n / 4))),
        (
            "string-interp",
            format!("`{}x{}`", "${`".repeat(n / 5), "`}".repeat(n / 5)),
        ),
        (
            "fn-nesting",
            format!("{}1{}", "fn f() { ".repeat(50), " }".repeat(50)),
        ),
        (
            "switch",
            format!(
                "switch 1 {{ {} _ => 2 }}",
                (0..3000).map(|i| format!("{i} => 1,")).collect::<String>()
            ),
        ),
    ];
    for (name, script) in hostile {
        let rules = Rules::new();
        rules.pack("p", "regions = [\"*\"]", &[("r", &script, "")]);
        match riskgate::RuleSet::load(rules.path()) {
            Err(e) => assert!(!e.problems().is_empty(), "{name}"),
            Ok(set) => {
                let d = Scorer::new(set).score(&wd("w", "u", T0, 1.0, "X").w());
                assert!(d.hits.len() + d.errors.len() <= 1, "{name}: {d:?}");
            }
        }
    }
}

fn with_limits(limits: &str) -> String {
    policy_default_limits("ignore").replace(
        "[warnings.default.en]",
        &format!("[limits]\n{limits}\n\n[warnings.default.en]"),
    )
}

#[test]
fn each_sandbox_limit_fires_at_the_policys_value() {
    let cases = [
        (
            "max_operations = 200",
            "let n = 0; for i in 0..10 { n += i; } n > 0",
            "let n = 0; for i in 0..1000 { n += i; } n > 0",
        ),
        (
            "max_call_levels = 5",
            "fn f(n) { if n == 0 { true } else { f(n - 1) } } f(2)",
            "fn f(n) { if n == 0 { true } else { f(n - 1) } } f(20)",
        ),
        (
            "max_string_size = 16",
            "let s = \"\"; for i in 0..10 { s += \"x\"; } s.len() == 10",
            "let s = \"\"; for i in 0..20 { s += \"x\"; } s.len() == 20",
        ),
        (
            "max_array_size = 8",
            "let a = []; for i in 0..5 { a.push(i); } a.len() == 5",
            "let a = []; for i in 0..9 { a.push(i); } a.len() == 9",
        ),
        (
            "max_map_size = 4",
            "let m = #{}; for i in 0..3 { m[`k${i}`] = i; } m.len() == 3",
            "let m = #{}; for i in 0..5 { m[`k${i}`] = i; } m.len() == 5",
        ),
    ];
    for (limit, within, beyond) in cases {
        let text = with_limits(limit);
        let d = run_with_policy(&text, within);
        assert_eq!(
            (d.hits.len(), d.errors.len()),
            (1, 0),
            "{limit}: within the limit: {d:?}"
        );
        let d = run_with_policy(&text, beyond);
        assert_eq!(
            (d.hits.len(), d.errors.len()),
            (0, 1),
            "{limit}: beyond the limit: {d:?}"
        );
    }
}

#[test]
fn campaign_windows_take_toml_datetimes_or_rfc_3339_strings_with_an_offset() {
    let micros = |s: &str| wd("x", "u", s, 1.0, "X").w().ts.as_micros();
    for (line, expected) in [
        ("active_from = 2026-12-01T00:00:00Z", "2026-12-01T00:00:00Z"),
        (
            "active_from = 2026-12-01 08:00:00+08:00",
            "2026-12-01T00:00:00Z",
        ),
        ("active_from = 2026-12-01T00:00Z", "2026-12-01T00:00:00Z"), // TOML 1.1: seconds optional
        (
            "active_from = 2026-12-01T00:00:00.5Z",
            "2026-12-01T00:00:00.5Z",
        ),
        (
            "active_from = \"2026-12-01T08:00:00+08:00\"",
            "2026-12-01T00:00:00Z",
        ),
    ] {
        let rules = Rules::new();
        rules.pack(
            "p",
            &format!("regions = [\"*\"]\n{line}"),
            &[("r", "true", "")],
        );
        assert_eq!(
            rules.load().packs()[0].active_from,
            Some(micros(expected)),
            "{line}"
        );
    }
    for line in [
        "active_from = 2026-12-01T00:00:00",
        "active_from = 2026-12-01",
        "active_from = \"2026-12-01\"",
        "active_from = \"2026-12-01T00:00Z\"",
        "active_from = \"soon\"",
        "active_from = 2026-12-01T00:00:00Z\nactive_until = 2026-12-01T00:00:00Z",
    ] {
        let rules = Rules::new();
        rules.pack(
            "p",
            &format!("regions = [\"*\"]\n{line}"),
            &[("r", "true", "")],
        );
        let problems = rules.problems();
        assert!(
            problems.iter().any(|p| p.starts_with("p/pack.toml:")),
            "{line}: {problems:?}"
        );
    }
}
