//! Rule sets on disk (contract section 3): the policy, partner packs, their scripts and
//! watchlists, compiled at load time into a [`RuleSet`] that scoring only reads.
//!
//! Loading never stops at the first problem: every file is read and every script compiled, and
//! all problems come back together, each as `file:line:column: message`.

mod fastpath;
mod holdout;
mod pack;
pub(crate) mod packfs;
mod params;
mod partners;
mod policy;
mod problem;
mod sandbox;
mod tx;
mod warning;
mod watchlist;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use sha2::{Digest, Sha256};

pub use fastpath::{RuleProbe, FAST_TEXT_LIMIT, NO_FASTPATH_ENV};
pub use holdout::{Holdout, WithheldWarning, MAX_HOLDOUT_SHARE};
pub use params::{valid_name as valid_param_name, ParamValue, Params};
pub use policy::{Limits, Policy, Thresholds};
pub use problem::Problem;
pub use sandbox::{Outcome, MAX_SCRIPT_BYTES};
pub use warning::WarningText;

pub(crate) use pack::Regions;
pub(crate) use params::RuleVariant;
pub(crate) use sandbox::Sandbox;
pub(crate) use tx::{TxView, Watchlists};
pub(crate) use warning::Warning;

use crate::error::Error;
use crate::tier::Tier;
use problem::{Problems, Source};

/// Files larger than this are refused (watchlists included).
const MAX_FILE_BYTES: u64 = 64 * 1024 * 1024;

/// A pack as loaded: what it is and where it applies.
#[derive(Clone, Debug)]
pub struct PackInfo {
    /// The folder name.
    pub id: String,
    /// Who wrote it.
    pub name: String,
    /// The partner's version string.
    pub version: String,
    pub(crate) regions: Regions,
    /// The whole pack is shadow: evaluated and reported, never scored.
    pub shadow: bool,
    /// Cap on the pack's summed live score.
    pub max_score: Option<i64>,
    /// Campaign window start (microseconds since the epoch), inclusive.
    pub active_from: Option<i64>,
    /// Campaign window end, exclusive.
    pub active_until: Option<i64>,
}

impl PackInfo {
    /// Whether the pack applies to a withdrawal by a user of `country` at `ts` (micros).
    pub fn applies(&self, country: &str, ts: i64) -> bool {
        self.regions.contains(country)
            && self.active_from.is_none_or(|from| from <= ts)
            && self.active_until.is_none_or(|until| ts < until)
    }
}

/// One compiled rule.
pub struct Rule {
    /// `pack/rule` (shared with the hits and errors of decisions).
    pub id: Arc<str>,
    /// Index into [`RuleSet::packs`].
    pub pack: usize,
    /// `pack/file.rhai`.
    pub script_file: String,
    pub(crate) ast: rhai::AST,
    /// The rule compiled for the fast path, when it stays within the subset.
    pub(crate) fast: Option<fastpath::FastRule>,
    /// The manifest's score (for `true`).
    pub score: i64,
    /// Why the rule exists, shown in decisions (shared with their hits).
    pub reason: Arc<str>,
    pub(crate) warning: Option<usize>,
    /// The least tier of a decision in which this rule hits live.
    pub min_tier: Option<Tier>,
    /// Evaluated and reported, never scored (the rule's or its pack's mode).
    pub shadow: bool,
    /// The rule's params, overrides applied.
    pub(crate) params: Params,
    /// The `params` map the interpreter puts in scope, when the script reads `params`.
    pub(crate) params_map: Option<rhai::Dynamic>,
}

impl Rule {
    /// Whether the rule runs on the compiled fast path (else in the sandboxed interpreter).
    pub fn fast_path(&self) -> bool {
        self.fast.is_some()
    }

    /// The rule's params, with the policy's overrides applied.
    pub fn params(&self) -> &Params {
        &self.params
    }
}

/// A loaded, compiled rule set: immutable, shared by all scoring threads, replaced whole.
pub struct RuleSet {
    id: Arc<str>,
    pub(crate) policy: Policy,
    pub(crate) packs: Vec<PackInfo>,
    /// Sorted by id, so that hits come out sorted.
    pub(crate) rules: Vec<Rule>,
    pub(crate) warnings: Vec<Warning>,
    /// Normalized address -> sorted ids of the watchlists that hold it.
    watchlists: HashMap<String, rhai::Array, foldhash::fast::RandomState>,
    /// Bit [`watch_bit`] of every address of `watchlists`: an address whose bit is clear is in
    /// no watchlist (most destinations), known without hashing it for the map.
    watch_filter: Box<[u64]>,
    pub(crate) sandbox: Sandbox,
}

/// Bits of [`RuleSet::watch_filter`] (8 KiB): a few thousand listed addresses set a few
/// percent of them.
const WATCH_FILTER_BITS: usize = 1 << 16;

/// An address's bit in [`RuleSet::watch_filter`]: from its length and its last 8 bytes (an
/// address's most varied), mixed by one multiplication.
#[inline]
fn watch_bit(address: &str) -> usize {
    let bytes = address.as_bytes();
    let tail = bytes
        .get(bytes.len().saturating_sub(8)..)
        .unwrap_or_default();
    let mut word = [0_u8; 8];
    if let Some(w) = word.get_mut(..tail.len()) {
        w.copy_from_slice(tail);
    }
    let x = u64::from_le_bytes(word) ^ (bytes.len() as u64).rotate_left(56);
    (x.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> (64 - WATCH_FILTER_BITS.trailing_zeros())) as usize
}

/// The filter of `addresses` (see [`RuleSet::watch_filter`]).
fn watch_filter<'a>(addresses: impl Iterator<Item = &'a String>) -> Box<[u64]> {
    let mut filter = vec![0_u64; WATCH_FILTER_BITS / 64];
    for address in addresses {
        let bit = watch_bit(address);
        if let Some(word) = filter.get_mut(bit / 64) {
            *word |= 1 << (bit % 64);
        }
    }
    filter.into_boxed_slice()
}

impl std::fmt::Debug for RuleSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RuleSet")
            .field("id", &self.id)
            .field("packs", &self.packs)
            .field("rules", &self.rules.len())
            .finish()
    }
}

impl RuleSet {
    /// Loads `dir/policy.toml` and every pack folder in `dir`.
    pub fn load(dir: impl AsRef<Path>) -> Result<RuleSet, Error> {
        load(dir.as_ref(), None)
    }

    /// Loads the policy and the one pack `pack` (what `riskgate check` runs each pack's tests on).
    pub fn load_pack(dir: impl AsRef<Path>, pack: &str) -> Result<RuleSet, Error> {
        load(dir.as_ref(), Some(pack))
    }

    /// Loads `dir`'s policy and packs with the pack folder `pack_dir` in place of the pack of the
    /// same id (or added when there is none): the rule set a new pack or version would make
    /// (`riskgate review`). The pack id is `pack_dir`'s folder name; `dir` is not changed.
    pub fn load_with_pack(
        dir: impl AsRef<Path>,
        pack_dir: impl AsRef<Path>,
    ) -> Result<RuleSet, Error> {
        let (dir, pack_dir) = (dir.as_ref(), pack_dir.as_ref());
        let id = folder_name(pack_dir)?;
        let mut folders: Vec<(String, PathBuf)> = RuleSet::pack_folders(dir)?
            .into_iter()
            .filter(|f| *f != id)
            .map(|f| (f.clone(), dir.join(f)))
            .collect();
        folders.push((id.clone(), pack_dir.to_path_buf()));
        folders.sort();
        load_folders(dir, folders, None, Some((&id, pack_dir)))
    }

    /// Loads `dir`'s policy with the one pack folder `pack_dir` (wherever it is): what
    /// `riskgate review` runs a candidate pack's tests on, as `check` does with
    /// [`RuleSet::load_pack`].
    pub fn load_pack_from(
        dir: impl AsRef<Path>,
        pack_dir: impl AsRef<Path>,
    ) -> Result<RuleSet, Error> {
        let (dir, pack_dir) = (dir.as_ref(), pack_dir.as_ref());
        let id = folder_name(pack_dir)?;
        let folders = vec![(id.clone(), pack_dir.to_path_buf())];
        load_folders(dir, folders, Some(&id), Some((&id, pack_dir)))
    }

    /// Changes whenever any file of the rule set changes.
    pub fn id(&self) -> &str {
        &self.id
    }

    pub(crate) fn id_arc(&self) -> &Arc<str> {
        &self.id
    }

    /// The policy.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// The packs, sorted by id.
    pub fn packs(&self) -> &[PackInfo] {
        &self.packs
    }

    /// Every rule, sorted by full id.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// Evaluates every rule against `tx`, whatever its pack's regions and campaign window:
    /// `out[i]` is the outcome of rule `i` of [`RuleSet::rules`]. The same evaluation as
    /// [`crate::Scorer::score`] runs for the packs that apply (fast path where compiled, the
    /// sandbox otherwise); for benches and tools.
    pub fn evaluate(&self, tx: &crate::Tx, out: &mut Vec<Outcome>) {
        out.clear();
        self.run_rules(
            &TxView::from(tx),
            |_| true,
            false,
            |_, outcome, _| out.push(outcome),
        );
    }

    /// Runs the rules whose pack `applies`, in order, handing each outcome (and, when `timed`,
    /// its duration) to `sink`. The Rhai `tx` map is built only when a rule needs the
    /// interpreter, and then once.
    pub(crate) fn run_rules(
        &self,
        tx: &TxView<'_>,
        applies: impl Fn(usize) -> bool,
        timed: bool,
        mut sink: impl FnMut(usize, Outcome, Option<std::time::Duration>),
    ) {
        let mut scope: Option<rhai::Scope<'static>> = None;
        for (i, rule) in self.rules.iter().enumerate() {
            if !applies(rule.pack) {
                continue;
            }
            let started = timed.then(std::time::Instant::now);
            let fast = rule.fast.as_ref().and_then(|fast| fast.run(tx, rule.score));
            let outcome = match fast {
                Some(outcome) => outcome,
                None => {
                    let scope = scope.get_or_insert_with(|| {
                        let mut scope = rhai::Scope::new();
                        scope.push_constant("tx", tx.to_map());
                        scope
                    });
                    self.sandbox.run_with_params(
                        &rule.ast,
                        scope,
                        rule.params_map.as_ref(),
                        rule.score,
                    )
                }
            };
            sink(i, outcome, started.map(|s| s.elapsed()));
        }
    }

    /// The ids of the watchlists holding a normalized address, sorted.
    pub(crate) fn watchlists_of(&self, address: &str) -> Option<&rhai::Array> {
        let bit = watch_bit(address);
        let listed = self
            .watch_filter
            .get(bit / 64)
            .is_some_and(|word| word & (1 << (bit % 64)) != 0);
        if !listed {
            return None;
        }
        self.watchlists.get(address)
    }

    /// The pack folders of a rules directory, sorted (hidden folders skipped).
    pub fn pack_folders(dir: impl AsRef<Path>) -> Result<Vec<String>, Error> {
        let dir = dir.as_ref();
        let entries = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
        let mut folders = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| Error::io(dir, e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if !name.starts_with('.') && entry.path().is_dir() {
                folders.push(name);
            }
        }
        folders.sort();
        Ok(folders)
    }
}

/// Reads a UTF-8 file, reporting a problem when it can't.
pub(crate) fn read_text(path: &Path, name: &str, problems: &mut Problems) -> Option<String> {
    // Never through a link, never a fifo or device (the pack walk refuses them first; this
    // closes the window should one appear since).
    let meta = std::fs::symlink_metadata(path).ok();
    let refused = |t: std::fs::FileType| t.is_symlink() || !(t.is_file() || t.is_dir());
    if meta.as_ref().is_some_and(|m| refused(m.file_type())) {
        problems.at(
            name,
            1,
            1,
            format!("cannot read file: {name} is a symbolic link or a special file; a rule set may hold only regular files and folders (nothing outside it is read)"),
        );
        return None;
    }
    let size = meta.map_or(0, |m| m.len());
    if size > MAX_FILE_BYTES {
        problems.at(
            name,
            1,
            1,
            format!("file is {size} bytes; the limit is {MAX_FILE_BYTES}"),
        );
        return None;
    }
    match std::fs::read(path) {
        Ok(bytes) => match String::from_utf8(bytes) {
            Ok(text) => Some(text),
            Err(e) => {
                let offset = e.utf8_error().valid_up_to();
                let valid = String::from_utf8_lossy(e.as_bytes().get(..offset).unwrap_or_default())
                    .into_owned();
                let (line, column) = Source {
                    name: name.to_string(),
                    text: &valid,
                }
                .position(offset);
                problems.at(name, line, column, "file is not valid UTF-8");
                None
            }
        },
        Err(e) => {
            problems.at(name, 1, 1, format!("cannot read file: {e}"));
            None
        }
    }
}

/// The folder name of a pack folder path, which is its pack id.
fn folder_name(pack_dir: &Path) -> Result<String, Error> {
    pack_dir
        .file_name()
        .and_then(|n| n.to_str())
        .map(str::to_string)
        .ok_or_else(|| {
            Error::io(
                pack_dir,
                "a pack folder path must end in the pack id (UTF-8)",
            )
        })
}

fn load(dir: &Path, only: Option<&str>) -> Result<RuleSet, Error> {
    let folders = match only {
        Some(pack) => vec![pack.to_string()],
        None => RuleSet::pack_folders(dir)?,
    };
    let folders = folders
        .into_iter()
        .map(|f| (f.clone(), dir.join(f)))
        .collect();
    load_folders(dir, folders, only, None)
}

/// Loads the policy of `dir` and the pack folders `folders` (id, path), sorted by id.
fn load_folders(
    dir: &Path,
    folders: Vec<(String, PathBuf)>,
    only: Option<&str>,
    swap: Option<(&str, &Path)>,
) -> Result<RuleSet, Error> {
    let mut problems = Problems::default();
    // Nothing outside the rule set is read: a linked rules directory is refused first.
    if !packfs::check_root(dir, &mut problems) {
        return Err(Error::load(problems.0));
    }
    let policy_text = read_text(&dir.join("policy.toml"), "policy.toml", &mut problems);
    let policy_source = policy_text.as_deref().map(|text| Source {
        name: "policy.toml".into(),
        text,
    });
    let policy = policy_source
        .as_ref()
        .and_then(|source| Policy::load(source, &mut problems));
    let overrides = policy_source
        .as_ref()
        .map(|source| params::Overrides::parse(source, &mut problems))
        .unwrap_or_default();
    // Packs are compiled even when the policy is broken, so that all problems show at once.
    let limits = policy
        .as_ref()
        .map(|p| p.limits.clone())
        .unwrap_or_default();
    let sandbox = Sandbox::new(&limits);
    let authority = policy_text.as_deref().and_then(|text| {
        partners::Authority::load(
            &Source {
                name: "policy.toml".into(),
                text,
            },
            &mut problems,
        )
    });

    let mut loaded = Vec::new();
    let mut failed = Vec::new();
    for (folder, path) in &folders {
        // Walked first, following nothing: a link or special file refuses the pack unread.
        let Some(files) = packfs::scan(path, folder, &mut problems) else {
            failed.push(folder.clone());
            continue;
        };
        let grant = authority
            .as_ref()
            .and_then(|a| a.admit(path, folder, &files, &mut problems));
        match pack::load(path, folder, &sandbox, &mut problems) {
            Some(mut pack) => {
                if let Some(grant) = &grant {
                    grant.apply(&mut pack);
                }
                loaded.push(pack);
            }
            None => failed.push(folder.clone()),
        }
    }
    params::apply_overrides(&overrides, &mut loaded, only, &failed, &mut problems);
    match policy {
        Some(policy) if problems.is_empty() => {
            let id = fingerprint(dir, only, swap).map_err(|e| Error::io(dir, e))?;
            Ok(assemble(id, policy, loaded, sandbox))
        }
        _ => Err(Error::load(problems.0)),
    }
}

fn assemble(
    id: String,
    policy: Policy,
    loaded: Vec<pack::LoadedPack>,
    sandbox: Sandbox,
) -> RuleSet {
    let mut packs = Vec::new();
    let mut rules = Vec::new();
    let mut warnings = Vec::new();
    let mut watchlists: HashMap<String, Vec<String>> = HashMap::new();
    let fast_path = !fastpath::disabled_by_env();
    for loaded_pack in loaded {
        let pack_index = packs.len();
        for (list_id, addresses) in loaded_pack.watchlists {
            for address in addresses {
                watchlists.entry(address).or_default().push(list_id.clone());
            }
        }
        let first_warning = warnings.len();
        let pack_warnings: Vec<String> = loaded_pack
            .warnings
            .iter()
            .map(|w| w.key.to_string())
            .collect();
        warnings.extend(loaded_pack.warnings);
        for rule in loaded_pack.rules {
            let warning = rule
                .warning
                .as_ref()
                .and_then(|key| pack_warnings.iter().position(|k| k == key))
                .map(|i| first_warning + i);
            let fast = if fast_path {
                fastpath::compile(&rule.ast, &policy.limits, &rule.params)
            } else {
                None
            };
            let params_map = params::reads_params(&rule.ast)
                .then(|| rhai::Dynamic::from_map(rule.params.to_map()));
            rules.push(Rule {
                id: rule.id.into(),
                pack: pack_index,
                script_file: rule.script_file,
                ast: rule.ast,
                fast,
                score: rule.score,
                reason: rule.reason.into(),
                warning,
                min_tier: rule.min_tier,
                shadow: rule.shadow,
                params: rule.params,
                params_map,
            });
        }
        packs.push(PackInfo {
            id: loaded_pack.id,
            name: loaded_pack.name,
            version: loaded_pack.version,
            regions: loaded_pack.regions,
            shadow: loaded_pack.shadow,
            max_score: loaded_pack.max_score,
            active_from: loaded_pack.active_from,
            active_until: loaded_pack.active_until,
        });
    }
    rules.sort_by(|a, b| a.id.cmp(&b.id));
    let watchlists: HashMap<String, rhai::Array, foldhash::fast::RandomState> = watchlists
        .into_iter()
        .map(|(address, mut ids)| {
            ids.sort();
            ids.dedup();
            (address, ids.into_iter().map(rhai::Dynamic::from).collect())
        })
        .collect();
    let watch_filter = watch_filter(watchlists.keys());
    RuleSet {
        id: Arc::from(id),
        policy,
        packs,
        rules,
        warnings,
        watchlists,
        watch_filter,
        sandbox,
    }
}

/// A digest of every file of the rule set (path and contents), so that any change shows.
/// With `swap`, the pack folder `(id, path)` stands in for `dir/id`.
fn fingerprint(
    dir: &Path,
    only: Option<&str>,
    swap: Option<(&str, &Path)>,
) -> std::io::Result<String> {
    let mut files = Vec::new();
    collect_files(dir, dir, &mut files)?;
    let mut files: Vec<(String, PathBuf)> = files
        .into_iter()
        .map(|r| (r.clone(), dir.join(r)))
        .collect();
    if let Some((id, pack_dir)) = swap {
        let prefix = format!("{id}/");
        files.retain(|(relative, _)| !relative.starts_with(&prefix));
        let mut extra = Vec::new();
        collect_files(pack_dir, pack_dir, &mut extra)?;
        files.extend(
            extra
                .into_iter()
                .map(|r| (format!("{prefix}{r}"), pack_dir.join(r))),
        );
    }
    files.sort();
    let mut hasher = Sha256::new();
    for (relative, path) in files {
        let in_scope = match only {
            None => true,
            Some(pack) => relative == "policy.toml" || relative.starts_with(&format!("{pack}/")),
        };
        if !in_scope {
            continue;
        }
        let bytes = std::fs::read(path).unwrap_or_default();
        hasher.update((relative.len() as u64).to_le_bytes());
        hasher.update(relative.as_bytes());
        hasher.update((bytes.len() as u64).to_le_bytes());
        hasher.update(&bytes);
    }
    let digest = hasher.finalize();
    Ok(digest.iter().take(8).map(|b| format!("{b:02x}")).collect())
}

fn collect_files(root: &Path, dir: &Path, out: &mut Vec<String>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        let file_type = entry.file_type()?;
        // Links and special files are never followed or read (the loader refuses them).
        if file_type.is_dir() {
            collect_files(root, &path, out)?;
        } else if !file_type.is_file() {
            continue;
        } else if let Ok(relative) = path.strip_prefix(root) {
            out.push(relative.to_string_lossy().replace('\\', "/"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod watch_filter_tests {
    use super::*;

    /// The filter in front of the watchlists' map hides no listed address (each is found, with
    /// its lists), and turns most unlisted ones away without the map.
    #[test]
    fn the_watch_filter_hides_no_listed_address() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("rules");
        let loaded = RuleSet::load(&dir);
        assert!(loaded.is_ok(), "{:?}", loaded.err());
        let Ok(rules) = loaded else { return };
        assert!(rules.watchlists.len() > 5);
        for (address, lists) in &rules.watchlists {
            let found = rules.watchlists_of(address).map(|l| l.len());
            assert_eq!(found, Some(lists.len()), "{address}");
        }
        let unlisted: Vec<String> = (0..10_000).map(|i| format!("TUnlisted{i:025}")).collect();
        let passed = unlisted
            .iter()
            .filter(|a| {
                let bit = watch_bit(a);
                rules
                    .watch_filter
                    .get(bit / 64)
                    .is_some_and(|w| w & (1 << (bit % 64)) != 0)
            })
            .count();
        assert!(passed < 1_000, "{passed}");
        assert!(unlisted.iter().all(|a| rules.watchlists_of(a).is_none()));
        for short in ["", "a", "0x12", "abcdefgh", "abcdefghi"] {
            assert!(rules.watchlists_of(short).is_none());
        }
    }
}
