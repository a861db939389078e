//! `riskgate review`: what the exchange runs when a partner sends a new pack, or a new version
//! of one, before it goes live.
//!
//! 1. **Signature and authority**: the candidate is loaded into the live rule set (in place of
//!    the pack of the same id, or added), under the live `policy.toml` and its `[partners]`
//!    grants; any refusal (no entry, a region outside, a floor above `max_floor`, a missing or
//!    invalid signature, a link or special file, any load problem) ends the review.
//! 2. **The pack's own tests**: its `tests/*.jsonl`, with the live policy and that pack alone,
//!    as `riskgate check` runs them.
//! 3. **Replay**: the recorded stream decided by the live set (the baseline) and by the live set
//!    with the candidate swapped in: tier transitions with example withdrawals, hits per rule
//!    under each side, friction and, on labeled streams, recall (see [`crate::replay`]).
//!
//! The verdict is [`Verdict::Ok`] only when the pack is admitted and its tests pass; the replay
//! figures are for the analyst to judge. Neither folder is written to.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::check::check_pack;
use crate::error::{Error, ErrorKind};
use crate::replay::{Replay, ReplayOptions, Report};
use crate::rules::RuleSet;
use crate::stream::LineReader;
use crate::time::{Timestamp, MICROS_PER_DAY};

/// How to review.
#[derive(Clone, Debug, Default)]
pub struct ReviewOptions {
    /// Only the last this many days of the stream are reported (earlier events still build
    /// feature state, as they did in production).
    pub since_days: Option<f64>,
    /// Replay options (examples per changed cell, timing).
    pub replay: ReplayOptions,
}

/// The outcome, for a CI pipeline.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Admitted, and its tests pass.
    Ok,
    /// Refused at load (signature, authority or any load problem).
    Refused,
    /// Admitted, but some of its own tests fail.
    TestsFailed,
}

/// The pack's own tests.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TestsSummary {
    /// Test files run.
    pub files: usize,
    /// Withdrawals checked against an expectation.
    pub expectations: usize,
    /// Failed expectations and invalid lines, as `pack/tests/file.jsonl:line: message`.
    pub failures: Vec<String>,
}

/// What `riskgate review` found.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ReviewReport {
    /// The candidate's pack id (its folder name).
    pub pack: String,
    /// The outcome.
    pub verdict: Verdict,
    /// The live rule set's id.
    pub live_ruleset: String,
    /// The version of the live pack it replaces; null when the pack is new.
    pub live_version: Option<String>,
    /// The candidate's version, once loaded.
    pub candidate_version: Option<String>,
    /// The live policy has a `[partners]` table: the candidate was checked against its entry.
    pub bounded: bool,
    /// Its entry names a `public_key`: the candidate's `pack.sig` was verified.
    pub signature_required: bool,
    /// How the candidate runs in the swapped set (after the policy's grant): `live` or `shadow`.
    pub mode: Option<&'static str>,
    /// Its effective score cap (the lower of the pack's and the grant's).
    pub max_score: Option<i64>,
    /// Why it was refused: every load problem, as `file:line:column: message`.
    pub problems: Vec<String>,
    /// Its own tests, when it loaded.
    pub tests: Option<TestsSummary>,
    /// The first instant reported with `--since` (RFC 3339).
    pub since: Option<String>,
    /// The replay of the swapped set against the live set, when it loaded.
    pub replay: Option<Report>,
}

impl ReviewReport {
    /// True when the verdict is [`Verdict::Ok`].
    pub fn passed(&self) -> bool {
        self.verdict == Verdict::Ok
    }

    /// The report as pretty JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self)
            .unwrap_or_else(|e| format!("{{\"error\":\"cannot serialize report: {e}\"}}"))
    }
}

/// Reviews the pack folder `candidate` against the live rules directory `live` on the event
/// files `events` (JSON Lines, replayed in order as one stream; `-` is standard input, not
/// allowed with `since_days`). Fails only when the live set does not load or a file cannot be
/// read; a refused candidate or failing tests are a [`ReviewReport`] with that verdict.
pub fn review(
    live: &Path,
    candidate: &Path,
    events: &[PathBuf],
    options: &ReviewOptions,
) -> Result<ReviewReport, Error> {
    let live_rules = RuleSet::load(live)?;
    let pack = candidate
        .file_name()
        .and_then(|n| n.to_str())
        .map(str::to_string)
        .ok_or_else(|| Error::io(candidate, "the candidate folder's name must be its pack id"))?;
    let mut report = ReviewReport {
        pack: pack.clone(),
        verdict: Verdict::Ok,
        live_ruleset: live_rules.id().to_string(),
        live_version: live_rules
            .packs()
            .iter()
            .find(|p| p.id == pack)
            .map(|p| p.version.clone()),
        candidate_version: None,
        bounded: false,
        signature_required: false,
        mode: None,
        max_score: None,
        problems: Vec::new(),
        tests: None,
        since: None,
        replay: None,
    };
    (report.bounded, report.signature_required) = grant_of(live, &pack);
    let swapped = match RuleSet::load_with_pack(live, candidate) {
        Ok(rules) => rules,
        Err(e) => return refused(report, e),
    };
    if let Some(info) = swapped.packs().iter().find(|p| p.id == pack) {
        report.candidate_version = Some(info.version.clone());
        report.mode = Some(if info.shadow { "shadow" } else { "live" });
        report.max_score = info.max_score;
    }
    let alone = match RuleSet::load_pack_from(live, candidate) {
        Ok(rules) => rules,
        Err(e) => return refused(report, e),
    };
    let tests = check_pack(candidate, &pack, alone);
    report.tests = Some(TestsSummary {
        files: tests.files,
        expectations: tests.expectations,
        failures: tests.failures,
    });
    if report
        .tests
        .as_ref()
        .is_some_and(|t| !t.failures.is_empty())
    {
        report.verdict = Verdict::TestsFailed;
    }

    let mut replay_options = options.replay.clone();
    if let Some(days) = options.since_days {
        if !(days.is_finite() && days >= 0.0) {
            return Err(Error::io(
                Path::new("--since"),
                format!("DAYS must be a number of days, 0 or more, got {days}"),
            ));
        }
        if let Some(last) = last_ts(events)? {
            let span = (days * MICROS_PER_DAY as f64).round() as i64;
            let from = Timestamp::from_micros(last.as_micros().saturating_sub(span));
            replay_options.count_from = Some(from);
            report.since = Some(from.to_string());
        }
    }
    let mut replay = Replay::new(swapped, Some(live_rules), replay_options);
    for path in events {
        let name = path.display().to_string();
        let reader = open(path)?;
        replay.feed(&name, reader, &mut |_| {})?;
    }
    report.replay = Some(replay.finish());
    Ok(report)
}

/// Whether the live policy has a `[partners]` table, and whether it names a key for `pack`
/// (for the report; the loader enforces both).
fn grant_of(live: &Path, pack: &str) -> (bool, bool) {
    let table = std::fs::read_to_string(live.join("policy.toml"))
        .ok()
        .and_then(|text| text.parse::<toml::Table>().ok());
    let partners = table.as_ref().and_then(|t| t.get("partners"));
    let keyed = partners
        .and_then(|p| p.get(pack))
        .and_then(|entry| entry.get("public_key"))
        .is_some();
    (partners.is_some(), keyed)
}

fn refused(mut report: ReviewReport, e: Error) -> Result<ReviewReport, Error> {
    match e.kind() {
        ErrorKind::Load(problems) => {
            report.problems = problems.iter().map(ToString::to_string).collect();
            report.verdict = Verdict::Refused;
            Ok(report)
        }
        _ => Err(e),
    }
}

fn open(path: &Path) -> Result<Box<dyn BufRead>, Error> {
    if path.as_os_str() == "-" {
        return Ok(Box::new(BufReader::new(std::io::stdin())));
    }
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    Ok(Box::new(BufReader::with_capacity(1 << 16, file)))
}

#[derive(Deserialize)]
struct TsOnly {
    ts: String,
}

/// The latest valid `ts` of the files (a first pass, for `--since`).
fn last_ts(events: &[PathBuf]) -> Result<Option<Timestamp>, Error> {
    let mut last: Option<Timestamp> = None;
    for path in events {
        if path.as_os_str() == "-" {
            return Err(Error::io(
                path,
                "--since reads the stream twice: give files, not standard input",
            ));
        }
        let file = File::open(path).map_err(|e| Error::io(path, e))?;
        let mut lines = LineReader::new(BufReader::with_capacity(1 << 16, file));
        while let Some(line) = lines.next_line() {
            let ts = line
                .ok()
                .and_then(|text| serde_json::from_str::<TsOnly>(text).ok())
                .and_then(|t| Timestamp::parse(&t.ts).ok());
            if let Some(ts) = ts {
                last = Some(last.map_or(ts, |l| l.max(ts)));
            }
        }
        if let Some(e) = lines.io_error() {
            return Err(Error::io(path, e));
        }
    }
    Ok(last)
}

/// The terminal summary: the verdict's three steps, then hits per rule and the replay report.
pub fn render_text(report: &ReviewReport) -> String {
    use std::fmt::Write;
    let mut o = String::new();
    let replaces = match &report.live_version {
        Some(v) => format!("replaces the live version {}", shown(v)),
        None => "a new pack".to_string(),
    };
    let _ = writeln!(
        o,
        "riskgate review: pack {} {} ({replaces}) against the live rule set {}",
        report.pack,
        report.candidate_version.as_deref().map_or("", shown),
        report.live_ruleset
    );
    if report.problems.is_empty() {
        let authority = match (report.bounded, report.signature_required) {
            (false, _) => {
                "no [partners] table in the live policy: nothing bounded, no signature checked"
            }
            (true, false) => "within its [partners] grant; no public_key, so no signature checked",
            (true, true) => "signature valid, within its [partners] grant",
        };
        let _ = writeln!(
            o,
            "[1] signature and authority: ok: {authority} (runs {}, score cap {})",
            report.mode.unwrap_or("live"),
            report
                .max_score
                .map_or("none".to_string(), |m| m.to_string())
        );
    } else {
        let _ = writeln!(
            o,
            "[1] signature and authority: REFUSED, {} problem(s):",
            report.problems.len()
        );
        for p in &report.problems {
            let _ = writeln!(o, "      {p}");
        }
    }
    match &report.tests {
        None => {
            let _ = writeln!(o, "[2] pack tests: not run (the pack is refused)");
        }
        Some(t) => {
            let status = if t.failures.is_empty() {
                "ok"
            } else {
                "FAILED"
            };
            let _ = writeln!(
                o,
                "[2] pack tests: {status}: {} file(s), {} expectation(s), {} failure(s)",
                t.files,
                t.expectations,
                t.failures.len()
            );
            for f in &t.failures {
                let _ = writeln!(o, "      {f}");
            }
        }
    }
    match &report.replay {
        None => {
            let _ = writeln!(o, "[3] replay: not run (the pack is refused)");
        }
        Some(r) => {
            let since = report
                .since
                .as_deref()
                .map_or(String::new(), |s| format!(" since {s}"));
            let _ = writeln!(
                o,
                "[3] replay{since}: {} withdrawal(s), {} changed tier against the live set",
                r.stream.withdrawals,
                r.baseline.as_ref().map_or(0, |b| b.changed)
            );
            if let Some(b) = &r.baseline {
                let _ = writeln!(
                    o,
                    "    {:<44} {:>9} {:>9} {:>7} {:>7}",
                    "hits per rule (live and shadow)", "live set", "with pack", "new", "lost"
                );
                for c in &b.rule_changes {
                    let _ = writeln!(
                        o,
                        "    {:<44} {:>9} {:>9} {:>7} {:>7}",
                        c.rule, c.baseline_hits, c.candidate_hits, c.new_hits, c.lost_hits
                    );
                }
            }
            let _ = writeln!(o);
            o.push_str(crate::replay::render_text(r).trim_end());
            let _ = writeln!(o);
            let _ = writeln!(o);
        }
    }
    let verdict = match report.verdict {
        Verdict::Ok => "review passed",
        Verdict::Refused => "review FAILED: the pack is refused",
        Verdict::TestsFailed => "review FAILED: the pack's own tests fail",
    };
    o.push_str(verdict);
    o
}

fn shown(s: &str) -> &str {
    if s.is_empty() {
        "(no version)"
    } else {
        s
    }
}

/// The HTML report: the replay's (see [`crate::replay::render_html`]) with the review's
/// verdict, problems, tests and hits per rule on top; a page of its own when the pack was
/// refused.
pub fn render_html(report: &ReviewReport) -> String {
    use std::fmt::Write;
    let mut section = String::new();
    let verdict = match report.verdict {
        Verdict::Ok => "passed",
        Verdict::Refused => "FAILED: the pack is refused",
        Verdict::TestsFailed => "FAILED: the pack's own tests fail",
    };
    let _ = write!(
        section,
        "<section><h2>Review of pack <code>{}</code> {}: {}</h2><p class=\"sub\">{} · live rule set <code>{}</code></p>",
        esc(&report.pack),
        esc(report.candidate_version.as_deref().unwrap_or("")),
        esc(verdict),
        match &report.live_version {
            Some(v) => format!("replaces the live version {}", esc(v)),
            None => "a new pack".to_string(),
        },
        esc(&report.live_ruleset)
    );
    if !report.problems.is_empty() {
        section.push_str("<p class=\"bad\">Refused at load:</p><ul class=\"ex\">");
        for p in &report.problems {
            let _ = write!(section, "<li><code>{}</code></li>", esc(p));
        }
        section.push_str("</ul>");
    }
    if let Some(t) = &report.tests {
        let _ = write!(
            section,
            "<p>Pack tests: {} file(s), {} expectation(s), <span class=\"{}\">{} failure(s)</span></p>",
            t.files,
            t.expectations,
            if t.failures.is_empty() { "" } else { "bad" },
            t.failures.len()
        );
        if !t.failures.is_empty() {
            section.push_str("<ul class=\"ex\">");
            for f in &t.failures {
                let _ = write!(section, "<li><code>{}</code></li>", esc(f));
            }
            section.push_str("</ul>");
        }
    }
    if let Some(b) = report.replay.as_ref().and_then(|r| r.baseline.as_ref()) {
        section.push_str("<table><tr><th>rule (live and shadow hits)</th><th>live set</th><th>with the pack</th><th>new</th><th>lost</th></tr>");
        for c in &b.rule_changes {
            let _ = write!(
                section,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&c.rule),
                c.baseline_hits,
                c.candidate_hits,
                c.new_hits,
                c.lost_hits
            );
        }
        section.push_str("</table>");
    }
    section.push_str("</section>");
    match &report.replay {
        Some(replay) => {
            let page = crate::replay::render_html(replay);
            match page.find("<main>") {
                Some(at) => {
                    let (head, tail) = page.split_at(at + "<main>".len());
                    format!("{head}{section}{tail}")
                }
                None => format!("{section}{page}"),
            }
        }
        None => format!(
            "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>riskgate review {}</title></head><body><main>{section}</main></body></html>\n",
            esc(&report.pack)
        ),
    }
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
