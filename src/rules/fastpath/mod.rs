//! The fast path: rule scripts within a common subset of Rhai, compiled at load time into a
//! small typed tree evaluated over a borrowed, fixed-layout [`TxView`], with no Rhai scope, no
//! `Dynamic` and no allocation per event. Boolean parts that can't fail become [`pred::Pred`]s
//! (most rules are one), evaluated without error plumbing. A rule whose work grows with a `tx`
//! string's length goes to the interpreter for strings over [`FAST_TEXT_LIMIT`].
//!
//! The compiler walks Rhai's own parsed and optimized AST (the `internals` feature), so parsing,
//! precedence and constant folding are Rhai's. The subset:
//!
//! - literals: `()`, `true`/`false`, integers, floats, strings;
//! - reads of `tx` fields (`tx.amount_usd`); an unknown field is an error when evaluated, as
//!   in the interpreter (`fail_on_invalid_map_property`);
//! - reads of the rule's params (`params.min_amount_usd`), folded into literals at load (a rule
//!   compiled for a sweep gets its own); a missing name is an error when evaluated, as for `tx`;
//! - unary `-`, `+`, `!`; binary `+ - * / %` and `< <= > >= == !=`; `&&`, `||` (short-circuit);
//! - `"pack/list" in tx.watchlists` and `!in` (a string on the left);
//! - on a string `tx` field, local or literal: `len()` (characters), `is_empty()` (also as the
//!   getters `.len`, `.is_empty`), `starts_with(s)`, `ends_with(s)`, `contains(s)` and
//!   `s in text` for a string `s`, in method or function form; `tx.watchlists.len()` and
//!   `.is_empty()`;
//! - `let`/`const`, blocks, `if`/`else` (as statement or expression), `return`.
//!
//! Everything else (other function calls and methods, character arguments, `**`, string concatenation, loops, `switch`,
//! `throw`, arrays, maps, characters, script-defined functions, more than 16 local variables, a
//! script that could reach `max_operations`) keeps the whole rule in the sandboxed interpreter.
//!
//! Semantics follow Rhai 1.27 exactly, operator by operator and type by type (probed, and
//! checked by the differential tests in `tests/fastpath.rs`): checked integer arithmetic
//! (overflow, division or modulo by zero are errors), int/float mixing converts to float,
//! float comparisons are exact IEEE (as the sandbox registers them), comparisons
//! between different non-numeric types are false (`!=` true), `&&`/`||`/`if` on a non-bool is an
//! error, and the script's value goes through the same `judge` as the interpreter's.
//!
//! Documented difference: error messages name no line and position (the interpreter's do);
//! whether an evaluation is an error never differs.
//!
//! Set `RISKGATE_NO_FASTPATH=1` in the environment before a rule set loads to run every rule in
//! the interpreter (read once per [`super::RuleSet`] load).

mod compile;
mod eval;
mod node;
mod pred;

use std::fmt;

pub(crate) use compile::compile;
use eval::*;
use node::*;
use pred::Pred;
use rhai::AST;

use super::params::Params;
use super::policy::Limits;
use super::sandbox::{judge, Outcome};
use super::tx::TxView;

/// Locals a fast-path rule may declare.
const MAX_LOCALS: usize = 16;

/// The environment variable that turns the fast path off (any value but empty or `0`).
pub const NO_FASTPATH_ENV: &str = "RISKGATE_NO_FASTPATH";

/// Whether the environment turns the fast path off.
pub(crate) fn disabled_by_env() -> bool {
    std::env::var_os(NO_FASTPATH_ENV).is_some_and(|v| !v.is_empty() && v != "0")
}

/// A rule compiled for the fast path.
#[derive(Clone, Debug)]
pub(crate) struct FastRule {
    body: Node,
    /// Local variables the rule declares.
    locals: usize,
    /// Whether the outcome can depend on the length of a `tx` string: the rule's work grows
    /// with it (`contains`, `len`, comparing two non-literal strings), or the interpreter checks
    /// it against `max_string_size` (a method or getter on a string, a `let` string as the
    /// first operand of an operator or function: Rhai passes those by reference and checks the
    /// size after the call). Such a rule runs in the interpreter for a withdrawal carrying a
    /// string longer than `text_limit`.
    text_sensitive: bool,
    /// The smaller of [`FAST_TEXT_LIMIT`] and the policy's `max_string_size`.
    text_limit: usize,
    /// Whether the rule calls a method on `tx.watchlists` (whose size the interpreter checks
    /// against `max_array_size` and `max_string_size`, the bytes of the ids).
    watchlist_sensitive: bool,
    max_array_size: usize,
    max_string_size: usize,
}

/// The longest `tx` string a text-sensitive rule takes on the fast path (bytes), when the
/// policy's `max_string_size` is not lower. Real ids and addresses are far shorter; an event
/// line may carry up to 1 MiB, and a rule of thousands of `contains` over such a string must meet
/// the interpreter's deadline, not run unbounded.
pub const FAST_TEXT_LIMIT: usize = 1024;

impl FastRule {
    /// Evaluates the rule; the same [`Outcome`] as the interpreter, for every `tx`. `None` when
    /// this `tx` must go to the interpreter instead (see [`FAST_TEXT_LIMIT`]).
    #[inline]
    pub(crate) fn run(&self, tx: &TxView<'_>, score: i64) -> Option<Outcome> {
        if self.text_sensitive && tx.longest_text > self.text_limit {
            return None;
        }
        if self.watchlist_sensitive && !self.watchlists_within_limits(tx) {
            return None;
        }
        Some(self.run_unchecked(tx, score))
    }

    /// What the interpreter's size check on `tx.watchlists` as a method's receiver says.
    #[cold]
    fn watchlists_within_limits(&self, tx: &TxView<'_>) -> bool {
        let within = |size: usize, max: usize| max == 0 || size <= max;
        within(tx.watchlists.len(), self.max_array_size)
            && within(tx.watchlists.total_bytes(), self.max_string_size)
    }

    /// Conditions (most rules) inline, straight to the boolean evaluator: the rest's frame
    /// (room for the locals, error plumbing) is paid only by the rules that need it.
    #[inline]
    fn run_unchecked(&self, tx: &TxView<'_>, score: i64) -> Outcome {
        match &self.body {
            Node::Test(p) => {
                if p.test(tx) {
                    Outcome::Hit(score)
                } else {
                    Outcome::NoHit
                }
            }
            _ => self.run_tree(tx, score),
        }
    }

    /// [`FastRule::run_unchecked`] for a body other than a condition.
    #[inline(never)]
    fn run_tree(&self, tx: &TxView<'_>, score: i64) -> Outcome {
        let result = match &self.body {
            Node::Test(p) => Ok(Val::Bool(p.test(tx))),
            Node::Select(select) => return outcome(select_value(select, tx), score),
            body @ (Node::And(_) | Node::Or(_)) if self.locals == 0 => {
                eval_bool(body, tx, &mut []).map(Val::Bool)
            }
            body if self.locals == 0 => eval(body, tx, &mut []),
            body => {
                let mut storage = [Val::Unit; MAX_LOCALS];
                let locals = storage.get_mut(..self.locals).unwrap_or_default();
                eval(body, tx, locals)
            }
        };
        match result {
            Ok(v) | Err(Stop::Return(v)) => outcome(v, score),
            Err(Stop::Fault(fault)) => Outcome::Error(fault.to_string()),
        }
    }
}

/// What a script's value means (the interpreter's `judge`).
#[inline]
fn outcome(value: Val<'_>, score: i64) -> Outcome {
    match value {
        // What `judge` says for these, without building a `Dynamic`.
        Val::Unit | Val::Bool(false) => Outcome::NoHit,
        Val::Bool(true) => Outcome::Hit(score),
        Val::Int(n) if n > 0 => Outcome::Hit(n),
        Val::Int(_) => Outcome::NoHit,
        // Allocation-free for a float; a string is a rule error anyway.
        other => judge(other.to_dynamic(), score),
    }
}

/// A [`Node::Select`]: the arms (predicate, literal) and the final `else`.
type Select = (Box<[(Pred, Const)]>, Const);

/// The value of a [`Node::Select`].
#[inline]
fn select_value<'a>(select: &'a Select, tx: &TxView<'_>) -> Val<'a> {
    let (arms, otherwise) = select;
    arms.iter()
        .find(|(p, _)| p.test(tx))
        .map_or(otherwise, |(_, k)| k)
        .val()
}

/// One rule script run both ways, the fast path and the sandboxed interpreter, for the
/// differential tests (`tests/fastpath.rs`) and for tools. Uses the default [`Limits`] but a
/// one-second deadline, so that a busy machine cannot turn an interpreter run into a
/// deadline error (a wall-clock limit the fast path, bounded by construction, never nears).
#[doc(hidden)]
pub struct RuleProbe {
    sandbox: super::Sandbox,
    ast: AST,
    fast: Option<FastRule>,
    params: Option<rhai::Dynamic>,
}

impl std::fmt::Debug for RuleProbe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RuleProbe")
            .field("fast", &self.fast.is_some())
            .finish()
    }
}

impl RuleProbe {
    /// Compiles `script` as a rule; the error is the load problem (`line:column: message`).
    pub fn new(script: &str) -> Result<RuleProbe, String> {
        RuleProbe::with_params(script, &Params::default())
    }

    /// Compiles `script` as a rule with these `params` (what it reads as `params`).
    pub fn with_params(script: &str, params: &Params) -> Result<RuleProbe, String> {
        let limits = Limits {
            max_rule_ms: 1000.0,
            ..Limits::default()
        };
        let sandbox = super::Sandbox::new(&limits);
        let ast = sandbox
            .compile(script)
            .map_err(|(line, column, message)| format!("{line}:{column}: {message}"))?;
        let fast = compile(&ast, &limits, params);
        let params =
            super::params::reads_params(&ast).then(|| rhai::Dynamic::from_map(params.to_map()));
        Ok(RuleProbe {
            sandbox,
            ast,
            fast,
            params,
        })
    }

    /// Whether the script compiled for the fast path.
    pub fn is_fast(&self) -> bool {
        self.fast.is_some()
    }

    /// The fast path's outcome (`None` when the script is not on the fast path).
    pub fn fast(&self, tx: &crate::Tx, score: i64) -> Option<Outcome> {
        self.fast
            .as_ref()
            .and_then(|f| f.run(&TxView::from(tx), score))
    }

    /// The interpreter's outcome.
    pub fn interpreted(&self, tx: &crate::Tx, score: i64) -> Outcome {
        let mut scope = rhai::Scope::new();
        scope.push_constant("tx", TxView::from(tx).to_map());
        self.sandbox
            .run_with_params(&self.ast, &mut scope, self.params.as_ref(), score)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::TxFeatures;

    fn sample_features() -> TxFeatures {
        TxFeatures {
            account_age_days: 3,
            is_new_address: true,
            prior_withdrawals: 4,
            withdrawals_24h: 1,
            amount_usd_24h: 10.0,
            median_amount_usd_90d: 5.0,
            hours_since_password_reset: 2.0,
            device_age_hours: 0.5,
            dest_users_24h: 6,
            dest_users_30d: 7,
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
            state_days: 400.0,
        }
    }

    /// The fast path takes a rule only when the interpreter could not run out of operations on
    /// it, whatever `max_operations` the policy sets.
    #[test]
    fn never_fast_where_the_interpreter_would_hit_max_operations() {
        let features = sample_features();
        let lists = [rhai::Dynamic::from("a/b")];
        let tx = TxView::new(
            ["w", "u", "USDT", "TRON", "HK", "en", "telegram", "T1"],
            6000.0,
            features,
            super::super::Watchlists::Dynamic(&lists),
        );
        let scripts = [
            "tx.is_new_address && tx.amount_usd >= 5000.0",
            "let a = tx.amount_usd * 2; let b = a - 1; if b > 3.0 { if tx.dest_users_24h >= 5 { 60 } else { 45 } } else { false }",
            "(tx.amount_usd > 1.0 || tx.amount_usd > 2.0) && !(\"a/b\" in tx.watchlists) || tx.referral == \"telegram\"",
        ];
        for script in scripts {
            for max_operations in 1..120 {
                let limits = Limits {
                    max_operations,
                    max_rule_ms: 1000.0,
                    ..Limits::default()
                };
                let sandbox = super::super::Sandbox::new(&limits);
                let Ok(ast) = sandbox.compile(script) else {
                    continue;
                };
                let Some(fast) = compile(&ast, &limits, &Params::default()) else {
                    continue;
                };
                let mut scope = rhai::Scope::new();
                scope.push_constant("tx", tx.to_map());
                let slow = sandbox.run(&ast, &mut scope, 10);
                assert_eq!(
                    fast.run(&tx, 10),
                    Some(slow),
                    "{script} with max_operations = {max_operations}"
                );
            }
        }
    }

    /// A policy's `max_string_size` / `max_array_size` below what a withdrawal carries: Rhai
    /// refuses some calls on such a string or array (a `let` string passed by reference, a
    /// method on `tx.watchlists`), so such rules leave the fast path for that withdrawal.
    #[test]
    #[allow(clippy::expect_used)] // a test fails loudly
    fn data_size_limits_send_rules_to_the_interpreter() {
        let features = sample_features();
        let referral = "r".repeat(300);
        let lists = [rhai::Dynamic::from("a/b"), rhai::Dynamic::from("c/d")];
        let tx = TxView::new(
            ["w", "u", "USDT", "TRON", "HK", "en", &referral, "T1"],
            6000.0,
            features,
            super::super::Watchlists::Dynamic(&lists),
        );
        let limits = Limits {
            max_string_size: 256,
            max_array_size: 1,
            max_rule_ms: 1000.0,
            ..Limits::default()
        };
        let sandbox = super::super::Sandbox::new(&limits);
        let mut errors = 0;
        for script in [
            "tx.referral.len() > 3",
            "let r = tx.referral; r.len() > 3",
            "tx.referral.is_empty()",
            "let r = tx.referral; r == \"x\"",
            "tx.watchlists.len() > 0",
            "tx.watchlists.contains(\"a/b\")",
        ] {
            let ast = sandbox.compile(script).expect("compiles");
            let fast = compile(&ast, &limits, &Params::default()).expect("in the subset");
            let mut scope = rhai::Scope::new();
            scope.push_constant("tx", tx.to_map());
            let slow = sandbox.run(&ast, &mut scope, 10);
            // The interpreter is the reference: the fast path defers to it or agrees.
            let quick = fast.run(&tx, 10);
            assert!(
                quick.as_ref().is_none_or(|q| *q == slow),
                "{script}: fast {quick:?}, interpreter {slow:?}"
            );
            if matches!(slow, Outcome::Error(_)) {
                errors += 1;
            }
        }
        // The local string and both watchlist calls are refused by the interpreter.
        assert!(errors >= 3, "{errors} size errors");
    }

    /// A predicate `let` is tested where it is used, and an `if` chain nested in a branch
    /// joins the outer one: a rule of both is one select, with no locals.
    #[test]
    #[allow(clippy::expect_used)] // a test fails loudly
    fn nested_if_chains_over_predicate_lets_become_one_select() {
        // A deadline a busy machine cannot reach (see `RuleProbe`).
        let limits = Limits {
            max_rule_ms: 1000.0,
            ..Limits::default()
        };
        let sandbox = super::super::Sandbox::new(&limits);
        let script = "let big = tx.amount_usd > 2.0 * tx.median_amount_usd_90d; \
            if tx.dest_users_30d < 1 { false } \
            else if tx.is_new_address { if big { 40 } else if tx.dest_users_24h > 2 { 30 } else { 10 } } \
            else if big { 5 } else { false }";
        let ast = sandbox.compile(script).expect("compiles");
        let fast = compile(&ast, &limits, &Params::default()).expect("in the subset");
        assert_eq!(fast.locals, 0);
        // `dest_users_30d < 1`, three arms under `is_new_address` (two nested and its own
        // else), `big`.
        let arms = match &fast.body {
            Node::Select(select) => select.0.len(),
            _ => 0,
        };
        assert_eq!(arms, 5, "{:?}", fast.body);
        let lists = [rhai::Dynamic::from("a/b")];
        for (new, users_24h, amount) in [(true, 3, 1.0), (true, 1, 100.0), (false, 0, 100.0)] {
            let mut features = sample_features();
            features.is_new_address = new;
            features.dest_users_24h = users_24h;
            features.median_amount_usd_90d = 10.0;
            let tx = TxView::new(
                ["w", "u", "USDT", "TRON", "HK", "en", "r", "T1"],
                amount,
                features,
                super::super::Watchlists::Dynamic(&lists),
            );
            let mut scope = rhai::Scope::new();
            scope.push_constant("tx", tx.to_map());
            assert_eq!(fast.run(&tx, 10), Some(sandbox.run(&ast, &mut scope, 10)));
        }
    }

    #[test]
    fn float_comparisons_are_exact() {
        assert!(float_compare(BinOp::Eq, f64::INFINITY, f64::INFINITY));
        assert!(float_compare(BinOp::Gt, f64::INFINITY, 24.0));
        assert!(float_compare(BinOp::Lt, 1.0, 1.0 + f64::EPSILON));
        assert!(float_compare(BinOp::Ne, f64::NAN, f64::NAN));
        assert!(!float_compare(BinOp::Le, f64::NAN, 1.0));
    }
}
