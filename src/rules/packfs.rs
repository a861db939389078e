//! Nothing outside a pack folder is read: before a pack is loaded its folder is walked without
//! following anything, and a symbolic link (anywhere: the folder itself, a subfolder, a file),
//! a special file (fifo, socket, device) or a file name that is not UTF-8 or holds a backslash or
//! a newline refuses the pack. The same walk lists the files a signature covers.

use std::io;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::problem::Problems;
use crate::error::Error;

/// Files a pack folder may hold (a hostile folder of millions of files is refused early).
pub const MAX_PACK_FILES: usize = 100_000;

/// One regular file of a pack folder.
#[derive(Clone, Debug)]
pub(crate) struct PackFile {
    /// Relative to the pack folder, with `/` separators.
    pub(crate) relative: String,
    pub(crate) path: PathBuf,
}

impl PackFile {
    /// The top-level `pack.sig`, which a signature does not cover.
    pub(crate) fn is_signature(&self) -> bool {
        self.relative == crate::signing::SIGNATURE_FILE
    }
}

/// What a path is, never following a symbolic link.
fn refusal(meta: &std::fs::Metadata) -> Option<&'static str> {
    let t = meta.file_type();
    if t.is_symlink() {
        return Some("is a symbolic link; a rule set may hold only regular files and folders (nothing outside it is read)");
    }
    if t.is_file() || t.is_dir() {
        return None;
    }
    Some("is a special file (fifo, socket or device); a rule set may hold only regular files and folders")
}

/// Checks the top level of a rules directory: the directory itself, and every entry that is
/// not hidden (`policy.toml` is checked as it is read, a pack folder is walked by [`scan`]).
/// False when the directory itself is refused: nothing in it may then be read.
pub(crate) fn check_root(dir: &Path, problems: &mut Problems) -> bool {
    let shown = dir.display().to_string();
    if let Ok(meta) = std::fs::symlink_metadata(dir) {
        if let Some(why) = refusal(&meta) {
            problems.at(&shown, 1, 1, format!("the rules directory {shown} {why}"));
            return false;
        }
    }
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') || name == "policy.toml" {
                continue;
            }
            if let Ok(meta) = std::fs::symlink_metadata(entry.path()) {
                // Links to folders are reported by the pack walk, under the pack's name.
                if meta.file_type().is_symlink() && entry.path().is_dir() {
                    continue;
                }
                if let Some(why) = refusal(&meta) {
                    problems.at(&name, 1, 1, format!("{name} {why}"));
                }
            }
        }
    }
    true
}

/// Walks the pack folder `dir` (named `folder` in problems). Returns its regular files sorted by
/// relative path (as bytes), or `None` with problems when the folder holds anything refused.
pub(crate) fn scan(dir: &Path, folder: &str, problems: &mut Problems) -> Option<Vec<PackFile>> {
    let before = problems.len();
    match std::fs::symlink_metadata(dir) {
        Ok(meta) => {
            if let Some(why) = refusal(&meta) {
                problems.at(
                    &format!("{folder}/pack.toml"),
                    1,
                    1,
                    format!("pack \"{folder}\": the pack folder {folder} {why}"),
                );
                return None;
            }
            if !meta.is_dir() {
                problems.at(folder, 1, 1, format!("{folder} is not a folder"));
                return None;
            }
        }
        Err(e) => {
            problems.at(
                &format!("{folder}/pack.toml"),
                1,
                1,
                format!("pack \"{folder}\": cannot read the pack folder: {e}"),
            );
            return None;
        }
    }
    let mut files = Vec::new();
    let mut pending: Vec<(PathBuf, String)> = vec![(dir.to_path_buf(), String::new())];
    while let Some((path, prefix)) = pending.pop() {
        let entries = match std::fs::read_dir(&path) {
            Ok(entries) => entries,
            Err(e) => {
                problems.at(
                    &format!("{folder}/{prefix}"),
                    1,
                    1,
                    format!("cannot read folder: {e}"),
                );
                continue;
            }
        };
        for entry in entries {
            let entry = match entry {
                Ok(entry) => entry,
                Err(e) => {
                    problems.at(
                        &format!("{folder}/{prefix}"),
                        1,
                        1,
                        format!("cannot read folder: {e}"),
                    );
                    continue;
                }
            };
            let raw_name = entry.file_name();
            let Some(name) = raw_name.to_str() else {
                problems.at(
                    &format!("{folder}/{prefix}{}", raw_name.to_string_lossy()),
                    1,
                    1,
                    format!("pack \"{folder}\": file name is not valid UTF-8; pack file names must be UTF-8"),
                );
                continue;
            };
            let relative = format!("{prefix}{name}");
            let shown = format!("{folder}/{relative}");
            if name.contains('\\') || name.contains('\n') || name.contains('\r') {
                problems.at(
                    &shown.escape_debug().to_string(),
                    1,
                    1,
                    format!("pack \"{folder}\": file name holds a backslash or a line break; pack file names must not"),
                );
                continue;
            }
            // DirEntry::file_type does not follow a symbolic link.
            let meta = match std::fs::symlink_metadata(entry.path()) {
                Ok(meta) => meta,
                Err(e) => {
                    problems.at(&shown, 1, 1, format!("cannot read: {e}"));
                    continue;
                }
            };
            if let Some(why) = refusal(&meta) {
                problems.at(&shown, 1, 1, format!("pack \"{folder}\": {shown} {why}"));
                continue;
            }
            if meta.is_dir() {
                pending.push((entry.path(), format!("{relative}/")));
            } else {
                files.push(PackFile {
                    relative,
                    path: entry.path(),
                });
                if files.len() > MAX_PACK_FILES {
                    problems.at(
                        &format!("{folder}/pack.toml"),
                        1,
                        1,
                        format!("pack \"{folder}\" holds more than {MAX_PACK_FILES} files"),
                    );
                    return None;
                }
            }
        }
    }
    if problems.len() > before {
        return None;
    }
    files.sort_by(|a, b| a.relative.as_bytes().cmp(b.relative.as_bytes()));
    Some(files)
}

/// [`scan`] with its problems as a load error (for `riskgate sign`).
pub(crate) fn scan_or_error(dir: &Path, folder: &str) -> Result<Vec<PackFile>, Error> {
    let mut problems = Problems::default();
    scan(dir, folder, &mut problems).ok_or_else(|| Error::load(problems.0))
}

/// The signed message: `sha256sum` lines of every file but the top-level `pack.sig`. `files` is
/// sorted as [`scan`] returns it.
pub(crate) fn message(files: &[PackFile]) -> Result<String, (PathBuf, io::Error)> {
    let mut out = String::new();
    for file in files.iter().filter(|f| !f.is_signature()) {
        let digest = sha256_file(&file.path).map_err(|e| (file.path.clone(), e))?;
        for byte in digest {
            out.push(char::from_digit(u32::from(byte >> 4), 16).unwrap_or('0'));
            out.push(char::from_digit(u32::from(byte & 15), 16).unwrap_or('0'));
        }
        out.push_str("  ");
        out.push_str(&file.relative);
        out.push('\n');
    }
    Ok(out)
}

fn sha256_file(path: &Path) -> io::Result<[u8; 32]> {
    // Open without following a link swapped in since the walk.
    let meta = std::fs::symlink_metadata(path)?;
    if !meta.file_type().is_file() {
        return Err(io::Error::other(
            "no longer a regular file (changed while loading)",
        ));
    }
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    io::copy(&mut file, &mut hasher)?;
    Ok(hasher.finalize().into())
}
