//! `riskgate keygen`, `riskgate sign` and `riskgate review`, end to end through the built
//! binary: a partner makes a key and signs a new version of its pack, and the exchange reviews
//! it against the live rule set on a recorded stream.

mod support;

use std::path::{Path, PathBuf};

use serde_json::{json, Value};
use support::contract::*;

/// The live set: packs `p` (signed, HK, version 1) and `q` (unsigned, HK), under a policy that
/// grants both; returns it with the partner's key file (in its own temp dir).
struct World {
    live: Rules,
    keys: tempfile::TempDir,
    key: PathBuf,
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn keygen(out: &Path) -> String {
    let (code, stdout, stderr) = cli(&["keygen", s(out)], None);
    assert_eq!(code, 0, "{stderr}");
    let public = stdout.trim().to_string();
    assert!(public.starts_with("ed25519:"), "{public}");
    public
}

fn sign(key: &Path, pack: &Path) {
    let (code, stdout, stderr) = cli(&["sign", "--key", s(key), s(pack)], None);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(pack.join("pack.sig").exists());
}

/// Writes pack `p` at `dir/p`: rule `big` (amount >= 1000, score 40), and in version 2 also
/// `repeat` (a prior withdrawal, score 30, floor warn); one passing test.
fn write_p(dir: &Path, version: u32) {
    let mut manifest = format!(
        "id = \"p\"\nname = \"Partner P\"\nversion = \"{version}\"\nregions = [\"HK\"]\n\n[[rules]]\nid = \"big\"\nscript = \"big.rhai\"\nscore = 40\nreason = \"Large amount\"\n"
    );
    std::fs::create_dir_all(dir.join("p/tests")).unwrap();
    std::fs::write(dir.join("p/big.rhai"), "tx.amount_usd >= 1000.0").unwrap();
    if version >= 2 {
        manifest.push_str("\n[[rules]]\nid = \"repeat\"\nscript = \"repeat.rhai\"\nscore = 30\nreason = \"Again\"\nmin_tier = \"warn\"\n");
        std::fs::write(dir.join("p/repeat.rhai"), "tx.prior_withdrawals >= 1").unwrap();
    }
    std::fs::write(dir.join("p/pack.toml"), manifest).unwrap();
    let test = wd("t1", "tu", &at(0), 5000.0, "X")
        .set("expect", json!({"tier": "notice", "hits": ["p/big"]}))
        .line();
    std::fs::write(dir.join("p/tests/basic.jsonl"), format!("{test}\n")).unwrap();
}

fn world() -> World {
    let keys = tempfile::tempdir().unwrap();
    let key = keys.path().join("p.key");
    let public = keygen(&key);
    let live = Rules::with_policy(&format!(
        "{}\n[partners.p]\nregions = [\"HK\"]\npublic_key = \"{public}\"\n\n[partners.q]\nregions = [\"HK\", \"SG\"]\n\n[partners.n]\nregions = [\"SG\"]\nmode = \"shadow\"\n",
        policy_default_limits("ignore")
    ));
    write_p(live.path(), 1);
    sign(&key, &live.path().join("p"));
    live.pack(
        "q",
        "regions = [\"HK\"]",
        &[("tiny", "tx.amount_usd < 1.0", "score = 5")],
    );
    World { live, keys, key }
}

/// Version 2 of `p`, signed, in a folder of its own (not inside the live set).
fn candidate(w: &World) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    write_p(dir.path(), 2);
    sign(&w.key, &dir.path().join("p"));
    dir
}

/// A labeled stream over ten days: each of users a..d withdraws 5000 twice (scam on the second),
/// a day apart, and user e once (legit).
fn stream(dir: &Path) -> PathBuf {
    let mut lines = Vec::new();
    for (i, user) in ["a", "b", "c", "d"].iter().enumerate() {
        let day = 2 * i as i64;
        lines.push(
            wd(&format!("{user}1"), user, &at(day * DAY), 5000.0, "D1")
                .set("label", json!("legit"))
                .line(),
        );
        lines.push(
            wd(
                &format!("{user}2"),
                user,
                &at((day + 1) * DAY),
                5000.0,
                "D2",
            )
            .set("label", json!("scam"))
            .line(),
        );
    }
    lines.push(
        wd("e1", "e", &at(9 * DAY), 50.0, "D3")
            .set("label", json!("legit"))
            .line(),
    );
    let path = dir.join("events.jsonl");
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    path
}

fn review(w: &World, cand: &Path, extra: &[&str], events: &Path) -> (i32, Value, String) {
    let mut args = vec![
        "review",
        "--rules",
        s(w.live.path()),
        "--candidate",
        s(cand),
    ];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["--json", "--no-timing", s(events)]);
    let (code, stdout, stderr) = cli(&args, None);
    let report = serde_json::from_str(&stdout).unwrap_or(Value::Null);
    (code, report, format!("{stdout}{stderr}"))
}

#[test]
fn keygen_writes_an_owner_only_key_and_prints_the_public_key() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("key");
    let public = keygen(&out);
    let text = std::fs::read_to_string(&out).unwrap();
    assert!(text.starts_with("ed25519-secret:") && text.ends_with('\n'));
    let secret = riskgate::signing::SecretKey::parse(&text).unwrap();
    assert_eq!(secret.public().to_string(), public);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&out).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    // Nothing left behind but the key.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
}

#[test]
fn a_signed_new_version_passes_review_with_its_baseline_diff() {
    let w = world();
    let cand = candidate(&w);
    let events = stream(w.keys.path());
    let (code, r, out) = review(&w, &cand.path().join("p"), &[], &events);
    assert_eq!(code, 0, "{out}");
    assert_eq!(r["verdict"], "ok");
    assert_eq!(r["pack"], "p");
    assert_eq!(r["live_version"], "1");
    assert_eq!(r["candidate_version"], "2");
    assert_eq!(r["bounded"], true);
    assert_eq!(r["signature_required"], true);
    assert_eq!(r["problems"], json!([]));
    assert_eq!(r["tests"]["expectations"], 1);
    assert_eq!(r["tests"]["failures"], json!([]));

    let replay = &r["replay"];
    assert_eq!(replay["stream"]["withdrawals"], 9);
    let baseline = &replay["baseline"];
    // The second withdrawal of each of a..d: notice (40) under the live set, warn (70) with v2.
    assert_eq!(baseline["changed"], 4);
    let transitions = baseline["transitions"].as_array().unwrap();
    assert_eq!(transitions.len(), 1);
    assert_eq!(
        (transitions[0]["from"].clone(), transitions[0]["to"].clone()),
        (json!("notice"), json!("warn"))
    );
    assert_eq!(transitions[0]["scam"], 4);
    let examples: Vec<&str> = transitions[0]["examples"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap())
        .collect();
    assert_eq!(examples, ["a2", "b2", "c2"]);
    // New hits per rule.
    let changes = baseline["rule_changes"].as_array().unwrap();
    let repeat = changes.iter().find(|c| c["rule"] == "p/repeat").unwrap();
    assert_eq!(
        (
            repeat["baseline_hits"].clone(),
            repeat["candidate_hits"].clone()
        ),
        (json!(0), json!(4))
    );
    assert_eq!(repeat["new_hits"], 4);
    let big = changes.iter().find(|c| c["rule"] == "p/big").unwrap();
    assert_eq!(
        (big["new_hits"].clone(), big["lost_hits"].clone()),
        (json!(0), json!(0))
    );
    // Recall and friction at warn: 4 of 4 scam, 0 of 5 legit, against 0 under the live set.
    let warn = replay["levels"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["level"] == "warn")
        .unwrap();
    assert_eq!(warn["recall"], 1.0);
    assert_eq!(warn["friction"], 0.0);
    let delta = baseline["deltas"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["level"] == "warn")
        .unwrap();
    assert_eq!(delta["recall"], 1.0);
}

#[test]
fn the_text_and_html_reports_say_what_was_checked() {
    let w = world();
    let cand = candidate(&w);
    let events = stream(w.keys.path());
    let html = w.keys.path().join("review.html");
    let (code, stdout, stderr) = cli(
        &[
            "review",
            "--rules",
            s(w.live.path()),
            "--candidate",
            s(&cand.path().join("p")),
            "--no-timing",
            "--html",
            s(&html),
            s(&events),
        ],
        None,
    );
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(
        stdout.contains("[1] signature and authority: ok: signature valid"),
        "{stdout}"
    );
    assert!(stdout.contains("[2] pack tests: ok"), "{stdout}");
    assert!(stdout.contains("p/repeat"), "{stdout}");
    assert!(stdout.trim_end().ends_with("review passed"), "{stdout}");
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(page.contains("Review of pack <code>p</code>") && page.contains("p/repeat"));
}

#[test]
fn an_unsigned_or_tampered_candidate_is_refused_with_status_1() {
    let w = world();
    let events = stream(w.keys.path());

    let unsigned = tempfile::tempdir().unwrap();
    write_p(unsigned.path(), 2);
    let (code, r, out) = review(&w, &unsigned.path().join("p"), &[], &events);
    assert_eq!(code, 1, "{out}");
    assert_eq!(r["verdict"], "refused");
    let problems = r["problems"].as_array().unwrap();
    assert!(
        problems.iter().any(|p| {
            let p = p.as_str().unwrap();
            p.starts_with("p/") && p.contains("signature")
        }),
        "{problems:?}"
    );
    assert_eq!(r["replay"], Value::Null);
    assert_eq!(r["tests"], Value::Null);

    let tampered = candidate(&w);
    std::fs::write(tampered.path().join("p/big.rhai"), "tx.amount_usd >= 1.0").unwrap();
    let (code, r, _) = review(&w, &tampered.path().join("p"), &[], &events);
    assert_eq!((code, r["verdict"].clone()), (1, json!("refused")));

    // Signed by someone else.
    let forged = tempfile::tempdir().unwrap();
    write_p(forged.path(), 2);
    let other = w.keys.path().join("other.key");
    keygen(&other);
    sign(&other, &forged.path().join("p"));
    let (code, r, _) = review(&w, &forged.path().join("p"), &[], &events);
    assert_eq!((code, r["verdict"].clone()), (1, json!("refused")));

    // The live set was not touched.
    assert!(riskgate::check(w.live.path()).passed());
}

#[test]
fn a_candidate_beyond_its_authority_is_refused() {
    let w = world();
    let events = stream(w.keys.path());
    // q may cover HK and SG, not every country; and its floors stop at warn.
    let cand = tempfile::tempdir().unwrap();
    let q = Rules { dir: cand };
    q.pack(
        "q",
        "regions = [\"*\"]",
        &[("tiny", "true", "min_tier = \"cool_off\"")],
    );
    let (code, r, out) = review(&w, &q.path().join("q"), &[], &events);
    assert_eq!(code, 1, "{out}");
    assert_eq!(r["verdict"], "refused");
    let problems: Vec<&str> = r["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap())
        .collect();
    assert_eq!(problems.len(), 2, "{problems:?}");
    assert!(
        problems.iter().all(|p| p.starts_with("q/pack.toml:")),
        "{problems:?}"
    );

    // A pack the policy has no entry for.
    let z = Rules {
        dir: tempfile::tempdir().unwrap(),
    };
    z.pack("z", "regions = [\"HK\"]", &[("a", "true", "")]);
    let (code, r, _) = review(&w, &z.path().join("z"), &[], &events);
    assert_eq!((code, r["verdict"].clone()), (1, json!("refused")));
    assert!(r["problems"][0].as_str().unwrap().contains("[partners.z]"));
}

#[test]
fn a_new_pack_is_added_and_runs_as_the_grant_says() {
    let w = world();
    let events = stream(w.keys.path());
    let n = Rules {
        dir: tempfile::tempdir().unwrap(),
    };
    n.pack("n", "regions = [\"SG\"]", &[("all", "true", "score = 90")]);
    let (code, r, out) = review(&w, &n.path().join("n"), &[], &events);
    assert_eq!(code, 0, "{out}");
    assert_eq!(r["live_version"], Value::Null);
    assert_eq!(r["mode"], "shadow");
    let packs: Vec<&str> = r["replay"]["ruleset"]["packs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap())
        .collect();
    assert_eq!(packs, ["n", "p", "q"]);
    // SG only: no HK withdrawal changes.
    assert_eq!(r["replay"]["baseline"]["changed"], 0);
}

#[test]
fn failing_pack_tests_fail_the_review() {
    let w = world();
    let events = stream(w.keys.path());
    let cand = candidate(&w);
    let bad = wd("t2", "tu2", &at(0), 5000.0, "X")
        .set("expect", json!({"tier": "cool_off"}))
        .line();
    std::fs::write(cand.path().join("p/tests/bad.jsonl"), format!("{bad}\n")).unwrap();
    sign(&w.key, &cand.path().join("p"));
    let (code, r, out) = review(&w, &cand.path().join("p"), &[], &events);
    assert_eq!(code, 1, "{out}");
    assert_eq!(r["verdict"], "tests_failed");
    let failures = r["tests"]["failures"].as_array().unwrap();
    assert_eq!(failures.len(), 1);
    assert!(failures[0]
        .as_str()
        .unwrap()
        .starts_with("p/tests/bad.jsonl:1:"));
    // The replay still ran, for the analyst.
    assert_eq!(r["replay"]["stream"]["withdrawals"], 9);
}

#[test]
fn since_reports_the_last_days_with_the_history_before_them() {
    let w = world();
    let cand = candidate(&w);
    let events = stream(w.keys.path());
    // The stream ends at day 9 (e1); the last 3 days hold d1 (day 6), d2 (day 7) and e1.
    let (code, r, out) = review(&w, &cand.path().join("p"), &["--since", "3"], &events);
    assert_eq!(code, 0, "{out}");
    assert_eq!(r["since"], at(6 * DAY));
    assert_eq!(r["replay"]["stream"]["withdrawals"], 3);
    assert_eq!(r["replay"]["stream"]["first_ts"], at(6 * DAY));
    // d2 still sees d1 as history: p/repeat hits it.
    assert_eq!(r["replay"]["baseline"]["changed"], 1);
    let example = &r["replay"]["baseline"]["transitions"][0]["examples"][0];
    assert_eq!(example["id"], "d2");
}

#[test]
fn usage_and_io_problems_exit_2() {
    let w = world();
    let cand = candidate(&w);
    let events = stream(w.keys.path());
    let missing = w.keys.path().join("missing.jsonl");
    let (code, _, _) = review(&w, &cand.path().join("p"), &[], &missing);
    assert_eq!(code, 2);
    let (code, _, _) = cli(
        &[
            "review",
            "--rules",
            "/nonexistent/rules",
            "--candidate",
            s(&cand.path().join("p")),
            s(&events),
        ],
        None,
    );
    assert_eq!(code, 2);
    let (code, _, _) = cli(&["review", "--rules", s(w.live.path()), s(&events)], None);
    assert_eq!(code, 2, "--candidate is required");
}
