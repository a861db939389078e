//! State snapshots: [`Scorer::save_state`] and [`Scorer::load_state`].
//!
//! # File format (version 5; version 1 to 4 files are still read)
//! ```text
//! "RGSTATE\0"  8 bytes   magic
//! version      u32 LE    5 (or 4 to 1: the same frame, older payload encodings)
//! payload      ...       every user and destination record (see below)
//! "RGSTEND\0"  8 bytes   trailer magic
//! length       u64 LE    payload length in bytes
//! sha256       32 bytes  digest of everything before it (header, payload, trailer magic, length)
//! ```
//! The payload is a compact binary encoding with a string table (user ids and addresses stored
//! once, packed by their shape: decimal ids, UUIDs, hex, base58 and EVM addresses as their
//! bytes; users and destinations in segments saved and loaded on two threads); it is
//! documented in the source of `state/snapshot.rs`. A file with another magic, an
//! unknown version, a missing trailer (truncated), a length or digest that does not match, or
//! a payload that does not decode to consistent records is refused with
//! [`crate::ErrorKind::Corrupt`] and nothing is loaded.
//!
//! # Atomic writes
//! The snapshot is written to a temporary file in the same directory (`.NAME.tmp.PID.N`),
//! synced to disk, renamed over `NAME`, and the directory is synced. A crash at any point
//! leaves either the previous snapshot or the new one under `NAME`; a leftover temporary file
//! is never read (and may be deleted).

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use sha2::{Digest, Sha256};

use crate::error::Error;
use crate::scorer::Scorer;
use crate::state::snapshot::{decode, Counts};
use crate::stream::EventStream;

/// First bytes of a snapshot file.
pub const SNAPSHOT_MAGIC: &[u8; 8] = b"RGSTATE\0";
/// The format version this build writes; it reads this one and versions 1 to 6 (the same
/// records, less compact, written by earlier builds).
pub const SNAPSHOT_VERSION: u32 = 7;
/// The oldest format version this build still reads.
const OLDEST_VERSION: u32 = 1;
const TRAILER_MAGIC: &[u8; 8] = b"RGSTEND\0";
const HEADER_LEN: usize = 12;
const TRAILER_LEN: usize = 8 + 8 + 32;

/// What a snapshot holds (returned by save and load).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SnapshotInfo {
    /// Users with state.
    pub users: usize,
    /// Destinations with state.
    pub destinations: usize,
    /// Withdrawal ids of the stream saved with it (see [`Scorer::save_state_with_stream`]).
    pub withdrawal_ids: usize,
    /// File size in bytes.
    pub bytes: u64,
}

impl SnapshotInfo {
    fn new(counts: Counts, bytes: u64) -> SnapshotInfo {
        SnapshotInfo {
            users: counts.users,
            destinations: counts.destinations,
            withdrawal_ids: counts.withdrawal_ids,
            bytes,
        }
    }
}

/// What [`Scorer::load_state`] restored.
#[derive(Debug)]
pub struct Restored {
    /// Counts and size.
    pub info: SnapshotInfo,
    /// The withdrawal ids the saving stream had seen (empty when saved without a stream); give
    /// them to [`EventStream::resuming`] so that ids stay unique across a restart.
    pub withdrawal_ids: Vec<Box<str>>,
}

impl Scorer {
    /// Saves all feature state to `path` atomically (see the [module docs](crate::snapshot)).
    ///
    /// Scoring and observing go on while it runs: each record is copied under its own brief
    /// read lock, so each user's and destination's record is self-consistent, and an event
    /// observed during the save may or may not be in it. Saved while nothing is observed, the
    /// snapshot is exact.
    pub fn save_state(&self, path: impl AsRef<Path>) -> Result<SnapshotInfo, Error> {
        write_atomically(path.as_ref(), |sink| self.state().encode(None, sink))
    }

    /// Like [`Scorer::save_state`], also keeping the withdrawal ids `stream` has seen, so that
    /// a stream resumed from the snapshot refuses the same duplicates as one that never stopped.
    pub fn save_state_with_stream(
        &self,
        path: impl AsRef<Path>,
        stream: &EventStream,
    ) -> Result<SnapshotInfo, Error> {
        write_atomically(path.as_ref(), |sink| {
            self.state().encode(Some(stream.seen_ids()), sink)
        })
    }

    /// Replaces all feature state with the snapshot at `path`. The whole file is read and
    /// checked first: when it is corrupt, truncated or of an unknown version, the error says
    /// so ([`crate::ErrorKind::Corrupt`]) and the current state is left as it was.
    ///
    /// Meant for start-up: a thread scoring while the checked state is being put in place may
    /// see some users of the old state and some of the new.
    pub fn load_state(&self, path: impl AsRef<Path>) -> Result<Restored, Error> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        let (version, payload) = check_frame(path, &bytes)?;
        let decoded = decode(payload, HEADER_LEN, version)
            .map_err(|m| Error::corrupt(path, format!("state snapshot is corrupt {m}")))?;
        let info = SnapshotInfo::new(decoded.counts(), bytes.len() as u64);
        let mut decoded = decoded;
        let withdrawal_ids = std::mem::take(&mut decoded.withdrawal_ids);
        self.state().restore(decoded);
        Ok(Restored {
            info,
            withdrawal_ids,
        })
    }
}

/// Reads and checks a snapshot into a fresh state, without a scorer (`riskgate store-import`).
pub(crate) fn read_state(
    path: &Path,
) -> Result<(crate::state::State, Vec<Box<str>>, SnapshotInfo), Error> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let (version, payload) = check_frame(path, &bytes)?;
    let mut decoded = decode(payload, HEADER_LEN, version)
        .map_err(|m| Error::corrupt(path, format!("state snapshot is corrupt {m}")))?;
    let info = SnapshotInfo::new(decoded.counts(), bytes.len() as u64);
    let ids = std::mem::take(&mut decoded.withdrawal_ids);
    let state = crate::state::State::default();
    state.restore(decoded);
    Ok((state, ids, info))
}

/// Checks magic, version, trailer, length and digest; returns the version and the payload.
fn check_frame<'a>(path: &Path, bytes: &'a [u8]) -> Result<(u32, &'a [u8]), Error> {
    let corrupt = |m: String| Error::corrupt(path, m);
    if bytes.len() < 8 || bytes.get(..8) != Some(SNAPSHOT_MAGIC.as_slice()) {
        return Err(corrupt(
            "not a riskgate state snapshot (wrong magic bytes)".into(),
        ));
    }
    let version = bytes
        .get(8..HEADER_LEN)
        .and_then(|b| <[u8; 4]>::try_from(b).ok())
        .map(u32::from_le_bytes)
        .ok_or_else(|| corrupt("state snapshot is truncated (no version)".into()))?;
    if !(OLDEST_VERSION..=SNAPSHOT_VERSION).contains(&version) {
        return Err(corrupt(format!(
            "state snapshot has format version {version}; this riskgate reads versions {OLDEST_VERSION} to {SNAPSHOT_VERSION}"
        )));
    }
    let truncated = || {
        corrupt(format!(
            "state snapshot is truncated ({} bytes; the end marker is missing)",
            bytes.len()
        ))
    };
    let trailer_at = bytes
        .len()
        .checked_sub(TRAILER_LEN)
        .filter(|&at| at >= HEADER_LEN)
        .ok_or_else(truncated)?;
    let trailer = bytes.get(trailer_at..).ok_or_else(truncated)?;
    let (magic, rest) = trailer.split_at(8);
    let (length, digest) = rest.split_at(8);
    if magic != TRAILER_MAGIC.as_slice() {
        return Err(truncated());
    }
    let length = <[u8; 8]>::try_from(length)
        .map(u64::from_le_bytes)
        .unwrap_or(u64::MAX);
    let payload_len = (trailer_at - HEADER_LEN) as u64;
    if length != payload_len {
        return Err(corrupt(format!(
            "state snapshot is corrupt: payload is {payload_len} bytes, the trailer says {length}"
        )));
    }
    let signed = bytes.get(..bytes.len() - 32).unwrap_or_default();
    if Sha256::digest(signed).as_slice() != digest {
        return Err(corrupt(
            "state snapshot is corrupt: checksum does not match its contents".into(),
        ));
    }
    Ok((
        version,
        bytes.get(HEADER_LEN..trailer_at).unwrap_or_default(),
    ))
}

/// Distinguishes temporary files of concurrent saves in one process.
static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// A writer that hashes and counts what passes through it.
struct Hashing<W> {
    inner: W,
    hasher: Sha256,
    bytes: u64,
}

impl<W: Write> Hashing<W> {
    fn put(&mut self, data: &[u8]) -> std::io::Result<()> {
        self.hasher.update(data);
        self.bytes += data.len() as u64;
        self.inner.write_all(data)
    }
}

/// Writes header, payload (from `encode`) and trailer to a temporary file, syncs it and renames
/// it over `path`; the temporary file is removed on failure.
fn write_atomically(
    path: &Path,
    encode: impl FnOnce(&mut dyn FnMut(&[u8]) -> std::io::Result<()>) -> std::io::Result<Counts>,
) -> Result<SnapshotInfo, Error> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .ok_or_else(|| Error::io(path, "not a file name"))?;
    let n = TEMP_COUNTER.fetch_add(1, Ordering::Relaxed);
    let temp = dir.join(format!(".{name}.tmp.{}.{n}", std::process::id()));
    let result = write_temp(&temp, encode).and_then(|info| {
        std::fs::rename(&temp, path)?;
        sync_dir(&dir)?;
        Ok(info)
    });
    result.map_err(|e| {
        let _ = std::fs::remove_file(&temp);
        Error::io(path, format!("cannot write state snapshot: {e}"))
    })
}

fn write_temp(
    temp: &Path,
    encode: impl FnOnce(&mut dyn FnMut(&[u8]) -> std::io::Result<()>) -> std::io::Result<Counts>,
) -> std::io::Result<SnapshotInfo> {
    let file = OpenOptions::new().write(true).create_new(true).open(temp)?;
    let mut out = Hashing {
        inner: BufWriter::with_capacity(1 << 20, file),
        hasher: Sha256::new(),
        bytes: 0,
    };
    out.put(SNAPSHOT_MAGIC)?;
    out.put(&SNAPSHOT_VERSION.to_le_bytes())?;
    let counts = encode(&mut |chunk| out.put(chunk))?;
    let payload_len = out.bytes - HEADER_LEN as u64;
    out.put(TRAILER_MAGIC)?;
    out.put(&payload_len.to_le_bytes())?;
    let digest = out.hasher.finalize();
    let mut writer = out.inner;
    writer.write_all(&digest)?;
    let file = writer.into_inner().map_err(|e| e.into_error())?;
    file.sync_all()?;
    Ok(SnapshotInfo::new(counts, out.bytes + digest.len() as u64))
}

/// Makes a rename durable (a no-op where directories cannot be opened, e.g. Windows).
fn sync_dir(dir: &Path) -> std::io::Result<()> {
    if cfg!(unix) {
        File::open(dir)?.sync_all()?;
    }
    Ok(())
}
