//! From Rhai's AST to the fast path's tree: what stays within the subset, with static types.

use rhai::{ASTFlags, Expr, FnCallExpr, Stmt, AST};

use super::*;
use crate::rules::params::{ParamValue, Params};

/// An `if`/`else if` chain over predicates whose branches are all literals, as its arms and
/// its final `else` (`()` when there is none). A branch may itself be such a chain (`if p {
/// if q { 1 } else { 2 } } else { 3 }`): its arms are the outer predicate and each of its own
/// (`p && q`), then the outer predicate alone for its `else` (predicates can't fail and have
/// no effects, so testing one again changes nothing but time).
pub(super) fn as_select(node: &Node) -> Option<(Vec<(Pred, Const)>, Const)> {
    match node {
        Node::If(_) => chain(node),
        _ => None,
    }
}

/// [`as_select`] of a branch: a literal, an empty block, a select or an `if` chain.
fn chain(node: &Node) -> Option<(Vec<(Pred, Const)>, Const)> {
    match node {
        Node::Const(k) => Some((Vec::new(), k.clone())),
        Node::Block(stmts) if stmts.is_empty() => Some((Vec::new(), Const::Unit)),
        Node::Select(select) => Some((select.0.to_vec(), select.1.clone())),
        Node::If(parts) => {
            let (Node::Test(p), then, otherwise) = &**parts else {
                return None;
            };
            let (inner, inner_last) = chain(then)?;
            let (rest, last) = chain(otherwise)?;
            let mut arms: Vec<(Pred, Const)> =
                inner.into_iter().map(|(q, k)| (both(p, &q), k)).collect();
            arms.push((p.clone(), inner_last));
            arms.extend(rest);
            Some((arms, last))
        }
        _ => None,
    }
}

/// `p && q` as one predicate (the lists of `&&`s joined).
fn both(p: &Pred, q: &Pred) -> Pred {
    let mut list = Vec::new();
    for x in [p, q] {
        match x {
            Pred::And(items) => list.extend(items.iter().cloned()),
            other => list.push(other.clone()),
        }
    }
    Pred::And(list.into_boxed_slice())
}

/// An `if` as a [`Node::Select`] when it is one (see [`as_select`]).
fn select_or_if(node: Node) -> Node {
    match as_select(&node) {
        Some((arms, otherwise)) => Node::Select(Box::new((arms.into_boxed_slice(), otherwise))),
        None => node,
    }
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
    let body = select_or_if(body);
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

/// What a local's name stands for.
#[derive(Clone)]
enum Binding {
    /// A slot of the evaluation's locals, set by its `let`.
    Slot(u8),
    /// A value that can't fail, has no effects and can't change (`tx` is constant and the
    /// subset has no assignment): a number or boolean field, a non-string literal, a
    /// predicate. Uses read (or test) it in place, so that comparisons with it become
    /// predicates (`let usual = tx.median_amount_usd_90d; tx.amount_usd >= 2.0 * usual`).
    Inline(Node),
}

#[derive(Default)]
pub(super) struct Compiler {
    /// Names in scope, innermost last: (name, binding, type).
    locals: Vec<(String, Binding, Ty)>,
    /// Locals declared so far (the subset allows [`MAX_LOCALS`], inlined or not).
    declared: usize,
    /// Slots used (locals that are not inlined).
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
    pub(super) fn block(&mut self, stmts: &[Stmt]) -> Option<(Node, Ty)> {
        let mark = self.locals.len();
        let mut nodes = Vec::with_capacity(stmts.len());
        let mut ty = UNIT;
        for (i, stmt) in stmts.iter().enumerate() {
            let (node, t) = self.stmt(stmt)?;
            // A literal statement before the last one (e.g. an inlined `let`) does nothing.
            if i + 1 == stmts.len() || !matches!(node, Node::Const(_)) {
                nodes.push(node);
            }
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

    pub(super) fn stmt(&mut self, stmt: &Stmt) -> Option<(Node, Ty)> {
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
                let node = select_or_if(Node::If(Box::new((cond, then, otherwise))));
                Some((node, t1 | t2))
            }
            Stmt::Var(var, _flags, _) => {
                let (ident, init, _) = &**var;
                let (init, ty) = self.value(init)?;
                if self.declared >= MAX_LOCALS {
                    return None;
                }
                self.declared += 1;
                let name = ident.name.to_string();
                if inlinable(&init) {
                    self.locals.push((name, Binding::Inline(init), ty));
                    return Some((Node::Const(Const::Unit), UNIT));
                }
                let slot = u8::try_from(self.next_slot).ok()?;
                self.next_slot += 1;
                self.locals.push((name, Binding::Slot(slot), ty));
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
    pub(super) fn value(&mut self, e: &Expr) -> Option<(Node, Ty)> {
        let (node, ty) = self.expr(e)?;
        (ty & WATCH == 0).then_some((node, ty))
    }

    pub(super) fn expr(&mut self, e: &Expr) -> Option<(Node, Ty)> {
        self.nodes += 1;
        match e {
            Expr::Unit(_) => Some((Node::Const(Const::Unit), UNIT)),
            Expr::BoolConstant(b, _) => Some((Node::Const(Const::Bool(*b)), BOOL)),
            Expr::IntegerConstant(n, _) => Some((Node::Const(Const::Int(*n)), INT)),
            Expr::FloatConstant(x, _) => Some((Node::Const(Const::Float(**x)), FLOAT)),
            Expr::StringConstant(s, _) => Some((Node::Const(Const::Str(s.as_str().into())), STR)),
            Expr::Variable(var, _, _) => {
                let name = var.1.as_str();
                let (_, binding, ty) = self.locals.iter().rev().find(|(n, _, _)| n == name)?;
                let node = match binding {
                    Binding::Slot(slot) => Node::Local(*slot),
                    Binding::Inline(node) => node.clone(),
                };
                Some((node, *ty))
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

    pub(super) fn is_local(&self, name: &str) -> bool {
        self.locals.iter().any(|(n, _, _)| n == name)
    }

    /// `tx.<name>`: a field, or an error when evaluated.
    pub(super) fn field(name: &str) -> (Node, Ty) {
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
    pub(super) fn dot(&mut self, lhs: &Expr, rhs: &Expr) -> Option<(Node, Ty)> {
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
    pub(super) fn method(&mut self, receiver: (Node, Ty), rhs: &Expr) -> Option<(Node, Ty)> {
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
    pub(super) fn builtin(
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

    pub(super) fn call(&mut self, call: &FnCallExpr) -> Option<(Node, Ty)> {
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
                        (Node::Field(a), Node::Field(b)) => {
                            Node::Test(Pred::Fields(Box::new((op, a, b))))
                        }
                        (lhs, rhs) => match pred::scaled(op, &lhs, &rhs) {
                            Some(p) => Node::Test(p),
                            None => Node::Binary(op, Box::new((lhs, rhs))),
                        },
                    };
                    return Some((node, BOOL));
                }
                Some((Node::Binary(op, Box::new((lhs, rhs))), INT | FLOAT))
            }
            _ => None,
        }
    }
}

/// Whether a `let` of this value is inlined (see [`Binding::Inline`]). Strings are not: the
/// interpreter checks a string local against `max_string_size` where it is used. A predicate
/// is (`let big = usual > 0.0 && tx.amount_usd >= 3.0 * usual`): it can't fail and has no
/// effects, so testing it where it is used gives the same value, and the conditions using it
/// become predicates themselves (a rule of `if` chains over them, a [`Node::Select`]).
fn inlinable(init: &Node) -> bool {
    match init {
        Node::Field(field) => field.ty() & (INT | FLOAT | BOOL) != 0,
        Node::Test(_) => true,
        Node::Const(c) => !matches!(c, Const::Str(_)),
        _ => false,
    }
}

/// A node as a predicate, when it is one.
pub(super) fn as_pred(node: &Node) -> Option<Pred> {
    match node {
        Node::Test(p) => Some(p.clone()),
        Node::Const(Const::Bool(b)) => Some(Pred::Const(*b)),
        _ => None,
    }
}

/// `needle in tx.watchlists`: a predicate for a literal needle.
pub(super) fn in_watchlists(needle: Node) -> Node {
    match needle {
        Node::Const(Const::Str(list)) => Node::Test(Pred::InList {
            negate: false,
            list,
        }),
        needle => Node::InWatchlists(Box::new(needle)),
    }
}
