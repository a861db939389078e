//! Streams of events (JSON Lines), as `score`, `check` and `replay` read them: blank lines
//! skipped, each invalid line reported by number without changing state, withdrawal ids unique.

use std::hash::BuildHasher;
use std::io::{BufRead, Write};

use hashbrown::hash_table::{self, Entry, HashTable};

use crate::audit::DecisionLog;
use crate::decision::{Decision, DecisionBuf};
use crate::error::Error;
use crate::event::{Event, Parsed, Withdrawal};
use crate::scorer::Scorer;

/// Withdrawal ids seen, checked for every withdrawal: the ids' bytes in one growing buffer
/// (each after its length, a varint) and a table of their 4-byte offsets into it, so that an
/// id costs no allocation of its own (a million `Box<str>` in a `HashSet` were ~9% of
/// `riskgate score`: an allocation each, and every rehash following every pointer). Growing
/// the table hashes each id again from the buffer: foldhash over a short id is cheaper than
/// the bytes a stored hash costs (24-byte entries of hash, start and length were ~50 MB of a
/// million-id stream's RSS, twice that while the table grew; 4-byte offsets are ~10 MB).
/// Past 4 GiB of ids the offsets become 8 bytes (once, the table rebuilt).
#[derive(Default)]
pub(crate) struct IdSet {
    bytes: Vec<u8>,
    places: Places,
    hasher: foldhash::fast::RandomState,
}

enum Places {
    Narrow(HashTable<u32>),
    Wide(HashTable<u64>),
}

impl Default for Places {
    fn default() -> Places {
        Places::Narrow(HashTable::new())
    }
}

/// The id whose length starts at `start` in `bytes` (empty when out of range, which an
/// insert never makes).
fn id_at(bytes: &[u8], start: u64) -> &[u8] {
    let mut at = usize::try_from(start).unwrap_or(usize::MAX);
    let mut len = 0_usize;
    for shift in (0..usize::BITS).step_by(7) {
        let Some(&byte) = bytes.get(at) else {
            return &[];
        };
        at += 1;
        len |= usize::from(byte & 0x7f) << shift;
        if byte < 0x80 {
            break;
        }
    }
    bytes.get(at..at.saturating_add(len)).unwrap_or_default()
}

/// Adds `id` to `table` unless there; `None` (and no change) when its offset does not fit `P`.
fn insert_place<P: Copy + TryFrom<usize> + Into<u64>>(
    table: &mut HashTable<P>,
    bytes: &mut Vec<u8>,
    hasher: &foldhash::fast::RandomState,
    hash: u64,
    id: &[u8],
) -> Option<bool> {
    let found = |&p: &P| id_at(bytes, p.into()) == id;
    let rehash = |&p: &P| hasher.hash_one(id_at(bytes, p.into()));
    match table.entry(hash, found, rehash) {
        Entry::Occupied(_) => Some(false),
        Entry::Vacant(slot) => {
            let place = P::try_from(bytes.len()).ok()?;
            let mut len = id.len();
            while len >= 0x80 {
                bytes.push((len as u8) | 0x80);
                len >>= 7;
            }
            bytes.push(len as u8);
            bytes.extend_from_slice(id);
            slot.insert(place);
            Some(true)
        }
    }
}

/// The places of `table`, 8 bytes each.
fn widen<P: Copy + Into<u64>>(
    table: &HashTable<P>,
    bytes: &[u8],
    hasher: &foldhash::fast::RandomState,
) -> HashTable<u64> {
    let mut wide = HashTable::with_capacity(table.capacity());
    for &p in table.iter() {
        let p = p.into();
        wide.insert_unique(hasher.hash_one(id_at(bytes, p)), p, |&q| {
            hasher.hash_one(id_at(bytes, q))
        });
    }
    wide
}

impl IdSet {
    /// Whether `id` was added.
    pub(crate) fn contains(&self, id: &str) -> bool {
        let id = id.as_bytes();
        let hash = self.hasher.hash_one(id);
        let bytes = &self.bytes;
        match &self.places {
            Places::Narrow(t) => t.find(hash, |&p| id_at(bytes, p.into()) == id).is_some(),
            Places::Wide(t) => t.find(hash, |&p| id_at(bytes, p) == id).is_some(),
        }
    }

    /// Adds `id`; `false` (and no change) when it was there already.
    pub(crate) fn insert(&mut self, id: &str) -> bool {
        let id = id.as_bytes();
        let hash = self.hasher.hash_one(id);
        let IdSet {
            bytes,
            places,
            hasher,
        } = self;
        if let Places::Narrow(table) = places {
            if let Some(added) = insert_place(table, bytes, hasher, hash, id) {
                return added;
            }
            // 4 GiB of ids: 8-byte offsets from now on.
            *places = Places::Wide(widen(table, bytes, hasher));
        }
        match places {
            Places::Wide(table) => insert_place(table, bytes, hasher, hash, id).unwrap_or(false),
            Places::Narrow(_) => false,
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
    places: PlacesIter<'a>,
}

enum PlacesIter<'a> {
    Narrow(hash_table::Iter<'a, u32>),
    Wide(hash_table::Iter<'a, u64>),
}

impl<'a> Iterator for Ids<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        let place = match &mut self.places {
            PlacesIter::Narrow(i) => u64::from(*i.next()?),
            PlacesIter::Wide(i) => *i.next()?,
        };
        // Every id was a `&str` when added.
        Some(std::str::from_utf8(id_at(self.bytes, place)).unwrap_or_default())
    }
}

impl<'a> IntoIterator for &'a IdSet {
    type Item = &'a str;
    type IntoIter = Ids<'a>;

    fn into_iter(self) -> Ids<'a> {
        Ids {
            bytes: &self.bytes,
            places: match &self.places {
                Places::Narrow(t) => PlacesIter::Narrow(t.iter()),
                Places::Wide(t) => PlacesIter::Wide(t.iter()),
            },
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

/// What [`EventStream::process_into`] made of one line.
#[allow(clippy::large_enum_variant)] // returned once per line, never stored
pub(crate) enum InPlace<'s, T> {
    /// A blank line.
    Blank,
    /// An account event, recorded.
    Observed(Event),
    /// A withdrawal (the stream's own), decided (`T`, what the caller's `score` answered) and
    /// then recorded.
    Scored(&'s Withdrawal, T),
}

/// Feeds lines to a [`Scorer`] in order: score each withdrawal, then observe every event.
pub struct EventStream {
    line: usize,
    withdrawal_ids: IdSet,
    /// The withdrawal [`EventStream::write_decisions`] reads each line into.
    withdrawal: Withdrawal,
    /// The buffers its decisions are written from.
    buf: DecisionBuf,
    /// A decision line, built here and handed to the writer at once (one call instead of
    /// dozens of small writes).
    json: Vec<u8>,
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

    /// Like [`EventStream::process_with`], reading a withdrawal into the stream's own (reused:
    /// no allocation for its strings once they have grown) and deciding it with `score`
    /// (called once, before the withdrawal is observed), typically into a reused
    /// [`DecisionBuf`] with [`Scorer::score_into`]: `riskgate replay`'s loop.
    pub(crate) fn process_into<'s, T>(
        &'s mut self,
        scorer: &Scorer,
        line: Result<&str, String>,
        score: impl FnOnce(&Scorer, &'s Withdrawal) -> T,
    ) -> Result<InPlace<'s, T>, Error> {
        let Some((text, line_no)) = self.next_text(line)? else {
            return Ok(InPlace::Blank);
        };
        let parsed = crate::event::parse_into(text, &mut self.withdrawal)
            .map_err(|message| Error::invalid_event(line_no, message))?;
        if let Parsed::Account(event) = parsed {
            return observe(scorer, event).map(InPlace::Observed);
        }
        let w = &self.withdrawal;
        let decision = decide(&mut self.withdrawal_ids, scorer, w, line_no, score)?;
        Ok(InPlace::Scored(w, decision))
    }

    /// Reads a line: an account event is observed at once (`None`), a withdrawal is parsed
    /// into the stream's own (`Some` with its line number), for the caller to decide.
    fn read_withdrawal(
        &mut self,
        scorer: &Scorer,
        line: Result<&str, String>,
    ) -> Result<Option<usize>, Error> {
        let Some((text, line_no)) = self.next_text(line)? else {
            return Ok(None);
        };
        let parsed = crate::event::parse_into(text, &mut self.withdrawal)
            .map_err(|message| Error::invalid_event(line_no, message))?;
        if let Parsed::Account(event) = parsed {
            return observe(scorer, event).map(|_| None);
        }
        Ok(Some(line_no))
    }

    /// Like [`EventStream::process`], reading a withdrawal into the stream's own (reused: no
    /// allocation for its strings once they have grown); `Some` decision for a withdrawal.
    fn process_in_place(
        &mut self,
        scorer: &Scorer,
        line: Result<&str, String>,
    ) -> Result<Option<Decision>, Error> {
        let Some(line_no) = self.read_withdrawal(scorer, line)? else {
            return Ok(None);
        };
        let w = &self.withdrawal;
        decide(&mut self.withdrawal_ids, scorer, w, line_no, Scorer::score).map(Some)
    }

    /// Like [`EventStream::process_in_place`] with the memory store, writing a withdrawal's
    /// decision line to `out` from a [`crate::decision::DecisionRef`] (no allocation):
    /// `Some` with the write's result for a withdrawal (recorded whether or not the write
    /// succeeded, as [`EventStream::process_in_place`] records it before its caller writes).
    fn write_in_place<W: Write>(
        &mut self,
        scorer: &Scorer,
        line: Result<&str, String>,
        out: &mut W,
    ) -> Result<Option<std::io::Result<()>>, Error> {
        let Some(line_no) = self.read_withdrawal(scorer, line)? else {
            return Ok(None);
        };
        let w = &self.withdrawal;
        // One hash and probe: `insert` leaves the set unchanged for an id already there.
        if !self.withdrawal_ids.insert(&w.id) {
            return Err(duplicate_id(w, line_no));
        }
        let json = &mut self.json;
        json.clear();
        scorer.score_into(w, &mut self.buf).write_json(json);
        json.push(b'\n');
        let written = out.write_all(json);
        scorer.observe_withdrawal(w);
        Ok(Some(written))
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
        // Without a log to append owned decisions to, and with the memory store, each decision
        // is written from a view borrowing reused buffers (the same bytes, no allocation).
        let direct = log.is_none() && scorer.store().is_memory();
        while let Some(line) = lines.next_line() {
            let processed = if direct {
                match self.write_in_place(scorer, line, out) {
                    Ok(Some(written)) => {
                        written.map_err(Stopped::Write)?;
                        Ok(None)
                    }
                    Ok(None) => Ok(None),
                    Err(e) => Err(e),
                }
            } else {
                self.process_in_place(scorer, line)
            };
            match processed {
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
            buf: DecisionBuf::default(),
            json: Vec::new(),
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

/// The error for a withdrawal whose id was seen before.
fn duplicate_id(w: &Withdrawal, line_no: usize) -> Error {
    Error::invalid_event(
        line_no,
        format!(
            "withdrawal id \"{}\" was seen before; ids must be unique",
            w.id
        ),
    )
}

/// Decides a valid withdrawal: refuses an id seen before, scores, then records it.
fn decide<'w, T>(
    ids: &mut IdSet,
    scorer: &Scorer,
    w: &'w Withdrawal,
    line_no: usize,
    score: impl FnOnce(&Scorer, &'w Withdrawal) -> T,
) -> Result<T, Error> {
    let duplicate = || duplicate_id(w, line_no);
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
fn decide_shared<'w, T>(
    ids: &mut IdSet,
    scorer: &Scorer,
    w: &'w Withdrawal,
    line_no: usize,
    score: impl FnOnce(&Scorer, &'w Withdrawal) -> T,
) -> Result<T, Error> {
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
    fn the_id_set_keeps_ids_of_every_length() {
        let mut ids = IdSet::default();
        let lengths = [0, 1, 127, 128, 16_383, 16_384, 70_000, MAX_LINE_BYTES + 1];
        let long: Vec<String> = lengths
            .iter()
            .enumerate()
            .map(|(i, &n)| char::from(b'a' + i as u8).to_string().repeat(n))
            .collect();
        for id in &long {
            assert!(ids.insert(id) && !ids.insert(id), "{}", id.len());
            assert!(ids.insert(&format!("short-{}", id.len())));
        }
        for id in &long {
            assert!(ids.contains(id));
            assert!(!ids.contains(&format!("{id}x")));
        }
        let mut all: Vec<&str> = ids.into_iter().collect();
        all.sort_unstable();
        let mut expected: Vec<String> = long.clone();
        expected.extend(long.iter().map(|id| format!("short-{}", id.len())));
        expected.sort_unstable();
        assert_eq!(all, expected);
    }

    /// Offsets past what a narrow place holds move the ids to wide places, keeping every id
    /// (tested with 1-byte places: 4 GiB of ids is too much for a test).
    #[test]
    fn the_id_set_widens_its_places_when_an_offset_does_not_fit() {
        let mut narrow: HashTable<u8> = HashTable::new();
        let mut bytes = Vec::new();
        let hasher = foldhash::fast::RandomState::default();
        let ids: Vec<String> = (0..80).map(|i| format!("id-{i}")).collect();
        let hash = |id: &String| hasher.hash_one(id.as_bytes());
        let mut added = 0;
        while let Some(id) = ids.get(added) {
            match insert_place(&mut narrow, &mut bytes, &hasher, hash(id), id.as_bytes()) {
                Some(fresh) => {
                    assert!(fresh, "{id} was not there");
                    added += 1;
                }
                None => break,
            }
        }
        // A byte holds offsets up to 255: ids of 5-6 bytes with their length stop at 45.
        assert_eq!(added, 45);
        let mut wide = widen(&narrow, &bytes, &hasher);
        for id in &ids {
            let fresh = insert_place(&mut wide, &mut bytes, &hasher, hash(id), id.as_bytes());
            let before = ids.get(..added).unwrap_or_default();
            assert_eq!(fresh, Some(!before.contains(id)), "{id}");
        }
        assert_eq!(wide.len(), ids.len());
    }
}
