//! Contract section 3, "Partner authority and signed packs", and section 5 (`keygen`, `sign`):
//! what `[partners]` bounds (caps, forced shadow), every refusal (each naming the pack and a
//! line), signatures (ours, one made with OpenSSL, tampering), and that nothing outside the
//! rule set is read (links and special files are refused).

mod support;

use std::path::Path;

use riskgate::signing::{self, PublicKey, SecretKey};
use riskgate::{RuleSet, Tier};
use support::contract::*;

/// The standard test policy followed by `partners` (TOML).
fn with_partners(partners: &str) -> Rules {
    Rules::with_policy(&format!(
        "{}\n{partners}\n",
        policy_default_limits("ignore")
    ))
}

/// A pack `id` for `regions` with one rule that always hits, scoring `score`, plus `extra`
/// manifest lines for the rule.
fn always(rules: &Rules, id: &str, header: &str, score: i64, extra: &str) {
    rules.pack(
        id,
        header,
        &[("always", "true", &format!("score = {score}\n{extra}"))],
    );
}

fn hk(id: &str) -> W {
    wd(id, "u1", &at(0), 10.0, "dest")
}

/// The one problem of a rule set that must not load, as `file:line:column: message`.
fn only_problem(rules: &Rules) -> String {
    let problems = rules.problems();
    assert_eq!(problems.len(), 1, "{problems:#?}");
    problems.into_iter().next().unwrap_or_default()
}

/// The 1-based line of `needle` in a file of the rule set.
fn line_of(rules: &Rules, file: &str, needle: &str) -> usize {
    let text = std::fs::read_to_string(rules.path().join(file)).unwrap();
    text.lines().position(|l| l.contains(needle)).unwrap() + 1
}

// ---- without [partners]: v1 -------------------------------------------------------------

#[test]
fn without_a_partners_table_nothing_is_bounded() {
    let rules = Rules::new();
    always(
        &rules,
        "p",
        "regions = [\"*\"]",
        200,
        "min_tier = \"cool_off\"",
    );
    rules.file("p/pack.sig", "not a signature");
    let d = decide(&rules, &hk("w1"));
    assert_eq!((d.tier, d.score), (Tier::CoolOff, 200));
}

// ---- what a grant bounds ----------------------------------------------------------------

#[test]
fn the_cap_is_the_lower_of_the_grant_and_the_pack() {
    // Grant 50, pack 80: 50.
    let rules = with_partners("[partners.p]\nregions = [\"HK\"]\nmax_score = 50\n");
    always(&rules, "p", "regions = [\"HK\"]\nmax_score = 80", 70, "");
    let d = decide(&rules, &hk("w1"));
    assert_eq!((d.tier, d.score), (Tier::Warn, 50));
    // A hit's own score is reported before any cap.
    assert_eq!(d.hits[0].score, 70);
    assert_eq!(rules.load().packs()[0].max_score, Some(50));

    // Grant 80, pack 30: 30.
    let rules = with_partners("[partners.p]\nregions = [\"HK\"]\nmax_score = 80\n");
    always(&rules, "p", "regions = [\"HK\"]\nmax_score = 30", 70, "");
    assert_eq!(decide(&rules, &hk("w1")).score, 30);

    // Grant only: its cap. Pack only: the pack's.
    let rules = with_partners("[partners.p]\nregions = [\"HK\"]\nmax_score = 25\n");
    always(&rules, "p", "regions = [\"HK\"]", 70, "");
    assert_eq!(decide(&rules, &hk("w1")).score, 25);
    let rules = with_partners("[partners.p]\nregions = [\"HK\"]\n");
    always(&rules, "p", "regions = [\"HK\"]\nmax_score = 35", 70, "");
    assert_eq!(decide(&rules, &hk("w1")).score, 35);
}

#[test]
fn mode_shadow_runs_the_whole_pack_as_shadow() {
    let rules = with_partners(
        "[partners.p]\nregions = [\"HK\"]\nmode = \"shadow\"\n\n[partners.q]\nregions = [\"HK\"]\n",
    );
    always(
        &rules,
        "p",
        "regions = [\"HK\"]\nmode = \"live\"",
        95,
        "min_tier = \"warn\"",
    );
    always(&rules, "q", "regions = [\"HK\"]", 25, "");
    let d = decide(&rules, &hk("w1"));
    // p's hit is reported, never scored, and its floor does not apply.
    assert_eq!((d.tier, d.score), (Tier::Notice, 25));
    assert_eq!(ids(&d.hits), ["q/always"]);
    assert_eq!(ids(&d.shadow_hits), ["p/always"]);
    let set = rules.load();
    assert!(set.packs()[0].shadow && set.rules()[0].shadow);
}

#[test]
fn mode_live_leaves_the_packs_own_modes() {
    let rules = with_partners("[partners.p]\nregions = [\"HK\"]\nmode = \"live\"\n");
    rules.pack(
        "p",
        "regions = [\"HK\"]",
        &[
            ("a", "true", "score = 30"),
            ("b", "true", "score = 40\nmode = \"shadow\""),
        ],
    );
    let d = decide(&rules, &hk("w1"));
    assert_eq!(d.score, 30);
    assert_eq!(ids(&d.hits), ["p/a"]);
    assert_eq!(ids(&d.shadow_hits), ["p/b"]);
}

#[test]
fn floors_up_to_max_floor_are_allowed_and_apply() {
    // Default max_floor is warn.
    let rules = with_partners("[partners.p]\nregions = [\"HK\"]\n");
    always(&rules, "p", "regions = [\"HK\"]", 1, "min_tier = \"warn\"");
    assert_eq!(decide(&rules, &hk("w1")).tier, Tier::Warn);
    let rules = with_partners("[partners.p]\nregions = [\"HK\"]\nmax_floor = \"cool_off\"\n");
    always(
        &rules,
        "p",
        "regions = [\"HK\"]",
        1,
        "min_tier = \"cool_off\"",
    );
    assert_eq!(decide(&rules, &hk("w1")).tier, Tier::CoolOff);
}

#[test]
fn regions_are_compared_as_countries_and_star_allows_any() {
    let rules = with_partners("[partners.p]\nregions = [\"hk\", \"SG\"]\n");
    always(&rules, "p", "regions = [\"HK\", \"sg\"]", 30, "");
    assert_eq!(decide(&rules, &hk("w1")).score, 30);
    let rules = with_partners("[partners.p]\nregions = [\"*\"]\n");
    always(&rules, "p", "regions = [\"*\"]", 30, "");
    assert_eq!(decide(&rules, &hk("w1").country("FR")).score, 30);
}

#[test]
fn an_entry_may_exist_for_a_pack_that_is_not_there() {
    let rules = with_partners(
        "[partners.p]\nregions = [\"HK\"]\n\n[partners.later]\nregions = [\"SG\"]\npublic_key = \"ed25519:nMDPqPKwHDXkqrRoM8YUtFbj9OccRVpnApGWL3tsjTQ=\"\n",
    );
    always(&rules, "p", "regions = [\"HK\"]", 30, "");
    assert_eq!(rules.load().packs().len(), 1);
}

// ---- refusals, each naming the pack and a line ------------------------------------------

#[test]
fn a_pack_without_an_entry_is_refused_at_its_manifest() {
    let rules = with_partners("[partners.other]\nregions = [\"HK\"]\n");
    always(&rules, "p", "regions = [\"HK\"]", 30, "");
    let problem = only_problem(&rules);
    assert!(
        problem.starts_with("p/pack.toml:1:"),
        "names the manifest's id line: {problem}"
    );
    assert!(
        problem.contains("\"p\"") && problem.contains("[partners.p]"),
        "{problem}"
    );
}

#[test]
fn an_empty_partners_table_refuses_every_pack() {
    let rules = with_partners("[partners]\n");
    always(&rules, "p", "regions = [\"HK\"]", 30, "");
    always(&rules, "q", "regions = [\"HK\"]", 30, "");
    let problems = rules.problems();
    assert_eq!(problems.len(), 2, "{problems:#?}");
    assert!(problems[0].starts_with("p/pack.toml:") && problems[1].starts_with("q/pack.toml:"));
}

#[test]
fn an_entry_without_regions_is_refused_at_its_policy_line() {
    let rules = with_partners("[partners.p]\nmax_score = 50\n");
    always(&rules, "p", "regions = [\"HK\"]", 30, "");
    let problem = only_problem(&rules);
    let line = line_of(&rules, "policy.toml", "[partners.p]");
    assert!(
        problem.starts_with(&format!("policy.toml:{line}:"))
            || problem.starts_with(&format!("policy.toml:{}:", line + 1)),
        "{problem}"
    );
    assert!(
        problem.contains("\"p\"") && problem.contains("regions"),
        "{problem}"
    );
}

#[test]
fn a_region_outside_the_grant_is_refused_at_the_manifests_regions() {
    let rules = with_partners("[partners.p]\nregions = [\"HK\"]\n");
    always(&rules, "p", "regions = [\"HK\", \"SG\"]", 30, "");
    let problem = only_problem(&rules);
    let line = line_of(&rules, "p/pack.toml", "regions");
    assert!(
        problem.starts_with(&format!("p/pack.toml:{line}:")),
        "{problem}"
    );
    assert!(
        problem.contains("\"p\"") && problem.contains("\"SG\""),
        "{problem}"
    );
}

#[test]
fn a_pack_for_every_country_needs_star_in_the_entry() {
    let rules = with_partners("[partners.p]\nregions = [\"HK\", \"SG\", \"MY\"]\n");
    always(&rules, "p", "regions = [\"*\"]", 30, "");
    let problem = only_problem(&rules);
    assert!(
        problem.starts_with("p/pack.toml:") && problem.contains("\"*\""),
        "{problem}"
    );
}

#[test]
fn a_floor_above_max_floor_is_refused_for_every_rule_shadow_ones_too() {
    // Default max_floor: warn.
    let rules = with_partners("[partners.p]\nregions = [\"HK\"]\n");
    always(
        &rules,
        "p",
        "regions = [\"HK\"]",
        30,
        "min_tier = \"cool_off\"",
    );
    let problem = only_problem(&rules);
    let line = line_of(&rules, "p/pack.toml", "min_tier");
    assert!(
        problem.starts_with(&format!("p/pack.toml:{line}:")),
        "{problem}"
    );
    assert!(
        problem.contains("\"p\"") && problem.contains("max_floor"),
        "{problem}"
    );

    // A shadow rule, in a pack the grant forces to shadow anyway.
    let rules = with_partners(
        "[partners.p]\nregions = [\"HK\"]\nmax_floor = \"notice\"\nmode = \"shadow\"\n",
    );
    always(
        &rules,
        "p",
        "regions = [\"HK\"]",
        30,
        "min_tier = \"warn\"\nmode = \"shadow\"",
    );
    assert!(only_problem(&rules).contains("max_floor"));

    // max_floor = "allow" refuses any floor but allow.
    let rules = with_partners("[partners.p]\nregions = [\"HK\"]\nmax_floor = \"allow\"\n");
    always(
        &rules,
        "p",
        "regions = [\"HK\"]",
        30,
        "min_tier = \"notice\"",
    );
    assert!(only_problem(&rules).starts_with("p/pack.toml:"));
}

#[test]
fn a_broken_entry_is_refused_at_its_policy_line() {
    for (entry, what) in [
        ("regions = [\"HK\"]\nmax_floor = \"severe\"", "max_floor"),
        ("regions = [\"HK\"]\nmode = \"dry-run\"", "mode"),
        ("regions = [\"HK\"]\nmax_score = -1", "max_score"),
        (
            "regions = [\"HK\"]\npublic_key = \"ed25519:AAAA\"",
            "public_key",
        ),
        ("regions = [\"Hong Kong\"]", "Hong Kong"),
        ("regions = [\"HK\"]\nregion = [\"SG\"]", "region"),
    ] {
        let rules = with_partners(&format!("[partners.p]\n{entry}\n"));
        always(&rules, "p", "regions = [\"HK\"]", 30, "");
        let problem = only_problem(&rules);
        assert!(
            problem.starts_with("policy.toml:") && problem.contains(what),
            "{entry}: {problem}"
        );
    }
}

#[test]
fn all_refusals_come_back_together() {
    let rules = with_partners("[partners.p]\nregions = [\"HK\"]\n");
    rules.pack(
        "p",
        "regions = [\"SG\"]",
        &[
            ("a", "true", "min_tier = \"cool_off\""),
            ("b", "true", "min_tier = \"cool_off\""),
        ],
    );
    always(&rules, "q", "regions = [\"HK\"]", 30, "");
    assert_eq!(rules.problems().len(), 4, "{:#?}", rules.problems());
}

// ---- signatures -------------------------------------------------------------------------

/// A signed pack `p` (HK) under a grant naming the key's public half; returns the rules and the
/// secret key file's path.
fn signed_pack() -> (Rules, tempfile::TempDir) {
    let keys = tempfile::tempdir().unwrap();
    let key_file = keys.path().join("p.key");
    let public = signing::keygen(&key_file).unwrap();
    let rules = with_partners(&format!(
        "[partners.p]\nregions = [\"HK\"]\npublic_key = \"{public}\"\n"
    ));
    always(&rules, "p", "regions = [\"HK\"]", 30, "");
    rules.file("p/watchlists/list.txt", "TXlisted\n");
    rules.file("p/tests/none.jsonl", "");
    signing::sign_pack(&key_file, &rules.path().join("p")).unwrap();
    (rules, keys)
}

#[test]
fn a_signed_pack_loads() {
    let (rules, _keys) = signed_pack();
    assert_eq!(decide(&rules, &hk("w1")).score, 30);
}

#[test]
fn a_missing_signature_is_refused() {
    let (rules, _keys) = signed_pack();
    std::fs::remove_file(rules.path().join("p/pack.sig")).unwrap();
    let problem = only_problem(&rules);
    assert!(problem.starts_with("p/pack.toml:"), "{problem}");
    assert!(
        problem.contains("\"p\"") && problem.contains("signature"),
        "{problem}"
    );
}

#[test]
fn any_change_to_a_signed_pack_is_refused() {
    type Change = (&'static str, fn(&Path));
    let changes: [Change; 5] = [
        ("a script edited", |p| {
            std::fs::write(p.join("always.rhai"), "false").unwrap()
        }),
        ("a watchlist edited", |p| {
            std::fs::write(p.join("watchlists/list.txt"), "TXother\n").unwrap()
        }),
        ("a file added", |p| {
            std::fs::write(p.join("tests/new.jsonl"), "").unwrap()
        }),
        ("a file removed", |p| {
            std::fs::remove_file(p.join("tests/none.jsonl")).unwrap()
        }),
        ("a file renamed", |p| {
            std::fs::rename(p.join("tests/none.jsonl"), p.join("tests/other.jsonl")).unwrap()
        }),
    ];
    for (what, change) in changes {
        let (rules, _keys) = signed_pack();
        change(&rules.path().join("p"));
        let problem = only_problem(&rules);
        assert!(
            problem.contains("\"p\"") && problem.contains("signature"),
            "{what}: {problem}"
        );
    }
}

#[test]
fn a_signature_by_another_key_or_malformed_is_refused() {
    let (rules, keys) = signed_pack();
    let other = keys.path().join("other.key");
    signing::keygen(&other).unwrap();
    signing::sign_pack(&other, &rules.path().join("p")).unwrap();
    assert!(only_problem(&rules).contains("signature"));
    for text in ["", "ed25519:", "ed25519:AAAA\n", "rsa:AAAA", "garbage"] {
        rules.file("p/pack.sig", text);
        assert!(only_problem(&rules).contains("signature"), "{text:?}");
    }
}

#[test]
fn a_pack_sig_is_ignored_when_the_entry_has_no_key() {
    let rules = with_partners("[partners.p]\nregions = [\"HK\"]\n");
    always(&rules, "p", "regions = [\"HK\"]", 30, "");
    rules.file("p/pack.sig", "ed25519:not-a-signature");
    assert_eq!(decide(&rules, &hk("w1")).score, 30);
}

#[test]
fn signatures_are_checked_by_check_too() {
    let (rules, _keys) = signed_pack();
    assert!(riskgate::check(rules.path()).passed());
    std::fs::write(rules.path().join("p/always.rhai"), "false").unwrap();
    let report = riskgate::check(rules.path());
    assert!(!report.passed());
    assert!(RuleSet::load_pack(rules.path(), "p").is_err());
}

#[test]
fn the_signed_message_is_sha256sum_lines_sorted_by_path() {
    let dir = tempfile::tempdir().unwrap();
    let pack = dir.path().join("p");
    for (file, text) in [
        ("pack.toml", "id = \"p\"\n"),
        ("b.rhai", "true"),
        ("a/z.txt", ""),
        ("a-b.txt", "x"),
        ("pack.sig", "ignored"),
        ("tests/pack.sig", "covered"),
    ] {
        std::fs::create_dir_all(pack.join(file).parent().unwrap()).unwrap();
        std::fs::write(pack.join(file), text).unwrap();
    }
    let message = signing::signed_message(&pack).unwrap();
    let paths: Vec<&str> = message
        .lines()
        .map(|l| l.split_once("  ").unwrap().1)
        .collect();
    // Bytes: '-' (0x2d) < '/' (0x2f): "a-b.txt" before "a/z.txt".
    assert_eq!(
        paths,
        [
            "a-b.txt",
            "a/z.txt",
            "b.rhai",
            "pack.toml",
            "tests/pack.sig"
        ]
    );
    // sha256("") and sha256("x").
    assert!(message
        .contains("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855  a/z.txt\n"));
    assert!(message.starts_with(
        "2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881  a-b.txt\n"
    ));
}

#[test]
fn a_pack_signed_with_openssl_loads() {
    // tests/partners/external: signed with `openssl pkeyutl -sign -rawin` (see its README).
    let external = repo().join("tests/partners/external");
    let pack = external.join("rules/ext-police");
    let made_by_openssl = std::fs::read_to_string(external.join("message.txt")).unwrap();
    assert_eq!(signing::signed_message(&pack).unwrap(), made_by_openssl);
    let set = RuleSet::load(external.join("rules")).unwrap();
    assert_eq!(set.packs()[0].id, "ext-police");
    assert!(riskgate::check(external.join("rules")).passed());

    // The same pack, one byte changed, is refused.
    let copy = tempfile::tempdir().unwrap();
    copy_dir(&external.join("rules"), copy.path());
    let script = copy.path().join("ext-police/listed.rhai");
    let text = std::fs::read_to_string(&script).unwrap();
    std::fs::write(&script, text.replace("reported", "reporteD")).unwrap();
    let problems: Vec<String> = match RuleSet::load(copy.path()) {
        Ok(_) => panic!("a tampered pack must be refused"),
        Err(e) => e.problems().iter().map(|p| p.to_string()).collect(),
    };
    assert!(
        problems
            .iter()
            .any(|p| p.contains("ext-police") && p.contains("signature")),
        "{problems:#?}"
    );
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

#[test]
fn key_formats_are_the_contracts() {
    let keys = tempfile::tempdir().unwrap();
    let path = keys.path().join("k");
    let public = signing::keygen(&path).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.starts_with("ed25519-secret:") && text.ends_with('\n'));
    let secret = SecretKey::parse(&text).unwrap();
    assert_eq!(secret.public(), public);
    assert_eq!(secret.public().to_string(), public.to_string());
    assert!(public.to_string().starts_with("ed25519:"));
    assert_eq!(PublicKey::parse(&public.to_string()).unwrap(), public);
    // Without the final newline too.
    assert!(SecretKey::parse(text.trim_end()).is_ok());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "owner-only: {mode:o}");
    }
}

// ---- nothing outside the rule set is read -----------------------------------------------

#[cfg(unix)]
mod links_and_special_files {
    use super::*;
    use std::os::unix::fs::symlink;

    fn plain() -> Rules {
        let rules = Rules::new();
        always(&rules, "p", "regions = [\"HK\"]", 30, "");
        rules.append(
            "p/pack.toml",
            "[[watchlists]]\nid = \"x\"\nfile = \"watchlists/x.txt\"\n",
        );
        rules.file("p/watchlists/x.txt", "TXlisted\n");
        rules.load();
        rules
    }

    fn refused_naming(rules: &Rules, needle: &str) {
        let problems = rules.problems();
        assert!(
            problems.iter().any(|p| p.contains(needle)),
            "{needle}: {problems:#?}"
        );
        assert!(!riskgate::check(rules.path()).passed());
    }

    #[test]
    fn a_watchlist_linked_outside_is_refused() {
        let rules = plain();
        std::fs::remove_file(rules.path().join("p/watchlists/x.txt")).unwrap();
        symlink("/etc/passwd", rules.path().join("p/watchlists/x.txt")).unwrap();
        refused_naming(&rules, "p/watchlists/x.txt");
        assert!(rules.problems()[0].contains("symbolic link"));
    }

    #[test]
    fn a_link_inside_the_pack_is_refused_too() {
        let rules = plain();
        symlink("x.txt", rules.path().join("p/watchlists/y.txt")).unwrap();
        refused_naming(&rules, "p/watchlists/y.txt");
    }

    #[test]
    fn a_linked_pack_folder_is_refused() {
        let rules = plain();
        let elsewhere = tempfile::tempdir().unwrap();
        always_at(elsewhere.path(), "q");
        symlink(elsewhere.path().join("q"), rules.path().join("q")).unwrap();
        refused_naming(&rules, "q");
    }

    #[test]
    fn a_linked_subfolder_is_refused() {
        let rules = plain();
        let elsewhere = tempfile::tempdir().unwrap();
        std::fs::write(elsewhere.path().join("x.txt"), "TXelsewhere\n").unwrap();
        std::fs::remove_dir_all(rules.path().join("p/watchlists")).unwrap();
        symlink(elsewhere.path(), rules.path().join("p/watchlists")).unwrap();
        refused_naming(&rules, "p/watchlists");
    }

    #[test]
    fn a_linked_script_or_manifest_is_refused() {
        let rules = plain();
        let elsewhere = tempfile::tempdir().unwrap();
        std::fs::write(elsewhere.path().join("s.rhai"), "true").unwrap();
        std::fs::remove_file(rules.path().join("p/always.rhai")).unwrap();
        symlink(
            elsewhere.path().join("s.rhai"),
            rules.path().join("p/always.rhai"),
        )
        .unwrap();
        refused_naming(&rules, "p/always.rhai");

        let rules = plain();
        let manifest = std::fs::read_to_string(rules.path().join("p/pack.toml")).unwrap();
        std::fs::write(elsewhere.path().join("pack.toml"), manifest).unwrap();
        std::fs::remove_file(rules.path().join("p/pack.toml")).unwrap();
        symlink(
            elsewhere.path().join("pack.toml"),
            rules.path().join("p/pack.toml"),
        )
        .unwrap();
        refused_naming(&rules, "p/pack.toml");
    }

    #[test]
    fn a_linked_policy_or_rules_directory_is_refused() {
        let rules = plain();
        let elsewhere = tempfile::tempdir().unwrap();
        std::fs::write(
            elsewhere.path().join("policy.toml"),
            policy_default_limits("ignore"),
        )
        .unwrap();
        std::fs::remove_file(rules.path().join("policy.toml")).unwrap();
        symlink(
            elsewhere.path().join("policy.toml"),
            rules.path().join("policy.toml"),
        )
        .unwrap();
        refused_naming(&rules, "policy.toml");

        let rules = plain();
        let link = elsewhere.path().join("rules-link");
        symlink(rules.path(), &link).unwrap();
        let problems = RuleSet::load(&link).unwrap_err().problems().to_vec();
        assert!(
            problems.iter().any(|p| p.message.contains("symbolic link")),
            "{problems:#?}"
        );
    }

    #[test]
    fn a_fifo_is_refused_without_being_opened() {
        let rules = plain();
        let fifo = rules.path().join("p/tests/wait.jsonl");
        std::fs::create_dir_all(fifo.parent().unwrap()).unwrap();
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(made.success());
        // Opening it would block this test forever: the walk must refuse it unread.
        refused_naming(&rules, "p/tests/wait.jsonl");
        assert!(rules.problems()[0].contains("special file"));
    }

    #[test]
    fn a_stray_link_or_a_fifo_policy_is_refused_along_with_other_problems() {
        let rules = plain();
        symlink("/etc/passwd", rules.path().join("notes.txt")).unwrap();
        std::fs::write(rules.path().join("p/always.rhai"), "let").unwrap();
        let problems = rules.problems();
        assert_eq!(problems.len(), 2, "{problems:#?}");
        assert!(problems.iter().any(|p| p.starts_with("notes.txt:1:1:")));
        assert!(problems.iter().any(|p| p.starts_with("p/always.rhai:")));

        let rules = plain();
        std::fs::remove_file(rules.path().join("policy.toml")).unwrap();
        let made = std::process::Command::new("mkfifo")
            .arg(rules.path().join("policy.toml"))
            .status()
            .unwrap();
        assert!(made.success());
        let problems = rules.problems();
        assert!(
            problems
                .iter()
                .any(|p| p.starts_with("policy.toml:1:1:") && p.contains("special file")),
            "{problems:#?}"
        );
    }

    #[test]
    fn file_names_with_a_backslash_or_newline_or_not_utf8_are_refused() {
        use std::os::unix::ffi::OsStrExt;
        for name in [&b"a\\b.txt"[..], b"a\nb.txt", b"bad-\xff.txt"] {
            let rules = plain();
            let path = rules
                .path()
                .join("p/watchlists")
                .join(std::ffi::OsStr::from_bytes(name));
            std::fs::write(path, "").unwrap();
            let problems = rules.problems();
            assert_eq!(problems.len(), 1, "{problems:#?}");
            assert!(problems[0].contains("\"p\""), "{problems:#?}");
            assert!(signing::signed_message(&rules.path().join("p")).is_err());
        }
    }

    #[test]
    fn sign_refuses_a_pack_with_a_link() {
        let rules = plain();
        symlink("/etc/passwd", rules.path().join("p/watchlists/y.txt")).unwrap();
        let keys = tempfile::tempdir().unwrap();
        signing::keygen(&keys.path().join("k")).unwrap();
        let err = signing::sign_pack(&keys.path().join("k"), &rules.path().join("p")).unwrap_err();
        assert!(err.to_string().contains("symbolic link"), "{err}");
        assert!(!rules.path().join("p/pack.sig").exists());
    }

    fn always_at(dir: &Path, id: &str) {
        std::fs::create_dir_all(dir.join(id)).unwrap();
        std::fs::write(
            dir.join(id).join("pack.toml"),
            format!("id = \"{id}\"\nregions = [\"HK\"]\n[[rules]]\nid = \"a\"\nscript = \"a.rhai\"\nscore = 10\n"),
        )
        .unwrap();
        std::fs::write(dir.join(id).join("a.rhai"), "true").unwrap();
    }
}
