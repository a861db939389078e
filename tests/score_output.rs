//! `riskgate score`'s loop ([`EventStream::write_decisions`]) writes each decision from a view
//! borrowing reused buffers; its lines must be the owned [`riskgate::Decision`]'s JSON, byte for
//! byte, on a generated stream (every tier, warnings in several locales, shadow packs' hits)
//! with duplicate ids, invalid lines and blank lines mixed in.

use std::io::Cursor;

use riskgate::{EventStream, LineReader, Processed, Scorer};

fn rules_dir() -> String {
    concat!(env!("CARGO_MANIFEST_DIR"), "/rules").to_string()
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
    let mut out = Vec::new();
    let invalid = EventStream::new()
        .write_decisions(
            &scorer,
            &mut LineReader::new(Cursor::new(input.as_bytes())),
            &mut out,
            None,
        )
        .expect("to the end");
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
