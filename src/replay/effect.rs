//! The warning effect: how many withdrawals were cancelled when a warning was shown, against
//! the same tier's withdrawals whose warning was withheld from the holdout group
//! (`[holdout]` in `policy.toml`, contract section 4 item 6).
//!
//! For each tier above `allow`, and for each tier, warning key and locale: withdrawals warned
//! (the warning was shown) and held out, the share cancelled (`status` `cancelled`) in each
//! group, and the difference `warned - held out` with a 95% confidence interval by Newcombe's
//! hybrid score method (method 10 of Newcombe 1998) on Wilson score intervals. For labeled
//! streams the same figures are split by scam and legit. A held-out withdrawal is counted under
//! the warning it would have shown (the decision's `withheld` field).
//!
//! Both `riskgate replay` (which recomputes the decisions with the rule set given) and
//! `riskgate effect` (which reads the decisions logged live) build their figures here.

use std::collections::BTreeMap;
use std::fmt::Write;

use serde::Serialize;

use crate::decision::{Decision, DecisionRef, Tier};
use crate::event::{Label, Status};
use crate::rules::Holdout;

/// The 0.975 quantile of the standard normal distribution.
pub const Z_95: f64 = 1.959_963_984_540_054;

/// Key under which a held-out decision is counted when it does not say which warning it
/// withheld (a log written before the `withheld` field existed).
pub const UNKNOWN_WARNING: &str = "(unknown)";

/// The Wilson score interval for `x` successes out of `n` (None when `n` is 0).
pub fn wilson(x: u64, n: u64, z: f64) -> Option<(f64, f64)> {
    if n == 0 || x > n {
        return None;
    }
    let n = n as f64;
    let p = x as f64 / n;
    let z2 = z * z;
    let denom = 1.0 + z2 / n;
    let centre = (p + z2 / (2.0 * n)) / denom;
    let half = z * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt() / denom;
    Some(((centre - half).max(0.0), (centre + half).min(1.0)))
}

/// `p1 - p2` for `x1/n1` and `x2/n2`, with its 95% confidence interval by Newcombe's hybrid
/// score method: `L = d - sqrt((p1-l1)^2 + (u2-p2)^2)`, `U = d + sqrt((u1-p1)^2 + (p2-l2)^2)`
/// where `(l, u)` are the Wilson intervals. None when either group is empty.
pub fn newcombe(x1: u64, n1: u64, x2: u64, n2: u64) -> Option<(f64, f64, f64)> {
    let (l1, u1) = wilson(x1, n1, Z_95)?;
    let (l2, u2) = wilson(x2, n2, Z_95)?;
    let p1 = x1 as f64 / n1 as f64;
    let p2 = x2 as f64 / n2 as f64;
    let d = p1 - p2;
    let low = d - ((p1 - l1).powi(2) + (u2 - p2).powi(2)).sqrt();
    let high = d + ((u1 - p1).powi(2) + (p2 - l2).powi(2)).sqrt();
    Some((d, low.max(-1.0), high.min(1.0)))
}

/// Warned against held-out withdrawals of one group.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Comparison {
    /// Withdrawals whose warning was shown.
    pub warned: u64,
    /// Of them, cancelled.
    pub warned_cancelled: u64,
    /// Withdrawals whose warning was withheld (holdout).
    pub held_out: u64,
    /// Of them, cancelled.
    pub held_out_cancelled: u64,
    /// `warned_cancelled / warned`.
    pub warned_cancel_share: Option<f64>,
    /// `held_out_cancelled / held_out`.
    pub held_out_cancel_share: Option<f64>,
    /// `warned_cancel_share - held_out_cancel_share`: what the warning adds to cancellations.
    pub difference: Option<f64>,
    /// Lower end of the 95% confidence interval of the difference (Newcombe).
    pub ci_low: Option<f64>,
    /// Upper end.
    pub ci_high: Option<f64>,
}

impl Comparison {
    fn from_counts(c: Counts) -> Comparison {
        let share = |x: u64, n: u64| (n > 0).then(|| x as f64 / n as f64);
        let diff = newcombe(c.warned_cancelled, c.warned, c.held_cancelled, c.held);
        Comparison {
            warned: c.warned,
            warned_cancelled: c.warned_cancelled,
            held_out: c.held,
            held_out_cancelled: c.held_cancelled,
            warned_cancel_share: share(c.warned_cancelled, c.warned),
            held_out_cancel_share: share(c.held_cancelled, c.held),
            difference: diff.map(|d| d.0),
            ci_low: diff.map(|d| d.1),
            ci_high: diff.map(|d| d.2),
        }
    }
}

/// The figures of one tier (all warnings together) or of one tier, warning and locale.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct EffectRow {
    /// The decision's tier.
    pub tier: Tier,
    /// The warning key (shown or withheld); absent on a tier's total row.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warning: Option<String>,
    /// The locale of its text; absent on a tier's total row.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub locale: Option<String>,
    /// All withdrawals.
    #[serde(flatten)]
    pub all: Comparison,
    /// Scam-labeled withdrawals (labeled streams only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scam: Option<Comparison>,
    /// Legit-labeled withdrawals (labeled streams only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub legit: Option<Comparison>,
}

/// The holdout of the rule set the figures are for.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct HoldoutInfo {
    /// Share of users in the group.
    pub share: f64,
    /// The salt that draws it.
    pub salt: String,
    /// Tiers at which its warnings are withheld.
    pub tiers: Vec<Tier>,
}

impl From<&Holdout> for HoldoutInfo {
    fn from(h: &Holdout) -> HoldoutInfo {
        HoldoutInfo {
            share: h.share(),
            salt: h.salt().to_string(),
            tiers: h.tiers(),
        }
    }
}

/// Withdrawals at `allow` (no warning, so none to withhold): the base cancellation rate.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct AllowFigures {
    /// Withdrawals at allow.
    pub withdrawals: u64,
    /// Of them, cancelled.
    pub cancelled: u64,
    /// `cancelled / withdrawals`.
    pub cancel_share: Option<f64>,
}

/// The warning effect measured under one rule set.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct EffectReport {
    /// The rule set whose decisions (warnings shown, holdout group) the figures describe.
    pub ruleset: String,
    /// Its `[holdout]`, when known (replay knows it; a decision log does not record it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub holdout: Option<HoldoutInfo>,
    /// What the figures hold for.
    pub note: String,
    /// Withdrawals at allow.
    pub allow: AllowFigures,
    /// One row per tier above allow that had withdrawals, all warnings together.
    pub tiers: Vec<EffectRow>,
    /// One row per tier, warning key and locale.
    pub warnings: Vec<EffectRow>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq)]
struct Counts {
    warned: u64,
    warned_cancelled: u64,
    held: u64,
    held_cancelled: u64,
}

impl Counts {
    fn add(&mut self, holdout: bool, cancelled: bool) {
        let c = u64::from(cancelled);
        if holdout {
            self.held += 1;
            self.held_cancelled += c;
        } else {
            self.warned += 1;
            self.warned_cancelled += c;
        }
    }

    fn merge(&mut self, o: &Counts) {
        self.warned += o.warned;
        self.warned_cancelled += o.warned_cancelled;
        self.held += o.held;
        self.held_cancelled += o.held_cancelled;
    }
}

/// `[all, scam, legit]`.
type Cell = [Counts; 3];

/// Folds decisions and their outcomes into the effect figures (memory: one cell per tier,
/// warning and locale seen).
#[derive(Debug, Default)]
pub struct EffectAcc {
    cells: BTreeMap<Tier, BTreeMap<String, BTreeMap<String, Cell>>>,
    allow: AllowFigures,
    labeled: bool,
}

impl EffectAcc {
    /// An empty accumulator.
    pub fn new() -> EffectAcc {
        EffectAcc::default()
    }

    /// Counts one decision whose withdrawal ended with `status`.
    pub fn record_decision(&mut self, d: &Decision, status: Status, label: Option<Label>) {
        let (key, locale) = match (&d.warning, &d.withheld) {
            (Some(w), _) => (&*w.key, &*w.locale),
            (None, Some(w)) => (&*w.key, &*w.locale),
            (None, None) => (UNKNOWN_WARNING, ""),
        };
        self.record(
            d.tier,
            key,
            locale,
            d.holdout,
            status == Status::Cancelled,
            label,
        );
    }

    /// [`EffectAcc::record_decision`] of a [`DecisionRef`] (what [`crate::Scorer::score_into`]
    /// answers).
    pub fn record_decision_ref(
        &mut self,
        d: &DecisionRef<'_>,
        status: Status,
        label: Option<Label>,
    ) {
        let (key, locale) = match (d.warning(), d.withheld()) {
            (Some(w), _) => (&**w.key, &**w.locale),
            (None, Some(w)) => (&**w.key, &**w.locale),
            (None, None) => (UNKNOWN_WARNING, ""),
        };
        self.record(
            d.tier(),
            key,
            locale,
            d.holdout(),
            status == Status::Cancelled,
            label,
        );
    }

    /// Counts one withdrawal: its tier, the warning shown or withheld, whether it was held out,
    /// whether it was cancelled, and its label.
    pub fn record(
        &mut self,
        tier: Tier,
        key: &str,
        locale: &str,
        holdout: bool,
        cancelled: bool,
        label: Option<Label>,
    ) {
        if tier == Tier::Allow {
            self.allow.withdrawals += 1;
            self.allow.cancelled += u64::from(cancelled);
            return;
        }
        self.labeled |= label.is_some();
        let by_key = self.cells.entry(tier).or_default();
        if !by_key.contains_key(key) {
            by_key.insert(key.to_string(), BTreeMap::new());
        }
        let Some(by_locale) = by_key.get_mut(key) else {
            return;
        };
        if !by_locale.contains_key(locale) {
            by_locale.insert(locale.to_string(), Cell::default());
        }
        let Some(cell) = by_locale.get_mut(locale) else {
            return;
        };
        let slot = match label {
            Some(Label::Scam) => 1,
            Some(Label::Legit) => 2,
            None => 0,
        };
        for (i, counts) in cell.iter_mut().enumerate() {
            if i == 0 || i == slot {
                counts.add(holdout, cancelled);
            }
        }
    }

    /// The figures, for `ruleset` (with its holdout when known).
    pub fn finish(self, ruleset: &str, holdout: Option<HoldoutInfo>) -> EffectReport {
        let labeled = self.labeled;
        let row = |tier: Tier, warning: Option<&str>, locale: Option<&str>, cell: &Cell| {
            let [all, scam, legit] = *cell;
            EffectRow {
                tier,
                warning: warning.map(str::to_string),
                locale: locale.map(str::to_string),
                all: Comparison::from_counts(all),
                scam: labeled.then(|| Comparison::from_counts(scam)),
                legit: labeled.then(|| Comparison::from_counts(legit)),
            }
        };
        let mut tiers = Vec::new();
        let mut warnings = Vec::new();
        for (tier, by_key) in &self.cells {
            let mut total = Cell::default();
            for (key, by_locale) in by_key {
                for (locale, cell) in by_locale {
                    for (t, c) in total.iter_mut().zip(cell) {
                        t.merge(c);
                    }
                    warnings.push(row(*tier, Some(key), Some(locale), cell));
                }
            }
            tiers.push(row(*tier, None, None, &total));
        }
        let mut allow = self.allow;
        allow.cancel_share =
            (allow.withdrawals > 0).then(|| allow.cancelled as f64 / allow.withdrawals as f64);
        EffectReport {
            ruleset: ruleset.to_string(),
            holdout,
            note: format!(
                "These figures hold for rule set {ruleset} only if it was the rule set live when \
                 the stream was recorded: which warning each user saw, and who was held out, \
                 are taken from its decisions."
            ),
            allow,
            tiers,
            warnings,
        }
    }
}

fn pct(x: Option<f64>) -> String {
    x.map_or_else(|| "-".to_string(), |x| format!("{:.1}%", x * 100.0))
}

fn pp(x: Option<f64>) -> String {
    x.map_or_else(|| "-".to_string(), |x| format!("{:+.1}", x * 100.0))
}

fn ci(c: &Comparison) -> String {
    match (c.ci_low, c.ci_high) {
        (Some(l), Some(h)) => format!("[{:+.1}, {:+.1}]", l * 100.0, h * 100.0),
        _ => "-".to_string(),
    }
}

/// Splits text into lines of at most `width` characters at spaces.
fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut current = String::new();
    for word in text.split_whitespace() {
        if !current.is_empty() && current.len() + 1 + word.len() > width {
            lines.push(std::mem::take(&mut current));
        }
        if !current.is_empty() {
            current.push(' ');
        }
        current.push_str(word);
    }
    if !current.is_empty() {
        lines.push(current);
    }
    lines
}

/// The effect section of the terminal report (also what `riskgate effect` prints).
pub fn render_effect_text(e: &EffectReport) -> String {
    let mut o = String::new();
    let holdout = e.holdout.as_ref().map_or_else(String::new, |h| {
        let tiers: Vec<&str> = h.tiers.iter().map(|t| t.name()).collect();
        format!(
            "; holdout {} of users, salt {:?}, at {}",
            pct(Some(h.share)),
            h.salt,
            if tiers.is_empty() {
                "no tier".to_string()
            } else {
                tiers.join(", ")
            }
        )
    });
    let _ = writeln!(o, "\nWARNING EFFECT  (rule set {}{holdout})", e.ruleset);
    for line in wrap(&e.note, 94) {
        let _ = writeln!(o, "  {line}");
    }
    let _ = writeln!(
        o,
        "  difference = share cancelled when warned - when held out, in points; 95% CI by"
    );
    let _ = writeln!(o, "  Newcombe's hybrid score method on Wilson intervals.");
    let _ = writeln!(
        o,
        "  allow (no warning): {} withdrawal(s), {} cancelled",
        e.allow.withdrawals,
        pct(e.allow.cancel_share)
    );
    if e.tiers.is_empty() {
        let _ = writeln!(o, "  no withdrawal above allow");
        return o;
    }
    let width = e
        .warnings
        .iter()
        .filter_map(|r| r.warning.as_ref().map(String::len))
        .max()
        .unwrap_or(7)
        .max(7);
    let _ = writeln!(
        o,
        "  {:<8} {:<width$} {:<7} {:<6} {:>8} {:>9} {:>8} {:>9} {:>8} {:>16}",
        "tier",
        "warning",
        "locale",
        "group",
        "warned",
        "cancelled",
        "held out",
        "cancelled",
        "diff pp",
        "95% CI pp"
    );
    for (r, name, c) in display_rows(e) {
        let _ = writeln!(
            o,
            "  {:<8} {:<width$} {:<7} {:<6} {:>8} {:>9} {:>8} {:>9} {:>8} {:>16}",
            r.tier.name(),
            r.warning.as_deref().unwrap_or("(all)"),
            r.locale.as_deref().unwrap_or(""),
            name,
            c.warned,
            pct(c.warned_cancel_share),
            c.held_out,
            pct(c.held_out_cancel_share),
            pp(c.difference),
            ci(c)
        );
    }
    o
}

/// The rows of the effect table in display order: each tier's total, then its warnings; per
/// row the `all` group, then `scam` and `legit` where labeled withdrawals were seen.
fn display_rows(e: &EffectReport) -> impl Iterator<Item = (&EffectRow, &'static str, &Comparison)> {
    e.tiers
        .iter()
        .flat_map(|t| std::iter::once(t).chain(e.warnings.iter().filter(|r| r.tier == t.tier)))
        .flat_map(|r| {
            [
                ("all", Some(&r.all)),
                ("scam", r.scam.as_ref()),
                ("legit", r.legit.as_ref()),
            ]
            .into_iter()
            .filter_map(move |(name, c)| {
                c.filter(|c| name == "all" || c.warned + c.held_out > 0)
                    .map(|c| (r, name, c))
            })
        })
}

/// The effect section of the HTML report.
pub(crate) fn render_effect_html(e: &EffectReport, esc: impl Fn(&str) -> String) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "<section id=\"effect\"><h2>Warning effect (holdout)</h2><p class=\"sub\">{}</p>",
        esc(&e.note)
    );
    if let Some(h) = &e.holdout {
        let tiers: Vec<&str> = h.tiers.iter().map(|t| t.name()).collect();
        let _ = writeln!(
            o,
            "<p>Holdout: {} of users (salt <code>{}</code>) at {}. Allow: {} withdrawal(s), {} cancelled.</p>",
            pct(Some(h.share)),
            esc(&h.salt),
            esc(&tiers.join(", ")),
            e.allow.withdrawals,
            pct(e.allow.cancel_share)
        );
    }
    let _ = writeln!(o, "<table><tr><th>tier</th><th>warning</th><th>locale</th><th>group</th><th>warned</th><th>cancelled</th><th>held out</th><th>cancelled</th><th>difference (pp)</th><th>95% CI (pp)</th></tr>");
    for (r, name, c) in display_rows(e) {
        let _ = writeln!(
                o,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{name}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                r.tier.name(),
                esc(r.warning.as_deref().unwrap_or("(all)")),
                esc(r.locale.as_deref().unwrap_or("")),
                c.warned,
                pct(c.warned_cancel_share),
                c.held_out,
                pct(c.held_out_cancel_share),
                pp(c.difference),
                ci(c)
            );
    }
    let _ = writeln!(o, "</table><p class=\"note\">Difference: share cancelled when the warning was shown minus share cancelled when it was withheld; 95% interval by Newcombe's hybrid score method on Wilson intervals.</p></section>");
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 5e-5
    }

    #[test]
    fn wilson_matches_published_values() {
        // Newcombe (1998), Statistics in Medicine 17:857-872, table I: 81/263 -> 0.2553-0.3662.
        let (l, u) = wilson(81, 263, Z_95).unwrap_or_default();
        assert!(close(l, 0.2553) && close(u, 0.3662), "{l} {u}");
        assert_eq!(wilson(0, 0, Z_95), None);
        let (l, u) = wilson(0, 10, Z_95).unwrap_or_default();
        assert!(l == 0.0 && close(u, 0.2775), "{l} {u}");
    }

    #[test]
    fn newcombe_matches_the_published_example() {
        // Newcombe (1998), Statistics in Medicine 17:873-890, method 10: 56/70 - 48/80 = 0.2,
        // 95% CI 0.0524 to 0.3339.
        let (d, l, u) = newcombe(56, 70, 48, 80).unwrap_or_default();
        assert!(
            close(d, 0.2) && close(l, 0.0524) && close(u, 0.3339),
            "{d} {l} {u}"
        );
        // 9/10 - 3/10 = 0.6, CI 0.1705 to 0.8090 (same paper, example b).
        let (d, l, u) = newcombe(9, 10, 3, 10).unwrap_or_default();
        assert!(
            close(d, 0.6) && close(l, 0.1705) && close(u, 0.8090),
            "{d} {l} {u}"
        );
        assert_eq!(newcombe(1, 2, 0, 0), None);
    }

    #[test]
    fn rows_split_by_tier_warning_locale_and_label() {
        let mut acc = EffectAcc::new();
        acc.record(Tier::Notice, "p/a", "en", false, true, Some(Label::Scam));
        acc.record(Tier::Notice, "p/a", "en", true, false, Some(Label::Legit));
        acc.record(Tier::Notice, "p/b", "fr", false, false, None);
        acc.record(Tier::Allow, "", "", false, true, None);
        let r = acc.finish("id", None);
        assert_eq!(r.allow.withdrawals, 1);
        assert_eq!(r.tiers.len(), 1);
        assert_eq!(r.warnings.len(), 2);
        let t = r.tiers.first().map(|t| t.all).unwrap_or_default();
        assert_eq!((t.warned, t.warned_cancelled, t.held_out), (2, 1, 1));
        let a = r.warnings.first().and_then(|w| w.scam).unwrap_or_default();
        assert_eq!((a.warned, a.warned_cancelled, a.held_out), (1, 1, 0));
        assert!(render_effect_text(&r).contains("WARNING EFFECT"));
    }
}
