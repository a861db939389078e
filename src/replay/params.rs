//! Parameter sweeps (`riskgate replay --param pack/rule.name=V1,V2,...`): the figures at each
//! level for every combination of the given values, as if each combination were written into
//! `policy.toml` as overrides and the stream replayed.
//!
//! Features are computed once. During the one replay pass each withdrawal is recorded: its
//! `tx` (when a swept rule's pack applies to it), its label and amount, and what the rules
//! that are not swept decided (their live scores per pack, their `min_tier` floor, whether one
//! failed). Then, per combination, only the swept rules run again, compiled with the
//! combination's params (on the fast path where they fit), and the decision's score and floor
//! are put together again exactly as the scorer does: pack sums capped at `max_score`, floors
//! from `min_tier` and `on_rule_error`.
//!
//! Memory: about 200 bytes per withdrawal plus its strings (ids, address, ...), for the whole
//! stream; sweep what fits in memory.

use std::collections::HashMap;

use serde::Serialize;
use sha2::{Digest, Sha256};

use super::metrics::{label_totals, level_metrics, micros, Histogram, LevelMetrics, Truth};
use crate::decision::{DecisionRef, Tier};
use crate::error::Error;
use crate::event::Withdrawal;
use crate::rules::{ParamValue, Params, RuleSet, RuleVariant, Thresholds, TxView, Watchlists};
use crate::state::TxFeatures;

/// Combinations a sweep may have.
pub const MAX_COMBINATIONS: usize = 10_000;

/// Distinct rules a sweep may change.
pub const MAX_SWEPT_RULES: usize = 64;

/// One `--param pack/rule.name=V1,V2,...`: a rule's param and the values to try.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ParamSpec {
    /// `pack/rule`.
    pub rule: String,
    /// The param's name.
    pub name: String,
    /// The values, in the order given, of the param's type (an integer given for a float
    /// param becomes a float).
    pub values: Vec<ParamValue>,
}

impl ParamSpec {
    /// Parses `pack/rule.name=V1,V2,...` against a loaded rule set: the rule and its param must
    /// exist, and every value must be of the param's type. Strings are given as they are (or
    /// in double quotes); a comma inside a value is written `\,` and a backslash `\\`.
    pub fn parse(text: &str, rules: &RuleSet) -> Result<ParamSpec, Error> {
        let bad = |message: String| Error::invalid_argument(&format!("--param {text}"), message);
        let Some((target, values)) = text.split_once('=') else {
            return Err(bad("expected pack/rule.name=V1,V2,...".into()));
        };
        let Some((rule, name)) = target.trim().rsplit_once('.') else {
            return Err(bad("expected pack/rule.name=V1,V2,...".into()));
        };
        let Some(found) = rules.rules().iter().find(|r| &*r.id == rule) else {
            return Err(bad(format!("no rule \"{rule}\" is loaded")));
        };
        let Some(like) = found.params().get(name) else {
            let names: Vec<&str> = found.params().iter().map(|(n, _)| n).collect();
            return Err(bad(format!(
                "rule \"{rule}\" has no param \"{name}\" (its params: {})",
                if names.is_empty() {
                    "none".to_string()
                } else {
                    names.join(", ")
                }
            )));
        };
        let mut parsed = Vec::new();
        for value in split_values(values) {
            parsed.push(ParamValue::parse_like(&value, like).map_err(bad)?);
        }
        Ok(ParamSpec {
            rule: rule.to_string(),
            name: name.to_string(),
            values: parsed,
        })
    }
}

/// Splits `V1,V2,...` at the commas that are not escaped: `\,` is a comma inside a value and
/// `\\` a backslash; any other backslash is kept as it is.
fn split_values(values: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut chars = values.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(next @ (',' | '\\')) => current.push(next),
                Some(next) => {
                    current.push('\\');
                    current.push(next);
                }
                None => current.push('\\'),
            },
            ',' => out.push(std::mem::take(&mut current)),
            c => current.push(c),
        }
    }
    out.push(current);
    out
}

/// One param set in a combination.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ParamSetting {
    /// `pack/rule`.
    pub rule: String,
    /// The param's name.
    pub name: String,
    /// Its value.
    pub value: ParamValue,
}

/// The figures of one combination.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ParamPoint {
    /// The value of each swept param, in the order of the `--param` arguments.
    pub params: Vec<ParamSetting>,
    /// Labeled figures at notice, warn and cool_off, with the policy's thresholds.
    pub levels: Vec<LevelMetrics>,
}

/// What `--param` adds to the replay report.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ParamSweepReport {
    /// The params swept and their values.
    pub params: Vec<ParamSpec>,
    /// Every combination (the first `--param` varying slowest).
    pub points: Vec<ParamPoint>,
}

/// Which half of the users a withdrawal's user is in: 0 (tuning) when the first byte of the
/// SHA-256 of the user id is even, else 1 (checking).
pub fn user_half(user_id: &str) -> usize {
    let digest = Sha256::digest(user_id.as_bytes());
    usize::from(digest.first().copied().unwrap_or(0) & 1)
}

/// One withdrawal as recorded.
struct Row {
    truth: Truth,
    half: u8,
    usd: i128,
    /// Summed capped scores of the packs no swept rule belongs to.
    fixed: i64,
    /// The `min_tier` floor of the live hits of rules not swept.
    floor: Tier,
    /// A live rule not swept failed.
    live_error: bool,
    /// Bit `j`: swept rule `j`'s pack applies.
    applies: u64,
    /// Index into `txs` (when `applies` is not 0).
    tx: u32,
}

/// A `tx` as recorded: its strings in one buffer.
struct TxRec {
    start: usize,
    lens: [u32; 8],
    amount_usd: f64,
    features: TxFeatures,
}

/// Records a replay for a sweep, then re-evaluates the swept rules per combination.
pub(crate) struct Recorder {
    pub(super) specs: Vec<ParamSpec>,
    /// Indices of the swept rules in the rule set, sorted.
    swept: Vec<usize>,
    /// Per swept rule, its pack's slot in `open_packs`.
    slot: Vec<usize>,
    /// Packs with a swept rule.
    open_packs: Vec<usize>,
    rule_index: HashMap<String, usize>,
    rows: Vec<Row>,
    /// Per row, the live score sums of the rules not swept in each of `open_packs`.
    open: Vec<i64>,
    texts: String,
    txs: Vec<TxRec>,
    /// Scratch: live sums per pack.
    sums: Vec<i64>,
}

impl Recorder {
    pub(crate) fn new(rules: &RuleSet, specs: Vec<ParamSpec>) -> Result<Recorder, Error> {
        let mut swept = Vec::new();
        for spec in &specs {
            let at = rules.rules().iter().position(|r| *r.id == *spec.rule);
            let Some(i) = at else {
                return Err(Error::invalid_argument(
                    &format!("--param {}", spec.rule),
                    "no such rule is loaded",
                ));
            };
            if spec.values.is_empty() {
                return Err(Error::invalid_argument(
                    &format!("--param {}.{}", spec.rule, spec.name),
                    "no values",
                ));
            }
            swept.push(i);
        }
        swept.sort_unstable();
        swept.dedup();
        if swept.len() > MAX_SWEPT_RULES {
            return Err(Error::invalid_argument(
                "--param",
                format!("at most {MAX_SWEPT_RULES} rules can be swept at once"),
            ));
        }
        let combinations = specs
            .iter()
            .try_fold(1_usize, |n, s| n.checked_mul(s.values.len()));
        if combinations.is_none_or(|n| n > MAX_COMBINATIONS) {
            return Err(Error::invalid_argument(
                "--param",
                format!("more than {MAX_COMBINATIONS} combinations of values"),
            ));
        }
        let mut open_packs: Vec<usize> = swept
            .iter()
            .filter_map(|&i| rules.rules().get(i).map(|r| r.pack))
            .collect();
        open_packs.sort_unstable();
        open_packs.dedup();
        let slot = swept
            .iter()
            .map(|&i| {
                let pack = rules.rules().get(i).map_or(0, |r| r.pack);
                open_packs.iter().position(|&p| p == pack).unwrap_or(0)
            })
            .collect();
        Ok(Recorder {
            specs,
            swept,
            slot,
            open_packs,
            rule_index: rules
                .rules()
                .iter()
                .enumerate()
                .map(|(i, r)| (r.id.to_string(), i))
                .collect(),
            rows: Vec::new(),
            open: Vec::new(),
            texts: String::new(),
            txs: Vec::new(),
            sums: vec![0; rules.packs().len()],
        })
    }

    /// Bit `j` set when swept rule `j`'s pack applies to `w`.
    pub(crate) fn applies(&self, rules: &RuleSet, w: &Withdrawal) -> u64 {
        let now = w.ts.as_micros();
        let mut bits = 0;
        for (j, &i) in self.swept.iter().enumerate() {
            let applies = rules
                .rules()
                .get(i)
                .and_then(|r| rules.packs().get(r.pack))
                .is_some_and(|p| p.applies(&w.user.country, now));
            if applies {
                bits |= 1 << j;
            }
        }
        bits
    }

    /// Records one scored withdrawal: `tx` is what its rules saw (needed when `applies` is not
    /// 0), `d` the decision of the rule set as loaded.
    pub(crate) fn record(
        &mut self,
        rules: &RuleSet,
        w: &Withdrawal,
        applies: u64,
        tx: Option<&crate::Tx>,
        d: &DecisionRef<'_>,
    ) {
        self.sums.iter_mut().for_each(|s| *s = 0);
        let mut floor = Tier::Allow;
        for hit in d.hits() {
            let Some(&i) = self.rule_index.get(&**hit.rule) else {
                continue;
            };
            if self.swept.binary_search(&i).is_ok() {
                continue;
            }
            let Some(rule) = rules.rules().get(i) else {
                continue;
            };
            if let Some(sum) = self.sums.get_mut(rule.pack) {
                *sum = sum.saturating_add(hit.score);
            }
            if let Some(min) = rule.min_tier {
                floor = floor.max(min);
            }
        }
        let live_error = d.errors().iter().any(|e| {
            self.rule_index.get(&*e.rule).is_some_and(|&i| {
                self.swept.binary_search(&i).is_err()
                    && rules.rules().get(i).is_some_and(|r| !r.shadow)
            })
        });
        let mut fixed = 0_i64;
        for (p, (pack, &sum)) in rules.packs().iter().zip(&self.sums).enumerate() {
            if self.open_packs.binary_search(&p).is_ok() {
                continue;
            }
            fixed = fixed.saturating_add(pack.max_score.map_or(sum, |cap| sum.min(cap)));
        }
        for &p in &self.open_packs {
            self.open.push(self.sums.get(p).copied().unwrap_or(0));
        }
        let mut tx_index = u32::MAX;
        if let (Some(tx), true) = (tx, applies != 0) {
            tx_index = u32::try_from(self.txs.len()).unwrap_or(u32::MAX);
            let start = self.texts.len();
            let mut lens = [0_u32; 8];
            let fields = tx.strings();
            for (len, field) in lens.iter_mut().zip(fields) {
                self.texts.push_str(field);
                *len = u32::try_from(field.len()).unwrap_or(u32::MAX);
            }
            self.txs.push(TxRec {
                start,
                lens,
                amount_usd: tx.amount_usd,
                features: tx.features,
            });
        }
        self.rows.push(Row {
            truth: Truth::of(w.label),
            half: u8::try_from(user_half(&w.user_id)).unwrap_or(1),
            usd: micros(w.amount_usd),
            fixed,
            floor,
            live_error,
            applies: if tx_index == u32::MAX { 0 } else { applies },
            tx: tx_index,
        });
    }

    /// Every combination of values: one value per spec, the first spec varying slowest.
    pub(crate) fn combinations(&self) -> Vec<Vec<ParamSetting>> {
        let mut out: Vec<Vec<ParamSetting>> = vec![Vec::new()];
        for spec in &self.specs {
            let mut next = Vec::with_capacity(out.len() * spec.values.len());
            for prefix in &out {
                for value in &spec.values {
                    let mut combo = prefix.clone();
                    combo.push(ParamSetting {
                        rule: spec.rule.clone(),
                        name: spec.name.clone(),
                        value: value.clone(),
                    });
                    next.push(combo);
                }
            }
            out = next;
        }
        out
    }

    /// The outcome histograms of a combination, one per half of the users (see
    /// [`user_half`]).
    pub(crate) fn histograms(&self, rules: &RuleSet, combo: &[ParamSetting]) -> [Histogram; 2] {
        let variants: Vec<(RuleVariant, usize, bool, Option<Tier>)> = self
            .swept
            .iter()
            .zip(&self.slot)
            .filter_map(|(&i, &slot)| {
                let rule = rules.rules().get(i)?;
                let mut params: Params = rule.params().clone();
                for setting in combo.iter().filter(|s| *s.rule == *rule.id) {
                    // Values were parsed against the rule's types: this cannot fail.
                    let _ = params.set(&setting.name, &setting.value);
                }
                Some((rules.variant(i, &params)?, slot, rule.shadow, rule.min_tier))
            })
            .collect();
        let caps: Vec<Option<i64>> = self
            .open_packs
            .iter()
            .map(|&p| rules.packs().get(p).and_then(|pack| pack.max_score))
            .collect();
        let on_rule_error = rules.policy().on_rule_error;
        let open_len = self.open_packs.len();
        let mut sums = vec![0_i64; open_len];
        let mut hists = [Histogram::new(), Histogram::new()];
        for (r, row) in self.rows.iter().enumerate() {
            let base = self
                .open
                .get(r * open_len..(r + 1) * open_len)
                .unwrap_or(&[]);
            sums.clear();
            sums.extend_from_slice(base);
            sums.resize(open_len, 0);
            let mut floor = row.floor;
            let mut live_error = row.live_error;
            if row.applies != 0 {
                if let Some(rec) = self.txs.get(row.tx as usize) {
                    let strs = self.strings(rec);
                    let [.., destination] = strs;
                    let lists = rules
                        .watchlists_of(destination)
                        .map(|l| l.as_slice())
                        .unwrap_or_default();
                    let tx = TxView::new(
                        strs,
                        rec.amount_usd,
                        rec.features,
                        Watchlists::Dynamic(lists),
                    );
                    let mut scope = None;
                    for (j, (variant, slot, shadow, min_tier)) in variants.iter().enumerate() {
                        // A shadow rule never changes a tier.
                        if row.applies & (1 << j) == 0 || *shadow {
                            continue;
                        }
                        match rules.run_variant(variant, &tx, &mut scope) {
                            crate::Outcome::Hit(score) => {
                                if let Some(sum) = sums.get_mut(*slot) {
                                    *sum = sum.saturating_add(score);
                                }
                                if let Some(min) = min_tier {
                                    floor = floor.max(*min);
                                }
                            }
                            crate::Outcome::Error(_) => live_error = true,
                            crate::Outcome::NoHit => {}
                        }
                    }
                }
            }
            let score = sums
                .iter()
                .zip(&caps)
                .map(|(&sum, cap)| cap.map_or(sum, |c| sum.min(c)))
                .fold(row.fixed, i64::saturating_add);
            if live_error {
                if let Some(tier) = on_rule_error {
                    floor = floor.max(tier);
                }
            }
            if let Some(hist) = hists.get_mut(usize::from(row.half)) {
                hist.entry((score, floor, row.truth))
                    .or_default()
                    .add(row.usd);
            }
        }
        hists
    }

    fn strings<'a>(&'a self, rec: &TxRec) -> [&'a str; 8] {
        let mut out = [""; 8];
        let mut at = rec.start;
        for (slot, &len) in out.iter_mut().zip(&rec.lens) {
            let end = at + len as usize;
            *slot = self.texts.get(at..end).unwrap_or_default();
            at = end;
        }
        out
    }

    /// The sweep's figures, with the policy's thresholds, over all users.
    pub(crate) fn report(
        &self,
        rules: &RuleSet,
        progress: &mut dyn FnMut(usize, usize),
    ) -> ParamSweepReport {
        let thresholds = rules.policy().thresholds;
        let combos = self.combinations();
        let total = combos.len();
        let mut points = Vec::with_capacity(total);
        for (n, combo) in combos.into_iter().enumerate() {
            let [a, b] = self.histograms(rules, &combo);
            let hist = merge(a, b);
            points.push(ParamPoint {
                params: combo,
                levels: levels(&hist, &thresholds),
            });
            progress(n + 1, total);
        }
        ParamSweepReport {
            params: self.specs.clone(),
            points,
        }
    }
}

/// Both halves' histograms as one.
pub(crate) fn merge(mut a: Histogram, b: Histogram) -> Histogram {
    for (key, tally) in b {
        let entry = a.entry(key).or_default();
        entry.count += tally.count;
        entry.usd = entry.usd.saturating_add(tally.usd);
    }
    a
}

/// The labeled figures at notice, warn and cool_off.
pub(crate) fn levels(hist: &Histogram, thresholds: &Thresholds) -> Vec<LevelMetrics> {
    let totals = label_totals(hist);
    [Tier::Notice, Tier::Warn, Tier::CoolOff]
        .into_iter()
        .map(|level| level_metrics(hist, totals, thresholds, level))
        .collect()
}

/// A combination as `pack/rule.name=value pack/rule.name=value`.
pub fn describe(combo: &[ParamSetting]) -> String {
    combo
        .iter()
        .map(|s| format!("{}.{}={}", s.rule, s.name, s.value))
        .collect::<Vec<_>>()
        .join("  ")
}

/// The sweep's section of the terminal summary.
pub(crate) fn render_text(r: &ParamSweepReport, out: &mut String) {
    use super::render_text::{pct, thousands};
    use std::fmt::Write;
    let _ = writeln!(
        out,
        "\nPARAM SWEEP  ({} combination(s), each as if its values were overrides in policy.toml; policy thresholds)",
        r.points.len()
    );
    for point in &r.points {
        let _ = writeln!(out, "  {}", describe(&point.params));
        for m in &point.levels {
            let _ = writeln!(
                out,
                "    {:<10} recall {:>6}  USD recall {:>6}  precision {:>6}  friction {:>6}  ({} scam, {} legit)",
                m.level.name(),
                pct(m.recall),
                pct(m.usd_recall),
                pct(m.precision),
                pct(m.friction),
                thousands(m.scam_flagged),
                thousands(m.legit_flagged)
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::split_values;

    #[test]
    fn values_split_at_unescaped_commas() {
        assert_eq!(split_values("1,2.5,3"), ["1", "2.5", "3"]);
        assert_eq!(split_values(r"a\,b,c"), ["a,b", "c"]);
        assert_eq!(split_values(r"a\\,b"), [r"a\", "b"]);
        assert_eq!(split_values(r"C:\x,\"), [r"C:\x", r"\"]);
        assert_eq!(split_values(""), [""]);
        assert_eq!(split_values("x,"), ["x", ""]);
    }
}
