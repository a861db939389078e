//! The payload of a state snapshot: every user and destination record, encoded compactly.
//!
//! The framing (magic, version, checksum, atomic write) is in `crate::snapshot`; this module
//! only turns [`State`] into bytes and back.
//!
//! # Encoding (format versions 1 to 6)
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
//! Version 4 (issue 14, third part; versions 1 to 3 are still read, and saved as version 4)
//! keeps version 3's numbers and times and shrinks the strings and the destinations paid by
//! one user:
//! - every string table definition and every device id is packed by its shape ([`Kind`]):
//!   decimal digits as a varint (exchange user ids), UUIDs as 16 bytes plus their case, hex
//!   digits of one case as bytes (Android ids), a TRON address (base58check of `0x41` and 20
//!   bytes) as its 20 bytes (the checksum is recomputed when reading), any other base58 string
//!   (Bitcoin, Solana addresses) as its decoded bytes when that is shorter, an EVM address as
//!   in version 3; anything else (mixed case, another alphabet, non-ASCII) as it is. Each form
//!   reads back as exactly the string it was made from (the unit tests try the near misses);
//!   an EIP-55 mixed-case address never reaches the state (it is lower-cased by
//!   [`crate::normalize_address`]), so no case mask is needed;
//! - a destination whose only payer is the user being written is written with that user
//!   (its definition is flagged, and the payer's times follow: the byte `5` when they are
//!   what the user's history implies, the newest four distinct times of its entries to that
//!   destination, else a count and the times as back-references), and not again in the
//!   destinations section: a user's own wallet then costs no string reference, no payer
//!   reference and no times of its own. The destination's record is read under its lock while
//!   the user's is held (the order `State` allows), so it is self-consistent as before;
//!   a payer added to it afterwards is not in the snapshot, as for a record already passed;
//! - a few counts share a byte: a record's tag and its key's (the key's tag plus one, `0`
//!   ends the section), a user's completed count and history length (one odd number when
//!   they are equal), its devices and password resets (`devices * 9 + resets`).
//!
//! Version 5 (issue 14, fourth part; versions 1 to 4 are still read, and saved as version 5)
//! keeps version 4's records with three changes:
//! - **segments**: the users are written in [`SEGMENTS`] segments, each the users of a range
//!   of table shards with a string table of its own (starting empty, and times starting from
//!   0), then the destinations in as many segments, whose strings refer to the users'
//!   segments' entries (numbered one after the other) or are written whole; the segments'
//!   byte lengths end the payload. Each segment is encoded, and decoded, on its own thread
//!   (two cores: about half the wall-clock time, for some more CPU time in all); a string
//!   shared by users of two segments (a shared address) is defined once in each;
//! - a history entry's destination index goes inside its amount's number (`amount << bits |
//!   index`, `bits` enough for the user's count of destinations, which now comes before the
//!   history): one byte less per entry;
//! - a user's reference to a destination says, in one bit, whether the user is a payer of it
//!   with the times its history implies (the same rule as for an inline destination); the
//!   destination section then writes that payer as its reference with that bit, no times.
//!   The saving thread checks it with the destination's record under its lock while the
//!   user's is held, and keeps the times it checked: the destination section, which copies
//!   the destination again later, uses the bit only when the payer's times are still those
//!   (a concurrent withdrawal may have changed them), so the file is exact as of each
//!   record's read. Loading computes those times while it has the user's history at hand
//!   (no lookup of a random user record later: what made the version 3 attempt 40% slower).
//!
//! A destination paid by one user only is still written inline (version 4), claimed once
//! through a flag per destination slot, so that two segments cannot both inline it.
//!
//! Version 6 (issue 10, `dest_others_first_days`; versions 1 to 5 are still read, and saved as
//! version 6) is version 5 with every destination record followed by its earliest payments as
//! the record stores them (`Stored` in `super::destination`, lazily): `0` for mode 0 (nothing:
//! one payer at most, whose oldest kept time is the earliest payment), `1` and a `time` for
//! mode 1 (one payer, whose earliest payment left its slots), `2` or `3` for mode 2: the
//! earliest payment's user hash as 8 little-endian bytes, its time and (`3`) the earliest
//! other time, as `time`s. Modes 0 and 1 are refused for a destination of more payers (mode 1
//! also without payers). Inline destinations carry it after their payer times, the
//! destinations' section after the payers. A destination read from an earlier version takes
//! the earliest payments its payers' kept times give (each payer's `dest_times` latest, the
//! users' ids hashed: mode 0 for one payer, 2 for more): a lower bound of how long others have
//! paid it, never older than the truth, so that a restored state after an upgrade may see
//! shared addresses as younger than they are (never older) until it has run for the rules'
//! window.
//!
//! Version 7 (issue 10, `state_days`; versions 1 to 6 are still read, and saved as version 7)
//! is version 6 with the earliest time of any event the state recorded after `newest_ts` in
//! the header (`i64::MAX` when none). A state read from an earlier version takes the earliest
//! time its user records hold (history, known destinations' first payments, devices, password
//! resets): never earlier than the truth, later when older events were forgotten, so that a
//! state restored after an upgrade may count as watched for less time than it was.
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
//!
//! version 4 (times and amounts as in version 3):
//! payload  = observed:varint newest_ts:i64 dest_times:varint
//!            users_hint:varint dests_hint:varint
//!            users  { user_id:shared+1 user }*           0
//!            dests  { address:shared+1 destination }*    0
//!            ids    { 1 withdrawal_id:str }*              0
//! user     = ((completed<<1) | 1):varint                  (as many history entries)
//!              | 0:varint completed:varint n:varint       (n history entries)
//!            { ts:time amount_usd:amount dest_index:varint }^n           (history)
//!            n:varint { address:dest first_ts:tref last_ts:tref }^n      (destinations)
//!            (d*9 + r):varint
//!            { device_id:text first_ts:tref last_ts:tref }^d             (devices)
//!            { ts:tref }^r                                               (password resets)
//! shared   = kind:varint [number:varint] bytes    (kind < 8: defines the next entry)
//!          | n+16:varint                          (entry n)
//! dest     = shared
//!          | kind+8:varint [number:varint] bytes payer   (defined, its only payer this user)
//! payer    = 5:varint                             (the times the history implies)
//!          | k:varint ts:tref^k                   (k <= dest_times)
//! text     = len<<1:varint utf8                   (as it is)
//!          | number<<4 | kind<<1 | 1:varint bytes (packed)
//! (kind and number: see `Kind`; `number` is written only for the kinds that have one)
//!
//! version 5 (strings, times and amounts as in version 4):
//! payload  = observed:varint newest_ts:i64 dest_times:varint
//!            users_hint:varint dests_hint:varint segments:varint
//!            users^segments dests^segments
//!            ids    { 1 withdrawal_id:str }*              0
//!            length:u64^(2*segments)                      (of each users and dests segment)
//! users    = { user_id:shared+1 user }* 0                 (a string table of its own)
//! user     = ((completed<<1) | 1):varint | 0:varint completed:varint n:varint
//!            d:varint                                     (destinations)
//!            { ts:time code:varint [f64] }^n              (code = amount << bits | dest_index)
//!            { address:udest first_ts:tref last_ts:tref }^d
//!            (devices and password resets as in version 4)
//! udest    = kind | 8+kind payer | 16+kind                (defined; 16: implied payer times)
//!          | ((n<<1) | implied)+32                        (entry n)
//! dests    = { key destination }* 0
//! key      = 1+kind [number] bytes | 9+n                  (written whole | entry n of all users' segments)
//! destination = count:varint { payer_user payer_times }^count
//! payer_user = kind [number] bytes                        (a user without a record: times follow)
//!            | ((n<<1) | implied)+8                       (entry n; implied: no times follow)
//! payer_times = k:varint ts:time^k
//!
//! version 6: version 5, with `first` after an inline destination's payer times (`udest` of
//! kind 8+kind) and after each destination's payers in the destinations' segments:
//! first    = 0:varint | 1:varint ts:time | 2:varint user:u64 ts:time
//!          | 3:varint user:u64 ts:time other:time
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
use std::ops::Range;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use super::destination::{DestRecord, Stored};
use super::table::{self, Table};
use super::user::{Entry, Known, Unpacked, UserRecord, UserState};
use super::{
    user_hash, State, DEST_TIMES, MAX_DESTINATIONS, MAX_DEST_USERS, MAX_DEVICES, MAX_HISTORY,
    MAX_RESETS,
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
    /// Format version 4: strings packed by their shape, single-payer destinations inline.
    v4: bool,
    /// Format version 5: segments, a history entry's destination inside its amount's number,
    /// payer times implied by the payer's history flagged in the user record.
    v5: bool,
    /// Format version 6: every destination record followed by its earliest payments.
    v6: bool,
    /// The id of the user being written (version 5).
    uid: u32,
    /// Version 5: the payer entries (`did << 32 | uid`) whose times a user record said are what
    /// its history implies, with those times; the destination section then writes one bit.
    implied: HashMap<u64, Times, BuildHasherDefault<AddressHasher>>,
    /// Destination records written inline in a user record (version 4).
    inlined: usize,
    /// The times of the history of the user being written (version 3 back-references).
    history: Vec<i64>,
    /// The destination index of each of those history entries (version 4 implied times).
    history_dest: Vec<u8>,
    /// The last time written (version 2 writes each time as the difference from it).
    prev_ts: i64,
    /// Shared strings already written (a user id or an address, by [`USER`] or [`DEST`] and
    /// its interned id; a standalone user's addresses by their position), with their index
    /// (and [`INLINE`] when the destination's record was written with it).
    strings: HashMap<u64, u64, BuildHasherDefault<AddressHasher>>,
}

/// A destination's payer times, newest first, unused slots (`i64::MIN`) last.
type Times = [i64; DEST_TIMES];

/// In the encoder's string table: the destination's record was written inline (version 4).
const INLINE: u64 = 1 << 63;

/// In version 4, instead of an inline payer's count of times: its times are the newest
/// [`DEST_TIMES`] distinct times of its history entries to this destination ([`implied_times`]).
const IMPLIED_TIMES: u64 = DEST_TIMES as u64 + 1;

/// The newest [`DEST_TIMES`] distinct times of the history entries (`(time, destination
/// index)`) to destination `position`, newest first, unused slots last: what a destination
/// keeps of a payer whose history is whole.
fn implied_times(history: impl Iterator<Item = (i64, u8)>, position: usize) -> Times {
    let mut times = [i64::MIN; DEST_TIMES];
    for (ts, dest) in history {
        if usize::from(dest) != position || times.contains(&ts) {
            continue;
        }
        // Insert in descending order; the oldest falls off the end.
        if let Some(at) = times.iter().position(|&t| t < ts) {
            times.copy_within(at..DEST_TIMES - 1, at + 1);
            if let Some(slot) = times.get_mut(at) {
                *slot = ts;
            }
        }
    }
    times
}

/// Version 4 writes a user's counts of devices and of password resets as one number:
/// `devices * RESET_COUNTS + resets`.
const RESET_COUNTS: u64 = MAX_RESETS as u64 + 1;

/// Version 4 shared-string tags below this define an entry; from it on they refer to entry
/// `tag - V4_FIRST_REF`.
const V4_FIRST_REF: u64 = 16;

/// Version 5 tags of a user's destination from this one on refer to an entry (see
/// [`Encoder::user_destination`]); below it they define one.
const V5_FIRST_DEST_REF: u64 = 32;

/// Version 5 tags of a string in the destination section from this one on refer to an entry
/// of the users' segments; below it they are a string's packed kind, the string not entered.
const V5_FIRST_SECTION_REF: u64 = 8;

/// What a save reads of a user's destination under its lock.
#[derive(Default)]
struct DestView {
    /// The address (empty when not asked for).
    key: String,
    /// The user's payer times, when the user is its only payer and its record goes inline.
    only: Option<Times>,
    /// The user's payer times, when it is a payer.
    mine: Option<Times>,
    /// The destination's stored earliest payments (written with `only`).
    first: Stored,
}

/// The bits a version 5 history entry takes for its destination's index among `n`.
fn dest_bits(n: usize) -> u32 {
    usize::BITS - n.saturating_sub(1).leading_zeros()
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
    fn new(version: u32, capacity: usize, strings: usize) -> Encoder {
        Encoder {
            buf: Vec::with_capacity(capacity),
            compact: version >= 2,
            v3: version >= 3,
            v4: version >= 4,
            v5: version >= 5,
            v6: version >= 6,
            uid: 0,
            // About one payer entry per user (version 5; `strings` is about two per user).
            implied: HashMap::with_capacity_and_hasher(
                if version >= 5 { strings / 2 } else { 0 },
                BuildHasherDefault::default(),
            ),
            inlined: 0,
            history: Vec::new(),
            history_dest: Vec::new(),
            prev_ts: 0,
            strings: HashMap::with_capacity_and_hasher(strings, BuildHasherDefault::default()),
        }
    }

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

    /// Version 5: an amount as [`Encoder::amount`] writes it and a history entry's destination
    /// index in one number, `amount_code << bits | dest` (the raw amount's 8 bytes after it).
    fn amount_and_dest(&mut self, v: f64, bits: u32, dest: u8) {
        let cents = (v * 100.0).round();
        let exact = (0.0..9.0e15).contains(&cents)
            && ((cents as u64) as f64 / 100.0).to_bits() == v.to_bits()
            && (cents as u64) < 1 << (62 - bits);
        let code = if exact { (cents as u64) << 1 } else { 1 };
        self.varint(code << bits | u64::from(dest));
        if !exact {
            self.f64(v);
        }
    }

    fn str(&mut self, s: &str) {
        self.varint(s.len() as u64);
        self.buf.extend_from_slice(s.as_bytes());
    }

    /// A string outside the string table (a device id): version 4 packs it (the header
    /// `length << 1` and the bytes, as a string's length would be, or `number << 4 | kind << 1
    /// | 1` and the packed bytes; see [`Packed`]), earlier versions write it whole.
    fn text(&mut self, s: &str) {
        if !self.v4 {
            return self.str(s);
        }
        let packed = Packed::of(s);
        match packed.kind {
            Kind::Raw => self.varint((s.len() as u64) << 1),
            kind => self.varint(packed.number << 4 | (kind as u64) << 1 | 1),
        }
        self.buf.extend_from_slice(packed.bytes(s));
    }

    /// A shared string: its index when already written, else its definition (`text` is asked
    /// for only then).
    fn shared(&mut self, key: u64, text: impl FnOnce() -> Option<String>) {
        match self.strings.get(&key) {
            Some(&index) => self.varint((index & !INLINE) + self.first_ref()),
            None => {
                self.define(&text().unwrap_or_default(), false);
                let index = self.strings.len() as u64;
                self.strings.insert(key, index);
            }
        }
    }

    /// The start of a user or destination record: its key (a shared string), after the tag
    /// `1` (versions 1 to 3), or in version 4 as the key's tag plus one (`0` ends a section).
    fn record_key(&mut self, key: u64, text: &str) {
        if !self.v4 {
            self.varint(1);
            return self.shared_str(key, text);
        }
        match self.strings.get(&key) {
            Some(&index) => self.varint((index & !INLINE) + V4_FIRST_REF + 1),
            None => {
                self.define_plus(text, false, 1);
                let index = self.strings.len() as u64;
                self.strings.insert(key, index);
            }
        }
    }

    /// A shared string that is known here (a record's own key).
    fn shared_str(&mut self, key: u64, text: &str) {
        match self.strings.get(&key) {
            Some(&index) => self.varint((index & !INLINE) + self.first_ref()),
            None => {
                self.define(text, false);
                let index = self.strings.len() as u64;
                self.strings.insert(key, index);
            }
        }
    }

    /// A user's destination (version 3 and later): a reference, or the address's definition;
    /// in version 4, when this user is the destination's only payer, its definition is flagged
    /// and followed by the payer's times (the destination's whole record), so that the
    /// destination section need not name the destination and the user again. In version 5 a
    /// reference or definition also says whether this user is a payer of the destination with
    /// the times its history implies (the destination section then writes them as one bit).
    fn user_destination(
        &mut self,
        did: u32,
        position: usize,
        address: &mut impl FnMut(u32, bool) -> Option<DestView>,
    ) {
        let key = DEST | u64::from(did);
        let existing = self.strings.get(&key).copied();
        if let (Some(index), false) = (existing, self.v5) {
            return self.varint((index & !INLINE) + self.first_ref());
        }
        let view = address(did, existing.is_none()).unwrap_or_default();
        let only = view.only.filter(|_| self.v4);
        // Written inline (or already inline in this segment): no payer entry to flag.
        let mut implied = false;
        if let (Some(mine), true, None) = (view.mine, self.v5, only) {
            if existing.is_none_or(|index| index & INLINE == 0)
                && mine == self.implied_here(position)
            {
                implied = true;
                self.implied
                    .insert(u64::from(did) << 32 | u64::from(self.uid), mine);
            }
        }
        if let Some(index) = existing {
            return self.varint(((index & !INLINE) << 1 | u64::from(implied)) + V5_FIRST_DEST_REF);
        }
        self.define_plus(&view.key, only.is_some(), if implied { 16 } else { 0 });
        let mut index = self.strings.len() as u64;
        if let Some(times) = only {
            if times == self.implied_here(position) {
                // What the history says (usually): one byte.
                self.varint(IMPLIED_TIMES);
            } else {
                // Newest first, unused slots last: the used ones, as payer times are written.
                let used = times.iter().take_while(|&&t| t != i64::MIN).count();
                self.varint(used as u64);
                for &t in times.iter().take(used) {
                    self.tref(t);
                }
            }
            if self.v6 {
                self.first(view.first);
            }
            index |= INLINE;
            self.inlined += 1;
        }
        self.strings.insert(key, index);
    }

    /// The times a destination keeps of the user being written, as its history implies them
    /// for its destination at `position`.
    fn implied_here(&self, position: usize) -> Times {
        implied_times(
            self.history
                .iter()
                .copied()
                .zip(self.history_dest.iter().copied()),
            position,
        )
    }

    /// The tag of a reference to string table entry 0: `1`, `2` in version 3 (where `1`
    /// defines an EVM address), [`V4_FIRST_REF`] in version 4.
    fn first_ref(&self) -> u64 {
        if self.v4 {
            V4_FIRST_REF
        } else if self.v3 {
            2
        } else {
            1
        }
    }

    /// A string table definition: `0` and the string, or (version 3) `1` and the 20 bytes of
    /// an EVM address written as `0x` and 40 lower-case hex digits (what the state keeps after
    /// normalization; any other spelling is written as a string, so it reads back as it was).
    /// Version 4: the packed form's kind (plus 8 when the destination's record follows
    /// inline), its number when the kind has one, and its bytes (see [`Packed`]).
    fn define(&mut self, text: &str, inline: bool) {
        self.define_plus(text, inline, 0)
    }

    /// [`Encoder::define`], with `plus` added to the version 4 tag (see [`Encoder::record_key`]).
    fn define_plus(&mut self, text: &str, inline: bool, plus: u64) {
        if self.v4 {
            let packed = Packed::of(text);
            self.varint((packed.kind as u64 | if inline { 8 } else { 0 }) + plus);
            if packed.kind.has_number() {
                self.varint(packed.number);
            }
            return self.buf.extend_from_slice(packed.bytes(text));
        }
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

    /// A user record in versions 1 and 2 (version 3 and later: [`Encoder::user_v3`]);
    /// `address` gives the address of a known destination's `u32` (called once per address:
    /// the string table remembers it).
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

    /// [`Encoder::user`] in version 3 and later: the history first, so that later times can
    /// refer to it; `address` also gives, in version 4, the payer times of a destination whose
    /// only payer is this user.
    fn user_v3(&mut self, u: &UserRecord, mut address: impl FnMut(u32, bool) -> Option<DestView>) {
        let (completed, entries) = (u.completed(), u.history().count() as u64);
        if self.v4 && completed == entries {
            // Version 4: one odd number when every completed withdrawal is in the history.
            self.varint(completed << 1 | 1);
        } else {
            if self.v4 {
                self.varint(0);
            }
            self.varint(completed);
            self.varint(entries);
        }
        self.history.clear();
        self.history_dest.clear();
        let destinations = u.destinations().count();
        let bits = dest_bits(destinations);
        if self.v5 {
            self.varint(destinations as u64);
        }
        for e in u.history() {
            self.ts(e.ts);
            if self.v5 {
                self.amount_and_dest(e.amount_usd, bits, e.dest);
            } else {
                self.amount(e.amount_usd);
                self.varint(u64::from(e.dest));
            }
            self.history.push(e.ts);
            self.history_dest.push(e.dest);
        }
        if !self.v5 {
            self.varint(destinations as u64);
        }
        for (position, d) in u.destinations().enumerate() {
            self.user_destination(d.dest, position, &mut address);
            self.tref(d.first_ts);
            self.tref(d.last_ts);
        }
        let (devices, resets) = (u.devices().count() as u64, u.resets().count() as u64);
        if self.v4 {
            // Version 4: both counts in one number (usually one byte).
            self.varint(devices * RESET_COUNTS + resets);
        } else {
            self.varint(devices);
        }
        for d in u.devices() {
            self.text(d.id);
            self.tref(d.first_ts);
            self.tref(d.last_ts);
        }
        if !self.v4 {
            self.varint(resets);
        }
        for r in u.resets() {
            self.tref(r);
        }
        self.history.clear();
    }

    /// A destination record; `user` gives the id of a payer's user id (called once per user
    /// not yet written).
    #[cfg_attr(not(test), allow(dead_code))] // versions 1 to 4 are written by tests only
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

    /// A destination's stored earliest payments (version 6, as the record stores them, see
    /// `Stored` in `super::destination`): `0` for mode 0, `1` and the time for mode 1, `2` or
    /// `3` for mode 2: the first user's hash as 8 bytes, the time and (`3`) the other time.
    fn first(&mut self, first: Stored) {
        match first {
            Stored::Time(t) if t != i64::MIN => {
                self.varint(1);
                self.ts(t);
            }
            Stored::Full(f) if f.time != i64::MIN => {
                let other = f.other != i64::MIN;
                self.varint(if other { 3 } else { 2 });
                self.buf.extend_from_slice(&f.user.to_le_bytes());
                self.ts(f.time);
                if other {
                    self.ts(f.other);
                }
            }
            // Mode 0, or none stored in mode 1 or 2 (which no record holds).
            _ => self.varint(0),
        }
    }

    /// Hands the buffer to the sink once it is big enough (never while a record is locked).
    /// [`Encoder::drain`] when the segment is written straight to a sink (the first one);
    /// the others stay in memory until every segment is done.
    fn drain_to<E>(&mut self, sink: &mut Sink<'_, E>) -> Result<(), E> {
        match sink.as_mut() {
            Some(sink) => self.drain(sink, false),
            None => Ok(()),
        }
    }

    /// Ends a segment's section (a zero count) and writes out what is left for a sink.
    fn end_segment<E>(&mut self, sink: &mut Sink<'_, E>) -> Result<(), E> {
        self.varint(0);
        match sink.as_mut() {
            Some(sink) => self.drain(sink, true),
            None => Ok(()),
        }
    }

    /// The section of a stream's withdrawal ids (each behind a 1, then a 0); how many.
    fn withdrawal_ids<E>(
        &mut self,
        ids: Option<&crate::stream::IdSet>,
        sink: &mut impl FnMut(&[u8]) -> Result<(), E>,
    ) -> Result<usize, E> {
        let mut written = 0;
        for id in ids.into_iter().flatten() {
            self.varint(1);
            self.str(id);
            written += 1;
            self.drain(sink, false)?;
        }
        self.varint(0);
        Ok(written)
    }

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
        self.encode_v5(7, withdrawal_ids, sink)
    }

    /// Copies the destination in `slot` of `shard` (its key and payers) into the reused
    /// buffers under its lock, so that encoding it holds no lock; false for an empty slot.
    fn copy_destination(
        &self,
        shard: usize,
        slot: usize,
        key: &mut String,
        payers: &mut Vec<(u32, Times)>,
        first: &mut Stored,
    ) -> bool {
        self.destinations.read_slot(shard, slot, |d| {
            let Some(d) = d else {
                return false;
            };
            key.clear();
            key.push_str(d.key());
            payers.clear();
            payers.extend(d.payers());
            *first = d.stored();
            true
        })
    }

    /// [`State::encode`] in format version 5: the users, then the destinations, in
    /// [`SEGMENTS`] segments of table shards, each encoded on its own thread (the first one
    /// straight to `sink`, the others into memory, then written in order). Version 6 (what
    /// [`State::encode`] writes) adds each destination's earliest payments; version 5 is
    /// written by tests only.
    fn encode_v5<E>(
        &self,
        version: u32,
        withdrawal_ids: Option<&crate::stream::IdSet>,
        mut sink: impl FnMut(&[u8]) -> Result<(), E>,
    ) -> Result<Counts, E> {
        // Records are named by id below; no sweep may free an id (and a new record reuse it)
        // before the save is over.
        let _no_sweep = self.hold_sweeps();
        let claims = Claims::new(&self.destinations);
        let mut header = Encoder::new(version, 64, 0);
        header.varint(self.observed.load(Ordering::Relaxed));
        header.i64(self.newest_ts.load(Ordering::Relaxed));
        if version >= 7 {
            // `state_days`: the earliest event recorded (`i64::MAX`: none).
            header.i64(self.earliest().unwrap_or(i64::MAX));
        }
        header.varint(DEST_TIMES as u64);
        header.varint(self.users.len() as u64);
        header.varint(self.destinations.len() as u64);
        header.varint(SEGMENTS as u64);
        sink(&header.buf)?;
        // Each segment's string table is sized up front, so that it does not rehash while a
        // record is locked.
        let strings = (self.users.len() + self.destinations.len()) / SEGMENTS + 1024;
        let mut counts = Counts::default();
        let mut lengths = Vec::with_capacity(2 * SEGMENTS);

        let claims = &claims;
        let (first, others) = first_here_others_spawned(
            SEGMENTS,
            || {
                let mut enc = Encoder::new(version, CHUNK + 4096, strings);
                let mut streamed = 0;
                let done = self.encode_users(
                    &mut enc,
                    segment(0),
                    claims,
                    &mut counts,
                    Some(&mut |chunk: &[u8]| {
                        streamed += chunk.len();
                        sink(chunk)
                    }),
                );
                done.map(|()| (enc, streamed))
            },
            |i| {
                let mut enc = Encoder::new(version, 1 << 20, strings);
                let mut counts = Counts::default();
                let done = self.encode_users::<std::convert::Infallible>(
                    &mut enc,
                    segment(i),
                    claims,
                    &mut counts,
                    None,
                );
                // Nothing to fail without a sink.
                let Ok(()) = done;
                (enc, counts)
            },
        );
        let (first, streamed) = first?;
        let mut users = vec![first];
        lengths.push(streamed);
        for (enc, more) in others {
            sink(&enc.buf)?;
            lengths.push(enc.buf.len());
            counts.users += more.users;
            users.push(enc);
        }
        for enc in &users {
            counts.destinations += enc.inlined;
        }

        // The destinations, each segment referring to the users' segments' strings.
        let offsets: Vec<u64> = users
            .iter()
            .scan(0, |at, enc| {
                let offset = *at;
                *at += enc.strings.len() as u64;
                Some(offset)
            })
            .collect();
        let view = Segments {
            users: &users,
            offsets: &offsets,
        };
        let view = &view;
        let (first, others) = first_here_others_spawned(
            SEGMENTS,
            || {
                let mut enc = Encoder::new(version, CHUNK + 4096, 0);
                let mut streamed = 0;
                let done = self.encode_destinations(
                    &mut enc,
                    segment(0),
                    claims,
                    view,
                    &mut counts,
                    Some(&mut |chunk: &[u8]| {
                        streamed += chunk.len();
                        sink(chunk)
                    }),
                );
                done.map(|()| streamed)
            },
            |i| {
                let mut enc = Encoder::new(version, 1 << 20, 0);
                let mut counts = Counts::default();
                let done = self.encode_destinations::<std::convert::Infallible>(
                    &mut enc,
                    segment(i),
                    claims,
                    view,
                    &mut counts,
                    None,
                );
                // Nothing to fail without a sink.
                let Ok(()) = done;
                (enc, counts)
            },
        );
        lengths.push(first?);
        for (enc, more) in others {
            sink(&enc.buf)?;
            lengths.push(enc.buf.len());
            counts.destinations += more.destinations;
        }

        let mut enc = Encoder::new(version, CHUNK + 4096, 0);
        counts.withdrawal_ids += enc.withdrawal_ids(withdrawal_ids, &mut sink)?;
        for length in lengths {
            enc.buf.extend_from_slice(&(length as u64).to_le_bytes());
        }
        enc.drain(&mut sink, true)?;
        Ok(counts)
    }

    /// The users of `shards` (version 5), into `enc`, handed to `sink` between records when
    /// there is one.
    fn encode_users<E>(
        &self,
        enc: &mut Encoder,
        shards: Range<usize>,
        claims: &Claims,
        counts: &mut Counts,
        mut sink: Sink<'_, E>,
    ) -> Result<(), E> {
        for shard in shards {
            for slot in 0..self.users.slots(shard) {
                let uid = table::id_of(shard, slot);
                // One record at a time under its shard's read lock; its destinations are read
                // meanwhile (the order `State` allows).
                let written = self.users.read_slot(shard, slot, |user| {
                    let user = user?;
                    enc.record_key(USER | u64::from(uid), user.key());
                    enc.uid = uid;
                    enc.user_v3(user, |did, definition| {
                        self.destinations.read_id(did, |d| {
                            let (payers, mine) = d.times_of(uid);
                            // Only this user pays it: its record goes inline, once.
                            let only =
                                mine.filter(|_| definition && payers == 1 && claims.claim(did));
                            DestView {
                                key: if definition {
                                    d.key().to_owned()
                                } else {
                                    String::new()
                                },
                                only,
                                mine,
                                first: d.stored(),
                            }
                        })
                    });
                    Some(())
                });
                counts.users += usize::from(written.is_some());
                enc.drain_to(&mut sink)?;
            }
        }
        enc.end_segment(&mut sink)
    }

    /// The destinations of `shards` (version 5) not written inline, into `enc` (see
    /// [`State::encode_users`] for `sink`): a destination is copied out under its lock, then
    /// its payers' ids are looked up in the users' segments.
    fn encode_destinations<E>(
        &self,
        enc: &mut Encoder,
        shards: Range<usize>,
        claims: &Claims,
        users: &Segments<'_>,
        counts: &mut Counts,
        mut sink: Sink<'_, E>,
    ) -> Result<(), E> {
        let (mut key, mut payers, mut first) = (String::new(), Vec::new(), Stored::Derived);
        for shard in shards {
            for slot in 0..self.destinations.slots(shard) {
                let did = table::id_of(shard, slot);
                if claims.claimed(did) {
                    // Written with its only payer.
                    continue;
                }
                if !self.copy_destination(shard, slot, &mut key, &mut payers, &mut first) {
                    continue;
                }
                match users.index(DEST | u64::from(did)) {
                    Some((index, _)) => enc.varint(index + V5_FIRST_SECTION_REF + 1),
                    None => enc.define_plus(&key, false, 1),
                }
                enc.varint(payers.len() as u64);
                for &(uid, times) in &payers {
                    match users.index(USER | u64::from(uid)) {
                        Some((index, segment)) => {
                            let implied = segment
                                .implied
                                .get(&(u64::from(did) << 32 | u64::from(uid)))
                                == Some(&times);
                            enc.varint((index << 1 | u64::from(implied)) + V5_FIRST_SECTION_REF);
                            if implied {
                                continue;
                            }
                        }
                        None => {
                            // A payer without a user record of its own in the snapshot.
                            let text = self.users.read_id(uid, |u| u.key().to_owned());
                            enc.define_plus(&text.unwrap_or_default(), false, 0);
                        }
                    }
                    let used = times.iter().take_while(|&&t| t != i64::MIN).count();
                    enc.varint(used as u64);
                    for &t in times.iter().take(used) {
                        enc.ts(t);
                    }
                }
                if enc.v6 {
                    enc.first(first);
                }
                counts.destinations += 1;
                enc.drain_to(&mut sink)?;
            }
        }
        enc.end_segment(&mut sink)
    }

    /// [`State::encode`] in format version 4, 3, 2 or 1.
    #[cfg_attr(not(test), allow(dead_code))] // versions 1 to 4 are written by tests only
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
        let mut enc = Encoder::new(version, CHUNK + 4096, expected_strings);
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
                let uid = table::id_of(shard, slot);
                let written = self.users.read_slot(shard, slot, |user| {
                    let user = user?;
                    enc.record_key(USER | u64::from(uid), user.key());
                    if enc.v3 {
                        let v4 = enc.v4;
                        enc.user_v3(user, |did, _| {
                            self.destinations.read_id(did, |d| {
                                // Only this user pays it: its record goes inline (version 4).
                                let mut payers = d.payers();
                                let only = match (payers.next(), payers.next()) {
                                    (Some((payer, times)), None) if v4 && payer == uid => {
                                        Some(times)
                                    }
                                    _ => None,
                                };
                                DestView {
                                    key: d.key().to_owned(),
                                    only,
                                    mine: None,
                                    first: d.stored(),
                                }
                            })
                        });
                    } else {
                        enc.user(user, DEST, |did| {
                            self.destinations.read_id(did, |d| d.key().to_owned())
                        });
                    }
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
                let did = table::id_of(shard, slot);
                let inline = enc.strings.get(&(DEST | u64::from(did)));
                if inline.is_some_and(|&index| index & INLINE != 0) {
                    // Written with its only payer (version 4).
                    continue;
                }
                if !self.copy_destination(
                    shard,
                    slot,
                    &mut key,
                    &mut payers,
                    &mut Stored::default(),
                ) {
                    continue;
                }
                enc.record_key(DEST | u64::from(did), &key);
                enc.destination(&payers, |uid| {
                    self.users.read_id(uid, |u| u.key().to_owned())
                });
                counts.destinations += 1;
                enc.drain(&mut sink, false)?;
            }
        }
        enc.varint(0);

        counts.withdrawal_ids += enc.withdrawal_ids(withdrawal_ids, &mut sink)?;
        enc.drain(&mut sink, true)?;
        counts.destinations += enc.inlined;
        Ok(counts)
    }

    /// Replaces all state with a decoded snapshot. Meant for start-up: a thread scoring while
    /// this runs may see the old state, the new one, or some users of each.
    pub(crate) fn restore(&self, decoded: Decoded) {
        self.users.replace_with(decoded.users);
        self.destinations.replace_with(decoded.destinations);
        self.observed.store(decoded.observed, Ordering::Relaxed);
        self.newest_ts.store(decoded.newest_ts, Ordering::Relaxed);
        let earliest = decoded
            .earliest
            .unwrap_or_else(|| self.earliest_in_records());
        self.set_earliest(earliest);
        self.user_floor.forget();
        self.dest_floor.forget();
    }
}

/// Version 5 writes the users, and then the destinations, in this many segments (each a range
/// of table shards), encoded and decoded on as many threads.
const SEGMENTS: usize = 2;

/// Where a segment's bytes go as they are made (`None`: kept in the encoder's buffer).
type Sink<'s, E> = Option<&'s mut dyn FnMut(&[u8]) -> Result<(), E>>;

/// The table shards of segment `i` of [`SEGMENTS`].
fn segment(i: usize) -> Range<usize> {
    i * table::SHARDS / SEGMENTS..(i + 1) * table::SHARDS / SEGMENTS
}

/// A thread's result; a panic on it goes on on this thread.
fn joined<T>(handle: std::thread::ScopedJoinHandle<'_, T>) -> T {
    match handle.join() {
        Ok(value) => value,
        Err(panic) => std::panic::resume_unwind(panic),
    }
}

/// Runs `first` on this thread while `other(1)` to `other(n - 1)` run on threads of their own;
/// the others' results in order. How a save or a load spreads its segments over the cores.
fn first_here_others_spawned<A, B: Send>(
    n: usize,
    first: impl FnOnce() -> A,
    other: impl Fn(usize) -> B + Sync,
) -> (A, Vec<B>) {
    std::thread::scope(|scope| {
        let other = &other;
        let others: Vec<_> = (1..n).map(|i| scope.spawn(move || other(i))).collect();
        let first = first();
        (first, others.into_iter().map(joined).collect())
    })
}

/// Decodes each of a load's segments (the first on this thread, the others on threads of their
/// own), in order, stopping at the first failure.
fn decode_segments<T: Send>(
    ranges: &[Range<usize>],
    decode: impl Fn(&Range<usize>) -> DecodeResult<T> + Sync,
) -> DecodeResult<Vec<T>> {
    let (first, others) = first_here_others_spawned(
        ranges.len(),
        || ranges.first().map(&decode),
        |i| ranges.get(i).map(&decode),
    );
    first
        .into_iter()
        .chain(others.into_iter().flatten())
        .collect()
}

/// One flag per destination slot at the start of a save (version 5): set when the
/// destination's record was written inline with its only payer, so that exactly one
/// segment does it and the destination section leaves it out. A destination created later
/// has no flag and is never inline.
struct Claims(Vec<Vec<AtomicBool>>);

impl Claims {
    fn new(destinations: &Table<DestRecord>) -> Claims {
        Claims(
            (0..table::SHARDS)
                .map(|shard| {
                    (0..destinations.slots(shard))
                        .map(|_| AtomicBool::new(false))
                        .collect()
                })
                .collect(),
        )
    }

    fn flag(&self, did: u32) -> Option<&AtomicBool> {
        let (shard, slot) = table::split_id(did);
        self.0.get(shard)?.get(slot)
    }

    /// Claims `did` for an inline record: `true` the first time only.
    fn claim(&self, did: u32) -> bool {
        self.flag(did)
            .is_some_and(|flag| !flag.swap(true, Ordering::Relaxed))
    }

    fn claimed(&self, did: u32) -> bool {
        self.flag(did)
            .is_some_and(|flag| flag.load(Ordering::Relaxed))
    }
}

/// The users' segments of a version 5 save, for the destination section's references.
struct Segments<'e> {
    users: &'e [Encoder],
    /// The index of each segment's first string in the strings of all segments.
    offsets: &'e [u64],
}

impl Segments<'_> {
    /// The index among all segments' strings of the string of `key`, and its segment.
    fn index(&self, key: u64) -> Option<(u64, &Encoder)> {
        self.users
            .iter()
            .zip(self.offsets)
            .find_map(|(enc, &offset)| {
                enc.strings
                    .get(&key)
                    .map(|&index| (offset + (index & !INLINE), enc))
            })
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

/// The shape of a string in format version 4: each kind is written so that it reads back as
/// exactly the same string (any other string is [`Kind::Raw`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// The UTF-8 bytes; the number is their length.
    Raw = 0,
    /// `0x` and 40 lower-case hex digits: 20 bytes.
    Evm = 1,
    /// ASCII digits: the number is the count of leading zeros (all but the last digit when
    /// every digit is a zero) shifted left by 3, plus the byte count of the value of the rest
    /// (at most 19 digits) less one; then those bytes, little endian.
    Decimal = 2,
    /// A UUID (8-4-4-4-12 hex digits and hyphens) with lower-case letters: 16 bytes.
    UuidLower = 3,
    /// The same with upper-case letters.
    UuidUpper = 4,
    /// An even number of hex digits, all letters of one case: the number is the byte count
    /// shifted left once, plus 1 for upper case; then the bytes.
    Hex = 5,
    /// A TRON address: base58check of `0x41` and 20 bytes (the checksum, SHA-256 twice, is
    /// recomputed when reading): the 20 bytes.
    Tron = 6,
    /// Any other base58 string (Bitcoin alphabet) of at most 64 characters: the number is the
    /// decoded byte count (a leading `1` is a zero byte), then the bytes.
    Base58 = 7,
}

impl Kind {
    fn of_tag(tag: u64) -> Kind {
        match tag & 7 {
            0 => Kind::Raw,
            1 => Kind::Evm,
            2 => Kind::Decimal,
            3 => Kind::UuidLower,
            4 => Kind::UuidUpper,
            5 => Kind::Hex,
            6 => Kind::Tron,
            _ => Kind::Base58,
        }
    }

    /// Whether a number follows the kind (see each kind).
    fn has_number(self) -> bool {
        matches!(self, Kind::Raw | Kind::Decimal | Kind::Hex | Kind::Base58)
    }
}

/// The longest packed form of a string other than [`Kind::Raw`], in bytes (and the longest
/// base58 string tried, in characters).
const PACKED_MAX: usize = 64;

/// A string's packed form (version 4).
struct Packed {
    kind: Kind,
    /// See [`Kind`]; 0 for the kinds without a number.
    number: u64,
    /// The bytes after the number (a [`Kind::Raw`] string's are its own).
    data: [u8; PACKED_MAX],
    len: usize,
}

impl Packed {
    /// The smallest exact form of `text`: a fixed-size kind when `text` has its shape; a
    /// decimal, hex or base58 form when it is smaller than the text; else the text.
    fn of(text: &str) -> Packed {
        let b = text.as_bytes();
        let mut p = Packed {
            kind: Kind::Raw,
            number: b.len() as u64,
            data: [0; PACKED_MAX],
            len: 0,
        };
        // What the header and bytes take, raw and packed (as [`Encoder::text`] writes them).
        let raw_cost = varint_len(p.number << 1) + b.len();
        let fits = |p: &Packed| varint_len(p.number << 4) + p.len < raw_cost;
        if let Some(raw) = evm_bytes(text) {
            p.set(Kind::Evm, 0, &raw);
        } else if let Some((raw, upper)) = uuid_bytes(b) {
            let kind = if upper {
                Kind::UuidUpper
            } else {
                Kind::UuidLower
            };
            p.set(kind, 0, &raw);
        } else if !b.is_empty() && b.iter().all(u8::is_ascii_digit) {
            let zeros = b
                .iter()
                .take_while(|&&c| c == b'0')
                .count()
                .min(b.len() - 1);
            let value = text
                .get(zeros..)
                .filter(|digits| digits.len() <= 19)
                .and_then(|digits| digits.parse::<u64>().ok());
            if let Some(value) = value {
                // The value's significant bytes, little endian (a 9-digit id takes 4).
                let len = (8 - value.leading_zeros() as usize / 8).max(1);
                p.set(
                    Kind::Decimal,
                    0,
                    value.to_le_bytes().get(..len).unwrap_or_default(),
                );
                p.number = (zeros as u64) << 3 | (len as u64 - 1);
                if !fits(&p) {
                    p.kind = Kind::Raw;
                }
            }
        } else if let Some((len, upper)) = hex_bytes(b, &mut p.data) {
            p.kind = Kind::Hex;
            p.number = (len as u64) << 1 | u64::from(upper);
            p.len = len;
            if !fits(&p) {
                p.kind = Kind::Raw;
            }
        } else if b.len() <= PACKED_MAX {
            if let Ok(len) = bs58::decode(b).onto(p.data.as_mut_slice()) {
                p.len = len;
                p.number = len as u64;
                p.kind = Kind::Base58;
                if let Some(raw) = tron_bytes(b, p.data.get(..len).unwrap_or_default()) {
                    p.set(Kind::Tron, 0, &raw);
                } else if !fits(&p) {
                    p.kind = Kind::Raw;
                }
            }
        }
        if p.kind == Kind::Raw {
            p.number = b.len() as u64;
            p.len = 0;
        }
        p
    }

    fn set(&mut self, kind: Kind, number: u64, data: &[u8]) {
        self.kind = kind;
        self.number = number;
        self.len = data.len().min(PACKED_MAX);
        for (to, from) in self.data.iter_mut().zip(data) {
            *to = *from;
        }
    }

    /// The bytes written after the number.
    fn bytes<'s>(&'s self, text: &'s str) -> &'s [u8] {
        match self.kind {
            Kind::Raw => text.as_bytes(),
            _ => self.data.get(..self.len).unwrap_or_default(),
        }
    }
}

/// The length of `v` as a varint.
fn varint_len(v: u64) -> usize {
    (64 - (v | 1).leading_zeros() as usize).div_ceil(7)
}

fn nibble(c: u8) -> Option<(u8, bool, bool)> {
    match c {
        b'0'..=b'9' => Some((c - b'0', false, false)),
        b'a'..=b'f' => Some((c - b'a' + 10, true, false)),
        b'A'..=b'F' => Some((c - b'A' + 10, false, true)),
        _ => None,
    }
}

/// The 16 bytes of a UUID written with hyphens (8-4-4-4-12), and whether its letters are
/// upper case; `None` for any other string, mixed case included.
fn uuid_bytes(b: &[u8]) -> Option<([u8; 16], bool)> {
    if b.len() != 36 {
        return None;
    }
    let (mut out, mut nibbles, mut lower, mut upper) = ([0_u8; 16], 0_usize, false, false);
    for (i, &c) in b.iter().enumerate() {
        if matches!(i, 8 | 13 | 18 | 23) {
            if c != b'-' {
                return None;
            }
            continue;
        }
        let (v, l, u) = nibble(c)?;
        lower |= l;
        upper |= u;
        let byte = out.get_mut(nibbles / 2)?;
        *byte = *byte << 4 | v;
        nibbles += 1;
    }
    (!(lower && upper)).then_some((out, upper))
}

/// The bytes of an even number (2 to 128) of hex digits whose letters are all of one case,
/// into `out`: their count and whether the letters are upper case.
fn hex_bytes(b: &[u8], out: &mut [u8; PACKED_MAX]) -> Option<(usize, bool)> {
    if b.len() < 2 || b.len() % 2 != 0 || b.len() > 2 * PACKED_MAX {
        return None;
    }
    let (mut lower, mut upper) = (false, false);
    for (byte, pair) in out.iter_mut().zip(b.chunks_exact(2)) {
        let (hi, lo) = match pair {
            &[hi, lo] => (nibble(hi)?, nibble(lo)?),
            _ => return None,
        };
        lower |= hi.1 | lo.1;
        upper |= hi.2 | lo.2;
        *byte = hi.0 << 4 | lo.0;
    }
    (!(lower && upper)).then_some((b.len() / 2, upper))
}

/// The 20 bytes of a TRON address (`text`, decoded from base58 into `raw`): `0x41`, the
/// 20 bytes and the first 4 bytes of their double SHA-256, 34 characters.
fn tron_bytes(text: &[u8], raw: &[u8]) -> Option<[u8; 20]> {
    if text.len() != 34 || raw.len() != 25 || raw.first() != Some(&0x41) {
        return None;
    }
    let (body, check) = raw.split_at(21);
    if tron_check(body) != check {
        return None;
    }
    let mut out = [0_u8; 20];
    out.copy_from_slice(body.get(1..)?);
    Some(out)
}

fn tron_check(body: &[u8]) -> [u8; 4] {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(Sha256::digest(body));
    let mut check = [0_u8; 4];
    check.copy_from_slice(digest.get(..4).unwrap_or(&[0; 4]));
    check
}

/// `bytes` as hex digits into `text`.
fn push_hex(text: &mut String, bytes: &[u8], upper: bool) {
    let digits: &[u8; 16] = if upper {
        b"0123456789ABCDEF"
    } else {
        b"0123456789abcdef"
    };
    for &b in bytes {
        for nibble in [b >> 4, b & 15] {
            text.push(char::from(
                digits.get(usize::from(nibble)).copied().unwrap_or(b'0'),
            ));
        }
    }
}

/// The string a packed form of a fixed or counted size was made from (`data` is its bytes
/// after the number; [`Kind::Raw`] and [`Kind::Decimal`] are read by the decoder itself).
fn unpacked_text(kind: Kind, number: u64, data: &[u8]) -> Option<String> {
    let mut text = String::with_capacity(48);
    match kind {
        Kind::Raw | Kind::Decimal => return None,
        Kind::Evm => {
            text.push_str("0x");
            push_hex(&mut text, data, false);
        }
        Kind::UuidLower | Kind::UuidUpper => {
            for (i, part) in [0..4, 4..6, 6..8, 8..10, 10..16].into_iter().enumerate() {
                if i > 0 {
                    text.push('-');
                }
                push_hex(&mut text, data.get(part)?, kind == Kind::UuidUpper);
            }
        }
        Kind::Hex => push_hex(&mut text, data, number & 1 == 1),
        Kind::Tron => {
            let mut raw = [0x41_u8; 25];
            raw.get_mut(1..21)?.copy_from_slice(data);
            let check = tron_check(raw.get(..21)?);
            raw.get_mut(21..)?.copy_from_slice(&check);
            push_base58(&mut text, &raw);
        }
        Kind::Base58 => push_base58(&mut text, data),
    }
    Some(text)
}

/// `bytes` (at most [`PACKED_MAX`]) in base58, Bitcoin alphabet, appended to `text`: what
/// `bs58::encode` gives (a test checks it), in limbs of five base58 digits fed three bytes at
/// a time; the crate goes digit by digit and byte by byte, which took about 0.85 µs per TRON
/// address, a fifth of the time budget of a load per address.
fn push_base58(text: &mut String, bytes: &[u8]) {
    const ALPHABET: &[u8; 58] = b"123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";
    /// 58^5, just under 2^30: a limb shifted left by 24 bits fits a `u64`.
    const LIMB: u64 = 656_356_768;
    let zeros = bytes.iter().take_while(|&&b| b == 0).count();
    text.extend(std::iter::repeat_n('1', zeros));
    // The rest as a number, in little-endian limbs (64 bytes need 18).
    let mut limbs = [0_u32; 20];
    let mut used = 0;
    for chunk in bytes.get(zeros..).unwrap_or_default().chunks(3) {
        let mut carry = chunk.iter().fold(0_u64, |n, &b| n << 8 | u64::from(b));
        let shift = 8 * chunk.len();
        for limb in limbs.iter_mut().take(used) {
            let n = u64::from(*limb) << shift | carry;
            *limb = (n % LIMB) as u32;
            carry = n / LIMB;
        }
        while carry > 0 {
            if let Some(limb) = limbs.get_mut(used) {
                *limb = (carry % LIMB) as u32;
                used += 1;
            }
            carry /= LIMB;
        }
    }
    let digit = |d: u32| char::from(ALPHABET.get(d as usize).copied().unwrap_or(b'1'));
    for (i, &limb) in limbs.iter().take(used).enumerate().rev() {
        let mut digits = [0_u32; 5];
        let mut n = limb;
        for d in digits.iter_mut().rev() {
            *d = n % 58;
            n /= 58;
        }
        // The top limb without its leading zero digits.
        let skip = if i + 1 == used {
            digits.iter().take_while(|&&d| d == 0).count()
        } else {
            0
        };
        text.extend(digits.iter().skip(skip).map(|&d| digit(d)));
    }
}

/// One user's record alone (its own string table), as the shared store keeps it: the same
/// encoding as in a snapshot, so one codec serves both.
#[cfg_attr(not(feature = "redis"), allow(dead_code))] // used by the Redis store
pub(crate) fn encode_user(user: &UserState) -> Vec<u8> {
    let mut encoder = Encoder::new(1, 64, 0);
    encoder.user(&user.record, 0, |token| {
        user.address(token).map(|a| a.to_string())
    });
    encoder.buf
}

/// Decodes what [`encode_user`] wrote; an error names the byte offset.
#[cfg_attr(not(feature = "redis"), allow(dead_code))]
pub(crate) fn decode_user(bytes: &[u8]) -> Result<UserState, String> {
    let mut decoder = Decoder::new(bytes, 0, 1);
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
    /// The earliest event recorded (`state_days`), from version 7 on; `None` before (then
    /// taken from the records, see [`State::restore`]).
    earliest: Option<Option<i64>>,
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
    /// Format version 4 (see [`Encoder::v4`]).
    v4: bool,
    /// Format version 5 (see [`Encoder::v5`]).
    v5: bool,
    /// Format version 6 (see [`Encoder::v6`]).
    v6: bool,
    /// Version 5: the destinations of the user being read of which it is a payer with the
    /// times its history implies, with those times.
    implied: Vec<(u32, Times)>,
    /// The history times of the user being read (version 3 back-references).
    history: Vec<i64>,
    prev_ts: i64,
    strings: Vec<Str<'a>>,
    tables: Option<Tables<'t>>,
    /// Destination records read inline with the user being read (version 4): the string
    /// table entry of the address, the destination's id and the user's times as its payer.
    /// Version 6: and the destination's earliest payments (earlier versions: derived from
    /// the payers).
    inline: Vec<(usize, u32, Times, Option<Stored>)>,
}

type DecodeResult<T> = std::result::Result<T, String>;

impl<'a> Decoder<'a, '_> {
    fn new(bytes: &'a [u8], base: usize, version: u32) -> Self {
        Decoder {
            bytes,
            pos: 0,
            base,
            compact: version >= 2,
            v3: version >= 3,
            v4: version >= 4,
            v5: version >= 5,
            v6: version >= 6,
            implied: Vec::new(),
            history: Vec::new(),
            prev_ts: 0,
            strings: Vec::new(),
            tables: None,
            inline: Vec::new(),
        }
    }

    /// The last section: a stream's withdrawal ids (each behind a 1, then a 0), which must end
    /// exactly where the decoder's bytes do.
    fn withdrawal_ids_to_end(&mut self) -> DecodeResult<Vec<Box<str>>> {
        let mut ids = Vec::new();
        while self.more()? {
            ids.push(Box::from(self.str()?));
        }
        if self.pos != self.bytes.len() {
            return self.fail(format!(
                "{} stray bytes after the last record",
                self.bytes.len() - self.pos
            ));
        }
        Ok(ids)
    }

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

    /// A string outside the string table: what [`Encoder::text`] wrote.
    fn text_field(&mut self) -> DecodeResult<Cow<'a, str>> {
        if !self.v4 {
            return self.str().map(Cow::Borrowed);
        }
        let header = self.varint()?;
        if header & 1 == 0 {
            return self.packed(Kind::Raw, header >> 1);
        }
        let kind = Kind::of_tag(header >> 1);
        if kind == Kind::Raw || (!kind.has_number() && header >> 4 != 0) {
            return self.fail(format!("unknown string form {header}"));
        }
        self.packed(kind, header >> 4)
    }

    /// A packed string of `kind` whose number is `number` (see [`Kind`]).
    fn packed(&mut self, kind: Kind, number: u64) -> DecodeResult<Cow<'a, str>> {
        let start = self.pos;
        let len = match kind {
            Kind::Raw => {
                let len = usize::try_from(number).unwrap_or(usize::MAX);
                let bytes = self.take(len)?;
                return match std::str::from_utf8(bytes) {
                    Ok(s) => Ok(Cow::Borrowed(s)),
                    Err(_) => Err(format!(
                        "at byte {}: string is not valid UTF-8",
                        self.base + start
                    )),
                };
            }
            Kind::Decimal => {
                let zeros = match usize::try_from(number >> 3) {
                    Ok(zeros) if zeros <= PACKED_MAX => zeros,
                    _ => return self.fail(format!("{} leading zeros", number >> 3)),
                };
                let mut value = [0_u8; 8];
                let bytes = self.take((number & 7) as usize + 1)?;
                for (to, from) in value.iter_mut().zip(bytes) {
                    *to = *from;
                }
                let value = u64::from_le_bytes(value);
                let mut text = String::with_capacity(zeros + 20);
                text.extend(std::iter::repeat_n('0', zeros));
                text.push_str(&value.to_string());
                return Ok(Cow::Owned(text));
            }
            Kind::Evm | Kind::Tron => 20,
            Kind::UuidLower | Kind::UuidUpper => 16,
            Kind::Hex => (number >> 1) as usize,
            Kind::Base58 => usize::try_from(number).unwrap_or(usize::MAX),
        };
        if len > PACKED_MAX {
            return self.fail(format!("packed string of {len} bytes"));
        }
        let data = self.take(len)?;
        match unpacked_text(kind, number, data) {
            Some(text) => Ok(Cow::Owned(text)),
            None => self.fail(format!("packed string of kind {kind:?} does not decode")),
        }
    }

    /// A shared string: the index of its string table entry (defined here when new).
    fn shared(&mut self) -> DecodeResult<usize> {
        match self.shared_entry()? {
            (_, true) => self.fail("a destination record inline outside a user's destinations"),
            (entry, false) => Ok(entry),
        }
    }

    /// A shared string (see [`Decoder::shared`]), and whether (version 4) the destination's
    /// record follows inline.
    fn shared_entry(&mut self) -> DecodeResult<(usize, bool)> {
        if !self.v4 {
            return self.shared_v3().map(|entry| (entry, false));
        }
        let tag = self.varint()?;
        self.shared_tagged(tag)
    }

    /// A user's destination in version 5 (what [`Encoder::user_destination`] wrote): the
    /// string table entry, whether the destination's record follows inline, and whether the
    /// user is its payer with the times its history implies.
    fn user_dest_entry(&mut self) -> DecodeResult<(usize, bool, bool)> {
        let tag = self.varint()?;
        if tag < V5_FIRST_DEST_REF {
            let (inline, implied) = (tag & 8 != 0, tag & 16 != 0);
            if inline && implied {
                return self.fail(format!("unknown destination tag {tag}"));
            }
            let (entry, _) = self.shared_tagged(tag & 7)?;
            return Ok((entry, inline, implied));
        }
        let r = tag - V5_FIRST_DEST_REF;
        let (entry, _) = self.shared_tagged((r >> 1) + V4_FIRST_REF)?;
        Ok((entry, false, r & 1 == 1))
    }

    /// The key of the next user or destination record, `None` at the end of the section
    /// (what [`Encoder::record_key`] wrote).
    fn record_key(&mut self) -> DecodeResult<Option<usize>> {
        if !self.v4 {
            return if self.more()? {
                self.shared().map(Some)
            } else {
                Ok(None)
            };
        }
        match self.varint()? {
            0 => Ok(None),
            tag => match self.shared_tagged(tag - 1)? {
                (_, true) => self.fail("a destination record inline outside a user's destinations"),
                (entry, false) => Ok(Some(entry)),
            },
        }
    }

    /// A version 4 shared string whose tag is `tag`.
    fn shared_tagged(&mut self, tag: u64) -> DecodeResult<(usize, bool)> {
        if tag < V4_FIRST_REF {
            let kind = Kind::of_tag(tag);
            let number = if kind.has_number() { self.varint()? } else { 0 };
            let text = self.packed(kind, number)?;
            self.strings.push(Str {
                text,
                user: None,
                dest: None,
            });
            return Ok((self.strings.len() - 1, tag & 8 != 0));
        }
        match usize::try_from(tag - V4_FIRST_REF)
            .ok()
            .filter(|&i| i < self.strings.len())
        {
            Some(i) => Ok((i, false)),
            None => self.fail(format!(
                "reference to string {tag} of {}",
                self.strings.len()
            )),
        }
    }

    /// A shared string in versions 1 to 3.
    fn shared_v3(&mut self) -> DecodeResult<usize> {
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
        if self.v4 {
            let c = self.varint()?;
            let n = if c & 1 == 1 {
                // Every completed withdrawal is in the history.
                u.completed = c >> 1;
                match usize::try_from(u.completed) {
                    Ok(n) if n <= MAX_HISTORY => n,
                    _ => return self.fail(format!("{} history entries", u.completed)),
                }
            } else if c == 0 {
                u.completed = self.varint()?;
                self.count(MAX_HISTORY, "history entries")?
            } else {
                return self.fail(format!("unknown user record tag {c}"));
            };
            if self.v5 {
                let destinations = self.count(MAX_DESTINATIONS, "destinations")?;
                self.history_entries(u, n, Some(dest_bits(destinations)))?;
                return self.user_destinations(u, destinations);
            }
            self.history_entries(u, n, None)?;
        } else {
            u.completed = self.varint()?;
            if self.v3 {
                let n = self.count(MAX_HISTORY, "history entries")?;
                self.history_entries(u, n, None)?;
            }
        }
        let n = self.count(MAX_DESTINATIONS, "destinations")?;
        self.user_destinations(u, n)
    }

    /// The rest of a user record from its `n` destinations on.
    fn user_destinations(&mut self, u: &mut Unpacked, n: usize) -> DecodeResult<Vec<Arc<str>>> {
        let mut addresses = Vec::new();
        self.implied.clear();
        self.inline.clear();
        for token in 0..n {
            let (entry, inline, implied) = if self.v5 {
                self.user_dest_entry()?
            } else {
                let (entry, inline) = self.shared_entry()?;
                (entry, inline, false)
            };
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
            if inline {
                // This destination's record: the user, its only payer, and these times.
                let used = self.varint()?;
                let times = if used == IMPLIED_TIMES {
                    let history = u.history.iter().map(|e| (e.ts, e.dest));
                    implied_times(history, token)
                } else {
                    let used = match usize::try_from(used) {
                        Ok(used) if used <= DEST_TIMES => used,
                        _ => return self.fail(format!("{used} times for one payer")),
                    };
                    let mut times = [i64::MIN; DEST_TIMES];
                    for t in times.iter_mut().take(used) {
                        *t = self.tref()?;
                    }
                    times.sort_unstable_by(|a, b| b.cmp(a));
                    times
                };
                let first = if self.v6 { Some(self.first()?) } else { None };
                self.inline.push((entry, dest, times, first));
            }
            if implied {
                let history = u.history.iter().map(|e| (e.ts, e.dest));
                self.implied.push((dest, implied_times(history, token)));
            }
            let (first_ts, last_ts) = (self.tref()?, self.tref()?);
            u.destinations.push(Known {
                dest,
                first_ts,
                last_ts,
            });
        }
        if !self.v3 {
            let n = self.count(MAX_HISTORY, "history entries")?;
            self.history_entries(u, n, None)?;
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
        let (devices, mut resets) = if self.v4 {
            let both = self.varint()?;
            match usize::try_from(both / RESET_COUNTS) {
                Ok(devices) if devices <= MAX_DEVICES => (devices, (both % RESET_COUNTS) as usize),
                _ => return self.fail(format!("{} devices", both / RESET_COUNTS)),
            }
        } else {
            (self.count(MAX_DEVICES, "devices")?, 0)
        };
        for _ in 0..devices {
            let id = self.text_field()?;
            let (first_ts, last_ts) = (self.tref()?, self.tref()?);
            u.push_device(&id, first_ts, last_ts);
        }
        if !self.v4 {
            resets = self.count(MAX_RESETS, "password resets")?;
        }
        for _ in 0..resets {
            let r = self.tref()?;
            u.resets.push(r);
        }
        self.history.clear();
        if u.resets.windows(2).any(|w| w.first() > w.get(1)) {
            return self.fail("password resets out of order");
        }
        Ok(addresses)
    }

    /// A destination's stored earliest payments (version 6, see [`Encoder::first`]).
    fn first(&mut self) -> DecodeResult<Stored> {
        let tag = self.varint()?;
        match tag {
            0 => return Ok(Stored::Derived),
            1 => {
                let time = self.ts()?;
                if time == i64::MIN {
                    return self.fail("earliest payment of no time");
                }
                return Ok(Stored::Time(time));
            }
            2 | 3 => {}
            _ => return self.fail(format!("earliest payments tagged {tag}")),
        }
        let user = u64::from_le_bytes(self.eight()?);
        let time = self.ts()?;
        let other = if tag == 3 { self.ts()? } else { i64::MIN };
        if time == i64::MIN || (other != i64::MIN && other < time) {
            return self.fail("earliest payments out of order");
        }
        Ok(Stored::Full(super::First { user, time, other }))
    }

    /// A user's history entries (their destination indexes are checked by the caller, once
    /// the destinations are read); their times are kept for back-references. Version 5
    /// (`bits`): the destination index in the amount's number.
    fn history_entries(
        &mut self,
        u: &mut Unpacked,
        n: usize,
        bits: Option<u32>,
    ) -> DecodeResult<()> {
        self.history.clear();
        for _ in 0..n {
            let ts = self.ts()?;
            let (amount_usd, dest) = match bits {
                Some(bits) => {
                    let code = self.varint()?;
                    let dest = code & ((1 << bits) - 1);
                    let amount = match code >> bits {
                        1 => self.f64()?,
                        a if a & 1 == 0 => (a >> 1) as f64 / 100.0,
                        a => return self.fail(format!("unknown amount tag {a}")),
                    };
                    (amount, dest)
                }
                None => (self.amount()?, self.varint()?),
            };
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
    if version >= 5 {
        return decode_v5(bytes, base, version);
    }
    let users = Table::default();
    let destinations = Table::default();
    let mut d = Decoder::new(bytes, base, version);
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
    // Destinations whose record was read (inline with a user, or in their own section).
    let mut seen: HashSet<u32, BuildHasherDefault<AddressHasher>> = HashSet::default();
    let mut inline = Vec::new();
    while let Some(entry) = d.record_key()? {
        let key = d.text(entry);
        d.tables = Some(Tables {
            users: &users,
            destinations: &destinations,
        });
        let user = d.user(&key, &mut scratch);
        d.tables = None;
        user?;
        let uid = match users.insert(&key, scratch.pack()) {
            Some(uid) => {
                if let Some(s) = d.strings.get_mut(entry) {
                    s.user = Some(uid);
                }
                uid
            }
            None => return d.fail(format!("user \"{key}\" appears twice")),
        };
        counts.users += 1;
        // The records of the destinations only this user pays (version 4), now that its id
        // is known.
        std::mem::swap(&mut inline, &mut d.inline);
        for (entry, did, times, first) in inline.drain(..) {
            if !seen.insert(did) {
                return d.fail(format!("destination \"{}\" appears twice", d.text(entry)));
            }
            let address = d.text(entry);
            let payers = [(uid, times)];
            // Versions 1 to 5: the payer's oldest kept time stands in (mode 0).
            let first = first.unwrap_or_default();
            let Some(made) = DestRecord::with_payers(&address, first, &payers) else {
                return d.fail(format!(
                    "destination \"{address}\": earliest payments {first:?}"
                ));
            };
            destinations.write_id(did, |record| *record = made);
            counts.destinations += 1;
        }
    }
    let mut payers = Vec::new();
    while let Some(entry) = d.record_key()? {
        let did = d.destination_id(&tables, entry)?;
        if !seen.insert(did) {
            return d.fail(format!("destination \"{}\" appears twice", d.text(entry)));
        }
        d.payers(&tables, &mut payers)?;
        let key = d.text(entry);
        // Versions 1 to 4 kept no earliest payments: the oldest times of the payers stand in.
        let first = Stored::of_payers(&payers, |uid| {
            users.read_id(uid, |u| user_hash(u.key())).unwrap_or(0)
        });
        let Some(made) = DestRecord::with_payers(&key, first, &payers) else {
            return d.fail(format!(
                "destination \"{key}\": earliest payments {first:?}"
            ));
        };
        destinations.write_id(did, |record| *record = made);
        counts.destinations += 1;
    }
    let withdrawal_ids = d.withdrawal_ids_to_end()?;
    count_refs(&users, &destinations);
    Ok(Decoded {
        observed,
        newest_ts,
        earliest: None,
        users,
        destinations,
        counts,
        withdrawal_ids,
    })
}

/// Sets every record's count of references, once the tables are whole: increments in two
/// small dense arrays rather than a write into a record per reference.
fn count_refs(users: &Table<UserRecord>, destinations: &Table<DestRecord>) {
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
}

/// What a users' segment of a version 5 payload held, its records already in the tables.
struct UsersSegment<'a> {
    /// Its string table, each entry's ids set once interned.
    strings: Vec<Str<'a>>,
    /// `did << 32 | uid` of the payer entries whose times the user record says its history
    /// implies, with those times.
    implied: HashMap<u64, Times, BuildHasherDefault<AddressHasher>>,
    /// The destinations whose record was read inline.
    seen: Vec<u32>,
    counts: Counts,
}

/// Decodes a users' segment of a version 5 payload (`base` is its offset in the file) into
/// `tables`, next to other threads doing the same with other segments.
fn decode_users_segment<'a>(
    bytes: &'a [u8],
    base: usize,
    version: u32,
    tables: &Tables<'_>,
    strings: usize,
) -> DecodeResult<UsersSegment<'a>> {
    let mut d = Decoder::new(bytes, base, version);
    d.strings.reserve(strings);
    let mut out = UsersSegment {
        strings: Vec::new(),
        implied: HashMap::with_capacity_and_hasher(strings / 2, BuildHasherDefault::default()),
        seen: Vec::new(),
        counts: Counts::default(),
    };
    let mut scratch = Unpacked::default();
    let mut inline = Vec::new();
    while let Some(entry) = d.record_key()? {
        let key = d.text(entry);
        d.tables = Some(Tables {
            users: tables.users,
            destinations: tables.destinations,
        });
        let user = d.user(&key, &mut scratch);
        d.tables = None;
        user?;
        let uid = match tables.users.insert(&key, scratch.pack()) {
            Some(uid) => {
                if let Some(s) = d.strings.get_mut(entry) {
                    s.user = Some(uid);
                }
                uid
            }
            None => return d.fail(format!("user \"{key}\" appears twice")),
        };
        out.counts.users += 1;
        // The records of the destinations only this user pays, now that its id is known.
        std::mem::swap(&mut inline, &mut d.inline);
        for (entry, did, times, first) in inline.drain(..) {
            let address = d.text(entry);
            let payers = [(uid, times)];
            // Version 5: the payer's oldest kept time stands in (mode 0).
            let first = first.unwrap_or_default();
            let Some(made) = DestRecord::with_payers(&address, first, &payers) else {
                return d.fail(format!(
                    "destination \"{address}\": earliest payments {first:?}"
                ));
            };
            tables.destinations.write_id(did, |record| *record = made);
            out.seen.push(did);
            out.counts.destinations += 1;
        }
        for (did, times) in d.implied.drain(..) {
            out.implied
                .insert(u64::from(did) << 32 | u64::from(uid), times);
        }
    }
    if d.pos != bytes.len() {
        return d.fail(format!(
            "{} stray bytes after the users of a segment",
            bytes.len() - d.pos
        ));
    }
    out.strings = d.strings;
    Ok(out)
}

/// Decodes a destinations' segment of a version 5 payload into `tables`: the destinations
/// whose record it holds.
fn decode_destinations_segment(
    bytes: &[u8],
    base: usize,
    version: u32,
    tables: &Tables<'_>,
    users: &[UsersSegment<'_>],
) -> DecodeResult<Vec<u32>> {
    let mut d = Decoder::new(bytes, base, version);
    // An entry of the users' segments' strings, and its segment.
    let lookup = |mut i: u64| {
        users.iter().find_map(|segment| {
            let len = segment.strings.len() as u64;
            if i < len {
                Some((segment.strings.get(i as usize)?, segment))
            } else {
                i -= len;
                None
            }
        })
    };
    let mut seen = Vec::new();
    let mut payers = Vec::new();
    loop {
        let tag = d.varint()?;
        if tag == 0 {
            break;
        }
        let key = if tag > V5_FIRST_SECTION_REF {
            match lookup(tag - 1 - V5_FIRST_SECTION_REF) {
                Some((s, _)) => s.text.clone(),
                None => return d.fail(format!("reference to string {tag}")),
            }
        } else {
            let kind = Kind::of_tag(tag - 1);
            let number = if kind.has_number() { d.varint()? } else { 0 };
            d.packed(kind, number)?
        };
        let did = tables
            .destinations
            .write(&key, || DestRecord::new(&key), |did, _| did);
        let Some(did) = did else {
            return d.fail("no id left for another destination");
        };
        let n = d.count(MAX_DEST_USERS, "payers")?;
        payers.clear();
        for _ in 0..n {
            let tag = d.varint()?;
            let (uid, implied) = if tag >= V5_FIRST_SECTION_REF {
                let r = tag - V5_FIRST_SECTION_REF;
                match lookup(r >> 1) {
                    Some((
                        Str {
                            user: Some(uid), ..
                        },
                        segment,
                    )) => {
                        let times = if r & 1 == 1 {
                            segment
                                .implied
                                .get(&(u64::from(did) << 32 | u64::from(*uid)))
                                .copied()
                        } else {
                            None
                        };
                        if r & 1 == 1 && times.is_none() {
                            return d.fail("payer times implied by a history that does not say so");
                        }
                        (*uid, times)
                    }
                    _ => return d.fail(format!("payer {tag} names no user")),
                }
            } else {
                // A payer without a user record gets an empty one, which changes no feature.
                let kind = Kind::of_tag(tag);
                let number = if kind.has_number() { d.varint()? } else { 0 };
                let text = d.packed(kind, number)?;
                match tables
                    .users
                    .write(&text, || UserRecord::new(&text), |uid, _| uid)
                {
                    Some(uid) => (uid, None),
                    None => return d.fail("no id left for another user"),
                }
            };
            let times = match implied {
                Some(times) => times,
                None => {
                    let used = d.count(DEST_TIMES, "times for one payer")?;
                    let mut times = [i64::MIN; DEST_TIMES];
                    for t in times.iter_mut().take(used) {
                        *t = d.ts()?;
                    }
                    // Newest first, unused slots (`i64::MIN`) last.
                    times.sort_unstable_by(|a, b| b.cmp(a));
                    times
                }
            };
            payers.push((uid, times));
        }
        let first = if d.v6 {
            d.first()?
        } else {
            // Version 5 kept no earliest payments: the oldest times of the payers stand in.
            Stored::of_payers(&payers, |uid| {
                tables
                    .users
                    .read_id(uid, |u| user_hash(u.key()))
                    .unwrap_or(0)
            })
        };
        let Some(made) = DestRecord::with_payers(&key, first, &payers) else {
            return d.fail(format!(
                "destination \"{key}\": earliest payments {first:?}"
            ));
        };
        tables.destinations.write_id(did, |record| *record = made);
        seen.push(did);
    }
    if d.pos != bytes.len() {
        return d.fail(format!(
            "{} stray bytes after the destinations of a segment",
            bytes.len() - d.pos
        ));
    }
    Ok(seen)
}

/// Decodes and validates a version 5 payload (see [`decode`]): each segment on its own thread.
fn decode_v5(bytes: &[u8], base: usize, version: u32) -> DecodeResult<Decoded> {
    let users = Table::default();
    let destinations = Table::default();
    let mut d = Decoder::new(bytes, base, version);
    let observed = d.varint()?;
    let newest_ts = d.i64()?;
    let earliest = if version >= 7 {
        Some(match d.i64()? {
            i64::MAX => None,
            t => Some(t),
        })
    } else {
        None
    };
    let dest_times = d.varint()?;
    if dest_times != DEST_TIMES as u64 {
        return d.fail(format!(
            "snapshot keeps {dest_times} times per payer; this build keeps {DEST_TIMES}"
        ));
    }
    // Bounded by what the payload can hold, as in version 3.
    let user_hint = usize::try_from(d.varint()?)
        .unwrap_or(usize::MAX)
        .min(bytes.len() / 7);
    let dest_hint = usize::try_from(d.varint()?)
        .unwrap_or(usize::MAX)
        .min(bytes.len() / 3);
    users.reserve(user_hint);
    destinations.reserve(dest_hint);
    let segments = match d.varint()? {
        n @ 1..=16 => n as usize,
        n => return d.fail(format!("{n} segments")),
    };
    // The segments' lengths, at the end of the payload.
    let Some(trailer) = bytes
        .len()
        .checked_sub(16 * segments)
        .filter(|&t| t >= d.pos)
    else {
        return d.fail("payload ends before its segments' lengths");
    };
    let mut ranges = Vec::with_capacity(2 * segments);
    let mut at = d.pos;
    for i in 0..2 * segments {
        let mut length = [0_u8; 8];
        length.copy_from_slice(
            bytes
                .get(trailer + 8 * i..trailer + 8 * i + 8)
                .unwrap_or(&[0; 8]),
        );
        let end = usize::try_from(u64::from_le_bytes(length))
            .ok()
            .and_then(|length| at.checked_add(length))
            .filter(|&end| end <= trailer);
        match end {
            Some(end) => {
                ranges.push(at..end);
                at = end;
            }
            None => return d.fail(format!("segment {i} is longer than the payload")),
        }
    }
    let tables = Tables {
        users: &users,
        destinations: &destinations,
    };
    let slice = |r: &Range<usize>| bytes.get(r.clone()).unwrap_or_default();
    let strings = (user_hint + dest_hint) / segments;
    let (user_ranges, dest_ranges) = ranges.split_at(segments);
    let tables = &tables;
    let user_segments = decode_segments(user_ranges, |r| {
        decode_users_segment(slice(r), base + r.start, version, tables, strings)
    })?;
    let user_segments = &user_segments;
    let dest_segments = decode_segments(dest_ranges, |r| {
        decode_destinations_segment(slice(r), base + r.start, version, tables, user_segments)
    })?;

    // Each destination's record once, inline or in the destinations' segments (counted in a
    // dense array by id rather than a set).
    let mut counts = Counts::default();
    let mut seen = destinations.zeroed();
    let inline = user_segments.iter().flat_map(|s| s.seen.iter());
    for &did in inline.chain(dest_segments.iter().flatten()) {
        let twice = table::count_of(&mut seen, did).is_some_and(|n| {
            *n += 1;
            *n > 1
        });
        if twice {
            let key = destinations.read_id(did, |r| r.key().to_owned());
            return Err(format!(
                "destination \"{}\" appears twice",
                key.unwrap_or_default()
            ));
        }
    }
    for segment in user_segments {
        counts.users += segment.counts.users;
        counts.destinations += segment.counts.destinations;
    }
    counts.destinations += dest_segments.iter().map(Vec::len).sum::<usize>();

    let mut d = Decoder::new(slice(&(at..trailer)), base + at, 5);
    let withdrawal_ids = d.withdrawal_ids_to_end()?;
    count_refs_on_two_threads(&users, &destinations);
    Ok(Decoded {
        observed,
        newest_ts,
        earliest,
        users,
        destinations,
        counts,
        withdrawal_ids,
    })
}

/// [`count_refs`] with each table's pass on its own thread (version 5 loads).
fn count_refs_on_two_threads(users: &Table<UserRecord>, destinations: &Table<DestRecord>) {
    let (mut dest_refs, mut user_refs) = std::thread::scope(|scope| {
        let user_refs = scope.spawn(|| {
            let mut user_refs = users.zeroed();
            destinations.for_each(|_, dest| {
                for (uid, _) in dest.payers() {
                    table::count_of(&mut user_refs, uid)
                        .into_iter()
                        .for_each(|n| *n += 1);
                }
            });
            user_refs
        });
        let mut dest_refs = destinations.zeroed();
        users.for_each(|_, u| {
            for k in u.destinations() {
                table::count_of(&mut dest_refs, k.dest)
                    .into_iter()
                    .for_each(|n| *n += 1);
            }
        });
        (dest_refs, joined(user_refs))
    });
    std::thread::scope(|scope| {
        let user_refs = &mut user_refs;
        scope.spawn(move || {
            users.for_each_mut(|uid, u| {
                u.set_refs(table::count_of(user_refs, uid).map_or(0, |n| *n))
            })
        });
        destinations.for_each_mut(|did, dest| {
            dest.set_refs(table::count_of(&mut dest_refs, did).map_or(0, |n| *n))
        });
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_round_trip() {
        for v in [0, 1, 127, 128, 300, u64::from(u32::MAX), u64::MAX] {
            let mut enc = Encoder::new(2, 0, 0);
            enc.varint(v);
            let mut dec = Decoder::new(&enc.buf, 0, 2);
            assert_eq!(dec.varint(), Ok(v));
            assert_eq!(dec.pos, enc.buf.len());
        }
    }

    /// Every record as text, sorted (the maps' order is random).
    fn canonical(state: &State) -> Vec<String> {
        canonical_as(state, false)
    }

    /// [`canonical`], with each destination's earliest payments those its payers' times give
    /// (`derived`: what a snapshot of version 5 or earlier reads back).
    fn canonical_as(state: &State, derived: bool) -> Vec<String> {
        let mut records = Vec::new();
        state.for_each_record(|record| {
            records.push(match record {
                super::super::Record::User(key, user) => format!("user {key} {user:?}"),
                super::super::Record::Destination(key, payers, mut first) => {
                    if derived {
                        first = super::super::First::NONE;
                        for (user, times) in &payers {
                            for &t in times {
                                first = first.paid(user_hash(user), t);
                            }
                        }
                    }
                    format!("destination {key} {payers:?} {first:?}")
                }
            })
        });
        records.sort();
        records
    }

    fn encoded(state: &State, version: u32) -> Vec<u8> {
        let mut out = Vec::new();
        let sink = |chunk: &[u8]| {
            out.extend_from_slice(chunk);
            Ok::<(), ()>(())
        };
        let written = if version == 7 {
            state.encode(None, sink)
        } else if version == 5 || version == 6 {
            state.encode_v5(version, None, sink)
        } else {
            state.encode_version(version, None, sink)
        };
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

    /// Encodes `state` in versions 1 to 6 (each smaller than the one before, or no larger for
    /// version 4, whose shortcuts need strings of certain shapes; version 5 has a fixed cost
    /// per segment) and checks that each decodes to exactly the same records and counters.
    fn assert_every_version_round_trips(state: &State) {
        let files = [
            encoded(state, 1),
            encoded(state, 2),
            encoded(state, 3),
            encoded(state, 4),
            encoded(state, 5),
            encoded(state, 6),
            encoded(state, 7),
        ];
        assert!(files[1].len() < files[0].len() && files[2].len() < files[1].len());
        assert!(files[3].len() <= files[2].len());
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
            // apart, `-0.0` included); before version 6, the earliest payments the payers give.
            assert!(
                canonical(&restored) == canonical_as(state, version < 6),
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
            // `state_days`: kept from version 7 on; before, the earliest time of the records.
            let earliest = if version >= 7 {
                state.earliest()
            } else {
                state.earliest_in_records()
            };
            assert_eq!(restored.earliest(), earliest, "version {version}");
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
        let mut enc = Encoder::new(2, 0, 0);
        enc.shared(DEST | 7, || Some("0xabc".into()));
        enc.shared(DEST | 7, || None);
        assert_eq!(enc.buf, [0, 5, b'0', b'x', b'a', b'b', b'c', 1]);
        let mut dec = Decoder::new(&enc.buf, 0, 2);
        let (first, second) = (dec.shared(), dec.shared());
        assert_eq!((first, second), (Ok(0), Ok(0)));
        assert_eq!(dec.text(0), "0xabc");
    }

    /// A valid TRON address (base58check of `0x41` and `body`), as the bench makes them.
    fn tron(body: u8) -> String {
        let mut raw = vec![0x41];
        raw.extend((0..20).map(|i| body.wrapping_mul(31).wrapping_add(i * 7)));
        raw.extend_from_slice(&tron_check(&raw));
        bs58::encode(raw).into_string()
    }

    /// Writes `text` as a device id and as a string table definition (version 4), reads both
    /// back, and returns the kind it was packed as.
    fn round_trip(text: &str) -> Kind {
        let mut enc = Encoder::new(4, 0, 0);
        enc.text(text);
        enc.define(text, false);
        let mut dec = Decoder::new(&enc.buf, 0, 4);
        let field = dec.text_field();
        assert_eq!(field.as_deref(), Ok(text), "{text:?} as a device id");
        let entry = dec.shared_entry();
        assert_eq!(entry, Ok((0, false)), "{text:?} as a definition");
        assert_eq!(dec.text(0), text, "{text:?} as a definition");
        assert_eq!(dec.pos, enc.buf.len(), "{text:?}: bytes left over");
        // Never larger than the text itself.
        let packed = Packed::of(text);
        assert!(varint_len(packed.number << 4) + packed.bytes(text).len() <= 2 + text.len());
        packed.kind
    }

    /// Every packed kind reads back as exactly its string, and strings that only look like one
    /// (wrong case, length, alphabet, checksum; leading zeros and `1`s; non-ASCII) either pack
    /// exactly too or stay raw.
    #[test]
    fn version_4_packs_strings_by_shape_and_reads_each_back_exactly() {
        let evm = format!("0x{}", "0123456789abcdef".repeat(3).get(..40).unwrap_or(""));
        let uuid = "0ef1699d-48b3-7d6f-07df-20833e435405";
        let valid_tron = tron(7);
        let mut bad_checksum = valid_tron.clone().into_bytes();
        if let Some(last) = bad_checksum.last_mut() {
            *last = if *last == b'z' { b'y' } else { b'z' };
        }
        let bad_checksum = String::from_utf8(bad_checksum).unwrap_or_default();
        let cases: &[(&str, Kind)] = &[
            (&evm, Kind::Evm),
            (&evm.to_ascii_uppercase().replacen('X', "x", 1), Kind::Raw),
            (&evm.to_ascii_uppercase(), Kind::Raw),
            (&evm.replacen('a', "A", 1), Kind::Raw),
            (&format!("{evm}0"), Kind::Raw),
            (evm.get(..41).unwrap_or(""), Kind::Raw),
            (uuid, Kind::UuidLower),
            (&uuid.to_ascii_uppercase(), Kind::UuidUpper),
            ("0EF1699D-48b3-7d6f-07df-20833e435405", Kind::Raw),
            ("0ef1699d-48b3-7d6f-07df-20833e43540g", Kind::Raw),
            ("0ef1699d48b3-7d6f-07df--20833e435405", Kind::Raw),
            ("00000000-0000-0000-0000-000000000000", Kind::UuidLower),
            ("0ef1699d48b37d6f07df20833e435405", Kind::Hex),
            ("583AA016EB9D2336", Kind::Hex),
            ("583aa016eb9d2336", Kind::Hex),
            ("583aA016eb9d2336", Kind::Raw),
            ("583aA716eb9d2336", Kind::Base58),
            ("583aa016eb9d233", Kind::Raw),
            ("583aa716eb9d233", Kind::Base58),
            ("0", Kind::Raw),
            ("7", Kind::Raw),
            ("123456789", Kind::Decimal),
            ("000123456789", Kind::Decimal),
            ("00000000000", Kind::Decimal),
            ("9999999999999999999", Kind::Decimal),
            ("18446744073709551615", Kind::Raw),
            ("+123456789", Kind::Raw),
            ("-123456789", Kind::Raw),
            ("١٢٣٤٥٦٧٨٩", Kind::Raw),
            (&valid_tron, Kind::Tron),
            (&bad_checksum, Kind::Base58),
            (&valid_tron.replacen('T', "t", 1), Kind::Base58),
            (&valid_tron.replacen('T', "0", 1), Kind::Raw),
            (&format!("{valid_tron}1"), Kind::Base58),
            ("1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNa", Kind::Base58),
            ("1111111111", Kind::Decimal),
            ("1111111111zz", Kind::Raw),
            ("11111111111111111111111111111111", Kind::Raw),
            (&format!("111{}", "z".repeat(30)), Kind::Base58),
            ("111111111111abcdefgh", Kind::Base58),
            (&"z".repeat(64), Kind::Base58),
            (&"z".repeat(65), Kind::Raw),
            (&"ab".repeat(64), Kind::Hex),
            (&"ab".repeat(65), Kind::Raw),
            ("alice", Kind::Raw),
            ("abcdefghijkmnopq", Kind::Base58),
            ("abc", Kind::Raw),
            ("", Kind::Raw),
            ("user-0000042", Kind::Raw),
            ("ñandú", Kind::Raw),
            ("日本語のユーザー", Kind::Raw),
            ("a\u{0}b", Kind::Raw),
        ];
        for &(text, kind) in cases {
            assert_eq!(round_trip(text), kind, "{text:?}");
        }
    }

    proptest::proptest! {
        /// Base58 as the `bs58` crate writes it, leading zero bytes included.
        #[test]
        fn base58_is_written_as_the_bs58_crate_writes_it(
            zeros in 0_usize..4,
            bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..=60),
        ) {
            let mut input = vec![0_u8; zeros];
            input.extend(bytes);
            input.truncate(PACKED_MAX);
            let mut text = String::new();
            push_base58(&mut text, &input);
            proptest::prop_assert_eq!(text, bs58::encode(&input).into_string());
        }

        /// The extremes: the largest number, all zeros, nothing.
        #[test]
        fn base58_extremes_are_written_as_the_bs58_crate_writes_them(len in 0_usize..=PACKED_MAX) {
            for input in [vec![0xff_u8; len], vec![0_u8; len]] {
                let mut text = String::new();
                push_base58(&mut text, &input);
                proptest::prop_assert_eq!(text, bs58::encode(&input).into_string());
            }
        }

        /// Strings over the alphabets the packed kinds use (and outside them) read back exactly.
        #[test]
        fn any_string_reads_back_exactly(
            text in "(0x)?[0-9a-fA-F1-9A-HJ-NP-Za-km-zT\\-]{0,70}|[0-9]{0,25}|\\PC{0,20}"
        ) {
            round_trip(&text);
        }
    }

    /// A whole state whose user ids, device ids and addresses take every packed kind (and
    /// near misses), with destinations paid by one user (inline, their times implied by the
    /// history or not) and by several, decodes exactly in every version.
    #[test]
    fn version_4_round_trips_a_state_of_packed_strings_and_inline_destinations() {
        use crate::event::{Event, Status, UserProfile, Withdrawal};
        use crate::time::Timestamp;
        let state = State::default();
        let base = 1_790_000_000_000_000_i64;
        let users = [
            "123456789",
            "000042",
            "0ef1699d-48b3-7d6f-07df-20833e435405",
            "ALICE-0001",
            "ñandú",
        ];
        let devices = [
            "35EE9D0B-8065-B0C5-5E55-038C0A3D87A5",
            "583aa016eb9d2336",
            "device-a",
            "35ee9d0b-8065-b0c5-5e55-038c0a3d87a5",
            "",
        ];
        let mut i = 0;
        for (u, user) in users.iter().enumerate() {
            let own = [
                tron(u as u8),
                format!("0x{:040x}", u + 1),
                "1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNa".to_string(),
                format!("bc1q{u}xy"),
                "TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t".to_string(),
            ];
            for k in 0..9_usize {
                i += 1;
                let destination = match k {
                    // Shared by every user.
                    8 => own[4].clone(),
                    _ => own.get(u % 4).cloned().unwrap_or_default(),
                };
                // Two withdrawals at one time, and one out of order.
                let ts = match k {
                    3 => base + 2 * 1_000_003,
                    5 => base - 77_000,
                    _ => base + (k as i64) * 1_000_003 + (u as i64) * 13,
                };
                state.observe(&Event::Withdrawal(Withdrawal {
                    id: format!("w{i}"),
                    ts: Timestamp::from_micros(ts),
                    user_id: (*user).into(),
                    asset: "USDT".into(),
                    network: "TRON".into(),
                    amount_usd: 12.5 + i as f64,
                    destination,
                    user: UserProfile {
                        country: "HK".into(),
                        created_at: Timestamp::from_micros(base),
                        locale: "en".into(),
                        referral: String::new(),
                    },
                    device_id: devices.get(u).map(|d| (*d).to_string()),
                    status: Status::Completed,
                    label: None,
                }));
            }
        }
        // A user whose history is trimmed to its cap while its only destination keeps times
        // the history no longer holds (its inline times are written out, not implied).
        for n in 0..MAX_HISTORY + 5 {
            state.observe(&Event::Withdrawal(Withdrawal {
                id: format!("c{n}"),
                ts: Timestamp::from_micros(base + (n as i64 % 7) * 60_000_000),
                user_id: "987654321".into(),
                asset: "USDT".into(),
                network: "TRON".into(),
                amount_usd: 1.0,
                destination: tron(200),
                user: UserProfile {
                    country: "HK".into(),
                    created_at: Timestamp::from_micros(base),
                    locale: "en".into(),
                    referral: String::new(),
                },
                device_id: None,
                status: Status::Completed,
                label: None,
            }));
        }
        assert_every_version_round_trips(&state);
        let (v3, v4) = (encoded(&state, 3), encoded(&state, 4));
        assert!(v4.len() < v3.len(), "{} vs {}", v4.len(), v3.len());
        // The TRON address went as its 20 bytes, not its 34 characters.
        let address = tron(0);
        assert!(v3.windows(34).any(|w| w == address.as_bytes()));
        assert!(v4.windows(34).all(|w| w != address.as_bytes()));
    }

    /// A state shaped like the bench's (users on both segments, each with its own wallet and
    /// one of a few shared addresses, times at random milliseconds, amounts in cents).
    fn shared_state(users: usize) -> State {
        use crate::event::{Event, Status, UserProfile, Withdrawal};
        use crate::time::Timestamp;
        let state = State::default();
        let base = 1_790_000_000_000_000_i64;
        for u in 0..users {
            let user_id = format!("{}", 100_000_000 + u * 7_919);
            for k in 0..4_usize {
                let destination = if k == 3 {
                    format!("0x{:040x}", 1 + u % 10)
                } else {
                    tron(u as u8)
                };
                let r = (u * 1_000_003 + k * 7_777_777) as i64 % 86_400_000;
                state.observe(&Event::Withdrawal(Withdrawal {
                    id: format!("w{u}-{k}"),
                    ts: Timestamp::from_micros(base + k as i64 * 86_400_000_000 + r * 1_000),
                    user_id: user_id.clone(),
                    asset: "USDT".into(),
                    network: "TRON".into(),
                    amount_usd: (2_000 + (u * 37 + k * 101) % 400_000) as f64 / 100.0,
                    destination,
                    user: UserProfile {
                        country: "HK".into(),
                        created_at: Timestamp::from_micros(base),
                        locale: "en".into(),
                        referral: String::new(),
                    },
                    device_id: Some(format!("{:016x}", u * 977)),
                    status: Status::Completed,
                    label: None,
                }));
            }
        }
        state
    }

    /// The byte lengths of a version 5 payload's segments (from its end).
    fn segment_lengths(bytes: &[u8]) -> Vec<u64> {
        let trailer = bytes.len().saturating_sub(16 * SEGMENTS);
        bytes
            .get(trailer..)
            .unwrap_or_default()
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes(c.try_into().unwrap_or([0; 8])))
            .collect()
    }

    /// Version 5 spreads the users over both segments, writes a payer's times as one bit of
    /// its reference when its history implies them and a history entry's destination inside
    /// its amount: smaller than version 4 on such a state, and read back exactly.
    #[test]
    fn version_5_saves_users_in_segments_and_payer_times_as_one_bit() {
        let users = 400;
        let state = shared_state(users);
        assert_every_version_round_trips(&state);
        let (v4, v5) = (encoded(&state, 4), encoded(&state, 5));
        let lengths = segment_lengths(&v5);
        assert_eq!(lengths.len(), 2 * SEGMENTS);
        // Every segment holds users and destinations (more than its end marker).
        assert!(lengths.iter().all(|&n| n > 100), "{lengths:?}");
        // About a byte per history entry and five per shared payer entry less.
        assert!(
            v5.len() + 8 * users <= v4.len(),
            "version 5: {} bytes, version 4: {}",
            v5.len(),
            v4.len()
        );
    }

    /// Version 6 keeps each destination's earliest payments, also those its payers no longer
    /// hold (a payer keeps its `DEST_TIMES` latest times), inline and in the destinations'
    /// section; version 5 kept none, and a destination read from it takes the oldest times its
    /// payers kept.
    #[test]
    fn version_6_keeps_the_earliest_payments_and_version_5_gives_the_payers_oldest() {
        use crate::event::{Status, UserProfile, Withdrawal};
        use crate::time::Timestamp;
        let base = 1_790_000_000_000_000_i64;
        let day = 86_400_000_000_i64;
        let w = |user: &str, k: i64, destination: &str| Withdrawal {
            id: format!("{user}-{destination}-{k}"),
            ts: Timestamp::from_micros(base + k * day),
            user_id: user.into(),
            asset: "USDT".into(),
            network: "TRON".into(),
            amount_usd: 10.0,
            destination: destination.into(),
            user: UserProfile {
                country: "HK".into(),
                created_at: Timestamp::from_micros(base),
                locale: "en".into(),
                referral: String::new(),
            },
            device_id: None,
            status: Status::Completed,
            label: None,
        };
        let state = State::default();
        // "Own" is paid by u alone (inline), "Shared" by u and v: u six times from day 0, v
        // six times from day 1, so that both payers have forgotten their first two payments.
        for k in 0..6 {
            state.observe_withdrawal(&w("u", k, "TOwn"));
            state.observe_withdrawal(&w("u", k, "TShared"));
            state.observe_withdrawal(&w("v", k + 1, "TShared"));
        }
        let now = w("x", 40, "TShared");
        let seen = |state: &State, u: &str, dest: &str| {
            let mut q = now.clone();
            q.user_id = u.into();
            q.destination = dest.into();
            state.features(&q, dest).dest_others_first_days
        };
        assert_eq!(seen(&state, "x", "TShared"), 40.0);
        assert_eq!(seen(&state, "u", "TShared"), 39.0);
        assert_eq!(seen(&state, "x", "TOwn"), 40.0);
        for (version, shared, shared_u, own) in [(6, 40.0, 39.0, 40.0), (5, 38.0, 37.0, 38.0)] {
            let restored = State::default();
            let decoded = decode(&encoded(&state, version), 0, version);
            assert!(decoded.is_ok(), "version {version}: {:?}", decoded.err());
            if let Ok(decoded) = decoded {
                restored.restore(decoded);
            }
            assert_eq!(seen(&restored, "x", "TShared"), shared, "version {version}");
            assert_eq!(
                seen(&restored, "u", "TShared"),
                shared_u,
                "version {version}"
            );
            assert_eq!(seen(&restored, "x", "TOwn"), own, "version {version}");
            assert_eq!(seen(&restored, "u", "TOwn"), -1.0, "version {version}");
        }
    }

    /// The withdrawal-id section, the last of every version: the ids come back in the order
    /// written, and a byte after them (before version 5's segment lengths) is refused by name.
    #[test]
    fn withdrawal_ids_round_trip_and_stray_bytes_after_them_are_refused() {
        let ids: crate::stream::IdSet = ["w-1", "w-2", "an id with spaces"]
            .into_iter()
            .map(Box::from)
            .collect();
        let state = shared_state(3);
        for version in 1..=7 {
            let mut bytes = Vec::new();
            let sink = |chunk: &[u8]| {
                bytes.extend_from_slice(chunk);
                Ok::<(), ()>(())
            };
            let written = if version == 7 {
                state.encode(Some(&ids), sink)
            } else if version == 5 || version == 6 {
                state.encode_v5(version, Some(&ids), sink)
            } else {
                state.encode_version(version, Some(&ids), sink)
            };
            assert_eq!(
                written.map(|c| c.withdrawal_ids),
                Ok(3),
                "version {version}"
            );
            let decoded = decode(&bytes, 0, version).map(|d| d.withdrawal_ids);
            let expected: Vec<Box<str>> = (&ids).into_iter().map(Box::from).collect();
            assert_eq!(decoded, Ok(expected), "version {version}");
            // Version 5 ends with the segments' lengths; the stray byte goes before them.
            let at = if version >= 5 {
                bytes.len() - 16 * SEGMENTS
            } else {
                bytes.len()
            };
            bytes.insert(at, 7);
            let error = decode(&bytes, 0, version).err().unwrap_or_default();
            assert!(
                error.contains("1 stray bytes after the last record"),
                "version {version}: {error}"
            );
        }
    }

    /// A damaged version 5 payload (cut short anywhere, or a segment length changed) is
    /// refused with a message, never a panic; a flipped byte anywhere does not panic either.
    #[test]
    fn damaged_version_5_payloads_are_refused() {
        for version in [5, 6, 7] {
            damaged_payloads_are_refused(version);
        }
    }

    fn damaged_payloads_are_refused(version: u32) {
        let v5 = encoded(&shared_state(12), version);
        for len in 0..v5.len() {
            let cut = v5.get(..len).unwrap_or_default();
            assert!(
                decode(cut, 0, version).is_err(),
                "cut at {len} of {}",
                v5.len()
            );
        }
        let trailer = v5.len() - 16 * SEGMENTS;
        for i in 0..2 * SEGMENTS {
            for delta in [1_u8, 2, 0x80] {
                let mut bytes = v5.clone();
                if let Some(b) = bytes.get_mut(trailer + 8 * i) {
                    *b = b.wrapping_add(delta);
                }
                assert!(
                    decode(&bytes, 0, version).is_err(),
                    "segment {i} length +{delta}"
                );
            }
        }
        let mut refused = 0;
        for at in 0..v5.len() {
            let mut bytes = v5.clone();
            if let Some(b) = bytes.get_mut(at) {
                *b ^= 0x5a;
            }
            refused += usize::from(decode(&bytes, 0, version).is_err());
        }
        // Many flips land in a string's or a time's bytes and decode to another valid state
        // (the file's checksum refuses those before decoding); the others are refused.
        assert!(refused > v5.len() / 5, "{refused} of {} refused", v5.len());
    }
}
