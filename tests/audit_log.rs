//! The decision log (issue 6): every decision and every rule set that decided, in an
//! append-only hash chain that `verify-log` checks line by line, naming the first line where
//! the chain breaks.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use riskgate::{verify_log, DecisionLog, ErrorKind, EventStream, LogOptions, Processed, Scorer};

fn rules_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("rules")
}

fn campaign() -> Vec<String> {
    let text = std::fs::read_to_string(rules_dir().join("hk-police/tests/campaign.jsonl"))
        .expect("fixture");
    text.lines().map(str::to_string).collect()
}

/// Scores `lines` with a scorer whose log is `log`, logging every decision.
fn score_logged(scorer: &Scorer, log: &DecisionLog, lines: &[String]) -> usize {
    let mut stream = EventStream::new();
    let mut decisions = 0;
    for line in lines {
        if let Ok(Processed::Scored(_, decision)) = stream.process(scorer, Ok(line)) {
            log.append_decision(&decision).expect("append");
            decisions += 1;
        }
    }
    decisions
}

/// A log of one rule-set line and the campaign's decisions; returns its path and line count.
fn written_log(dir: &Path) -> (PathBuf, usize) {
    let path = dir.join("decisions.jsonl");
    let scorer = Scorer::from_dir(rules_dir()).expect("rules");
    let log = Arc::new(DecisionLog::open(&path).expect("open"));
    scorer.set_audit_log(log.clone()).expect("attach");
    let decisions = score_logged(&scorer, &log, &campaign());
    log.sync().expect("sync");
    (path, decisions + 1)
}

fn lines_of(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .expect("read")
        .lines()
        .map(str::to_string)
        .collect()
}

fn write_lines(path: &Path, lines: &[String]) {
    std::fs::write(
        path,
        lines.iter().map(|l| format!("{l}\n")).collect::<String>(),
    )
    .expect("write");
}

fn broken_line(path: &Path) -> (u64, String) {
    let report = verify_log(path).expect("readable");
    let broken = report.broken.expect("the chain must break");
    (broken.line, broken.reason)
}

#[test]
fn every_decision_is_logged_with_its_ruleset_event_id_and_sequence_number() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (path, count) = written_log(dir.path());
    let lines = lines_of(&path);
    assert_eq!(lines.len(), count);
    let first: serde_json::Value = serde_json::from_str(&lines[0]).expect("json");
    assert_eq!(first["kind"], "ruleset");
    assert_eq!(first["seq"], 1);
    let ruleset = first["ruleset"].as_str().expect("id").to_string();
    let packs: Vec<&str> = first["packs"]
        .as_array()
        .expect("packs")
        .iter()
        .map(|p| p["id"].as_str().expect("id"))
        .collect();
    assert_eq!(packs, ["community-darklist", "hk-police"]);
    assert!(first["packs"][1]["version"].is_string());
    for (i, line) in lines.iter().enumerate().skip(1) {
        let value: serde_json::Value = serde_json::from_str(line).expect("json");
        assert_eq!(value["seq"], i as u64 + 1);
        assert_eq!(value["kind"], "decision");
        assert_eq!(value["ruleset"], ruleset.as_str());
        assert_eq!(value["event"], value["decision"]["id"]);
        assert_eq!(value["hash"].as_str().expect("hash").len(), 64);
    }
    let report = verify_log(&path).expect("verify");
    assert!(report.is_intact(), "{report}");
    assert_eq!(report.verified, count as u64);
    assert!(report
        .to_string()
        .starts_with(&format!("OK: {count} line(s)")));
}

#[test]
fn an_edited_line_is_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (path, _) = written_log(dir.path());
    let mut lines = lines_of(&path);
    assert!(lines[4].contains(r#""tier":"allow""#) || lines[4].contains(r#""tier":"notice""#));
    lines[4] = lines[4].replacen(r#""tier":""#, r#""tier":"x"#, 1);
    write_lines(&path, &lines);
    let (line, reason) = broken_line(&path);
    assert_eq!(line, 5);
    assert!(reason.contains("edited"), "{reason}");
}

#[test]
fn an_edited_line_with_a_recomputed_hash_breaks_the_next_line() {
    use sha2::{Digest, Sha256};
    let dir = tempfile::tempdir().expect("tempdir");
    let (path, _) = written_log(dir.path());
    let mut lines = lines_of(&path);
    let prev_hash = serde_json::from_str::<serde_json::Value>(&lines[2]).expect("json")["hash"]
        .as_str()
        .expect("hash")
        .to_string();
    let body = lines[3][..lines[3].len() - 75].replacen(r#""score":"#, r#""score":1"#, 1);
    let hash: String = Sha256::digest(format!("{prev_hash}{body}"))
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    lines[3] = format!(r#"{body},"hash":"{hash}"}}"#);
    write_lines(&path, &lines);
    assert_eq!(broken_line(&path).0, 5);
}

#[test]
fn a_removed_line_is_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (path, _) = written_log(dir.path());
    let mut lines = lines_of(&path);
    lines.remove(6);
    write_lines(&path, &lines);
    let (line, reason) = broken_line(&path);
    assert_eq!(line, 7);
    assert!(
        reason.contains("sequence number 8 where 7 was expected"),
        "{reason}"
    );
}

#[test]
fn reordered_lines_are_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (path, _) = written_log(dir.path());
    let mut lines = lines_of(&path);
    lines.swap(9, 10);
    write_lines(&path, &lines);
    let (line, reason) = broken_line(&path);
    assert_eq!(line, 10);
    assert!(
        reason.contains("removed, inserted or reordered"),
        "{reason}"
    );
}

#[test]
fn an_inserted_line_is_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (path, _) = written_log(dir.path());
    let mut lines = lines_of(&path);
    let copy = lines[2].clone();
    lines.insert(3, copy);
    write_lines(&path, &lines);
    assert_eq!(broken_line(&path).0, 4);
}

#[test]
fn a_line_cut_short_by_a_crash_is_named_and_not_appended_to() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (path, count) = written_log(dir.path());
    let text = std::fs::read_to_string(&path).expect("read");
    std::fs::write(&path, &text[..text.len() - 20]).expect("write");
    let (line, reason) = broken_line(&path);
    assert_eq!(line, count as u64);
    assert!(reason.contains("incomplete last line"), "{reason}");
    let error = DecisionLog::open(&path).expect_err("must not continue a torn chain");
    assert!(matches!(error.kind(), ErrorKind::Corrupt { .. }), "{error}");
}

#[test]
fn appending_to_an_existing_log_continues_its_chain() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (path, count) = written_log(dir.path());
    let before = verify_log(&path).expect("verify");
    let log = DecisionLog::open(&path).expect("reopen");
    assert_eq!(log.next_seq(), count as u64 + 1);
    assert_eq!(log.last_hash(), before.last_hash);
    let scorer = Scorer::from_dir(rules_dir()).expect("rules");
    let more = score_logged(&scorer, &log, &campaign()[..5]);
    log.close().expect("close");
    let report = verify_log(&path).expect("verify");
    assert!(report.is_intact(), "{report}");
    assert_eq!(report.verified, (count + more) as u64);
}

#[test]
fn lines_are_written_in_batches() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("batched.jsonl");
    let scorer = Scorer::from_dir(rules_dir()).expect("rules");
    let options = LogOptions {
        batch_lines: 3,
        batch_interval: Duration::from_secs(3600),
    };
    let log = DecisionLog::open_with(&path, options).expect("open");
    let record = scorer.ruleset_history().remove(0);
    log.append_ruleset(&record).expect("append");
    log.append_ruleset(&record).expect("append");
    assert_eq!(lines_of(&path).len(), 0, "two lines wait for the batch");
    log.append_ruleset(&record).expect("append");
    assert_eq!(
        lines_of(&path).len(),
        3,
        "the third line completes the batch"
    );
    log.append_ruleset(&record).expect("append");
    log.flush().expect("flush");
    assert_eq!(lines_of(&path).len(), 4, "flush writes what is pending");
    log.append_ruleset(&record).expect("append");
    drop(log);
    assert_eq!(
        lines_of(&path).len(),
        5,
        "dropping the log writes what is pending"
    );

    let immediate = DecisionLog::open_with(
        &path,
        LogOptions {
            batch_lines: 1000,
            batch_interval: Duration::ZERO,
        },
    )
    .expect("open");
    immediate.append_ruleset(&record).expect("append");
    assert_eq!(
        lines_of(&path).len(),
        6,
        "a zero interval writes every line at once"
    );
}

/// Copies a rules directory so that a test may change it.
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("list") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).expect("copy");
        }
    }
}

#[test]
fn each_load_and_reload_is_in_the_history_and_in_the_log_before_its_decisions() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rules = dir.path().join("rules");
    copy_dir(&rules_dir(), &rules);
    let scorer = Scorer::from_dir(&rules).expect("rules");
    let path = dir.path().join("log.jsonl");
    let log = Arc::new(DecisionLog::open(&path).expect("open"));
    scorer.set_audit_log(log.clone()).expect("attach");
    let first_id = scorer.rules().id().to_string();

    let manifest = rules.join("hk-police/pack.toml");
    let text = std::fs::read_to_string(&manifest).expect("read");
    // Any other version (whatever the shipped one is) makes another rule set.
    let bumped: Vec<&str> = text
        .lines()
        .map(|l| {
            if l.starts_with("version = ") {
                "version = \"1999.1.1\""
            } else {
                l
            }
        })
        .collect();
    std::fs::write(&manifest, bumped.join("\n")).expect("write");
    let second = scorer.reload(&rules).expect("reload");
    assert_ne!(second.id(), first_id);
    let lines = campaign();
    score_logged(&scorer, &log, &lines[..3]);

    // A reload that fails is not recorded.
    std::fs::write(rules.join("hk-police/broken.rhai"), "let x = ;").expect("write");
    let text = std::fs::read_to_string(&manifest).expect("read");
    std::fs::write(
        &manifest,
        format!("{text}\n[[rules]]\nid = \"broken\"\nscript = \"broken.rhai\"\nscore = 1\n"),
    )
    .expect("write");
    assert!(scorer.reload(&rules).is_err());

    let history = scorer.ruleset_history();
    assert_eq!(history.len(), 2);
    assert_eq!(history[0].ruleset, first_id);
    assert_eq!(history[1].ruleset, second.id());
    let hk = history[1]
        .packs
        .iter()
        .find(|p| p.id == "hk-police")
        .expect("hk-police");
    assert_eq!(hk.version, "1999.1.1");

    log.sync().expect("sync");
    let kinds: Vec<(String, String)> = lines_of(&path)
        .iter()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("json");
            (
                v["kind"].as_str().expect("kind").to_string(),
                v["ruleset"].as_str().expect("ruleset").to_string(),
            )
        })
        .collect();
    let second_id = second.id().to_string();
    assert_eq!(kinds[0], ("ruleset".to_string(), first_id));
    assert_eq!(kinds[1], ("ruleset".to_string(), second_id.clone()));
    assert!(kinds[2..]
        .iter()
        .all(|k| k == &("decision".to_string(), second_id.clone())));
    assert!(verify_log(&path).expect("verify").is_intact());
}

#[test]
fn the_command_line_logs_continues_and_verifies() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("cli.jsonl");
    let fixture = rules_dir().join("hk-police/tests/campaign.jsonl");
    let riskgate = env!("CARGO_BIN_EXE_riskgate");
    for _ in 0..2 {
        let status = Command::new(riskgate)
            .args(["score", "--rules"])
            .arg(rules_dir())
            .arg("--log")
            .arg(&log)
            .arg(&fixture)
            .output()
            .expect("run");
        assert!(
            status.status.success(),
            "{}",
            String::from_utf8_lossy(&status.stderr)
        );
    }
    let count = lines_of(&log).len();
    let verified = Command::new(riskgate)
        .arg("verify-log")
        .arg(&log)
        .output()
        .expect("run");
    assert!(verified.status.success());
    assert!(String::from_utf8_lossy(&verified.stdout).starts_with(&format!("OK: {count} line(s)")));

    let mut lines = lines_of(&log);
    lines.remove(3);
    write_lines(&log, &lines);
    let verified = Command::new(riskgate)
        .arg("verify-log")
        .arg(&log)
        .output()
        .expect("run");
    assert_eq!(verified.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&verified.stdout).contains("line 4"));

    let missing = Command::new(riskgate)
        .arg("verify-log")
        .arg(dir.path().join("none"))
        .output()
        .expect("run");
    assert_eq!(missing.status.code(), Some(2));
}
