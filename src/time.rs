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
