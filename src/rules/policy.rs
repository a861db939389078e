//! `policy.toml`: the exchange's tiers, cooling-off, error handling and sandbox limits.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::problem::{Problems, Source};
use super::warning::{RawWarnings, Warning};
use crate::tier::Tier;

/// The Rhai sandbox limits, per rule evaluation (`[limits]` in `policy.toml`).
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(default)]
pub struct Limits {
    /// Wall-clock deadline per rule, in milliseconds (fractions allowed).
    pub max_rule_ms: f64,
    /// Rhai operations per rule.
    pub max_operations: u64,
    /// Function call depth.
    pub max_call_levels: usize,
    /// Expression nesting, checked when a script is loaded.
    pub max_expr_depth: usize,
    /// Bytes in any string a script builds.
    pub max_string_size: usize,
    /// Elements in any array a script builds.
    pub max_array_size: usize,
    /// Entries in any object map a script builds.
    pub max_map_size: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_rule_ms: 2.0,
            max_operations: 10_000,
            max_call_levels: 16,
            max_expr_depth: 64,
            max_string_size: 4096,
            max_array_size: 1024,
            max_map_size: 256,
        }
    }
}

impl Limits {
    /// The per-rule deadline.
    pub fn deadline(&self) -> Duration {
        Duration::from_secs_f64(self.max_rule_ms / 1000.0)
    }
}

/// Score thresholds: the least total score for each tier above `allow`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
pub struct Thresholds {
    /// Least score for `notice`.
    pub notice: i64,
    /// Least score for `warn`.
    pub warn: i64,
    /// Least score for `cool_off`.
    pub cool_off: i64,
}

impl Thresholds {
    /// The highest tier whose threshold `score` reaches.
    pub fn tier(&self, score: i64) -> Tier {
        if score >= self.cool_off {
            Tier::CoolOff
        } else if score >= self.warn {
            Tier::Warn
        } else if score >= self.notice {
            Tier::Notice
        } else {
            Tier::Allow
        }
    }
}

/// The loaded policy.
#[derive(Debug)]
pub struct Policy {
    /// Tier thresholds.
    pub thresholds: Thresholds,
    /// Hours of a cooling-off.
    pub cool_off_hours: u32,
    /// The least tier of a decision in which a live rule failed (`None`: ignore).
    pub on_rule_error: Option<Tier>,
    /// Sandbox limits.
    pub limits: Limits,
    /// The holdout group (`[holdout]`), when configured.
    pub holdout: Option<super::holdout::Holdout>,
    pub(crate) default_warning: Warning,
}

#[derive(Deserialize)]
struct RawPolicy {
    tiers: toml::Spanned<Thresholds>,
    #[serde(default)]
    cool_off: RawCoolOff,
    #[serde(default)]
    errors: RawErrors,
    #[serde(default)]
    limits: Option<toml::Spanned<Limits>>,
    #[serde(default)]
    warnings: RawWarnings,
    #[serde(default)]
    holdout: Option<super::holdout::RawHoldout>,
}

#[derive(Deserialize)]
struct RawCoolOff {
    hours: u32,
}

impl Default for RawCoolOff {
    fn default() -> Self {
        RawCoolOff { hours: 24 }
    }
}

#[derive(Deserialize)]
struct RawErrors {
    on_rule_error: toml::Spanned<String>,
}

impl Default for RawErrors {
    fn default() -> Self {
        RawErrors {
            on_rule_error: toml::Spanned::new(0..0, "ignore".to_string()),
        }
    }
}

impl Policy {
    /// Parses `policy.toml`; problems go to `problems`.
    pub(crate) fn load(source: &Source<'_>, problems: &mut Problems) -> Option<Policy> {
        let raw: RawPolicy = match toml::from_str(source.text) {
            Ok(raw) => raw,
            Err(e) => {
                problems.in_source(
                    source,
                    e.span().unwrap_or(0..0),
                    e.message().trim().to_string(),
                );
                return None;
            }
        };
        let before = problems.len();
        let tiers_span = raw.tiers.span();
        let thresholds = raw.tiers.into_inner();
        if !(thresholds.notice <= thresholds.warn && thresholds.warn <= thresholds.cool_off) {
            problems.in_source(
                source,
                tiers_span,
                format!(
                    "tier thresholds must not decrease: notice ({}) <= warn ({}) <= cool_off ({})",
                    thresholds.notice, thresholds.warn, thresholds.cool_off
                ),
            );
        }
        let on_rule_error_span = raw.errors.on_rule_error.span();
        let on_rule_error = match raw.errors.on_rule_error.get_ref().as_str() {
            "ignore" => None,
            other => match Tier::from_name(other) {
                Some(tier) => Some(tier),
                None => {
                    problems.in_source(source, on_rule_error_span, format!(
                        "on_rule_error must be \"ignore\" or a tier (allow, notice, warn, cool_off), not \"{other}\""
                    ));
                    None
                }
            },
        };
        let limits_span = raw.limits.as_ref().map_or(0..0, toml::Spanned::span);
        let limits = raw
            .limits
            .map(toml::Spanned::into_inner)
            .unwrap_or_default();
        check_limits(&limits, source, limits_span, problems);
        let mut warnings: BTreeMap<String, Warning> =
            Warning::load_all(raw.warnings, "", source, problems)
                .into_iter()
                .map(|w| (w.key.to_string(), w))
                .collect();
        let holdout = raw
            .holdout
            .and_then(|h| super::holdout::Holdout::load(h, source, problems));
        let default_warning = warnings.remove("default");
        if default_warning.is_none() {
            problems.at(&source.name, 1, 1, "missing [warnings.default.en] (title and body): the warning shown when no rule names one");
        }
        if problems.len() > before {
            return None;
        }
        Some(Policy {
            thresholds,
            cool_off_hours: raw.cool_off.hours,
            on_rule_error,
            limits,
            holdout,
            default_warning: default_warning?,
        })
    }
}

/// The highest `max_call_levels` a policy may set: Rhai recurses on the Rust stack, and deeper
/// calls of the deepest expressions overflow a 2 MiB thread stack (which aborts the process).
pub const CEILING_CALL_LEVELS: usize = 32;
/// The highest `max_expr_depth` a policy may set (the same reason, at parse and at run time).
pub const CEILING_EXPR_DEPTH: usize = 128;

fn check_limits(
    limits: &Limits,
    source: &Source<'_>,
    span: std::ops::Range<usize>,
    problems: &mut Problems,
) {
    for (name, value, ceiling) in [
        (
            "max_call_levels",
            limits.max_call_levels,
            CEILING_CALL_LEVELS,
        ),
        ("max_expr_depth", limits.max_expr_depth, CEILING_EXPR_DEPTH),
    ] {
        if value > ceiling {
            problems.in_source(source, span.clone(), format!("limits.{name} must be at most {ceiling} (deeper would overflow the stack of a scoring thread), got {value}"));
        }
    }
    if !(limits.max_rule_ms.is_finite()
        && limits.max_rule_ms > 0.0
        && limits.max_rule_ms <= 60_000.0)
    {
        problems.in_source(
            source,
            span.clone(),
            format!(
                "limits.max_rule_ms must be above 0 and at most 60000, got {}",
                limits.max_rule_ms
            ),
        );
    }
    let counts = [
        ("max_operations", limits.max_operations as usize),
        ("max_call_levels", limits.max_call_levels),
        ("max_expr_depth", limits.max_expr_depth),
        ("max_string_size", limits.max_string_size),
        ("max_array_size", limits.max_array_size),
        ("max_map_size", limits.max_map_size),
    ];
    for (name, value) in counts {
        if value == 0 {
            problems.in_source(
                source,
                span.clone(),
                format!("limits.{name} must be at least 1 (0 would mean unlimited to Rhai)"),
            );
        }
    }
}
