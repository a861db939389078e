//! Helpers shared by the contract tests (`tests/contract_*.rs`): rule directories built in temp
//! dirs, events built as JSON the way a host would send them, and a runner for the built binary.
#![allow(dead_code)] // each test file uses its own subset

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use riskgate::{Decision, Event, EventStream, Processed, RuleSet, Scorer, Withdrawal};
use serde_json::{json, Value};

use super::hardening::write_files;

/// The instant most tests start from.
pub const T0: &str = "2026-03-01T00:00:00Z";
pub const HOUR: i64 = 3600;
pub const DAY: i64 = 24 * HOUR;
/// One microsecond, in the units of [`at_us`].
pub const US: i64 = 1;

/// `T0 + secs` as RFC 3339.
pub fn at(secs: i64) -> String {
    at_us(secs * 1_000_000)
}

/// `T0 + micros` as RFC 3339 (fractional seconds when needed).
pub fn at_us(micros: i64) -> String {
    let base: jiff::Timestamp = T0.parse().unwrap();
    jiff::Timestamp::from_microsecond(base.as_microsecond() + micros)
        .unwrap()
        .to_string()
}

/// The contract tests' policy: thresholds 20/50/90, 24 cooling-off hours, `on_rule_error` as
/// given, no `[limits]` section (so the contract's default limits), and default warnings in `en`
/// and `fr` (the locale tests rely on both). Unlike [`super::hardening::policy_with_limits`],
/// whose `[limits]` body is explicit and whose only warning is in `en`, with other texts.
pub fn policy_default_limits(on_rule_error: &str) -> String {
    format!(
        r#"[tiers]
notice = 20
warn = 50
cool_off = 90

[cool_off]
hours = 24

[errors]
on_rule_error = "{on_rule_error}"

[warnings.default.en]
title = "Default title"
body = "Sending {{amount_usd}} USD of {{asset}} to {{destination}}"

[warnings.default.fr]
title = "Titre"
body = "Défaut"
"#
    )
}

/// A rules directory in a temp dir.
pub struct Rules {
    pub dir: tempfile::TempDir,
}

impl Rules {
    /// A rules dir with the standard policy and no packs.
    pub fn new() -> Rules {
        Rules::with_policy(&policy_default_limits("ignore"))
    }

    pub fn with_policy(text: &str) -> Rules {
        let rules = Rules {
            dir: tempfile::tempdir().unwrap(),
        };
        rules.file("policy.toml", text);
        rules
    }

    /// What the shipped rules never produce, for the tests that compare two ways of writing a
    /// decision: a holdout of half the users, `on_rule_error` as given, and pack `p` with `r`
    /// (scores the amount; warning `w`, whose texts the caller appends) and `boom` (throws above
    /// 60 USD, with quotes and a line end in its message).
    pub fn with_errors_and_holdout(on_rule_error: &str) -> Rules {
        let rules = Rules::with_policy(&format!(
            "{}\n[holdout]\nshare = 0.5\nsalt = \"s\"\n",
            policy_default_limits(on_rule_error)
        ));
        rules.pack(
            "p",
            "regions = [\"*\"]",
            &[
                ("r", "tx.amount_usd", "warning = \"w\""),
                (
                    "boom",
                    "if tx.amount_usd > 60.0 { throw \"bad \\\"thing\\\"\\n\"; } false",
                    "",
                ),
            ],
        );
        rules
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes `relative` (creating folders).
    pub fn file(&self, relative: &str, text: &str) -> &Rules {
        write_files(self.path(), &[(relative, text)]);
        self
    }

    /// Writes a pack: `header` is the top of pack.toml (without `id`), `rules` are
    /// `(rule id, script body, extra manifest lines)`; each rule gets `score = 10` unless the
    /// extra lines set a score.
    pub fn pack(&self, id: &str, header: &str, rules: &[(&str, &str, &str)]) -> &Rules {
        let mut manifest =
            format!("id = \"{id}\"\nname = \"Test pack {id}\"\nversion = \"1\"\n{header}\n");
        for (rule, script, extra) in rules {
            let file = format!("{}.rhai", rule.replace('-', "_"));
            let score = if extra.contains("score") {
                String::new()
            } else {
                "score = 10\n".to_string()
            };
            manifest.push_str(&format!(
                "\n[[rules]]\nid = \"{rule}\"\nscript = \"{file}\"\n{score}reason = \"reason of {rule}\"\n{extra}\n"
            ));
            self.file(&format!("{id}/{file}"), script);
        }
        self.file(&format!("{id}/pack.toml"), &manifest);
        self
    }

    /// Appends text to a pack's manifest (warnings, watchlists).
    pub fn append(&self, relative: &str, text: &str) -> &Rules {
        let path = self.dir.path().join(relative);
        let mut old = std::fs::read_to_string(&path).unwrap();
        old.push('\n');
        old.push_str(text);
        std::fs::write(path, old).unwrap();
        self
    }

    pub fn load(&self) -> RuleSet {
        match RuleSet::load(self.path()) {
            Ok(r) => r,
            Err(e) => panic!("rule set should load: {e}"),
        }
    }

    /// The load problems, as `file:line:column: message` lines.
    pub fn problems(&self) -> Vec<String> {
        match RuleSet::load(self.path()) {
            Ok(_) => panic!("rule set should not load"),
            Err(e) => e.problems().iter().map(|p| p.to_string()).collect(),
        }
    }

    pub fn scorer(&self) -> Scorer {
        scorer_for(self.load())
    }
}

/// A scorer on `rules`, with the store the suite runs against (see [`test_store`]).
pub fn scorer_for(rules: RuleSet) -> Scorer {
    match test_store() {
        Some((url, prefix)) => {
            Scorer::with_store(rules, riskgate::Store::open(&url, &prefix).unwrap())
        }
        None => Scorer::new(rules),
    }
}

/// With `RISKGATE_TEST_STORE=redis://...` set, the contract suite runs against that shared
/// store (`.ci/run` does so): every scorer and every `riskgate score` gets a prefix of its own,
/// so that each starts from empty state as with the memory store.
pub fn test_store() -> Option<(String, String)> {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let url = std::env::var("RISKGATE_TEST_STORE").ok()?;
    let n = N.fetch_add(1, Ordering::Relaxed);
    Some((url, format!("contract-{}-{n}:", std::process::id())))
}

/// A withdrawal as JSON, with chainable setters.
#[derive(Clone)]
pub struct W(pub Value);

/// A completed withdrawal of `amount` USDT on TRON by `user` at `ts` to `dest`, user in HK,
/// account created a year before T0, locale `en`.
pub fn wd(id: &str, user: &str, ts: &str, amount: f64, dest: &str) -> W {
    W(json!({
        "kind": "withdrawal", "id": id, "ts": ts, "user_id": user, "asset": "USDT",
        "network": "TRON", "amount_usd": amount, "destination": dest,
        "user": {"country": "HK", "created_at": "2025-03-01T00:00:00Z"}
    }))
}

impl W {
    pub fn set(mut self, key: &str, value: Value) -> W {
        self.0[key] = value;
        self
    }
    pub fn user(mut self, key: &str, value: Value) -> W {
        self.0["user"][key] = value;
        self
    }
    pub fn device(self, device: &str) -> W {
        self.set("device_id", json!(device))
    }
    pub fn cancelled(self) -> W {
        self.set("status", json!("cancelled"))
    }
    pub fn country(self, c: &str) -> W {
        self.user("country", json!(c))
    }
    pub fn locale(self, l: &str) -> W {
        self.user("locale", json!(l))
    }
    pub fn line(&self) -> String {
        self.0.to_string()
    }
    pub fn event(&self) -> Event {
        Event::parse_line(&self.line()).unwrap()
    }
    pub fn w(&self) -> Withdrawal {
        match self.event() {
            Event::Withdrawal(w) => w,
            other => panic!("not a withdrawal: {other:?}"),
        }
    }
}

pub fn login(user: &str, ts: &str, device: &str) -> String {
    json!({"kind": "login", "ts": ts, "user_id": user, "device_id": device}).to_string()
}

pub fn reset(user: &str, ts: &str) -> String {
    json!({"kind": "password_reset", "ts": ts, "user_id": user}).to_string()
}

/// Feeds lines through an [`EventStream`] (score, then observe) and returns the decisions;
/// panics on an invalid line.
pub fn feed(scorer: &Scorer, lines: &[String]) -> Vec<Decision> {
    let mut stream = EventStream::new();
    let mut out = Vec::new();
    for line in lines {
        match stream.process(scorer, Ok(line)) {
            Ok(Processed::Scored(_, d)) => out.push(d),
            Ok(_) => {}
            Err(e) => panic!("line {line} should be valid: {e}"),
        }
    }
    out
}

/// Observes events given as JSON lines (no scoring).
pub fn observe(scorer: &Scorer, lines: &[String]) {
    for line in lines {
        scorer.observe(&Event::parse_line(line).unwrap());
    }
}

/// Scores one withdrawal against a rule set with the given `tx`-independent policy.
pub fn decide(rules: &Rules, w: &W) -> Decision {
    rules.scorer().score(&w.w())
}

/// Runs the built binary; returns (exit code, stdout, stderr).
pub fn cli(args: &[&str], stdin: Option<&str>) -> (i32, String, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_riskgate"));
    cmd.args(args).stdout(Stdio::piped()).stderr(Stdio::piped());
    if args.first() == Some(&"score") && !args.contains(&"--store") {
        if let Some((url, prefix)) = test_store() {
            cmd.args(["--store", &url, "--store-prefix", &prefix]);
        }
    }
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    });
    let mut child = cmd.spawn().unwrap();
    if let Some(input) = stdin {
        // The binary may exit before reading (a rule set that does not load): a broken pipe
        // here is not the test's concern.
        let _ = child.stdin.take().unwrap().write_all(input.as_bytes());
    }
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

/// Parses JSON Lines output.
pub fn json_lines(text: &str) -> Vec<Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The repository root (for fixtures/ and rules/).
pub fn repo() -> PathBuf {
    // At run time first: with a target dir shared by several worktrees, the compile-time value
    // may name another worktree.
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from)
}

/// Rule ids of hits.
pub fn ids(hits: &[riskgate::Hit]) -> Vec<String> {
    hits.iter().map(|h| h.rule.to_string()).collect()
}
