//! The payload of a state snapshot: every user and destination record, encoded compactly.
//!
//! The framing (magic, version, checksum, atomic write) is in `crate::snapshot`; this module
//! only turns [`State`] into bytes and back.
//!
//! # Encoding (format versions 1, 2 and 3)
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
//! Version 3 (issue 14, second part; versions 1 and 2 are still read, and saved as version 3)
//! keeps version 2's numbers and cuts what repeats:
//! - a user's history comes before its destinations, devices and resets, and each of their
//!   times that equals the time of one of the user's history entries is written as the
//!   back-reference `(k << 2) | 3` to entry `k - 1` (`k >= 1`; one byte for the first 31
//!   entries; version 2 only ever writes `3` alone there, for an 8-byte time);
//! - in the string table, `1` and 20 bytes define an EVM address that the state keeps as `0x`
//!   and 40 lower-case hex digits (the normalized form); `0` and a string define any other
//!   string; references start at `2`.
//!
//! Payer times stay explicit (as in version 2) although most equal what the payer's history
//! implies: checking that, and reading it back, costs a lookup of a random user record per
//! payer, measured at about 40% more time to save and to load for 13 of 147 bytes per user.
//!
//! Every value reads back bit for bit in every version. The shared store (Redis) keeps each
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
//!            users_hint:varint dests_hint:varint                 (version 3: sizes to reserve)
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
//!
//! version 3:
//! user     = completed:varint
//!            n:varint { ts:time amount_usd:amount dest_index:varint }^n  (history)
//!            n:varint { address:shared first_ts:tref last_ts:tref }^n    (destinations)
//!            n:varint { device_id:str first_ts:tref last_ts:tref }^n     (devices)
//!            n:varint { ts:tref }^n                                      (password resets)
//! shared   = 0:varint str | 1:varint evm:20 bytes | n+2:varint           (entry n)
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

use std::borrow::Cow;
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
    /// Format version 2 or later (compact times and amounts) rather than 1.
    compact: bool,
    /// Format version 3: history before destinations, times that repeat one of the user's
    /// history times as a back-reference, EVM addresses as 20 bytes.
    v3: bool,
    /// The times of the history of the user being written (version 3 back-references).
    history: Vec<i64>,
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

    /// A time of a user record after its history (version 3): `(k << 2) | 3` (`k >= 1`) when it
    /// equals the time of history entry `k - 1` (one byte for the first 31 entries; the tag
    /// 3 with nothing above it is the raw form of [`Encoder::ts`]), else as [`Encoder::ts`].
    fn tref(&mut self, ts: i64) {
        match self.history.iter().position(|&t| t == ts) {
            Some(k) if self.v3 => self.varint(((k as u64 + 1) << 2) | 3),
            _ => self.ts(ts),
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

    /// A shared string: its index when already written, else its definition (`text` is asked
    /// for only then).
    fn shared(&mut self, key: u64, text: impl FnOnce() -> Option<String>) {
        match self.strings.get(&key) {
            Some(&index) => self.varint(index + self.first_ref()),
            None => {
                self.define(&text().unwrap_or_default());
                let index = self.strings.len() as u64;
                self.strings.insert(key, index);
            }
        }
    }

    /// A shared string that is known here (a record's own key).
    fn shared_str(&mut self, key: u64, text: &str) {
        match self.strings.get(&key) {
            Some(&index) => self.varint(index + self.first_ref()),
            None => {
                self.define(text);
                let index = self.strings.len() as u64;
                self.strings.insert(key, index);
            }
        }
    }

    /// The tag of a reference to string table entry 0: `1`, or `2` in version 3 (where `1`
    /// defines an EVM address).
    fn first_ref(&self) -> u64 {
        if self.v3 {
            2
        } else {
            1
        }
    }

    /// A string table definition: `0` and the string, or (version 3) `1` and the 20 bytes of
    /// an EVM address written as `0x` and 40 lower-case hex digits (what the state keeps after
    /// normalization; any other spelling is written as a string, so it reads back as it was).
    fn define(&mut self, text: &str) {
        match evm_bytes(text) {
            Some(raw) if self.v3 => {
                self.varint(1);
                self.buf.extend_from_slice(&raw);
            }
            _ => {
                self.varint(0);
                self.str(text);
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
        if self.v3 {
            return self.user_v3(u, dest_kind, address);
        }
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

    /// [`Encoder::user`] in version 3: the history first, so that later times can refer to it.
    fn user_v3(
        &mut self,
        u: &UserRecord,
        dest_kind: u64,
        mut address: impl FnMut(u32) -> Option<String>,
    ) {
        self.varint(u.completed());
        self.history.clear();
        self.varint(u.history().count() as u64);
        for e in u.history() {
            self.ts(e.ts);
            self.amount(e.amount_usd);
            self.varint(u64::from(e.dest));
            self.history.push(e.ts);
        }
        self.varint(u.destinations().count() as u64);
        for d in u.destinations() {
            self.shared(dest_kind | u64::from(d.dest), || address(d.dest));
            self.tref(d.first_ts);
            self.tref(d.last_ts);
        }
        self.varint(u.devices().count() as u64);
        for d in u.devices() {
            self.str(d.id);
            self.tref(d.first_ts);
            self.tref(d.last_ts);
        }
        self.varint(u.resets().count() as u64);
        for r in u.resets() {
            self.tref(r);
        }
        self.history.clear();
    }

    /// A destination record; `user` gives the id of a payer's user id (called once per user
    /// not yet written).
    fn destination(
        &mut self,
        payers: &[(u32, [i64; DEST_TIMES])],
        mut user: impl FnMut(u32) -> Option<String>,
    ) {
        self.varint(payers.len() as u64);
        for &(uid, times) in payers {
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
        self.encode_version(3, withdrawal_ids, sink)
    }

    /// [`State::encode`] in format version 3, 2 or 1.
    fn encode_version<E>(
        &self,
        version: u32,
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
            compact: version >= 2,
            v3: version >= 3,
            history: Vec::new(),
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
        if enc.v3 {
            // How many records to make room for when loading (a concurrent save may write a
            // few more or fewer).
            enc.varint(self.users.len() as u64);
            enc.varint(self.destinations.len() as u64);
        }

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

        // A destination's key and payers are copied into these under its lock (no allocation
        // per record once they are big enough).
        let (mut key, mut payers) = (String::new(), Vec::new());
        for shard in 0..table::SHARDS {
            for slot in 0..self.destinations.slots(shard) {
                let found = self.destinations.read_slot(shard, slot, |d| {
                    let d = d?;
                    key.clear();
                    key.push_str(d.key());
                    payers.clear();
                    payers.extend(d.payers());
                    Some(())
                });
                if found.is_none() {
                    continue;
                }
                let did = table::id_of(shard, slot);
                enc.varint(1);
                enc.shared_str(DEST | u64::from(did), &key);
                enc.destination(&payers, |uid| {
                    self.users.read_id(uid, |u| u.key().to_owned())
                });
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

/// The 20 bytes of an address written as `0x` and 40 lower-case hex digits.
fn evm_bytes(text: &str) -> Option<[u8; 20]> {
    let digits = text.strip_prefix("0x")?.as_bytes();
    if digits.len() != 40 {
        return None;
    }
    let nibble = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    let mut out = [0_u8; 20];
    for (byte, pair) in out.iter_mut().zip(digits.chunks_exact(2)) {
        let (hi, lo) = match pair {
            &[hi, lo] => (nibble(hi)?, nibble(lo)?),
            _ => return None,
        };
        *byte = hi << 4 | lo;
    }
    Some(out)
}

/// The address [`evm_bytes`] read.
fn evm_text(raw: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut text = String::with_capacity(2 + 2 * raw.len());
    text.push_str("0x");
    for &b in raw {
        for nibble in [b >> 4, b & 15] {
            text.push(char::from(
                HEX.get(usize::from(nibble)).copied().unwrap_or(b'0'),
            ));
        }
    }
    text
}

/// One user's record alone (its own string table), as the shared store keeps it: the same
/// encoding as in a snapshot, so one codec serves both.
#[cfg_attr(not(feature = "redis"), allow(dead_code))] // used by the Redis store
pub(crate) fn encode_user(user: &UserState) -> Vec<u8> {
    let mut encoder = Encoder {
        buf: Vec::with_capacity(64),
        compact: false,
        v3: false,
        history: Vec::new(),
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
        v3: false,
        history: Vec::new(),
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
struct Str<'a> {
    /// Borrowed from the payload, or an EVM address written as 20 bytes.
    text: Cow<'a, str>,
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
    /// Format version 2 or later rather than 1 (see [`Encoder::ts`] and [`Encoder::amount`]).
    compact: bool,
    /// Format version 3 (see [`Encoder::v3`]).
    v3: bool,
    /// The history times of the user being read (version 3 back-references).
    history: Vec<i64>,
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
        // Byte by byte straight from the slice: most numbers are one or two bytes, and this
        // runs several times per record.
        let mut value = 0_u64;
        let mut shift = 0;
        while let Some(&byte) = self.bytes.get(self.pos) {
            self.pos += 1;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
            shift += 7;
            if shift > 63 {
                return self.fail("number longer than 10 bytes");
            }
        }
        self.fail("payload ends inside a number")
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
        self.ts_from(v)
    }

    /// What [`Encoder::tref`] wrote.
    fn tref(&mut self) -> DecodeResult<i64> {
        if !self.v3 {
            return self.ts();
        }
        let v = self.varint()?;
        if v & 3 == 3 && v > 3 {
            let k = (v >> 2) - 1;
            return match usize::try_from(k).ok().and_then(|k| self.history.get(k)) {
                Some(&t) => Ok(t),
                None => self.fail(format!(
                    "time refers to history entry {k} of {}",
                    self.history.len()
                )),
            };
        }
        self.ts_from(v)
    }

    /// A version 2 time whose first varint is `v`.
    fn ts_from(&mut self, v: u64) -> DecodeResult<i64> {
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
        let first_ref = if self.v3 { 2 } else { 1 };
        match self.varint()? {
            0 => {
                let text = Cow::Borrowed(self.str()?);
                self.strings.push(Str {
                    text,
                    user: None,
                    dest: None,
                });
                Ok(self.strings.len() - 1)
            }
            1 if self.v3 => {
                let text = Cow::Owned(evm_text(self.take(20)?));
                self.strings.push(Str {
                    text,
                    user: None,
                    dest: None,
                });
                Ok(self.strings.len() - 1)
            }
            n => match usize::try_from(n - first_ref)
                .ok()
                .filter(|&i| i < self.strings.len())
            {
                Some(i) => Ok(i),
                None => self.fail(format!("reference to string {n} of {}", self.strings.len())),
            },
        }
    }

    /// The text of string table entry `i` (copied only for an EVM address).
    fn text(&self, i: usize) -> Cow<'a, str> {
        self.strings
            .get(i)
            .map_or(Cow::Borrowed(""), |s| s.text.clone())
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
                    .write(&key, || UserRecord::new(&key), |uid, _| uid)
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
                    .write(&key, || DestRecord::new(&key), |did, _| did)
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
        if self.v3 {
            self.history_entries(u)?;
        }
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
                    addresses.push(Arc::from(&*self.text(entry)));
                    token as u32
                }
            };
            let (first_ts, last_ts) = (self.tref()?, self.tref()?);
            u.destinations.push(Known {
                dest,
                first_ts,
                last_ts,
            });
        }
        if !self.v3 {
            self.history_entries(u)?;
        }
        if let Some(e) = u
            .history
            .iter()
            .find(|e| usize::from(e.dest) >= u.destinations.len())
        {
            return self.fail(format!(
                "history entry names destination {} of {}",
                e.dest,
                u.destinations.len()
            ));
        }
        let n = self.count(MAX_DEVICES, "devices")?;
        for _ in 0..n {
            let id = self.str()?;
            let (first_ts, last_ts) = (self.tref()?, self.tref()?);
            u.push_device(id, first_ts, last_ts);
        }
        let n = self.count(MAX_RESETS, "password resets")?;
        for _ in 0..n {
            let r = self.tref()?;
            u.resets.push(r);
        }
        self.history.clear();
        if u.resets.windows(2).any(|w| w.first() > w.get(1)) {
            return self.fail("password resets out of order");
        }
        Ok(addresses)
    }

    /// A user's history entries (their destination indexes are checked by the caller, once
    /// the destinations are read); their times are kept for back-references.
    fn history_entries(&mut self, u: &mut Unpacked) -> DecodeResult<()> {
        self.history.clear();
        let n = self.count(MAX_HISTORY, "history entries")?;
        for _ in 0..n {
            let ts = self.ts()?;
            let amount_usd = self.amount()?;
            let dest = self.varint()?;
            match u8::try_from(dest) {
                Ok(dest) => u.history.push(Entry {
                    ts,
                    amount_usd,
                    dest,
                }),
                Err(_) => return self.fail(format!("history entry names destination {dest}")),
            }
            self.history.push(ts);
        }
        Ok(())
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

/// Decodes and validates a whole payload of format `version` (1 to 3; `base` is its offset in
/// the file, for messages).
pub(crate) fn decode(bytes: &[u8], base: usize, version: u32) -> DecodeResult<Decoded> {
    let users = Table::default();
    let destinations = Table::default();
    let mut d = Decoder {
        bytes,
        pos: 0,
        base,
        compact: version >= 2,
        v3: version >= 3,
        history: Vec::new(),
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
    if d.v3 {
        // Sizes to reserve, bounded by what the payload can hold (a user record takes at least
        // 7 bytes, a destination 3), so that a damaged file cannot ask for a huge allocation.
        let user_hint = usize::try_from(d.varint()?).unwrap_or(usize::MAX);
        let dest_hint = usize::try_from(d.varint()?).unwrap_or(usize::MAX);
        let (user_hint, dest_hint) = (
            user_hint.min(bytes.len() / 7),
            dest_hint.min(bytes.len() / 3),
        );
        users.reserve(user_hint);
        destinations.reserve(dest_hint);
        d.strings.reserve(user_hint.saturating_add(dest_hint));
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
        let user = d.user(&key, &mut scratch);
        d.tables = None;
        user?;
        match users.insert(&key, scratch.pack()) {
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
            *record = DestRecord::with_payers(&key, &payers)
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
                v3: false,
                history: Vec::new(),
                prev_ts: 0,
                strings: HashMap::default(),
            };
            enc.varint(v);
            let mut dec = Decoder {
                bytes: &enc.buf,
                pos: 0,
                base: 0,
                compact: true,
                v3: false,
                history: Vec::new(),
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

    fn encoded(state: &State, version: u32) -> Vec<u8> {
        let mut out = Vec::new();
        let written = state.encode_version(version, None, |chunk| {
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
        assert_every_version_round_trips(&state);
    }

    /// Encodes `state` in versions 1, 2 and 3 (each smaller than the one before) and checks
    /// that each decodes to exactly the same records and counters.
    fn assert_every_version_round_trips(state: &State) {
        let files = [encoded(state, 1), encoded(state, 2), encoded(state, 3)];
        assert!(files[1].len() < files[0].len() && files[2].len() < files[1].len());
        for (bytes, version) in files.iter().zip(1..) {
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
                canonical(&restored) == canonical(state),
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

    /// Version 3's shortcuts and their fallbacks: EVM addresses (sent in upper case, so kept
    /// lower-cased) as 20 bytes next to other strings that only look like them (`0X`, upper-case
    /// user ids, 41 digits); times that repeat a history time and times that do not
    /// (withdrawals out of order or at an equal time, a history trimmed to its cap while the
    /// destination keeps older times, a payer with more than four distinct times).
    #[test]
    fn version_3_round_trips_evm_addresses_out_of_order_events_and_trimmed_histories() {
        use crate::event::{Event, Status, UserProfile, Withdrawal};
        use crate::time::Timestamp;
        let state = State::default();
        let base = 1_790_000_000_000_000_i64;
        let withdrawal = |i: usize, user: &str, destination: String, ts: i64| {
            Event::Withdrawal(Withdrawal {
                id: format!("w{i}"),
                ts: Timestamp::from_micros(ts),
                user_id: user.into(),
                asset: "USDT".into(),
                network: "ETH".into(),
                amount_usd: 10.0 + i as f64,
                destination,
                user: UserProfile {
                    country: "HK".into(),
                    created_at: Timestamp::from_micros(base),
                    locale: "en".into(),
                    referral: String::new(),
                },
                device_id: Some(format!("dev-{user}")),
                status: Status::Completed,
                label: None,
            })
        };
        let evm = |n: usize| format!("0x{:040X}", (n + 1) * 0x1234_5678_9abc);
        let users = [
            "alice".to_string(),
            format!("0x{:040x}", 77),
            format!("0x{:040X}", 78),
            "bob".to_string(),
        ];
        let mut i = 0;
        for (u, user) in users.iter().enumerate() {
            // In order, to shared EVM addresses, a non-EVM one and look-alikes.
            for k in 0..6 {
                let destination = match k % 3 {
                    0 => evm(k % 2),
                    1 => format!("TRon{u}"),
                    _ => format!("0X{:040x}", 5),
                };
                i += 1;
                state.observe(&withdrawal(
                    i,
                    user,
                    destination,
                    base + (i as i64) * 1_000_003,
                ));
            }
            // Out of order: an older withdrawal after newer ones, and one at an equal time.
            i += 1;
            state.observe(&withdrawal(i, user, evm(0), base - 5_000_000));
            i += 1;
            state.observe(&withdrawal(i, user, evm(0), base + 1_000_003));
            state.observe(&Event::Login {
                ts: Timestamp::from_micros(base + 17),
                user_id: user.clone(),
                device_id: format!("dev-{user}"),
            });
        }
        // A user whose history is trimmed to its cap: the destination it paid first keeps
        // times the history no longer holds.
        state.observe(&withdrawal(0, "carol", evm(9), base - 1_000));
        state.observe(&withdrawal(0, "carol", format!("0x{:041x}", 1), base - 999));
        for n in 0..MAX_HISTORY + 3 {
            i += 1;
            state.observe(&withdrawal(
                i,
                "carol",
                "Tcarol".into(),
                base + n as i64 * 60_000_000,
            ));
        }
        state.observe(&withdrawal(i + 1, "carol", evm(9), base + 7));
        assert_every_version_round_trips(&state);

        // The shortcuts were taken: the shared addresses as 20 bytes, not 42 characters.
        let v3 = encoded(&state, 3);
        let lower = evm(0).to_ascii_lowercase();
        assert!(v3.windows(lower.len()).all(|w| w != lower.as_bytes()));
        let raw = evm_bytes(&lower);
        assert!(raw.is_some_and(|raw| v3.windows(20).any(|w| w == raw)));
        assert!(evm_bytes(&evm(0)).is_none(), "upper case is not compacted");
        assert_eq!(raw.map(|raw| evm_text(&raw)), Some(lower));
    }

    #[test]
    fn shared_strings_are_written_once_and_read_once() {
        let mut enc = Encoder {
            buf: Vec::new(),
            compact: true,
            v3: false,
            history: Vec::new(),
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
            v3: false,
            history: Vec::new(),
            prev_ts: 0,
            strings: Vec::new(),
            tables: None,
        };
        let (first, second) = (dec.shared(), dec.shared());
        assert_eq!((first, second), (Ok(0), Ok(0)));
        assert_eq!(dec.text(0), "0xabc");
    }
}
