//! `riskgate check`: load the rule set, then run each pack's own tests with the policy and that
//! pack alone.
//!
//! A test file is JSON Lines of events; a withdrawal line may carry
//! `"expect": {"tier": "warn", "hits": ["pack/rule"]}`. Also understood: `score` (the total),
//! `shadow_hits`, and `warning` (the chosen warning's key, or null for none). `hits` and
//! `shadow_hits` are compared as sets of full rule ids and must match exactly.

use std::fmt;
use std::fs::File;
use std::io::BufReader;
use std::path::Path;

use serde::Deserialize;

use crate::decision::{Decision, Tier};
use crate::rules::{Problem, RuleSet};
use crate::scorer::Scorer;
use crate::stream::{EventStream, LineReader, Processed};

/// What `check` found.
#[derive(Debug, Default)]
pub struct CheckReport {
    /// The rule set's id when it loaded as a whole.
    pub ruleset: Option<String>,
    /// Load problems of the whole rule set.
    pub problems: Vec<Problem>,
    /// One entry per pack that loaded.
    pub packs: Vec<PackReport>,
}

/// The tests of one pack.
#[derive(Debug, Default)]
pub struct PackReport {
    /// Pack id.
    pub pack: String,
    /// Number of rules.
    pub rules: usize,
    /// Full ids of the rules compiled for the fast path.
    pub fast_path: Vec<String>,
    /// Full ids of the rules that run in the sandboxed interpreter.
    pub interpreted: Vec<String>,
    /// Test files run.
    pub files: usize,
    /// Withdrawals checked against an expectation.
    pub expectations: usize,
    /// Every failed expectation or invalid line, as `pack/tests/file.jsonl:line: message`.
    pub failures: Vec<String>,
}

impl CheckReport {
    /// True when everything loaded and every expectation held.
    pub fn passed(&self) -> bool {
        self.problems.is_empty()
            && self.ruleset.is_some()
            && self.packs.iter().all(|p| p.failures.is_empty())
    }
}

impl fmt::Display for CheckReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for problem in &self.problems {
            writeln!(f, "error: {problem}")?;
        }
        if let Some(id) = &self.ruleset {
            writeln!(f, "ok    rule set {id} loads: {} pack(s)", self.packs.len())?;
        }
        for pack in &self.packs {
            let status = if pack.failures.is_empty() {
                "ok  "
            } else {
                "FAIL"
            };
            writeln!(
                f,
                "{status}  {}: {} rule(s), {} test file(s), {} expectation(s), {} failure(s)",
                pack.pack,
                pack.rules,
                pack.files,
                pack.expectations,
                pack.failures.len()
            )?;
            if !pack.fast_path.is_empty() {
                writeln!(
                    f,
                    "      fast path ({}): {}",
                    pack.fast_path.len(),
                    pack.fast_path.join(", ")
                )?;
            }
            if !pack.interpreted.is_empty() {
                writeln!(
                    f,
                    "      interpreter ({}): {}",
                    pack.interpreted.len(),
                    pack.interpreted.join(", ")
                )?;
            }
            for failure in &pack.failures {
                writeln!(f, "      {failure}")?;
            }
        }
        let verdict = if self.passed() {
            "check passed"
        } else {
            "check FAILED"
        };
        write!(f, "{verdict}")
    }
}

#[derive(Deserialize, Default)]
struct ExpectLine {
    #[serde(default)]
    expect: Option<Expect>,
}

#[derive(Deserialize)]
struct Expect {
    tier: Option<String>,
    hits: Option<Vec<String>>,
    shadow_hits: Option<Vec<String>>,
    score: Option<i64>,
    #[serde(default, deserialize_with = "some_or_null")]
    warning: Option<Option<String>>,
}

fn some_or_null<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

/// Loads `dir` and runs every pack's tests.
pub fn check(dir: impl AsRef<Path>) -> CheckReport {
    let dir = dir.as_ref();
    let mut report = CheckReport::default();
    match RuleSet::load(dir) {
        Ok(rules) => report.ruleset = Some(rules.id().to_string()),
        Err(e) => {
            report.problems = e.problems().to_vec();
            if report.problems.is_empty() {
                report.problems.push(Problem {
                    file: dir.display().to_string(),
                    line: 1,
                    column: 1,
                    message: e.to_string(),
                });
            }
            return report;
        }
    }
    let folders = RuleSet::pack_folders(dir).unwrap_or_default();
    for pack in folders {
        match RuleSet::load_pack(dir, &pack) {
            Ok(rules) => report
                .packs
                .push(check_pack(&dir.join(&pack), &pack, rules)),
            Err(e) => report.problems.extend(e.problems().iter().cloned()),
        }
    }
    report
}

/// Runs the tests in `pack_dir/tests` on `rules` (the policy and that pack).
pub(crate) fn check_pack(pack_dir: &Path, pack: &str, rules: RuleSet) -> PackReport {
    let mut report = PackReport {
        pack: pack.to_string(),
        rules: rules.rules().len(),
        ..PackReport::default()
    };
    for rule in rules.rules() {
        let list = if rule.fast_path() {
            &mut report.fast_path
        } else {
            &mut report.interpreted
        };
        list.push(rule.id.to_string());
    }
    let tests_dir = pack_dir.join("tests");
    let mut files: Vec<_> = std::fs::read_dir(&tests_dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                // Regular files only: a link is never followed (the loader refuses them).
                .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    let rules = std::sync::Arc::new(rules);
    for path in files {
        report.files += 1;
        let name = format!(
            "{pack}/tests/{}",
            path.file_name()
                .map(|n| n.to_string_lossy())
                .unwrap_or_default()
        );
        let file = match File::open(&path) {
            Ok(file) => file,
            Err(e) => {
                report.failures.push(format!("{name}: cannot read: {e}"));
                continue;
            }
        };
        let scorer = Scorer::new_shared(rules.clone());
        let mut stream = EventStream::new();
        let mut lines = LineReader::new(BufReader::new(file));
        while let Some(line) = lines.next_line() {
            let expect = line
                .as_ref()
                .ok()
                .and_then(|text| serde_json::from_str::<ExpectLine>(text).ok())
                .unwrap_or_default()
                .expect;
            match stream.process(&scorer, line) {
                Err(e) => report.failures.push(format!(
                    "{name}:{}: invalid event: {}",
                    stream.line(),
                    invalid_message(&e)
                )),
                Ok(Processed::Scored(_, decision)) => {
                    if let Some(expect) = expect {
                        report.expectations += 1;
                        for failure in compare(&expect, &decision) {
                            report.failures.push(format!(
                                "{name}:{}: withdrawal {}: {failure}",
                                stream.line(),
                                decision.id
                            ));
                        }
                    }
                }
                Ok(_) => {
                    if expect.is_some() {
                        report.failures.push(format!(
                            "{name}:{}: `expect` is only checked on withdrawals",
                            stream.line()
                        ));
                    }
                }
            }
        }
        if let Some(e) = lines.io_error() {
            report.failures.push(format!("{name}: read error: {e}"));
        }
    }
    report
}

fn invalid_message(e: &crate::Error) -> String {
    match e.kind() {
        crate::ErrorKind::InvalidEvent { message, .. } => message.clone(),
        _ => e.to_string(),
    }
}

fn compare(expect: &Expect, decision: &Decision) -> Vec<String> {
    let mut failures = Vec::new();
    let hit_ids = |hits: &[crate::decision::Hit]| -> Vec<String> {
        hits.iter().map(|h| h.rule.to_string()).collect()
    };
    let got_hits = hit_ids(&decision.hits);
    if let Some(tier) = &expect.tier {
        match Tier::from_name(tier) {
            Some(t) if t == decision.tier => {}
            Some(t) => failures.push(format!(
                "expected tier {t}, got {} (score {}, hits [{}])",
                decision.tier,
                decision.score,
                got_hits.join(", ")
            )),
            None => failures.push(format!(
                "expect.tier \"{tier}\" is not a tier (allow, notice, warn, cool_off)"
            )),
        }
    }
    if let Some(hits) = &expect.hits {
        if !same_set(hits, &got_hits) {
            failures.push(format!(
                "expected hits [{}], got [{}]",
                hits.join(", "),
                got_hits.join(", ")
            ));
        }
    }
    if let Some(shadow) = &expect.shadow_hits {
        let got = hit_ids(&decision.shadow_hits);
        if !same_set(shadow, &got) {
            failures.push(format!(
                "expected shadow hits [{}], got [{}]",
                shadow.join(", "),
                got.join(", ")
            ));
        }
    }
    if let Some(score) = expect.score {
        if score != decision.score {
            failures.push(format!("expected score {score}, got {}", decision.score));
        }
    }
    if let Some(warning) = &expect.warning {
        // The warning the rules chose, even when the exchange's holdout withholds it.
        let got = (decision.warning.as_ref().map(|w| &w.key))
            .or(decision.withheld.as_ref().map(|w| &w.key))
            .map(|key| key.to_string());
        if *warning != got {
            failures.push(format!("expected warning {warning:?}, got {got:?}"));
        }
    }
    failures
}

fn same_set(expected: &[String], got: &[String]) -> bool {
    let mut a = expected.to_vec();
    let mut b = got.to_vec();
    a.sort();
    a.dedup();
    b.sort();
    b.dedup();
    a == b
}
