//! The Rhai sandbox: a raw engine with only the packages rules need, every limit from the
//! policy, and a wall-clock deadline per rule through `on_progress`.
//!
//! Refused at load: `import` (the `no_module` feature), `eval` (disabled symbol), undefined
//! variables (strict mode), nesting deeper than `max_expr_depth`, scripts over
//! [`MAX_SCRIPT_BYTES`]. Not available: clock (`no_time`), randomness (no package has it),
//! `sleep`, `exit`, `parse_json` (the language-core package is left out). `print` and `debug`
//! do nothing.

use std::cell::Cell;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::{Duration, Instant};

use rhai::packages::{
    ArithmeticPackage, BasicArrayPackage, BasicFnPackage, BasicIteratorPackage, BasicMapPackage,
    BasicMathPackage, BasicStringPackage, LogicPackage, MoreStringPackage, Package,
};
use rhai::{Dynamic, Engine, EvalAltResult, FnPtr, NativeCallContext, Position, Scope, AST};

use super::policy::Limits;

/// Scripts larger than this are refused at load.
pub const MAX_SCRIPT_BYTES: usize = 64 * 1024;

/// How often (in Rhai operations) the deadline is checked: often enough that one slice of
/// operations stays far below a millisecond, rarely enough that reading the clock is noise.
const DEADLINE_CHECK_EVERY: u64 = 32;

thread_local! {
    /// The deadline of the rule running on this thread, read by `on_progress`.
    static DEADLINE: Cell<Option<Instant>> = const { Cell::new(None) };
    /// The limit the running rule reached, if any. Sticky: Rhai's `sort` and `dedup` swallow
    /// errors raised inside their comparer, so a script could otherwise reach a limit and still
    /// return a value; a rule that reached a limit is a rule error whatever it returns.
    static TRIPPED: Cell<Option<Trip>> = const { Cell::new(None) };
    /// Operations of the running rule. Counted here, not by Rhai: Rhai counts the operations of
    /// a script function called back from a native one (a `map` or `sort` callback) from the
    /// caller's count each time and never adds them up, so its count neither reaches the limit
    /// nor the next deadline check while a native function calls back thousands of times.
    static OPERATIONS: Cell<u64> = const { Cell::new(0) };
}

/// Which limit stopped a rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Trip {
    Operations,
    Deadline,
}

/// What one rule evaluation came to.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// No hit (`false`, `()`, or a number rounding to 0 or less).
    NoHit,
    /// A hit with this score (the manifest's for `true`, else the returned number rounded).
    Hit(i64),
    /// A runtime error, a limit or the deadline reached, or a value of the wrong type.
    Error(String),
}

/// A compiled sandbox: one engine per rule set, since limits come from the policy.
pub(crate) struct Sandbox {
    engine: Engine,
    deadline: Duration,
    limits: Limits,
}

impl Sandbox {
    pub(crate) fn new(limits: &Limits) -> Sandbox {
        let mut engine = Engine::new_raw();
        engine.register_global_module(ArithmeticPackage::new().as_shared_module());
        engine.register_global_module(LogicPackage::new().as_shared_module());
        engine.register_global_module(BasicStringPackage::new().as_shared_module());
        engine.register_global_module(MoreStringPackage::new().as_shared_module());
        engine.register_global_module(BasicMathPackage::new().as_shared_module());
        engine.register_global_module(BasicArrayPackage::new().as_shared_module());
        engine.register_global_module(BasicMapPackage::new().as_shared_module());
        engine.register_global_module(BasicIteratorPackage::new().as_shared_module());
        engine.register_global_module(BasicFnPackage::new().as_shared_module());
        // Rhai's own `sort` with a comparer swallows the comparer's errors and sorts on: past
        // the deadline, every remaining comparison still calls into the script (milliseconds
        // for 1024 elements). This one stops at the first error and reports it.
        engine.register_fn("sort", sort_by);
        engine.register_fn("sort_by", sort_by);
        // Rhai's built-in float comparisons use a relative tolerance that is wrong at infinity
        // (`inf > 72.0` is false, `inf == inf` is false), and `tx` carries infinities
        // (`hours_since_password_reset`, `device_age_hours`). Exact IEEE comparisons replace
        // them; they must be registered functions, so the fast built-in operators are off.
        engine.set_fast_operators(false);
        engine.register_global_module(exact_float_comparisons().into());
        engine.disable_symbol("eval");
        engine.set_strict_variables(true);
        engine.set_fail_on_invalid_map_property(true);
        // Operations are counted by `on_progress` below (Rhai's own count is left unlimited), so
        // that reaching the limit is recorded even where Rhai swallows the error.
        engine.set_max_operations(0);
        engine.set_max_call_levels(limits.max_call_levels);
        engine.set_max_expr_depths(limits.max_expr_depth, limits.max_expr_depth);
        engine.set_max_string_size(limits.max_string_size);
        engine.set_max_array_size(limits.max_array_size);
        engine.set_max_map_size(limits.max_map_size);
        engine.set_max_variables(1024);
        engine.set_max_functions(256);
        engine.on_print(|_| {});
        engine.on_debug(|_, _, _| {});
        let max_operations = limits.max_operations;
        engine.on_progress(move |_| {
            // Outside `run` (e.g. Rhai's optimizer at load) there is nothing to limit.
            let deadline = DEADLINE.with(Cell::get)?;
            if TRIPPED.with(Cell::get).is_some() {
                return Some(Dynamic::UNIT);
            }
            let ops = OPERATIONS.with(|n| {
                n.set(n.get() + 1);
                n.get()
            });
            if ops > max_operations {
                return Some(trip(Trip::Operations));
            }
            if ops % DEADLINE_CHECK_EVERY != 0 {
                return None;
            }
            (Instant::now() >= deadline).then(|| trip(Trip::Deadline))
        });
        Sandbox {
            engine,
            deadline: limits.deadline(),
            limits: limits.clone(),
        }
    }

    /// Compiles a rule script; the error carries its 1-based line and column.
    pub(crate) fn compile(&self, script: &str) -> Result<AST, (usize, usize, String)> {
        if script.len() > MAX_SCRIPT_BYTES {
            return Err((
                1,
                1,
                format!(
                    "script is {} bytes; the limit is {MAX_SCRIPT_BYTES}",
                    script.len()
                ),
            ));
        }
        // `tx` and `params` are declared as plain variables for strict mode. Not as constants:
        // Rhai would fold the constant into the AST.
        let mut scope = Scope::new();
        scope.push("tx", ());
        scope.push("params", ());
        match catch_unwind(AssertUnwindSafe(|| {
            self.engine.compile_with_scope(&scope, script)
        })) {
            Ok(Ok(ast)) => Ok(ast),
            Ok(Err(e)) => {
                let (line, column) = position(e.position());
                Err((line, column, e.err_type().to_string()))
            }
            Err(_) => Err((1, 1, "the script crashed the Rhai parser".to_string())),
        }
    }

    /// [`Sandbox::run`] with the rule's `params` map (a constant, scope entry 1) in scope too
    /// when given; the scope is left with `tx` alone.
    pub(crate) fn run_with_params(
        &self,
        ast: &AST,
        scope: &mut Scope<'_>,
        params: Option<&Dynamic>,
        score: i64,
    ) -> Outcome {
        let Some(params) = params else {
            return self.run(ast, scope, score);
        };
        scope.rewind(1);
        // A fresh copy each run: whatever a script does to it can't reach the next run.
        scope.push_constant_dynamic("params", params.clone());
        let fields = params.as_map_ref().map_or(0, |map| map.len());
        let outcome = self.run(ast, scope, score);
        let grew = scope
            .get("params")
            .and_then(|p| p.as_map_ref().ok().map(|map| map.len()))
            .is_some_and(|len| len != fields);
        scope.rewind(1);
        match outcome {
            Outcome::Error(e) => Outcome::Error(e),
            _ if grew => Outcome::Error(
                "the rule added a field to params; rules must not change params".to_string(),
            ),
            outcome => outcome,
        }
    }

    /// Runs one rule with `tx` (scope entry 0) and any entries after it in scope. `score` is
    /// the manifest's score, used when the script returns `true`. Never panics; the scope is
    /// left as it was found.
    pub(crate) fn run(&self, ast: &AST, scope: &mut Scope<'_>, score: i64) -> Outcome {
        let base = scope.len();
        DEADLINE.with(|d| d.set(Some(Instant::now() + self.deadline)));
        TRIPPED.with(|t| t.set(None));
        OPERATIONS.with(|n| n.set(0));
        let fields = tx_len(scope);
        let result = catch_unwind(AssertUnwindSafe(|| {
            self.engine.eval_ast_with_scope::<Dynamic>(scope, ast)
        }));
        DEADLINE.with(|d| d.set(None));
        let tripped = TRIPPED.with(Cell::take);
        scope.rewind(base);
        let tx_grew = tx_len(scope) != fields && restore_tx(scope);
        match (tripped, result) {
            (Some(trip), result) => Outcome::Error(
                self.describe_trip(trip, result.ok().and_then(Result::err).as_deref()),
            ),
            _ if tx_grew => {
                Outcome::Error("the rule added a field to tx; rules must not change tx".to_string())
            }
            (None, Ok(Ok(value))) => judge(value, score),
            (None, Ok(Err(e))) => Outcome::Error(e.to_string()),
            (None, Err(_)) => Outcome::Error("the script crashed the Rhai interpreter".to_string()),
        }
    }

    /// The message for a rule stopped by a limit; `error` is what Rhai returned, if an error.
    fn describe_trip(&self, trip: Trip, error: Option<&EvalAltResult>) -> String {
        // The innermost position: Rhai wraps errors raised inside function calls.
        let mut pos = error.map_or(Position::NONE, EvalAltResult::position);
        let mut inner = error;
        while let Some(EvalAltResult::ErrorInFunctionCall(_, _, e, _)) = inner {
            pos = e.position();
            inner = Some(e);
        }
        match trip {
            Trip::Deadline => format!(
                "stopped at the {} ms deadline{}",
                self.limits.max_rule_ms,
                at(pos)
            ),
            Trip::Operations => format!(
                "stopped after {} operations (max_operations){}",
                self.limits.max_operations,
                at(pos)
            ),
        }
    }
}

/// The number of fields of `tx` (scope entry 0).
fn tx_len(scope: &Scope<'_>) -> usize {
    scope
        .get("tx")
        .and_then(|tx| tx.as_map_ref().ok().map(|map| map.len()))
        .unwrap_or(0)
}

/// Removes the fields a script added to the constant `tx`: Rhai inserts a missing property
/// before it checks constness, so `tx.extra = 1` would otherwise reach the next rule. The
/// host's fields are read-only; added ones are not. The scope is left with `tx` alone.
/// Returns true.
fn restore_tx(scope: &mut Scope<'_>) -> bool {
    let kept: Option<rhai::Map> = scope.get("tx").and_then(|tx| {
        let map = tx.as_map_ref().ok()?;
        Some(
            map.iter()
                .filter(|(_, value)| value.is_read_only())
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        )
    });
    if let Some(map) = kept {
        scope.rewind(0);
        scope.push_constant("tx", map);
    }
    true
}

/// `array.sort(comparer)`: as Rhai's, except that the first error of the comparer (a limit
/// reached, a runtime error) stops the sort and is the result. A merge sort of our own: the
/// standard library's sort may panic on a comparer that is not a total order, and cannot stop
/// early.
fn sort_by(
    ctx: NativeCallContext,
    array: &mut rhai::Array,
    comparer: FnPtr,
) -> Result<(), Box<EvalAltResult>> {
    if array.len() <= 1 {
        return Ok(());
    }
    let mut compare =
        |x: &Dynamic, y: &Dynamic| -> Result<std::cmp::Ordering, Box<EvalAltResult>> {
            let v = comparer.call_raw(&ctx, None, [x.clone(), y.clone()])?;
            Ok(
                match v
                    .as_int()
                    .or_else(|_| v.as_bool().map(|less| if less { -1 } else { 1 }))
                {
                    Ok(n) => n.cmp(&0),
                    Err(_) => x.type_id().cmp(&y.type_id()),
                },
            )
        };
    *array = merge_sort(array.clone(), &mut compare)?;
    Ok(())
}

/// A stable merge sort with a comparer that may fail.
fn merge_sort<E>(
    mut items: Vec<Dynamic>,
    compare: &mut impl FnMut(&Dynamic, &Dynamic) -> Result<std::cmp::Ordering, E>,
) -> Result<Vec<Dynamic>, E> {
    if items.len() <= 1 {
        return Ok(items);
    }
    let right = items.split_off(items.len() / 2);
    let left = merge_sort(items, compare)?;
    let right = merge_sort(right, compare)?;
    let mut out = Vec::with_capacity(left.len() + right.len());
    let mut left = left.into_iter().peekable();
    let mut right = right.into_iter().peekable();
    while let (Some(a), Some(b)) = (left.peek(), right.peek()) {
        // Take from the right only when strictly less: equal elements keep their order.
        let next = if compare(b, a)? == std::cmp::Ordering::Less {
            right.next()
        } else {
            left.next()
        };
        out.extend(next);
    }
    out.extend(left);
    out.extend(right);
    Ok(out)
}

/// Records that the running rule reached a limit; the token makes Rhai stop it.
fn trip(trip: Trip) -> Dynamic {
    TRIPPED.with(|t| t.set(Some(trip)));
    Dynamic::UNIT
}

fn position(pos: Position) -> (usize, usize) {
    (pos.line().unwrap_or(1), pos.position().unwrap_or(1))
}

fn at(pos: Position) -> String {
    match (pos.line(), pos.position()) {
        (Some(line), Some(column)) => format!(" (line {line}, position {column})"),
        _ => String::new(),
    }
}

/// `==`, `!=`, `<`, `<=`, `>`, `>=` over floats (and floats mixed with integers, compared as
/// floats, as Rhai does), with IEEE semantics.
fn exact_float_comparisons() -> rhai::Module {
    use rhai::{FLOAT, INT};
    macro_rules! comparisons {
        ($module:ident, $($name:literal => $op:tt),*) => {$(
            $module.set_native_fn($name, |x: FLOAT, y: FLOAT| Ok(x $op y));
            $module.set_native_fn($name, |x: FLOAT, y: INT| Ok(x $op (y as FLOAT)));
            $module.set_native_fn($name, |x: INT, y: FLOAT| Ok((x as FLOAT) $op y));
        )*};
    }
    let mut module = rhai::Module::new();
    comparisons!(module, "==" => ==, "!=" => !=, "<" => <, "<=" => <=, ">" => >, ">=" => >=);
    module
}

/// Turns a script's value into an outcome (contract section 3). The fast path uses it too.
pub(crate) fn judge(value: Dynamic, score: i64) -> Outcome {
    if value.is_unit() {
        return Outcome::NoHit;
    }
    if let Ok(b) = value.as_bool() {
        return if b {
            Outcome::Hit(score)
        } else {
            Outcome::NoHit
        };
    }
    if let Ok(n) = value.as_int() {
        return if n > 0 {
            Outcome::Hit(n)
        } else {
            Outcome::NoHit
        };
    }
    if let Ok(x) = value.as_float() {
        if !x.is_finite() {
            return Outcome::Error(format!("returned {x}; a score must be a finite number"));
        }
        let rounded = x.round();
        if rounded <= 0.0 {
            return Outcome::NoHit;
        }
        // 2^63 is the first float past i64::MAX.
        if rounded >= 9_223_372_036_854_775_808.0 {
            return Outcome::Error(format!("returned {x}, too large for a score"));
        }
        return Outcome::Hit(rounded as i64);
    }
    Outcome::Error(format!(
        "returned a value of type {}; a rule returns true/false, () or a number",
        value.type_name()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_judged_as_the_contract_says() {
        assert_eq!(judge(Dynamic::from(true), 40), Outcome::Hit(40));
        assert_eq!(judge(Dynamic::from(false), 40), Outcome::NoHit);
        assert_eq!(judge(Dynamic::UNIT, 40), Outcome::NoHit);
        assert_eq!(judge(Dynamic::from(7_i64), 40), Outcome::Hit(7));
        assert_eq!(judge(Dynamic::from(0_i64), 40), Outcome::NoHit);
        assert_eq!(judge(Dynamic::from(-3_i64), 40), Outcome::NoHit);
        assert_eq!(judge(Dynamic::from(2.5_f64), 40), Outcome::Hit(3));
        assert_eq!(judge(Dynamic::from(0.49_f64), 40), Outcome::NoHit);
        assert_eq!(judge(Dynamic::from(-2.5_f64), 40), Outcome::NoHit);
        assert!(matches!(
            judge(Dynamic::from(f64::NAN), 40),
            Outcome::Error(_)
        ));
        assert!(matches!(
            judge(Dynamic::from(f64::INFINITY), 40),
            Outcome::Error(_)
        ));
        assert!(matches!(
            judge(Dynamic::from(1e300_f64), 40),
            Outcome::Error(_)
        ));
        assert!(matches!(judge(Dynamic::from("yes"), 40), Outcome::Error(_)));
    }
}
