//! Partner authority (contract section 3, "Partner authority and signed packs"): with a
//! `[partners]` table in `policy.toml`, the exchange bounds what each pack may do.
//!
//! ```toml
//! [partners.hk-police]
//! regions = ["HK"]             # required: the pack's regions must all be in this list
//! max_score = 150              # optional: the pack's cap is the lower of this and its own
//! max_floor = "cool_off"       # optional, default "warn": the highest min_tier its rules may set
//! mode = "shadow"              # optional: the whole pack runs as shadow
//! public_key = "ed25519:BASE64"   # optional: the pack must carry a valid pack.sig
//! ```
//!
//! A pack is refused, naming it, when it has no entry, when a region of its manifest is outside
//! the entry's, when a rule's `min_tier` is above `max_floor` (shadow rules too), or when the
//! entry has a key and the pack's `pack.sig` is missing or does not verify. Entry problems name
//! their `policy.toml` line; pack problems name the manifest's line.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;
use toml::Spanned;

use super::pack::LoadedPack;
use super::packfs::{self, PackFile};
use super::problem::{Problems, Source};
use crate::decision::Tier;
use crate::signing::PublicKey;

/// The `[partners]` table: one grant per pack id (`None`: an entry with problems, reported).
#[derive(Debug, Default)]
pub(crate) struct Authority {
    grants: BTreeMap<String, Option<Grant>>,
    /// The table did not parse (reported): packs are not checked against it.
    broken: bool,
}

/// What the exchange grants one partner's pack.
#[derive(Clone, Debug)]
pub(crate) struct Grant {
    /// `None`: `"*"`, any region.
    regions: Option<Vec<String>>,
    max_score: Option<i64>,
    max_floor: Tier,
    shadow: bool,
    public_key: Option<PublicKey>,
}

#[derive(Deserialize)]
struct RawTop {
    #[serde(default)]
    partners: Option<Spanned<toml::Value>>,
}

#[derive(Deserialize)]
struct RawPartners {
    partners: BTreeMap<String, Spanned<RawGrant>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGrant {
    #[serde(default)]
    regions: Option<Spanned<Vec<String>>>,
    #[serde(default)]
    max_score: Option<Spanned<i64>>,
    #[serde(default)]
    max_floor: Option<Spanned<String>>,
    #[serde(default)]
    mode: Option<Spanned<String>>,
    #[serde(default)]
    public_key: Option<Spanned<String>>,
}

/// The parts of a manifest authority looks at, with their positions.
#[derive(Deserialize)]
struct RawManifest {
    #[serde(default)]
    id: Option<Spanned<toml::Value>>,
    #[serde(default)]
    regions: Option<Spanned<Vec<toml::Value>>>,
    #[serde(default)]
    rules: Vec<RawManifestRule>,
}

#[derive(Deserialize)]
struct RawManifestRule {
    #[serde(default)]
    id: Option<toml::Value>,
    #[serde(default)]
    min_tier: Option<Spanned<toml::Value>>,
}

impl Authority {
    /// Reads `[partners]` from `policy.toml`; `None` when there is no such table (nothing is
    /// bounded) or the file does not parse (reported by the policy's own loader).
    pub(crate) fn load(source: &Source<'_>, problems: &mut Problems) -> Option<Authority> {
        let top: RawTop = toml::from_str(source.text).ok()?;
        let table = top.partners?;
        if !table.get_ref().is_table() {
            problems.in_source(
                source,
                table.span(),
                "partners must be a table of [partners.<pack-id>] entries",
            );
            return Some(Authority::broken());
        }
        let raw: RawPartners = match toml::from_str(source.text) {
            Ok(raw) => raw,
            Err(e) => {
                problems.in_source(
                    source,
                    e.span().unwrap_or(0..0),
                    format!("partners: {}", e.message().trim()),
                );
                return Some(Authority::broken());
            }
        };
        let grants = raw
            .partners
            .into_iter()
            .map(|(id, entry)| {
                let grant = Grant::load(&id, &entry, source, problems);
                (id, grant)
            })
            .collect();
        Some(Authority {
            grants,
            broken: false,
        })
    }

    fn broken() -> Authority {
        Authority {
            grants: BTreeMap::new(),
            broken: true,
        }
    }

    /// Checks the pack folder `folder` (at `dir`, its files as [`packfs::scan`] listed them)
    /// against its entry: the entry itself, its regions and floors, and its signature. Returns
    /// the grant to apply when nothing was refused.
    pub(crate) fn admit(
        &self,
        dir: &Path,
        folder: &str,
        files: &[PackFile],
        problems: &mut Problems,
    ) -> Option<Grant> {
        if self.broken {
            return None;
        }
        let before = problems.len();
        let manifest_name = format!("{folder}/pack.toml");
        // Read only after the walk found a regular file there; parse problems are the pack
        // loader's to report.
        let text = files
            .iter()
            .any(|f| f.relative == "pack.toml")
            .then(|| std::fs::read_to_string(dir.join("pack.toml")).ok())
            .flatten()
            .unwrap_or_default();
        let source = Source {
            name: manifest_name.clone(),
            text: &text,
        };
        let manifest: Option<RawManifest> = toml::from_str(&text).ok();
        let Some(entry) = self.grants.get(folder) else {
            let span = manifest
                .as_ref()
                .and_then(|m| m.id.as_ref())
                .map_or(0..0, Spanned::span);
            problems.in_source(
                &source,
                span,
                format!(
                    "pack \"{folder}\" has no [partners.{folder}] entry in policy.toml: with a [partners] table, every pack needs the exchange's grant (regions, and optionally max_score, max_floor, mode, public_key)"
                ),
            );
            return None;
        };
        // An entry with problems was reported at its policy.toml line.
        let grant = entry.as_ref()?;
        if let Some(manifest) = &manifest {
            grant.check_manifest(folder, manifest, &source, problems);
        }
        grant.check_signature(folder, files, &manifest_name, problems);
        (problems.len() == before).then(|| grant.clone())
    }
}

impl Grant {
    fn load(
        id: &str,
        entry: &Spanned<RawGrant>,
        source: &Source<'_>,
        problems: &mut Problems,
    ) -> Option<Grant> {
        let before = problems.len();
        let raw = entry.get_ref();
        let regions = match &raw.regions {
            None => {
                problems.in_source(
                    source,
                    entry.span(),
                    format!("[partners.{id}]: pack \"{id}\": regions is required (the user countries the pack may apply to, ISO 3166 alpha-2, or [\"*\"] for any)"),
                );
                None
            }
            Some(list) => {
                for region in list.get_ref() {
                    let valid = region == "*"
                        || (region.len() == 2 && region.bytes().all(|b| b.is_ascii_alphabetic()));
                    if !valid {
                        problems.in_source(
                            source,
                            list.span(),
                            format!("[partners.{id}]: pack \"{id}\": region \"{region}\" is not an ISO 3166 alpha-2 code or \"*\""),
                        );
                    }
                }
                Some(list.get_ref().clone())
            }
        };
        if let Some(max) = raw.max_score.as_ref().filter(|m| *m.get_ref() < 0) {
            problems.in_source(
                source,
                max.span(),
                format!(
                    "[partners.{id}]: pack \"{id}\": max_score must not be negative, got {}",
                    max.get_ref()
                ),
            );
        }
        let max_floor = match &raw.max_floor {
            None => Tier::Warn,
            Some(name) => Tier::from_name(name.get_ref()).unwrap_or_else(|| {
                problems.in_source(
                    source,
                    name.span(),
                    format!("[partners.{id}]: pack \"{id}\": max_floor \"{}\" is not a tier (allow, notice, warn, cool_off)", name.get_ref()),
                );
                Tier::Warn
            }),
        };
        let shadow = match raw.mode.as_ref().map(|m| (m, m.get_ref().as_str())) {
            None | Some((_, "live")) => false,
            Some((_, "shadow")) => true,
            Some((m, other)) => {
                problems.in_source(
                    source,
                    m.span(),
                    format!("[partners.{id}]: pack \"{id}\": mode must be \"live\" or \"shadow\", not \"{other}\""),
                );
                false
            }
        };
        let public_key = raw.public_key.as_ref().and_then(|key| {
            PublicKey::parse(key.get_ref())
                .map_err(|e| {
                    problems.in_source(
                        source,
                        key.span(),
                        format!("[partners.{id}]: pack \"{id}\": public_key: {e}"),
                    );
                })
                .ok()
        });
        if problems.len() > before {
            return None;
        }
        let regions = regions?;
        Some(Grant {
            regions: (!regions.iter().any(|r| r == "*")).then_some(regions),
            max_score: raw.max_score.as_ref().map(|m| *m.get_ref()),
            max_floor,
            shadow,
            public_key,
        })
    }

    fn allows_region(&self, region: &str) -> bool {
        match &self.regions {
            None => true,
            Some(list) => region != "*" && list.iter().any(|r| r.eq_ignore_ascii_case(region)),
        }
    }

    fn check_manifest(
        &self,
        folder: &str,
        manifest: &RawManifest,
        source: &Source<'_>,
        problems: &mut Problems,
    ) {
        if let Some(regions) = &manifest.regions {
            let outside: Vec<String> = regions
                .get_ref()
                .iter()
                .filter_map(|r| r.as_str())
                .filter(|r| !self.allows_region(r))
                .map(|r| format!("\"{r}\""))
                .collect();
            if !outside.is_empty() {
                let granted = match &self.regions {
                    None => "\"*\"".to_string(),
                    Some(list) => list
                        .iter()
                        .map(|r| format!("\"{r}\""))
                        .collect::<Vec<_>>()
                        .join(", "),
                };
                let star = if outside.iter().any(|r| r == "\"*\"") {
                    " (a pack for every country, \"*\", needs \"*\" in the entry)"
                } else {
                    ""
                };
                problems.in_source(
                    source,
                    regions.span(),
                    format!(
                        "pack \"{folder}\": region(s) {} outside what policy.toml [partners.{folder}] grants (regions = [{granted}]){star}",
                        outside.join(", ")
                    ),
                );
            }
        }
        for rule in &manifest.rules {
            let Some(min_tier) = &rule.min_tier else {
                continue;
            };
            let Some(tier) = min_tier.get_ref().as_str().and_then(Tier::from_name) else {
                continue; // an unknown tier is the pack loader's problem
            };
            if tier > self.max_floor {
                let rule_id = rule
                    .id
                    .as_ref()
                    .and_then(|v| v.as_str())
                    .unwrap_or("?")
                    .to_string();
                problems.in_source(
                    source,
                    min_tier.span(),
                    format!(
                        "pack \"{folder}\": rule \"{rule_id}\": min_tier \"{tier}\" is above the max_floor \"{}\" that policy.toml [partners.{folder}] grants",
                        self.max_floor
                    ),
                );
            }
        }
    }

    fn check_signature(
        &self,
        folder: &str,
        files: &[PackFile],
        manifest_name: &str,
        problems: &mut Problems,
    ) {
        let Some(key) = &self.public_key else {
            return;
        };
        let Some(sig_file) = files.iter().find(|f| f.is_signature()) else {
            problems.at(
                manifest_name,
                1,
                1,
                format!("pack \"{folder}\": signature missing: policy.toml [partners.{folder}] has a public_key, so the pack must carry {folder}/pack.sig (see `riskgate sign`)"),
            );
            return;
        };
        let invalid = |problems: &mut Problems, why: String| {
            problems.at(
                manifest_name,
                1,
                1,
                format!("pack \"{folder}\": invalid signature in {folder}/pack.sig: {why}"),
            );
        };
        let text = match crate::signing::read_small(&sig_file.path) {
            Ok(text) => text,
            Err(e) => return invalid(problems, e.to_string()),
        };
        let message = match packfs::message(files) {
            Ok(message) => message,
            Err((path, e)) => return invalid(problems, format!("{}: {e}", path.display())),
        };
        if let Err(why) = key.verify(message.as_bytes(), &text) {
            invalid(
                problems,
                format!("{why} (a file was changed, added or removed since it was signed, or it was signed with another key)"),
            );
        }
    }

    /// Applies the grant to a loaded pack: the lower cap, and forced shadow.
    pub(crate) fn apply(&self, pack: &mut LoadedPack) {
        pack.max_score = match (pack.max_score, self.max_score) {
            (Some(own), Some(granted)) => Some(own.min(granted)),
            (own, granted) => own.or(granted),
        };
        if self.shadow {
            pack.shadow = true;
            for rule in &mut pack.rules {
                rule.shadow = true;
            }
        }
    }
}
