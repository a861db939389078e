//! Contract section 4 item 6: the holdout group. `[holdout]` in policy.toml, the SHA-256 group
//! rule, the `holdout` field on every decision, warnings withheld only at the listed tiers and
//! never at cool_off, and every load refusal naming `holdout`.

mod support;

use riskgate::{Holdout, Tier};
use serde_json::json;
use sha2::{Digest, Sha256};
use support::contract::*;

/// The standard test policy plus a `[holdout]` table.
fn policy_with(holdout: &str) -> String {
    format!(
        "{}\n[holdout]\n{holdout}\n",
        policy_default_limits("ignore")
    )
}

/// A rule set whose one rule scores every withdrawal `score` (20 notice, 50 warn, 90 cool_off),
/// naming the warning `p/w`.
fn rules_scoring(holdout: &str, score: i64) -> Rules {
    let rules = Rules::with_policy(&policy_with(holdout));
    rules.pack(
        "p",
        "regions = [\"*\"]",
        &[("r", &score.to_string(), "warning = \"w\"")],
    );
    rules.append(
        "p/pack.toml",
        "[warnings.w.en]\ntitle = \"T\"\nbody = \"B\"\n[warnings.w.fr]\ntitle = \"TF\"\nbody = \"BF\"\n",
    );
    rules
}

/// The contract's rule, computed here with the sha2 crate directly.
fn in_group(salt: &str, user: &str, share: f64) -> bool {
    let digest = Sha256::digest(format!("{salt}:{user}").as_bytes());
    let h = u64::from_be_bytes(digest[..8].try_into().unwrap());
    (h as f64) / 2f64.powi(64) < share
}

fn decisions_for_users(rules: &Rules, users: &[String]) -> Vec<serde_json::Value> {
    let scorer = rules.scorer();
    users
        .iter()
        .enumerate()
        .map(|(i, u)| {
            let d = scorer.score(&wd(&format!("w{i}"), u, T0, 10.0, "X").w());
            serde_json::from_str(&d.to_json()).unwrap()
        })
        .collect()
}

fn users(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("u-{i}")).collect()
}

// ---- the hash ------------------------------------------------------------------------------

#[test]
fn hash_is_the_first_8_bytes_big_endian_of_sha256_of_salt_colon_user() {
    // Expected values from Python:
    //   int.from_bytes(hashlib.sha256((salt + ':' + user).encode()).digest()[:8], 'big')
    assert_eq!(Holdout::hash("2026-q4", "u-1"), 17993096100617010757);
    assert_eq!(Holdout::hash("2026-q4", "u-7"), 1069985561224250727);
    assert_eq!(Holdout::hash("s", "alice"), 1603481113412620163);
    assert_eq!(Holdout::hash("2026-q4", "用户"), 14632396512036690878);
}

#[test]
fn group_at_5_percent_is_exactly_the_users_the_rule_gives() {
    // Python: [f'u-{i}' for i in range(100) if int.from_bytes(hashlib.sha256(
    //   f'2026-q4:u-{i}'.encode()).digest()[:8], 'big') / 2**64 < 0.05]
    let expected = [
        "u-9", "u-22", "u-37", "u-38", "u-43", "u-44", "u-49", "u-52", "u-53", "u-75", "u-83",
        "u-90", "u-91",
    ];
    let rules = rules_scoring("share = 0.05\nsalt = \"2026-q4\"", 25);
    let all = users(100);
    let decisions = decisions_for_users(&rules, &all);
    let held: Vec<&str> = decisions
        .iter()
        .filter(|d| d["holdout"] == json!(true))
        .map(|d| d["user_id"].as_str().unwrap())
        .collect();
    assert_eq!(held, expected);
    let h = rules.load().policy().holdout.clone().unwrap();
    for u in &all {
        assert_eq!(h.in_group(u), expected.contains(&u.as_str()), "{u}");
    }
}

#[test]
fn group_at_half_matches_an_independent_computation() {
    let rules = rules_scoring(
        "share = 0.5\nsalt = \"other salt\"\ntiers = [\"notice\"]",
        25,
    );
    let all = users(400);
    let decisions = decisions_for_users(&rules, &all);
    let mut held = 0;
    for (u, d) in all.iter().zip(&decisions) {
        assert_eq!(
            d["holdout"] == json!(true),
            in_group("other salt", u, 0.5),
            "{u}"
        );
        held += usize::from(d["holdout"] == json!(true));
    }
    assert!(
        held > 100 && held < 300,
        "{held} of 400 held out at share 0.5"
    );
}

#[test]
fn a_new_salt_draws_a_new_group() {
    let a = Holdout::new(0.5, "a", &[Tier::Notice]).unwrap();
    let b = Holdout::new(0.5, "b", &[Tier::Notice]).unwrap();
    let all = users(200);
    assert!(all.iter().any(|u| a.in_group(u) != b.in_group(u)));
}

// ---- what a held-out decision is -----------------------------------------------------------

#[test]
fn held_out_decision_keeps_tier_score_and_hits_and_has_no_warning() {
    let rules = rules_scoring("share = 0.5\nsalt = \"2026-q4\"", 25);
    let scorer = rules.scorer();
    // u-0 is in the group at 0.5, u-1 is not (see the hash test: 0.975).
    assert!(in_group("2026-q4", "u-0", 0.5));
    let held = scorer.score(&wd("a", "u-0", T0, 10.0, "X").locale("fr").w());
    let shown = scorer.score(&wd("b", "u-1", T0, 10.0, "X").locale("fr").w());
    assert!(held.holdout);
    assert!(!shown.holdout);
    assert_eq!(held.tier, Tier::Notice);
    assert_eq!(held.score, 25);
    assert_eq!(held.hits, shown.hits);
    assert_eq!(held.warning, None);
    assert_eq!(&*shown.warning.as_ref().unwrap().key, "p/w");
    let v: serde_json::Value = serde_json::from_str(&held.to_json()).unwrap();
    assert_eq!(v["warning"], serde_json::Value::Null);
    assert_eq!(v["holdout"], json!(true));
    assert_eq!(v["tier"], json!("notice"));
    // The warning it would have shown is recorded, for measuring the effect per warning.
    assert_eq!(v["withheld"], json!({"key": "p/w", "locale": "fr"}));
    let v: serde_json::Value = serde_json::from_str(&shown.to_json()).unwrap();
    assert!(v.get("withheld").is_none());
}

#[test]
fn holdout_field_follows_errors_and_precedes_ruleset() {
    let rules = rules_scoring("share = 0.5\nsalt = \"2026-q4\"", 25);
    let json = rules
        .scorer()
        .score(&wd("a", "u-0", T0, 10.0, "X").w())
        .to_json();
    let errors = json.find("\"errors\":").unwrap();
    let holdout = json.find("\"holdout\":").unwrap();
    let ruleset = json.find("\"ruleset\":").unwrap();
    assert!(errors < holdout && holdout < ruleset, "{json}");
}

#[test]
fn cool_off_is_never_held_out() {
    let rules = rules_scoring(
        "share = 0.5\nsalt = \"2026-q4\"\ntiers = [\"notice\", \"warn\"]",
        95,
    );
    let all = users(50);
    for d in decisions_for_users(&rules, &all) {
        assert_eq!(d["tier"], json!("cool_off"));
        assert_eq!(d["holdout"], json!(false));
        assert_eq!(d["warning"]["key"], json!("p/w"));
        assert_eq!(d["cool_off_hours"], json!(24));
    }
}

#[test]
fn warn_is_held_only_when_listed() {
    let all = users(60);
    let members: Vec<bool> = all.iter().map(|u| in_group("s", u, 0.5)).collect();
    assert!(members.contains(&true));
    // Default tiers: notice only.
    let default = rules_scoring("share = 0.5\nsalt = \"s\"", 55);
    for d in decisions_for_users(&default, &all) {
        assert_eq!(d["tier"], json!("warn"));
        assert_eq!(d["holdout"], json!(false));
        assert!(d["warning"].is_object());
    }
    let listed = rules_scoring("share = 0.5\nsalt = \"s\"\ntiers = [\"warn\"]", 55);
    for (d, member) in decisions_for_users(&listed, &all).iter().zip(&members) {
        assert_eq!(d["holdout"], json!(*member), "{d}");
        assert_eq!(d["warning"].is_null(), *member, "{d}");
    }
    // Listing warn alone leaves notice shown.
    let notice = rules_scoring("share = 0.5\nsalt = \"s\"\ntiers = [\"warn\"]", 25);
    for d in decisions_for_users(&notice, &all) {
        assert_eq!(d["holdout"], json!(false));
    }
}

#[test]
fn allow_decisions_are_never_held_out() {
    let rules = rules_scoring(
        "share = 0.5\nsalt = \"s\"\ntiers = [\"notice\", \"warn\"]",
        5,
    );
    for d in decisions_for_users(&rules, &users(40)) {
        assert_eq!(d["tier"], json!("allow"));
        assert_eq!(d["holdout"], json!(false));
        assert!(d["warning"].is_null());
    }
}

#[test]
fn share_zero_holds_out_nothing() {
    for share in ["0", "0.0"] {
        let rules = rules_scoring(&format!("share = {share}\nsalt = \"s\""), 25);
        for d in decisions_for_users(&rules, &users(100)) {
            assert_eq!(d["holdout"], json!(false));
            assert!(d["warning"].is_object());
        }
    }
}

#[test]
fn empty_tiers_hold_out_nothing() {
    let rules = rules_scoring("share = 0.5\nsalt = \"s\"\ntiers = []", 25);
    for d in decisions_for_users(&rules, &users(100)) {
        assert_eq!(d["holdout"], json!(false));
        assert!(d["warning"].is_object());
    }
}

#[test]
fn duplicate_tiers_are_accepted_as_a_set() {
    let rules = rules_scoring(
        "share = 0.5\nsalt = \"s\"\ntiers = [\"notice\", \"notice\"]",
        25,
    );
    let h = rules.load().policy().holdout.clone().unwrap();
    assert_eq!(h.tiers(), vec![Tier::Notice]);
}

#[test]
fn without_a_holdout_table_every_decision_says_false() {
    let rules = Rules::new();
    rules.pack("p", "regions = [\"*\"]", &[("r", "25", "")]);
    for d in decisions_for_users(&rules, &users(20)) {
        assert_eq!(d["holdout"], json!(false));
    }
}

// ---- refusals ------------------------------------------------------------------------------

fn refused(holdout: &str) -> Vec<String> {
    Rules::with_policy(&policy_with(holdout)).problems()
}

fn assert_refused(holdout: &str, line: usize) {
    let problems = refused(holdout);
    assert!(!problems.is_empty(), "{holdout}");
    for p in &problems {
        assert!(p.contains("holdout"), "{holdout}: {p}");
        assert!(p.starts_with("policy.toml:"), "{holdout}: {p}");
    }
    // The policy's own lines come first; the [holdout] header is on line `base`.
    let base = policy_default_limits("ignore").lines().count() + 2;
    assert!(
        problems
            .iter()
            .any(|p| p.starts_with(&format!("policy.toml:{}:", base + line))),
        "{holdout}: {problems:?} (expected line {})",
        base + line
    );
}

#[test]
fn every_breach_is_refused_at_load_naming_holdout() {
    // (table body, line of the problem relative to the [holdout] header)
    assert_refused("share = -0.01\nsalt = \"s\"", 1);
    assert_refused("share = 0.51\nsalt = \"s\"", 1);
    assert_refused("share = 1\nsalt = \"s\"", 1);
    assert_refused("share = \"0.05\"\nsalt = \"s\"", 1);
    assert_refused("share = true\nsalt = \"s\"", 1);
    assert_refused("share = nan\nsalt = \"s\"", 1);
    assert_refused("salt = \"s\"", 0); // share missing
    assert_refused("share = 0.05", 0); // salt missing
    assert_refused("share = 0.05\nsalt = \"\"", 2);
    assert_refused("share = 0.05\nsalt = 5", 2);
    assert_refused("share = 0.05\nsalt = \"s\"\ntiers = [\"cool_off\"]", 3);
    assert_refused("share = 0.05\nsalt = \"s\"\ntiers = [\"allow\"]", 3);
    assert_refused(
        "share = 0.05\nsalt = \"s\"\ntiers = [\"notice\", \"warning\"]",
        3,
    );
    assert_refused("share = 0.05\nsalt = \"s\"\ntiers = \"notice\"", 3);
    assert_refused("share = 0.05\nsalt = \"s\"\ntiers = [1]", 3);
    assert_refused("share = 0.05\nsalt = \"s\"\nshares = 0.1", 3);
}

#[test]
fn all_breaches_of_one_table_are_reported_together() {
    let problems = refused("share = 0.9\nsalt = \"\"\ntiers = [\"cool_off\"]");
    assert_eq!(problems.len(), 3, "{problems:?}");
    let problems = refused("tiers = [\"warn\"]");
    assert_eq!(problems.len(), 2, "share and salt missing: {problems:?}");
}

#[test]
fn bounds_are_inclusive() {
    for share in ["0", "0.0", "0.5", "0.25"] {
        Rules::with_policy(&policy_with(&format!("share = {share}\nsalt = \"s\""))).load();
    }
}

#[test]
fn cli_refuses_a_bad_holdout_naming_it() {
    let rules = rules_scoring("share = 0.7\nsalt = \"s\"", 25);
    let (code, _, err) = cli(
        &["score", "--rules", rules.path().to_str().unwrap()],
        Some(""),
    );
    assert_ne!(code, 0);
    assert!(err.contains("holdout"), "{err}");
}

// ---- every decision carries it: score output and the decision log --------------------------

#[test]
fn every_decision_line_and_every_log_line_carries_holdout() {
    let rules = rules_scoring("share = 0.5\nsalt = \"2026-q4\"", 25);
    let stream: String = (0..30)
        .map(|i| {
            format!(
                "{}\n",
                wd(&format!("w{i}"), &format!("u-{i}"), T0, 10.0, "X").line()
            )
        })
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("decisions.log");
    let (code, out, err) = cli(
        &[
            "score",
            "--rules",
            rules.path().to_str().unwrap(),
            "--log",
            log.to_str().unwrap(),
        ],
        Some(&stream),
    );
    assert_eq!(code, 0, "{err}");
    let lines = json_lines(&out);
    assert_eq!(lines.len(), 30);
    for d in &lines {
        let user = d["user_id"].as_str().unwrap();
        assert_eq!(d["holdout"], json!(in_group("2026-q4", user, 0.5)), "{d}");
    }
    let logged: Vec<serde_json::Value> = json_lines(&std::fs::read_to_string(&log).unwrap())
        .into_iter()
        .filter(|l| l["kind"] == "decision")
        .collect();
    assert_eq!(logged.len(), 30);
    for (l, d) in logged.iter().zip(&lines) {
        assert_eq!(l["decision"]["holdout"], d["holdout"], "{l}");
        assert_eq!(l["decision"]["id"], d["id"]);
    }
    assert!(riskgate::verify_log(&log).unwrap().is_intact());
}

#[test]
fn check_expects_the_warning_the_rules_chose_even_when_held_out() {
    let rules = rules_scoring("share = 0.5\nsalt = \"2026-q4\"", 25);
    // u-0 is in the group, u-1 is not: both expect the warning their rule names.
    let tests: String = ["u-0", "u-1"]
        .iter()
        .enumerate()
        .map(|(i, u)| {
            let mut v = wd(&format!("t{i}"), u, T0, 10.0, "X").0;
            v["expect"] = json!({"tier": "notice", "hits": ["p/r"], "warning": "p/w"});
            format!("{v}\n")
        })
        .collect();
    rules.file("p/tests/holdout.jsonl", &tests);
    let (code, out, err) = cli(&["check", rules.path().to_str().unwrap()], None);
    assert_eq!(code, 0, "{out}{err}");
}

#[test]
fn holdout_that_is_not_a_table_is_refused_naming_it() {
    for value in ["1", "\"0.05\"", "[\"notice\"]", "true", "0.05"] {
        let text = format!("holdout = {value}\n{}", policy_default_limits("ignore"));
        let problems = Rules::with_policy(&text).problems();
        assert_eq!(problems.len(), 1, "{value}: {problems:?}");
        assert!(problems[0].starts_with("policy.toml:1:"), "{problems:?}");
        assert!(problems[0].contains("holdout"), "{problems:?}");
    }
    // An inline table is a table.
    let text = format!(
        "holdout = {{ share = 0.5, salt = \"2026-q4\" }}\n{}",
        policy_default_limits("ignore")
    );
    let rules = Rules::with_policy(&text);
    rules.pack("p", "regions = [\"*\"]", &[("r", "25", "")]);
    let d = rules.scorer().score(&wd("a", "u-0", T0, 10.0, "X").w());
    assert!(d.holdout);
}
