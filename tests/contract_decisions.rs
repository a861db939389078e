//! Contract section 4: the decision. Regions, campaign windows, shadow packs and rules, pack
//! caps, thresholds, floors, `on_rule_error`, warning choice, locale fallback, placeholders,
//! cooling-off hours, sorted lists and the ruleset id.

mod support;

use riskgate::{Decision, Tier};
use serde_json::json;
use support::contract::*;

/// A pack applying everywhere whose rules each return a fixed value.
fn fixed(rules: &Rules, pack: &str, header: &str, entries: &[(&str, &str, &str)]) {
    let header = if header.contains("regions") {
        header.to_string()
    } else {
        format!("regions = [\"*\"]\n{header}")
    };
    rules.pack(pack, &header, entries);
}

fn one(rules: &Rules) -> Decision {
    decide(rules, &wd("w", "u", T0, 100.0, "X"))
}

const WARNINGS: &str = r#"
[warnings.low.en]
title = "low en"
body = "low body"

[warnings.high.en]
title = "high en {asset}"
body = "Sending {amount_usd} USD of {asset} to {destination}; {unknown} stays"

[warnings.high."zh-HK"]
title = "high zh-HK"
body = "zh-HK body"

[warnings.high.zh]
title = "high zh"
body = "zh body"

[warnings.high."PT-br"]
title = "high pt-BR"
body = "pt body"
"#;

// ---- 1. which packs apply ------------------------------------------------------------------

#[test]
fn packs_apply_to_the_users_country_or_everywhere_with_star() {
    let rules = Rules::new();
    rules.pack(
        "hk",
        "regions = [\"HK\", \"MO\"]",
        &[("r", "true", "score = 1")],
    );
    rules.pack("all", "regions = [\"*\"]", &[("r", "true", "score = 2")]);
    rules.pack(
        "sg",
        "regions = [\"SG\"]",
        &[("r", "throw \"never runs\"", "score = 4")],
    );
    let s = rules.scorer();
    let hk = s.score(&wd("1", "u", T0, 1.0, "X").country("HK").w());
    assert_eq!(ids(&hk.hits), ["all/r", "hk/r"]);
    assert_eq!(hk.score, 3);
    assert!(
        hk.errors.is_empty(),
        "a pack that does not apply is not run"
    );
    let mo = s.score(&wd("2", "u", T0, 1.0, "X").country("MO").w());
    assert_eq!(mo.score, 3);
    let us = s.score(&wd("3", "u", T0, 1.0, "X").country("US").w());
    assert_eq!(ids(&us.hits), ["all/r"]);
}

#[test]
fn the_campaign_window_includes_active_from_and_excludes_active_until() {
    let rules = Rules::new();
    rules.pack(
        "camp",
        "regions = [\"*\"]\nactive_from = 2026-12-01T00:00:00Z\nactive_until = 2027-03-01T00:00:00+08:00",
        &[("r", "true", "score = 20")],
    );
    rules.pack(
        "from",
        "regions = [\"*\"]\nactive_from = 2026-12-01T00:00:00Z",
        &[("r", "true", "score = 1")],
    );
    rules.pack(
        "until",
        "regions = [\"*\"]\nactive_until = 2026-12-01T00:00:00Z",
        &[("r", "true", "score = 2")],
    );
    let s = rules.scorer();
    let hits = |ts: &str| ids(&s.score(&wd("w", "u", ts, 1.0, "X").w()).hits);
    assert_eq!(
        hits("2026-11-30T23:59:59.999Z"),
        ["until/r"],
        "just before active_from"
    );
    assert_eq!(
        hits("2026-12-01T00:00:00Z"),
        ["camp/r", "from/r"],
        "active_from is inclusive, active_until exclusive"
    );
    assert_eq!(
        hits("2026-12-01T08:00:00+08:00"),
        ["camp/r", "from/r"],
        "same instant, other offset"
    );
    assert_eq!(
        hits("2027-02-28T15:59:59.999Z"),
        ["camp/r", "from/r"],
        "just before active_until (16:00Z)"
    );
    assert_eq!(
        hits("2027-02-28T16:00:00Z"),
        ["from/r"],
        "active_until is exclusive"
    );
}

// ---- shadow ------------------------------------------------------------------------------

#[test]
fn shadow_packs_and_shadow_rules_are_reported_never_scored() {
    let rules = Rules::with_policy(&policy_default_limits("cool_off"));
    fixed(
        &rules,
        "live",
        "",
        &[
            ("a", "true", "score = 10"),
            (
                "b-shadow",
                "true",
                "score = 90\nmode = \"shadow\"\nmin_tier = \"cool_off\"\nwarning = \"high\"",
            ),
        ],
    );
    rules.append("live/pack.toml", WARNINGS);
    fixed(
        &rules,
        "trial",
        "mode = \"shadow\"",
        &[
            ("x", "true", "score = 90\nmin_tier = \"cool_off\""),
            ("y", "throw \"shadow failure\"", ""),
        ],
    );
    let d = one(&rules);
    assert_eq!(ids(&d.hits), ["live/a"]);
    assert_eq!(ids(&d.shadow_hits), ["live/b-shadow", "trial/x"]);
    assert_eq!(d.shadow_hits[0].score, 90);
    assert_eq!(d.score, 10, "shadow hits are not scored");
    assert_eq!(
        d.tier,
        Tier::Allow,
        "no min_tier from shadow hits, and a shadow failure does not raise to on_rule_error"
    );
    assert_eq!(d.errors.len(), 1, "shadow failures are reported");
    assert_eq!(&*d.errors[0].rule, "trial/y");
    assert!(d.warning.is_none());
}

#[test]
fn a_shadow_hits_warning_is_never_chosen() {
    let rules = Rules::new();
    fixed(
        &rules,
        "p",
        "",
        &[
            ("a", "true", "score = 50\nwarning = \"low\""),
            (
                "b",
                "true",
                "score = 99\nwarning = \"high\"\nmode = \"shadow\"",
            ),
        ],
    );
    rules.append("p/pack.toml", WARNINGS);
    assert_eq!(&*one(&rules).warning.unwrap().key, "p/low");
}

// ---- 2. score ----------------------------------------------------------------------------

#[test]
fn each_packs_sum_is_capped_at_its_max_score_and_hits_keep_their_own_score() {
    let rules = Rules::new();
    fixed(
        &rules,
        "capped",
        "max_score = 50",
        &[("a", "true", "score = 40"), ("b", "35", "")],
    );
    fixed(&rules, "other", "", &[("c", "true", "score = 30")]);
    fixed(
        &rules,
        "zero",
        "max_score = 0",
        &[("d", "true", "score = 30")],
    );
    fixed(&rules, "under", "max_score = 100", &[("e", "7", "")]);
    let d = one(&rules);
    assert_eq!(d.score, 87, "50 (capped) + 30 + 0 (max_score 0) + 7");
    let scores: Vec<(String, i64)> = d
        .hits
        .iter()
        .map(|h| (h.rule.to_string(), h.score))
        .collect();
    assert_eq!(
        scores,
        [
            ("capped/a".into(), 40),
            ("capped/b".into(), 35),
            ("other/c".into(), 30),
            ("under/e".into(), 7),
            ("zero/d".into(), 30)
        ]
    );
}

#[test]
fn a_pack_cannot_lower_the_score_of_another_pack() {
    // A manifest score below 0 would let one partner cancel another's alerts: refused at load.
    let rules = Rules::new();
    fixed(&rules, "p", "", &[("neg", "true", "score = -50")]);
    let problems = rules.problems();
    assert!(
        problems.iter().any(|p| p.starts_with("p/pack.toml:")),
        "{problems:?}"
    );
}

// ---- 3. tiers ----------------------------------------------------------------------------

#[test]
fn the_tier_is_the_highest_threshold_the_score_reaches() {
    for (score, tier, hours) in [
        (0, Tier::Allow, None),
        (19, Tier::Allow, None),
        (20, Tier::Notice, None),
        (49, Tier::Notice, None),
        (50, Tier::Warn, None),
        (89, Tier::Warn, None),
        (90, Tier::CoolOff, Some(24)),
        (500, Tier::CoolOff, Some(24)),
    ] {
        let rules = Rules::new();
        fixed(&rules, "p", "", &[("r", &score.to_string(), "")]);
        let d = one(&rules);
        assert_eq!(
            (d.score, d.tier, d.cool_off_hours),
            (score, tier, hours),
            "score {score}"
        );
        assert_eq!(
            d.warning.is_some(),
            tier > Tier::Allow,
            "a warning only above allow"
        );
    }
}

#[test]
fn cool_off_hours_come_from_the_policy() {
    let rules =
        Rules::with_policy(&policy_default_limits("ignore").replace("hours = 24", "hours = 72"));
    fixed(&rules, "p", "", &[("r", "95", "")]);
    let d = one(&rules);
    assert_eq!(d.cool_off_hours, Some(72));
    let v: serde_json::Value = serde_json::from_str(&d.to_json()).unwrap();
    assert_eq!(v["cool_off_hours"], 72);
}

#[test]
fn min_tier_of_a_live_hit_raises_the_tier_never_lowers_it() {
    let rules = Rules::new();
    fixed(
        &rules,
        "p",
        "",
        &[("r", "true", "score = 5\nmin_tier = \"cool_off\"")],
    );
    let d = one(&rules);
    assert_eq!(
        (d.score, d.tier, d.cool_off_hours),
        (5, Tier::CoolOff, Some(24))
    );
    assert_eq!(
        &*d.warning.as_ref().unwrap().key,
        "default",
        "above allow with no named warning: the policy's"
    );

    let rules = Rules::new();
    fixed(
        &rules,
        "p",
        "",
        &[("r", "true", "score = 95\nmin_tier = \"notice\"")],
    );
    assert_eq!(one(&rules).tier, Tier::CoolOff);

    let rules = Rules::new();
    fixed(
        &rules,
        "p",
        "",
        &[
            ("hit", "true", "score = 1\nmin_tier = \"notice\""),
            ("miss", "false", "min_tier = \"cool_off\""),
        ],
    );
    assert_eq!(
        one(&rules).tier,
        Tier::Notice,
        "a rule that does not hit imposes nothing"
    );
}

#[test]
fn on_rule_error_raises_the_tier_only_when_a_live_rule_failed() {
    for (on_error, failing, expected) in [
        ("ignore", "throw \"x\"", Tier::Allow),
        ("warn", "throw \"x\"", Tier::Warn),
        ("cool_off", "\"a string\"", Tier::CoolOff),
        ("notice", "loop {}", Tier::Notice),
        ("warn", "false", Tier::Allow),
    ] {
        let rules = Rules::with_policy(&policy_default_limits(on_error));
        fixed(&rules, "p", "", &[("r", failing, "")]);
        let d = one(&rules);
        assert_eq!(
            d.tier, expected,
            "on_rule_error = {on_error}, script {failing}"
        );
        assert_eq!(d.score, 0);
        assert_eq!(d.cool_off_hours.is_some(), expected == Tier::CoolOff);
    }
    // A failure in a pack that does not apply is no failure.
    let rules = Rules::with_policy(&policy_default_limits("warn"));
    rules.pack("sg", "regions = [\"SG\"]", &[("r", "throw \"x\"", "")]);
    let d = one(&rules);
    assert_eq!((d.tier, d.errors.len()), (Tier::Allow, 0));
    // ... nor does one outside its campaign window.
    let rules = Rules::with_policy(&policy_default_limits("warn"));
    fixed(
        &rules,
        "later",
        "active_from = 2030-01-01T00:00:00Z",
        &[("r", "throw \"x\"", "")],
    );
    assert_eq!(one(&rules).tier, Tier::Allow);
}

// ---- 4. warnings -------------------------------------------------------------------------

#[test]
fn the_warning_is_the_highest_scoring_live_hit_that_names_one() {
    let rules = Rules::new();
    fixed(
        &rules,
        "p",
        "",
        &[
            ("a", "true", "score = 30\nwarning = \"low\""),
            ("b", "true", "score = 40\nwarning = \"high\""),
            ("c", "true", "score = 60"), // highest, but names no warning
        ],
    );
    rules.append("p/pack.toml", WARNINGS);
    let w = one(&rules).warning.unwrap();
    assert_eq!(&*w.key, "p/high");
}

#[test]
fn warning_ties_go_to_the_full_rule_id_ascending() {
    let rules = Rules::new();
    fixed(&rules, "b-pack", "", &[("a", "25", "warning = \"low\"")]);
    rules.append("b-pack/pack.toml", WARNINGS);
    fixed(
        &rules,
        "a-pack",
        "",
        &[
            ("z", "25", "warning = \"high\""),
            ("y", "20", "warning = \"low\""),
        ],
    );
    rules.append("a-pack/pack.toml", WARNINGS);
    assert_eq!(
        &*one(&rules).warning.unwrap().key,
        "a-pack/high",
        "a-pack/z < b-pack/a"
    );

    let rules = Rules::new();
    fixed(
        &rules,
        "p",
        "",
        &[
            ("rule-b", "true", "score = 30\nwarning = \"high\""),
            ("rule-a", "true", "score = 30\nwarning = \"low\""),
        ],
    );
    rules.append("p/pack.toml", WARNINGS);
    assert_eq!(
        &*one(&rules).warning.unwrap().key,
        "p/low",
        "p/rule-a < p/rule-b"
    );
}

#[test]
fn the_score_used_to_choose_is_the_hits_own_before_the_cap() {
    let rules = Rules::new();
    fixed(
        &rules,
        "capped",
        "max_score = 10",
        &[("r", "true", "score = 80\nwarning = \"high\"")],
    );
    rules.append("capped/pack.toml", WARNINGS);
    fixed(
        &rules,
        "open",
        "",
        &[("r", "true", "score = 50\nwarning = \"low\"")],
    );
    rules.append("open/pack.toml", WARNINGS);
    let d = one(&rules);
    assert_eq!(d.score, 60);
    assert_eq!(&*d.warning.unwrap().key, "capped/high");
}

#[test]
fn no_warning_at_allow_even_when_a_hit_names_one() {
    let rules = Rules::new();
    fixed(
        &rules,
        "p",
        "",
        &[("r", "true", "score = 5\nwarning = \"high\"")],
    );
    rules.append("p/pack.toml", WARNINGS);
    let d = one(&rules);
    assert_eq!((d.tier, d.warning.is_none()), (Tier::Allow, true));
    assert!(d.to_json().contains("\"warning\":null"), "{}", d.to_json());
}

fn warning_for(locale: &str) -> (String, String) {
    let rules = Rules::new();
    fixed(
        &rules,
        "p",
        "",
        &[("r", "true", "score = 60\nwarning = \"high\"")],
    );
    rules.append("p/pack.toml", WARNINGS);
    let w = decide(&rules, &wd("w", "u", T0, 100.0, "X").locale(locale))
        .warning
        .unwrap();
    (w.locale.to_string(), w.title)
}

#[test]
fn the_text_is_chosen_by_exact_locale_then_language_then_en_case_insensitively() {
    let pair = |a: &str, b: &str| (a.to_string(), b.to_string());
    assert_eq!(warning_for("zh-HK"), pair("zh-HK", "high zh-HK"), "exact");
    assert_eq!(
        warning_for("ZH-hk"),
        pair("zh-HK", "high zh-HK"),
        "exact, case-insensitive; locale as the pack spells it"
    );
    assert_eq!(warning_for("zh-TW"), pair("zh", "high zh"), "the language");
    assert_eq!(warning_for("zh"), pair("zh", "high zh"));
    assert_eq!(
        warning_for("pt-BR"),
        pair("PT-br", "high pt-BR"),
        "as the pack spells it"
    );
    assert_eq!(
        warning_for("pt"),
        pair("en", "high en USDT"),
        "a language does not match a longer tag"
    );
    assert_eq!(warning_for("fr-CA"), pair("en", "high en USDT"), "then en");
    assert_eq!(warning_for("en-GB"), pair("en", "high en USDT"));
    assert_eq!(warning_for("EN"), pair("en", "high en USDT"));
}

#[test]
fn the_policy_default_warning_also_follows_the_locale() {
    let rules = Rules::new();
    fixed(&rules, "p", "", &[("r", "60", "")]);
    let w = decide(&rules, &wd("w", "u", T0, 1.0, "X").locale("fr-FR"))
        .warning
        .unwrap();
    assert_eq!(
        (&*w.key, &*w.locale, w.title.as_str()),
        ("default", "fr", "Titre")
    );
    let w = decide(&rules, &wd("w", "u", T0, 1.0, "X").locale("de"))
        .warning
        .unwrap();
    assert_eq!((&*w.locale, w.title.as_str()), ("en", "Default title"));
}

#[test]
fn placeholders_are_filled_with_asset_amount_to_two_decimals_and_destination() {
    let rules = Rules::new();
    fixed(
        &rules,
        "p",
        "",
        &[("r", "true", "score = 60\nwarning = \"high\"")],
    );
    rules.append("p/pack.toml", WARNINGS);
    let evm = "0xAbCdEf0123456789abcdef0123456789ABCDEF01";
    let w = decide(
        &rules,
        &wd("w", "u", T0, 1234.5, evm).set("asset", json!("ETH")),
    )
    .warning
    .unwrap();
    assert_eq!(w.title, "high en ETH");
    assert_eq!(
        w.body,
        format!(
            "Sending 1234.50 USD of ETH to {}; {{unknown}} stays",
            evm.to_ascii_lowercase()
        )
    );
    let body = |amount: f64| {
        decide(&rules, &wd("w", "u", T0, amount, "T1"))
            .warning
            .unwrap()
            .body
    };
    assert!(body(0.0).starts_with("Sending 0.00 USD"));
    assert!(body(7.0).starts_with("Sending 7.00 USD"));
    assert!(body(99.999).starts_with("Sending 100.00 USD"));
    assert!(body(0.1).starts_with("Sending 0.10 USD"));
}

// ---- sorted lists, JSON, ruleset id --------------------------------------------------------

#[test]
fn hits_shadow_hits_and_errors_are_sorted_by_rule_id() {
    let rules = Rules::new();
    fixed(
        &rules,
        "zz",
        "",
        &[
            ("b", "true", ""),
            ("a", "true", ""),
            ("e2", "throw \"x\"", ""),
            ("e1", "()+1", ""),
        ],
    );
    fixed(
        &rules,
        "aa",
        "",
        &[("z", "true", ""), ("m", "throw \"y\"", "mode = \"shadow\"")],
    );
    fixed(
        &rules,
        "mm",
        "mode = \"shadow\"",
        &[("s2", "true", ""), ("s1", "true", "")],
    );
    fixed(&rules, "ab", "", &[("s", "true", "mode = \"shadow\"")]);
    let d = one(&rules);
    assert_eq!(ids(&d.hits), ["aa/z", "zz/a", "zz/b"]);
    assert_eq!(ids(&d.shadow_hits), ["ab/s", "mm/s1", "mm/s2"]);
    let errors: Vec<&str> = d.errors.iter().map(|e| &*e.rule).collect();
    assert_eq!(errors, ["aa/m", "zz/e1", "zz/e2"]);
}

#[test]
fn a_decision_serializes_to_the_contracts_json() {
    let rules = Rules::new();
    fixed(
        &rules,
        "p",
        "",
        &[
            ("r", "true", "score = 55\nwarning = \"high\""),
            ("s", "true", "mode = \"shadow\""),
            ("e", "throw \"bad\"", ""),
        ],
    );
    rules.append("p/pack.toml", WARNINGS);
    let d = decide(&rules, &wd("wd-1", "u-7", T0, 10.0, "X").locale("zh-HK"));
    let v: serde_json::Value = serde_json::from_str(&d.to_json()).unwrap();
    // Field order as in the contract's example.
    let json = d.to_json();
    let order = [
        "id",
        "user_id",
        "tier",
        "score",
        "cool_off_hours",
        "warning",
        "hits",
        "shadow_hits",
        "errors",
        "ruleset",
    ];
    let positions: Vec<usize> = order
        .iter()
        .map(|k| json.find(&format!("\"{k}\":")).unwrap())
        .collect();
    assert!(positions.windows(2).all(|p| p[0] < p[1]), "{json}");
    assert!(json.starts_with("{\"id\":\"wd-1\",\"user_id\":\"u-7\",\"tier\":\"warn\",\"score\":55,\"cool_off_hours\":null,"), "{json}");
    assert_eq!(v["id"], "wd-1");
    assert_eq!(v["user_id"], "u-7");
    assert_eq!(v["tier"], "warn");
    assert_eq!(v["score"], 55);
    assert_eq!(v["cool_off_hours"], serde_json::Value::Null);
    assert_eq!(
        v["warning"],
        json!({"key": "p/high", "locale": "zh-HK", "title": "high zh-HK", "body": "zh-HK body"})
    );
    assert_eq!(
        v["hits"],
        json!([{"rule": "p/r", "score": 55, "reason": "reason of r"}])
    );
    assert_eq!(
        v["shadow_hits"],
        json!([{"rule": "p/s", "score": 10, "reason": "reason of s"}])
    );
    assert_eq!(v["errors"][0]["rule"], "p/e");
    assert!(v["errors"][0]["error"].as_str().unwrap().contains("bad"));
    assert_eq!(v["ruleset"], rules.load().id());
}

#[test]
fn the_ruleset_id_changes_whenever_any_file_changes() {
    let rules = Rules::new();
    fixed(&rules, "p", "", &[("r", "true", "")]);
    rules.append(
        "p/pack.toml",
        "[[watchlists]]\nid = \"l\"\nfile = \"l.txt\"\n",
    );
    rules.file("p/l.txt", "A\n");
    rules.file("p/tests/t.jsonl", "\n");
    let mut seen = vec![rules.load().id().to_string()];
    assert_eq!(rules.load().id(), seen[0], "stable while nothing changes");
    let edits: [(&str, &str); 5] = [
        ("policy.toml", "\n# a comment\n"),
        ("p/r.rhai", " "),
        ("p/l.txt", "B\n"),
        ("p/pack.toml", "# note\n"),
        ("p/tests/t.jsonl", "\n"),
    ];
    for (file, extra) in edits {
        rules.append(file, extra);
        let id = rules.load().id().to_string();
        assert!(!seen.contains(&id), "editing {file} must change the id");
        seen.push(id);
    }
    // a new file counts too
    rules.file("p/extra.rhai", "true");
    let id = rules.load().id().to_string();
    assert!(!seen.contains(&id), "adding a file must change the id");
}
