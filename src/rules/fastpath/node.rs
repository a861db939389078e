//! The fast path's typed tree: value types, `tx` fields, values, literals, operators and the
//! nodes a rule compiles to, with the faults an evaluation may stop on.

use super::*;

// Static type sets: which kinds of value an expression can produce (0: it always errors).
pub(super) type Ty = u8;
pub(super) const UNIT: Ty = 1;
pub(super) const BOOL: Ty = 2;
pub(super) const INT: Ty = 4;
pub(super) const FLOAT: Ty = 8;
pub(super) const STR: Ty = 16;
/// `tx.watchlists`: only allowed as the right side of `in`.
pub(super) const WATCH: Ty = 32;

/// A `tx` field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Field {
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
    DestPriorWithdrawals,
    DestLastAmountUsd,
    DestRisingRun,
    DestOthersSinceFirst,
    DestFirstAmountUsd,
    DestRises,
    NewPayeeWithdrawals30d,
    WithdrawalsBefore30d,
    DestOthersFirstDays,
    StateDays,
    Watchlists,
}

impl Field {
    pub(super) fn from_name(name: &str) -> Option<Field> {
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
            "dest_prior_withdrawals" => Field::DestPriorWithdrawals,
            "dest_last_amount_usd" => Field::DestLastAmountUsd,
            "dest_rising_run" => Field::DestRisingRun,
            "dest_others_since_first" => Field::DestOthersSinceFirst,
            "dest_first_amount_usd" => Field::DestFirstAmountUsd,
            "dest_rises" => Field::DestRises,
            "new_payee_withdrawals_30d" => Field::NewPayeeWithdrawals30d,
            "withdrawals_before_30d" => Field::WithdrawalsBefore30d,
            "dest_others_first_days" => Field::DestOthersFirstDays,
            "state_days" => Field::StateDays,
            "watchlists" => Field::Watchlists,
            _ => return None,
        })
    }

    pub(super) fn ty(self) -> Ty {
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
            | Field::DestUsers30d
            | Field::DestPriorWithdrawals
            | Field::DestRisingRun
            | Field::DestOthersSinceFirst
            | Field::DestRises
            | Field::NewPayeeWithdrawals30d
            | Field::WithdrawalsBefore30d => INT,
            Field::IsNewAddress => BOOL,
            Field::AmountUsd
            | Field::AmountUsd24h
            | Field::MedianAmountUsd90d
            | Field::HoursSincePasswordReset
            | Field::DeviceAgeHours
            | Field::DestFirstUsedDays
            | Field::DestAmountUsd30d
            | Field::DestLastAmountUsd
            | Field::DestFirstAmountUsd
            | Field::DestOthersFirstDays
            | Field::StateDays => FLOAT,
            Field::Watchlists => WATCH,
        }
    }

    /// Index into [`TxView::ints`].
    pub(super) fn int_index(self) -> Option<u8> {
        Some(match self {
            Field::AccountAgeDays => 0,
            Field::PriorWithdrawals => 1,
            Field::Withdrawals24h => 2,
            Field::DestUsers24h => 3,
            Field::DestUsers30d => 4,
            Field::DestPriorWithdrawals => 5,
            Field::DestRisingRun => 6,
            Field::DestOthersSinceFirst => 7,
            Field::DestRises => 8,
            Field::NewPayeeWithdrawals30d => 9,
            Field::WithdrawalsBefore30d => 10,
            _ => return None,
        })
    }

    /// Index into [`TxView::strs`].
    pub(super) fn str_index(self) -> Option<u8> {
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
    pub(super) fn float_index(self) -> Option<u8> {
        Some(match self {
            Field::AmountUsd => 0,
            Field::AmountUsd24h => 1,
            Field::MedianAmountUsd90d => 2,
            Field::HoursSincePasswordReset => 3,
            Field::DeviceAgeHours => 4,
            Field::DestFirstUsedDays => 5,
            Field::DestAmountUsd30d => 6,
            Field::DestLastAmountUsd => 7,
            Field::DestFirstAmountUsd => 8,
            Field::DestOthersFirstDays => 9,
            Field::StateDays => 10,
            _ => return None,
        })
    }

    /// The field's value: read from the view's tables (an indexed load; a `match` over the
    /// fields themselves was compiled into every field loaded, and spilled, ahead of the loop
    /// over a predicate list's leaves, whichever leaf was reached).
    #[inline]
    pub(super) fn read<'a>(self, tx: &TxView<'a>) -> Val<'a> {
        if let Some(i) = self.int_index() {
            return Val::Int(tx.ints.get(usize::from(i)).copied().unwrap_or_default());
        }
        if let Some(i) = self.float_index() {
            return Val::Float(tx.floats.get(usize::from(i)).copied().unwrap_or_default());
        }
        if let Some(i) = self.str_index() {
            return Val::Str(tx.text(i));
        }
        match self {
            Field::IsNewAddress => Val::Bool(tx.features.is_new_address),
            // Never compiled as a value (only as the right side of `in`).
            _ => Val::Unit,
        }
    }
}

/// A value during fast evaluation: copied, never allocated.
#[derive(Clone, Copy, Debug)]
pub(super) enum Val<'a> {
    Unit,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(&'a str),
}

impl Val<'_> {
    pub(super) fn type_name(&self) -> &'static str {
        match self {
            Val::Unit => "()",
            Val::Bool(_) => "bool",
            Val::Int(_) => "i64",
            Val::Float(_) => "f64",
            Val::Str(_) => "string",
        }
    }

    pub(super) fn to_dynamic(self) -> rhai::Dynamic {
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
pub(super) enum Const {
    Unit,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(Box<str>),
}

impl Const {
    #[inline]
    pub(super) fn val(&self) -> Val<'_> {
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
pub(super) enum BinOp {
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
    pub(super) fn from_name(name: &str) -> Option<BinOp> {
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

    pub(super) fn symbol(self) -> &'static str {
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

    pub(super) fn is_comparison(self) -> bool {
        !matches!(
            self,
            BinOp::Add | BinOp::Sub | BinOp::Mul | BinOp::Div | BinOp::Rem
        )
    }
}

/// A string test from Rhai's string package, for a string argument.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum StrTest {
    StartsWith,
    EndsWith,
    Contains,
}

impl StrTest {
    pub(super) fn from_name(name: &str) -> Option<StrTest> {
        Some(match name {
            "starts_with" => StrTest::StartsWith,
            "ends_with" => StrTest::EndsWith,
            "contains" => StrTest::Contains,
            _ => return None,
        })
    }

    pub(super) fn name(self) -> &'static str {
        match self {
            StrTest::StartsWith => "starts_with",
            StrTest::EndsWith => "ends_with",
            StrTest::Contains => "contains",
        }
    }

    #[inline]
    pub(super) fn apply(self, text: &str, s: &str) -> bool {
        match self {
            StrTest::StartsWith => text.starts_with(s),
            StrTest::EndsWith => text.ends_with(s),
            StrTest::Contains => text.contains(s),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum UnOp {
    Neg,
    Plus,
    Not,
}

/// A compiled expression or statement.
#[derive(Clone, Debug)]
pub(super) enum Node {
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
pub(super) enum Fault<'a> {
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
pub(super) enum Stop<'a> {
    Return(Val<'a>),
    Fault(Box<Fault<'a>>),
}

impl<'a> From<Fault<'a>> for Stop<'a> {
    fn from(f: Fault<'a>) -> Stop<'a> {
        Stop::Fault(Box::new(f))
    }
}
