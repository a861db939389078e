//! Streams of events (JSON Lines), as `score`, `check` and `replay` read them: blank lines
//! skipped, each invalid line reported by number without changing state, withdrawal ids unique.

use std::hash::BuildHasher;
use std::io::{BufRead, Write};

use hashbrown::hash_table::{self, Entry, HashTable};

use crate::audit::DecisionLog;
use crate::decision::Decision;
use crate::error::Error;
use crate::event::{Event, Parsed, Withdrawal};
use crate::scorer::Scorer;

/// Withdrawal ids seen, checked for every withdrawal: the ids' bytes in one growing buffer and
/// a table of 8-byte places into it, so that an id costs no allocation of its own (a million
/// `Box<str>` in a `HashSet` were ~9% of `riskgate score`: an allocation each, and every rehash
/// following every pointer). A place is `start << 16 | len`; growing the table hashes each id
/// again from the buffer (foldhash over a short id is cheaper than the 16 bytes per entry a
/// stored hash and a wide place cost: 24-byte entries were ~50 MB of a million-id stream's RSS,
/// twice that while the table grew). Hashed with foldhash (SipHash was a visible share of a
/// replay).
#[derive(Default)]
pub(crate) struct IdSet {
    /// The ids back to back; an id of [`LONG`] bytes or more is preceded by its length (`u64`,
    /// little endian), so not every byte range here is UTF-8: ids are compared as bytes.
    bytes: Vec<u8>,
    table: HashTable<u64>,
    hasher: foldhash::fast::RandomState,
}

/// The `len` of a place whose id is this long or longer: the length is in the buffer instead.
/// (Lines are capped at [`MAX_LINE_BYTES`], but a caller of the library may pass anything.)
const LONG: usize = 0xFFFF;
const LEN_BITS: u32 = 16;

/// The id a place names in `bytes` (empty when the place is out of range, which an insert
/// never makes).
fn id_bytes(bytes: &[u8], place: u64) -> &[u8] {
    let start = (place >> LEN_BITS) as usize;
    let len = (place & LONG as u64) as usize;
    let (start, len) = if len == LONG {
        let long = bytes
            .get(start..)
            .and_then(|rest| rest.first_chunk::<8>())
            .map_or(0, |b| u64::from_le_bytes(*b) as usize);
        (start + 8, long)
    } else {
        (start, len)
    };
    bytes
        .get(start..start.saturating_add(len))
        .unwrap_or_default()
}

impl IdSet {
    fn hash(&self, id: &[u8]) -> u64 {
        self.hasher.hash_one(id)
    }

    /// Whether `id` was added.
    pub(crate) fn contains(&self, id: &str) -> bool {
        let id = id.as_bytes();
        self.table
            .find(self.hash(id), |&p| id_bytes(&self.bytes, p) == id)
            .is_some()
    }

    /// Adds `id`; `false` (and no change) when it was there already.
    pub(crate) fn insert(&mut self, id: &str) -> bool {
        let id = id.as_bytes();
        let hash = self.hash(id);
        let IdSet {
            bytes,
            table,
            hasher,
        } = self;
        let found = |&p: &u64| id_bytes(bytes, p) == id;
        let rehash = |&p: &u64| hasher.hash_one(id_bytes(bytes, p));
        match table.entry(hash, found, rehash) {
            Entry::Occupied(_) => false,
            Entry::Vacant(slot) => {
                let start = bytes.len() as u64;
                let len = if id.len() >= LONG {
                    bytes.extend_from_slice(&(id.len() as u64).to_le_bytes());
                    LONG
                } else {
                    id.len()
                };
                bytes.extend_from_slice(id);
                // 2^48 bytes of ids cannot be held in memory: `start` fits its 48 bits.
                slot.insert(start << LEN_BITS | len as u64);
                true
            }
        }
    }
}

impl FromIterator<Box<str>> for IdSet {
    fn from_iter<I: IntoIterator<Item = Box<str>>>(ids: I) -> IdSet {
        let mut set = IdSet::default();
        for id in ids {
            set.insert(&id);
        }
        set
    }
}

/// The ids of an [`IdSet`], in no particular order.
pub(crate) struct Ids<'a> {
    bytes: &'a [u8],
    entries: hash_table::Iter<'a, u64>,
}

impl<'a> Iterator for Ids<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        // Every id was a `&str` when added.
        self.entries
            .next()
            .map(|&p| std::str::from_utf8(id_bytes(self.bytes, p)).unwrap_or_default())
    }
}

impl<'a> IntoIterator for &'a IdSet {
    type Item = &'a str;
    type IntoIter = Ids<'a>;

    fn into_iter(self) -> Ids<'a> {
        Ids {
            bytes: &self.bytes,
            entries: self.table.iter(),
        }
    }
}

/// Lines longer than this are invalid (and not held in memory).
pub const MAX_LINE_BYTES: usize = 1024 * 1024;

/// What one line came to.
#[derive(Debug)]
pub enum Processed {
    /// A blank line.
    Blank,
    /// An account event, recorded.
    Observed(Event),
    /// A withdrawal, decided and then recorded.
    Scored(Box<Withdrawal>, Decision),
}

/// Feeds lines to a [`Scorer`] in order: score each withdrawal, then observe every event.
pub struct EventStream {
    line: usize,
    withdrawal_ids: IdSet,
    /// The withdrawal [`EventStream::write_decisions`] reads each line into.
    withdrawal: Withdrawal,
}

impl Default for EventStream {
    fn default() -> EventStream {
        EventStream::resuming([])
    }
}

impl EventStream {
    /// A stream starting at line 1 with no withdrawal ids seen.
    pub fn new() -> EventStream {
        EventStream::default()
    }

    /// Processes the next line. An invalid line yields [`crate::ErrorKind::InvalidEvent`] with its
    /// number and changes no state.
    pub fn process(
        &mut self,
        scorer: &Scorer,
        line: Result<&str, String>,
    ) -> Result<Processed, Error> {
        self.process_with(scorer, line, Scorer::score)
    }

    /// Like [`EventStream::process`], deciding each valid withdrawal with `score` (called once,
    /// before the withdrawal is observed), e.g. to time the decision or to call
    /// [`Scorer::score_timed`]. `riskgate replay` uses it.
    pub fn process_with(
        &mut self,
        scorer: &Scorer,
        line: Result<&str, String>,
        score: impl FnOnce(&Scorer, &Withdrawal) -> Decision,
    ) -> Result<Processed, Error> {
        let Some((text, line_no)) = self.next_text(line)? else {
            return Ok(Processed::Blank);
        };
        let event =
            Event::parse_line(text).map_err(|message| Error::invalid_event(line_no, message))?;
        match event {
            Event::Withdrawal(w) => {
                let decision = decide(&mut self.withdrawal_ids, scorer, &w, line_no, score)?;
                Ok(Processed::Scored(Box::new(w), decision))
            }
            other => observe(scorer, other).map(Processed::Observed),
        }
    }

    /// Like [`EventStream::process`], reading a withdrawal into the stream's own (reused: no
    /// allocation for its strings once they have grown); `Some` decision for a withdrawal.
    fn process_in_place(
        &mut self,
        scorer: &Scorer,
        line: Result<&str, String>,
    ) -> Result<Option<Decision>, Error> {
        let Some((text, line_no)) = self.next_text(line)? else {
            return Ok(None);
        };
        let parsed = crate::event::parse_into(text, &mut self.withdrawal)
            .map_err(|message| Error::invalid_event(line_no, message))?;
        if let Parsed::Account(event) = parsed {
            return observe(scorer, event).map(|_| None);
        }
        let w = &self.withdrawal;
        decide(&mut self.withdrawal_ids, scorer, w, line_no, Scorer::score).map(Some)
    }

    /// `riskgate score`'s loop: reads every line, writes one decision line per withdrawal to
    /// `out` (and to `log`, when given) and `{"line":N,"error":"..."}` for each invalid line.
    /// Returns the number of invalid lines; stops early on a store failure, a log write error
    /// or an output error. A read error ends the lines (see [`LineReader::io_error`]).
    /// `out` should be buffered: each line is written in a few pieces.
    pub fn write_decisions<R: BufRead, W: Write>(
        &mut self,
        scorer: &Scorer,
        lines: &mut LineReader<R>,
        out: &mut W,
        log: Option<&DecisionLog>,
    ) -> Result<usize, Stopped> {
        let mut invalid = 0_usize;
        while let Some(line) = lines.next_line() {
            match self.process_in_place(scorer, line) {
                Ok(Some(decision)) => {
                    if let Some(log) = log {
                        log.append_decision(&decision).map_err(Stopped::Log)?;
                    }
                    // Straight into the writer: no String per decision.
                    serde_json::to_writer(&mut *out, &decision)
                        .map_err(|e| Stopped::Write(e.into()))?;
                    out.write_all(b"\n").map_err(Stopped::Write)?;
                }
                Ok(None) => {}
                Err(e) if matches!(e.kind(), crate::ErrorKind::Store { .. }) => {
                    return Err(Stopped::Store(e));
                }
                Err(e) => {
                    invalid += 1;
                    let message = match e.kind() {
                        crate::ErrorKind::InvalidEvent { message, .. } => message.clone(),
                        _ => e.to_string(),
                    };
                    let error = LineError {
                        line: self.line,
                        error: &message,
                    };
                    serde_json::to_writer(&mut *out, &error)
                        .map_err(|e| Stopped::Write(e.into()))?;
                    out.write_all(b"\n").map_err(Stopped::Write)?;
                }
            }
        }
        Ok(invalid)
    }

    /// Counts the line; `None` for a blank one, an error for one that could not be read.
    fn next_text<'l>(
        &mut self,
        line: Result<&'l str, String>,
    ) -> Result<Option<(&'l str, usize)>, Error> {
        self.line += 1;
        let line_no = self.line;
        let text = line.map_err(|message| Error::invalid_event(line_no, message))?;
        Ok((!text.trim().is_empty()).then_some((text, line_no)))
    }

    /// The number of the last line processed.
    pub fn line(&self) -> usize {
        self.line
    }

    /// A stream that continues one saved with [`Scorer::save_state_with_stream`]: line numbers
    /// start again at 1, and the withdrawal ids it had seen (from
    /// [`crate::Restored::withdrawal_ids`]) are refused as duplicates.
    pub fn resuming(withdrawal_ids: impl IntoIterator<Item = Box<str>>) -> EventStream {
        EventStream {
            line: 0,
            withdrawal_ids: withdrawal_ids.into_iter().collect(),
            withdrawal: Withdrawal::blank(),
        }
    }

    /// The withdrawal ids seen so far (what a snapshot keeps of the stream).
    pub(crate) fn seen_ids(&self) -> &IdSet {
        &self.withdrawal_ids
    }
}

/// Why [`EventStream::write_decisions`] stopped before the end of its input.
#[derive(Debug)]
pub enum Stopped {
    /// The shared store failed: nothing is decided on state that could not be read or written.
    Store(Error),
    /// The decision log could not be written.
    Log(Error),
    /// The output could not be written (e.g. [`std::io::ErrorKind::BrokenPipe`]).
    Write(std::io::Error),
}

/// `{"line":N,"error":"..."}`, in that order (contract section 5).
#[derive(serde::Serialize)]
struct LineError<'a> {
    line: usize,
    error: &'a str,
}

/// Observes an account event (through a shared store: recorded, its failure returned).
fn observe(scorer: &Scorer, event: Event) -> Result<Event, Error> {
    if scorer.store().is_memory() {
        scorer.observe(&event);
    } else {
        scorer.try_record(&event)?;
    }
    Ok(event)
}

/// Decides a valid withdrawal: refuses an id seen before, scores, then records it.
fn decide(
    ids: &mut IdSet,
    scorer: &Scorer,
    w: &Withdrawal,
    line_no: usize,
    score: impl FnOnce(&Scorer, &Withdrawal) -> Decision,
) -> Result<Decision, Error> {
    let duplicate = || {
        Error::invalid_event(
            line_no,
            format!(
                "withdrawal id \"{}\" was seen before; ids must be unique",
                w.id
            ),
        )
    };
    if !scorer.store().is_memory() {
        if ids.contains(w.id.as_str()) {
            return Err(duplicate());
        }
        return decide_shared(ids, scorer, w, line_no, score);
    }
    // One hash and probe: `insert` leaves the set unchanged for an id already there.
    if !ids.insert(&w.id) {
        return Err(duplicate());
    }
    let decision = score(scorer, w);
    scorer.observe_withdrawal(w);
    Ok(decision)
}

/// A withdrawal through a shared store: a store failure is returned as
/// [`crate::ErrorKind::Store`] (the caller stops; the decision made meanwhile is dropped),
/// an id another process recorded first is an invalid line like any duplicate.
fn decide_shared(
    ids: &mut IdSet,
    scorer: &Scorer,
    w: &Withdrawal,
    line_no: usize,
    score: impl FnOnce(&Scorer, &Withdrawal) -> Decision,
) -> Result<Decision, Error> {
    let decision = score(scorer, w);
    if let Some(e) = scorer.take_store_failure() {
        return Err(e);
    }
    match scorer.try_record_withdrawal(w) {
        Ok(()) => {}
        Err(e) if matches!(e.kind(), crate::ErrorKind::Duplicate { .. }) => {
            return Err(Error::invalid_event(line_no, e.to_string()));
        }
        Err(e) => return Err(e),
    }
    ids.insert(&w.id);
    Ok(decision)
}

/// Reads lines of at most [`MAX_LINE_BYTES`], without holding a longer one in memory.
/// Yields `Err(message)` for an over-long or non-UTF-8 line; `None` at the end or on an I/O error
/// (kept in [`LineReader::io_error`]).
pub struct LineReader<R> {
    reader: R,
    buffer: Vec<u8>,
    io_error: Option<std::io::Error>,
}

impl<R: BufRead> LineReader<R> {
    /// Wraps a buffered reader.
    pub fn new(reader: R) -> LineReader<R> {
        LineReader {
            reader,
            buffer: Vec::new(),
            io_error: None,
        }
    }

    /// The I/O error that ended reading, if any.
    pub fn io_error(&mut self) -> Option<std::io::Error> {
        self.io_error.take()
    }

    /// The next line, without its line ending.
    pub fn next_line(&mut self) -> Option<Result<&str, String>> {
        self.buffer.clear();
        let mut too_long = false;
        let mut any = false;
        loop {
            let chunk = match self.reader.fill_buf() {
                Ok(chunk) => chunk,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    self.io_error = Some(e);
                    return None;
                }
            };
            if chunk.is_empty() {
                break;
            }
            any = true;
            // memchr: a SIMD scan, where a byte loop was a visible share of `riskgate score`.
            let (piece, consumed, done) = match memchr::memchr(b'\n', chunk) {
                Some(i) => (chunk.get(..i).unwrap_or_default(), i + 1, true),
                None => (chunk, chunk.len(), false),
            };
            if !too_long {
                if self.buffer.len() + piece.len() > MAX_LINE_BYTES {
                    too_long = true;
                    self.buffer.clear();
                } else {
                    self.buffer.extend_from_slice(piece);
                }
            }
            self.reader.consume(consumed);
            if done {
                break;
            }
        }
        if !any {
            return None;
        }
        if too_long {
            return Some(Err(format!("line is longer than {MAX_LINE_BYTES} bytes")));
        }
        if self.buffer.last() == Some(&b'\r') {
            self.buffer.pop();
        }
        Some(
            std::str::from_utf8(&self.buffer)
                .map_err(|e| format!("line is not valid UTF-8 (byte {})", e.valid_up_to() + 1)),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_id_set_holds_each_id_once_and_gives_them_all_back() {
        let mut ids: IdSet = ["wd-1", "wd-2", "wd-1"]
            .into_iter()
            .map(Box::from)
            .collect();
        assert!(ids.contains("wd-1") && ids.contains("wd-2"));
        assert!(!ids.contains("wd-3") && !ids.contains("wd-") && !ids.contains(""));
        assert!(ids.insert("wd-3"));
        assert!(!ids.insert("wd-3"));
        assert!(ids.insert(""));
        // Enough ids to grow the table several times, each found again afterwards.
        for i in 0..10_000 {
            assert!(ids.insert(&format!("id-{i}")));
        }
        for i in 0..10_000 {
            assert!(ids.contains(&format!("id-{i}")) && !ids.insert(&format!("id-{i}")));
        }
        let mut all: Vec<&str> = ids.into_iter().collect();
        all.sort_unstable();
        assert_eq!(all.len(), 10_004);
        assert_eq!(all.get(..4), Some(&["", "id-0", "id-1", "id-10"][..]));
        assert!(all.ends_with(&["wd-1", "wd-2", "wd-3"]));
    }

    #[test]
    fn the_id_set_keeps_ids_longer_than_a_place_can_say() {
        let mut ids = IdSet::default();
        let long: Vec<String> = [LONG - 1, LONG, LONG + 1, 3 * LONG]
            .iter()
            .zip(["a", "b", "c", "d"])
            .map(|(&n, letter)| letter.repeat(n))
            .collect();
        for id in &long {
            assert!(ids.insert(id) && !ids.insert(id));
            assert!(ids.insert(&format!("short-{}", id.len())));
        }
        for id in &long {
            assert!(ids.contains(id));
            assert!(!ids.contains(&id[1..]) && !ids.contains(&format!("{id}x")));
        }
        let mut all: Vec<&str> = ids.into_iter().collect();
        all.sort_unstable();
        let mut expected: Vec<String> = long.clone();
        expected.extend(long.iter().map(|id| format!("short-{}", id.len())));
        expected.sort_unstable();
        assert_eq!(all, expected);
    }
}
