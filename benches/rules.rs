//! `rules/200/*`: the same 200 generated rules (fixed seed: mostly 2-4 comparisons joined by
//! `&&`/`||`, some `in tx.watchlists`, some `if`/`else` returning scores, a few needing real
//! Rhai: string methods) evaluated per event, on the same precomputed `tx` values, by:
//! - `riskgate`: `RuleSet::evaluate` (fast path where compiled, the sandbox for the rest);
//! - `riskgate_no_fastpath`: the same with `RISKGATE_NO_FASTPATH=1` (every rule in the sandbox);
//! - `rhai_naive`: one `Engine::eval_with_scope` (parse + run) per rule per event;
//! - `rhai_ast`: Rhai with each rule's AST compiled once, `tx` map built once per event;
//! - `native`: plain Rust over a precomputed table (the limit);
//! - `cel`: the peer engine `cel-interpreter`, each rule compiled once.
//!
//! Every iteration asserts the engine's total score for the event equals the expected one, and
//! all engines are checked to agree on every event before timing.

mod common;

use std::collections::HashMap;
use std::hint::black_box;
use std::sync::Arc;

use common::Rng;
use criterion::{criterion_group, criterion_main, Criterion};
use riskgate::{Outcome, RuleSet, Tx, TxFeatures};

const RULES: usize = 200;
const EVENTS: usize = 512;

#[derive(Clone, Copy, Debug)]
enum Kind {
    Int,
    Float,
}

/// Numeric fields, their kind, and a generator of plausible thresholds.
const NUMERIC: [(&str, Kind, f64); 12] = [
    ("amount_usd", Kind::Float, 10_000.0),
    ("account_age_days", Kind::Int, 400.0),
    ("prior_withdrawals", Kind::Int, 40.0),
    ("withdrawals_24h", Kind::Int, 8.0),
    ("amount_usd_24h", Kind::Float, 20_000.0),
    ("median_amount_usd_90d", Kind::Float, 3_000.0),
    ("hours_since_password_reset", Kind::Float, 200.0),
    ("device_age_hours", Kind::Float, 500.0),
    ("dest_users_24h", Kind::Int, 8.0),
    ("dest_users_30d", Kind::Int, 30.0),
    ("dest_first_used_days", Kind::Float, 60.0),
    ("dest_amount_usd_30d", Kind::Float, 20_000.0),
];
const STRINGS: [(&str, &[&str]); 4] = [
    ("referral", &["telegram", "organic", "ads"]),
    ("asset", &["USDT", "BTC", "ETH"]),
    ("network", &["TRON", "ETH"]),
    ("locale", &["en", "zh-HK"]),
];
const LISTS: [&str; 3] = [
    "hk-police/scameter",
    "community-darklist/mew-darklist",
    "partner/mules",
];

#[derive(Clone, Copy, Debug, PartialEq)]
enum Op {
    Lt,
    Le,
    Gt,
    Ge,
}

/// One comparison of a rule.
#[derive(Clone, Debug)]
enum Cond {
    Num {
        field: usize,
        op: Op,
        k: f64,
    },
    StrEq {
        field: usize,
        value: &'static str,
        negate: bool,
    },
    NewAddress(bool),
    InList(usize),
}

/// String-method conditions that need real Rhai (outside the fast-path subset).
#[derive(Clone, Debug)]
enum Method {
    DestinationStartsWith(&'static str),
    ReferralLongerThan(i64),
    DestinationContains(&'static str),
}

#[derive(Clone, Debug)]
enum Rule {
    All(Vec<Cond>),
    Any(Vec<Cond>),
    /// `(a && b) || c`
    AndOr(Cond, Cond, Cond),
    /// `if a { s1 } else if b { s2 } else { 0 }`
    IfElse(Cond, i64, Cond, i64),
    /// `method && cond`
    Method(Method, Cond),
}

fn gen_cond(rng: &mut Rng) -> Cond {
    let roll = rng.unit();
    if roll < 0.75 {
        let field = rng.below(NUMERIC.len() as u64) as usize;
        let (_, kind, scale) = NUMERIC[field];
        let k = match kind {
            Kind::Int => rng.below(scale as u64) as f64,
            Kind::Float => (rng.unit() * scale * 100.0).round() / 100.0,
        };
        let op = *rng.pick(&[Op::Lt, Op::Le, Op::Gt, Op::Ge]);
        Cond::Num { field, op, k }
    } else if roll < 0.9 {
        let field = rng.below(STRINGS.len() as u64) as usize;
        Cond::StrEq {
            field,
            value: rng.pick_str(STRINGS[field].1),
            negate: rng.chance(0.3),
        }
    } else {
        Cond::NewAddress(rng.chance(0.7))
    }
}

fn gen_rules(rng: &mut Rng) -> Vec<Rule> {
    (0..RULES)
        .map(|i| {
            let roll = rng.unit();
            if i % 40 == 7 {
                // A few (5) that need real Rhai.
                let method = match rng.below(3) {
                    0 => Method::DestinationStartsWith(rng.pick_str(&["TQ", "0x", "Tx", "TA"])),
                    1 => Method::ReferralLongerThan(rng.below(8) as i64),
                    _ => Method::DestinationContains(rng.pick_str(&["a", "Zz", "9"])),
                };
                Rule::Method(method, gen_cond(rng))
            } else if roll < 0.1 {
                let list = rng.below(LISTS.len() as u64) as usize;
                if rng.chance(0.5) {
                    Rule::All(vec![Cond::InList(list)])
                } else {
                    Rule::All(vec![Cond::InList(list), gen_cond(rng)])
                }
            } else if roll < 0.3 {
                Rule::IfElse(
                    gen_cond(rng),
                    10 + rng.below(50) as i64,
                    gen_cond(rng),
                    1 + rng.below(20) as i64,
                )
            } else if roll < 0.45 {
                Rule::AndOr(gen_cond(rng), gen_cond(rng), gen_cond(rng))
            } else {
                let n = 2 + rng.below(3) as usize;
                let conds = (0..n).map(|_| gen_cond(rng)).collect();
                if rng.chance(0.65) {
                    Rule::All(conds)
                } else {
                    Rule::Any(conds)
                }
            }
        })
        .collect()
}

fn float_lit(k: f64) -> String {
    format!("{k:.2}")
}

fn num_literal(field: usize, k: f64) -> String {
    match NUMERIC[field].1 {
        Kind::Int => format!("{}", k as i64),
        Kind::Float => float_lit(k),
    }
}

fn op_str(op: Op) -> &'static str {
    match op {
        Op::Lt => "<",
        Op::Le => "<=",
        Op::Gt => ">",
        Op::Ge => ">=",
    }
}

/// The condition in Rhai (`cel == false`) or CEL (`cel == true`): the syntax is shared but
/// for `in`.
fn cond_src(c: &Cond) -> String {
    match c {
        Cond::Num { field, op, k } => format!(
            "tx.{} {} {}",
            NUMERIC[*field].0,
            op_str(*op),
            num_literal(*field, *k)
        ),
        Cond::StrEq {
            field,
            value,
            negate,
        } => {
            format!(
                "tx.{} {} \"{value}\"",
                STRINGS[*field].0,
                if *negate { "!=" } else { "==" }
            )
        }
        Cond::NewAddress(true) => "tx.is_new_address".to_string(),
        Cond::NewAddress(false) => "!tx.is_new_address".to_string(),
        Cond::InList(l) => format!("\"{}\" in tx.watchlists", LISTS[*l]),
    }
}

fn rhai_src(r: &Rule) -> String {
    match r {
        Rule::All(cs) => cs.iter().map(cond_src).collect::<Vec<_>>().join(" && "),
        Rule::Any(cs) => cs.iter().map(cond_src).collect::<Vec<_>>().join(" || "),
        Rule::AndOr(a, b, c) => format!("({} && {}) || {}", cond_src(a), cond_src(b), cond_src(c)),
        Rule::IfElse(a, s1, b, s2) => {
            format!(
                "if {} {{ {s1} }} else if {} {{ {s2} }} else {{ 0 }}",
                cond_src(a),
                cond_src(b)
            )
        }
        Rule::Method(m, c) => {
            let m = match m {
                Method::DestinationStartsWith(p) => format!("tx.destination.starts_with(\"{p}\")"),
                Method::ReferralLongerThan(n) => format!("tx.referral.len() > {n}"),
                Method::DestinationContains(s) => format!("tx.destination.contains(\"{s}\")"),
            };
            format!("{m} && {}", cond_src(c))
        }
    }
}

fn cel_src(r: &Rule) -> String {
    match r {
        Rule::IfElse(a, s1, b, s2) => {
            format!("({}) ? {s1} : (({}) ? {s2} : 0)", cond_src(a), cond_src(b))
        }
        Rule::Method(m, c) => {
            let m = match m {
                Method::DestinationStartsWith(p) => format!("tx.destination.startsWith(\"{p}\")"),
                Method::ReferralLongerThan(n) => format!("size(tx.referral) > {n}"),
                Method::DestinationContains(s) => format!("tx.destination.contains(\"{s}\")"),
            };
            format!("{m} && {}", cond_src(c))
        }
        other => rhai_src(other),
    }
}

/// The score a rule's value means (contract section 3), shared by every engine but riskgate.
fn value_score(manifest: i64, truth: Option<bool>, number: Option<f64>) -> i64 {
    match (truth, number) {
        (Some(true), _) => manifest,
        (_, Some(n)) if n.round() > 0.0 => n.round() as i64,
        _ => 0,
    }
}

fn manifest_score(i: usize) -> i64 {
    5 + (i as i64 * 7) % 40
}

// ---------- plain Rust over a precomputed table ----------

/// Per event: every numeric field as f64, each string equality and list membership as a flag.
struct Table {
    num: [f64; 12],
    flags: u64,
    destination: String,
    referral_len: i64,
}

const NEW_ADDRESS_FLAG: u32 = 0;
fn str_flag(field: usize, value: &str) -> u32 {
    let i = STRINGS[field]
        .1
        .iter()
        .position(|v| *v == value)
        .unwrap_or(0);
    1 + (field * 3 + i) as u32
}
fn list_flag(l: usize) -> u32 {
    40 + l as u32
}

fn table(tx: &Tx) -> Table {
    let f = &tx.features;
    let num = [
        tx.amount_usd,
        f.account_age_days as f64,
        f.prior_withdrawals as f64,
        f.withdrawals_24h as f64,
        f.amount_usd_24h,
        f.median_amount_usd_90d,
        f.hours_since_password_reset,
        f.device_age_hours,
        f.dest_users_24h as f64,
        f.dest_users_30d as f64,
        f.dest_first_used_days,
        f.dest_amount_usd_30d,
    ];
    let mut flags = 0u64;
    if f.is_new_address {
        flags |= 1 << NEW_ADDRESS_FLAG;
    }
    let strings = [&tx.referral, &tx.asset, &tx.network, &tx.locale];
    for (field, (_, values)) in STRINGS.iter().enumerate() {
        for v in values.iter() {
            if strings[field] == v {
                flags |= 1 << str_flag(field, v);
            }
        }
    }
    for (l, id) in LISTS.iter().enumerate() {
        if tx.watchlists.iter().any(|w| w == id) {
            flags |= 1 << list_flag(l);
        }
    }
    Table {
        num,
        flags,
        destination: tx.destination.clone(),
        referral_len: tx.referral.len() as i64,
    }
}

/// A condition compiled to the table: (kind, index, op, constant).
#[derive(Clone, Copy)]
enum NCond {
    Num(usize, Op, f64),
    Flag(u32, bool),
}

enum NRule {
    All(Vec<NCond>),
    Any(Vec<NCond>),
    AndOr(NCond, NCond, NCond),
    IfElse(NCond, i64, NCond, i64),
    Method(Method, NCond),
}

fn ncond(c: &Cond) -> NCond {
    match c {
        Cond::Num { field, op, k } => NCond::Num(*field, *op, *k),
        Cond::StrEq {
            field,
            value,
            negate,
        } => NCond::Flag(str_flag(*field, value), !*negate),
        Cond::NewAddress(b) => NCond::Flag(NEW_ADDRESS_FLAG, *b),
        Cond::InList(l) => NCond::Flag(list_flag(*l), true),
    }
}

fn nrule(r: &Rule) -> NRule {
    match r {
        Rule::All(cs) => NRule::All(cs.iter().map(ncond).collect()),
        Rule::Any(cs) => NRule::Any(cs.iter().map(ncond).collect()),
        Rule::AndOr(a, b, c) => NRule::AndOr(ncond(a), ncond(b), ncond(c)),
        Rule::IfElse(a, s1, b, s2) => NRule::IfElse(ncond(a), *s1, ncond(b), *s2),
        Rule::Method(m, c) => NRule::Method(m.clone(), ncond(c)),
    }
}

#[inline]
fn ntest(c: NCond, t: &Table) -> bool {
    match c {
        NCond::Num(i, op, k) => {
            let x = t.num[i];
            match op {
                Op::Lt => x < k,
                Op::Le => x <= k,
                Op::Gt => x > k,
                Op::Ge => x >= k,
            }
        }
        NCond::Flag(bit, want) => (t.flags >> bit) & 1 == u64::from(want),
    }
}

fn native_score(rules: &[(NRule, i64)], t: &Table) -> i64 {
    let mut total = 0;
    for (rule, manifest) in rules {
        total += match rule {
            NRule::All(cs) => i64::from(cs.iter().all(|c| ntest(*c, t))) * manifest,
            NRule::Any(cs) => i64::from(cs.iter().any(|c| ntest(*c, t))) * manifest,
            NRule::AndOr(a, b, c) => {
                i64::from((ntest(*a, t) && ntest(*b, t)) || ntest(*c, t)) * manifest
            }
            NRule::IfElse(a, s1, b, s2) => {
                if ntest(*a, t) {
                    *s1
                } else if ntest(*b, t) {
                    *s2
                } else {
                    0
                }
            }
            NRule::Method(m, c) => {
                let hit = match m {
                    Method::DestinationStartsWith(p) => t.destination.starts_with(p),
                    Method::ReferralLongerThan(n) => t.referral_len > *n,
                    Method::DestinationContains(s) => t.destination.contains(s),
                };
                i64::from(hit && ntest(*c, t)) * manifest
            }
        };
    }
    total
}

// ---------- inputs ----------

fn gen_txs(rng: &mut Rng) -> Vec<Tx> {
    (0..EVENTS)
        .map(|i| {
            let pick_str = |rng: &mut Rng, field: usize| rng.pick(STRINGS[field].1).to_string();
            let referral = pick_str(rng, 0);
            let asset = pick_str(rng, 1);
            let network = pick_str(rng, 2);
            let locale = pick_str(rng, 3);
            let mut num = [0.0; 12];
            for (j, (_, kind, scale)) in NUMERIC.iter().enumerate() {
                num[j] = match kind {
                    Kind::Int => rng.below(*scale as u64 + 1) as f64,
                    Kind::Float => (rng.unit() * scale * 100.0).round() / 100.0,
                };
            }
            let watchlists = LISTS
                .iter()
                .filter(|_| rng.chance(0.1))
                .map(|s| s.to_string())
                .collect();
            let destination = format!("{}{:x}", rng.pick(&["TQ", "0x", "Tx", "TA"]), rng.next());
            Tx {
                id: format!("wd-{i}"),
                user_id: format!("u-{}", rng.below(1000)),
                asset,
                network,
                country: "HK".into(),
                locale,
                referral,
                destination,
                amount_usd: num[0],
                features: TxFeatures {
                    account_age_days: num[1] as i64,
                    is_new_address: rng.chance(0.4),
                    prior_withdrawals: num[2] as i64,
                    withdrawals_24h: num[3] as i64,
                    amount_usd_24h: num[4],
                    median_amount_usd_90d: num[5],
                    hours_since_password_reset: num[6],
                    device_age_hours: num[7],
                    dest_users_24h: num[8] as i64,
                    dest_users_30d: num[9] as i64,
                    dest_first_used_days: num[10],
                    dest_amount_usd_30d: num[11],
                    // The extensions beyond the contract: the generated rules (over NUMERIC,
                    // the contract's fields) never read them.
                    dest_prior_withdrawals: 0,
                    dest_last_amount_usd: 0.0,
                    dest_rising_run: 0,
                    dest_others_since_first: 0,
                    dest_first_amount_usd: 0.0,
                    dest_rises: 0,
                    new_payee_withdrawals_30d: 0,
                    withdrawals_before_30d: 0,
                    dest_others_first_days: -1.0,
                    state_days: 400.0,
                },
                watchlists,
            }
        })
        .collect()
}

/// Writes the policy and one pack holding the 200 rules; returns the rules directory.
fn write_pack(dir: &std::path::Path, rules: &[Rule]) {
    std::fs::copy(
        common::rules_dir().join("policy.toml"),
        dir.join("policy.toml"),
    )
    .expect("copy policy");
    let pack = dir.join("gen");
    std::fs::create_dir_all(&pack).expect("pack dir");
    let mut manifest =
        String::from("id = \"gen\"\nname = \"Generated\"\nversion = \"1\"\nregions = [\"*\"]\n");
    for (i, rule) in rules.iter().enumerate() {
        let file = format!("r{i:03}.rhai");
        std::fs::write(pack.join(&file), rhai_src(rule)).expect("write rule");
        manifest.push_str(&format!(
            "\n[[rules]]\nid = \"r{i:03}\"\nscript = \"{file}\"\nscore = {}\nreason = \"generated\"\n",
            manifest_score(i)
        ));
    }
    std::fs::write(pack.join("pack.toml"), manifest).expect("write manifest");
}

fn riskgate_score(rules: &RuleSet, tx: &Tx, out: &mut Vec<Outcome>) -> i64 {
    rules.evaluate(tx, out);
    out.iter()
        .map(|o| match o {
            Outcome::Hit(n) => *n,
            Outcome::NoHit => 0,
            Outcome::Error(e) => panic!("rule error: {e}"),
        })
        .sum()
}

fn rhai_value_score(manifest: i64, v: rhai::Dynamic) -> i64 {
    value_score(
        manifest,
        v.as_bool().ok(),
        v.as_int()
            .ok()
            .map(|n| n as f64)
            .or_else(|| v.as_float().ok()),
    )
}

fn cel_value(tx: &Tx) -> cel_interpreter::Value {
    use cel_interpreter::Value;
    let f = &tx.features;
    let s = |v: &String| Value::String(Arc::new(v.clone()));
    let mut m: HashMap<String, Value> = HashMap::with_capacity(24);
    m.insert("id".into(), s(&tx.id));
    m.insert("user_id".into(), s(&tx.user_id));
    m.insert("asset".into(), s(&tx.asset));
    m.insert("network".into(), s(&tx.network));
    m.insert("country".into(), s(&tx.country));
    m.insert("locale".into(), s(&tx.locale));
    m.insert("referral".into(), s(&tx.referral));
    m.insert("destination".into(), s(&tx.destination));
    m.insert("amount_usd".into(), Value::Float(tx.amount_usd));
    m.insert("account_age_days".into(), Value::Int(f.account_age_days));
    m.insert("is_new_address".into(), Value::Bool(f.is_new_address));
    m.insert("prior_withdrawals".into(), Value::Int(f.prior_withdrawals));
    m.insert("withdrawals_24h".into(), Value::Int(f.withdrawals_24h));
    m.insert("amount_usd_24h".into(), Value::Float(f.amount_usd_24h));
    m.insert(
        "median_amount_usd_90d".into(),
        Value::Float(f.median_amount_usd_90d),
    );
    m.insert(
        "hours_since_password_reset".into(),
        Value::Float(f.hours_since_password_reset),
    );
    m.insert("device_age_hours".into(), Value::Float(f.device_age_hours));
    m.insert("dest_users_24h".into(), Value::Int(f.dest_users_24h));
    m.insert("dest_users_30d".into(), Value::Int(f.dest_users_30d));
    m.insert(
        "dest_first_used_days".into(),
        Value::Float(f.dest_first_used_days),
    );
    m.insert(
        "dest_amount_usd_30d".into(),
        Value::Float(f.dest_amount_usd_30d),
    );
    m.insert(
        "watchlists".into(),
        Value::List(Arc::new(tx.watchlists.iter().map(s).collect())),
    );
    m.into()
}

fn cel_score(
    programs: &[(cel_interpreter::Program, i64)],
    root: &cel_interpreter::Context<'_>,
    tx: &Tx,
) -> i64 {
    use cel_interpreter::Value;
    let mut ctx = root.new_inner_scope();
    ctx.add_variable_from_value("tx", cel_value(tx));
    programs
        .iter()
        .map(
            |(p, manifest)| match p.execute(&ctx).expect("CEL evaluates") {
                Value::Bool(b) => value_score(*manifest, Some(b), None),
                Value::Int(n) => value_score(*manifest, None, Some(n as f64)),
                Value::Float(x) => value_score(*manifest, None, Some(x)),
                other => panic!("CEL returned {other:?}"),
            },
        )
        .sum()
}

fn bench(c: &mut Criterion) {
    let mut rng = Rng::new(200);
    let rules = gen_rules(&mut rng);
    let txs = gen_txs(&mut rng);
    let dir = tempfile::tempdir().expect("tempdir");
    write_pack(dir.path(), &rules);

    let ruleset = RuleSet::load(dir.path()).unwrap_or_else(|e| panic!("generated pack loads: {e}"));
    let fast = ruleset.rules().iter().filter(|r| r.fast_path()).count();
    // Read once at load: this second set runs every rule in the sandbox.
    std::env::set_var(riskgate::rules::NO_FASTPATH_ENV, "1");
    let slow_set = RuleSet::load(dir.path()).expect("loads");
    std::env::remove_var(riskgate::rules::NO_FASTPATH_ENV);
    assert_eq!(slow_set.rules().iter().filter(|r| r.fast_path()).count(), 0);

    let engine = rhai::Engine::new();
    let sources: Vec<(String, i64)> = rules
        .iter()
        .enumerate()
        .map(|(i, r)| (rhai_src(r), manifest_score(i)))
        .collect();
    let asts: Vec<(rhai::AST, i64)> = sources
        .iter()
        .map(|(s, m)| (engine.compile(s).expect("compiles"), *m))
        .collect();
    let native: Vec<(NRule, i64)> = rules
        .iter()
        .enumerate()
        .map(|(i, r)| (nrule(r), manifest_score(i)))
        .collect();
    let tables: Vec<Table> = txs.iter().map(table).collect();
    let cel_root = cel_interpreter::Context::default();
    let cel: Vec<(cel_interpreter::Program, i64)> = rules
        .iter()
        .enumerate()
        .map(|(i, r)| {
            (
                cel_interpreter::Program::compile(&cel_src(r))
                    .unwrap_or_else(|e| panic!("{}: {e}", cel_src(r))),
                manifest_score(i),
            )
        })
        .collect();

    let rhai_naive = |tx: &Tx| -> i64 {
        let mut scope = rhai::Scope::new();
        scope.push_constant("tx", tx.to_rhai_map());
        sources
            .iter()
            .map(|(s, m)| {
                rhai_value_score(
                    *m,
                    engine
                        .eval_with_scope::<rhai::Dynamic>(&mut scope, s)
                        .expect("runs"),
                )
            })
            .sum()
    };
    let rhai_ast = |tx: &Tx| -> i64 {
        let mut scope = rhai::Scope::new();
        scope.push_constant("tx", tx.to_rhai_map());
        asts.iter()
            .map(|(a, m)| {
                rhai_value_score(
                    *m,
                    engine
                        .eval_ast_with_scope::<rhai::Dynamic>(&mut scope, a)
                        .expect("runs"),
                )
            })
            .sum()
    };

    // Every engine agrees on every event before anything is timed.
    let mut out = Vec::new();
    let expected: Vec<i64> = tables.iter().map(|t| native_score(&native, t)).collect();
    for (i, tx) in txs.iter().enumerate() {
        let want = expected[i];
        assert_eq!(
            riskgate_score(&ruleset, tx, &mut out),
            want,
            "riskgate, event {i}"
        );
        assert_eq!(
            riskgate_score(&slow_set, tx, &mut out),
            want,
            "riskgate without fast path, event {i}"
        );
        assert_eq!(rhai_naive(tx), want, "rhai naive, event {i}");
        assert_eq!(rhai_ast(tx), want, "rhai ast, event {i}");
        assert_eq!(cel_score(&cel, &cel_root, tx), want, "cel, event {i}");
    }
    let hits: usize = expected.iter().filter(|&&s| s > 0).count();
    println!(
        "rules/200: {RULES} rules ({fast} on the fast path, {} interpreted), {EVENTS} events, mean score {:.1}, {hits} events scoring",
        RULES - fast,
        expected.iter().sum::<i64>() as f64 / EVENTS as f64
    );

    let mut group = c.benchmark_group("rules/200");
    group.throughput(criterion::Throughput::Elements(1));
    let mut i = 0;
    group.bench_function("native", |b| {
        b.iter(|| {
            let k = i % EVENTS;
            i += 1;
            assert_eq!(native_score(&native, black_box(&tables[k])), expected[k]);
        })
    });
    group.bench_function("riskgate", |b| {
        b.iter(|| {
            let k = i % EVENTS;
            i += 1;
            assert_eq!(
                riskgate_score(&ruleset, black_box(&txs[k]), &mut out),
                expected[k]
            );
        })
    });
    group.bench_function("riskgate_no_fastpath", |b| {
        b.iter(|| {
            let k = i % EVENTS;
            i += 1;
            assert_eq!(
                riskgate_score(&slow_set, black_box(&txs[k]), &mut out),
                expected[k]
            );
        })
    });
    group.bench_function("rhai_ast", |b| {
        b.iter(|| {
            let k = i % EVENTS;
            i += 1;
            assert_eq!(rhai_ast(black_box(&txs[k])), expected[k]);
        })
    });
    group.bench_function("cel", |b| {
        b.iter(|| {
            let k = i % EVENTS;
            i += 1;
            assert_eq!(cel_score(&cel, &cel_root, black_box(&txs[k])), expected[k]);
        })
    });
    group.bench_function("rhai_naive", |b| {
        b.iter(|| {
            let k = i % EVENTS;
            i += 1;
            assert_eq!(rhai_naive(black_box(&txs[k])), expected[k]);
        })
    });
    group.finish();

    // Same-run comparison that a busy machine cannot skew: the engines interleaved, each
    // timed over chunks of 32 events, keeping each chunk's fastest of 8 rounds (preemption
    // only ever adds time). Every result is asserted here too.
    const CHUNK: usize = 32;
    let names = [
        "native",
        "riskgate",
        "riskgate_no_fastpath",
        "rhai_ast",
        "cel",
    ];
    let mut best = vec![[u128::MAX; EVENTS / CHUNK]; names.len()];
    for _ in 0..8 {
        for (engine, best) in best.iter_mut().enumerate() {
            for (chunk, slot) in best.iter_mut().enumerate() {
                let started = std::time::Instant::now();
                for k in chunk * CHUNK..(chunk + 1) * CHUNK {
                    let got = match engine {
                        0 => native_score(&native, black_box(&tables[k])),
                        1 => riskgate_score(&ruleset, black_box(&txs[k]), &mut out),
                        2 => riskgate_score(&slow_set, black_box(&txs[k]), &mut out),
                        3 => rhai_ast(black_box(&txs[k])),
                        _ => cel_score(&cel, &cel_root, black_box(&txs[k])),
                    };
                    assert_eq!(got, expected[k]);
                }
                *slot = (*slot).min(started.elapsed().as_nanos());
            }
        }
    }
    let per_event: Vec<f64> = best
        .iter()
        .map(|b| b.iter().sum::<u128>() as f64 / EVENTS as f64)
        .collect();
    for (name, ns) in names.iter().zip(&per_event) {
        println!(
            "rules/200 best-of-8 interleaved: {name:<22} {ns:>10.0} ns/event ({:.1} ns/rule)",
            ns / RULES as f64
        );
    }
    println!(
        "rules/200 ratios (same run): riskgate / native = {:.1}x; cel / riskgate = {:.1}x; rhai_ast / riskgate = {:.1}x; riskgate_no_fastpath / riskgate = {:.1}x",
        per_event[1] / per_event[0],
        per_event[4] / per_event[1],
        per_event[3] / per_event[1],
        per_event[2] / per_event[1]
    );
}

criterion_group! { name = benches; config = common::criterion(); targets = bench }
criterion_main!(benches);
