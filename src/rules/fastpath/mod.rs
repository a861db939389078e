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

mod pred;

use std::fmt;

use pred::Pred;
use rhai::{ASTFlags, Expr, FnCallExpr, Stmt, AST};

use super::params::{ParamValue, Params};
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

// Static type sets: which kinds of value an expression can produce (0: it always errors).
type Ty = u8;
const UNIT: Ty = 1;
const BOOL: Ty = 2;
const INT: Ty = 4;
const FLOAT: Ty = 8;
const STR: Ty = 16;
/// `tx.watchlists`: only allowed as the right side of `in`.
const WATCH: Ty = 32;

/// A `tx` field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Field {
    Id,
    UserId,
    Asset,
    Network,
    Country,
    Locale,
    Referral,
    Destination,
    AmountUsd,
    AccountAgeDays,
    IsNewAddress,
    PriorWithdrawals,
    Withdrawals24h,
    AmountUsd24h,
    MedianAmountUsd90d,
    HoursSincePasswordReset,
    DeviceAgeHours,
    DestUsers24h,
    DestUsers30d,
    DestFirstUsedDays,
    DestAmountUsd30d,
    Watchlists,
}

impl Field {
    fn from_name(name: &str) -> Option<Field> {
        Some(match name {
            "id" => Field::Id,
            "user_id" => Field::UserId,
            "asset" => Field::Asset,
            "network" => Field::Network,
            "country" => Field::Country,
            "locale" => Field::Locale,
            "referral" => Field::Referral,
            "destination" => Field::Destination,
            "amount_usd" => Field::AmountUsd,
            "account_age_days" => Field::AccountAgeDays,
            "is_new_address" => Field::IsNewAddress,
            "prior_withdrawals" => Field::PriorWithdrawals,
            "withdrawals_24h" => Field::Withdrawals24h,
            "amount_usd_24h" => Field::AmountUsd24h,
            "median_amount_usd_90d" => Field::MedianAmountUsd90d,
            "hours_since_password_reset" => Field::HoursSincePasswordReset,
            "device_age_hours" => Field::DeviceAgeHours,
            "dest_users_24h" => Field::DestUsers24h,
            "dest_users_30d" => Field::DestUsers30d,
            "dest_first_used_days" => Field::DestFirstUsedDays,
            "dest_amount_usd_30d" => Field::DestAmountUsd30d,
            "watchlists" => Field::Watchlists,
            _ => return None,
        })
    }

    fn ty(self) -> Ty {
        match self {
            Field::Id
            | Field::UserId
            | Field::Asset
            | Field::Network
            | Field::Country
            | Field::Locale
            | Field::Referral
            | Field::Destination => STR,
            Field::AccountAgeDays
            | Field::PriorWithdrawals
            | Field::Withdrawals24h
            | Field::DestUsers24h
            | Field::DestUsers30d => INT,
            Field::IsNewAddress => BOOL,
            Field::AmountUsd
            | Field::AmountUsd24h
            | Field::MedianAmountUsd90d
            | Field::HoursSincePasswordReset
            | Field::DeviceAgeHours
            | Field::DestFirstUsedDays
            | Field::DestAmountUsd30d => FLOAT,
            Field::Watchlists => WATCH,
        }
    }

    /// Index into [`TxView::ints`].
    fn int_index(self) -> Option<u8> {
        Some(match self {
            Field::AccountAgeDays => 0,
            Field::PriorWithdrawals => 1,
            Field::Withdrawals24h => 2,
            Field::DestUsers24h => 3,
            Field::DestUsers30d => 4,
            _ => return None,
        })
    }

    /// Index into [`TxView::strs`].
    fn str_index(self) -> Option<u8> {
        Some(match self {
            Field::Id => 0,
            Field::UserId => 1,
            Field::Asset => 2,
            Field::Network => 3,
            Field::Country => 4,
            Field::Locale => 5,
            Field::Referral => 6,
            Field::Destination => 7,
            _ => return None,
        })
    }

    /// Index into [`TxView::floats`].
    fn float_index(self) -> Option<u8> {
        Some(match self {
            Field::AmountUsd => 0,
            Field::AmountUsd24h => 1,
            Field::MedianAmountUsd90d => 2,
            Field::HoursSincePasswordReset => 3,
            Field::DeviceAgeHours => 4,
            Field::DestFirstUsedDays => 5,
            Field::DestAmountUsd30d => 6,
            _ => return None,
        })
    }

    #[inline]
    fn read<'a>(self, tx: &TxView<'a>) -> Val<'a> {
        let f = &tx.features;
        match self {
            Field::Id
            | Field::UserId
            | Field::Asset
            | Field::Network
            | Field::Country
            | Field::Locale
            | Field::Referral
            | Field::Destination => Val::Str(tx.text(self.str_index().unwrap_or_default())),
            Field::AmountUsd => Val::Float(tx.amount_usd),
            Field::AccountAgeDays => Val::Int(f.account_age_days),
            Field::IsNewAddress => Val::Bool(f.is_new_address),
            Field::PriorWithdrawals => Val::Int(f.prior_withdrawals),
            Field::Withdrawals24h => Val::Int(f.withdrawals_24h),
            Field::AmountUsd24h => Val::Float(f.amount_usd_24h),
            Field::MedianAmountUsd90d => Val::Float(f.median_amount_usd_90d),
            Field::HoursSincePasswordReset => Val::Float(f.hours_since_password_reset),
            Field::DeviceAgeHours => Val::Float(f.device_age_hours),
            Field::DestUsers24h => Val::Int(f.dest_users_24h),
            Field::DestUsers30d => Val::Int(f.dest_users_30d),
            Field::DestFirstUsedDays => Val::Float(f.dest_first_used_days),
            Field::DestAmountUsd30d => Val::Float(f.dest_amount_usd_30d),
            // Never compiled as a value (only as the right side of `in`).
            Field::Watchlists => Val::Unit,
        }
    }
}

/// A value during fast evaluation: copied, never allocated.
#[derive(Clone, Copy, Debug)]
enum Val<'a> {
    Unit,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(&'a str),
}

impl Val<'_> {
    fn type_name(&self) -> &'static str {
        match self {
            Val::Unit => "()",
            Val::Bool(_) => "bool",
            Val::Int(_) => "i64",
            Val::Float(_) => "f64",
            Val::Str(_) => "string",
        }
    }

    fn to_dynamic(self) -> rhai::Dynamic {
        match self {
            Val::Unit => rhai::Dynamic::UNIT,
            Val::Bool(b) => b.into(),
            Val::Int(n) => n.into(),
            Val::Float(x) => x.into(),
            Val::Str(s) => s.into(),
        }
    }
}

/// A literal held by a compiled rule.
#[derive(Clone, Debug)]
enum Const {
    Unit,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(Box<str>),
}

impl Const {
    #[inline]
    fn val(&self) -> Val<'_> {
        match self {
            Const::Unit => Val::Unit,
            Const::Bool(b) => Val::Bool(*b),
            Const::Int(n) => Val::Int(*n),
            Const::Float(x) => Val::Float(*x),
            Const::Str(s) => Val::Str(s),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum BinOp {
    Add,
    Sub,
    Mul,
    Div,
    Rem,
    Lt,
    Le,
    Gt,
    Ge,
    Eq,
    Ne,
}

impl BinOp {
    fn from_name(name: &str) -> Option<BinOp> {
        Some(match name {
            "+" => BinOp::Add,
            "-" => BinOp::Sub,
            "*" => BinOp::Mul,
            "/" => BinOp::Div,
            "%" => BinOp::Rem,
            "<" => BinOp::Lt,
            "<=" => BinOp::Le,
            ">" => BinOp::Gt,
            ">=" => BinOp::Ge,
            "==" => BinOp::Eq,
            "!=" => BinOp::Ne,
            _ => return None,
        })
    }

    fn symbol(self) -> &'static str {
        match self {
            BinOp::Add => "+",
            BinOp::Sub => "-",
            BinOp::Mul => "*",
            BinOp::Div => "/",
            BinOp::Rem => "%",
            BinOp::Lt => "<",
            BinOp::Le => "<=",
            BinOp::Gt => ">",
            BinOp::Ge => ">=",
            BinOp::Eq => "==",
            BinOp::Ne => "!=",
        }
    }

    fn is_comparison(self) -> bool {
        !matches!(
            self,
            BinOp::Add | BinOp::Sub | BinOp::Mul | BinOp::Div | BinOp::Rem
        )
    }
}

/// A string test from Rhai's string package, for a string argument.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum StrTest {
    StartsWith,
    EndsWith,
    Contains,
}

impl StrTest {
    fn from_name(name: &str) -> Option<StrTest> {
        Some(match name {
            "starts_with" => StrTest::StartsWith,
            "ends_with" => StrTest::EndsWith,
            "contains" => StrTest::Contains,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            StrTest::StartsWith => "starts_with",
            StrTest::EndsWith => "ends_with",
            StrTest::Contains => "contains",
        }
    }

    #[inline]
    fn apply(self, text: &str, s: &str) -> bool {
        match self {
            StrTest::StartsWith => text.starts_with(s),
            StrTest::EndsWith => text.ends_with(s),
            StrTest::Contains => text.contains(s),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum UnOp {
    Neg,
    Plus,
    Not,
}

/// A compiled expression or statement.
#[derive(Clone, Debug)]
enum Node {
    Const(Const),
    Field(Field),
    /// `tx.<unknown>`: an error when evaluated.
    NoProperty(Box<str>),
    Local(u8),
    /// `let` (evaluates to `()`).
    Let(u8, Box<Node>),
    Unary(UnOp, Box<Node>),
    Binary(BinOp, Box<(Node, Node)>),
    /// A boolean expression that can't fail (most rules are one).
    Test(Pred),
    /// `if p1 { k1 } else if p2 { k2 } .. else { k }` over predicates and literals: the
    /// literal of the first predicate that holds, else the last one.
    Select(Box<Select>),
    And(Box<[Node]>),
    Or(Box<[Node]>),
    /// `needle in tx.watchlists`.
    InWatchlists(Box<Node>),
    /// `text.starts_with(s)` and the like: (text, s), both statically strings; `text` is a field,
    /// local or literal, so it can't fail (Rhai evaluates a method's arguments first).
    StrTest(StrTest, Box<(Node, Node)>),
    /// `text.len()`: characters, as Rhai counts them.
    StrLen(Box<Node>),
    /// `text.is_empty()`.
    StrIsEmpty(Box<Node>),
    /// `tx.watchlists.len()`.
    WatchlistsLen,
    /// `tx.watchlists.is_empty()`.
    WatchlistsIsEmpty,
    /// Condition, then, else.
    If(Box<(Node, Node, Node)>),
    /// Statements; the value of the last one (`()` when empty).
    Block(Box<[Node]>),
    Return(Box<Node>),
}

/// Why a fast evaluation failed (the interpreter fails on exactly the same inputs).
#[derive(Clone, Copy, Debug)]
enum Fault<'a> {
    Overflow(&'static str, &'static str, i64, i64),
    DivisionByZero(i64, i64),
    NegationOverflow,
    NoFunction(&'static str, &'static str, Option<&'static str>),
    NotBool(&'static str),
    NoProperty(&'a str),
}

impl fmt::Display for Fault<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fault::Overflow(what, op, x, y) => write!(f, "{what}: {x} {op} {y}"),
            Fault::DivisionByZero(x, y) => write!(f, "Division by zero: {x} / {y}"),
            Fault::NegationOverflow => write!(f, "integer overflow"),
            Fault::NoFunction(op, a, None) => write!(f, "Function not found: {op} ({a})"),
            Fault::NoFunction(op, a, Some(b)) => write!(f, "Function not found: {op} ({a}, {b})"),
            Fault::NotBool(got) => write!(f, "Data type incorrect: {got} (expecting bool)"),
            Fault::NoProperty(name) => write!(f, "Property not found: {name}"),
        }
    }
}

/// How an evaluation stops early. The fault is boxed: errors are rare, and a small result
/// keeps the common path fast.
enum Stop<'a> {
    Return(Val<'a>),
    Fault(Box<Fault<'a>>),
}

impl<'a> From<Fault<'a>> for Stop<'a> {
    fn from(f: Fault<'a>) -> Stop<'a> {
        Stop::Fault(Box::new(f))
    }
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

    fn run_unchecked(&self, tx: &TxView<'_>, score: i64) -> Outcome {
        let result = match &self.body {
            // Conditions (most rules): no locals, straight to the boolean evaluator.
            Node::Test(p) => {
                return if p.test(tx) {
                    Outcome::Hit(score)
                } else {
                    Outcome::NoHit
                };
            }
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

/// An `if`/`else if` chain over predicates whose branches are all literals, as its arms and
/// its final `else` (`()` when there is none).
fn as_select(node: &Node) -> Option<(Vec<(Pred, Const)>, Const)> {
    let Node::If(parts) = node else {
        return None;
    };
    let (Node::Test(p), Node::Const(k), otherwise) = &**parts else {
        return None;
    };
    let (mut arms, last) = match otherwise {
        Node::Const(last) => (Vec::new(), last.clone()),
        Node::Block(stmts) if stmts.is_empty() => (Vec::new(), Const::Unit),
        chain => as_select(chain)?,
    };
    arms.insert(0, (p.clone(), k.clone()));
    Some((arms, last))
}

/// Compiles a rule's AST for the fast path, or `None` when it leaves the subset. The rule's
/// `params` are constants known at load: `params.<name>` compiles to the literal.
pub(crate) fn compile(ast: &AST, limits: &Limits, params: &Params) -> Option<FastRule> {
    if ast.has_functions() {
        return None;
    }
    let mut c = Compiler {
        params: params.clone(),
        ..Compiler::default()
    };
    let (body, _) = c.block(ast.statements())?;
    let body = match as_select(&body) {
        Some((arms, otherwise)) => Node::Select(Box::new((arms.into_boxed_slice(), otherwise))),
        None => body,
    };
    // Each AST node costs the interpreter at most a few operations; stay well inside the limit
    // so that the interpreter could never have stopped where the fast path goes on.
    let bound = c.nodes.saturating_mul(4).saturating_add(16);
    if limits.max_operations != 0 && bound as u64 > limits.max_operations {
        return None;
    }
    Some(FastRule {
        body,
        locals: c.next_slot,
        text_sensitive: c.text_sensitive,
        text_limit: match limits.max_string_size {
            0 => FAST_TEXT_LIMIT,
            max => max.min(FAST_TEXT_LIMIT),
        },
        watchlist_sensitive: c.watchlist_sensitive,
        max_array_size: limits.max_array_size,
        max_string_size: limits.max_string_size,
    })
}

#[derive(Default)]
struct Compiler {
    /// Names in scope, innermost last: (name, slot, type).
    locals: Vec<(String, u8, Ty)>,
    next_slot: usize,
    nodes: usize,
    /// See [`FastRule::text_sensitive`].
    text_sensitive: bool,
    /// See [`FastRule::watchlist_sensitive`].
    watchlist_sensitive: bool,
    /// The rule's params, folded into literals.
    params: Params,
}

impl Compiler {
    fn block(&mut self, stmts: &[Stmt]) -> Option<(Node, Ty)> {
        let mark = self.locals.len();
        let mut nodes = Vec::with_capacity(stmts.len());
        let mut ty = UNIT;
        for stmt in stmts {
            let (node, t) = self.stmt(stmt)?;
            nodes.push(node);
            ty = t;
        }
        self.locals.truncate(mark);
        let node = if nodes.len() == 1 {
            nodes.pop()?
        } else {
            Node::Block(nodes.into_boxed_slice())
        };
        Some((node, ty))
    }

    fn stmt(&mut self, stmt: &Stmt) -> Option<(Node, Ty)> {
        self.nodes += 1;
        match stmt {
            Stmt::Noop(_) => Some((Node::Const(Const::Unit), UNIT)),
            Stmt::Expr(e) => self.value(e),
            Stmt::FnCall(call, _) => self.call(call),
            Stmt::Block(block) => self.block(block.statements()),
            Stmt::If(flow, _) => {
                let (cond, _) = self.value(&flow.expr)?;
                let (then, t1) = self.block(flow.body.statements())?;
                let (otherwise, t2) = self.block(flow.branch.statements())?;
                Some((Node::If(Box::new((cond, then, otherwise))), t1 | t2))
            }
            Stmt::Var(var, _flags, _) => {
                let (ident, init, _) = &**var;
                let (init, ty) = self.value(init)?;
                let slot = self.next_slot;
                if slot >= MAX_LOCALS {
                    return None;
                }
                self.next_slot += 1;
                let slot = u8::try_from(slot).ok()?;
                self.locals.push((ident.name.to_string(), slot, ty));
                Some((Node::Let(slot, Box::new(init)), UNIT))
            }
            Stmt::Return(value, flags, _) if !flags.contains(ASTFlags::BREAK) => {
                let (value, ty) = match value {
                    Some(e) => self.value(e)?,
                    None => (Node::Const(Const::Unit), UNIT),
                };
                Some((Node::Return(Box::new(value)), ty))
            }
            _ => None,
        }
    }

    /// An expression used as a value (anything but `tx.watchlists` on its own).
    fn value(&mut self, e: &Expr) -> Option<(Node, Ty)> {
        let (node, ty) = self.expr(e)?;
        (ty & WATCH == 0).then_some((node, ty))
    }

    fn expr(&mut self, e: &Expr) -> Option<(Node, Ty)> {
        self.nodes += 1;
        match e {
            Expr::Unit(_) => Some((Node::Const(Const::Unit), UNIT)),
            Expr::BoolConstant(b, _) => Some((Node::Const(Const::Bool(*b)), BOOL)),
            Expr::IntegerConstant(n, _) => Some((Node::Const(Const::Int(*n)), INT)),
            Expr::FloatConstant(x, _) => Some((Node::Const(Const::Float(**x)), FLOAT)),
            Expr::StringConstant(s, _) => Some((Node::Const(Const::Str(s.as_str().into())), STR)),
            Expr::Variable(var, _, _) => {
                let name = var.1.as_str();
                let (_, slot, ty) = self.locals.iter().rev().find(|(n, _, _)| n == name)?;
                Some((Node::Local(*slot), *ty))
            }
            Expr::Dot(chain, flags, _) if !flags.contains(ASTFlags::NEGATED) => {
                self.dot(&chain.lhs, &chain.rhs)
            }
            Expr::Stmt(block) => self.block(block.statements()),
            Expr::FnCall(call, _) => self.call(call),
            Expr::And(list, _) | Expr::Or(list, _) => {
                let mut nodes = Vec::with_capacity(list.len());
                for e in list.iter() {
                    nodes.push(self.value(e)?.0);
                }
                let and = matches!(e, Expr::And(..));
                // All predicates: one predicate.
                if nodes.iter().all(|n| as_pred(n).is_some()) {
                    let preds: Box<[Pred]> = nodes.iter().filter_map(as_pred).collect();
                    let pred = if and {
                        Pred::And(preds)
                    } else {
                        Pred::Or(preds)
                    };
                    return Some((Node::Test(pred), BOOL));
                }
                let nodes = nodes.into_boxed_slice();
                let node = if and {
                    Node::And(nodes)
                } else {
                    Node::Or(nodes)
                };
                Some((node, BOOL))
            }
            _ => None,
        }
    }

    fn is_local(&self, name: &str) -> bool {
        self.locals.iter().any(|(n, _, _)| n == name)
    }

    /// `tx.<name>`: a field, or an error when evaluated.
    fn field(name: &str) -> (Node, Ty) {
        match Field::from_name(name) {
            Some(Field::IsNewAddress) => (Node::Test(Pred::IsNew(true)), BOOL),
            Some(field) => (Node::Field(field), field.ty()),
            None => (Node::NoProperty(name.into()), 0),
        }
    }

    /// `params.<name>`: the param's value as a literal, or an error when evaluated (as for a
    /// missing `tx` field).
    fn param(&self, name: &str) -> (Node, Ty) {
        match self.params.get(name) {
            Some(ParamValue::Int(n)) => (Node::Const(Const::Int(*n)), INT),
            Some(ParamValue::Float(x)) => (Node::Const(Const::Float(*x)), FLOAT),
            Some(ParamValue::Bool(b)) => (Node::Const(Const::Bool(*b)), BOOL),
            Some(ParamValue::Str(s)) => (Node::Const(Const::Str(s.as_str().into())), STR),
            None => (Node::NoProperty(name.into()), 0),
        }
    }

    /// `lhs.rhs`: `tx.<field>`, `tx.<field>.<method>`, `params.<name>`,
    /// `params.<name>.<method>`, `local.<method>`, `"text".<method>`.
    fn dot(&mut self, lhs: &Expr, rhs: &Expr) -> Option<(Node, Ty)> {
        if let Expr::Variable(var, _, _) = lhs {
            if var.1.as_str() == "params" && !self.is_local("params") {
                return match rhs {
                    Expr::Property(prop, _) => Some(self.param(prop.2.as_str())),
                    Expr::Dot(inner, flags, _) if !flags.contains(ASTFlags::NEGATED) => {
                        let Expr::Property(prop, _) = &inner.lhs else {
                            return None;
                        };
                        self.nodes += 1;
                        let receiver = self.param(prop.2.as_str());
                        self.method(receiver, &inner.rhs)
                    }
                    _ => None,
                };
            }
            if var.1.as_str() == "tx" && !self.is_local("tx") {
                return match rhs {
                    Expr::Property(prop, _) => Some(Self::field(prop.2.as_str())),
                    Expr::Dot(inner, flags, _) if !flags.contains(ASTFlags::NEGATED) => {
                        let Expr::Property(prop, _) = &inner.lhs else {
                            return None;
                        };
                        self.nodes += 1;
                        let receiver = Self::field(prop.2.as_str());
                        self.method(receiver, &inner.rhs)
                    }
                    _ => None,
                };
            }
        }
        let receiver = match lhs {
            Expr::Variable(..) | Expr::StringConstant(..) => self.expr(lhs)?,
            _ => return None,
        };
        self.method(receiver, rhs)
    }

    /// A method call (or getter) on a compiled receiver.
    fn method(&mut self, receiver: (Node, Ty), rhs: &Expr) -> Option<(Node, Ty)> {
        self.nodes += 1;
        match rhs {
            Expr::MethodCall(call, _) if !call.capture_parent_scope => {
                self.builtin(call.name.as_str(), receiver, &call.args)
            }
            // The getters Rhai registers for strings and arrays.
            Expr::Property(prop, _) if matches!(prop.2.as_str(), "len" | "is_empty") => {
                self.builtin(prop.2.as_str(), receiver, &[])
            }
            _ => None,
        }
    }

    /// `name(receiver, args..)` for the string and watchlist functions of the subset. The
    /// receiver must be one that can't fail: in a method chain Rhai evaluates the arguments
    /// first, in a function call the receiver; with a receiver that can't fail, the order
    /// can't change the outcome.
    fn builtin(
        &mut self,
        name: &str,
        (receiver, ty): (Node, Ty),
        args: &[Expr],
    ) -> Option<(Node, Ty)> {
        if !matches!(
            receiver,
            Node::Field(_) | Node::Local(_) | Node::Const(Const::Str(_))
        ) {
            return None;
        }
        if ty == WATCH {
            self.watchlist_sensitive = true;
            return match (name, args) {
                ("len", []) => Some((Node::WatchlistsLen, INT)),
                ("is_empty", []) => Some((Node::WatchlistsIsEmpty, BOOL)),
                ("contains", [needle]) => {
                    let (needle, t) = self.value(needle)?;
                    (t == STR).then(|| (in_watchlists(needle), BOOL))
                }
                _ => None,
            };
        }
        // Only a receiver that is always a string: anything else resolves to other functions.
        if ty != STR {
            return None;
        }
        self.text_sensitive = true;
        match (name, args) {
            ("len", []) => Some((Node::StrLen(Box::new(receiver)), INT)),
            ("is_empty", []) => Some((Node::StrIsEmpty(Box::new(receiver)), BOOL)),
            (_, [arg]) => {
                let test = StrTest::from_name(name)?;
                let (arg, t) = self.value(arg)?;
                if t != STR {
                    return None;
                }
                let node = match (&receiver, arg) {
                    (Node::Field(field), Node::Const(Const::Str(literal))) => {
                        Node::Test(Pred::StrTest {
                            test,
                            index: field.str_index()?,
                            negate: false,
                            literal,
                        })
                    }
                    (_, arg) => Node::StrTest(test, Box::new((receiver, arg))),
                };
                Some((node, BOOL))
            }
            _ => None,
        }
    }

    fn call(&mut self, call: &FnCallExpr) -> Option<(Node, Ty)> {
        if call.capture_parent_scope {
            return None;
        }
        let name = call.name.as_str();
        let args = &call.args;
        // `needle in tx.watchlists` is `contains(tx.watchlists, needle)`.
        if name == "contains" && args.len() == 2 {
            let list = self.expr(args.first()?)?;
            if !matches!(list.0, Node::Field(Field::Watchlists)) {
                // `s in text`, `contains(text, s)`.
                return self.builtin(name, list, args.get(1..)?);
            }
            let (needle, ty) = self.value(args.get(1)?)?;
            return (ty & !STR == 0).then(|| (in_watchlists(needle), BOOL));
        }
        // The function form of the string and watchlist methods: `len(tx.referral)`.
        if call.op_token.is_none()
            && matches!(name, "len" | "is_empty" | "starts_with" | "ends_with")
        {
            let (first, rest) = args.split_first()?;
            let receiver = self.expr(first)?;
            return self.builtin(name, receiver, rest);
        }
        // Operators only: a call by name may resolve differently.
        call.op_token.as_ref()?;
        match args.len() {
            1 => {
                let op = match name {
                    "-" => UnOp::Neg,
                    "+" => UnOp::Plus,
                    "!" => UnOp::Not,
                    _ => return None,
                };
                let (arg, ty) = self.value(args.first()?)?;
                if matches!(arg, Node::Local(_)) && ty & STR != 0 {
                    self.text_sensitive = true;
                }
                let out = match op {
                    UnOp::Not => BOOL,
                    _ => ty & (INT | FLOAT),
                };
                if let (UnOp::Not, Node::Test(p)) = (op, &arg) {
                    return Some((Node::Test(p.clone().negate()), BOOL));
                }
                Some((Node::Unary(op, Box::new(arg)), out))
            }
            2 => {
                let op = BinOp::from_name(name)?;
                let (lhs, t1) = self.value(args.first()?)?;
                let (rhs, t2) = self.value(args.get(1)?)?;
                if matches!(lhs, Node::Local(_)) && t1 & STR != 0 {
                    self.text_sensitive = true;
                }
                // String concatenation and removal allocate: the interpreter does them.
                if op == BinOp::Add && (t1 | t2) & STR != 0 {
                    return None;
                }
                if op == BinOp::Sub && t1 & t2 & STR != 0 {
                    return None;
                }
                if op.is_comparison() {
                    let literal = |n: &Node| matches!(n, Node::Const(_));
                    if t1 & t2 & STR != 0 && !literal(&lhs) && !literal(&rhs) {
                        self.text_sensitive = true;
                    }
                    let node = match (lhs, rhs) {
                        (Node::Field(field), Node::Const(literal)) => {
                            Node::Test(pred::compare(op, field, literal, true))
                        }
                        (Node::Const(literal), Node::Field(field)) => {
                            Node::Test(pred::compare(op, field, literal, false))
                        }
                        (lhs, rhs) => Node::Binary(op, Box::new((lhs, rhs))),
                    };
                    return Some((node, BOOL));
                }
                Some((Node::Binary(op, Box::new((lhs, rhs))), INT | FLOAT))
            }
            _ => None,
        }
    }
}

/// A node as a predicate, when it is one.
fn as_pred(node: &Node) -> Option<Pred> {
    match node {
        Node::Test(p) => Some(p.clone()),
        Node::Const(Const::Bool(b)) => Some(Pred::Const(*b)),
        _ => None,
    }
}

/// `needle in tx.watchlists`: a predicate for a literal needle.
fn in_watchlists(needle: Node) -> Node {
    match needle {
        Node::Const(Const::Str(list)) => Node::Test(Pred::InList {
            negate: false,
            list,
        }),
        needle => Node::InWatchlists(Box::new(needle)),
    }
}

type Eval<'a> = Result<Val<'a>, Stop<'a>>;

fn eval<'a>(node: &'a Node, tx: &TxView<'a>, locals: &mut [Val<'a>]) -> Eval<'a> {
    match node {
        Node::Const(c) => Ok(c.val()),
        Node::Field(field) => Ok(field.read(tx)),
        Node::NoProperty(name) => Err(Fault::NoProperty(name).into()),
        Node::Local(slot) => Ok(locals.get(usize::from(*slot)).copied().unwrap_or(Val::Unit)),
        Node::Let(slot, init) => {
            let value = eval(init, tx, locals)?;
            if let Some(local) = locals.get_mut(usize::from(*slot)) {
                *local = value;
            }
            Ok(Val::Unit)
        }
        Node::Unary(op, arg) => {
            let value = eval(arg, tx, locals)?;
            unary(*op, value).map_err(Stop::from)
        }
        Node::Binary(op, args) => {
            let lhs = eval(&args.0, tx, locals)?;
            let rhs = eval(&args.1, tx, locals)?;
            binary(*op, lhs, rhs).map_err(Stop::from)
        }
        Node::Test(p) => Ok(Val::Bool(p.test(tx))),
        Node::Select(select) => Ok(select_value(select, tx)),
        Node::And(_) | Node::Or(_) => eval_bool(node, tx, locals).map(Val::Bool),
        Node::InWatchlists(needle) => match eval(needle, tx, locals)? {
            Val::Str(s) => Ok(Val::Bool(tx.watchlists.contains(s))),
            // Compiled only for string needles; a string never equals another type.
            _ => Ok(Val::Bool(false)),
        },
        Node::StrTest(test, args) => {
            let s = eval(&args.1, tx, locals)?;
            let text = eval(&args.0, tx, locals)?;
            match (text, s) {
                (Val::Str(text), Val::Str(s)) => Ok(Val::Bool(test.apply(text, s))),
                // Compiled only for strings.
                (text, s) => {
                    Err(
                        Fault::NoFunction(test.name(), text.type_name(), Some(s.type_name()))
                            .into(),
                    )
                }
            }
        }
        Node::StrLen(text) => match eval(text, tx, locals)? {
            Val::Str(s) => Ok(Val::Int(char_count(s))),
            other => Err(Fault::NoFunction("len", other.type_name(), None).into()),
        },
        Node::StrIsEmpty(text) => match eval(text, tx, locals)? {
            Val::Str(s) => Ok(Val::Bool(s.is_empty())),
            other => Err(Fault::NoFunction("is_empty", other.type_name(), None).into()),
        },
        Node::WatchlistsLen => Ok(Val::Int(
            i64::try_from(tx.watchlists.len()).unwrap_or(i64::MAX),
        )),
        Node::WatchlistsIsEmpty => Ok(Val::Bool(tx.watchlists.len() == 0)),
        Node::If(parts) => {
            let (cond, then, otherwise) = &**parts;
            if eval_bool(cond, tx, locals)? {
                eval(then, tx, locals)
            } else {
                eval(otherwise, tx, locals)
            }
        }
        Node::Block(stmts) => {
            let mut value = Val::Unit;
            for s in stmts.iter() {
                value = eval(s, tx, locals)?;
            }
            Ok(value)
        }
        Node::Return(value) => Err(Stop::Return(eval(value, tx, locals)?)),
    }
}

/// Evaluates a condition (`&&`, `||`, `if`): a non-bool value is an error, as in Rhai.
fn eval_bool<'a>(
    node: &'a Node,
    tx: &TxView<'a>,
    locals: &mut [Val<'a>],
) -> Result<bool, Stop<'a>> {
    match node {
        Node::Test(p) => Ok(p.test(tx)),
        Node::And(list) => {
            for e in list.iter() {
                if !eval_bool(e, tx, locals)? {
                    return Ok(false);
                }
            }
            Ok(true)
        }
        Node::Or(list) => {
            for e in list.iter() {
                if eval_bool(e, tx, locals)? {
                    return Ok(true);
                }
            }
            Ok(false)
        }
        Node::Const(Const::Bool(b)) => Ok(*b),
        // `!x` on a non-bool is an error, as is a non-bool condition: same outcome.
        Node::Unary(UnOp::Not, arg) => eval_bool(arg, tx, locals).map(|b| !b),
        other => truth(eval(other, tx, locals)?),
    }
}

/// Rhai's `len` of a string: its characters.
fn char_count(s: &str) -> i64 {
    if s.is_ascii() {
        i64::try_from(s.len()).unwrap_or(i64::MAX)
    } else {
        i64::try_from(s.chars().count()).unwrap_or(i64::MAX)
    }
}

#[inline]
fn truth<'a>(v: Val<'a>) -> Result<bool, Stop<'a>> {
    match v {
        Val::Bool(b) => Ok(b),
        other => Err(Fault::NotBool(other.type_name()).into()),
    }
}

fn unary(op: UnOp, v: Val<'_>) -> Result<Val<'_>, Fault<'_>> {
    match (op, v) {
        (UnOp::Neg, Val::Int(n)) => n.checked_neg().map(Val::Int).ok_or(Fault::NegationOverflow),
        (UnOp::Neg, Val::Float(x)) => Ok(Val::Float(-x)),
        (UnOp::Plus, Val::Int(_) | Val::Float(_)) => Ok(v),
        (UnOp::Not, Val::Bool(b)) => Ok(Val::Bool(!b)),
        (op, v) => {
            let symbol = match op {
                UnOp::Neg => "-",
                UnOp::Plus => "+",
                UnOp::Not => "!",
            };
            Err(Fault::NoFunction(symbol, v.type_name(), None))
        }
    }
}

fn binary<'a>(op: BinOp, a: Val<'a>, b: Val<'a>) -> Result<Val<'a>, Fault<'a>> {
    if op.is_comparison() {
        return Ok(Val::Bool(compare(op, a, b)));
    }
    match (a, b) {
        (Val::Int(x), Val::Int(y)) => int_arith(op, x, y).map(Val::Int),
        (Val::Float(x), Val::Float(y)) => Ok(Val::Float(float_arith(op, x, y))),
        (Val::Int(x), Val::Float(y)) => Ok(Val::Float(float_arith(op, x as f64, y))),
        (Val::Float(x), Val::Int(y)) => Ok(Val::Float(float_arith(op, x, y as f64))),
        _ => Err(Fault::NoFunction(
            op.symbol(),
            a.type_name(),
            Some(b.type_name()),
        )),
    }
}

fn int_arith(op: BinOp, x: i64, y: i64) -> Result<i64, Fault<'static>> {
    let overflow = |what| Fault::Overflow(what, op.symbol(), x, y);
    match op {
        BinOp::Add => x
            .checked_add(y)
            .ok_or_else(|| overflow("Addition overflow")),
        BinOp::Sub => x
            .checked_sub(y)
            .ok_or_else(|| overflow("Subtraction overflow")),
        BinOp::Mul => x
            .checked_mul(y)
            .ok_or_else(|| overflow("Multiplication overflow")),
        BinOp::Div if y == 0 => Err(Fault::DivisionByZero(x, y)),
        BinOp::Div => x
            .checked_div(y)
            .ok_or_else(|| overflow("Division overflow")),
        BinOp::Rem => x
            .checked_rem(y)
            .ok_or_else(|| overflow("Modulo division by zero or overflow")),
        _ => Err(Fault::NoFunction(op.symbol(), "i64", Some("i64"))),
    }
}

fn float_arith(op: BinOp, x: f64, y: f64) -> f64 {
    match op {
        BinOp::Add => x + y,
        BinOp::Sub => x - y,
        BinOp::Mul => x * y,
        BinOp::Div => x / y,
        _ => x % y,
    }
}

/// The sandbox's comparison operators: exact for integers, booleans, strings and `()`; IEEE
/// for floats and int/float pairs; different non-numeric types compare unequal and unordered.
#[inline]
fn compare(op: BinOp, a: Val<'_>, b: Val<'_>) -> bool {
    match (a, b) {
        (Val::Int(x), Val::Int(y)) => ordered(op, x.cmp(&y)),
        (Val::Float(x), Val::Float(y)) => float_compare(op, x, y),
        (Val::Int(x), Val::Float(y)) => float_compare(op, x as f64, y),
        (Val::Float(x), Val::Int(y)) => float_compare(op, x, y as f64),
        (Val::Bool(x), Val::Bool(y)) => ordered(op, x.cmp(&y)),
        (Val::Str(x), Val::Str(y)) => ordered(op, x.cmp(y)),
        (Val::Unit, Val::Unit) => op == BinOp::Eq,
        _ => op == BinOp::Ne,
    }
}

#[inline]
fn ordered(op: BinOp, ord: std::cmp::Ordering) -> bool {
    use std::cmp::Ordering::{Equal, Greater, Less};
    match op {
        BinOp::Lt => ord == Less,
        BinOp::Le => ord != Greater,
        BinOp::Gt => ord == Greater,
        BinOp::Ge => ord != Less,
        BinOp::Eq => ord == Equal,
        _ => ord != Equal,
    }
}

/// Float comparisons (and int/float pairs, as floats): exact IEEE, as the sandbox registers
/// them in place of Rhai's built-in relative tolerance (`inf > 72.0` is true, NaN compares
/// false but for `!=`).
fn float_compare(op: BinOp, x: f64, y: f64) -> bool {
    match op {
        BinOp::Eq => x == y,
        BinOp::Ne => x != y,
        BinOp::Gt => x > y,
        BinOp::Ge => x >= y,
        BinOp::Lt => x < y,
        _ => x <= y,
    }
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
        let params = super::params::reads_params(&ast)
            .then(|| rhai::Dynamic::from_map(params.to_map()));
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

    #[test]
    fn float_comparisons_are_exact() {
        assert!(float_compare(BinOp::Eq, f64::INFINITY, f64::INFINITY));
        assert!(float_compare(BinOp::Gt, f64::INFINITY, 24.0));
        assert!(float_compare(BinOp::Lt, 1.0, 1.0 + f64::EPSILON));
        assert!(float_compare(BinOp::Ne, f64::NAN, f64::NAN));
        assert!(!float_compare(BinOp::Le, f64::NAN, 1.0));
    }
}
