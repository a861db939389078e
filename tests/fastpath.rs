//! The fast path gives the same outcome as the sandboxed Rhai interpreter (value or error) for
//! every rule and every `tx` (contract section 3: what a script's value means; issue 4: the
//! compiled fast path). Differential property tests: random expressions of the common subset
//! against random `tx` values, fast path vs Rhai; plus which scripts take the fast path.
//!
//! The whole suite can also run with the fast path off: `RISKGATE_NO_FASTPATH=1 cargo test`.

use std::sync::atomic::{AtomicUsize, Ordering};

use proptest::prelude::*;
use riskgate::rules::RuleProbe;
use riskgate::{Outcome, Tx, TxFeatures};

const INT_FIELDS: [&str; 11] = [
    "account_age_days",
    "prior_withdrawals",
    "withdrawals_24h",
    "dest_users_24h",
    "dest_users_30d",
    "dest_prior_withdrawals",
    "dest_rising_run",
    "dest_others_since_first",
    "dest_rises",
    "new_payee_withdrawals_30d",
    "withdrawals_before_30d",
];
const FLOAT_FIELDS: [&str; 12] = [
    "amount_usd",
    "amount_usd_24h",
    "median_amount_usd_90d",
    "hours_since_password_reset",
    "device_age_hours",
    "dest_first_used_days",
    "dest_amount_usd_30d",
    "dest_last_amount_usd",
    "dest_first_amount_usd",
    "dest_others_first_days",
    "state_days",
    "amount_usd",
];
const STR_FIELDS: [&str; 8] = [
    "id",
    "user_id",
    "asset",
    "network",
    "country",
    "locale",
    "referral",
    "destination",
];
const WORDS: [&str; 9] = ["telegram", "HK", "", "USDT", "a", "b", "香港", "TR", "gram"];
const LISTS: [&str; 3] = [
    "hk-police/scameter",
    "community-darklist/mew-darklist",
    "x/y",
];

/// Scripts generated: [interpreter only, fast path] (printed with `--nocapture`).
static STATS: [AtomicUsize; 2] = [AtomicUsize::new(0), AtomicUsize::new(0)];

/// Same outcome; two errors count as the same (messages may differ, see `src/rules/fastpath/mod.rs`).
fn same(fast: &Outcome, slow: &Outcome) -> bool {
    match (fast, slow) {
        (Outcome::Error(_), Outcome::Error(_)) => true,
        (a, b) => a == b,
    }
}

fn int_value() -> impl Strategy<Value = i64> {
    prop_oneof![
        4 => -5_i64..60,
        1 => Just(i64::MAX),
        1 => Just(i64::MIN),
        1 => any::<i64>(),
    ]
}

fn float_value() -> impl Strategy<Value = f64> {
    prop_oneof![
        4 => (0_i32..200).prop_map(|n| f64::from(n) / 4.0),
        1 => Just(f64::INFINITY),
        1 => Just(0.0),
        1 => Just(1.0 + f64::EPSILON),
        1 => Just(1e308),
        1 => any::<f64>(),
    ]
}

fn word() -> impl Strategy<Value = String> {
    proptest::sample::select(&WORDS[..]).prop_map(str::to_string)
}

/// A `tx` string: mostly a short word, sometimes longer than `FAST_TEXT_LIMIT` or the default
/// `max_string_size` (4096 bytes).
fn tx_string() -> impl Strategy<Value = String> {
    prop_oneof![
        12 => word(),
        1 => Just("T".repeat(riskgate::rules::FAST_TEXT_LIMIT + 1)),
        1 => Just("a".repeat(5000)),
    ]
}

prop_compose! {
    fn tx()(
        strings in proptest::collection::vec(tx_string(), 8),
        amount_usd in float_value(),
        ints in proptest::collection::vec(int_value(), 11),
        floats in proptest::collection::vec(float_value(), 10),
        is_new_address in any::<bool>(),
        lists in proptest::sample::subsequence(&LISTS[..], 0..=3),
    ) -> Tx {
        let s = |i: usize| strings.get(i).cloned().unwrap_or_default();
        let n = |i: usize| ints.get(i).copied().unwrap_or_default();
        let x = |i: usize| floats.get(i).copied().unwrap_or_default();
        Tx {
            id: s(0), user_id: s(1), asset: s(2), network: s(3), country: s(4), locale: s(5),
            referral: s(6), destination: s(7), amount_usd,
            features: TxFeatures {
                account_age_days: n(0), is_new_address, prior_withdrawals: n(1), withdrawals_24h: n(2),
                amount_usd_24h: x(0), median_amount_usd_90d: x(1), hours_since_password_reset: x(2),
                device_age_hours: x(3), dest_users_24h: n(3), dest_users_30d: n(4),
                dest_first_used_days: x(4), dest_amount_usd_30d: x(5),
                dest_prior_withdrawals: n(5), dest_last_amount_usd: x(6), dest_rising_run: n(6),
                dest_others_since_first: n(7), dest_first_amount_usd: x(7), dest_rises: n(8),
                new_payee_withdrawals_30d: n(9), withdrawals_before_30d: n(10),
                dest_others_first_days: x(8), state_days: x(9),
            },
            watchlists: lists.into_iter().map(str::to_string).collect(),
        }
    }
}

fn int_literal() -> impl Strategy<Value = String> {
    int_value().prop_map(|n| {
        if n < 0 {
            format!("({n})")
        } else {
            n.to_string()
        }
    })
}

fn float_literal() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("0.0"),
        Just("2.5"),
        Just("1e308"),
        Just("1.0000000000000002"),
        Just("0.25"),
        Just("100.0"),
        Just("24.0")
    ]
    .prop_map(str::to_string)
}

/// A leaf of any type, sometimes an odd one: `()`, an unknown field, a string.
fn odd_leaf() -> impl Strategy<Value = String> {
    prop_oneof![
        word().prop_map(|w| format!("{w:?}")),
        Just("()".to_string()),
        Just("tx.nope".to_string()),
        proptest::sample::select(&STR_FIELDS[..]).prop_map(|f| format!("tx.{f}")),
        any::<bool>().prop_map(|b| b.to_string()),
    ]
}

/// A string: a `tx` field, a literal, or the local (of whatever type it has).
fn text(local: &'static str) -> impl Strategy<Value = String> {
    prop_oneof![
        3 => proptest::sample::select(&STR_FIELDS[..]).prop_map(|f| format!("tx.{f}")),
        1 => word().prop_map(|w| format!("{w:?}")),
        1 => Just(local.to_string()),
    ]
}

/// A string method with a boolean value, in its method, function or `in` form (sometimes on
/// or with a value that is not a string).
fn string_test(local: &'static str) -> impl Strategy<Value = String> {
    let name = proptest::sample::select(&["starts_with", "ends_with", "contains"][..]);
    let arg =
        prop_oneof![4 => word().prop_map(|w| format!("{w:?}")), 1 => text(local), 1 => odd_leaf()];
    prop_oneof![
        4 => (text(local), name.clone(), arg.clone()).prop_map(|(t, n, a)| format!("{t}.{n}({a})")),
        1 => (text(local), name, arg.clone()).prop_map(|(t, n, a)| format!("{n}({t}, {a})")),
        1 => (arg.clone(), text(local)).prop_map(|(a, t)| format!("({a} in {t})")),
        1 => (arg, text(local)).prop_map(|(a, t)| format!("({a} !in {t})")),
        1 => text(local).prop_map(|t| format!("{t}.is_empty()")),
        1 => proptest::sample::select(&["tx.watchlists.is_empty()", "tx.watchlists.is_empty", "is_empty(tx.watchlists)"][..]).prop_map(str::to_string),
        1 => proptest::sample::select(&LISTS[..]).prop_map(|l| format!("tx.watchlists.contains({l:?})")),
    ]
}

/// A string or watchlist length, in its method, getter or function form.
fn string_length(local: &'static str) -> impl Strategy<Value = String> {
    prop_oneof![
        3 => text(local).prop_map(|t| format!("{t}.len()")),
        1 => text(local).prop_map(|t| format!("{t}.len")),
        1 => text(local).prop_map(|t| format!("len({t})")),
        1 => proptest::sample::select(&["tx.watchlists.len()", "tx.watchlists.len", "len(tx.watchlists)"][..]).prop_map(str::to_string),
    ]
}

/// A numeric expression (mostly well typed), fully parenthesized. `local` names a variable in
/// scope, or is a literal when there is none.
fn num(local: &'static str) -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        3 => int_literal(),
        3 => float_literal(),
        4 => proptest::sample::select(&INT_FIELDS[..]).prop_map(|f| format!("tx.{f}")),
        4 => proptest::sample::select(&FLOAT_FIELDS[..]).prop_map(|f| format!("tx.{f}")),
        2 => Just(local.to_string()),
        1 => odd_leaf(),
        2 => string_length(local),
    ];
    leaf.prop_recursive(3, 12, 2, |inner| {
        let op = proptest::sample::select(&["+", "-", "*", "/", "%"][..]);
        prop_oneof![
            4 => (inner.clone(), op, inner.clone()).prop_map(|(a, op, b)| format!("({a} {op} {b})")),
            1 => (proptest::sample::select(&["-", "+"][..]), inner.clone()).prop_map(|(op, a)| format!("({op}{a})")),
        ]
    })
}

/// A boolean expression (mostly well typed).
fn boolean(local: &'static str) -> impl Strategy<Value = String> {
    let cmp = proptest::sample::select(&["<", "<=", ">", ">=", "==", "!="][..]);
    let leaf = prop_oneof![
        6 => (num(local), cmp.clone(), num(local)).prop_map(|(a, op, b)| format!("({a} {op} {b})")),
        2 => (proptest::sample::select(&STR_FIELDS[..]), cmp.clone(), word()).prop_map(|(f, op, w)| format!("(tx.{f} {op} {w:?})")),
        1 => (odd_leaf(), cmp, odd_leaf()).prop_map(|(a, op, b)| format!("({a} {op} {b})")),
        2 => proptest::sample::select(&LISTS[..]).prop_map(|l| format!("({l:?} in tx.watchlists)")),
        1 => proptest::sample::select(&LISTS[..]).prop_map(|l| format!("({l:?} !in tx.watchlists)")),
        2 => Just("tx.is_new_address".to_string()),
        1 => any::<bool>().prop_map(|b| b.to_string()),
        1 => Just(local.to_string()),
        3 => string_test(local),
    ];
    leaf.prop_recursive(3, 12, 2, |inner| {
        prop_oneof![
            4 => (inner.clone(), proptest::sample::select(&["&&", "||"][..]), inner.clone()).prop_map(|(a, op, b)| format!("({a} {op} {b})")),
            1 => inner.clone().prop_map(|a| format!("(!{a})")),
        ]
    })
}

/// An `if` chain over conditions whose branches are literals or such chains again (nested:
/// the fast path flattens them into one select).
fn chain(local: &'static str) -> impl Strategy<Value = String> {
    let literal = prop_oneof![
        3 => int_literal(),
        1 => float_literal(),
        2 => any::<bool>().prop_map(|b| b.to_string()),
        1 => Just("()".to_string()),
        1 => Just("\"s\"".to_string()),
    ];
    let leaf = literal.prop_map(|k| format!("{{ {k} }}"));
    leaf.prop_recursive(3, 16, 3, move |inner| {
        prop_oneof![
            2 => (boolean(local), inner.clone(), inner.clone()).prop_map(|(c, t, e)| format!("{{ if {c} {t} else {e} }}")),
            1 => (boolean(local), inner.clone()).prop_map(|(c, t)| format!("{{ if {c} {t} }}")),
            1 => (boolean(local), inner.clone(), boolean(local), inner.clone(), inner.clone())
                .prop_map(|(c1, t1, c2, t2, e)| format!("{{ if {c1} {t1} else if {c2} {t2} else {e} }}")),
        ]
    })
}

/// A rule's value: a boolean, a number, or an `if` choosing between them.
fn value(local: &'static str) -> impl Strategy<Value = String> {
    prop_oneof![
        4 => boolean(local),
        2 => num(local),
        2 => (boolean(local), num(local), boolean(local)).prop_map(|(c, t, e)| format!("(if {c} {{ {t} }} else {{ {e} }})")),
        1 => (boolean(local), num(local)).prop_map(|(c, t)| format!("(if {c} {{ {t} }})")),
        2 => chain(local),
        1 => odd_leaf(),
    ]
}

/// A script: a local `a`, then an expression (sometimes with an early `return`).
fn script() -> impl Strategy<Value = String> {
    (value("0"), value("a"), any::<bool>(), boolean("a")).prop_map(|(init, body, early, cond)| {
        if early {
            format!("let a = {init};\nif {cond} {{ return {body}; }}\n{body}")
        } else {
            format!("let a = {init};\n{body}")
        }
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 384, ..ProptestConfig::default() })]

    #[test]
    fn fast_path_and_interpreter_agree(script in script(), txs in proptest::collection::vec(tx(), 4), score in 0_i64..100) {
        // A script Rhai's parser refuses (e.g. `if 0 {..}`) is refused at load either way.
        let Ok(probe) = RuleProbe::new(&script) else { return Ok(()) };
        STATS[usize::from(probe.is_fast())].fetch_add(1, Ordering::Relaxed);
        for tx in &txs {
            let slow = probe.interpreted(tx, score);
            if let Some(fast) = probe.fast(tx, score) {
                prop_assert!(same(&fast, &slow), "script:\n{}\ntx: {:?}\nfast: {:?}\ninterpreter: {:?}", script, tx, fast, slow);
            }
        }
    }
}

#[test]
fn zz_print_generated_script_stats() {
    let [slow, fast] = [&STATS[0], &STATS[1]].map(|s| s.load(Ordering::Relaxed));
    println!("generated scripts that compiled: {fast} on the fast path, {slow} interpreter only");
}

fn sample_tx() -> Tx {
    Tx {
        id: "wd-1".into(),
        user_id: "u-1".into(),
        asset: "USDT".into(),
        network: "TRON".into(),
        country: "HK".into(),
        locale: "zh-HK".into(),
        referral: "telegram".into(),
        destination: "TXyz".into(),
        amount_usd: 6000.0,
        features: TxFeatures {
            account_age_days: 3,
            is_new_address: true,
            prior_withdrawals: 0,
            withdrawals_24h: 0,
            amount_usd_24h: 0.0,
            median_amount_usd_90d: 0.0,
            hours_since_password_reset: f64::INFINITY,
            device_age_hours: 0.0,
            dest_users_24h: 4,
            dest_users_30d: 9,
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
        watchlists: vec!["hk-police/scameter".into()],
    }
}

#[test]
fn subset_scripts_take_the_fast_path_and_agree() {
    let scripts = [
        "tx.is_new_address && tx.amount_usd >= 5000.0",
        "\"hk-police/scameter\" in tx.watchlists",
        "if tx.dest_users_24h >= 5 { 60 } else if tx.dest_users_24h >= 3 { 45 } else { false }",
        "let big = tx.amount_usd > 1000; if big { return 30; } ()",
        "tx.account_age_days < 30 && tx.referral == \"telegram\"",
        "!(tx.country == \"HK\") || tx.hours_since_password_reset < 24.0",
        "tx.amount_usd / tx.median_amount_usd_90d",
        "tx.prior_withdrawals / 0",
        "tx.nope > 1",
        "tx.is_new_address || tx.nope",
        "9223372036854775807 + tx.dest_users_24h",
        "tx.destination.starts_with(\"TX\") && tx.referral.len() > 3",
        "tx.locale.ends_with(\"HK\") || \"gram\" in tx.referral",
        "contains(tx.referral, \"tele\") && !tx.asset.is_empty()",
        "let d = tx.destination; d.contains(\"yz\") && d.len == 4",
        "tx.watchlists.len() > 0 && !tx.watchlists.is_empty()",
        "tx.watchlists.len == 1 && !is_empty(tx.watchlists) && len(tx.watchlists) < 2",
        "tx.watchlists.contains(\"hk-police/scameter\")",
        "\"香港\".len() == 2",
        "tx.is_new_address && { let x = tx.amount_usd; x > 5.0 }",
        "let big = tx.amount_usd > 1000.0 && tx.dest_users_24h > 1; if tx.account_age_days > 1 { if big { 40 } else if tx.is_new_address { 20 } } else if !big { 5 } else { false }",
        "if tx.dest_users_24h < 5 { if tx.amount_usd > 1.0 { 1 } else { 2 } } else { if tx.is_new_address { 3 } else { 4 } }",
        "tx.prior_withdrawals > 100 || { let x = tx.amount_usd; x > 5.0 }",
        "tx.hours_since_password_reset > 24.0",
        "\"x\" < 1",
        "() > 1",
    ];
    for script in scripts {
        let probe = RuleProbe::new(script).unwrap_or_else(|e| panic!("{script}: {e}"));
        assert!(probe.is_fast(), "expected the fast path for {script}");
        let tx = sample_tx();
        let (fast, slow) = (probe.fast(&tx, 40), probe.interpreted(&tx, 40));
        assert!(
            fast.as_ref().is_some_and(|f| same(f, &slow)),
            "{script}: fast {fast:?}, interpreter {slow:?}"
        );
    }
}

#[test]
fn scripts_outside_the_subset_run_in_the_interpreter() {
    let scripts = [
        "tx.destination.starts_with('0')",
        "tx.destination.to_lower() == \"0x\"",
        "tx.amount_usd.starts_with(\"0x\")",
        "tx.asset + \"x\" == \"USDTx\"",
        "let n = 0; for x in tx.watchlists { n += 1; } n > 0",
        "abs(tx.amount_usd) > 1.0",
        "tx.amount_usd ** 2 > 1.0",
        "tx.watchlists[0] == \"x\"",
        "fn f(x) { x > 1 } f(tx.prior_withdrawals)",
        "tx[\"amount_usd\"] > 1.0",
        // The array itself as the value: a rule error the interpreter reports.
        "tx.watchlists",
        "if tx.is_new_address { tx.watchlists } else { 1 }",
    ];
    for script in scripts {
        let probe = RuleProbe::new(script).unwrap_or_else(|e| panic!("{script}: {e}"));
        assert!(!probe.is_fast(), "expected the interpreter for {script}");
    }
}

/// Every supported operator on every pair of value kinds (and the edge values), fast path vs
/// Rhai. Values come through `let` so that the operator runs at evaluation time.
#[test]
fn every_operator_on_every_pair_of_kinds_agrees() {
    let values = [
        "()",
        "true",
        "false",
        "0",
        "3",
        "-3",
        "9223372036854775807",
        "(-9223372036854775807 - 1)",
        "0.0",
        "-0.0",
        "2.5",
        "1.0",
        "1.0000000000000002",
        "1e308",
        "\"a\"",
        "\"b\"",
        "\"\"",
        "tx.hours_since_password_reset",
        "tx.device_age_hours",
        "tx.amount_usd",
        "tx.prior_withdrawals",
        "tx.country",
    ];
    let binary = [
        "+", "-", "*", "/", "%", "<", "<=", ">", ">=", "==", "!=", "&&", "||",
    ];
    let mut tx = sample_tx();
    tx.features.device_age_hours = f64::NAN;
    let mut compared = 0;
    for a in values {
        for op in ["-", "+", "!"] {
            compared += agree(&format!("let a = {a}; {op}a"), &tx);
        }
        for b in values {
            for op in binary {
                compared += agree(&format!("let a = {a}; let b = {b}; a {op} b"), &tx);
                // Written directly too: `tx.field op literal` and `literal op tx.field` compile
                // to their own nodes.
                compared += agree(&format!("{a} {op} {b}"), &tx);
            }
        }
    }
    assert!(
        compared > 5000,
        "only {compared} scripts compared on the fast path"
    );
}

/// `tx.field <op> literal`, `literal <op> tx.field` and their negations, with the field below,
/// at and above the literal (and NaN, infinities, the integer extremes): the predicates the
/// compiler specializes per field kind and operator.
#[test]
fn field_literal_comparisons_agree_at_the_edges() {
    let ops = ["<", "<=", ">", ">=", "==", "!="];
    let mut compared = 0;
    for field in INT_FIELDS.iter().chain(FLOAT_FIELDS.iter()) {
        for literal in ["24", "24.0", "-3", "2.5", "9223372036854775807"] {
            let k: f64 = literal.parse().expect("a number");
            let values = [k - 1.0, k - 0.5, k, k + 0.5, f64::NAN, f64::INFINITY];
            for value in values {
                let mut tx = sample_tx();
                set_number(&mut tx, field, value);
                for op in ops {
                    for script in [
                        format!("tx.{field} {op} {literal}"),
                        format!("{literal} {op} tx.{field}"),
                        format!("!(tx.{field} {op} {literal})"),
                        format!("tx.{field} {op} {literal} && tx.is_new_address"),
                        format!("!tx.is_new_address || !({literal} {op} tx.{field})"),
                    ] {
                        compared += agree(&script, &tx);
                    }
                }
            }
        }
    }
    for field in STR_FIELDS {
        for value in WORDS {
            let mut tx = sample_tx();
            set_string(&mut tx, field, value);
            for literal in WORDS {
                for test in [
                    "==",
                    "!=",
                    "<",
                    ">=",
                    "starts_with",
                    "ends_with",
                    "contains",
                    "in",
                ] {
                    let script = match test {
                        "in" => format!("{literal:?} in tx.{field}"),
                        op if op.len() <= 2 => format!("tx.{field} {op} {literal:?}"),
                        method => format!("tx.{field}.{method}({literal:?})"),
                    };
                    compared += agree(&script, &tx);
                    compared += agree(&format!("!({script})"), &tx);
                }
            }
        }
    }
    assert!(
        compared > 5000,
        "only {compared} scripts compared on the fast path"
    );
}

/// Comparisons of a number field with a literal times a number field, of two fields, and
/// through `let` locals bound to a field or literal (which the compiler reads in place): every
/// operator, both sides, int and float fields, literals and values at the edges (NaN,
/// infinities, overflowing products, the integer extremes).
#[test]
fn scaled_and_field_to_field_comparisons_agree_at_the_edges() {
    let ops = ["<", "<=", ">", ">=", "==", "!="];
    let fields = [
        "amount_usd",
        "median_amount_usd_90d",
        "prior_withdrawals",
        "dest_users_24h",
    ];
    let values = [0.0, 2.0, 5.0, -3.0, f64::NAN, f64::INFINITY, 1e308, 9.3e18];
    let mut compared = 0;
    for a in fields {
        for b in fields {
            for (va, vb) in values
                .iter()
                .zip(values.iter().rev())
                .chain([(&5.0, &2.0), (&5.0, &2.5)])
            {
                let mut tx = sample_tx();
                set_number(&mut tx, a, *va);
                set_number(&mut tx, b, *vb);
                for op in ops {
                    for k in ["2.0", "2", "2.5", "1e308", "(-0.5)"] {
                        for script in [
                            format!("tx.{a} {op} {k} * tx.{b}"),
                            format!("tx.{a} {op} tx.{b} * {k}"),
                            format!("{k} * tx.{b} {op} tx.{a}"),
                            format!("let u = tx.{b}; tx.{a} {op} {k} * u"),
                            format!("let u = tx.{b}; let r = {k}; if tx.{a} {op} r * u {{ 7 }} else {{ false }}"),
                            format!("!(tx.{a} {op} {k} * tx.{b}) && tx.is_new_address"),
                        ] {
                            compared += agree(&script, &tx);
                        }
                    }
                    for script in [
                        format!("tx.{a} {op} tx.{b}"),
                        format!("let p = tx.{a}; p {op} tx.{b} || !tx.is_new_address"),
                        format!("let n = tx.is_new_address; n && tx.{a} {op} tx.{b}"),
                    ] {
                        compared += agree(&script, &tx);
                    }
                }
            }
        }
    }
    assert!(
        compared > 10_000,
        "only {compared} scripts compared on the fast path"
    );
}

/// A rule whose work grows with a `tx` string's length runs in the interpreter (with its
/// deadline) when the withdrawal carries a string longer than `FAST_TEXT_LIMIT`; bounded rules
/// stay on the fast path whatever the strings.
#[test]
fn text_scanning_rules_leave_the_fast_path_for_very_long_strings() {
    let limit = riskgate::rules::FAST_TEXT_LIMIT;
    let mut long = sample_tx();
    long.destination = "T".repeat(limit + 1);
    let mut short = sample_tx();
    short.destination = "T".repeat(limit);
    for script in [
        "tx.destination.contains(\"x\")",
        "tx.destination.is_empty()",
        "tx.referral.len() > 3",
        "tx.destination.starts_with(tx.referral)",
        "let d = tx.destination; d == tx.id",
    ] {
        let probe = RuleProbe::new(script).unwrap_or_else(|e| panic!("{script}: {e}"));
        assert!(probe.is_fast(), "{script}");
        assert_eq!(
            probe.fast(&long, 10),
            None,
            "{script} with a long destination"
        );
        let fast = probe.fast(&short, 10);
        assert!(
            fast.as_ref()
                .is_some_and(|f| same(f, &probe.interpreted(&short, 10))),
            "{script}: {fast:?}"
        );
    }
    // Past `max_string_size` (4096 by default) Rhai refuses a `let` string passed by reference
    // to an operator: an error the fast path leaves to the interpreter.
    let mut huge = sample_tx();
    huge.destination = "T".repeat(5000);
    let probe = RuleProbe::new("let d = tx.destination; d == \"x\"").expect("compiles");
    assert!(matches!(probe.interpreted(&huge, 10), Outcome::Error(_)));
    assert_eq!(probe.fast(&huge, 10), None);
    for script in [
        "tx.destination == \"T\"",
        "\"hk-police/scameter\" in tx.watchlists",
    ] {
        let probe = RuleProbe::new(script).unwrap_or_else(|e| panic!("{script}: {e}"));
        let fast = probe.fast(&long, 10);
        assert!(
            fast.as_ref()
                .is_some_and(|f| same(f, &probe.interpreted(&long, 10))),
            "{script}: {fast:?}"
        );
    }
}

/// Sets a numeric `tx` field by name (integer fields take the value rounded, saturating).
fn set_number(tx: &mut Tx, field: &str, value: f64) {
    let f = &mut tx.features;
    let n = value as i64;
    match field {
        "account_age_days" => f.account_age_days = n,
        "prior_withdrawals" => f.prior_withdrawals = n,
        "withdrawals_24h" => f.withdrawals_24h = n,
        "dest_users_24h" => f.dest_users_24h = n,
        "dest_users_30d" => f.dest_users_30d = n,
        "dest_prior_withdrawals" => f.dest_prior_withdrawals = n,
        "dest_rising_run" => f.dest_rising_run = n,
        "dest_others_since_first" => f.dest_others_since_first = n,
        "dest_rises" => f.dest_rises = n,
        "new_payee_withdrawals_30d" => f.new_payee_withdrawals_30d = n,
        "withdrawals_before_30d" => f.withdrawals_before_30d = n,
        "amount_usd" => tx.amount_usd = value,
        "amount_usd_24h" => f.amount_usd_24h = value,
        "median_amount_usd_90d" => f.median_amount_usd_90d = value,
        "hours_since_password_reset" => f.hours_since_password_reset = value,
        "device_age_hours" => f.device_age_hours = value,
        "dest_first_used_days" => f.dest_first_used_days = value,
        "dest_amount_usd_30d" => f.dest_amount_usd_30d = value,
        "dest_last_amount_usd" => f.dest_last_amount_usd = value,
        "dest_first_amount_usd" => f.dest_first_amount_usd = value,
        "dest_others_first_days" => f.dest_others_first_days = value,
        "state_days" => f.state_days = value,
        other => panic!("not a numeric field: {other}"),
    }
}

/// Sets a string `tx` field by name.
fn set_string(tx: &mut Tx, field: &str, value: &str) {
    let slot = match field {
        "id" => &mut tx.id,
        "user_id" => &mut tx.user_id,
        "asset" => &mut tx.asset,
        "network" => &mut tx.network,
        "country" => &mut tx.country,
        "locale" => &mut tx.locale,
        "referral" => &mut tx.referral,
        "destination" => &mut tx.destination,
        other => panic!("not a string field: {other}"),
    };
    *slot = value.to_string();
}

/// Asserts the fast path and Rhai agree on `script` when it takes the fast path; 1 if it did.
fn agree(script: &str, tx: &Tx) -> usize {
    let Ok(probe) = RuleProbe::new(script) else {
        return 0;
    };
    let slow = probe.interpreted(tx, 40);
    match probe.fast(tx, 40) {
        Some(fast) => {
            assert!(
                same(&fast, &slow),
                "{script}: fast {fast:?}, interpreter {slow:?}"
            );
            1
        }
        None => 0,
    }
}

/// `RISKGATE_NO_FASTPATH=1`, read when a rule set loads, runs every rule in the interpreter;
/// the shipped packs' own tests pass both ways. (The only test here that reads the variable.)
#[test]
fn the_fast_path_can_be_turned_off_at_load() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/rules");
    let previous = std::env::var_os(riskgate::rules::NO_FASTPATH_ENV);
    std::env::set_var(riskgate::rules::NO_FASTPATH_ENV, "1");
    let slow = riskgate::RuleSet::load(dir).expect("the shipped rules load");
    let slow_check = riskgate::check(dir);
    std::env::remove_var(riskgate::rules::NO_FASTPATH_ENV);
    let fast = riskgate::RuleSet::load(dir).expect("the shipped rules load");
    let fast_check = riskgate::check(dir);
    if let Some(value) = previous {
        std::env::set_var(riskgate::rules::NO_FASTPATH_ENV, value);
    }
    assert!(slow.rules().iter().all(|r| !r.fast_path()));
    assert!(
        fast.rules().iter().all(|r| r.fast_path()),
        "every shipped rule is in the subset"
    );
    assert!(slow_check.passed(), "{slow_check}");
    assert!(fast_check.passed(), "{fast_check}");
    assert!(fast_check
        .packs
        .iter()
        .all(|p| p.interpreted.is_empty() && !p.fast_path.is_empty()));
}
