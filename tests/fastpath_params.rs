//! Rule parameters on the fast path (contract section 3, "Rule parameters"): `params.<name>`
//! is folded into a literal when the rule is compiled, and the outcome is the interpreter's
//! for every `tx` and every params (value or error; a missing name is an error both ways).
//! Differential property tests, as in `tests/fastpath.rs`.

use std::sync::atomic::{AtomicUsize, Ordering};

use proptest::prelude::*;
use riskgate::rules::RuleProbe;
use riskgate::{Outcome, ParamValue, Params, Tx, TxFeatures};

/// Same outcome; two errors count as the same (messages may differ).
fn same(fast: &Outcome, slow: &Outcome) -> bool {
    match (fast, slow) {
        (Outcome::Error(_), Outcome::Error(_)) => true,
        (a, b) => a == b,
    }
}

const NAMES: [&str; 4] = ["a", "b", "min_amount_usd", "channel"];
const WORDS: [&str; 5] = ["telegram", "HK", "", "gram", "香港"];

fn param_value() -> impl Strategy<Value = ParamValue> {
    prop_oneof![
        prop_oneof![Just(0_i64), Just(3), Just(-2), Just(i64::MAX), any::<i64>()]
            .prop_map(ParamValue::Int),
        prop_oneof![
            Just(0.0),
            Just(2.5),
            Just(5000.0),
            Just(f64::INFINITY),
            Just(f64::NAN)
        ]
        .prop_map(ParamValue::Float),
        any::<bool>().prop_map(ParamValue::Bool),
        proptest::sample::select(&WORDS[..]).prop_map(|w| ParamValue::Str(w.to_string())),
    ]
}

/// Params with some of the names (so reads of missing names happen too).
fn params() -> impl Strategy<Value = Params> {
    proptest::collection::vec((proptest::sample::select(&NAMES[..]), param_value()), 0..4)
        .prop_map(Params::from_pairs)
}

fn operand() -> impl Strategy<Value = String> {
    prop_oneof![
        proptest::sample::select(&NAMES[..]).prop_map(|n| format!("params.{n}")),
        proptest::sample::select(
            &[
                "tx.amount_usd",
                "tx.account_age_days",
                "tx.referral",
                "tx.is_new_address",
                "tx.hours_since_password_reset",
                "3",
                "2.5",
                "\"telegram\"",
                "true",
            ][..]
        )
        .prop_map(str::to_string),
    ]
}

fn comparison() -> impl Strategy<Value = String> {
    (
        operand(),
        proptest::sample::select(&["<", "<=", ">", ">=", "==", "!=", "+", "*", "-", "/", "%"][..]),
        operand(),
    )
        .prop_map(|(a, op, b)| format!("({a} {op} {b})"))
}

fn condition() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => comparison(),
        1 => proptest::sample::select(&NAMES[..]).prop_map(|n| format!("params.{n}")),
        1 => proptest::sample::select(&NAMES[..])
            .prop_map(|n| format!("tx.referral.starts_with(params.{n})")),
        1 => proptest::sample::select(&NAMES[..]).prop_map(|n| format!("params.{n}.len()")),
        1 => proptest::sample::select(&NAMES[..]).prop_map(|n| format!("(params.{n} in tx.watchlists)")),
    ]
}

fn script() -> impl Strategy<Value = String> {
    prop_oneof![
        condition(),
        (condition(), condition()).prop_map(|(a, b)| format!("{a} && {b}")),
        (condition(), condition()).prop_map(|(a, b)| format!("{a} || !{b}")),
        (condition(), operand(), operand())
            .prop_map(|(c, x, y)| format!("let v = {x};\nif {c} {{ v }} else {{ {y} }}")),
    ]
}

fn tx(amount_usd: f64, account_age_days: i64, referral: &str, lists: &[&str]) -> Tx {
    Tx {
        id: "wd-1".into(),
        user_id: "u-1".into(),
        asset: "USDT".into(),
        network: "TRON".into(),
        country: "HK".into(),
        locale: "en".into(),
        referral: referral.into(),
        destination: "T1".into(),
        amount_usd,
        features: TxFeatures {
            account_age_days,
            is_new_address: account_age_days % 2 == 0,
            prior_withdrawals: 1,
            withdrawals_24h: 0,
            amount_usd_24h: 0.0,
            median_amount_usd_90d: 0.0,
            hours_since_password_reset: f64::INFINITY,
            device_age_hours: 1.0,
            dest_users_24h: 0,
            dest_users_30d: 2,
            dest_first_used_days: 0.0,
            dest_amount_usd_30d: 0.0,
            dest_prior_withdrawals: 0,
            dest_last_amount_usd: 0.0,
            dest_rising_run: 0,
            dest_others_since_first: 0,
            dest_first_amount_usd: 0.0,
            dest_rises: 0,
            new_payee_withdrawals_30d: 0,
            withdrawals_before_30d: 0,
            dest_others_first_days: -1.0,
            state_days: 120.0,
        },
        watchlists: lists.iter().map(|s| s.to_string()).collect(),
    }
}

prop_compose! {
    fn any_tx()(
        amount in prop_oneof![Just(0.0), Just(2.5), Just(4999.0), Just(5000.0), Just(f64::INFINITY)],
        age in prop_oneof![Just(0_i64), Just(3), Just(30), Just(i64::MAX)],
        referral in proptest::sample::select(&WORDS[..]),
        listed in any::<bool>(),
    ) -> Tx {
        tx(amount, age, referral, if listed { &["telegram"] } else { &[] })
    }
}

/// Generated scripts that took the fast path (printed with `--nocapture`).
static FAST: AtomicUsize = AtomicUsize::new(0);

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn params_on_the_fast_path_agree_with_the_interpreter(
        script in script(),
        params in params(),
        txs in proptest::collection::vec(any_tx(), 3),
        score in 0_i64..100,
    ) {
        let Ok(probe) = RuleProbe::with_params(&script, &params) else { return Ok(()) };
        FAST.fetch_add(usize::from(probe.is_fast()), Ordering::Relaxed);
        for tx in &txs {
            let slow = probe.interpreted(tx, score);
            if let Some(fast) = probe.fast(tx, score) {
                prop_assert!(same(&fast, &slow), "script:\n{}\nparams: {:?}\ntx: {:?}\nfast: {:?}\ninterpreter: {:?}", script, params, tx, fast, slow);
            }
        }
    }
}

#[test]
fn zz_print_generated_script_stats() {
    println!(
        "generated scripts on the fast path: {}",
        FAST.load(Ordering::Relaxed)
    );
}

/// The rules analysts write with params take the fast path, and agree with the interpreter.
#[test]
fn typical_param_rules_take_the_fast_path() {
    let params = Params::from_pairs([
        ("min_amount_usd", ParamValue::Float(5000.0)),
        ("max_account_days", ParamValue::Int(30)),
        ("channel", ParamValue::Str("telegram".into())),
        ("on", ParamValue::Bool(true)),
    ]);
    let scripts = [
        "tx.amount_usd >= params.min_amount_usd",
        "tx.is_new_address && tx.amount_usd >= params.min_amount_usd && tx.account_age_days <= params.max_account_days",
        "params.on && tx.referral == params.channel",
        "if tx.amount_usd >= params.min_amount_usd * 2.0 { 60 } else if tx.amount_usd >= params.min_amount_usd { 40 } else { false }",
        "tx.referral.starts_with(params.channel)",
        "params.missing > 1",
    ];
    for script in scripts {
        let probe =
            RuleProbe::with_params(script, &params).unwrap_or_else(|e| panic!("{script}: {e}"));
        assert!(probe.is_fast(), "{script} should take the fast path");
        for t in [
            tx(6000.0, 3, "telegram", &[]),
            tx(12000.0, 31, "ads", &[]),
            tx(100.0, 0, "", &[]),
        ] {
            let slow = probe.interpreted(&t, 10);
            let fast = probe
                .fast(&t, 10)
                .unwrap_or_else(|| panic!("{script}: no fast outcome"));
            assert!(
                same(&fast, &slow),
                "{script}: fast {fast:?}, interpreter {slow:?}"
            );
        }
    }
    // A missing name is an error both ways.
    let probe = RuleProbe::with_params("params.missing > 1", &params).unwrap();
    let t = tx(1.0, 1, "", &[]);
    assert!(matches!(probe.fast(&t, 10), Some(Outcome::Error(_))));
    assert!(matches!(probe.interpreted(&t, 10), Outcome::Error(_)));
}

/// Scripts that use `params` beyond reading a name run in the interpreter, correctly.
#[test]
fn other_uses_of_params_go_to_the_interpreter() {
    let params = Params::from_pairs([("x", ParamValue::Int(2))]);
    for (script, expected) in [
        ("params.len() == 1", Outcome::Hit(10)),
        ("\"x\" in params", Outcome::Hit(10)),
        ("params[\"x\"] == 2", Outcome::Hit(10)),
        ("let params = #{ x: 5 }; params.x == 5", Outcome::Hit(10)),
    ] {
        let probe =
            RuleProbe::with_params(script, &params).unwrap_or_else(|e| panic!("{script}: {e}"));
        let t = tx(1.0, 1, "", &[]);
        assert_eq!(probe.interpreted(&t, 10), expected, "{script}");
        if let Some(fast) = probe.fast(&t, 10) {
            assert_eq!(fast, expected, "{script}");
        }
    }
}
