//! Contract section 4, checked against a reference model: random rule sets (packs with regions,
//! modes, caps and campaign windows; rules returning every kind of value, with scores, warnings,
//! floors and modes; a random `on_rule_error`) decide a withdrawal by a user of a random country
//! and locale, and the decision is compared with one computed by brute force from the contract.

mod support;

use proptest::prelude::*;
use riskgate::Tier;
use support::contract::*;

#[derive(Clone, Debug)]
enum Ret {
    True,
    False,
    Unit,
    Int(i64),
    Float(f64),
    Str,
    Throw,
    Nan,
}

impl Ret {
    fn script(&self) -> String {
        match self {
            Ret::True => "true".into(),
            Ret::False => "false".into(),
            Ret::Unit => "()".into(),
            Ret::Int(n) => format!("{n}"),
            Ret::Float(x) => format!("{x:?}"),
            Ret::Str => "\"high\"".into(),
            Ret::Throw => "throw \"failed\"".into(),
            Ret::Nan => "0.0 / 0.0".into(),
        }
    }
}

#[derive(Clone, Debug)]
struct RuleSpec {
    ret: Ret,
    score: i64,
    warning: Option<u8>,
    min_tier: Option<Tier>,
    shadow: bool,
}

#[derive(Clone, Debug)]
struct PackSpec {
    regions: u8,
    shadow: bool,
    max_score: Option<i64>,
    window: u8,
    rules: Vec<RuleSpec>,
}

fn tier() -> impl Strategy<Value = Tier> {
    prop_oneof![
        Just(Tier::Allow),
        Just(Tier::Notice),
        Just(Tier::Warn),
        Just(Tier::CoolOff)
    ]
}

fn ret() -> impl Strategy<Value = Ret> {
    prop_oneof![
        3 => Just(Ret::True),
        1 => Just(Ret::False),
        1 => Just(Ret::Unit),
        3 => (-5_i64..60).prop_map(Ret::Int),
        2 => prop_oneof![Just(0.5), Just(2.5), Just(-2.5), Just(12.4), Just(12.5), Just(0.49), Just(29.5)].prop_map(Ret::Float),
        1 => Just(Ret::Str),
        1 => Just(Ret::Throw),
        1 => Just(Ret::Nan),
    ]
}

fn rule() -> impl Strategy<Value = RuleSpec> {
    (
        ret(),
        0_i64..60,
        proptest::option::of(0_u8..2),
        proptest::option::weighted(0.2, tier()),
        proptest::bool::weighted(0.2),
    )
        .prop_map(|(ret, score, warning, min_tier, shadow)| RuleSpec {
            ret,
            score,
            warning,
            min_tier,
            shadow,
        })
}

fn pack() -> impl Strategy<Value = PackSpec> {
    (
        0_u8..3,
        proptest::bool::weighted(0.2),
        proptest::option::weighted(0.4, 0_i64..80),
        0_u8..6,
        proptest::collection::vec(rule(), 1..5),
    )
        .prop_map(|(regions, shadow, max_score, window, rules)| PackSpec {
            regions,
            shadow,
            max_score,
            window,
            rules,
        })
}

const WARNINGS: &str = r#"
[warnings.w0.en]
title = "w0 en"
body = "b"
[warnings.w0."zh-HK"]
title = "w0 zh-HK"
body = "b"

[warnings.w1.en]
title = "w1 en"
body = "b"
[warnings.w1.zh]
title = "w1 zh"
body = "b"
[warnings.w1.FR]
title = "w1 FR"
body = "b"
"#;

/// The withdrawal is at T0 = 2026-03-01T00:00:00Z.
fn window(kind: u8) -> (&'static str, bool) {
    match kind {
        0 => ("", true),
        1 => ("active_from = 2026-03-01T00:00:00Z", true),
        2 => ("active_from = 2026-03-01T00:00:01Z", false),
        3 => ("active_until = 2026-03-01T00:00:00Z", false),
        4 => ("active_until = 2026-03-01T08:00:01+08:00", true),
        _ => (
            "active_from = 2026-02-28T00:00:00Z\nactive_until = 2026-03-02T00:00:00Z",
            true,
        ),
    }
}

fn tier_of(score: i64) -> Tier {
    match score {
        s if s >= 90 => Tier::CoolOff,
        s if s >= 50 => Tier::Warn,
        s if s >= 20 => Tier::Notice,
        _ => Tier::Allow,
    }
}

/// The text chosen for `locale` among `texts` (as spelled): exact, language, en.
fn pick(texts: &[&'static str], locale: &str) -> &'static str {
    let language = locale.split('-').next().unwrap();
    let find = |tag: &str| texts.iter().find(|t| t.eq_ignore_ascii_case(tag)).copied();
    find(locale)
        .or_else(|| find(language))
        .or_else(|| find("en"))
        .unwrap()
}

fn check(
    packs: &[PackSpec],
    on_error: Tier,
    ignore_errors: bool,
    country: &str,
    locale: &str,
) -> Result<(), TestCaseError> {
    let on_error_name = if ignore_errors {
        "ignore"
    } else {
        on_error.name()
    };
    let rules = Rules::with_policy(&policy_default_limits(on_error_name));
    for (p, spec) in packs.iter().enumerate() {
        let id = format!("p{p}");
        let regions = ["[\"*\"]", "[\"HK\"]", "[\"SG\", \"MO\"]"][spec.regions as usize];
        let mut header = format!(
            "regions = {regions}\nmode = \"{}\"\n{}\n",
            if spec.shadow { "shadow" } else { "live" },
            window(spec.window).0
        );
        if let Some(max) = spec.max_score {
            header.push_str(&format!("max_score = {max}\n"));
        }
        let entries: Vec<(String, String, String)> = spec
            .rules
            .iter()
            .enumerate()
            .map(|(r, rule)| {
                let mut extra = format!("score = {}\n", rule.score);
                if let Some(w) = rule.warning {
                    extra.push_str(&format!("warning = \"w{w}\"\n"));
                }
                if let Some(t) = rule.min_tier {
                    extra.push_str(&format!("min_tier = \"{}\"\n", t.name()));
                }
                if rule.shadow {
                    extra.push_str("mode = \"shadow\"\n");
                }
                (format!("r{r}"), rule.ret.script(), extra)
            })
            .collect();
        let borrowed: Vec<(&str, &str, &str)> = entries
            .iter()
            .map(|(a, b, c)| (a.as_str(), b.as_str(), c.as_str()))
            .collect();
        rules.pack(&id, &header, &borrowed);
        rules.append(&format!("{id}/pack.toml"), WARNINGS);
    }
    let d = decide(
        &rules,
        &wd("w", "u", T0, 10.0, "X").country(country).locale(locale),
    );

    // The model.
    let mut hits = Vec::new();
    let mut shadow_hits = Vec::new();
    let mut errors = Vec::new();
    let mut score = 0_i64;
    let mut floor = Tier::Allow;
    let mut live_error = false;
    let mut best: Option<(i64, String, String)> = None; // (score, full rule id, warning key)
    for (p, spec) in packs.iter().enumerate() {
        let in_region = match spec.regions {
            0 => true,
            1 => country == "HK",
            _ => country == "SG" || country == "MO",
        };
        if !(in_region && window(spec.window).1) {
            continue;
        }
        let mut sum = 0_i64;
        for (r, rule) in spec.rules.iter().enumerate() {
            let id = format!("p{p}/r{r}");
            let shadow = spec.shadow || rule.shadow;
            let outcome: Result<Option<i64>, ()> = match &rule.ret {
                Ret::True => Ok(Some(rule.score)),
                Ret::False | Ret::Unit => Ok(None),
                Ret::Int(n) => Ok((*n > 0).then_some(*n)),
                Ret::Float(x) => {
                    let n = x.round() as i64; // f64::round is half away from zero
                    Ok((n > 0).then_some(n))
                }
                Ret::Str | Ret::Throw | Ret::Nan => Err(()),
            };
            match outcome {
                Err(()) => {
                    errors.push(id);
                    live_error |= !shadow;
                }
                Ok(None) => {}
                Ok(Some(n)) if shadow => shadow_hits.push((id, n)),
                Ok(Some(n)) => {
                    sum += n;
                    if let Some(t) = rule.min_tier {
                        floor = floor.max(t);
                    }
                    if let Some(w) = rule.warning {
                        let better = match &best {
                            None => true,
                            Some((s, best_id, _)) => n > *s || (n == *s && id < *best_id),
                        };
                        if better {
                            best = Some((n, id.clone(), format!("p{p}/w{w}")));
                        }
                    }
                    hits.push((id, n));
                }
            }
        }
        score += spec.max_score.map_or(sum, |cap| sum.min(cap));
    }
    if live_error && !ignore_errors {
        floor = floor.max(on_error);
    }
    let tier = tier_of(score).max(floor);
    hits.sort();
    shadow_hits.sort();
    errors.sort();

    let ctx = format!("{packs:#?} on_rule_error={on_error_name} country={country} locale={locale}\ndecision {d:#?}");
    prop_assert_eq!(d.score, score, "score: {}", ctx);
    prop_assert_eq!(d.tier, tier, "tier: {}", ctx);
    prop_assert_eq!(
        d.cool_off_hours,
        (tier == Tier::CoolOff).then_some(24),
        "cool_off_hours: {}",
        ctx
    );
    let got_hits: Vec<(String, i64)> = d
        .hits
        .iter()
        .map(|h| (h.rule.to_string(), h.score))
        .collect();
    prop_assert_eq!(got_hits, hits, "hits: {}", ctx);
    let got_shadow: Vec<(String, i64)> = d
        .shadow_hits
        .iter()
        .map(|h| (h.rule.to_string(), h.score))
        .collect();
    prop_assert_eq!(got_shadow, shadow_hits, "shadow_hits: {}", ctx);
    let got_errors: Vec<String> = d.errors.iter().map(|e| e.rule.to_string()).collect();
    prop_assert_eq!(got_errors, errors, "errors: {}", ctx);
    match (&d.warning, tier) {
        (None, Tier::Allow) => {}
        (Some(w), t) if t > Tier::Allow => {
            let (key, texts): (String, &[&'static str]) = match &best {
                None => ("default".into(), &["en", "fr"]),
                Some((_, _, key)) if key.ends_with("w0") => (key.clone(), &["en", "zh-HK"]),
                Some((_, _, key)) => (key.clone(), &["en", "zh", "FR"]),
            };
            prop_assert_eq!(&*w.key, key.as_str(), "warning key: {}", ctx);
            prop_assert_eq!(&*w.locale, pick(texts, locale), "warning locale: {}", ctx);
        }
        _ => prop_assert!(false, "warning shown iff above allow: {}", ctx),
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, max_shrink_iters: 500, ..ProptestConfig::default() })]

    #[test]
    fn decisions_match_the_contract_on_random_rule_sets(
        packs in proptest::collection::vec(pack(), 1..4),
        on_error in tier(),
        ignore_errors in proptest::bool::ANY,
        country in prop_oneof![Just("HK"), Just("SG"), Just("US")],
        locale in prop_oneof![Just("en"), Just("zh-HK"), Just("ZH-hk"), Just("zh-TW"), Just("fr-CA"), Just("fr"), Just("de")],
    ) {
        check(&packs, on_error, ignore_errors, country, locale)?;
    }
}
