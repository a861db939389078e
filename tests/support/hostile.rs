//! The hostile-script cases of `tests/hostile/*.toml` (the hostile test and the hostile bench):
//! the rule set each case is loaded into, between two normal rules, the withdrawal it is scored
//! on, and the limits the test runs with.
#![allow(dead_code)] // each test target uses a different part

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::hardening::{policy_with_limits, withdrawal};

/// What the hostile test runs with: the default limits but a 50 ms deadline, so that the legal
/// scripts of the corpus never reach it on a loaded debug build; the bench uses the real 2 ms.
#[allow(unused_imports)] // the targets that use only one of the two modules
pub use super::hardening::TEST_LIMITS;

/// [`TEST_LIMITS`] with operations unlimited in practice: only the deadline stops a loop.
pub const TEST_HIGH_OPS_LIMITS: &str = "max_rule_ms = 50\nmax_operations = 1000000000000\nmax_call_levels = 16\nmax_expr_depth = 64\nmax_string_size = 4096\nmax_array_size = 1024\nmax_map_size = 256\n";

/// The pack id of the hostile rule sets, and the address on its watchlist.
pub const HOSTILE_PACK: &str = "hostile";
pub const HOSTILE_DEST: &str = "TWatchedAddress000000000000000000";
pub const HOSTILE_AMOUNT: f64 = 500.0;
/// Scores of the two normal rules around the hostile one, and the hostile rule's own.
pub const BEFORE_SCORE: i64 = 7;
pub const AFTER_SCORE: i64 = 11;
pub const HOSTILE_SCORE: i64 = 10;

/// The rule that runs after the hostile one: it always hits, unless `tx` was changed.
pub const WITNESS_RULE: &str = r#"// Hits when tx is exactly what the host sent (the contract's 22 fields and the 10 extensions);
// throws when an earlier rule changed it.
if tx.len() == 32 && tx.id == "wd-hostile" && tx.amount_usd == 500.0 && tx.country == "HK"
    && tx.watchlists == ["hostile/w"] && tx.destination == "TWatchedAddress000000000000000000" {
    true
} else {
    throw "tx was changed by an earlier rule: " + tx;
}
"#;

/// Builds a rule set in `dir`: a policy with `limits`, and pack `hostile` with three rules in
/// evaluation order: `a-before` (always hits), `m-hostile` (the case's script), `z-after` (the
/// witness above).
pub fn hostile_rules(dir: &Path, script: &str, limits: &str) {
    let pack = format!(
        r#"id = "hostile"
name = "Hostile scripts"
version = "1"
regions = ["*"]

[[rules]]
id = "a-before"
script = "before.rhai"
score = {BEFORE_SCORE}
reason = "always"

[[rules]]
id = "m-hostile"
script = "hostile.rhai"
score = {HOSTILE_SCORE}
reason = "hostile"

[[rules]]
id = "z-after"
script = "after.rhai"
score = {AFTER_SCORE}
reason = "witness"

[[watchlists]]
id = "w"
file = "watchlists/w.txt"
"#
    );
    std::fs::create_dir_all(dir.join("hostile/watchlists")).expect("create pack");
    std::fs::write(
        dir.join("policy.toml"),
        policy_with_limits("ignore", limits),
    )
    .expect("policy");
    std::fs::write(dir.join("hostile/pack.toml"), pack).expect("pack");
    std::fs::write(dir.join("hostile/before.rhai"), "true\n").expect("before");
    std::fs::write(dir.join("hostile/after.rhai"), WITNESS_RULE).expect("after");
    std::fs::write(
        dir.join("hostile/watchlists/w.txt"),
        format!("{HOSTILE_DEST}\n"),
    )
    .expect("watchlist");
    std::fs::write(dir.join("hostile/hostile.rhai"), script).expect("script");
}

/// The withdrawal every hostile case is scored on.
pub fn hostile_withdrawal() -> riskgate::Withdrawal {
    let line = withdrawal(
        "wd-hostile",
        "u-1",
        "2026-11-20T10:00:00Z",
        HOSTILE_AMOUNT,
        HOSTILE_DEST,
        "HK",
        "",
    );
    match riskgate::Event::parse_line(&line) {
        Ok(riskgate::Event::Withdrawal(w)) => w,
        other => panic!("bad test withdrawal: {other:?}"),
    }
}

/// What a hostile case must come to.
#[derive(Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Expect {
    /// Refused at load, naming `hostile/hostile.rhai:line:col`.
    LoadError,
    /// Loads; a rule error at run time.
    RuleError,
    /// Loads; a hit (with `score` when given).
    Hit,
    /// Loads; no hit, no error.
    NoHit,
}

/// One hostile case.
#[derive(Deserialize, Debug, Clone)]
#[serde(deny_unknown_fields)]
pub struct Case {
    pub name: String,
    /// The script; or built as `prefix + repeat * times + middle + close * times + suffix`.
    #[serde(default)]
    pub script: Option<String>,
    #[serde(default)]
    pub prefix: String,
    #[serde(default)]
    pub repeat: String,
    #[serde(default)]
    pub times: usize,
    #[serde(default)]
    pub middle: String,
    #[serde(default)]
    pub close: String,
    #[serde(default)]
    pub suffix: String,
    pub expect: Expect,
    /// A fragment the load problem or rule error must contain (case-insensitive); `a|b` accepts
    /// either (where which limit comes first depends on the machine's speed).
    #[serde(default)]
    pub message: Option<String>,
    /// The 1-based line a load problem must name.
    #[serde(default)]
    pub line: Option<usize>,
    /// The score of a hit.
    #[serde(default)]
    pub score: Option<i64>,
    /// Why the case is here.
    #[serde(default)]
    pub why: String,
}

impl Case {
    pub fn script(&self) -> String {
        match &self.script {
            Some(s) => s.clone(),
            None => {
                let mut s = String::with_capacity(
                    self.prefix.len() + self.repeat.len() * self.times + self.suffix.len(),
                );
                s.push_str(&self.prefix);
                for _ in 0..self.times {
                    s.push_str(&self.repeat);
                }
                s.push_str(&self.middle);
                for _ in 0..self.times {
                    s.push_str(&self.close);
                }
                s.push_str(&self.suffix);
                s
            }
        }
    }

    /// `file:name` for messages.
    pub fn label(&self, file: &str) -> String {
        format!("{file}:{}", self.name)
    }
}

#[derive(Deserialize)]
struct CaseFile {
    case: Vec<Case>,
}

/// Every case of `tests/hostile/*.toml`, with the file it came from, in file order.
pub fn hostile_cases() -> Vec<(String, Case)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/hostile");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("tests/hostile")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    let mut out = Vec::new();
    for path in files {
        let text = std::fs::read_to_string(&path).expect("read case file");
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let parsed: CaseFile = toml::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
        for case in parsed.case {
            out.push((name.clone(), case));
        }
    }
    out
}

/// A short description of a decision, for failure messages.
pub fn describe(d: &riskgate::Decision) -> String {
    let mut s = String::new();
    let _ = write!(s, "tier {} score {} hits [", d.tier, d.score);
    for h in &d.hits {
        let _ = write!(s, "{}={} ", h.rule, h.score);
    }
    s.push_str("] errors [");
    for e in &d.errors {
        let _ = write!(s, "{}: {}; ", e.rule, e.error);
    }
    s.push(']');
    s
}
