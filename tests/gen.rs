//! `riskgate gen` (issue 3): deterministic, labeled, realistic event streams.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::PathBuf;
use std::process::Command;

use riskgate::gen::{generate, GenConfig};
use riskgate::{normalize_address, Event, Status, Timestamp};

/// The binary under test; `RISKGATE_BIN` overrides it (for worktrees sharing one target dir,
/// where `target/debug/riskgate` may be another checkout's build).
fn bin() -> PathBuf {
    std::env::var_os("RISKGATE_BIN").map_or_else(
        || PathBuf::from(env!("CARGO_BIN_EXE_riskgate")),
        PathBuf::from,
    )
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn bytes(config: &GenConfig) -> Vec<u8> {
    let mut out = Vec::new();
    generate(config, &mut out).expect("generates");
    out
}

#[test]
fn same_seed_same_bytes_other_seed_other_bytes() {
    let config = GenConfig::new(7, 120, 20);
    let a = bytes(&config);
    assert!(!a.is_empty());
    assert_eq!(a, bytes(&config));
    assert_ne!(a, bytes(&GenConfig::new(8, 120, 20)));
}

#[test]
fn the_cli_writes_the_same_bytes_to_stdout_and_to_a_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("out.jsonl");
    let args = [
        "gen", "--seed", "5", "--users", "40", "--days", "10", "--region", "HK",
    ];
    let stdout = Command::new(bin()).args(args).output().expect("runs");
    assert!(stdout.status.success());
    let file = Command::new(bin())
        .args(args)
        .arg("--out")
        .arg(&path)
        .output()
        .expect("runs");
    assert!(file.status.success());
    assert_eq!(stdout.stdout, std::fs::read(&path).expect("written"));
    assert_eq!(stdout.stdout, bytes(&GenConfig::new(5, 40, 10)));
}

#[test]
fn the_shipped_fixture_is_reproducible_from_its_recorded_command() {
    // fixtures/README.md: riskgate gen --seed 2026 --users 250 --days 40
    let shipped = std::fs::read(root().join("fixtures/hk-sample.jsonl")).expect("fixture");
    assert_eq!(shipped, bytes(&GenConfig::new(2026, 250, 40)));
}

#[test]
fn streams_are_valid_sorted_labeled_and_hold_every_typology() {
    let mut config = GenConfig::new(99, 600, 45);
    config.region = "SG".into();
    let text = String::from_utf8(bytes(&config)).expect("utf8");
    let start = Timestamp::parse("2026-11-01T00:00:00Z").expect("ts");
    let end = Timestamp::parse("2026-12-16T00:00:00Z").expect("ts");
    let scameter: HashSet<String> =
        std::fs::read_to_string(root().join("rules/hk-police/watchlists/scameter.txt"))
            .expect("watchlist")
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(|l| normalize_address(l).into_owned())
            .collect();
    let darklist: Vec<serde_json::Value> = serde_json::from_str(
        &std::fs::read_to_string(
            root().join("rules/community-darklist/watchlists/mew-darklist.json"),
        )
        .expect("darklist"),
    )
    .expect("json");
    let darklist: HashSet<String> = darklist
        .iter()
        .map(|e| normalize_address(e["address"].as_str().expect("address").trim()).into_owned())
        .collect();

    let mut last = start;
    let mut ids = HashSet::new();
    let mut kinds = BTreeMap::new();
    let mut typologies: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let (mut cancelled, mut watchlisted_scam, mut watchlisted_legit) = (0, 0, 0);
    for line in text.lines() {
        let event = Event::parse_line(line).expect("every line is a valid event");
        assert!(event.ts() >= last, "sorted by time");
        assert!(
            event.ts() >= start && event.ts() < end,
            "inside the requested days"
        );
        last = event.ts();
        let raw: serde_json::Value = serde_json::from_str(line).expect("json");
        *kinds
            .entry(raw["kind"].as_str().expect("kind").to_string())
            .or_insert(0) += 1;
        if let Event::Withdrawal(w) = event {
            assert!(ids.insert(w.id.clone()), "unique ids");
            assert_eq!(w.user.country, "SG");
            let label = raw["label"]
                .as_str()
                .expect("every withdrawal is labeled")
                .to_string();
            assert!(label == "scam" || label == "legit");
            let typology = raw["typology"]
                .as_str()
                .expect("every withdrawal names its typology")
                .to_string();
            typologies
                .entry(typology)
                .or_default()
                .insert(label.clone());
            if w.status == Status::Cancelled {
                cancelled += 1;
            }
            let dest = normalize_address(&w.destination).into_owned();
            if scameter.contains(&dest) || darklist.contains(&dest) {
                if label == "scam" {
                    watchlisted_scam += 1;
                } else {
                    watchlisted_legit += 1;
                }
            }
        }
    }
    assert!(
        kinds["login"] > 0 && kinds["password_reset"] > 0 && kinds["withdrawal"] > 0,
        "{kinds:?}"
    );
    assert!(cancelled > 0);
    assert!(
        watchlisted_scam > 0,
        "some scam destinations are on the shipped watchlists"
    );
    assert_eq!(
        watchlisted_legit, 0,
        "no honest withdrawal goes to a listed address"
    );
    let honest = [
        "first-large",
        "regular",
        "reset-legit",
        "telegram-newcomer",
        "traveller",
        "whale",
    ];
    let scams = ["fake-support", "mule-victim", "romance", "telegram-coach"];
    for t in honest {
        assert_eq!(
            typologies
                .get(t)
                .map(|l| l.iter().cloned().collect::<Vec<_>>()),
            Some(vec!["legit".to_string()]),
            "{t}"
        );
    }
    for t in scams {
        assert!(typologies.get(t).is_some_and(|l| l.contains("scam")), "{t}");
    }
}

#[test]
fn typologies_show_their_signals() {
    let text = String::from_utf8(bytes(&GenConfig::new(3, 800, 40))).expect("utf8");
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    let of = |t: &str, label: &str| -> Vec<&serde_json::Value> {
        lines
            .iter()
            .filter(|l| l["typology"] == t && l["label"] == label)
            .collect()
    };
    // Investment coach: Telegram referral, escalating transfers.
    let coach = of("telegram-coach", "scam");
    assert!(coach.iter().all(|w| w["user"]["referral"] == "telegram"));
    // Mule collection: several victims pay one address.
    let mut payers: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for w in of("mule-victim", "scam") {
        payers
            .entry(w["destination"].as_str().expect("dest"))
            .or_default()
            .insert(w["user_id"].as_str().expect("user"));
    }
    assert!(payers.values().any(|users| users.len() >= 4), "{payers:?}");
    // Romance: one address, growing amounts.
    let romance = of("romance", "scam");
    let mut by_user: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
    for w in &romance {
        by_user
            .entry(w["user_id"].as_str().expect("user"))
            .or_default()
            .push(w["amount_usd"].as_f64().expect("amount"));
    }
    assert!(by_user
        .values()
        .any(|a| a.len() >= 3 && a.windows(2).all(|p| p[1] > p[0])));
    // Fake support: the drain comes from a device the user just logged in with, after a reset.
    let fake = of("fake-support", "scam");
    assert!(!fake.is_empty());
    for w in fake {
        let user = w["user_id"].as_str().expect("user");
        let ts = w["ts"].as_str().expect("ts");
        assert!(lines.iter().any(|e| e["kind"] == "password_reset"
            && e["user_id"] == user
            && e["ts"].as_str().expect("ts") < ts));
        assert!(w["device_id"].as_str().expect("device").ends_with("-x"));
    }
}
