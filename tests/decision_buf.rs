//! [`Scorer::score_into`] fills a reused [`DecisionBuf`] in place; the [`riskgate::DecisionRef`]
//! it answers must be the owned [`Scorer::score`]'s decision, field by field and in JSON, on a
//! generated stream (every tier, warnings in several locales) and on rule sets with the parts
//! the shipped rules never produce (rule errors, held-out decisions, shadow hits), with one
//! buffer reused across every decision and across a reload.

mod support;

use riskgate::{Decision, DecisionBuf, DecisionRef, Event, Scorer, Tier};
use support::contract::{wd, Rules, T0};

fn rules_dir() -> String {
    concat!(env!("CARGO_MANIFEST_DIR"), "/rules").to_string()
}

/// Every accessor of `view` against the owned decision's field, then the whole.
fn assert_same(view: &DecisionRef<'_>, owned: &Decision) {
    assert_eq!(view.id(), owned.id);
    assert_eq!(view.user_id(), owned.user_id);
    assert_eq!(view.tier(), owned.tier);
    assert_eq!(view.score(), owned.score);
    assert_eq!(view.floor(), owned.floor);
    assert_eq!(view.cool_off_hours(), owned.cool_off_hours);
    match (view.warning(), &owned.warning) {
        (Some(v), Some(o)) => {
            assert_eq!(
                (&**v.key, &**v.locale, v.title, v.body),
                (&*o.key, &*o.locale, &*o.title, &*o.body)
            );
        }
        (None, None) => {}
        (v, o) => panic!("warning {v:?} against {o:?}"),
    }
    let hits: Vec<_> = view.hits().map(|h| h.to_hit()).collect();
    assert_eq!(hits, owned.hits);
    let shadow: Vec<_> = view.shadow_hits().map(|h| h.to_hit()).collect();
    assert_eq!(shadow, owned.shadow_hits);
    for hit in view.hits().chain(view.shadow_hits()) {
        let rule = view.rules().rules().get(hit.index).expect("the rule hit");
        assert_eq!(rule.id, *hit.rule);
        assert_eq!(rule.reason, *hit.reason);
    }
    assert_eq!(view.errors(), owned.errors.as_slice());
    assert_eq!(view.holdout(), owned.holdout);
    assert_eq!(view.ruleset(), &*owned.ruleset);
    match (view.withheld(), &owned.withheld) {
        (Some(v), Some(o)) => assert_eq!((&**v.key, &**v.locale), (&*o.key, &*o.locale)),
        (None, None) => {}
        (v, o) => panic!("withheld {v:?} against {o:?}"),
    }
    assert_eq!(&view.to_decision(), owned);
    assert_eq!(view.to_json(), owned.to_json());
}

/// Feeds `events` to two scorers of `rules` alike, one deciding with `score`, the other with
/// `score_into` and one reused buffer; every decision must agree. Returns the decisions.
fn compare(make: impl Fn() -> Scorer, events: &[Event]) -> Vec<Decision> {
    let (owned, buffered) = (make(), make());
    let mut buf = DecisionBuf::new();
    let mut decisions = Vec::new();
    for event in events {
        if let Event::Withdrawal(w) = event {
            let expected = owned.score(w);
            assert_same(&buffered.score_into(w, &mut buf), &expected);
            decisions.push(expected);
        }
        owned.observe(event);
        buffered.observe(event);
    }
    decisions
}

#[test]
fn the_buffered_decision_is_the_owned_one_on_a_generated_stream() {
    let mut generated = Vec::new();
    let config = riskgate::gen::GenConfig::new(7, 400, 30);
    riskgate::gen::generate(&config, &mut generated).expect("generated");
    let events: Vec<Event> = String::from_utf8(generated)
        .expect("UTF-8")
        .lines()
        .map(|l| Event::parse_line(l).expect("a valid event"))
        .collect();
    let decisions = compare(
        || Scorer::from_dir(rules_dir()).expect("rules load"),
        &events,
    );
    let tier = |t| decisions.iter().filter(|d| d.tier == t).count();
    let hits = decisions.iter().filter(|d| !d.hits.is_empty()).count();
    let locales: std::collections::BTreeSet<_> = decisions
        .iter()
        .filter_map(|d| d.warning.as_ref().map(|w| w.locale.clone()))
        .collect();
    assert!(
        Tier::ALL.iter().all(|&t| tier(t) > 0) && hits > 100 && locales.len() > 1,
        "{} decisions, {hits} with hits, locales {locales:?}",
        decisions.len()
    );
}

#[test]
fn the_buffered_decision_is_the_owned_one_with_errors_holdout_and_shadow_hits() {
    let rules = Rules::with_errors_and_holdout("warn");
    rules.append(
        "p/pack.toml",
        "[warnings.w.en]\ntitle = \"Stop\"\nbody = \"Send {amount_usd} to {destination}?\"\n\
         [warnings.w.\"zh-HK\"]\ntitle = \"停\"\nbody = \"{amount_usd} 美元 {asset}\"\n",
    );
    rules.pack(
        "s",
        "regions = [\"*\"]\nmode = \"shadow\"",
        &[
            ("shadow-r", "tx.amount_usd > 30.0", ""),
            (
                "shadow-boom",
                "if tx.amount_usd > 90.0 { throw \"x\"; } false",
                "",
            ),
        ],
    );
    let events: Vec<Event> = (0..120)
        .map(|i| {
            let w = wd(
                &format!("w{i}"),
                &format!("u-{}", i % 40),
                T0,
                f64::from(i),
                "T\\x",
            );
            let w = if i % 3 == 0 { w.locale("zh-HK") } else { w };
            w.event()
        })
        .collect();
    let decisions = compare(|| rules.scorer(), &events);
    let count = |f: &dyn Fn(&Decision) -> bool| decisions.iter().filter(|d| f(d)).count();
    let errors = count(&|d| !d.errors.is_empty());
    let withheld = count(&|d| d.withheld.is_some());
    let shadow = count(&|d| !d.shadow_hits.is_empty());
    let warned = count(&|d| d.warning.is_some());
    assert!(
        errors > 5 && withheld > 5 && shadow > 5 && warned > 5,
        "{errors} with errors, {withheld} withheld, {shadow} with shadow hits, {warned} warned"
    );
}

#[test]
fn a_reused_buffer_follows_a_reload() {
    let first = Rules::new();
    first.pack("p", "regions = [\"*\"]", &[("r", "10", "")]);
    let second = Rules::new();
    second.pack("q", "regions = [\"*\"]", &[("big", "70", "")]);
    let scorer = first.scorer();
    let mut buf = DecisionBuf::new();
    let w = wd("w1", "u1", T0, 100.0, "d1").w();
    let before = scorer.score_into(&w, &mut buf).to_decision();
    assert_eq!(before, scorer.score(&w));
    assert_eq!(before.hits.len(), 1);
    scorer.reload(second.path()).expect("the second set loads");
    let after = scorer.score_into(&w, &mut buf);
    assert_same(&after, &scorer.score(&w));
    assert_ne!(after.ruleset(), &*before.ruleset);
    assert_eq!(
        after.hits().map(|h| &**h.rule).collect::<Vec<_>>(),
        ["q/big"]
    );
}
