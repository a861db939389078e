//! `<pack-id>/pack.toml`: a partner's rules, scores, warnings, watchlists and regions.

use std::path::Path;

use serde::Deserialize;
use toml::Spanned;

use super::problem::{Problems, Source};
use super::sandbox::Sandbox;
use super::warning::{RawWarnings, Warning};
use super::{read_text, watchlist};
use crate::tier::Tier;
use crate::time::Timestamp;

#[derive(Deserialize)]
struct RawPack {
    id: Spanned<String>,
    #[serde(default)]
    name: String,
    #[serde(default)]
    version: String,
    regions: Spanned<Vec<String>>,
    #[serde(default)]
    mode: Option<Spanned<String>>,
    #[serde(default)]
    max_score: Option<Spanned<i64>>,
    #[serde(default)]
    active_from: Option<Spanned<Instant>>,
    #[serde(default)]
    active_until: Option<Spanned<Instant>>,
    #[serde(default)]
    rules: Vec<Spanned<RawRule>>,
    #[serde(default)]
    watchlists: Vec<Spanned<RawWatchlist>>,
    #[serde(default)]
    warnings: RawWarnings,
}

/// A TOML datetime, or an RFC 3339 string.
#[derive(Deserialize)]
#[serde(untagged)]
enum Instant {
    Datetime(toml::value::Datetime),
    Text(String),
}

#[derive(Deserialize)]
struct RawRule {
    id: Spanned<String>,
    script: Spanned<String>,
    #[serde(default)]
    score: Option<Spanned<i64>>,
    #[serde(default)]
    reason: String,
    #[serde(default)]
    warning: Option<Spanned<String>>,
    #[serde(default)]
    min_tier: Option<Spanned<String>>,
    #[serde(default)]
    mode: Option<Spanned<String>>,
    #[serde(default)]
    params: Option<super::params::RawParams>,
}

#[derive(Deserialize)]
struct RawWatchlist {
    id: Spanned<String>,
    file: Spanned<String>,
}

/// Which user countries a pack applies to.
#[derive(Clone, Debug)]
pub(crate) enum Regions {
    All,
    Countries(Vec<String>),
}

impl Regions {
    pub(crate) fn contains(&self, country: &str) -> bool {
        match self {
            Regions::All => true,
            Regions::Countries(list) => list.iter().any(|c| c.eq_ignore_ascii_case(country)),
        }
    }
}

/// A loaded pack, before its rules are merged into the rule set.
pub(crate) struct LoadedPack {
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) version: String,
    pub(crate) regions: Regions,
    pub(crate) shadow: bool,
    pub(crate) max_score: Option<i64>,
    pub(crate) active_from: Option<i64>,
    pub(crate) active_until: Option<i64>,
    pub(crate) rules: Vec<LoadedRule>,
    pub(crate) watchlists: Vec<(String, Vec<String>)>,
    pub(crate) warnings: Vec<Warning>,
}

pub(crate) struct LoadedRule {
    /// `pack/rule`.
    pub(crate) id: String,
    pub(crate) script_file: String,
    pub(crate) ast: rhai::AST,
    pub(crate) score: i64,
    pub(crate) reason: String,
    /// `pack/key`.
    pub(crate) warning: Option<String>,
    pub(crate) min_tier: Option<Tier>,
    pub(crate) shadow: bool,
    /// The manifest's params, then the policy's overrides.
    pub(crate) params: super::params::Params,
}

fn mode_is_shadow(
    mode: &Option<Spanned<String>>,
    what: &str,
    source: &Source<'_>,
    problems: &mut Problems,
) -> bool {
    match mode {
        None => false,
        Some(m) => match m.get_ref().as_str() {
            "live" => false,
            "shadow" => true,
            other => {
                problems.in_source(
                    source,
                    m.span(),
                    format!("{what}mode must be \"live\" or \"shadow\", not \"{other}\""),
                );
                false
            }
        },
    }
}

fn instant(
    value: &Option<Spanned<Instant>>,
    field: &str,
    source: &Source<'_>,
    problems: &mut Problems,
) -> Option<i64> {
    let value = value.as_ref()?;
    let parsed = match value.get_ref() {
        // TOML's own datetime syntax, already checked by the TOML parser (TOML 1.1 lets the
        // seconds be left out, which RFC 3339 does not); it still needs an offset.
        Instant::Datetime(dt) => dt
            .to_string()
            .parse::<jiff::Timestamp>()
            .map(|ts| ts.as_microsecond())
            .map_err(|e| format!("`{dt}` has no offset ({e})")),
        Instant::Text(s) => Timestamp::parse(s).map(Timestamp::as_micros),
    };
    match parsed {
        Ok(micros) => Some(micros),
        Err(e) => {
            problems.in_source(
                source,
                value.span(),
                format!(
                    "{field} needs a date, a time and an offset, e.g. 2026-12-01T00:00:00Z: {e}"
                ),
            );
            None
        }
    }
}

/// Loads one pack folder. Problems are collected; the pack is returned only when it has none.
pub(crate) fn load(
    dir: &Path,
    folder: &str,
    sandbox: &Sandbox,
    problems: &mut Problems,
) -> Option<LoadedPack> {
    let manifest_name = format!("{folder}/pack.toml");
    let text = read_text(&dir.join("pack.toml"), &manifest_name, problems)?;
    let source = Source {
        name: manifest_name,
        text: &text,
    };
    let raw: RawPack = match toml::from_str(&text) {
        Ok(raw) => raw,
        Err(e) => {
            problems.in_source(
                &source,
                e.span().unwrap_or(0..0),
                e.message().trim().to_string(),
            );
            return None;
        }
    };
    let before = problems.len();
    if raw.id.get_ref() != folder {
        problems.in_source(
            &source,
            raw.id.span(),
            format!(
                "pack id \"{}\" must equal its folder name \"{folder}\"",
                raw.id.get_ref()
            ),
        );
    }
    let id = folder.to_string();
    let regions = load_regions(&raw.regions, &source, problems);
    let shadow = mode_is_shadow(&raw.mode, "", &source, problems);
    if let Some(max) = &raw.max_score {
        if *max.get_ref() < 0 {
            problems.in_source(&source, max.span(), "max_score must not be negative");
        }
    }
    let active_from = instant(&raw.active_from, "active_from", &source, problems);
    let active_until = instant(&raw.active_until, "active_until", &source, problems);
    if let (Some(from), Some(until), Some(span)) = (
        active_from,
        active_until,
        raw.active_until.as_ref().map(Spanned::span),
    ) {
        if from >= until {
            problems.in_source(&source, span, "active_until must be later than active_from");
        }
    }
    let warnings = Warning::load_all(raw.warnings, &format!("{id}/"), &source, problems);

    let mut watchlists = Vec::new();
    for list in &raw.watchlists {
        let list = list.get_ref();
        let list_id = list.id.get_ref();
        if !valid_id(list_id) {
            problems.in_source(
                &source,
                list.id.span(),
                format!(
                    "watchlist id \"{list_id}\" must be non-empty letters, digits, '-', '_' or '.'"
                ),
            );
        }
        if watchlists
            .iter()
            .any(|(existing, _)| existing == &format!("{id}/{list_id}"))
        {
            problems.in_source(
                &source,
                list.id.span(),
                format!("watchlist id \"{list_id}\" is used twice"),
            );
        }
        let file = list.file.get_ref();
        if !(file.ends_with(".txt") || file.ends_with(".json")) {
            problems.in_source(
                &source,
                list.file.span(),
                format!("watchlist file \"{file}\" must end in .txt or .json"),
            );
            continue;
        }
        let Some(path) = inside(dir, file) else {
            problems.in_source(
                &source,
                list.file.span(),
                format!("watchlist file \"{file}\" must be a relative path inside the pack"),
            );
            continue;
        };
        let name = format!("{folder}/{file}");
        let Some(contents) = read_text(&path, &name, problems) else {
            continue;
        };
        let addresses = watchlist::parse(
            &Source {
                name,
                text: &contents,
            },
            problems,
        );
        watchlists.push((format!("{id}/{list_id}"), addresses));
    }

    let mut rules: Vec<LoadedRule> = Vec::new();
    let mut seen_ids: Vec<&str> = Vec::new();
    for rule in &raw.rules {
        let rule = rule.get_ref();
        let rule_id = rule.id.get_ref();
        if !valid_id(rule_id) {
            problems.in_source(
                &source,
                rule.id.span(),
                format!("rule id \"{rule_id}\" must be non-empty letters, digits, '-', '_' or '.'"),
            );
        }
        if seen_ids.contains(&rule_id.as_str()) {
            problems.in_source(
                &source,
                rule.id.span(),
                format!("rule id \"{rule_id}\" is used twice in this pack"),
            );
        }
        seen_ids.push(rule_id);
        let warning = rule.warning.as_ref().map(|w| {
            let key = format!("{id}/{}", w.get_ref());
            if !warnings.iter().any(|known| *known.key == *key) {
                problems.in_source(
                    &source,
                    w.span(),
                    format!(
                        "rule \"{rule_id}\" names warning \"{}\", but there is no [warnings.{}.en]",
                        w.get_ref(),
                        w.get_ref()
                    ),
                );
            }
            key
        });
        let min_tier = rule.min_tier.as_ref().and_then(|t| {
            let tier = Tier::from_name(t.get_ref());
            if tier.is_none() {
                problems.in_source(
                    &source,
                    t.span(),
                    format!(
                        "rule \"{rule_id}\": unknown tier \"{}\" (allow, notice, warn, cool_off)",
                        t.get_ref()
                    ),
                );
            }
            tier
        });
        let score = rule.score.as_ref().map_or(0, |s| *s.get_ref());
        if let Some(s) = rule.score.as_ref().filter(|s| *s.get_ref() < 0) {
            // Packs are summed: a negative score would cancel other partners' hits.
            problems.in_source(
                &source,
                s.span(),
                format!("rule \"{rule_id}\": score must not be negative, got {score}"),
            );
        }
        let rule_shadow = mode_is_shadow(
            &rule.mode,
            &format!("rule \"{rule_id}\": "),
            &source,
            problems,
        );
        let params =
            super::params::load_rule_params(rule.params.as_ref(), rule_id, &source, problems);
        let script_name = rule.script.get_ref();
        let Some(path) = inside(dir, script_name).filter(|_| script_name.ends_with(".rhai")) else {
            problems.in_source(&source, rule.script.span(), format!("rule \"{rule_id}\": script \"{script_name}\" must be a .rhai file inside the pack"));
            continue;
        };
        let file = format!("{folder}/{script_name}");
        let Some(script) = read_text(&path, &file, problems) else {
            continue;
        };
        match sandbox.compile(&script) {
            Ok(ast) => rules.push(LoadedRule {
                id: format!("{id}/{rule_id}"),
                script_file: file,
                ast,
                score,
                reason: rule.reason.clone(),
                warning,
                min_tier,
                shadow: shadow || rule_shadow,
                params,
            }),
            Err((line, column, message)) => problems.at(&file, line, column, message),
        }
    }
    if problems.len() > before {
        return None;
    }
    Some(LoadedPack {
        id,
        name: raw.name,
        version: raw.version,
        regions: regions?,
        shadow,
        max_score: raw.max_score.map(Spanned::into_inner),
        active_from,
        active_until,
        rules,
        watchlists,
        warnings,
    })
}

fn load_regions(
    raw: &Spanned<Vec<String>>,
    source: &Source<'_>,
    problems: &mut Problems,
) -> Option<Regions> {
    let list = raw.get_ref();
    if list.is_empty() {
        problems.in_source(
            source,
            raw.span(),
            "regions must name at least one country (ISO 3166 alpha-2) or \"*\"",
        );
        return None;
    }
    if list.iter().any(|r| r == "*") {
        return Some(Regions::All);
    }
    let mut ok = true;
    for region in list {
        if region.len() != 2 || !region.bytes().all(|b| b.is_ascii_alphabetic()) {
            problems.in_source(
                source,
                raw.span(),
                format!("region \"{region}\" is not an ISO 3166 alpha-2 code or \"*\""),
            );
            ok = false;
        }
    }
    ok.then(|| Regions::Countries(list.clone()))
}

/// Ids: letters, digits, `-`, `_`, `.`.
pub(crate) fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// `dir/relative`, refusing absolute paths and `..` so a pack cannot read outside itself.
fn inside(dir: &Path, relative: &str) -> Option<std::path::PathBuf> {
    let path = Path::new(relative);
    let safe = !relative.is_empty()
        && path
            .components()
            .all(|c| matches!(c, std::path::Component::Normal(_)));
    safe.then(|| dir.join(path))
}
