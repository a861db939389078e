//! Evaluation of the fast path's tree over a [`TxView`], operator by operator as Rhai does it.

use super::*;

pub(super) type Eval<'a> = Result<Val<'a>, Stop<'a>>;

pub(super) fn eval<'a>(node: &'a Node, tx: &TxView<'a>, locals: &mut [Val<'a>]) -> Eval<'a> {
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
            // Fields, literals and locals (most operands of arithmetic) read in place.
            let lhs = match in_place(&args.0, tx, locals) {
                Some(v) => v,
                None => eval(&args.0, tx, locals)?,
            };
            let rhs = match in_place(&args.1, tx, locals) {
                Some(v) => v,
                None => eval(&args.1, tx, locals)?,
            };
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
            // A predicate condition and a literal or local arm without a call of their own.
            let taken = if test(cond, tx, locals)? {
                then
            } else {
                otherwise
            };
            match in_place(taken, tx, locals) {
                Some(v) => Ok(v),
                None => eval(taken, tx, locals),
            }
        }
        Node::Block(stmts) => {
            let mut value = Val::Unit;
            for s in stmts.iter() {
                // A `let` (most statements before the last) without a call of its own.
                value = match s {
                    Node::Let(slot, init) => {
                        let init = match &**init {
                            Node::Select(select) => select_value(select, tx),
                            other => eval(other, tx, locals)?,
                        };
                        if let Some(local) = locals.get_mut(usize::from(*slot)) {
                            *local = init;
                        }
                        Val::Unit
                    }
                    other => eval(other, tx, locals)?,
                };
            }
            Ok(value)
        }
        Node::Return(value) => Err(Stop::Return(eval(value, tx, locals)?)),
    }
}

/// Evaluates a condition (`&&`, `||`, `if`): a non-bool value is an error, as in Rhai.
pub(super) fn eval_bool<'a>(
    node: &'a Node,
    tx: &TxView<'a>,
    locals: &mut [Val<'a>],
) -> Result<bool, Stop<'a>> {
    match node {
        Node::Test(p) => Ok(p.test(tx)),
        Node::And(list) => {
            for e in list.iter() {
                if !test(e, tx, locals)? {
                    return Ok(false);
                }
            }
            Ok(true)
        }
        Node::Or(list) => {
            for e in list.iter() {
                if test(e, tx, locals)? {
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

/// [`eval_bool`], a predicate tested without a call of its own.
#[inline(always)]
fn test<'a>(node: &'a Node, tx: &TxView<'a>, locals: &mut [Val<'a>]) -> Result<bool, Stop<'a>> {
    match node {
        Node::Test(p) => Ok(p.test(tx)),
        other => eval_bool(other, tx, locals),
    }
}

/// What [`eval`] gives for a literal, a field or a local (which can't fail), read in place;
/// `None` for any other node.
#[inline(always)]
fn in_place<'a>(node: &'a Node, tx: &TxView<'a>, locals: &[Val<'a>]) -> Option<Val<'a>> {
    match node {
        Node::Const(c) => Some(c.val()),
        Node::Field(field) => Some(field.read(tx)),
        Node::Local(slot) => Some(locals.get(usize::from(*slot)).copied().unwrap_or(Val::Unit)),
        _ => None,
    }
}

/// Rhai's `len` of a string: its characters.
pub(super) fn char_count(s: &str) -> i64 {
    if s.is_ascii() {
        i64::try_from(s.len()).unwrap_or(i64::MAX)
    } else {
        i64::try_from(s.chars().count()).unwrap_or(i64::MAX)
    }
}

#[inline]
pub(super) fn truth<'a>(v: Val<'a>) -> Result<bool, Stop<'a>> {
    match v {
        Val::Bool(b) => Ok(b),
        other => Err(Fault::NotBool(other.type_name()).into()),
    }
}

pub(super) fn unary(op: UnOp, v: Val<'_>) -> Result<Val<'_>, Fault<'_>> {
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

pub(super) fn binary<'a>(op: BinOp, a: Val<'a>, b: Val<'a>) -> Result<Val<'a>, Fault<'a>> {
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

pub(super) fn int_arith(op: BinOp, x: i64, y: i64) -> Result<i64, Fault<'static>> {
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

pub(super) fn float_arith(op: BinOp, x: f64, y: f64) -> f64 {
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
pub(super) fn compare(op: BinOp, a: Val<'_>, b: Val<'_>) -> bool {
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
pub(super) fn ordered(op: BinOp, ord: std::cmp::Ordering) -> bool {
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
pub(super) fn float_compare(op: BinOp, x: f64, y: f64) -> bool {
    match op {
        BinOp::Eq => x == y,
        BinOp::Ne => x != y,
        BinOp::Gt => x > y,
        BinOp::Ge => x >= y,
        BinOp::Lt => x < y,
        _ => x <= y,
    }
}
