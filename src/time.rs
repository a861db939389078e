//! Timestamps: microseconds since the Unix epoch, parsed from RFC 3339.

use std::fmt;

/// Microseconds in common spans, for window arithmetic.
pub(crate) const MICROS_PER_HOUR: i64 = 3_600_000_000;
pub(crate) const MICROS_PER_DAY: i64 = 24 * MICROS_PER_HOUR;

/// An instant, kept to the microsecond (the contract asks for at least the millisecond).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(i64);

impl Timestamp {
    /// Parses an RFC 3339 timestamp with any offset, e.g. `2026-03-01T12:34:56.789+08:00`.
    /// Only RFC 3339's shape is accepted (`T`, `t` or a space between date and time, seconds
    /// required, `Z`/`z` or `+HH:MM`/`-HH:MM`), not the wider ISO 8601 forms jiff also reads.
    pub fn parse(text: &str) -> Result<Timestamp, String> {
        // Nearly every event carries two timestamps in this one shape; jiff was a visible
        // share of `riskgate score`. Anything else (fractions, offsets, edge values) goes
        // through jiff as before.
        if let Some(t) = parse_plain_utc(text.as_bytes()) {
            return Ok(t);
        }
        Timestamp::parse_general(text)
    }

    /// [`Timestamp::parse`] through jiff, for every shape RFC 3339 allows.
    fn parse_general(text: &str) -> Result<Timestamp, String> {
        if !is_rfc3339(text.as_bytes()) {
            return Err(format!(
                "`{text}` is not an RFC 3339 timestamp (expected e.g. 2026-03-01T12:34:56Z or 2026-03-01T20:34:56.789+08:00)"
            ));
        }
        let parsed: jiff::Timestamp = text
            .parse()
            .map_err(|e| format!("`{text}` is not an RFC 3339 timestamp ({e})"))?;
        Ok(Timestamp(parsed.as_microsecond()))
    }

    /// From microseconds since the Unix epoch.
    pub const fn from_micros(micros: i64) -> Timestamp {
        Timestamp(micros)
    }

    /// Microseconds since the Unix epoch.
    pub const fn as_micros(self) -> i64 {
        self.0
    }

    /// `self - earlier` in hours (negative when `earlier` is later).
    pub(crate) fn hours_since(self, earlier: i64) -> f64 {
        (self.0.saturating_sub(earlier)) as f64 / MICROS_PER_HOUR as f64
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match jiff::Timestamp::from_microsecond(self.0) {
            Ok(ts) => write!(f, "{ts}"),
            Err(_) => write!(f, "@{}us", self.0),
        }
    }
}

/// `YYYY-MM-DDTHH:MM:SSZ` with a year from 1000 to 9998, a day that exists in its month, and no leap
/// second: the instant, computed directly (days from the civil date, Hinnant's algorithm).
/// `None` for anything else, which [`Timestamp::parse_general`] then decides.
fn parse_plain_utc(text: &[u8]) -> Option<Timestamp> {
    let [y0, y1, y2, y3, b'-', m0, m1, b'-', d0, d1, b'T', h0, h1, b':', i0, i1, b':', s0, s1, b'Z'] =
        *text
    else {
        return None;
    };
    let digit = |b: u8| b.is_ascii_digit().then(|| i64::from(b - b'0'));
    let two = |a: u8, b: u8| Some(digit(a)? * 10 + digit(b)?);
    let year = two(y0, y1)? * 100 + two(y2, y3)?;
    let (month, day) = (two(m0, m1)?, two(d0, d1)?);
    let (hour, minute, second) = (two(h0, h1)?, two(i0, i1)?, two(s0, s1)?);
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let month_days = match month {
        2 if leap => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        1..=12 => 31,
        _ => return None,
    };
    // jiff's range ends during 9999-12-30: the last year is left to it.
    if !(1000..=9998).contains(&year)
        || !(1..=month_days).contains(&day)
        || hour > 23
        || minute > 59
        || second > 59
    {
        return None;
    }
    let y = if month <= 2 { year - 1 } else { year };
    let (era, year_of_era) = (y / 400, y % 400);
    let day_of_year = (153 * (if month > 2 { month - 3 } else { month + 9 }) + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    let days = era * 146_097 + day_of_era - 719_468;
    let seconds = days * 86_400 + hour * 3_600 + minute * 60 + second;
    Some(Timestamp(seconds * 1_000_000))
}

/// `YYYY-MM-DD(T|t| )HH:MM:SS(.fraction)?(Z|z|(+|-)HH:MM)`: RFC 3339's `date-time`.
fn is_rfc3339(text: &[u8]) -> bool {
    let digits = |range: std::ops::Range<usize>| {
        text.get(range)
            .is_some_and(|d| d.iter().all(u8::is_ascii_digit))
    };
    let at = |i: usize, allowed: &[u8]| text.get(i).is_some_and(|b| allowed.contains(b));
    let date_time = digits(0..4)
        && at(4, b"-")
        && digits(5..7)
        && at(7, b"-")
        && digits(8..10)
        && at(10, b"Tt ")
        && digits(11..13)
        && at(13, b":")
        && digits(14..16)
        && at(16, b":")
        && digits(17..19);
    if !date_time {
        return false;
    }
    let mut i = 19;
    if at(i, b".") {
        let fraction = text.get(i + 1..).map_or(0, |rest| {
            rest.iter().take_while(|b| b.is_ascii_digit()).count()
        });
        if fraction == 0 {
            return false;
        }
        i += 1 + fraction;
    }
    match text.get(i..) {
        Some(b"Z" | b"z") => true,
        Some(offset) => {
            offset.len() == 6
                && at(i, b"+-")
                && digits(i + 1..i + 3)
                && at(i + 3, b":")
                && digits(i + 4..i + 6)
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The direct computation agrees with jiff on every day of years around the edge cases
    /// (leap years, century rules), at assorted times, and leaves the rest to jiff.
    #[test]
    fn plain_utc_timestamps_agree_with_jiff() {
        let mut checked = 0;
        for year in [
            1000, 1600, 1900, 1969, 1970, 1999, 2000, 2024, 2026, 2100, 2400, 9999,
        ] {
            for month in 0..=13 {
                for day in 0..=32 {
                    for (h, m, s) in [
                        (0, 0, 0),
                        (12, 34, 56),
                        (23, 59, 59),
                        (23, 59, 60),
                        (24, 0, 0),
                    ] {
                        let text = format!("{year:04}-{month:02}-{day:02}T{h:02}:{m:02}:{s:02}Z");
                        let general = Timestamp::parse_general(&text);
                        match parse_plain_utc(text.as_bytes()) {
                            Some(fast) => {
                                assert_eq!(Ok(fast), general, "{text}");
                                checked += 1;
                            }
                            None => assert!(
                                general.is_err() || s == 60 || year == 9999,
                                "{text} is left to jiff although it is plain: {general:?}"
                            ),
                        }
                        assert_eq!(Timestamp::parse(&text), general, "{text}");
                    }
                }
            }
        }
        // Every real day of the 11 years below 9999 (1600, 2000, 2024 and 2400 leap), three times.
        assert_eq!(checked, 3 * (11 * 365 + 4));
        for other in [
            "0999-12-31T23:59:59Z",
            "2026-11-01t00:00:00Z",
            "2026-11-01T00:00:00z",
        ] {
            assert_eq!(parse_plain_utc(other.as_bytes()), None, "{other}");
        }
    }
}
