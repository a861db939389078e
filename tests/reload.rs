//! Hot reload under load (issue 5, contract section 3: "a running scorer keeps its current
//! rule set"): two threads score while a third reloads every 10 ms for about two seconds,
//! alternating good and broken rule sets. No decision fails, every decision carries the id of
//! a set that was live and is consistent with that set, and broken sets never go live.

mod support;

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use riskgate::{Event, RuleSet, Scorer};
use support::hardening::*;

/// A good rule set whose only rule always hits with `score`.
fn good_set(dir: &Path, score: i64) {
    write_files(
        dir,
        &[
            ("policy.toml", &policy_with_limits("ignore", TEST_LIMITS)),
            ("p/pack.toml", &format!("id = \"p\"\nregions = [\"*\"]\n\n[[rules]]\nid = \"always\"\nscript = \"always.rhai\"\nscore = {score}\nreason = \"r\"\n")),
            ("p/always.rhai", "tx.amount_usd >= 0.0"),
        ],
    );
}

#[test]
fn reloading_every_10ms_under_load_never_fails_a_decision_nor_makes_a_broken_set_live() {
    let dirs: Vec<tempfile::TempDir> = (0..4)
        .map(|_| tempfile::tempdir().expect("tempdir"))
        .collect();
    good_set(dirs[0].path(), 10);
    good_set(dirs[1].path(), 20);
    // Broken: a script that does not parse; a policy with an unknown tier.
    good_set(dirs[2].path(), 30);
    write_files(dirs[2].path(), &[("p/always.rhai", "tx.amount_usd >= ;")]);
    good_set(dirs[3].path(), 40);
    write_files(
        dirs[3].path(),
        &[("policy.toml", &policy_with_limits("red", TEST_LIMITS))],
    );

    // The id of each good set, and the score its decisions must carry.
    let mut expected: HashMap<String, i64> = HashMap::new();
    for (dir, score) in [(&dirs[0], 10), (&dirs[1], 20)] {
        expected.insert(
            RuleSet::load(dir.path())
                .expect("good set")
                .id()
                .to_string(),
            score,
        );
    }
    let scorer = Arc::new(Scorer::from_dir(dirs[0].path()).expect("first set"));
    let stop = Arc::new(AtomicBool::new(false));
    let decided = Arc::new(AtomicUsize::new(0));

    let scorers: Vec<_> = (0..2)
        .map(|t| {
            let (scorer, stop, decided, expected) = (
                scorer.clone(),
                stop.clone(),
                decided.clone(),
                expected.clone(),
            );
            std::thread::spawn(move || -> Result<(), String> {
                let mut n = 0_u64;
                while !stop.load(Ordering::Relaxed) {
                    n += 1;
                    let line = withdrawal(
                        &format!("w{t}-{n}"),
                        &format!("u{}", n % 50),
                        "2026-11-20T10:00:00Z",
                        100.0,
                        "dest",
                        "HK",
                        "",
                    );
                    let Ok(Event::Withdrawal(w)) = Event::parse_line(&line) else {
                        return Err("bad test event".into());
                    };
                    let d = scorer.score(&w);
                    scorer.observe_withdrawal(&w);
                    let Some(score) = expected.get(&*d.ruleset) else {
                        return Err(format!(
                            "decision by rule set {} that was never a good set: {}",
                            d.ruleset,
                            d.to_json()
                        ));
                    };
                    if !d.errors.is_empty() || d.score != *score || d.hits.len() != 1 {
                        return Err(format!("failed or inconsistent decision: {}", d.to_json()));
                    }
                    decided.fetch_add(1, Ordering::Relaxed);
                }
                Ok(())
            })
        })
        .collect();

    let started = Instant::now();
    let (mut good_reloads, mut refused) = (0, 0);
    let mut i = 0;
    while started.elapsed() < Duration::from_secs(2) {
        let dir = dirs[i % 4].path();
        let live_before = scorer.rules().id().to_string();
        match scorer.reload(dir) {
            Ok(set) => {
                assert!(i % 4 < 2, "a broken set loaded");
                assert!(expected.contains_key(set.id()));
                good_reloads += 1;
            }
            Err(e) => {
                assert!(i % 4 >= 2, "a good set was refused: {e}");
                assert!(!e.problems().is_empty());
                // Only this thread reloads, so the live set is exactly the one before.
                assert_eq!(scorer.rules().id(), live_before);
                refused += 1;
            }
        }
        i += 1;
        std::thread::sleep(Duration::from_millis(10));
    }
    stop.store(true, Ordering::Relaxed);
    for s in scorers {
        s.join()
            .expect("scoring thread panicked")
            .unwrap_or_else(|e| panic!("{e}"));
    }
    let decided = decided.load(Ordering::Relaxed);
    assert!(
        good_reloads >= 20 && refused >= 20,
        "{good_reloads} good reloads, {refused} refused"
    );
    assert!(decided > 100, "only {decided} decisions");
}
