//! Property tests (issue 5): random event streams never make `score` panic and every decision
//! keeps the contract's invariants (section 4); random bytes as event lines always give a line
//! error and change no state.

mod support;

use std::io::BufReader;
use std::path::Path;

use proptest::prelude::*;
use riskgate::{Decision, ErrorKind, EventStream, LineReader, Processed, RuleSet, Scorer, Tier};
use support::hardening::*;

/// Rules exercising every part of a decision: two live packs (one capped, one with a campaign
/// window), a shadow pack, a shadow rule in a live pack, floors, warnings, numbers, errors.
/// `omit` leaves rule files out of the manifests by id, to compare sets with and without them.
fn write_rules(dir: &Path, omit: &[&str]) {
    let rule = |pack: &str, id: &str, body: &str| -> String {
        if omit.contains(&format!("{pack}/{id}").as_str()) {
            return String::new();
        }
        format!("\n[[rules]]\nid = \"{id}\"\nscript = \"{id}.rhai\"\nreason = \"{id}\"\n{body}\n")
    };
    let warning = "\n[warnings.w.en]\ntitle = \"t\"\nbody = \"{asset} {amount_usd} {destination}\"\n[warnings.w.zh]\ntitle = \"t\"\nbody = \"b\"\n";
    let alpha = format!(
        "id = \"alpha\"\nregions = [\"*\"]\nmax_score = 60\n{}{}{}{}{}{}\n[[watchlists]]\nid = \"bad\"\nfile = \"bad.txt\"\n{warning}",
        rule("alpha", "big", "score = 40\nwarning = \"w\""),
        rule("alpha", "new-address", "score = 25"),
        rule("alpha", "listed", "score = 10\nmin_tier = \"cool_off\"\nwarning = \"w\""),
        rule("alpha", "graded", "score = 1"),
        rule("alpha", "flaky", "score = 5"),
        rule("alpha", "shadowed", "score = 90\nmode = \"shadow\""),
    );
    let beta = format!(
        "id = \"beta\"\nregions = [\"HK\", \"SG\"]\nactive_from = 2026-03-01T00:00:00Z\nactive_until = 2026-09-01T00:00:00Z\n{}{}{warning}",
        rule("beta", "young", "score = 30\nwarning = \"w\""),
        rule("beta", "reset", "score = 20\nmin_tier = \"warn\""),
    );
    let gamma = format!(
        "id = \"gamma\"\nregions = [\"*\"]\nmode = \"shadow\"\n{}",
        rule("gamma", "all", "score = 70\nmin_tier = \"cool_off\"")
    );
    write_files(
        dir,
        &[
            ("policy.toml", &policy_with_limits("notice", TEST_LIMITS)),
            ("alpha/pack.toml", &alpha),
            ("alpha/big.rhai", "tx.amount_usd >= 1000.0"),
            (
                "alpha/new-address.rhai",
                "tx.is_new_address && tx.prior_withdrawals > 0",
            ),
            ("alpha/listed.rhai", "\"alpha/bad\" in tx.watchlists"),
            ("alpha/graded.rhai", "tx.withdrawals_24h * 7"),
            (
                "alpha/flaky.rhai",
                "if tx.amount_usd > 5000.0 { throw \"too much\" } false",
            ),
            ("alpha/shadowed.rhai", "tx.amount_usd > 100.0"),
            (
                "alpha/bad.txt",
                "dest-bad\n0xAbCdEf0123456789abcdef0123456789ABCDEF01\n",
            ),
            ("beta/pack.toml", &beta),
            ("beta/young.rhai", "tx.account_age_days < 30"),
            ("beta/reset.rhai", "tx.hours_since_password_reset < 48.0"),
            ("gamma/pack.toml", &gamma),
            (
                "gamma/all.rhai",
                "if tx.amount_usd > 2000.0 { throw \"shadow failure\" } true",
            ),
        ],
    );
}

fn scorer(omit: &[&str]) -> (Scorer, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    write_rules(dir.path(), omit);
    let rules = RuleSet::load(dir.path()).unwrap_or_else(|e| panic!("{e}"));
    (Scorer::new(rules), dir)
}

/// One random event line (always valid).
fn event_line() -> impl Strategy<Value = String> {
    let user = prop::sample::select(vec!["u1", "u2", "u3", "u4"]);
    let dest = prop::sample::select(vec![
        "dest-a",
        "dest-b",
        "dest-bad",
        "0xABCDEF0123456789ABCDEF0123456789ABCDEF01",
        "dest-c",
    ]);
    let amount = prop_oneof![
        Just(0.0),
        0.0..50.0f64,
        50.0..3000.0f64,
        3000.0..10000.0f64,
        Just(1e300)
    ];
    let country = prop::sample::select(vec!["HK", "SG", "US", "hk"]);
    let day = 1..28u32;
    let month = 1..12u32;
    let hour = 0..24u32;
    let created = prop::sample::select(vec![
        "2020-01-01T00:00:00Z",
        "2026-05-01T00:00:00Z",
        "2027-01-01T00:00:00Z",
        "0001-01-01T00:00:00Z",
    ]);
    let device = prop::option::of(prop::sample::select(vec!["d1", "d2"]));
    let status = prop::sample::select(vec!["completed", "cancelled"]);
    let kind = 0..6u8;
    (kind, user, dest, amount, country, month, day, hour, created, device, status).prop_map(
        |(kind, user, dest, amount, country, month, day, hour, created, device, status)| {
            let ts = format!("2026-{month:02}-{day:02}T{hour:02}:00:00+08:00");
            match kind {
                0 => format!(r#"{{"kind":"password_reset","ts":"{ts}","user_id":"{user}"}}"#),
                1 => format!(r#"{{"kind":"login","ts":"{ts}","user_id":"{user}","device_id":"{}"}}"#, device.unwrap_or("d9")),
                _ => {
                    let device = device.map(|d| format!(r#","device_id":"{d}""#)).unwrap_or_default();
                    format!(
                        r#"{{"kind":"withdrawal","id":"ID","ts":"{ts}","user_id":"{user}","asset":"USDT","network":"ETH","amount_usd":{amount:?},"destination":"{dest}","status":"{status}","user":{{"country":"{country}","created_at":"{created}","locale":"zh-HK"}}{device}}}"#
                    )
                }
            }
        },
    )
}

/// Random streams: withdrawal ids made unique.
fn stream() -> impl Strategy<Value = Vec<String>> {
    prop::collection::vec(event_line(), 1..25).prop_map(|lines| {
        lines
            .into_iter()
            .enumerate()
            .map(|(i, l)| l.replace("\"id\":\"ID\"", &format!("\"id\":\"w{i}\"")))
            .collect()
    })
}

fn decisions(scorer: &Scorer, lines: &[String]) -> Vec<Decision> {
    let mut stream = EventStream::new();
    let mut out = Vec::new();
    for line in lines {
        match stream.process(scorer, Ok(line)) {
            Ok(Processed::Scored(_, d)) => out.push(d),
            Ok(_) => {}
            Err(e) => panic!("a valid line was refused: {e}: {line}"),
        }
    }
    out
}

fn sorted<T>(items: &[T], key: impl Fn(&T) -> &str) -> bool {
    items.windows(2).all(|w| key(&w[0]) <= key(&w[1]))
}

/// Everything of a decision but the rule set id.
fn essence(d: &Decision) -> String {
    let mut d = d.clone();
    d.ruleset = "".into();
    d.to_json()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn decisions_keep_the_contract_invariants(lines in stream()) {
        let (full, _a) = scorer(&[]);
        let (no_shadow, _b) = scorer(&["alpha/shadowed", "gamma/all"]);
        let (no_listed, _c) = scorer(&["alpha/listed"]);
        let thresholds = full.rules().policy().thresholds;
        let d_full = decisions(&full, &lines);
        let d_no_shadow = decisions(&no_shadow, &lines);
        let d_no_listed = decisions(&no_listed, &lines);
        for ((d, s), l) in d_full.iter().zip(&d_no_shadow).zip(&d_no_listed) {
            // Tier never below the score's tier.
            prop_assert!(d.tier >= thresholds.tier(d.score), "{}", d.to_json());
            // Lists sorted by rule id.
            prop_assert!(sorted(&d.hits, |h| &h.rule), "{}", d.to_json());
            prop_assert!(sorted(&d.shadow_hits, |h| &h.rule), "{}", d.to_json());
            prop_assert!(sorted(&d.errors, |e| &e.rule), "{}", d.to_json());
            // Pack caps hold: the score is the sum of each pack's hits, capped (alpha at 60).
            let pack_sum = |p: &str| d.hits.iter().filter(|h| h.rule.starts_with(p)).map(|h| h.score).sum::<i64>();
            prop_assert_eq!(d.score, pack_sum("alpha/").min(60) + pack_sum("beta/") + pack_sum("gamma/"));
            // Shadow rules never change tier or score (nor anything but the shadow lists).
            prop_assert_eq!(d.tier, s.tier);
            prop_assert_eq!(d.score, s.score);
            prop_assert_eq!(&d.hits, &s.hits);
            prop_assert!(d.shadow_hits.iter().all(|h| &*h.rule == "alpha/shadowed" || &*h.rule == "gamma/all"));
            prop_assert!(d.hits.iter().all(|h| &*h.rule != "alpha/shadowed" && !h.rule.starts_with("gamma/")));
            // Removing a rule that did not fire changes nothing.
            let fired = d.hits.iter().chain(&d.shadow_hits).any(|h| &*h.rule == "alpha/listed")
                || d.errors.iter().any(|e| &*e.rule == "alpha/listed");
            if !fired {
                prop_assert_eq!(essence(d), essence(l));
            }
            // A cool_off decision says for how long; no other does.
            prop_assert_eq!(d.cool_off_hours.is_some(), d.tier == Tier::CoolOff);
            prop_assert_eq!(d.warning.is_some(), d.tier > Tier::Allow);
        }
    }

    #[test]
    fn random_bytes_as_event_lines_give_line_errors_and_change_nothing(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
        let (scorer, _dir) = scorer(&[]);
        let mut reader = LineReader::new(BufReader::new(bytes.as_slice()));
        let mut stream = EventStream::new();
        while let Some(line) = reader.next_line() {
            let blank = matches!(&line, Ok(text) if text.trim().is_empty());
            match stream.process(&scorer, line) {
                Ok(Processed::Blank) => prop_assert!(blank),
                Ok(other) => prop_assert!(false, "random bytes made an event: {other:?}"),
                Err(e) => match e.kind() {
                    ErrorKind::InvalidEvent { line, message } => {
                        prop_assert_eq!(*line, stream.line());
                        prop_assert!(!message.is_empty());
                    }
                    other => prop_assert!(false, "not a line error: {other:?}"),
                },
            }
        }
        prop_assert_eq!(scorer.user_count(), 0);
    }

    #[test]
    fn random_json_objects_never_panic_the_parser(fields in json_fields()) {
        let body: Vec<String> = fields.iter().map(|(k, v)| format!("\"{k}\":{v}")).collect();
        let line = format!("{{{}}}", body.join(","));
        let (scorer, _dir) = scorer(&[]);
        let mut stream = EventStream::new();
        // Valid or not, no panic; a valid withdrawal is decided.
        let _ = stream.process(&scorer, Ok(&line));
    }
}

/// Random objects made of the event's field names and awkward values.
fn json_fields() -> impl Strategy<Value = Vec<(&'static str, String)>> {
    let name = prop::sample::select(vec![
        "kind",
        "ts",
        "user_id",
        "id",
        "asset",
        "network",
        "amount_usd",
        "destination",
        "user",
        "device_id",
        "status",
        "label",
    ]);
    let value = prop_oneof![
        Just("null".to_string()),
        Just("\"withdrawal\"".to_string()),
        Just("\"login\"".to_string()),
        Just("1e400".to_string()),
        Just("-1".to_string()),
        Just("\"2026-01-01T00:00:00Z\"".to_string()),
        Just("{\"country\":\"HK\",\"created_at\":\"2026-01-01T00:00:00Z\"}".to_string()),
        Just("[]".to_string()),
        any::<String>().prop_map(|s| format!("{s:?}")),
    ];
    prop::collection::vec((name, value), 0..12)
}
