//! The terminal summary of a replay.

use std::fmt::Write;

use super::{LevelMetrics, Report, SweepPoint};
use crate::decision::Tier;

/// Most sweep rows the terminal shows (the JSON and HTML have all of them).
const SWEEP_ROWS: usize = 18;

pub(crate) fn pct(x: Option<f64>) -> String {
    x.map_or_else(|| "-".to_string(), |x| format!("{:.1}%", x * 100.0))
}

pub(crate) fn points(x: Option<f64>) -> String {
    x.map_or_else(|| "-".to_string(), |x| format!("{:+.1} pp", x * 100.0))
}

/// `1234567` as `1,234,567`.
pub(crate) fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Whole dollars with thousands separators.
pub(crate) fn usd(x: f64) -> String {
    format!("${}", thousands(x.max(0.0).round() as u64))
}

fn signed(n: i64) -> String {
    if n > 0 {
        format!("+{n}")
    } else {
        n.to_string()
    }
}

fn level_line(out: &mut String, m: &LevelMetrics) {
    let _ = writeln!(
        out,
        "  {:<10} {:>7} {:>11} {:>10} {:>9} {:>12} {:>14}",
        m.level.name(),
        pct(m.recall),
        pct(m.usd_recall),
        pct(m.precision),
        pct(m.friction),
        thousands(m.scam_flagged),
        thousands(m.legit_flagged)
    );
}

/// Which sweep rows to show: all when few, else an even spread plus the marked ones.
fn sweep_rows<'a>(sweep: &'a [SweepPoint], marked: &[i64]) -> Vec<&'a SweepPoint> {
    if sweep.len() <= SWEEP_ROWS {
        return sweep.iter().collect();
    }
    let step = sweep.len() as f64 / SWEEP_ROWS as f64;
    let mut keep: Vec<usize> = (0..SWEEP_ROWS)
        .map(|i| (i as f64 * step) as usize)
        .collect();
    keep.push(sweep.len() - 1);
    for m in marked {
        // The row that applies to a threshold is the lowest candidate at or above it.
        if let Some(i) = sweep.iter().position(|p| p.warn >= *m) {
            keep.push(i);
        }
    }
    keep.sort_unstable();
    keep.dedup();
    keep.into_iter().filter_map(|i| sweep.get(i)).collect()
}

/// Renders the report as a readable terminal summary.
pub fn render_text(r: &Report) -> String {
    let mut o = String::new();
    let t = &r.ruleset.thresholds;
    let _ = writeln!(
        o,
        "riskgate replay  rule set {}  (notice >= {}, warn >= {}, cool_off >= {})",
        r.ruleset.id, t.notice, t.warn, t.cool_off
    );
    for p in &r.ruleset.packs {
        let cap = p
            .max_score
            .map_or_else(String::new, |c| format!(", capped at {c}"));
        let _ = writeln!(
            o,
            "  pack {} {} ({}, {} rule(s){cap})",
            p.id, p.version, p.mode, p.rules
        );
    }

    let s = &r.stream;
    let _ = writeln!(o, "\nSTREAM");
    for f in &s.files {
        let _ = writeln!(o, "  {}  {} lines", f.file, thousands(f.lines));
    }
    let _ = writeln!(
        o,
        "  {} events, {} withdrawals ({} cancelled), {} users",
        thousands(s.events),
        thousands(s.withdrawals),
        thousands(s.cancelled),
        thousands(s.users)
    );
    if let (Some(a), Some(b)) = (&s.first_ts, &s.last_ts) {
        let _ = writeln!(o, "  from {a} to {b}");
    }
    let _ = writeln!(
        o,
        "  labels: {} scam ({}), {} legit ({}), {} unlabeled",
        thousands(s.scam),
        usd(s.scam_usd),
        thousands(s.legit),
        usd(s.legit_usd),
        thousands(s.unlabeled)
    );
    if s.invalid == 0 {
        let _ = writeln!(o, "  invalid lines: none");
    } else {
        let _ = writeln!(
            o,
            "  INVALID LINES: {} (first {} below)",
            thousands(s.invalid),
            s.invalid_lines.len()
        );
        for l in &s.invalid_lines {
            let _ = writeln!(o, "    {}:{}: {}", l.file, l.line, l.error);
        }
    }

    let _ = writeln!(
        o,
        "\nTIERS               withdrawals    share            USD    share"
    );
    for row in &r.tiers {
        let _ = writeln!(
            o,
            "  {:<12} {:>14} {:>8} {:>14} {:>8}",
            row.tier.name(),
            thousands(row.count),
            pct(row.share),
            usd(row.usd),
            pct(row.usd_share)
        );
    }

    let _ = writeln!(o, "\nDETECTION  (labeled withdrawals at tier >= level)");
    if s.scam + s.legit == 0 {
        let _ = writeln!(o, "  no labeled withdrawals: add \"label\": \"scam\" or \"legit\" to withdrawals to see recall and friction");
    } else {
        let _ = writeln!(
            o,
            "  {:<10} {:>7} {:>11} {:>10} {:>9} {:>12} {:>14}",
            "level",
            "recall",
            "USD recall",
            "precision",
            "friction",
            "scam caught",
            "legit flagged"
        );
        for m in &r.levels {
            level_line(&mut o, m);
        }
        let _ = writeln!(
            o,
            "  recall = scam at >= level / all scam; friction = legit at >= level / all legit"
        );
        if s.scam > 0 {
            let _ = writeln!(
                o,
                "  {} scam withdrawal(s) ({}) hit no rule at all: no threshold reaches them, only new rules can",
                thousands(r.scam_without_hits),
                pct(Some(r.scam_without_hits as f64 / s.scam as f64))
            );
        }
    }

    let _ = writeln!(
        o,
        "\nRULES  (hits on labeled withdrawals; unique = scam caught by this rule alone)"
    );
    let width = r
        .rules
        .iter()
        .map(|x| x.rule.len())
        .max()
        .unwrap_or(4)
        .max(4);
    let _ = writeln!(
        o,
        "  {:<width$} {:>6} {:>5} {:>7} {:>6} {:>6} {:>9} {:>6} {:>6}",
        "rule", "mode", "score", "hits", "scam", "legit", "precision", "unique", "errors"
    );
    for x in &r.rules {
        let _ = writeln!(
            o,
            "  {:<width$} {:>6} {:>5} {:>7} {:>6} {:>6} {:>9} {:>6} {:>6}",
            x.rule,
            x.mode,
            x.score,
            thousands(x.hits),
            thousands(x.scam_hits),
            thousands(x.legit_hits),
            pct(x.precision),
            thousands(x.unique_scam_catches),
            thousands(x.errors)
        );
    }
    for x in r.rules.iter().filter(|x| x.mode == "shadow") {
        let _ = writeln!(
            o,
            "  shadow {}: going live would change {} tier(s) ({} scam, {} legit)",
            x.rule,
            thousands(x.would_change_tiers.unwrap_or(0)),
            thousands(x.would_change_scam.unwrap_or(0)),
            thousands(x.would_change_legit.unwrap_or(0))
        );
    }

    if !r.typologies.is_empty() {
        let _ = writeln!(
            o,
            "\nBY TYPOLOGY  (the \"typology\" field of generated streams)"
        );
        let tw = r
            .typologies
            .iter()
            .map(|x| x.typology.len())
            .max()
            .unwrap_or(8)
            .max(8);
        let _ = writeln!(
            o,
            "  {:<tw$} {:>6} {:>11} {:>9} {:>8} {:>9} {:>9}",
            "typology", "label", "withdrawals", ">=notice", ">=warn", "cool_off", "% >=warn"
        );
        for x in &r.typologies {
            let _ = writeln!(
                o,
                "  {:<tw$} {:>6} {:>11} {:>9} {:>8} {:>9} {:>9}",
                x.typology,
                x.label,
                thousands(x.withdrawals),
                thousands(x.notice),
                thousands(x.warn),
                thousands(x.cool_off),
                pct(x.warn_share)
            );
        }
    }

    if s.scam + s.legit > 0 && !r.sweep.is_empty() {
        let mut marked = vec![t.warn];
        if let Some(w) = r.optimum.as_ref().and_then(|x| x.warn) {
            marked.push(w);
        }
        let _ = writeln!(
            o,
            "\nSWEEP  (figures at >= warn for each warn threshold; {} thresholds in --json/--html)",
            r.sweep.len()
        );
        let _ = writeln!(
            o,
            "  {:>5} {:>7} {:>11} {:>10} {:>9} {:>12} {:>14}",
            "warn", "recall", "USD recall", "precision", "friction", "scam caught", "legit flagged"
        );
        let policy_row = r.sweep.iter().position(|p| p.warn >= t.warn);
        let optimum_row = r
            .optimum
            .as_ref()
            .and_then(|x| x.warn)
            .and_then(|w| r.sweep.iter().position(|p| p.warn == w));
        for p in sweep_rows(&r.sweep, &marked) {
            let index = r.sweep.iter().position(|q| std::ptr::eq(q, p));
            let mut mark = String::new();
            if index.is_some() && index == policy_row {
                mark.push_str(&format!("  <- policy (warn {})", t.warn));
            }
            if index.is_some() && index == optimum_row {
                mark.push_str("  <- optimum");
            }
            let m = &p.metrics;
            let _ = writeln!(
                o,
                "  {:>5} {:>7} {:>11} {:>10} {:>9} {:>12} {:>14}{mark}",
                p.warn,
                pct(m.recall),
                pct(m.usd_recall),
                pct(m.precision),
                pct(m.friction),
                thousands(m.scam_flagged),
                thousands(m.legit_flagged)
            );
        }
    }

    if let Some(opt) = &r.optimum {
        let _ = writeln!(
            o,
            "\nOPTIMUM  (most scam caught with friction <= {} at >= warn and <= {} at cool_off)",
            pct(Some(opt.max_friction)),
            pct(Some(opt.max_cool_off_friction))
        );
        if let (Some(n), Some(w)) = (opt.notice, opt.warn) {
            {
                let cool = opt
                    .cool_off
                    .map_or_else(|| "none fits".to_string(), |c| c.to_string());
                let _ = writeln!(
                    o,
                    "  thresholds: notice {n}, warn {w}, cool_off {cool}   (policy: {}, {}, {})",
                    t.notice, t.warn, t.cool_off
                );
                let _ = writeln!(
                    o,
                    "  {:<10} {:>7} {:>11} {:>10} {:>9} {:>12} {:>14}",
                    "level",
                    "recall",
                    "USD recall",
                    "precision",
                    "friction",
                    "scam caught",
                    "legit flagged"
                );
                if let Some(m) = &opt.at_warn {
                    level_line(&mut o, m);
                }
                if let Some(m) = &opt.at_cool_off {
                    level_line(&mut o, m);
                }
            }
        }
        if let Some(note) = &opt.note {
            let _ = writeln!(o, "  {note}");
        }
    }

    if let Some(sweep) = &r.param_sweep {
        super::params::render_text(sweep, &mut o);
    }

    if let Some(b) = &r.baseline {
        let _ = writeln!(
            o,
            "\nBASELINE  rule set {}: {} withdrawal(s) change tier",
            b.ruleset,
            thousands(b.changed)
        );
        let _ = writeln!(
            o,
            "  baseline \\ candidate {:>9} {:>9} {:>9} {:>9}",
            "allow", "notice", "warn", "cool_off"
        );
        for (tier, row) in Tier::ALL.iter().zip(&b.matrix) {
            let _ = writeln!(
                o,
                "  {:<20} {:>9} {:>9} {:>9} {:>9}",
                tier.name(),
                thousands(row[0]),
                thousands(row[1]),
                thousands(row[2]),
                thousands(row[3])
            );
        }
        let _ = writeln!(
            o,
            "  {:<10} {:>12} {:>12} {:>12} {:>12} {:>8} {:>8}",
            "level", "recall", "USD recall", "precision", "friction", "scam", "legit"
        );
        for d in &b.deltas {
            let _ = writeln!(
                o,
                "  {:<10} {:>12} {:>12} {:>12} {:>12} {:>8} {:>8}",
                d.level.name(),
                points(d.recall),
                points(d.usd_recall),
                points(d.precision),
                points(d.friction),
                signed(d.scam_flagged),
                signed(d.legit_flagged)
            );
        }
        for tr in &b.transitions {
            let _ = writeln!(
                o,
                "  {} -> {}: {} ({} scam, {} legit)",
                tr.from.name(),
                tr.to.name(),
                thousands(tr.count),
                thousands(tr.scam),
                thousands(tr.legit)
            );
            for e in &tr.examples {
                let mut why = Vec::new();
                why.extend(e.added.iter().map(|h| format!("+{h}")));
                why.extend(e.removed.iter().map(|h| format!("-{h}")));
                let why = if why.is_empty() {
                    "same hits (floor or threshold)".to_string()
                } else {
                    why.join(", ")
                };
                let _ = writeln!(
                    o,
                    "    {} {} {} {}: score {} -> {}; {why}",
                    e.id,
                    e.user_id,
                    e.label.unwrap_or("unlabeled"),
                    usd(e.amount_usd),
                    e.baseline_score,
                    e.candidate_score
                );
            }
        }
    }

    if let Some(tm) = &r.timing {
        let _ = writeln!(o, "\nTIMING");
        let _ = writeln!(
            o,
            "  decision latency p50 {:.1} us, p99 {:.1} us, max {:.1} us; {} withdrawals/s ({:.2} s wall clock)",
            tm.p50_us,
            tm.p99_us,
            tm.max_us,
            thousands(tm.withdrawals_per_second.round() as u64),
            tm.seconds
        );
        let slowest = tm
            .rules
            .iter()
            .filter_map(|x| x.mean_us.map(|m| (m, &x.rule)))
            .fold(None, |acc: Option<(f64, &String)>, x| match acc {
                Some(a) if a.0 >= x.0 => Some(a),
                _ => Some(x),
            });
        if let Some((mean, rule)) = slowest {
            let _ = writeln!(o, "  slowest rule on average: {rule} ({mean:.2} us per evaluation; all rules in --json)");
        }
    }
    o
}
