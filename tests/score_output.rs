//! `riskgate score`'s loop ([`EventStream::write_decisions`]) writes each decision from a view
//! borrowing reused buffers; its lines must be the owned [`riskgate::Decision`]'s JSON, byte for
//! byte, on a generated stream (every tier, warnings in several locales, shadow packs' hits)
//! with duplicate ids, invalid lines and blank lines mixed in.

mod support;

use std::io::Cursor;

use riskgate::{EventStream, LineReader, Processed, Scorer};
use support::contract::{wd, Rules, T0};

fn rules_dir() -> String {
    concat!(env!("CARGO_MANIFEST_DIR"), "/rules").to_string()
}

/// `riskgate score`'s loop on `input`: its output and the number of invalid lines.
fn score_loop(scorer: &Scorer, input: &str) -> (Vec<u8>, usize) {
    let mut out = Vec::new();
    let invalid = EventStream::new()
        .write_decisions(
            scorer,
            &mut LineReader::new(Cursor::new(input.as_bytes())),
            &mut out,
            None,
        )
        .expect("to the end");
    (out, invalid)
}

#[test]
fn decision_lines_are_the_owned_decisions_json() {
    let mut generated = Vec::new();
    let config = riskgate::gen::GenConfig::new(11, 300, 20);
    riskgate::gen::generate(&config, &mut generated).expect("generated");
    let generated = String::from_utf8(generated).expect("UTF-8");
    let mut lines: Vec<&str> = generated.lines().collect();
    // A duplicate of an earlier withdrawal, an invalid line and a blank one, mid-stream.
    let first_withdrawal = lines
        .iter()
        .copied()
        .find(|l| l.contains("\"withdrawal\""))
        .expect("a withdrawal");
    let middle = lines.len() / 2;
    lines.insert(middle, first_withdrawal);
    lines.insert(middle, "{\"kind\":\"withdrawal\"}");
    lines.insert(middle, "");
    let input = lines.join("\n");

    let scorer = Scorer::from_dir(rules_dir()).expect("rules load");
    let (out, invalid) = score_loop(&scorer, &input);
    assert_eq!(invalid, 2);

    // The same lines through the owned path.
    let scorer = Scorer::from_dir(rules_dir()).expect("rules load");
    let mut stream = EventStream::new();
    let mut expected = String::new();
    let mut decisions = 0;
    let mut warnings = 0;
    for line in &lines {
        match stream.process(&scorer, Ok(line)) {
            Ok(Processed::Scored(_, d)) => {
                decisions += 1;
                warnings += usize::from(d.warning.is_some());
                expected.push_str(&d.to_json());
                expected.push('\n');
            }
            Ok(_) => {}
            Err(e) => {
                let message = match e.kind() {
                    riskgate::ErrorKind::InvalidEvent { message, .. } => message.clone(),
                    _ => e.to_string(),
                };
                let message = serde_json::to_string(&message).expect("a string");
                expected.push_str(&format!(
                    "{{\"line\":{},\"error\":{message}}}",
                    stream.line()
                ));
                expected.push('\n');
            }
        }
    }
    assert!(
        decisions > 1000 && warnings > 10,
        "{decisions} decisions, {warnings} warnings"
    );
    assert_eq!(String::from_utf8(out).expect("UTF-8"), expected);
}

/// The parts the shipped rules never produce, written by hand too: rule errors (quotes and line
/// ends in the message), held-out decisions with `withheld`, shadow hits, and warning texts with
/// every character JSON escapes (control characters, quotes, backslashes) and non-ASCII text.
#[test]
fn errors_holdout_shadow_hits_and_escaped_texts_are_the_owned_decisions_json() {
    let rules = Rules::with_errors_and_holdout("ignore");
    rules.append(
        "p/pack.toml",
        "[warnings.w.en]\ntitle = \"Stop \\\"now\\\" \\\\ \\u001b\\t\"\nbody = \"Send {amount_usd} \\n to {destination}? \u{1f642}\"\n\
         [warnings.w.\"zh-HK\"]\ntitle = \"停\"\nbody = \"{amount_usd} 美元\\r\\b\\f\"\n",
    );
    rules.pack(
        "s",
        "regions = [\"*\"]\nmode = \"shadow\"",
        &[("shadow-r", "tx.amount_usd > 30.0", "")],
    );
    let lines: Vec<String> = (0..80)
        .map(|i| {
            let w = wd(
                &format!("w\"{i}"),
                &format!("u-{i}"),
                T0,
                f64::from(i) * 1.5,
                "T\\x",
            );
            let w = if i % 2 == 0 { w.locale("zh-HK") } else { w };
            w.line()
        })
        .collect();
    let input = lines.join("\n");

    let (out, _) = score_loop(&rules.scorer(), &input);

    let scorer = rules.scorer();
    let mut stream = EventStream::new();
    let mut expected = String::new();
    let (mut errors, mut withheld, mut shadow, mut warnings) = (0, 0, 0, 0);
    for line in &lines {
        let Ok(Processed::Scored(_, d)) = stream.process(&scorer, Ok(line)) else {
            panic!("every line is a withdrawal: {line}");
        };
        errors += usize::from(!d.errors.is_empty());
        withheld += usize::from(d.withheld.is_some());
        shadow += usize::from(!d.shadow_hits.is_empty());
        warnings += usize::from(d.warning.is_some());
        expected.push_str(&d.to_json());
        expected.push('\n');
    }
    assert!(
        errors > 5 && withheld > 5 && shadow > 5 && warnings > 5,
        "{errors} with errors, {withheld} withheld, {shadow} with shadow hits, {warnings} warned"
    );
    assert_eq!(String::from_utf8(out).expect("UTF-8"), expected);
}
