//! A load problem (`file:line:column: message`): a leaf module, so that errors can carry
//! problems without importing the rules, which return errors.

use std::fmt;

/// One problem found while loading a rule set, e.g.
/// `hk-police/pack.toml:12:9: rule "x": unknown tier "warning"`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// The file, relative to the rules directory (`policy.toml`, `hk-police/pack.toml`, ...).
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column, in characters.
    pub column: usize,
    /// What is wrong, and where possible how to fix it.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file, self.line, self.column, self.message
        )
    }
}
