//! Events (contract section 1): parsing and validation of one JSON object per event.
//!
//! [`Event::parse_line`] turns a line into a validated [`Event`] or a message a person can act
//! on. Fields the contract does not name are ignored, so fixtures may carry extras such as
//! `expect` (see [`crate::check()`]).

use std::borrow::Cow;

use serde::Deserialize;

use crate::time::Timestamp;

/// One input event.
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    /// A withdrawal to score (and, when completed, to remember).
    Withdrawal(Withdrawal),
    /// The user reset their password.
    PasswordReset {
        /// When.
        ts: Timestamp,
        /// Whose.
        user_id: String,
    },
    /// The user logged in from a device.
    Login {
        /// When.
        ts: Timestamp,
        /// Whose.
        user_id: String,
        /// The host's device fingerprint.
        device_id: String,
    },
}

impl Event {
    /// The event's time.
    pub fn ts(&self) -> Timestamp {
        match self {
            Event::Withdrawal(w) => w.ts,
            Event::PasswordReset { ts, .. } | Event::Login { ts, .. } => *ts,
        }
    }

    /// The user the event belongs to.
    pub fn user_id(&self) -> &str {
        match self {
            Event::Withdrawal(w) => &w.user_id,
            Event::PasswordReset { user_id, .. } | Event::Login { user_id, .. } => user_id,
        }
    }

    /// Parses and validates one JSON object. The error names the field at fault.
    pub fn parse_line(line: &str) -> Result<Event, String> {
        parse_raw(line).and_then(|raw| raw.into_event())
    }
}

/// A withdrawal request, as the host sends it.
#[derive(Clone, Debug, PartialEq)]
pub struct Withdrawal {
    /// Unique id of the withdrawal.
    pub id: String,
    /// When it was requested.
    pub ts: Timestamp,
    /// Whose.
    pub user_id: String,
    /// E.g. `USDT`.
    pub asset: String,
    /// E.g. `TRON`, `ETH`.
    pub network: String,
    /// Value in USD; finite and not negative.
    pub amount_usd: f64,
    /// The destination address as sent (normalized when compared, see [`normalize_address`]).
    pub destination: String,
    /// The host's profile snapshot of the user.
    pub user: UserProfile,
    /// The device the request came from, when known.
    pub device_id: Option<String>,
    /// Completed (the default) or cancelled; only completed withdrawals enter history.
    pub status: Status,
    /// Ground truth for replays (fixtures only).
    pub label: Option<Label>,
}

/// The host's profile snapshot of a user, sent with each withdrawal.
#[derive(Clone, Debug, PartialEq)]
pub struct UserProfile {
    /// ISO 3166 alpha-2 country code.
    pub country: String,
    /// When the account was opened.
    pub created_at: Timestamp,
    /// BCP 47 tag for warning texts; `en` by default.
    pub locale: String,
    /// Acquisition channel, e.g. `telegram`; empty by default.
    pub referral: String,
}

/// Whether a withdrawal went through.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Went through: enters the user's history.
    #[default]
    Completed,
    /// Scored, but never enters history.
    Cancelled,
}

/// Ground truth carried by fixtures.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Label {
    /// The withdrawal was a scam payment.
    Scam,
    /// The withdrawal was honest.
    Legit,
}

/// Normalizes a destination for comparison: `0x` and 40 hex digits (an EVM address, which is
/// case-insensitive) is lower-cased; anything else is kept exactly.
pub fn normalize_address(address: &str) -> std::borrow::Cow<'_, str> {
    let bytes = address.as_bytes();
    let is_evm = bytes.len() == 42
        && bytes.starts_with(b"0x")
        && bytes.iter().skip(2).all(u8::is_ascii_hexdigit);
    if is_evm && bytes.iter().any(u8::is_ascii_uppercase) {
        std::borrow::Cow::Owned(address.to_ascii_lowercase())
    } else {
        std::borrow::Cow::Borrowed(address)
    }
}

#[derive(Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
enum Kind {
    Withdrawal,
    PasswordReset,
    Login,
}

/// The wire form: everything optional so that validation can say exactly what is missing.
#[derive(Deserialize)]
pub(crate) struct RawEvent<'a> {
    kind: Option<Kind>,
    /// Borrowed where the line has no escapes: parsed into a [`Timestamp`], never kept.
    #[serde(borrow, default, deserialize_with = "borrowed_text")]
    ts: Option<Cow<'a, str>>,
    user_id: Option<String>,
    id: Option<String>,
    asset: Option<String>,
    network: Option<String>,
    amount_usd: Option<f64>,
    destination: Option<String>,
    #[serde(borrow)]
    user: Option<RawUser<'a>>,
    device_id: Option<String>,
    status: Option<Status>,
    label: Option<Label>,
}

#[derive(Deserialize)]
struct RawUser<'a> {
    country: Option<String>,
    #[serde(borrow, default, deserialize_with = "borrowed_text")]
    created_at: Option<Cow<'a, str>>,
    locale: Option<String>,
    referral: Option<String>,
}

/// An optional string borrowed from the line when it has no escapes (serde borrows a `Cow`
/// only when it is the field's whole type, not inside an `Option`).
fn borrowed_text<'de, D>(deserializer: D) -> Result<Option<Cow<'de, str>>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    #[derive(Deserialize)]
    #[serde(transparent)]
    struct Text<'a>(#[serde(borrow)] Cow<'a, str>);
    Option::<Text<'de>>::deserialize(deserializer).map(|text| text.map(|Text(t)| t))
}

/// Parses the JSON of one line, with messages that say what to fix.
pub(crate) fn parse_raw(line: &str) -> Result<RawEvent<'_>, String> {
    if line.starts_with('\u{feff}') {
        return Err(
            "line starts with a byte-order mark (U+FEFF); write JSON Lines as UTF-8 without a BOM"
                .into(),
        );
    }
    serde_json::from_str::<RawEvent>(line).map_err(|e| {
        if e.is_syntax() || e.is_eof() {
            format!("not valid JSON: {e}")
        } else {
            format!("invalid event: {e}")
        }
    })
}

fn required(value: Option<String>, kind: &str, field: &str) -> Result<String, String> {
    match value {
        Some(v) if !v.is_empty() => Ok(v),
        Some(_) => Err(format!("{kind} field `{field}` must not be empty")),
        None => Err(format!("{kind} is missing field `{field}`")),
    }
}

fn timestamp(value: Option<Cow<'_, str>>, kind: &str, field: &str) -> Result<Timestamp, String> {
    match value {
        Some(text) if !text.is_empty() => {
            Timestamp::parse(&text).map_err(|e| format!("{kind} field `{field}`: {e}"))
        }
        Some(_) => Err(format!("{kind} field `{field}` must not be empty")),
        None => Err(format!("{kind} is missing field `{field}`")),
    }
}

impl RawEvent<'_> {
    pub(crate) fn into_event(self) -> Result<Event, String> {
        let kind = self.kind.ok_or_else(|| {
            "event is missing field `kind` (withdrawal, password_reset or login)".to_string()
        })?;
        let name = match kind {
            Kind::Withdrawal => "withdrawal",
            Kind::PasswordReset => "password_reset",
            Kind::Login => "login",
        };
        let ts = timestamp(self.ts, name, "ts")?;
        let user_id = required(self.user_id, name, "user_id")?;
        match kind {
            Kind::PasswordReset => Ok(Event::PasswordReset { ts, user_id }),
            Kind::Login => {
                let device_id = required(self.device_id, name, "device_id")?;
                Ok(Event::Login {
                    ts,
                    user_id,
                    device_id,
                })
            }
            Kind::Withdrawal => {
                let id = required(self.id, name, "id")?;
                let asset = required(self.asset, name, "asset")?;
                let network = required(self.network, name, "network")?;
                let amount_usd = self
                    .amount_usd
                    .ok_or_else(|| "withdrawal is missing field `amount_usd`".to_string())?;
                if !amount_usd.is_finite() || amount_usd < 0.0 {
                    return Err(format!(
                        "withdrawal field `amount_usd` must be a finite number >= 0, got {amount_usd}"
                    ));
                }
                let destination = required(self.destination, name, "destination")?;
                let raw_user = self.user.ok_or_else(|| {
                    "withdrawal is missing field `user` (the profile snapshot)".to_string()
                })?;
                let user = raw_user.into_profile()?;
                if matches!(&self.device_id, Some(d) if d.is_empty()) {
                    return Err("withdrawal field `device_id` must not be empty when given".into());
                }
                Ok(Event::Withdrawal(Withdrawal {
                    id,
                    ts,
                    user_id,
                    asset,
                    network,
                    amount_usd,
                    destination,
                    user,
                    device_id: self.device_id,
                    status: self.status.unwrap_or_default(),
                    label: self.label,
                }))
            }
        }
    }
}

impl RawUser<'_> {
    fn into_profile(self) -> Result<UserProfile, String> {
        let country = required(self.country, "withdrawal", "user.country")?;
        if country.len() != 2 || !country.bytes().all(|b| b.is_ascii_alphabetic()) {
            return Err(format!(
                "withdrawal field `user.country` must be an ISO 3166 alpha-2 code such as \"HK\", got {country:?}"
            ));
        }
        let created_at = timestamp(self.created_at, "withdrawal", "user.created_at")?;
        let locale = match self.locale {
            Some(l) if !l.is_empty() => l,
            _ => "en".to_string(),
        };
        Ok(UserProfile {
            country,
            created_at,
            locale,
            referral: self.referral.unwrap_or_default(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[allow(clippy::expect_used)] // a test fails loudly
    fn timestamps_are_borrowed_from_the_line_unless_escaped() {
        let plain = r#"{"kind":"login","ts":"2026-01-01T00:00:00Z","user_id":"u","device_id":"d"}"#;
        let raw = parse_raw(plain).expect("parses");
        assert!(matches!(raw.ts, Some(Cow::Borrowed(_))));
        let escaped =
            r#"{"kind":"login","ts":"2026-01-01T00:00:00\u005a","user_id":"u","device_id":"d"}"#;
        let raw = parse_raw(escaped).expect("parses");
        assert!(matches!(raw.ts, Some(Cow::Owned(_))));
        assert!(raw.into_event().is_ok());
        let wrong = r#"{"kind":"login","ts":5,"user_id":"u","device_id":"d"}"#;
        assert!(parse_raw(wrong).is_err_and(|e| e.contains("expected a string")));
    }

    #[test]
    fn evm_addresses_are_lower_cased_others_kept() {
        let evm = "0xAbCdEf0123456789abcdef0123456789ABCDEF01";
        assert_eq!(normalize_address(evm), evm.to_ascii_lowercase());
        assert_eq!(normalize_address("TAbCdEf"), "TAbCdEf");
        assert_eq!(normalize_address("0xABC"), "0xABC");
        assert_eq!(
            normalize_address(" 0xAbCdEf0123456789abcdef0123456789ABCDEF01"),
            " 0xAbCdEf0123456789abcdef0123456789ABCDEF01"
        );
    }
}
