//! `riskgate replay --state`: a replay can hand its state to the next run.

use std::process::Command;

fn riskgate() -> Command {
    Command::new(env!("CARGO_BIN_EXE_riskgate"))
}

#[test]
fn replay_state_lets_the_next_run_continue_the_stream() {
    let dir = tempfile::tempdir().expect("temp dir");
    let sample = std::fs::read_to_string("fixtures/hk-sample.jsonl").expect("fixture");
    let lines: Vec<&str> = sample.lines().collect();
    let (first, second) = lines.split_at(lines.len() / 2);
    let first_path = dir.path().join("first.jsonl");
    let second_path = dir.path().join("second.jsonl");
    std::fs::write(&first_path, first.join("\n") + "\n").expect("write");
    std::fs::write(&second_path, second.join("\n") + "\n").expect("write");
    let state = dir.path().join("state.bin");

    let replayed = riskgate()
        .args([
            "replay",
            "--rules",
            "rules",
            "--json",
            "--no-timing",
            "--state",
        ])
        .arg(&state)
        .arg(&first_path)
        .output()
        .expect("replay runs");
    assert!(
        replayed.status.success(),
        "{}",
        String::from_utf8_lossy(&replayed.stderr)
    );
    assert!(state.exists(), "replay --state writes the snapshot");

    let full = riskgate()
        .args(["score", "--rules", "rules", "fixtures/hk-sample.jsonl"])
        .output()
        .expect("score runs");
    let continued = riskgate()
        .args(["score", "--rules", "rules", "--state"])
        .arg(&state)
        .arg(&second_path)
        .output()
        .expect("score runs");
    assert!(full.status.success() && continued.status.success());
    let full = String::from_utf8(full.stdout).expect("utf-8");
    let continued = String::from_utf8(continued.stdout).expect("utf-8");
    let withdrawals_in_first = first
        .iter()
        .filter(|l| l.contains("\"withdrawal\""))
        .count();
    let tail: Vec<&str> = full.lines().skip(withdrawals_in_first).collect();
    assert_eq!(
        tail,
        continued.lines().collect::<Vec<_>>(),
        "decisions after the split match one full run"
    );
}
