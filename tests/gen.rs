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
    // fixtures/README.md: riskgate gen --seed 2026 --users 250 --days 40 --warmup-days 60
    let shipped = std::fs::read(root().join("fixtures/hk-sample.jsonl")).expect("fixture");
    let mut config = GenConfig::new(2026, 250, 40);
    config.warmup_days = 60;
    assert_eq!(shipped, bytes(&config));
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
        "big-purchase",
        "cold-wallet",
        "first-large",
        "merchant-payer",
        "p2p-payer",
        "regular",
        "reset-legit",
        "telegram-newcomer",
        "traveller",
        "whale",
    ];
    let scams = [
        "fake-support",
        "job-scam",
        "mule-victim",
        "romance",
        "telegram-coach",
    ];
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
    // Investment coach: mostly met on Telegram or WhatsApp, escalating transfers.
    let coach = of("telegram-coach", "scam");
    let chat = coach
        .iter()
        .filter(|w| w["user"]["referral"] == "telegram" || w["user"]["referral"] == "whatsapp")
        .count();
    assert!(chat * 2 > coach.len(), "{chat} of {}", coach.len());
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
    // Fake support: most drains follow a password reset (the others: a remote-control app).
    let fake = of("fake-support", "scam");
    assert!(!fake.is_empty());
    let after_reset = fake
        .iter()
        .filter(|w| {
            let user = w["user_id"].as_str().expect("user");
            let ts = w["ts"].as_str().expect("ts");
            lines.iter().any(|e| {
                e["kind"] == "password_reset"
                    && e["user_id"] == user
                    && e["ts"].as_str().expect("ts") < ts
            })
        })
        .count();
    assert!(
        after_reset * 3 > fake.len() * 2,
        "{after_reset} of {}",
        fake.len()
    );
    assert!(
        of("fake-support", "scam")
            .iter()
            .any(|w| w["device_id"].as_str().is_some_and(|d| d.ends_with("-x"))),
        "most drains come from the taker's new device"
    );
    // Job/task scam: several small payments, then larger ones, to a platform others pay too.
    let mut jobs: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
    for w in of("job-scam", "scam") {
        jobs.entry(w["user_id"].as_str().expect("user"))
            .or_default()
            .push(w["amount_usd"].as_f64().expect("amount"));
    }
    assert!(jobs.values().any(|a| a.len() >= 5
        && a.first().is_some_and(|f| *f < 150.0)
        && a.iter().any(|x| *x > 300.0)));
    // Popular services: one address paid by many honest users.
    let mut merchant_payers: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for w in of("merchant-payer", "legit") {
        merchant_payers
            .entry(w["destination"].as_str().expect("dest"))
            .or_default()
            .insert(w["user_id"].as_str().expect("user"));
    }
    assert!(merchant_payers.values().any(|u| u.len() >= 20));
    // P2P addresses: paid by a handful of honest users, never more.
    let mut p2p: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for w in of("p2p-payer", "legit") {
        p2p.entry(w["destination"].as_str().expect("dest"))
            .or_default()
            .insert(w["user_id"].as_str().expect("user"));
    }
    assert!(p2p.values().any(|u| u.len() >= 2));
}

#[test]
fn warmup_history_comes_before_the_window_unlabeled() {
    let mut config = GenConfig::new(4, 300, 20);
    config.warmup_days = 45;
    let text = String::from_utf8(bytes(&config)).expect("utf8");
    let start = Timestamp::parse("2026-11-01T00:00:00Z").expect("ts");
    let warm_from = Timestamp::parse("2026-09-17T00:00:00Z").expect("ts");
    let (mut warm, mut measured) = (0, 0);
    for line in text.lines() {
        let event = Event::parse_line(line).expect("valid");
        assert!(event.ts() >= warm_from);
        let raw: serde_json::Value = serde_json::from_str(line).expect("json");
        if raw["kind"] == "withdrawal" {
            if event.ts() < start {
                warm += 1;
                assert!(raw.get("label").is_none(), "warm-up is unlabeled: {line}");
                assert!(raw["typology"].is_string());
            } else {
                measured += 1;
                assert!(raw["label"] == "scam" || raw["label"] == "legit");
            }
        }
    }
    assert!(warm > 0 && measured > 0, "{warm} {measured}");
}

#[test]
fn mix_amounts_and_pace_change_the_stream() {
    let mut config = GenConfig::new(6, 400, 30);
    config.mix = riskgate::gen::parse_mix(
        "telegram-coach=0,fake-support=0,mule-victim=0,job-scam=0,romance=1",
    )
    .expect("valid mix");
    let text = String::from_utf8(bytes(&config)).expect("utf8");
    let scam_typologies: BTreeSet<String> = text
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("json"))
        .filter(|v| v["label"] == "scam")
        .map(|v| v["typology"].as_str().expect("typology").to_string())
        .collect();
    assert_eq!(scam_typologies, BTreeSet::from(["romance".to_string()]));

    let total = |config: &GenConfig| -> f64 {
        String::from_utf8(bytes(config))
            .expect("utf8")
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("json"))
            .filter_map(|v| v["amount_usd"].as_f64())
            .sum()
    };
    let base = GenConfig::new(6, 200, 30);
    let mut doubled = base.clone();
    doubled.amount_scale = 2.0;
    let ratio = total(&doubled) / total(&base);
    assert!((1.9..2.1).contains(&ratio), "{ratio}");
    let mut fast = base.clone();
    fast.pace = 0.5;
    assert_ne!(bytes(&fast), bytes(&base));

    assert!(riskgate::gen::parse_mix("nonsense=1").is_err());
    assert!(riskgate::gen::parse_mix("romance=-1").is_err());
    assert!(riskgate::gen::parse_mix("romance").is_err());
}
