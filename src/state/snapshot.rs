//! The payload of a state snapshot: every user and destination record, encoded compactly.
//!
//! The framing (magic, version, checksum, atomic write) is in `crate::snapshot`; this module
//! only turns [`State`] into bytes and back.
//!
//! # Encoding (format versions 1 and 2)
//! Integers that count things are LEB128 varints. In version 1, timestamps and amounts are
//! 8-byte little endian (`i64`, `f64`) and every payer has `dest_times` times (`i64::MIN` for
//! an unused slot). Version 2 (written since issue 14; version 1 is still read, and a
//! snapshot loaded from version 1 is saved as version 2) writes the same records with:
//! - `time`: the difference from the previous time written in the payload (the first from 0),
//!   zig-zag encoded, as a varint whose two low bits say the unit (`0` whole seconds, `1`
//!   milliseconds, `2` microseconds), or the varint `3` followed by the 8-byte difference when
//!   it does not fit;
//! - `amount`: a varint of whole cents shifted left once when `cents / 100.0` gives back the
//!   very same `f64` (checked bit for bit when writing), else the varint `1` and the 8 bytes;
//! - a payer's times as a count and that many times (only the used slots).
//!
//! Every value reads back bit for bit in both versions. The shared store (Redis) keeps each
//! user in the version 1 user encoding ([`encode_user`]): one record alone gains little from
//! the deltas, and the stored records stay readable by the builds that share the store.
//! Strings shared between records (user ids, destination addresses) go through a string table
//! built on the fly: `0` followed by the string (varint length + UTF-8) defines the next
//! entry, `n > 0` refers to entry `n - 1`. In memory those strings are interned ids (see
//! `super::table`): each id's string is written once, at its first reference. Ids themselves
//! are not saved; loading interns the strings anew (so a file does not depend on the table's
//! sharding or on the order records were created in).
//!
//! ```text
//! (`time` and `amount` below: `i64`/`f64` in version 1, see above for version 2)
//! payload  = observed:varint newest_ts:i64 dest_times:varint
//!            users  { 1 user_id:shared user }*        0
//!            dests  { 1 address:shared destination }* 0
//!            ids    { 1 withdrawal_id:str }*           0
//! user     = completed:varint
//!            n:varint { address:shared first_ts:time last_ts:time }^n    (destinations)
//!            n:varint { ts:time amount_usd:amount dest_index:varint }^n  (history)
//!            n:varint { device_id:str first_ts:time last_ts:time }^n     (devices)
//!            n:varint { ts:time }^n                                      (password resets)
//! destination = n:varint { user:shared times }^n
//! times    = ts:i64^dest_times (version 1) | k:varint ts:time^k (version 2, k <= dest_times)
//! ```
//!
//! # Consistency while other threads keep scoring
//! Saving walks each table shard by shard and slot by slot, taking the shard's read lock for
//! one record at a time (a user is encoded under it; a destination is copied out first, since
//! its payers' ids are then read from the users table). Each record is therefore
//! self-consistent; a writer running concurrently may land before or after the snapshot,
//! record by record (a withdrawal observed during the save can be in the user's record and not
//! yet in the destination's, or the reverse; a record created in a slot already passed is not
//! in the snapshot). A snapshot taken while nothing is observed is exact.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::destination::DestRecord;
use super::table::{self, Table};
use super::user::{Entry, Known, Unpacked, UserRecord, UserState};
use super::{
    State, DEST_TIMES, MAX_DESTINATIONS, MAX_DEST_USERS, MAX_DEVICES, MAX_HISTORY, MAX_RESETS,
};

/// Encoded bytes are handed to the sink in chunks of about this size.
const CHUNK: usize = 1 << 16;

/// What a save wrote.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Counts {
    pub(crate) users: usize,
    pub(crate) destinations: usize,
    pub(crate) withdrawal_ids: usize,
}

/// Writes primitives and interned strings into a buffer.
struct Encoder {
    buf: Vec<u8>,
    /// Format version 2 (compact times and amounts) rather than 1.
    compact: bool,
    /// The last time written (version 2 writes each time as the difference from it).
    prev_ts: i64,
    /// Shared strings already written (a user id or an address, by [`USER`] or [`DEST`] and
    /// its interned id; a standalone user's addresses by their position), with their index.
    strings: HashMap<u64, u64, BuildHasherDefault<AddressHasher>>,
}

/// String table keys: a user id's, an address's.
const USER: u64 = 1 << 32;
const DEST: u64 = 2 << 32;

/// Hashes string table keys (one `u64`) with a folded multiply: no SipHash needed for
/// keys that are not attacker-chosen.
#[derive(Default)]
struct AddressHasher(u64);

impl Hasher for AddressHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b) ^ self.0.rotate_left(8));
        }
    }

    fn write_u64(&mut self, n: u64) {
        let product = u128::from(n ^ self.0) * 0x9e37_79b9_7f4a_7c15_u128;
        self.0 = (product >> 64) as u64 ^ product as u64;
    }

    fn write_usize(&mut self, n: usize) {
        self.write_u64(n as u64);
    }
}

impl Encoder {
    fn varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.buf.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.buf.push(v as u8);
    }

    fn i64(&mut self, v: i64) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    fn f64(&mut self, v: f64) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    /// A timestamp: version 1 as 8 bytes; version 2 as the difference from the previous one,
    /// zig-zag varint, in whole seconds, milliseconds or microseconds (2-bit tag), or 8 raw
    /// bytes when the difference does not fit.
    fn ts(&mut self, ts: i64) {
        if !self.compact {
            return self.i64(ts);
        }
        let delta = ts.wrapping_sub(self.prev_ts);
        self.prev_ts = ts;
        let (tag, units) = if delta % 1_000_000 == 0 {
            (0, delta / 1_000_000)
        } else if delta % 1_000 == 0 {
            (1, delta / 1_000)
        } else {
            (2, delta)
        };
        if (-(1_i64 << 60)..1 << 60).contains(&units) {
            let zigzag = ((units << 1) ^ (units >> 63)) as u64;
            self.varint(zigzag << 2 | tag);
        } else {
            self.varint(3);
            self.i64(delta);
        }
    }

    /// An amount: version 1 as 8 bytes; version 2 as a varint of whole cents (shifted left
    /// once) when that gives back exactly the same `f64`, else `1` and the 8 bytes.
    fn amount(&mut self, v: f64) {
        if !self.compact {
            return self.f64(v);
        }
        let cents = (v * 100.0).round();
        if (0.0..9.0e15).contains(&cents)
            && ((cents as u64) as f64 / 100.0).to_bits() == v.to_bits()
        {
            self.varint((cents as u64) << 1);
        } else {
            self.varint(1);
            self.f64(v);
        }
    }

    fn str(&mut self, s: &str) {
        self.varint(s.len() as u64);
        self.buf.extend_from_slice(s.as_bytes());
    }

    /// A shared string: its index when already written, else `0` and the string (`text` is
    /// asked for only then).
    fn shared(&mut self, key: u64, text: impl FnOnce() -> Option<String>) {
        match self.strings.get(&key) {
            Some(&index) => self.varint(index + 1),
            None => {
                self.varint(0);
                self.str(&text().unwrap_or_default());
                let index = self.strings.len() as u64;
                self.strings.insert(key, index);
            }
        }
    }

    /// A shared string that is known here (a record's own key).
    fn shared_str(&mut self, key: u64, text: &str) {
        match self.strings.get(&key) {
            Some(&index) => self.varint(index + 1),
            None => {
                self.varint(0);
                self.str(text);
                let index = self.strings.len() as u64;
                self.strings.insert(key, index);
            }
        }
    }

    /// A user record; `address` gives the address of a known destination's `u32` (called once
    /// per address: the string table remembers it).
    fn user(
        &mut self,
        u: &UserRecord,
        dest_kind: u64,
        mut address: impl FnMut(u32) -> Option<String>,
    ) {
        self.varint(u.completed());
        self.varint(u.destinations().count() as u64);
        for d in u.destinations() {
            self.shared(dest_kind | u64::from(d.dest), || address(d.dest));
            self.ts(d.first_ts);
            self.ts(d.last_ts);
        }
        self.varint(u.history().count() as u64);
        for e in u.history() {
            self.ts(e.ts);
            self.amount(e.amount_usd);
            self.varint(u64::from(e.dest));
        }
        self.varint(u.devices().count() as u64);
        for d in u.devices() {
            self.str(d.id);
            self.ts(d.first_ts);
            self.ts(d.last_ts);
        }
        self.varint(u.resets().count() as u64);
        for r in u.resets() {
            self.ts(r);
        }
    }

    /// A destination record; `user` gives the id of a payer's user id (called once per user
    /// not yet written).
    fn destination(&mut self, d: &DestRecord, mut user: impl FnMut(u32) -> Option<String>) {
        self.varint(d.payer_count() as u64);
        for (uid, times) in d.payers() {
            self.shared(USER | u64::from(uid), || user(uid));
            if self.compact {
                // The used times (newest first, unused slots last).
                let used = times.iter().take_while(|&&t| t != i64::MIN).count();
                self.varint(used as u64);
                for &t in times.iter().take(used) {
                    self.ts(t);
                }
            } else {
                for &t in &times {
                    self.i64(t);
                }
            }
        }
    }

    /// Hands the buffer to the sink once it is big enough (never while a record is locked).
    fn drain<E>(
        &mut self,
        sink: &mut impl FnMut(&[u8]) -> Result<(), E>,
        force: bool,
    ) -> Result<(), E> {
        if force || self.buf.len() >= CHUNK {
            sink(&self.buf)?;
            self.buf.clear();
        }
        Ok(())
    }
}

impl State {
    /// Encodes every record (see the module docs for what a concurrent writer may see) and,
    /// when given, the withdrawal ids a stream has seen; bytes go to `sink` in chunks.
    pub(crate) fn encode<E>(
        &self,
        withdrawal_ids: Option<&crate::stream::IdSet>,
        sink: impl FnMut(&[u8]) -> Result<(), E>,
    ) -> Result<Counts, E> {
        self.encode_version(true, withdrawal_ids, sink)
    }

    /// [`State::encode`] in format version 2 (`compact`) or 1.
    fn encode_version<E>(
        &self,
        compact: bool,
        withdrawal_ids: Option<&crate::stream::IdSet>,
        mut sink: impl FnMut(&[u8]) -> Result<(), E>,
    ) -> Result<Counts, E> {
        // Records are named by id below; no sweep may free an id (and a new record reuse it)
        // before the save is over.
        let _no_sweep = self.hold_sweeps();
        // The string table is sized up front (users and destinations are most of its strings),
        // so that it does not rehash while a record is locked.
        let expected_strings = self.users.len() + self.destinations.len() + 1024;
        let mut enc = Encoder {
            buf: Vec::with_capacity(CHUNK + 4096),
            compact,
            prev_ts: 0,
            strings: HashMap::with_capacity_and_hasher(
                expected_strings,
                BuildHasherDefault::default(),
            ),
        };
        let mut counts = Counts::default();
        enc.varint(self.observed.load(Ordering::Relaxed));
        enc.i64(self.newest_ts.load(Ordering::Relaxed));
        enc.varint(DEST_TIMES as u64);

        // One record at a time under its shard's read lock; a user's addresses are read from
        // the destinations meanwhile (the order `State` allows), a destination is copied out
        // before its payers' ids are read from the users. The buffer goes to the sink between
        // records, never under a lock.
        for shard in 0..table::SHARDS {
            for slot in 0..self.users.slots(shard) {
                let written = self.users.read_slot(shard, slot, |user| {
                    let user = user?;
                    enc.varint(1);
                    enc.shared_str(USER | u64::from(table::id_of(shard, slot)), user.key());
                    enc.user(user, DEST, |did| {
                        self.destinations.read_id(did, |d| d.key().to_owned())
                    });
                    Some(())
                });
                counts.users += usize::from(written.is_some());
                enc.drain(&mut sink, false)?;
            }
        }
        enc.varint(0);

        for shard in 0..table::SHARDS {
            for slot in 0..self.destinations.slots(shard) {
                let Some(dest) = self.destinations.read_slot(shard, slot, |d| d.cloned()) else {
                    continue;
                };
                enc.varint(1);
                enc.shared_str(DEST | u64::from(table::id_of(shard, slot)), dest.key());
                enc.destination(&dest, |uid| self.users.read_id(uid, |u| u.key().to_owned()));
                counts.destinations += 1;
                enc.drain(&mut sink, false)?;
            }
        }
        enc.varint(0);

        for id in withdrawal_ids.into_iter().flatten() {
            enc.varint(1);
            enc.str(id);
            counts.withdrawal_ids += 1;
            enc.drain(&mut sink, false)?;
        }
        enc.varint(0);
        enc.drain(&mut sink, true)?;
        Ok(counts)
    }

    /// Replaces all state with a decoded snapshot. Meant for start-up: a thread scoring while
    /// this runs may see the old state, the new one, or some users of each.
    pub(crate) fn restore(&self, decoded: Decoded) {
        self.users.replace_with(decoded.users);
        self.destinations.replace_with(decoded.destinations);
        self.observed.store(decoded.observed, Ordering::Relaxed);
        self.newest_ts.store(decoded.newest_ts, Ordering::Relaxed);
    }
}

/// One user's record alone (its own string table), as the shared store keeps it: the same
/// encoding as in a snapshot, so one codec serves both.
#[cfg_attr(not(feature = "redis"), allow(dead_code))] // used by the Redis store
pub(crate) fn encode_user(user: &UserState) -> Vec<u8> {
    let mut encoder = Encoder {
        buf: Vec::with_capacity(64),
        compact: false,
        prev_ts: 0,
        strings: HashMap::default(),
    };
    encoder.user(&user.record, 0, |token| {
        user.address(token).map(|a| a.to_string())
    });
    encoder.buf
}

/// Decodes what [`encode_user`] wrote; an error names the byte offset.
#[cfg_attr(not(feature = "redis"), allow(dead_code))]
pub(crate) fn decode_user(bytes: &[u8]) -> Result<UserState, String> {
    let mut decoder = Decoder {
        bytes,
        pos: 0,
        base: 0,
        compact: false,
        prev_ts: 0,
        strings: Vec::new(),
        tables: None,
    };
    let mut unpacked = Unpacked::default();
    let addresses = decoder.user("", &mut unpacked)?;
    if decoder.pos != bytes.len() {
        return decoder.fail("bytes left over after the user record");
    }
    Ok(UserState {
        record: unpacked.pack(),
        addresses,
    })
}

/// A fully decoded and validated payload, not yet live: tables built straight from the file
/// (strings interned as they are first met), to be swapped in whole by [`State::restore`].
pub(crate) struct Decoded {
    observed: u64,
    newest_ts: i64,
    users: Table<UserRecord>,
    destinations: Table<DestRecord>,
    counts: Counts,
    pub(crate) withdrawal_ids: Vec<Box<str>>,
}

impl Decoded {
    pub(crate) fn counts(&self) -> Counts {
        Counts {
            withdrawal_ids: self.withdrawal_ids.len(),
            ..self.counts
        }
    }
}

/// A string of the payload's string table, and its ids once interned.
#[derive(Clone, Copy)]
struct Str<'a> {
    text: &'a str,
    user: Option<u32>,
    dest: Option<u32>,
}

/// The tables a payload is decoded into (none for a user alone, as the shared store keeps it).
struct Tables<'t> {
    users: &'t Table<UserRecord>,
    destinations: &'t Table<DestRecord>,
}

/// Reads primitives and interned strings; every error names the byte offset.
struct Decoder<'a, 't> {
    bytes: &'a [u8],
    pos: usize,
    /// Offset of `bytes` in the file, for messages.
    base: usize,
    /// Format version 2 rather than 1 (see [`Encoder::ts`] and [`Encoder::amount`]).
    compact: bool,
    prev_ts: i64,
    strings: Vec<Str<'a>>,
    tables: Option<Tables<'t>>,
}

type DecodeResult<T> = std::result::Result<T, String>;

impl<'a> Decoder<'a, '_> {
    fn fail<T>(&self, what: impl std::fmt::Display) -> DecodeResult<T> {
        Err(format!("at byte {}: {what}", self.base + self.pos))
    }

    fn take(&mut self, n: usize) -> DecodeResult<&'a [u8]> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&end| end <= self.bytes.len());
        let bytes: &'a [u8] = self.bytes;
        match end.and_then(|end| bytes.get(self.pos..end).map(|s| (s, end))) {
            Some((slice, end)) => {
                self.pos = end;
                Ok(slice)
            }
            None => self.fail(format!("payload ends inside a field ({n} bytes expected)")),
        }
    }

    fn varint(&mut self) -> DecodeResult<u64> {
        let mut value = 0_u64;
        for shift in (0..64).step_by(7) {
            let byte = match self.take(1)?.first() {
                Some(&b) => b,
                None => return self.fail("payload ends inside a number"),
            };
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        self.fail("number longer than 10 bytes")
    }

    fn eight(&mut self) -> DecodeResult<[u8; 8]> {
        let slice = self.take(8)?;
        let mut out = [0_u8; 8];
        out.copy_from_slice(slice);
        Ok(out)
    }

    fn i64(&mut self) -> DecodeResult<i64> {
        self.eight().map(i64::from_le_bytes)
    }

    fn f64(&mut self) -> DecodeResult<f64> {
        let v = f64::from_le_bytes(self.eight()?);
        if v.is_finite() {
            Ok(v)
        } else {
            self.fail("amount is not a finite number")
        }
    }

    fn ts(&mut self) -> DecodeResult<i64> {
        if !self.compact {
            return self.i64();
        }
        let v = self.varint()?;
        let units = {
            let n = v >> 2;
            ((n >> 1) as i64) ^ -((n & 1) as i64)
        };
        let delta = match v & 3 {
            0 => units.checked_mul(1_000_000),
            1 => units.checked_mul(1_000),
            2 => Some(units),
            _ => Some(self.i64()?),
        };
        match delta {
            Some(delta) => {
                self.prev_ts = self.prev_ts.wrapping_add(delta);
                Ok(self.prev_ts)
            }
            None => self.fail("time out of range"),
        }
    }

    fn amount(&mut self) -> DecodeResult<f64> {
        if !self.compact {
            return self.f64();
        }
        match self.varint()? {
            1 => self.f64(),
            v if v & 1 == 0 => Ok((v >> 1) as f64 / 100.0),
            v => self.fail(format!("unknown amount tag {v}")),
        }
    }

    /// A count of items that must not exceed `cap`.
    fn count(&mut self, cap: usize, what: &str) -> DecodeResult<usize> {
        let n = self.varint()?;
        match usize::try_from(n) {
            Ok(n) if n <= cap => Ok(n),
            _ => self.fail(format!("{n} {what}; at most {cap} are kept")),
        }
    }

    fn str(&mut self) -> DecodeResult<&'a str> {
        let len = self.varint()?;
        let len = usize::try_from(len).unwrap_or(usize::MAX);
        let start = self.pos;
        let bytes = self.take(len)?;
        match std::str::from_utf8(bytes) {
            Ok(s) => Ok(s),
            Err(_) => Err(format!(
                "at byte {}: string is not valid UTF-8",
                self.base + start
            )),
        }
    }

    /// A shared string: the index of its string table entry (defined here when new).
    fn shared(&mut self) -> DecodeResult<usize> {
        match self.varint()? {
            0 => {
                let text = self.str()?;
                self.strings.push(Str {
                    text,
                    user: None,
                    dest: None,
                });
                Ok(self.strings.len() - 1)
            }
            n => match usize::try_from(n - 1)
                .ok()
                .filter(|&i| i < self.strings.len())
            {
                Some(i) => Ok(i),
                None => self.fail(format!("reference to string {n} of {}", self.strings.len())),
            },
        }
    }

    /// The text of string table entry `i`.
    fn text(&self, i: usize) -> &'a str {
        self.strings.get(i).map_or("", |s| s.text)
    }

    /// The interned id of the user named by entry `i` (a payer).
    fn payer(&mut self, tables: &Tables<'_>, i: usize) -> DecodeResult<u32> {
        let cached = self.strings.get(i).and_then(|s| s.user);
        let uid = match cached {
            Some(uid) => Some(uid),
            None => {
                // A payer whose user has no record (possible in files from before interning)
                // gets an empty one, which changes no feature.
                let key = self.text(i);
                tables
                    .users
                    .write(key, || UserRecord::new(key), |uid, _| uid)
            }
        };
        match (uid, self.strings.get_mut(i)) {
            (Some(uid), Some(entry)) => {
                entry.user = Some(uid);
                Ok(uid)
            }
            _ => self.fail("no id left for another user"),
        }
    }

    /// The interned id of the destination named by entry `i`.
    fn destination_id(&mut self, tables: &Tables<'_>, i: usize) -> DecodeResult<u32> {
        let cached = self.strings.get(i).and_then(|s| s.dest);
        let did = match cached {
            Some(did) => Some(did),
            None => {
                let key = self.text(i);
                tables
                    .destinations
                    .write(key, || DestRecord::new(key), |did, _| did)
            }
        };
        match (did, self.strings.get_mut(i)) {
            (Some(did), Some(entry)) => {
                entry.dest = Some(did);
                Ok(did)
            }
            _ => self.fail("no id left for another destination"),
        }
    }

    /// `true` for another record, `false` at the end of a section.
    fn more(&mut self) -> DecodeResult<bool> {
        match self.varint()? {
            0 => Ok(false),
            1 => Ok(true),
            tag => self.fail(format!("unknown record tag {tag}")),
        }
    }

    /// A user record into `u` (cleared first), known destinations interned when decoding into
    /// tables, else numbered by position with their addresses returned alongside.
    fn user(&mut self, key: &str, u: &mut Unpacked) -> DecodeResult<Vec<Arc<str>>> {
        u.clear();
        u.key.push_str(key);
        u.completed = self.varint()?;
        let n = self.count(MAX_DESTINATIONS, "destinations")?;
        let mut addresses = Vec::new();
        for token in 0..n {
            let entry = self.shared()?;
            let dest = match self.tables.take() {
                Some(tables) => {
                    let did = self.destination_id(&tables, entry);
                    self.tables = Some(tables);
                    did?
                }
                None => {
                    addresses.push(Arc::from(self.text(entry)));
                    token as u32
                }
            };
            let (first_ts, last_ts) = (self.ts()?, self.ts()?);
            u.destinations.push(Known {
                dest,
                first_ts,
                last_ts,
            });
        }
        let n = self.count(MAX_HISTORY, "history entries")?;
        for _ in 0..n {
            let ts = self.ts()?;
            let amount_usd = self.amount()?;
            let dest = self.varint()?;
            match u8::try_from(dest) {
                Ok(dest) if usize::from(dest) < u.destinations.len() => u.history.push(Entry {
                    ts,
                    amount_usd,
                    dest,
                }),
                _ => {
                    return self.fail(format!(
                        "history entry names destination {dest} of {}",
                        u.destinations.len()
                    ))
                }
            }
        }
        let n = self.count(MAX_DEVICES, "devices")?;
        for _ in 0..n {
            let id = self.str()?;
            let (first_ts, last_ts) = (self.ts()?, self.ts()?);
            u.push_device(id, first_ts, last_ts);
        }
        let n = self.count(MAX_RESETS, "password resets")?;
        for _ in 0..n {
            let r = self.ts()?;
            u.resets.push(r);
        }
        if u.resets.windows(2).any(|w| w.first() > w.get(1)) {
            return self.fail("password resets out of order");
        }
        Ok(addresses)
    }

    /// A destination's payers, their users interned.
    fn payers(
        &mut self,
        tables: &Tables<'_>,
        payers: &mut Vec<(u32, [i64; DEST_TIMES])>,
    ) -> DecodeResult<()> {
        payers.clear();
        let n = self.count(MAX_DEST_USERS, "payers")?;
        for _ in 0..n {
            let entry = self.shared()?;
            let uid = self.payer(tables, entry)?;
            let mut times = [i64::MIN; DEST_TIMES];
            let used = if self.compact {
                self.count(DEST_TIMES, "times for one payer")?
            } else {
                DEST_TIMES
            };
            for t in times.iter_mut().take(used) {
                *t = self.ts()?;
            }
            // Newest first, unused slots (`i64::MIN`) last: what the window counts rely on.
            times.sort_unstable_by(|a, b| b.cmp(a));
            payers.push((uid, times));
        }
        Ok(())
    }
}

/// Decodes and validates a whole payload of format `version` (1 or 2; `base` is its offset in
/// the file, for messages).
pub(crate) fn decode(bytes: &[u8], base: usize, version: u32) -> DecodeResult<Decoded> {
    let users = Table::default();
    let destinations = Table::default();
    let mut d = Decoder {
        bytes,
        pos: 0,
        base,
        compact: version >= 2,
        prev_ts: 0,
        strings: Vec::new(),
        tables: None,
    };
    let tables = Tables {
        users: &users,
        destinations: &destinations,
    };
    let observed = d.varint()?;
    let newest_ts = d.i64()?;
    let dest_times = d.varint()?;
    if dest_times != DEST_TIMES as u64 {
        return d.fail(format!(
            "snapshot keeps {dest_times} times per payer; this build keeps {DEST_TIMES}"
        ));
    }
    let mut counts = Counts::default();
    let mut scratch = Unpacked::default();
    while d.more()? {
        let entry = d.shared()?;
        let key = d.text(entry);
        d.tables = Some(Tables {
            users: &users,
            destinations: &destinations,
        });
        let user = d.user(key, &mut scratch);
        d.tables = None;
        user?;
        match users.insert(key, scratch.pack()) {
            Some(uid) => {
                if let Some(s) = d.strings.get_mut(entry) {
                    s.user = Some(uid);
                }
            }
            None => return d.fail(format!("user \"{key}\" appears twice")),
        }
        counts.users += 1;
    }
    let mut seen: HashSet<u32, BuildHasherDefault<AddressHasher>> = HashSet::default();
    let mut payers = Vec::new();
    while d.more()? {
        let entry = d.shared()?;
        let did = d.destination_id(&tables, entry)?;
        if !seen.insert(did) {
            return d.fail(format!("destination \"{}\" appears twice", d.text(entry)));
        }
        d.payers(&tables, &mut payers)?;
        let key = d.text(entry);
        destinations.write_id(did, |record| {
            *record = DestRecord::with_payers(key, &payers)
        });
        counts.destinations += 1;
    }
    let mut withdrawal_ids = Vec::new();
    while d.more()? {
        withdrawal_ids.push(Box::from(d.str()?));
    }
    if d.pos != bytes.len() {
        return d.fail(format!(
            "{} stray bytes after the last record",
            bytes.len() - d.pos
        ));
    }
    // References counted once the tables are whole: increments in two small dense arrays
    // rather than a write into a record per reference.
    let mut dest_refs = destinations.zeroed();
    let mut user_refs = users.zeroed();
    users.for_each(|_, u| {
        for k in u.destinations() {
            table::count_of(&mut dest_refs, k.dest)
                .into_iter()
                .for_each(|n| *n += 1);
        }
    });
    destinations.for_each(|_, dest| {
        for (uid, _) in dest.payers() {
            table::count_of(&mut user_refs, uid)
                .into_iter()
                .for_each(|n| *n += 1);
        }
    });
    users.for_each_mut(|uid, u| u.set_refs(table::count_of(&mut user_refs, uid).map_or(0, |n| *n)));
    destinations.for_each_mut(|did, dest| {
        dest.set_refs(table::count_of(&mut dest_refs, did).map_or(0, |n| *n))
    });
    Ok(Decoded {
        observed,
        newest_ts,
        users,
        destinations,
        counts,
        withdrawal_ids,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_round_trip() {
        for v in [0, 1, 127, 128, 300, u64::from(u32::MAX), u64::MAX] {
            let mut enc = Encoder {
                buf: Vec::new(),
                compact: true,
                prev_ts: 0,
                strings: HashMap::default(),
            };
            enc.varint(v);
            let mut dec = Decoder {
                bytes: &enc.buf,
                pos: 0,
                base: 0,
                compact: true,
                prev_ts: 0,
                strings: Vec::new(),
                tables: None,
            };
            assert_eq!(dec.varint(), Ok(v));
            assert_eq!(dec.pos, enc.buf.len());
        }
    }

    /// Every record as text, sorted (the maps' order is random).
    fn canonical(state: &State) -> Vec<String> {
        let mut records = Vec::new();
        state.for_each_record(|record| {
            records.push(match record {
                super::super::Record::User(key, user) => format!("user {key} {user:?}"),
                super::super::Record::Destination(key, payers) => {
                    format!("destination {key} {payers:?}")
                }
            })
        });
        records.sort();
        records
    }

    fn encoded(state: &State, compact: bool) -> Vec<u8> {
        let mut out = Vec::new();
        let written = state.encode_version(compact, None, |chunk| {
            out.extend_from_slice(chunk);
            Ok::<(), ()>(())
        });
        assert!(written.is_ok());
        out
    }

    /// Times and amounts that the compact encoding writes in each of its forms (whole seconds,
    /// milliseconds, microseconds, raw; cents and raw amounts; far past and future times).
    #[test]
    fn version_1_and_version_2_payloads_decode_to_the_same_state() {
        use crate::event::{Event, Status, UserProfile, Withdrawal};
        use crate::time::Timestamp;
        let state = State::default();
        let base = 1_790_000_000_000_000_i64;
        let times = [
            base,
            base + 1,
            base + 1_000,
            base + 86_400_000_000,
            base - 7_777_777,
            i64::MIN / 2,
            i64::MAX / 2,
            base + 123_456_789_012,
        ];
        let amounts = [
            0.0,
            -0.0,
            0.01,
            12.34,
            0.1 + 0.2,
            1e300,
            5e-324,
            99_999_999.99,
        ];
        for (i, &ts) in times.iter().enumerate() {
            for (j, &amount_usd) in amounts.iter().enumerate() {
                let user_id = format!("u{}", (i + j) % 5);
                state.observe(&Event::Withdrawal(Withdrawal {
                    id: format!("w{i}-{j}"),
                    ts: Timestamp::from_micros(ts + j as i64),
                    user_id: user_id.clone(),
                    asset: "USDT".into(),
                    network: "TRON".into(),
                    amount_usd,
                    destination: format!("T{}", (i * 3 + j) % 7),
                    user: UserProfile {
                        country: "HK".into(),
                        created_at: Timestamp::from_micros(base),
                        locale: "en".into(),
                        referral: String::new(),
                    },
                    device_id: Some(format!("d{j}")),
                    status: Status::Completed,
                    label: None,
                }));
                state.observe(&Event::PasswordReset {
                    ts: Timestamp::from_micros(ts - 5),
                    user_id,
                });
            }
        }
        let v1 = encoded(&state, false);
        let v2 = encoded(&state, true);
        assert!(v2.len() < v1.len());
        for (bytes, version) in [(&v1, 1), (&v2, 2)] {
            let restored = State::default();
            let decoded = decode(bytes, 0, version);
            assert!(
                decoded.is_ok(),
                "version {version}: {:?}",
                decoded.as_ref().err()
            );
            if let Ok(decoded) = decoded {
                restored.restore(decoded);
            }
            // Every record, time and amount came back (`f64`'s `Debug` tells every value
            // apart, `-0.0` included).
            assert!(
                canonical(&restored) == canonical(&state),
                "version {version} decodes to another state"
            );
            assert_eq!(
                restored.observed.load(Ordering::Relaxed),
                state.observed.load(Ordering::Relaxed)
            );
            assert_eq!(
                restored.newest_ts.load(Ordering::Relaxed),
                state.newest_ts.load(Ordering::Relaxed)
            );
        }
    }

    #[test]
    fn shared_strings_are_written_once_and_read_once() {
        let mut enc = Encoder {
            buf: Vec::new(),
            compact: true,
            prev_ts: 0,
            strings: HashMap::default(),
        };
        enc.shared(DEST | 7, || Some("0xabc".into()));
        enc.shared(DEST | 7, || None);
        assert_eq!(enc.buf, [0, 5, b'0', b'x', b'a', b'b', b'c', 1]);
        let mut dec = Decoder {
            bytes: &enc.buf,
            pos: 0,
            base: 0,
            compact: true,
            prev_ts: 0,
            strings: Vec::new(),
            tables: None,
        };
        let (first, second) = (dec.shared(), dec.shared());
        assert_eq!((first, second), (Ok(0), Ok(0)));
        assert_eq!(dec.text(0), "0xabc");
    }
}
