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
    pub fn parse(text: &str) -> Result<Timestamp, String> {
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

/// True when `ts` lies in the window `(now - span, now]`.
#[inline]
pub(crate) fn in_window(ts: i64, now: i64, span: i64) -> bool {
    ts <= now && ts > now.saturating_sub(span)
}
