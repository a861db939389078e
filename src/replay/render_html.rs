//! The HTML report: one self-contained file (inline CSS and SVG; no scripts, fonts or network).

use std::fmt::Write;

use super::render_text::{pct, points, thousands, usd};
use super::{LevelMetrics, Report};
use crate::decision::Tier;

const SCAM: &str = "#c2410c";
const LEGIT: &str = "#94a3b8";
const RECALL: &str = "#1d4ed8";
const FRICTION: &str = "#dc2626";
const PRECISION: &str = "#059669";

const STYLE: &str = r#"
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;color:#1e293b;background:#f8fafc;margin:0}
main{max-width:1180px;margin:0 auto;padding:24px 32px 48px}
h1{font-size:22px;margin:0 0 4px}
h2{font-size:17px;margin:0 0 10px;color:#0f172a}
section{background:#fff;border:1px solid #e2e8f0;border-radius:8px;padding:16px 20px;margin:16px 0;overflow-x:auto;min-width:0}
.sub{color:#64748b;margin:0 0 8px}
.cards{display:flex;gap:12px;flex-wrap:wrap}
.card{flex:1 1 150px;background:#f1f5f9;border-radius:6px;padding:10px 14px}
.card b{display:block;font-size:20px}
.card span{color:#64748b;font-size:12px}
table{border-collapse:collapse;width:100%;font-variant-numeric:tabular-nums}
th,td{padding:4px 7px;text-align:right;border-bottom:1px solid #eef2f7;white-space:nowrap}
th{white-space:normal;vertical-align:bottom}
th{color:#475569;font-weight:600;background:#f8fafc}
td:first-child,th:first-child{text-align:left}
.bad{color:#b91c1c;font-weight:600}
.note{color:#64748b;font-size:12px;margin-top:6px}
.grid{display:grid;grid-template-columns:minmax(0,1fr) minmax(0,1.3fr);gap:16px}
.grid>section{margin:0}
.grid+section,section+.grid{margin-top:16px}
table{font-size:13px}
.matrix td{text-align:center}
.matrix td.diag{outline:1px solid #cbd5e1}
code{background:#f1f5f9;padding:1px 4px;border-radius:3px}
details summary{cursor:pointer;color:#334155;margin:8px 0}
ul.ex{margin:4px 0 10px 0;padding-left:18px;font-size:12.5px}
svg text{font-family:inherit}
"#;

fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn level_rows(o: &mut String, levels: &[&LevelMetrics]) {
    let _ = writeln!(o, "<table><tr><th>level</th><th>recall</th><th>USD recall</th><th>precision</th><th>friction</th><th>scam caught</th><th>legit flagged</th></tr>");
    for m in levels {
        let _ = writeln!(
            o,
            "<tr><td>&ge; {}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            m.level.name(),
            pct(m.recall),
            pct(m.usd_recall),
            pct(m.precision),
            pct(m.friction),
            thousands(m.scam_flagged),
            thousands(m.legit_flagged)
        );
    }
    let _ = writeln!(o, "</table>");
}

/// Tier distribution: for each tier, a bar of its share of withdrawals and one of its share of USD.
fn tier_chart(o: &mut String, r: &Report) {
    let (w, row_h, left, bar_w) = (430.0, 46.0, 70.0, 200.0);
    let h = row_h * r.tiers.len() as f64 + 30.0;
    let _ = writeln!(
        o,
        r#"<svg viewBox="0 0 {w} {h}" width="100%" style="max-width:{w}px" role="img" aria-label="Tier distribution">"#
    );
    let colors = ["#cbd5e1", "#fbbf24", "#f97316", "#b91c1c"];
    for (i, (row, color)) in r.tiers.iter().zip(colors).enumerate() {
        let y = 10.0 + i as f64 * row_h;
        let share = row.share.unwrap_or(0.0);
        let usd_share = row.usd_share.unwrap_or(0.0);
        let _ = writeln!(
            o,
            r#"<text x="0" y="{}" font-size="13" font-weight="600">{}</text>"#,
            y + 15.0,
            row.tier.name()
        );
        let _ = writeln!(
            o,
            r#"<rect x="{left}" y="{y}" width="{:.1}" height="16" fill="{color}"/>"#,
            (share * bar_w).max(1.0)
        );
        let _ = writeln!(
            o,
            r#"<text x="{:.1}" y="{}" font-size="12">{} ({})</text>"#,
            left + (share * bar_w).max(1.0) + 6.0,
            y + 13.0,
            thousands(row.count),
            pct(row.share)
        );
        let _ = writeln!(
            o,
            r#"<rect x="{left}" y="{}" width="{:.1}" height="10" fill="{color}" opacity="0.45"/>"#,
            y + 19.0,
            (usd_share * bar_w).max(1.0)
        );
        let _ = writeln!(
            o,
            r##"<text x="{:.1}" y="{}" font-size="11" fill="#64748b">{} ({} of USD)</text>"##,
            left + (usd_share * bar_w).max(1.0) + 6.0,
            y + 28.0,
            usd(row.usd),
            pct(row.usd_share)
        );
    }
    let _ = writeln!(
        o,
        r##"<text x="{left}" y="{}" font-size="11" fill="#64748b">solid: share of withdrawals; light: share of USD</text>"##,
        h - 6.0
    );
    let _ = writeln!(o, "</svg>");
}

/// A line of the sweep chart: name, colour, extra SVG attributes, the figure it draws.
type Series = (
    &'static str,
    &'static str,
    &'static str,
    fn(&LevelMetrics) -> Option<f64>,
);

/// Recall, USD recall, precision and friction at >= warn over the warn threshold (step lines),
/// with the policy's thresholds and the optimum marked.
fn sweep_chart(o: &mut String, r: &Report) {
    let (w, h, left, right, top, bottom) = (1080.0, 360.0, 56.0, 200.0, 16.0, 40.0);
    let pw = w - left - right;
    let ph = h - top - bottom;
    let Some(last) = r.sweep.last() else { return };
    let min_x = r.sweep.first().map_or(0, |p| p.warn).min(0) as f64;
    let max_x = (last.warn.max(r.ruleset.thresholds.cool_off) + 1) as f64;
    let span = (max_x - min_x).max(1.0);
    let x = |v: f64| left + (v - min_x) / span * pw;
    let y = |v: f64| top + (1.0 - v) * ph;
    let _ = writeln!(
        o,
        r#"<svg viewBox="0 0 {w} {h}" width="100%" role="img" aria-label="Recall and friction over the warn threshold">"#
    );
    for tick in [0.0, 0.25, 0.5, 0.75, 1.0] {
        let _ = writeln!(
            o,
            r##"<line x1="{left}" x2="{}" y1="{:.1}" y2="{:.1}" stroke="#e2e8f0"/>"##,
            left + pw,
            y(tick),
            y(tick)
        );
        let _ = writeln!(
            o,
            r##"<text x="{}" y="{:.1}" font-size="11" text-anchor="end" fill="#64748b">{:.0}%</text>"##,
            left - 6.0,
            y(tick) + 4.0,
            tick * 100.0
        );
    }
    let step = ((span / 10.0 / 10.0).ceil() * 10.0).max(10.0);
    let mut tick = (min_x / step).ceil() * step;
    while tick <= max_x {
        let _ = writeln!(
            o,
            r##"<text x="{:.1}" y="{}" font-size="11" text-anchor="middle" fill="#64748b">{tick:.0}</text>"##,
            x(tick),
            top + ph + 16.0
        );
        tick += step;
    }
    let _ = writeln!(
        o,
        r##"<text x="{:.1}" y="{}" font-size="12" text-anchor="middle" fill="#334155">warn threshold (least total score for warn)</text>"##,
        left + pw / 2.0,
        h - 4.0
    );
    let series: [Series; 4] = [
        ("recall", RECALL, "", |m| m.recall),
        ("USD recall", RECALL, r#" stroke-dasharray="5 4""#, |m| {
            m.usd_recall
        }),
        ("precision", PRECISION, "", |m| m.precision),
        ("friction", FRICTION, "", |m| m.friction),
    ];
    for (i, (name, color, dash, get)) in series.iter().enumerate() {
        let mut path = String::new();
        let mut prev: Option<f64> = None;
        // Row j holds for the integer thresholds after row j-1's, up to its own: drawn over
        // [previous + 1, own + 1).
        for (j, p) in r.sweep.iter().enumerate() {
            let Some(v) = get(&p.metrics) else { continue };
            let x0 = j
                .checked_sub(1)
                .and_then(|k| r.sweep.get(k))
                .map_or(x(min_x), |q| x(q.warn as f64 + 1.0));
            let x1 = if j + 1 == r.sweep.len() {
                x(max_x)
            } else {
                x(p.warn as f64 + 1.0)
            };
            if prev.is_none() {
                let _ = write!(path, "M{x0:.1},{:.1}", y(v));
            } else {
                let _ = write!(path, " L{x0:.1},{:.1}", y(v));
            }
            let _ = write!(path, " L{x1:.1},{:.1}", y(v));
            prev = Some(v);
        }
        let _ = writeln!(
            o,
            r#"<path d="{path}" fill="none" stroke="{color}" stroke-width="2.2"{dash}/>"#
        );
        let ly = top + 14.0 + i as f64 * 20.0;
        let lx = left + pw + 16.0;
        let _ = writeln!(
            o,
            r#"<line x1="{lx}" x2="{}" y1="{ly}" y2="{ly}" stroke="{color}" stroke-width="2.2"{dash}/>"#,
            lx + 24.0
        );
        let _ = writeln!(
            o,
            r#"<text x="{}" y="{}" font-size="12">{name}</text>"#,
            lx + 30.0,
            ly + 4.0
        );
    }
    let t = &r.ruleset.thresholds;
    let mut marks: Vec<(i64, &str, &str)> = vec![
        (t.warn, "policy warn", "#0f172a"),
        (t.cool_off, "policy cool_off", "#7f1d1d"),
    ];
    if let Some(opt) = &r.optimum {
        if let Some(wv) = opt.warn {
            marks.push((wv, "optimum warn", "#7c3aed"));
        }
        if let Some(c) = opt.cool_off {
            marks.push((c, "optimum cool_off", "#a855f7"));
        }
    }
    for (i, (v, name, color)) in marks.iter().enumerate() {
        let xv = x(*v as f64 + 0.5);
        let _ = writeln!(
            o,
            r#"<line x1="{xv:.1}" x2="{xv:.1}" y1="{top}" y2="{}" stroke="{color}" stroke-width="1.5" stroke-dasharray="3 3"/>"#,
            top + ph
        );
        let ly = top + 104.0 + i as f64 * 20.0;
        let lx = left + pw + 16.0;
        let _ = writeln!(
            o,
            r#"<line x1="{lx}" x2="{}" y1="{ly}" y2="{ly}" stroke="{color}" stroke-width="1.5" stroke-dasharray="3 3"/>"#,
            lx + 24.0
        );
        let _ = writeln!(
            o,
            r#"<text x="{}" y="{}" font-size="12">{name} = {v}</text>"#,
            lx + 30.0,
            ly + 4.0
        );
    }
    let _ = writeln!(o, "</svg>");
}

/// Per-rule hits as horizontal bars split scam / legit (unlabeled hits in light grey).
fn rule_chart(o: &mut String, r: &Report) {
    let max = r.rules.iter().map(|x| x.hits).max().unwrap_or(0).max(1) as f64;
    let label_w = r.rules.iter().map(|x| x.rule.len()).max().unwrap_or(10) as f64 * 7.2 + 70.0;
    let (row_h, bar_w) = (24.0, 560.0);
    let w = label_w + bar_w + 270.0;
    let h = row_h * r.rules.len() as f64 + 34.0;
    let _ = writeln!(
        o,
        r#"<svg viewBox="0 0 {w:.0} {h:.0}" width="100%" role="img" aria-label="Per-rule hits, scam and legit">"#
    );
    for (i, x) in r.rules.iter().enumerate() {
        let y = 6.0 + i as f64 * row_h;
        let shadow = if x.mode == "shadow" { " (shadow)" } else { "" };
        let _ = writeln!(
            o,
            r#"<text x="{:.0}" y="{}" font-size="12" text-anchor="end">{}{shadow}</text>"#,
            label_w - 8.0,
            y + 13.0,
            esc(&x.rule)
        );
        let scam_w = x.scam_hits as f64 / max * bar_w;
        let legit_w = x.legit_hits as f64 / max * bar_w;
        let other_w = x.hits.saturating_sub(x.scam_hits + x.legit_hits) as f64 / max * bar_w;
        let _ = writeln!(
            o,
            r#"<rect x="{label_w:.0}" y="{y}" width="{scam_w:.1}" height="16" fill="{SCAM}"/>"#
        );
        let _ = writeln!(
            o,
            r#"<rect x="{:.1}" y="{y}" width="{legit_w:.1}" height="16" fill="{LEGIT}"/>"#,
            label_w + scam_w
        );
        if other_w > 0.0 {
            let _ = writeln!(
                o,
                r##"<rect x="{:.1}" y="{y}" width="{other_w:.1}" height="16" fill="#e2e8f0"/>"##,
                label_w + scam_w + legit_w
            );
        }
        let _ = writeln!(
            o,
            r##"<text x="{:.1}" y="{}" font-size="11" fill="#334155">{} scam / {} legit, precision {}</text>"##,
            label_w + scam_w + legit_w + other_w + 6.0,
            y + 12.0,
            thousands(x.scam_hits),
            thousands(x.legit_hits),
            pct(x.precision)
        );
    }
    let y = h - 10.0;
    let _ = writeln!(
        o,
        r#"<rect x="{label_w:.0}" y="{}" width="12" height="10" fill="{SCAM}"/><text x="{:.0}" y="{y}" font-size="11">scam</text>"#,
        y - 9.0,
        label_w + 16.0
    );
    let _ = writeln!(
        o,
        r#"<rect x="{:.0}" y="{}" width="12" height="10" fill="{LEGIT}"/><text x="{:.0}" y="{y}" font-size="11">legit</text>"#,
        label_w + 70.0,
        y - 9.0,
        label_w + 86.0
    );
    let _ = writeln!(o, "</svg>");
}

/// Renders the report as one self-contained HTML page.
pub fn render_html(r: &Report) -> String {
    let mut o = String::new();
    let s = &r.stream;
    let t = &r.ruleset.thresholds;
    let _ = writeln!(o, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>riskgate replay {}</title><style>{STYLE}</style></head><body><main>", esc(&r.ruleset.id));
    let _ = writeln!(o, "<h1>riskgate replay</h1>");
    let packs: Vec<String> = r
        .ruleset
        .packs
        .iter()
        .map(|p| format!("{} {} ({})", esc(&p.id), esc(&p.version), p.mode))
        .collect();
    let files: Vec<String> = s
        .files
        .iter()
        .map(|f| format!("<code>{}</code>", esc(&f.file)))
        .collect();
    let _ = writeln!(
        o,
        "<p class=\"sub\">Rule set <code>{}</code>: {}. Thresholds notice &ge; {}, warn &ge; {}, cool_off &ge; {}. Input: {}.</p>",
        esc(&r.ruleset.id),
        packs.join(", "),
        t.notice,
        t.warn,
        t.cool_off,
        files.join(", ")
    );

    let _ = writeln!(
        o,
        "<section id=\"stream\"><h2>Stream</h2><div class=\"cards\">"
    );
    let warn = r.level(Tier::Warn);
    let cards = [
        (
            thousands(s.withdrawals),
            format!("withdrawals ({} cancelled)", thousands(s.cancelled)),
        ),
        (
            thousands(s.users),
            format!("users, {} events", thousands(s.events)),
        ),
        (
            thousands(s.scam),
            format!("scam-labeled, {}", usd(s.scam_usd)),
        ),
        (
            pct(warn.and_then(|m| m.recall)),
            "scam withdrawals warned or cooled off".to_string(),
        ),
        (
            pct(warn.and_then(|m| m.friction)),
            "legit withdrawals warned or cooled off".to_string(),
        ),
        (thousands(s.invalid), "invalid lines".to_string()),
    ];
    for (value, label) in cards {
        let _ = writeln!(
            o,
            "<div class=\"card\"><b>{value}</b><span>{}</span></div>",
            esc(&label)
        );
    }
    let _ = writeln!(o, "</div>");
    if let (Some(a), Some(b)) = (&s.first_ts, &s.last_ts) {
        let _ = writeln!(o, "<p class=\"note\">From {} to {}; {} labeled legit ({}), {} unlabeled (left out of labeled figures).</p>", esc(a), esc(b), thousands(s.legit), usd(s.legit_usd), thousands(s.unlabeled));
    }
    if !s.invalid_lines.is_empty() {
        let _ = writeln!(
            o,
            "<p class=\"bad\">{} invalid line(s); the first:</p><ul class=\"ex\">",
            thousands(s.invalid)
        );
        for l in &s.invalid_lines {
            let _ = writeln!(
                o,
                "<li><code>{}:{}</code> {}</li>",
                esc(&l.file),
                l.line,
                esc(&l.error)
            );
        }
        let _ = writeln!(o, "</ul>");
    }
    let _ = writeln!(o, "</section>");

    let _ = writeln!(
        o,
        "<div class=\"grid\"><section id=\"tiers\"><h2>Tier distribution</h2>"
    );
    tier_chart(&mut o, r);
    let _ = writeln!(
        o,
        "</section><section id=\"detection\"><h2>Detection (labeled withdrawals)</h2>"
    );
    level_rows(&mut o, &r.levels.iter().collect::<Vec<_>>());
    let _ = writeln!(o, "<p class=\"note\">At tier &ge; level. Recall: scam caught / all scam. USD recall: the same weighted by amount. Precision: scam / labeled among those flagged. Friction: legit flagged / all legit.</p>");
    if s.scam > 0 {
        let _ = writeln!(o, "<p class=\"note\"><b>{} scam withdrawal(s) ({}) hit no rule at all</b>: no threshold reaches them; only new rules can.</p>", thousands(r.scam_without_hits), pct(Some(r.scam_without_hits as f64 / s.scam as f64)));
    }
    if let Some(opt) = &r.optimum {
        let _ = writeln!(
            o,
            "<h2 id=\"optimum\">Optimum for friction &le; {} (cool_off &le; {})</h2>",
            pct(Some(opt.max_friction)),
            pct(Some(opt.max_cool_off_friction))
        );
        if let (Some(n), Some(wv)) = (opt.notice, opt.warn) {
            let cool = opt
                .cool_off
                .map_or_else(|| "none fits".to_string(), |c| c.to_string());
            let _ = writeln!(o, "<p>notice &ge; {n}, <b>warn &ge; {wv}</b>, <b>cool_off &ge; {}</b> (policy: {}, {}, {})</p>", esc(&cool), t.notice, t.warn, t.cool_off);
            let rows: Vec<&LevelMetrics> =
                opt.at_warn.iter().chain(opt.at_cool_off.iter()).collect();
            level_rows(&mut o, &rows);
        }
        if let Some(note) = &opt.note {
            let _ = writeln!(o, "<p class=\"note\">{}</p>", esc(note));
        }
    }
    let _ = writeln!(o, "</section></div>");

    let _ = writeln!(
        o,
        "<section id=\"sweep\"><h2>Recall and friction over the warn threshold</h2>"
    );
    let _ = writeln!(o, "<p class=\"sub\">Figures at &ge; warn if the warn threshold were x (cool_off raised to x where lower). Re-tiered from the recorded scores and floors; no rule ran again.</p>");
    sweep_chart(&mut o, r);
    let _ = writeln!(o, "<details><summary>All {} thresholds</summary><table><tr><th>warn &ge;</th><th>recall</th><th>USD recall</th><th>precision</th><th>friction</th><th>scam caught</th><th>legit flagged</th></tr>", r.sweep.len());
    for p in &r.sweep {
        let m = &p.metrics;
        let _ = writeln!(o, "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>", p.warn, pct(m.recall), pct(m.usd_recall), pct(m.precision), pct(m.friction), thousands(m.scam_flagged), thousands(m.legit_flagged));
    }
    let _ = writeln!(o, "</table></details></section>");

    let _ = writeln!(o, "<section id=\"rules\"><h2>Rules</h2>");
    rule_chart(&mut o, r);
    let _ = writeln!(o, "<table><tr><th>rule</th><th>mode</th><th>score</th><th>evaluated</th><th>hits</th><th>scam</th><th>legit</th><th>precision</th><th>unique scam</th><th>errors</th><th>if live: tiers changed</th>{}</tr>", if r.timing.is_some() { "<th>mean &micro;s</th>" } else { "" });
    for (i, x) in r.rules.iter().enumerate() {
        let change = x.would_change_tiers.map_or_else(
            || "-".to_string(),
            |n| {
                format!(
                    "{} ({} scam, {} legit)",
                    thousands(n),
                    thousands(x.would_change_scam.unwrap_or(0)),
                    thousands(x.would_change_legit.unwrap_or(0))
                )
            },
        );
        let time = r.timing.as_ref().map_or_else(String::new, |tm| {
            let mean = tm.rules.get(i).and_then(|t| t.mean_us);
            format!(
                "<td>{}</td>",
                mean.map_or_else(|| "-".to_string(), |m| format!("{m:.2}"))
            )
        });
        let errors = if x.errors > 0 {
            format!("<span class=\"bad\">{}</span>", thousands(x.errors))
        } else {
            "0".to_string()
        };
        let _ = writeln!(
            o,
            "<tr><td title=\"{}\">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{errors}</td><td>{change}</td>{time}</tr>",
            esc(&x.reason),
            esc(&x.rule),
            x.mode,
            x.score,
            thousands(x.evaluated),
            thousands(x.hits),
            thousands(x.scam_hits),
            thousands(x.legit_hits),
            pct(x.precision),
            thousands(x.unique_scam_catches)
        );
    }
    let _ = writeln!(o, "</table><p class=\"note\">Unique scam: scam withdrawals this rule hit and no other live rule did (for a shadow rule: no live rule did). If live: withdrawals whose tier would change if this shadow rule alone went live.</p></section>");

    if !r.typologies.is_empty() {
        let _ = writeln!(o, "<section id=\"typologies\"><h2>By typology</h2><p class=\"sub\">The <code>typology</code> field of generated streams: which behaviours the rules see, and which they miss.</p>");
        let _ = writeln!(o, "<table><tr><th>typology</th><th>label</th><th>withdrawals</th><th>&ge; notice</th><th>&ge; warn</th><th>cool_off</th><th>share &ge; warn</th><th style=\"text-align:left;width:260px\">share at &ge; notice (light), &ge; warn (solid)</th></tr>");
        for x in &r.typologies {
            let color = if x.label == "scam" { SCAM } else { LEGIT };
            let share = |n: u64| {
                if x.withdrawals == 0 {
                    0.0
                } else {
                    n as f64 / x.withdrawals as f64 * 240.0
                }
            };
            let _ = writeln!(
                o,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td style=\"text-align:left\"><svg width=\"250\" height=\"12\"><rect x=\"0\" y=\"1\" width=\"240\" height=\"10\" fill=\"#f1f5f9\"/><rect x=\"0\" y=\"1\" width=\"{:.1}\" height=\"10\" fill=\"{color}\" opacity=\"0.35\"/><rect x=\"0\" y=\"1\" width=\"{:.1}\" height=\"10\" fill=\"{color}\"/></svg></td></tr>",
                esc(&x.typology),
                x.label,
                thousands(x.withdrawals),
                thousands(x.notice),
                thousands(x.warn),
                thousands(x.cool_off),
                pct(x.warn_share),
                share(x.notice),
                share(x.warn)
            );
        }
        let _ = writeln!(o, "</table></section>");
    }

    if let Some(sweep) = &r.param_sweep {
        param_sweep_section(&mut o, sweep);
    }

    if let Some(e) = &r.effect {
        o.push_str(&super::effect::render_effect_html(e, esc));
    }

    if let Some(b) = &r.baseline {
        let _ = writeln!(
            o,
            "<section id=\"baseline\"><h2>Against the baseline <code>{}</code></h2>",
            esc(&b.ruleset)
        );
        let _ = writeln!(o, "<p class=\"sub\">{} withdrawal(s) change tier. Rows: baseline tier; columns: candidate tier.</p>", thousands(b.changed));
        let max = b
            .matrix
            .iter()
            .enumerate()
            .flat_map(|(i, row)| {
                row.iter()
                    .enumerate()
                    .filter(move |(j, _)| *j != i)
                    .map(|(_, &n)| n)
            })
            .max()
            .unwrap_or(0)
            .max(1);
        let _ = writeln!(
            o,
            "<div class=\"grid\"><div><table class=\"matrix\"><tr><th>baseline \\ candidate</th>"
        );
        for tier in Tier::ALL {
            let _ = write!(o, "<th>{}</th>", tier.name());
        }
        let _ = writeln!(o, "</tr>");
        for (i, (tier, row)) in Tier::ALL.iter().zip(&b.matrix).enumerate() {
            let _ = write!(o, "<tr><th>{}</th>", tier.name());
            for (j, &n) in row.iter().enumerate() {
                if i == j {
                    let _ = write!(o, "<td class=\"diag\">{}</td>", thousands(n));
                } else {
                    let alpha = if n == 0 {
                        0.0
                    } else {
                        0.12 + 0.6 * n as f64 / max as f64
                    };
                    let rgb = if j > i { "220,38,38" } else { "37,99,235" };
                    let _ = write!(
                        o,
                        "<td style=\"background:rgba({rgb},{alpha:.2})\">{}</td>",
                        thousands(n)
                    );
                }
            }
            let _ = writeln!(o, "</tr>");
        }
        let _ = writeln!(o, "</table><p class=\"note\">Red: stricter under the candidate; blue: more lenient.</p></div><div><table><tr><th>level</th><th>&Delta; recall</th><th>&Delta; USD recall</th><th>&Delta; precision</th><th>&Delta; friction</th></tr>");
        for d in &b.deltas {
            let _ = writeln!(
                o,
                "<tr><td>&ge; {}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                d.level.name(),
                points(d.recall),
                points(d.usd_recall),
                points(d.precision),
                points(d.friction)
            );
        }
        let _ = writeln!(o, "</table></div></div>");
        for tr in &b.transitions {
            let _ = writeln!(
                o,
                "<p><b>{} &rarr; {}</b>: {} ({} scam, {} legit)</p><ul class=\"ex\">",
                tr.from.name(),
                tr.to.name(),
                thousands(tr.count),
                thousands(tr.scam),
                thousands(tr.legit)
            );
            for e in &tr.examples {
                let mut why: Vec<String> = e.added.iter().map(|h| format!("+{}", esc(h))).collect();
                why.extend(e.removed.iter().map(|h| format!("&minus;{}", esc(h))));
                let why = if why.is_empty() {
                    "same hits (a floor or threshold)".to_string()
                } else {
                    why.join(", ")
                };
                let _ = writeln!(
                    o,
                    "<li><code>{}</code> {} {} {}: score {} &rarr; {}; {}</li>",
                    esc(&e.id),
                    esc(&e.user_id),
                    e.label.unwrap_or("unlabeled"),
                    usd(e.amount_usd),
                    e.baseline_score,
                    e.candidate_score,
                    why
                );
            }
            let _ = writeln!(o, "</ul>");
        }
        let _ = writeln!(o, "</section>");
    }

    if let Some(tm) = &r.timing {
        let _ = writeln!(o, "<section id=\"timing\"><h2>Timing</h2><p>Decision latency p50 {:.1} &micro;s, p99 {:.1} &micro;s, max {:.1} &micro;s; {} withdrawals/s over {:.2} s.</p></section>", tm.p50_us, tm.p99_us, tm.max_us, thousands(tm.withdrawals_per_second.round() as u64), tm.seconds);
    }
    let _ = writeln!(o, "</main></body></html>");
    o
}

/// The `--param` sweep: one row per combination, its values, then the figures at warn (recall
/// and friction also as bars) and at cool_off, with the policy's thresholds.
fn param_sweep_section(o: &mut String, sweep: &super::params::ParamSweepReport) {
    let _ = writeln!(
        o,
        "<section id=\"param-sweep\"><h2>Param sweep</h2><p class=\"sub\">{} combination(s), each as if its values were overrides in <code>policy.toml</code>; the policy's thresholds.</p>",
        thousands(sweep.points.len() as u64)
    );
    let _ = write!(o, "<table><tr><th>#</th>");
    for spec in &sweep.params {
        let _ = write!(
            o,
            "<th><code>{}.{}</code></th>",
            esc(&spec.rule),
            esc(&spec.name)
        );
    }
    let _ = writeln!(o, "<th>recall &ge; warn</th><th>USD recall</th><th>precision</th><th>friction &ge; warn</th><th style=\"text-align:left;width:260px\">recall (blue), friction &times;10 (red) at &ge; warn</th><th>recall cool_off</th><th>friction cool_off</th></tr>");
    let bar = |x: Option<f64>| x.unwrap_or(0.0).clamp(0.0, 1.0) * 240.0;
    for (i, point) in sweep.points.iter().enumerate() {
        let at = |level: Tier| point.levels.iter().find(|m| m.level == level);
        let warn = at(Tier::Warn);
        let cool = at(Tier::CoolOff);
        let _ = write!(o, "<tr><td>{}</td>", i + 1);
        for setting in &point.params {
            let _ = write!(o, "<td>{}</td>", esc(&setting.value.to_string()));
        }
        let recall = warn.and_then(|m| m.recall);
        let friction = warn.and_then(|m| m.friction);
        let _ = writeln!(
            o,
            "<td>{}</td><td>{}</td><td>{}</td><td>{}</td><td style=\"text-align:left\"><svg width=\"250\" height=\"16\"><rect x=\"0\" y=\"1\" width=\"{:.1}\" height=\"6\" fill=\"{RECALL}\"/><rect x=\"0\" y=\"9\" width=\"{:.1}\" height=\"6\" fill=\"{FRICTION}\"/></svg></td><td>{}</td><td>{}</td></tr>",
            pct(recall),
            pct(warn.and_then(|m| m.usd_recall)),
            pct(warn.and_then(|m| m.precision)),
            pct(friction),
            bar(recall),
            bar(friction.map(|f| f * 10.0)),
            pct(cool.and_then(|m| m.recall)),
            pct(cool.and_then(|m| m.friction))
        );
    }
    let _ = writeln!(o, "</table></section>");
}
