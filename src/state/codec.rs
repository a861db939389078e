//! Exact compact numbers for the in-memory records (`user`, `destination`).
//!
//! - Times: a record picks the coarsest [`Unit`] (whole seconds, milliseconds, microseconds)
//!   that divides every time it holds, once, and stores each time as a number of units: as a
//!   zig-zag varint of the difference from a previous time (wrapping, so every `i64` pair has
//!   one), or fixed-width. Exchange timestamps are usually whole seconds or milliseconds, so a
//!   difference of days is 3-5 bytes instead of 8; a stream with microsecond times still reads
//!   back bit for bit, only less compactly.
//! - Amounts: a varint of whole cents shifted left once when `cents as f64 / 100.0` gives back
//!   the very same `f64` (checked bit for bit), else the byte `1` and the 8 bytes of the `f64`.

/// The time unit of a record, in microseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Unit(i64);

const UNITS: [i64; 3] = [1_000_000, 1_000, 1];

impl Unit {
    /// The coarsest unit dividing every one of `times`.
    pub(crate) fn of(times: impl IntoIterator<Item = i64>) -> Unit {
        // Remainders by constants (a multiply and a shift each, not a division: this runs for
        // every time of a record each time it is packed).
        let (mut seconds, mut millis) = (true, true);
        for t in times {
            seconds &= t % 1_000_000 == 0;
            millis &= t % 1_000 == 0;
        }
        match (seconds, millis) {
            (true, _) => Unit(1_000_000),
            (false, true) => Unit(1_000),
            _ => Unit(1),
        }
    }

    /// The unit's one-byte code (for a record's header).
    pub(crate) fn code(self) -> u8 {
        UNITS.iter().position(|&u| u == self.0).unwrap_or(2) as u8
    }

    pub(crate) fn from_code(code: u8) -> Unit {
        Unit(UNITS.get(usize::from(code)).copied().unwrap_or(1))
    }

    /// Whether `t` is a whole number of this unit.
    #[cfg(test)]
    pub(crate) fn divides(self, t: i64) -> bool {
        t % self.0 == 0
    }

    /// `t` in units (exact when [`Unit::divides`]).
    #[inline]
    pub(crate) fn count(self, t: i64) -> i64 {
        // By constants, for the same reason as in `Unit::of`.
        match self.0 {
            1_000_000 => t / 1_000_000,
            1_000 => t / 1_000,
            _ => t,
        }
    }

    /// The number of whole units at or before `t` (rounded toward minus infinity, so that
    /// `time(n) <= t` exactly when `n <= floor(t)`): a window bound compared with stored
    /// counts instead of a time decoded per entry.
    #[inline]
    pub(crate) fn floor(self, t: i64) -> i64 {
        match self.0 {
            1_000_000 => t.div_euclid(1_000_000),
            1_000 => t.div_euclid(1_000),
            _ => t,
        }
    }

    /// `n` units as a time (exact for every count of a time this unit divides).
    #[inline]
    pub(crate) fn time(self, n: i64) -> i64 {
        n.wrapping_mul(self.0)
    }
}

#[inline]
fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

#[inline]
fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

#[inline(always)]
pub(crate) fn push_u64(out: &mut Vec<u8>, v: u64) {
    if v < 0x80 {
        out.push(v as u8);
        return;
    }
    // Below 2^56 (every time delta and amount but the extremes), without a branch per byte:
    // the 7-bit groups spread into bytes in three steps (the reverse of `Cursor::varint`),
    // the top bit set on every byte but the last, and the bytes appended at once (all 8, a
    // fixed-size copy, then cut to the length).
    if v < 1 << 56 {
        let x = (v & 0x0000_0000_0fff_ffff) | ((v & 0x00ff_ffff_f000_0000) << 4);
        let x = (x & 0x0000_3fff_0000_3fff) | ((x & 0x0fff_c000_0fff_c000) << 2);
        let x = (x & 0x007f_007f_007f_007f) | ((x & 0x3f80_3f80_3f80_3f80) << 1);
        let bits = u64::BITS - (v | 1).leading_zeros();
        let len = bits.div_ceil(7) as usize;
        let more = 0x8080_8080_8080_8080 & ((1_u64 << (8 * (len - 1))) - 1);
        let start = out.len();
        out.extend_from_slice(&(x | more).to_le_bytes());
        out.truncate(start + len);
        return;
    }
    push_u64_slow(out, v);
}

#[inline(never)]
fn push_u64_slow(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

#[cfg(test)]
pub(crate) fn u64_len(mut v: u64) -> usize {
    let mut n = 1;
    while v >= 0x80 {
        v >>= 7;
        n += 1;
    }
    n
}

/// A zig-zag varint of `count - prev` (both in units, wrapping).
#[inline]
pub(crate) fn push_delta(out: &mut Vec<u8>, prev: i64, count: i64) {
    push_u64(out, zigzag(count.wrapping_sub(prev)));
}

#[cfg(test)]
pub(crate) fn delta_len(prev: i64, count: i64) -> usize {
    u64_len(zigzag(count.wrapping_sub(prev)))
}

/// The escape of an amount that is not a whole number of cents.
const RAW_AMOUNT: u64 = 1;

/// Whole cents of `amount` when they give it back bit for bit (and fit 62 bits).
fn cents(amount: f64) -> Option<u64> {
    let x = amount * 100.0;
    // `x.round()` (half away from zero) without the call into libm it compiles to: the whole
    // part by truncation, plus one when the rest is a half or more. Exact: below 2^53 the rest
    // `x - t` is representable (and at or above, `x` is whole and the rest 0); a negative `x`
    // (which rounds to a negative or to -0.0, whose check below fails) and NaN give `None`
    // here at once.
    if !(0.0..4_611_686_018_427_387_904.0).contains(&x) {
        return None;
    }
    let t = x as u64;
    let c = t + u64::from(x - t as f64 >= 0.5);
    ((c as f64 / 100.0).to_bits() == amount.to_bits()).then_some(c)
}

pub(crate) fn push_amount(out: &mut Vec<u8>, amount: f64) {
    match cents(amount) {
        Some(c) => push_u64(out, c << 1),
        None => {
            out.push(RAW_AMOUNT as u8);
            out.extend_from_slice(&amount.to_bits().to_le_bytes());
        }
    }
}

#[cfg(test)]
pub(crate) fn amount_len(amount: f64) -> usize {
    cents(amount).map_or(9, |c| u64_len(c << 1))
}

/// Where a record is written: a buffer, or one payer's slot (`destination`).
pub(crate) trait Out {
    fn bytes(&mut self, b: &[u8]);
    fn varint(&mut self, v: u64);
    fn delta(&mut self, prev: i64, count: i64);
    fn amount(&mut self, amount: f64);
}

impl Out for Vec<u8> {
    #[inline]
    fn bytes(&mut self, b: &[u8]) {
        self.extend_from_slice(b);
    }
    #[inline]
    fn varint(&mut self, v: u64) {
        push_u64(self, v);
    }
    #[inline]
    fn delta(&mut self, prev: i64, count: i64) {
        push_delta(self, prev, count);
    }
    fn amount(&mut self, amount: f64) {
        push_amount(self, amount);
    }
}

/// Reads a record from a position on: every read past the end gives 0 (records are written by
/// this process, so that only happens to a bug, which must not panic).
#[derive(Clone, Copy)]
pub(crate) struct Cursor<'a> {
    pub(crate) data: &'a [u8],
    pub(crate) at: usize,
}

impl<'a> Cursor<'a> {
    pub(crate) fn new(data: &'a [u8], at: usize) -> Cursor<'a> {
        Cursor { data, at }
    }

    /// A varint length, then that many bytes (empty when the record ends inside them): how
    /// both records hold their key.
    #[inline(always)]
    pub(crate) fn prefixed(&mut self) -> &'a [u8] {
        // Every table lookup reads a key: one byte of length for keys under 128 bytes.
        let len = match self.data.get(self.at) {
            Some(&b) if b < 0x80 => {
                self.at += 1;
                usize::from(b)
            }
            _ => self.varint() as usize,
        };
        let start = self.at;
        self.at = start.saturating_add(len);
        self.data.get(start..self.at).unwrap_or_default()
    }

    #[inline(always)]
    pub(crate) fn byte(&mut self) -> u8 {
        let b = self.data.get(self.at).copied().unwrap_or(0);
        self.at += 1;
        b
    }

    #[inline(always)]
    pub(crate) fn u32(&mut self) -> u32 {
        let v = self
            .data
            .get(self.at..)
            .and_then(|rest| rest.first_chunk::<4>())
            .map_or(0, |b| u32::from_le_bytes(*b));
        self.at += 4;
        v
    }

    #[inline(always)]
    pub(crate) fn u64_raw(&mut self) -> u64 {
        let v = self
            .data
            .get(self.at..)
            .and_then(|rest| rest.first_chunk::<8>())
            .map_or(0, |b| u64::from_le_bytes(*b));
        self.at += 8;
        v
    }

    /// A LEB128 varint (at most 10 bytes read).
    #[inline(always)]
    pub(crate) fn varint(&mut self) -> u64 {
        // Up to 8 bytes without a branch per byte: the first byte without its top bit ends
        // the varint, and the 7-bit groups are packed together in three steps.
        if let Some(b) = self.data.get(self.at..).and_then(|r| r.first_chunk::<8>()) {
            let word = u64::from_le_bytes(*b);
            let ends = !word & 0x8080_8080_8080_8080;
            if ends != 0 {
                let bits = ends.trailing_zeros() + 1;
                let x = word & (u64::MAX >> (64 - bits)) & 0x7f7f_7f7f_7f7f_7f7f;
                let x = (x & 0x007f_007f_007f_007f) | ((x & 0x7f00_7f00_7f00_7f00) >> 1);
                let x = (x & 0x0000_3fff_0000_3fff) | ((x & 0x3fff_0000_3fff_0000) >> 2);
                let x = (x & 0x0000_0000_0fff_ffff) | ((x & 0x0fff_ffff_0000_0000) >> 4);
                self.at += (bits / 8) as usize;
                return x;
            }
        }
        self.varint_slow()
    }

    /// A varint that is usually one byte (a key's or device id's length, a user's count of
    /// withdrawals): that byte without the general decoding, else [`Cursor::varint`].
    #[inline(always)]
    pub(crate) fn short(&mut self) -> u64 {
        match self.data.get(self.at) {
            Some(&b) if b < 0x80 => {
                self.at += 1;
                u64::from(b)
            }
            _ => self.varint(),
        }
    }

    /// A varint near the end of the record, or longer than 8 bytes.
    fn varint_slow(&mut self) -> u64 {
        let first = self.byte();
        if first < 0x80 {
            return u64::from(first);
        }
        let mut value = u64::from(first & 0x7f);
        let mut shift = 7;
        while shift < 64 {
            let byte = self.byte();
            value |= u64::from(byte & 0x7f) << shift;
            if byte < 0x80 {
                break;
            }
            shift += 7;
        }
        value
    }

    /// `prev` plus a delta written by [`push_delta`] (in units).
    #[inline(always)]
    pub(crate) fn delta(&mut self, prev: i64) -> i64 {
        prev.wrapping_add(unzigzag(self.varint()))
    }

    /// An amount written by [`push_amount`].
    #[inline(always)]
    pub(crate) fn amount(&mut self) -> f64 {
        // The varint's first byte carries its low bit: the escape is that byte alone.
        if self.data.get(self.at).is_some_and(|b| b & 1 == 1) {
            self.at += 1;
            f64::from_bits(self.u64_raw())
        } else {
            (self.varint() >> 1) as f64 / 100.0
        }
    }

    /// Moves past an amount written by [`push_amount`] without decoding it.
    #[inline(always)]
    pub(crate) fn skip_amount(&mut self) {
        match self.data.get(self.at) {
            // The escape and the 8 bytes.
            Some(b) if b & 1 == 1 => self.at += 9,
            _ => self.skip_varint(),
        }
    }

    /// Moves past a varint without decoding it: its length is where its first byte without
    /// the top bit lies.
    #[inline(always)]
    pub(crate) fn skip_varint(&mut self) {
        if let Some(b) = self.data.get(self.at..).and_then(|r| r.first_chunk::<8>()) {
            let ends = !u64::from_le_bytes(*b) & 0x8080_8080_8080_8080;
            if ends != 0 {
                self.at += ((ends.trailing_zeros() + 1) / 8) as usize;
                return;
            }
        }
        self.varint_slow();
    }

    /// `n` bytes as a string (empty when they are not UTF-8, which a record never holds).
    pub(crate) fn str(&mut self, n: usize) -> &'a str {
        let s = self
            .data
            .get(self.at..self.at.saturating_add(n))
            .and_then(|b| std::str::from_utf8(b).ok())
            .unwrap_or_default();
        self.at = self.at.saturating_add(n);
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_are_the_coarsest_that_divide_every_time() {
        assert_eq!(Unit::of([]), Unit(1_000_000));
        assert_eq!(Unit::of([0, 3_000_000, -7_000_000]), Unit(1_000_000));
        assert_eq!(Unit::of([3_000_000, 1_500_000]), Unit(1_000));
        assert_eq!(Unit::of([1_500, 3_000_000, 7]), Unit(1));
        assert_eq!(Unit::of([i64::MIN]), Unit(1));
        assert_eq!(Unit::of([i64::MAX]), Unit(1));
        for u in UNITS {
            assert_eq!(Unit::from_code(Unit(u).code()), Unit(u));
        }
    }

    #[test]
    fn times_and_deltas_round_trip_at_the_extremes() {
        let times = [
            0,
            1,
            -1,
            1_793_491_200_000_000,
            1_793_491_200_123_456,
            i64::MIN,
            i64::MAX,
            i64::MIN + 1,
            i64::MAX - 1,
            -1_793_491_200_000_000,
        ];
        for unit in [Unit(1), Unit(1_000), Unit(1_000_000)] {
            let ok: Vec<i64> = times.iter().copied().filter(|&t| unit.divides(t)).collect();
            let mut out = Vec::new();
            let mut prev = 0;
            for &t in &ok {
                let n = unit.count(t);
                let before = out.len();
                push_delta(&mut out, prev, n);
                assert_eq!(out.len() - before, delta_len(prev, n));
                prev = n;
            }
            let mut c = Cursor::new(&out, 0);
            let mut prev = 0;
            for &t in &ok {
                prev = c.delta(prev);
                assert_eq!(unit.time(prev), t, "{unit:?}");
            }
            assert_eq!(c.at, out.len());
        }
    }

    /// The whole cents are those `(amount * 100.0).round()` gives, for amounts of every kind.
    #[test]
    fn cents_are_those_the_standard_rounding_gives() {
        let reference = |amount: f64| {
            let c = (amount * 100.0).round();
            if !(0.0..4_611_686_018_427_387_904.0).contains(&c) {
                return None;
            }
            let c = c as u64;
            ((c as f64 / 100.0).to_bits() == amount.to_bits()).then_some(c)
        };
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let mut amounts = vec![
            0.0,
            -0.0,
            0.005,
            0.004_999_999_999_999_999,
            0.015,
            0.5,
            0.499_999_999_999_999_94,
            -0.004,
            -0.5,
            173.81,
            0.1 + 0.2,
            1e300,
            f64::MAX,
            f64::MIN_POSITIVE,
            5e-324,
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            4_611_686_018_427_387_904.0 / 100.0,
            4_611_686_018_427_387_903.0 / 100.0,
            9_007_199_254_740_993.0 / 100.0,
            45_035_996_273_704.96,
        ];
        for _ in 0..200_000 {
            let r = next();
            amounts.push(f64::from_bits(r));
            amounts.push((r % 100_000_000) as f64 / 100.0);
            amounts.push((r % 10_000_000_000_000) as f64 / 100.0 + 0.005);
            amounts.push(f64::from_bits(r) % 1e6);
        }
        for a in amounts {
            assert_eq!(cents(a), reference(a), "{a:e}");
        }
    }

    #[test]
    fn amounts_round_trip_bit_for_bit() {
        let amounts = [
            0.0,
            -0.0,
            0.01,
            0.1,
            173.81,
            1234.5,
            100.0,
            0.005,
            1.0 / 3.0,
            123.456_789,
            -5.25,
            f64::MAX,
            f64::MIN_POSITIVE,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::NAN,
            46_116_860_184_273_879.03,
            1e300,
            5e-324,
        ];
        let mut out = Vec::new();
        for &a in &amounts {
            let before = out.len();
            push_amount(&mut out, a);
            assert_eq!(out.len() - before, amount_len(a), "{a}");
        }
        let mut c = Cursor::new(&out, 0);
        let mut skip = Cursor::new(&out, 0);
        for &a in &amounts {
            assert_eq!(c.amount().to_bits(), a.to_bits(), "{a}");
            skip.skip_amount();
            assert_eq!(skip.at, c.at, "{a}");
        }
        assert_eq!(c.at, out.len());
        // Whole cents are short; the rest take the escape and 8 bytes.
        assert_eq!(amount_len(173.81), 3);
        assert_eq!(amount_len(0.1 + 0.2), 9);
        assert_eq!(amount_len(-0.0), 9);
    }

    #[test]
    fn varints_round_trip_at_every_width() {
        let mut out = Vec::new();
        let values: Vec<u64> = (0..64).map(|s| 1_u64 << s).chain([0, u64::MAX]).collect();
        for &v in &values {
            push_u64(&mut out, v);
        }
        let mut c = Cursor::new(&out, 0);
        for &v in &values {
            assert_eq!(c.varint(), v);
        }
        assert_eq!(c.at, out.len());
        // Every value of every width, read with 8 bytes behind it and without.
        for shift in 0..64 {
            for v in [
                (1_u64 << shift) - 1,
                1_u64 << shift,
                (1_u64 << shift) | 0x55,
            ] {
                let mut one = Vec::new();
                push_u64(&mut one, v);
                let len = one.len();
                one.extend_from_slice(&[0xff; 9]);
                for tail in [0, 9] {
                    let mut c = Cursor::new(one.get(..len + tail).unwrap_or_default(), 0);
                    assert_eq!((c.varint(), c.at), (v, len), "{v:#x}");
                    let mut skip = Cursor::new(one.get(..len + tail).unwrap_or_default(), 0);
                    skip.skip_varint();
                    assert_eq!(skip.at, len, "{v:#x}");
                    let mut short = Cursor::new(one.get(..len + tail).unwrap_or_default(), 0);
                    assert_eq!((short.short(), short.at), (v, len), "{v:#x}");
                }
            }
        }
        // The branchless writer writes what the byte-by-byte one does, at every width.
        for shift in 0..64 {
            for v in [
                (1_u64 << shift) - 1,
                1_u64 << shift,
                (1_u64 << shift) | 0x55,
            ] {
                let (mut fast, mut slow) = (Vec::new(), Vec::new());
                push_u64(&mut fast, v);
                push_u64_slow(&mut slow, v);
                assert_eq!(fast, slow, "{v:#x}");
            }
        }
        // Reading past the end gives zeros, not a panic.
        assert_eq!(c.varint(), 0);
        assert_eq!(c.u64_raw(), 0);
    }
}
