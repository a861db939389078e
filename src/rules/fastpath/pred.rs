//! Predicates: the boolean leaves and trees of a rule that can't fail (comparisons of `tx`
//! fields with literals, watchlist membership, string tests, `&&`/`||`/`!` over them). Most
//! rules are one predicate; evaluating it needs no `Result`, no locals and one `match` per
//! node, with the comparison operator folded into the variant.

use super::{BinOp, Const, Field, Node, StrTest, Val};
use crate::rules::tx::TxView;

/// A boolean expression that can't fail, over a [`TxView`].
#[derive(Clone, Debug)]
pub(super) enum Pred {
    Const(bool),
    /// `tx.is_new_address` (`true`) or its negation (`false`).
    IsNew(bool),
    // An integer field (index into `TxView::ints`) against an integer literal.
    IntLt(u8, i64),
    IntLe(u8, i64),
    IntGt(u8, i64),
    IntGe(u8, i64),
    IntEq(u8, i64),
    IntNe(u8, i64),
    // A float field (index into `TxView::floats`) against a number literal: exact IEEE.
    FloatLt(u8, f64),
    FloatLe(u8, f64),
    FloatGt(u8, f64),
    FloatGe(u8, f64),
    FloatEq(u8, f64),
    FloatNe(u8, f64),
    /// A string field (index into `TxView::strs`) equal to a literal (`!=` when `negate`).
    StrEq {
        index: u8,
        negate: bool,
        literal: Box<str>,
    },
    /// Any other comparison of a field with a literal (`literal <op> field` when not
    /// `field_left`): never fails, whatever the types.
    Compare(Box<Compare>),
    /// Two fields compared (`tx.dest_users_24h == tx.dest_users_30d`): never fails.
    Fields(Box<(BinOp, Field, Field)>),
    /// A number field compared with a literal times a number field, as floats
    /// (`tx.amount_usd >= 2.5 * tx.median_amount_usd_90d`): never fails.
    Scaled(Box<Scaled>),
    /// `"pack/list" in tx.watchlists` (`!in` when `negate`).
    InList {
        negate: bool,
        list: Box<str>,
    },
    /// `tx.<string field>.starts_with("..")` and the like (negated when `negate`).
    StrTest {
        test: StrTest,
        index: u8,
        negate: bool,
        literal: Box<str>,
    },
    Not(Box<Pred>),
    And(Box<[Pred]>),
    Or(Box<[Pred]>),
}

/// A comparison of a field with a literal, in general.
#[derive(Clone, Debug)]
pub(super) struct Compare {
    pub(super) op: BinOp,
    pub(super) field: Field,
    pub(super) literal: Const,
    pub(super) field_left: bool,
}

/// `field <op> k * of` (`k * of <op> field` when not `field_left`). The product is a float
/// (`k` a float, or `of` a float field), so it cannot overflow; float multiplication is
/// commutative, so `k * of` and `of * k` are the same value.
#[derive(Clone, Debug)]
pub(super) struct Scaled {
    pub(super) op: BinOp,
    pub(super) field: Field,
    pub(super) k: f64,
    pub(super) of: Field,
    pub(super) field_left: bool,
}

impl Scaled {
    #[inline]
    fn test(&self, tx: &TxView<'_>) -> bool {
        let of = match self.of.read(tx) {
            Val::Int(n) => n as f64,
            Val::Float(x) => x,
            // Never compiled (`scaled` takes number fields only).
            _ => f64::NAN,
        };
        let product = Val::Float(self.k * of);
        let field = self.field.read(tx);
        if self.field_left {
            super::compare(self.op, field, product)
        } else {
            super::compare(self.op, product, field)
        }
    }
}

/// `lhs <op> rhs` as a [`Pred::Scaled`], when one side is a number field and the other a
/// number literal times a number field with a float product.
pub(super) fn scaled(op: BinOp, lhs: &Node, rhs: &Node) -> Option<Pred> {
    let number = |f: &Field| f.int_index().is_some() || f.float_index().is_some();
    let (field, product, field_left) = match (lhs, rhs) {
        (Node::Field(f), Node::Binary(BinOp::Mul, product)) => (f, product, true),
        (Node::Binary(BinOp::Mul, product), Node::Field(f)) => (f, product, false),
        _ => return None,
    };
    let (k, of) = match &**product {
        (Node::Const(k), Node::Field(of)) | (Node::Field(of), Node::Const(k)) => (k, of),
        _ => return None,
    };
    let k = match k {
        // An integer times an integer field is integer arithmetic (which can overflow).
        Const::Int(n) if of.float_index().is_some() => *n as f64,
        Const::Float(x) => *x,
        _ => return None,
    };
    (number(field) && number(of)).then(|| {
        Pred::Scaled(Box::new(Scaled {
            op,
            field: *field,
            k,
            of: *of,
            field_left,
        }))
    })
}

impl Pred {
    /// Evaluates the predicate.
    pub(super) fn test(&self, tx: &TxView<'_>) -> bool {
        match self {
            Pred::Not(p) => !p.test(tx),
            Pred::And(list) => list.iter().all(|p| p.test_leaf(tx)),
            Pred::Or(list) => list.iter().any(|p| p.test_leaf(tx)),
            leaf => leaf.test_leaf(tx),
        }
    }

    /// Evaluates a leaf in place (no call per leaf of an `&&`/`||` list); a compound
    /// predicate goes back to [`Pred::test`].
    #[inline(always)]
    fn test_leaf(&self, tx: &TxView<'_>) -> bool {
        let int = |i: &u8| tx.ints.get(usize::from(*i)).copied().unwrap_or_default();
        let float = |i: &u8| tx.floats.get(usize::from(*i)).copied().unwrap_or_default();
        match self {
            Pred::Const(b) => *b,
            Pred::IsNew(b) => tx.features.is_new_address == *b,
            Pred::IntLt(i, k) => int(i) < *k,
            Pred::IntLe(i, k) => int(i) <= *k,
            Pred::IntGt(i, k) => int(i) > *k,
            Pred::IntGe(i, k) => int(i) >= *k,
            Pred::IntEq(i, k) => int(i) == *k,
            Pred::IntNe(i, k) => int(i) != *k,
            Pred::FloatLt(i, k) => float(i) < *k,
            Pred::FloatLe(i, k) => float(i) <= *k,
            Pred::FloatGt(i, k) => float(i) > *k,
            Pred::FloatGe(i, k) => float(i) >= *k,
            Pred::FloatEq(i, k) => float(i) == *k,
            Pred::FloatNe(i, k) => float(i) != *k,
            Pred::StrEq {
                index,
                negate,
                literal,
            } => (tx.text(*index) == &**literal) != *negate,
            Pred::Compare(c) => {
                let (f, k) = (c.field.read(tx), c.literal.val());
                if c.field_left {
                    super::compare(c.op, f, k)
                } else {
                    super::compare(c.op, k, f)
                }
            }
            Pred::Fields(c) => {
                let (op, a, b) = **c;
                super::compare(op, a.read(tx), b.read(tx))
            }
            Pred::Scaled(s) => s.test(tx),
            Pred::InList { negate, list } => tx.watchlists.contains(list) != *negate,
            Pred::StrTest {
                test,
                index,
                negate,
                literal,
            } => test.apply(tx.text(*index), literal) != *negate,
            Pred::Not(_) | Pred::And(_) | Pred::Or(_) => self.test(tx),
        }
    }

    /// `!self`, folded into the leaf where it can be.
    pub(super) fn negate(self) -> Pred {
        match self {
            Pred::Const(b) => Pred::Const(!b),
            Pred::IsNew(b) => Pred::IsNew(!b),
            Pred::StrEq {
                index,
                negate,
                literal,
            } => Pred::StrEq {
                index,
                negate: !negate,
                literal,
            },
            Pred::InList { negate, list } => Pred::InList {
                negate: !negate,
                list,
            },
            Pred::StrTest {
                test,
                index,
                negate,
                literal,
            } => Pred::StrTest {
                test,
                index,
                negate: !negate,
                literal,
            },
            Pred::Not(p) => *p,
            // Not `x < k` into `x >= k`: NaN makes both false.
            other => Pred::Not(Box::new(other)),
        }
    }
}

/// `field <op> literal` (or `literal <op> field` when not `field_left`) as a predicate.
pub(super) fn compare(op: BinOp, field: Field, literal: Const, field_left: bool) -> Pred {
    use BinOp::{Eq, Ge, Gt, Le, Lt, Ne};
    // `k < x` is `x > k`, exactly, for integers and IEEE floats alike.
    let mirrored = if field_left {
        op
    } else {
        match op {
            Lt => Gt,
            Le => Ge,
            Gt => Lt,
            Ge => Le,
            other => other,
        }
    };
    let float_pred = |i: u8, k: f64| match mirrored {
        Lt => Pred::FloatLt(i, k),
        Le => Pred::FloatLe(i, k),
        Gt => Pred::FloatGt(i, k),
        Ge => Pred::FloatGe(i, k),
        Eq => Pred::FloatEq(i, k),
        _ => Pred::FloatNe(i, k),
    };
    match (
        field.int_index(),
        field.float_index(),
        field.str_index(),
        &literal,
    ) {
        (Some(i), _, _, Const::Int(k)) => match mirrored {
            Lt => Pred::IntLt(i, *k),
            Le => Pred::IntLe(i, *k),
            Gt => Pred::IntGt(i, *k),
            Ge => Pred::IntGe(i, *k),
            Eq => Pred::IntEq(i, *k),
            _ => Pred::IntNe(i, *k),
        },
        // An integer field against a float literal compares as floats (exact IEEE).
        (Some(_), _, _, Const::Float(_)) => Pred::Compare(Box::new(Compare {
            op,
            field,
            literal,
            field_left,
        })),
        (_, Some(i), _, Const::Int(k)) => float_pred(i, *k as f64),
        (_, Some(i), _, Const::Float(k)) => float_pred(i, *k),
        (_, _, Some(index), Const::Str(k)) if matches!(op, Eq | Ne) => Pred::StrEq {
            index,
            negate: op == Ne,
            literal: k.clone(),
        },
        _ => Pred::Compare(Box::new(Compare {
            op,
            field,
            literal,
            field_left,
        })),
    }
}
