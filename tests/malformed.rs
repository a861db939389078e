//! Malformed inputs (issue 5): broken event lines and broken rule sets. Each gets one clear
//! error naming where (the line number; `file:line:column`), and nothing else is lost: the
//! valid lines around a bad one decide exactly as they do without it, and a broken rule set
//! leaves the live one deciding.
//!
//! Event cases: `tests/malformed/events/<case>.jsonl` (raw bytes: BOMs, invalid UTF-8, ...),
//! with the message fragment each must produce in `tests/malformed/events.toml`. Rule-set cases:
//! `tests/malformed/packs.toml`, each a change to a valid rule set.
//! `MALFORMED_SHOW=1 cargo test --test malformed -- --nocapture` prints every error.

mod support;

use std::collections::BTreeMap;
use std::io::BufReader;
use std::path::{Path, PathBuf};

use riskgate::{ErrorKind, EventStream, LineReader, Processed, Scorer};
use serde::Deserialize;
use support::hardening::*;

fn corpus() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/malformed")
}

fn showing() -> bool {
    std::env::var_os("MALFORMED_SHOW").is_some()
}

/// A small rule set whose decisions depend on state, so that a bad line that changed state
/// would show in the decisions after it.
fn rules_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    write_files(
        dir.path(),
        &[
            ("policy.toml", &policy_with_limits("notice", TEST_LIMITS)),
            (
                "p/pack.toml",
                "id = \"p\"\nregions = [\"*\"]\n\n[[rules]]\nid = \"history\"\nscript = \"history.rhai\"\nreason = \"r\"\n\n[[rules]]\nid = \"reset\"\nscript = \"reset.rhai\"\nscore = 30\nreason = \"r\"\n\n[[rules]]\nid = \"device\"\nscript = \"device.rhai\"\nscore = 5\nreason = \"r\"\n",
            ),
            ("p/history.rhai", "tx.prior_withdrawals * 10 + tx.withdrawals_24h + tx.dest_users_24h * 100"),
            ("p/reset.rhai", "tx.hours_since_password_reset < 24.0"),
            ("p/device.rhai", "tx.device_age_hours > 1.0 && tx.device_age_hours < 1000.0"),
        ],
    );
    dir
}

fn good(id: &str, user: &str, hour: u32, extra: &str) -> String {
    withdrawal(
        id,
        user,
        &format!("2026-11-20T{hour:02}:00:00Z"),
        100.0,
        "dest-a",
        "HK",
        extra,
    )
}

/// Valid lines before the bad ones (touching every kind of state) and after them.
fn prefix() -> Vec<String> {
    vec![
        r#"{"kind":"login","ts":"2026-11-20T01:00:00Z","user_id":"u1","device_id":"d1"}"#
            .to_string(),
        good("w-good-1", "u1", 2, r#","device_id":"d1""#),
        good("w-good-2", "u2", 3, ""),
    ]
}

fn suffix() -> Vec<String> {
    vec![
        r#"{"kind":"password_reset","ts":"2026-11-20T11:00:00Z","user_id":"u1"}"#.to_string(),
        good("w-good-3", "u1", 12, r#","device_id":"d1""#),
        good("w-good-4", "u2", 13, ""),
        good("w-bad", "u3", 14, ""),
    ]
}

/// Runs a stream through `riskgate score`'s reading path: decisions (as JSON, without the rule
/// set id) and errors by line number.
fn run(scorer: &Scorer, input: &[u8]) -> (Vec<String>, Vec<(usize, String)>) {
    let mut reader = LineReader::new(BufReader::new(input));
    let mut stream = EventStream::new();
    let (mut decisions, mut errors) = (Vec::new(), Vec::new());
    while let Some(line) = reader.next_line() {
        match stream.process(scorer, line) {
            Ok(Processed::Scored(_, d)) => decisions.push(d.to_json()),
            Ok(_) => {}
            Err(e) => match e.kind() {
                ErrorKind::InvalidEvent { line, message } => errors.push((*line, message.clone())),
                other => panic!("not a line error: {other:?}"),
            },
        }
    }
    (decisions, errors)
}

fn join(lines: &[String]) -> Vec<u8> {
    lines
        .iter()
        .flat_map(|l| format!("{l}\n").into_bytes())
        .collect()
}

#[derive(Deserialize)]
struct EventExpectations {
    #[serde(flatten)]
    cases: BTreeMap<String, String>,
}

/// Checks that `bad` (one or more lines) yields one error per non-blank line, each with
/// `fragment`, and that the valid lines around it decide as without it.
fn check_bad_lines(name: &str, bad: &[u8], fragment: &str) -> Result<(), String> {
    let dir = rules_dir();
    let (pre, post) = (join(&prefix()), join(&suffix()));
    let mut input = pre.clone();
    input.extend_from_slice(bad);
    if !bad.ends_with(b"\n") {
        input.push(b'\n');
    }
    input.extend_from_slice(&post);
    let with_bad = Scorer::from_dir(dir.path()).map_err(|e| e.to_string())?;
    let (decisions, errors) = run(&with_bad, &input);
    let mut clean = pre;
    clean.extend_from_slice(&post);
    let without = Scorer::from_dir(dir.path()).map_err(|e| e.to_string())?;
    let (expected, none) = run(&without, &clean);
    assert!(none.is_empty(), "the valid lines must be valid: {none:?}");
    if showing() {
        for (line, message) in &errors {
            println!("{name}: line {line}: {message}");
        }
    }
    let bad_lines = bad
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .count()
        .max(1);
    let first = prefix().len() + 1;
    let want_lines: Vec<usize> = (first..first + bad_lines).collect();
    let got_lines: Vec<usize> = errors.iter().map(|(l, _)| *l).collect();
    if got_lines != want_lines {
        return Err(format!(
            "{name}: expected errors on lines {want_lines:?}, got {errors:?}"
        ));
    }
    if let Some((_, message)) = errors
        .iter()
        .find(|(_, m)| !m.to_lowercase().contains(&fragment.to_lowercase()))
    {
        return Err(format!(
            "{name}: expected an error with {fragment:?}, got {message:?}"
        ));
    }
    if decisions != expected {
        return Err(format!("{name}: the valid lines decided differently with the bad line:\n{decisions:#?}\nvs\n{expected:#?}"));
    }
    if with_bad.user_count() != without.user_count() {
        return Err(format!("{name}: the bad line changed state"));
    }
    Ok(())
}

#[test]
fn every_broken_event_gets_one_line_error_and_nothing_else_is_lost() {
    let expectations: EventExpectations = toml::from_str(
        &std::fs::read_to_string(corpus().join("events.toml")).expect("events.toml"),
    )
    .expect("events.toml parses");
    let mut files: Vec<PathBuf> = std::fs::read_dir(corpus().join("events"))
        .expect("events/")
        .map(|e| e.expect("entry").path())
        .collect();
    files.sort();
    let mut failures = Vec::new();
    let mut seen = 0;
    for path in &files {
        let name = path
            .file_stem()
            .expect("name")
            .to_string_lossy()
            .into_owned();
        let Some(fragment) = expectations.cases.get(&name) else {
            failures.push(format!("{name}: no expected message in events.toml"));
            continue;
        };
        seen += 1;
        let bytes = std::fs::read(path).expect("read case");
        if let Err(f) = check_bad_lines(&name, &bytes, fragment) {
            failures.push(f);
        }
    }
    assert_eq!(
        seen,
        expectations.cases.len(),
        "events.toml names a case with no file"
    );
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        files.len(),
        failures.join("\n")
    );
}

#[test]
fn a_line_over_one_mebibyte_is_one_error_and_is_not_kept() {
    let huge = good(
        "w-huge",
        "u1",
        5,
        &format!(r#","pad":"{}""#, "x".repeat(1_100_000)),
    );
    check_bad_lines("huge-line", huge.as_bytes(), "longer than").unwrap_or_else(|f| panic!("{f}"));
    // A line just under the limit is read (and is a valid event: unknown fields are ignored).
    let dir = rules_dir();
    let scorer = Scorer::from_dir(dir.path()).expect("rules");
    let big = good(
        "w-big",
        "u1",
        5,
        &format!(r#","pad":"{}""#, "x".repeat(1_000_000)),
    );
    let (decisions, errors) = run(&scorer, format!("{big}\n").as_bytes());
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(decisions.len(), 1);
}

#[test]
fn several_bad_lines_in_a_row_each_get_their_own_error() {
    let bad = b"{\n\xef\xbb\xbf{}\n[1,2]\n{\"kind\":\"login\"}\n";
    check_bad_lines("four-in-a-row", bad, "").unwrap_or_else(|f| panic!("{f}"));
}

#[test]
fn blank_and_whitespace_lines_are_skipped_not_errors() {
    let dir = rules_dir();
    let scorer = Scorer::from_dir(dir.path()).expect("rules");
    let mut input = b"\n   \n\t\r\n".to_vec();
    input.extend(join(&prefix()));
    let (decisions, errors) = run(&scorer, &input);
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(decisions.len(), 2);
}

// ---- broken rule sets ----

#[derive(Deserialize)]
struct PackCases {
    case: Vec<PackCase>,
}

/// A change to the valid rule set of [`base_rules`] and the one problem it must produce.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PackCase {
    name: String,
    /// Files to write (relative path -> contents).
    #[serde(default)]
    write: BTreeMap<String, String>,
    /// Files to write as raw bytes, given in hex.
    #[serde(default)]
    write_hex: BTreeMap<String, String>,
    /// Files to delete.
    #[serde(default)]
    remove: Vec<String>,
    /// Paths to replace by a directory (where a file is expected).
    #[serde(default)]
    make_dir: Vec<String>,
    /// The problem: file, line (and a message fragment).
    file: String,
    line: usize,
    #[serde(default)]
    message: String,
    /// Why the case is here.
    #[serde(default)]
    #[allow(dead_code)]
    why: String,
}

const BASE_PACK: &str = r#"id = "p"
name = "Partner"
version = "1"
regions = ["HK"]
max_score = 100

[[rules]]
id = "big"
script = "big.rhai"
score = 40
reason = "Large amount"
warning = "scam"

[[rules]]
id = "listed"
script = "listed.rhai"
score = 60
reason = "On a watchlist"
min_tier = "warn"

[[watchlists]]
id = "text"
file = "watchlists/list.txt"

[[watchlists]]
id = "json"
file = "watchlists/list.json"

[warnings.scam.en]
title = "Scam"
body = "Careful with {amount_usd} USD"

[warnings.scam."zh-HK"]
title = "騙案"
body = "小心"
"#;

fn base_rules(dir: &Path) {
    write_files(
        dir,
        &[
            ("policy.toml", &policy_with_limits("notice", TEST_LIMITS)),
            ("p/pack.toml", BASE_PACK),
            ("p/big.rhai", "tx.amount_usd >= 1000.0"),
            ("p/listed.rhai", "tx.watchlists.len() > 0"),
            ("p/watchlists/list.txt", "# reported\ndest-listed\n"),
            (
                "p/watchlists/list.json",
                r#"[{"address": "dest-json", "note": "x"}]"#,
            ),
        ],
    );
}

fn apply(dir: &Path, case: &PackCase) {
    for (path, text) in &case.write {
        write_files(dir, &[(path, text)]);
    }
    for (path, hex) in &case.write_hex {
        let bytes: Vec<u8> = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex"))
            .collect();
        std::fs::write(dir.join(path), bytes).expect("write bytes");
    }
    for path in &case.remove {
        std::fs::remove_file(dir.join(path)).expect("remove");
    }
    for path in &case.make_dir {
        let p = dir.join(path);
        let _ = std::fs::remove_file(&p);
        std::fs::create_dir_all(&p).expect("mkdir");
    }
}

#[test]
fn every_broken_rule_set_gets_one_problem_naming_file_and_line_and_the_live_set_stays() {
    let cases: PackCases =
        toml::from_str(&std::fs::read_to_string(corpus().join("packs.toml")).expect("packs.toml"))
            .expect("packs.toml parses");
    let good = tempfile::tempdir().expect("tempdir");
    base_rules(good.path());
    let scorer = Scorer::from_dir(good.path())
        .unwrap_or_else(|e| panic!("the base rule set must load: {e}"));
    let live = scorer.rules().id().to_string();
    let events = [
        good_event("w1", 5000.0, "dest-listed"),
        good_event("w2", 10.0, "dest-json"),
        good_event("w3", 10.0, "dest-other"),
    ];
    let before: Vec<String> = events.iter().map(|w| scorer.score(w).to_json()).collect();
    let mut failures = Vec::new();
    for case in &cases.case {
        let dir = tempfile::tempdir().expect("tempdir");
        base_rules(dir.path());
        apply(dir.path(), case);
        let problems = match scorer.reload(dir.path()) {
            Ok(_) => {
                failures.push(format!("{}: loaded, but must be refused", case.name));
                scorer.reload(good.path()).expect("back to the good set");
                continue;
            }
            Err(e) => e.problems().to_vec(),
        };
        if showing() {
            for p in &problems {
                println!("{}: {p}", case.name);
            }
        }
        match problems.as_slice() {
            [p] if p.file == case.file
                && p.line == case.line
                && p.message
                    .to_lowercase()
                    .contains(&case.message.to_lowercase()) => {}
            _ => failures.push(format!(
                "{}: expected one problem at {}:{} with {:?}, got {problems:?}",
                case.name, case.file, case.line, case.message
            )),
        }
        // Nothing lost: the live set is the same and decides the same.
        let after: Vec<String> = events.iter().map(|w| scorer.score(w).to_json()).collect();
        if scorer.rules().id() != live || after != before {
            failures.push(format!("{}: the live rule set changed", case.name));
        }
    }
    assert!(cases.case.len() >= 20, "at least 20 broken rule sets");
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.case.len(),
        failures.join("\n")
    );
}

fn good_event(id: &str, amount: f64, dest: &str) -> riskgate::Withdrawal {
    match riskgate::Event::parse_line(&withdrawal(
        id,
        "u1",
        "2026-11-20T10:00:00Z",
        amount,
        dest,
        "HK",
        "",
    )) {
        Ok(riskgate::Event::Withdrawal(w)) => w,
        other => panic!("{other:?}"),
    }
}
