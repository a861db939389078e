//! Determinism (issue 5): the same stream and rules give byte-identical decisions, run after
//! run: `riskgate score` twice on the shipped rules, and the library in process.

mod support;

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use riskgate::{EventStream, LineReader, Processed, Scorer};
use support::hardening::withdrawal;

/// A stream touching every feature: logins, resets, repeat and shared destinations, EVM
/// addresses in both cases, cancelled withdrawals, the watchlists, and a few invalid lines.
fn stream() -> String {
    // Riskgate has watched since August (a login then): the shipped rules' cold-start guard
    // (`state_days`) would otherwise keep this short stream of old accounts quiet.
    let mut lines = vec![
        r#"{"kind":"login","ts":"2026-08-01T00:00:00Z","user_id":"u-watch","device_id":"d0"}"#
            .to_string(),
    ];
    let dests = [
        "TXa1b2c3",
        "0xAbCdEf0123456789abcdef0123456789ABCDEF01",
        "0xabcdef0123456789abcdef0123456789abcdef01",
        "TQn9Y2khEsLJW1ChVWFMSMeRDow5KcbLSE",
        "bc1qxyz",
    ];
    for i in 0..400_u32 {
        let user = format!("u{}", i % 23);
        let ts = format!(
            "2026-11-{:02}T{:02}:{:02}:00+08:00",
            1 + (i / 24) % 28,
            i % 24,
            (i * 7) % 60
        );
        match i % 11 {
            0 => lines.push(format!(
                r#"{{"kind":"login","ts":"{ts}","user_id":"{user}","device_id":"d{}"}}"#,
                i % 5
            )),
            1 => lines.push(format!(
                r#"{{"kind":"password_reset","ts":"{ts}","user_id":"{user}"}}"#
            )),
            2 => lines.push(format!("not json {i}")),
            _ => {
                let extra = match i % 4 {
                    0 => r#","status":"cancelled""#.to_string(),
                    1 => format!(r#","device_id":"d{}""#, i % 5),
                    _ => String::new(),
                };
                let country = if i % 3 == 0 { "US" } else { "HK" };
                let amount = f64::from((i * 7919) % 20000) / 3.0;
                lines.push(
                    withdrawal(
                        &format!("w{i}"),
                        &user,
                        &ts,
                        amount,
                        dests[(i % 5) as usize],
                        country,
                        &extra,
                    )
                    .replace(
                        r#""referral":"organic""#,
                        if i % 6 == 0 {
                            r#""referral":"telegram""#
                        } else {
                            r#""referral":"organic""#
                        },
                    ),
                );
            }
        }
    }
    lines.join("\n") + "\n"
}

fn rules() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("rules")
}

fn cli(input: &str) -> (Vec<u8>, Option<i32>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_riskgate"))
        .arg("score")
        .arg("--rules")
        .arg(rules())
        .arg("-")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("run riskgate");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.as_bytes())
        .expect("write stdin");
    let out = child.wait_with_output().expect("riskgate output");
    (out.stdout, out.status.code())
}

#[test]
fn the_cli_gives_byte_identical_decisions_run_after_run() {
    let input = stream();
    let (first, status1) = cli(&input);
    let (second, status2) = cli(&input);
    assert_eq!(status1, Some(1), "invalid lines make the exit status 1");
    assert_eq!(status1, status2);
    assert!(first == second, "two runs of riskgate score differ");
    let lines = first
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .count();
    let account_events = (0..400).filter(|i| i % 11 < 2).count();
    assert_eq!(
        lines,
        400 - account_events,
        "one output line per input line but logins and resets"
    );
    // The stream is not trivial: some decisions warn or hold.
    let text = String::from_utf8(first).expect("utf-8 output");
    assert!(text.contains(r#""tier":"warn""#) || text.contains(r#""tier":"cool_off""#));
}

#[test]
fn the_library_decides_the_same_as_the_cli() {
    let input = stream();
    let (cli_out, _) = cli(&input);
    let scorer = Scorer::from_dir(rules()).expect("shipped rules");
    let mut reader = LineReader::new(input.as_bytes());
    let mut stream = EventStream::new();
    let mut decisions = Vec::new();
    while let Some(line) = reader.next_line() {
        if let Ok(Processed::Scored(_, d)) = stream.process(&scorer, line) {
            decisions.push(d.to_json());
        }
    }
    let cli_decisions: Vec<String> = String::from_utf8(cli_out)
        .expect("utf-8")
        .lines()
        .filter(|l| !l.starts_with(r#"{"line":"#))
        .map(str::to_string)
        .collect();
    assert_eq!(decisions, cli_decisions);
}
