//! The decision log: an append-only, hash-chained JSON Lines record of every decision and of
//! every rule set that decided, and its verification (`riskgate verify-log`).
//!
//! # Line format
//! Every line is one JSON object whose first field is `seq` (1, 2, 3, ... over the whole file)
//! and whose last field is `hash`:
//!
//! ```text
//! {"seq":1,"kind":"ruleset","at":"...","ruleset":"<id>","packs":[{"id":"hk-police","version":"2026.11.0"}],"hash":"<64 hex>"}
//! {"seq":2,"kind":"decision","at":"...","event":"wd-1","ruleset":"<id>","decision":{...},"hash":"<64 hex>"}
//! ```
//!
//! `hash` is the lower-case hex SHA-256 of the previous line's `hash` (64 `0`s for the first
//! line) followed by the exact bytes of this line before `,"hash":`. Editing, removing,
//! inserting or reordering any line breaks the chain at that line or the next one, which
//! [`verify_log`] reports. The chain is tamper-evident, not tamper-proof: whoever can rewrite
//! the whole file can recompute every hash, so keep the last hash (printed by `verify-log`)
//! somewhere else when that matters.
//!
//! # Batching and the loss window
//! Lines are built in memory and written to the file in batches: when [`LogOptions::batch_lines`]
//! are pending, when the oldest pending line is older than [`LogOptions::batch_interval`] (a
//! background thread checks every interval), and on [`DecisionLog::flush`], [`DecisionLog::sync`],
//! [`DecisionLog::close`] and drop. A process that is killed loses at most the lines of the last
//! `batch_interval` and never more than `batch_lines` lines. Batches are handed to the operating
//! system, not synced: a power loss can also lose what the system had not yet written, except
//! after [`DecisionLog::sync`] or [`DecisionLog::close`] (which `riskgate score` calls at the
//! end). A batch cut short by a crash leaves an incomplete last line; [`DecisionLog::open`]
//! refuses to append after it (the chain would hide the loss) and `verify-log` names it.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::decision::Decision;
use crate::error::Error;
use crate::rules::RuleSet;
use crate::time::Timestamp;

/// The `hash` a first line chains to.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";
/// `,"hash":"` + 64 hex digits + `"}`.
const HASH_SUFFIX_LEN: usize = 9 + 64 + 2;

/// One successful load or reload of a rule set.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RulesetRecord {
    /// When it became live (RFC 3339, wall clock).
    pub at: String,
    /// The rule set's id ([`RuleSet::id`]), which changes whenever any of its files changes.
    pub ruleset: String,
    /// Its packs with their versions, sorted by id.
    pub packs: Vec<PackVersion>,
}

/// A pack id and the partner's version string.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PackVersion {
    /// The pack's id.
    pub id: String,
    /// Its `version`.
    pub version: String,
}

impl RulesetRecord {
    /// The record of `rules` becoming live now.
    pub fn now(rules: &RuleSet) -> RulesetRecord {
        RulesetRecord {
            at: now_rfc3339(),
            ruleset: rules.id().to_string(),
            packs: rules
                .packs()
                .iter()
                .map(|p| PackVersion {
                    id: p.id.clone(),
                    version: p.version.clone(),
                })
                .collect(),
        }
    }
}

fn now_rfc3339() -> String {
    Timestamp::from_micros(jiff::Timestamp::now().as_microsecond()).to_string()
}

/// When the log writes its batches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LogOptions {
    /// Write as soon as this many lines are pending.
    pub batch_lines: usize,
    /// Write pending lines once the oldest is this old.
    pub batch_interval: Duration,
}

impl Default for LogOptions {
    /// 1024 lines or 100 ms.
    fn default() -> LogOptions {
        LogOptions {
            batch_lines: 1024,
            batch_interval: Duration::from_millis(100),
        }
    }
}

/// An open decision log. `Send + Sync`: threads may append concurrently (lines are chained in
/// the order the appends take the log's lock). One writer per file: two processes appending to
/// the same file break its chain.
pub struct DecisionLog {
    inner: Arc<Mutex<Inner>>,
    path: PathBuf,
}

impl std::fmt::Debug for DecisionLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DecisionLog")
            .field("path", &self.path)
            .finish()
    }
}

struct Inner {
    file: File,
    path: PathBuf,
    options: LogOptions,
    pending: Vec<u8>,
    pending_lines: usize,
    oldest_pending: Option<Instant>,
    next_seq: u64,
    prev_hash: String,
    /// The first write error; every later call returns it.
    failed: Option<String>,
}

#[derive(Serialize)]
struct DecisionLine<'a> {
    seq: u64,
    kind: &'static str,
    at: String,
    event: &'a str,
    ruleset: &'a str,
    decision: &'a Decision,
}

#[derive(Serialize)]
struct RulesetLine<'a> {
    seq: u64,
    kind: &'static str,
    #[serde(flatten)]
    record: &'a RulesetRecord,
}

impl DecisionLog {
    /// Opens `path` for appending with the default [`LogOptions`], creating it when missing;
    /// an existing log's chain is continued from its last line.
    pub fn open(path: impl AsRef<Path>) -> Result<DecisionLog, Error> {
        DecisionLog::open_with(path, LogOptions::default())
    }

    /// Like [`DecisionLog::open`] with explicit batching.
    pub fn open_with(path: impl AsRef<Path>, options: LogOptions) -> Result<DecisionLog, Error> {
        let path = path.as_ref().to_path_buf();
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(&path)
            .map_err(|e| Error::io(&path, e))?;
        let (last_seq, prev_hash) = last_line(&mut file, &path)?;
        let inner = Inner {
            file,
            path: path.clone(),
            options: LogOptions {
                batch_lines: options.batch_lines.max(1),
                batch_interval: options.batch_interval,
            },
            pending: Vec::new(),
            pending_lines: 0,
            oldest_pending: None,
            next_seq: last_seq + 1,
            prev_hash,
            failed: None,
        };
        let inner = Arc::new(Mutex::new(inner));
        spawn_flusher(Arc::downgrade(&inner), options.batch_interval);
        Ok(DecisionLog { inner, path })
    }

    /// Appends a decision line (the decision carries its ruleset id and the event's id).
    /// Returns the line's sequence number.
    pub fn append_decision(&self, decision: &Decision) -> Result<u64, Error> {
        self.append(|seq| {
            serde_json::to_string(&DecisionLine {
                seq,
                kind: "decision",
                at: now_rfc3339(),
                event: &decision.id,
                ruleset: &decision.ruleset,
                decision,
            })
        })
    }

    /// Appends a rule-set line. [`crate::Scorer`] does this for each load and reload once the
    /// log is attached with [`crate::Scorer::set_audit_log`].
    pub fn append_ruleset(&self, record: &RulesetRecord) -> Result<u64, Error> {
        self.append(|seq| {
            serde_json::to_string(&RulesetLine {
                seq,
                kind: "ruleset",
                record,
            })
        })
    }

    fn append(
        &self,
        content: impl FnOnce(u64) -> serde_json::Result<String>,
    ) -> Result<u64, Error> {
        let mut inner = self.inner.lock();
        inner.check()?;
        let seq = inner.next_seq;
        let json = content(seq)
            .map_err(|e| Error::io(&self.path, format!("cannot encode log line: {e}")))?;
        let body = json.strip_suffix('}').unwrap_or(&json);
        let hash = chain_hash(&inner.prev_hash, body.as_bytes());
        let Inner { pending, .. } = &mut *inner;
        pending.extend_from_slice(body.as_bytes());
        pending.extend_from_slice(b",\"hash\":\"");
        pending.extend_from_slice(hash.as_bytes());
        pending.extend_from_slice(b"\"}\n");
        inner.prev_hash = hash;
        inner.next_seq += 1;
        inner.pending_lines += 1;
        inner.oldest_pending.get_or_insert_with(Instant::now);
        if inner.pending_lines >= inner.options.batch_lines || inner.due() {
            inner.write_pending()?;
        }
        Ok(seq)
    }

    /// Writes pending lines to the file (to the operating system; see [`DecisionLog::sync`]).
    pub fn flush(&self) -> Result<(), Error> {
        let mut inner = self.inner.lock();
        inner.check()?;
        inner.write_pending()
    }

    /// Writes pending lines and syncs the file to disk.
    pub fn sync(&self) -> Result<(), Error> {
        let mut inner = self.inner.lock();
        inner.check()?;
        inner.write_pending()?;
        let result = inner.file.sync_data();
        result.map_err(|e| inner.fail(e))
    }

    /// Syncs and closes the log, returning any write error met on the way.
    pub fn close(self) -> Result<(), Error> {
        self.sync()
    }

    /// The sequence number the next line will get.
    pub fn next_seq(&self) -> u64 {
        self.inner.lock().next_seq
    }

    /// The hash of the last line appended ([`GENESIS_HASH`] for an empty log).
    pub fn last_hash(&self) -> String {
        self.inner.lock().prev_hash.clone()
    }
}

impl Drop for DecisionLog {
    fn drop(&mut self) {
        let mut inner = self.inner.lock();
        if inner.failed.is_none() {
            let _ = inner.write_pending();
            let _ = inner.file.sync_data();
        }
    }
}

impl Inner {
    fn check(&self) -> Result<(), Error> {
        match &self.failed {
            Some(message) => Err(Error::io(
                &self.path,
                format!("decision log failed earlier: {message}"),
            )),
            None => Ok(()),
        }
    }

    fn fail(&mut self, e: std::io::Error) -> Error {
        let message = e.to_string();
        self.failed = Some(message.clone());
        Error::io(&self.path, format!("cannot write decision log: {message}"))
    }

    fn due(&self) -> bool {
        self.oldest_pending
            .is_some_and(|t| t.elapsed() >= self.options.batch_interval)
    }

    fn write_pending(&mut self) -> Result<(), Error> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let result = self.file.write_all(&self.pending);
        self.pending.clear();
        self.pending_lines = 0;
        self.oldest_pending = None;
        result.map_err(|e| self.fail(e))
    }
}

/// Writes due batches every `interval` until the log is dropped.
fn spawn_flusher(inner: Weak<Mutex<Inner>>, interval: Duration) {
    let interval = interval.max(Duration::from_millis(1));
    let spawned = std::thread::Builder::new()
        .name("riskgate-log-flush".into())
        .spawn(move || loop {
            std::thread::sleep(interval);
            let Some(inner) = inner.upgrade() else { return };
            let mut inner = inner.lock();
            if inner.failed.is_none() && inner.due() {
                let _ = inner.write_pending();
            }
        });
    // Without the thread, batches are still written by count, by age at each append, and at
    // flush/close; only the idle-time bound is lost.
    drop(spawned);
}

/// `sha256_hex(prev_hash || body)`.
pub(crate) fn chain_hash(prev_hash: &str, body: &[u8]) -> String {
    let mut hasher = Sha256::new();
    hasher.update(prev_hash.as_bytes());
    hasher.update(body);
    hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Splits a line (without its newline) into the hashed body and the stated hash.
pub(crate) fn split_line(line: &str) -> Option<(&str, &str)> {
    let cut = line.len().checked_sub(HASH_SUFFIX_LEN)?;
    let (body, suffix) = (line.get(..cut)?, line.get(cut..)?);
    let hash = suffix.strip_prefix(",\"hash\":\"")?.strip_suffix("\"}")?;
    let is_hex = hash.len() == 64
        && hash
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    is_hex.then_some((body, hash))
}

/// The `seq` of a line's body.
pub(crate) fn seq_of(body: &str) -> Option<u64> {
    let value: serde_json::Value = serde_json::from_str(&format!("{body}}}")).ok()?;
    value.get("seq")?.as_u64()
}

/// Reads the last line of an existing log: its seq and hash (0 and genesis when empty).
fn last_line(file: &mut File, path: &Path) -> Result<(u64, String), Error> {
    let io = |e: std::io::Error| Error::io(path, e);
    let len = file.seek(SeekFrom::End(0)).map_err(io)?;
    if len == 0 {
        return Ok((0, GENESIS_HASH.to_string()));
    }
    // Read backwards in growing chunks until the line before the last newline starts.
    let mut chunk = 64 * 1024_u64;
    loop {
        let start = len.saturating_sub(chunk);
        file.seek(SeekFrom::Start(start)).map_err(io)?;
        let mut tail = Vec::new();
        Read::by_ref(file)
            .take(len - start)
            .read_to_end(&mut tail)
            .map_err(io)?;
        if tail.last() != Some(&b'\n') {
            return Err(Error::corrupt(
                path,
                "the decision log ends with an incomplete line (a write was cut short); run `riskgate verify-log` and move the log aside before appending",
            ));
        }
        let content = tail.get(..tail.len() - 1).unwrap_or_default();
        let line_start = content.iter().rposition(|&b| b == b'\n').map(|i| i + 1);
        if line_start.is_none() && start > 0 {
            chunk = chunk.saturating_mul(4);
            continue;
        }
        let last = content.get(line_start.unwrap_or(0)..).unwrap_or_default();
        let parsed = std::str::from_utf8(last)
            .ok()
            .and_then(split_line)
            .and_then(|(body, hash)| Some((seq_of(body)?, hash.to_string())));
        return parsed.ok_or_else(|| {
            Error::corrupt(path, "the last line of the decision log is not a chained log line; run `riskgate verify-log`")
        });
    }
}

/// The outcome of [`verify_log`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogReport {
    /// Lines whose chain held (all of them when intact).
    pub verified: u64,
    /// The first broken line, when the chain breaks.
    pub broken: Option<BrokenLine>,
    /// The hash of the last verified line ([`GENESIS_HASH`] when none).
    pub last_hash: String,
}

/// Where and why a log's chain breaks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BrokenLine {
    /// 1-based line number in the file.
    pub line: u64,
    /// What is wrong with it.
    pub reason: String,
}

impl LogReport {
    /// Whether every line chains.
    pub fn is_intact(&self) -> bool {
        self.broken.is_none()
    }
}

impl std::fmt::Display for LogReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.broken {
            None => write!(
                f,
                "OK: {} line(s), chain intact; last hash {}",
                self.verified, self.last_hash
            ),
            Some(b) => write!(
                f,
                "BROKEN at line {}: {} ({} line(s) before it verified)",
                b.line, b.reason, self.verified
            ),
        }
    }
}

/// Checks a whole decision log and reports the first line where the chain breaks (an edited,
/// removed, inserted or reordered line, or an incomplete last line). Errors only when the file
/// cannot be read.
pub fn verify_log(path: impl AsRef<Path>) -> Result<LogReport, Error> {
    let path = path.as_ref();
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    let mut reader = BufReader::with_capacity(1 << 16, file);
    let mut prev = GENESIS_HASH.to_string();
    let mut buffer = Vec::new();
    let mut line_no = 0_u64;
    loop {
        buffer.clear();
        let read = reader
            .read_until(b'\n', &mut buffer)
            .map_err(|e| Error::io(path, e))?;
        if read == 0 {
            return Ok(LogReport {
                verified: line_no,
                broken: None,
                last_hash: prev,
            });
        }
        line_no += 1;
        let broken = |reason: String| LogReport {
            verified: line_no - 1,
            broken: Some(BrokenLine {
                line: line_no,
                reason,
            }),
            last_hash: prev.clone(),
        };
        let Some(bytes) = buffer.strip_suffix(b"\n") else {
            return Ok(broken(
                "incomplete last line (no newline): the writer was cut off mid-line".into(),
            ));
        };
        let Ok(text) = std::str::from_utf8(bytes) else {
            return Ok(broken("not valid UTF-8".into()));
        };
        let Some((body, hash)) = split_line(text) else {
            return Ok(broken(
                "not a chained log line (no trailing \"hash\" field)".into(),
            ));
        };
        match seq_of(body) {
            Some(seq) if seq == line_no => {}
            Some(seq) => {
                return Ok(broken(format!(
                    "sequence number {seq} where {line_no} was expected: a line was removed, inserted or reordered"
                )))
            }
            None => return Ok(broken("not a JSON object with a \"seq\" number".into())),
        }
        let expected = chain_hash(&prev, body.as_bytes());
        if expected != hash {
            return Ok(broken(
                "hash does not match: this line was edited, or the line before it was replaced"
                    .into(),
            ));
        }
        prev = hash.to_string();
    }
}
