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

impl Withdrawal {
    /// Empty strings, time zero: a buffer for [`parse_into`] (allocates nothing).
    pub(crate) fn blank() -> Withdrawal {
        Withdrawal {
            id: String::new(),
            ts: Timestamp::from_micros(0),
            user_id: String::new(),
            asset: String::new(),
            network: String::new(),
            amount_usd: 0.0,
            destination: String::new(),
            user: UserProfile {
                country: String::new(),
                created_at: Timestamp::from_micros(0),
                locale: String::new(),
                referral: String::new(),
            },
            device_id: None,
            status: Status::Completed,
            label: None,
        }
    }
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
/// Strings are borrowed from the line where they have no escapes: a withdrawal read with
/// [`parse_into`] then costs no allocation once the reused [`Withdrawal`]'s strings are grown.
#[derive(Deserialize)]
pub(crate) struct RawEvent<'a> {
    kind: Option<Kind>,
    #[serde(borrow, default, deserialize_with = "borrowed_text")]
    ts: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "borrowed_text")]
    user_id: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "borrowed_text")]
    id: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "borrowed_text")]
    asset: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "borrowed_text")]
    network: Option<Cow<'a, str>>,
    amount_usd: Option<f64>,
    #[serde(borrow, default, deserialize_with = "borrowed_text")]
    destination: Option<Cow<'a, str>>,
    #[serde(borrow)]
    user: Option<RawUser<'a>>,
    #[serde(borrow, default, deserialize_with = "borrowed_text")]
    device_id: Option<Cow<'a, str>>,
    status: Option<Status>,
    label: Option<Label>,
}

#[derive(Deserialize)]
struct RawUser<'a> {
    #[serde(borrow, default, deserialize_with = "borrowed_text")]
    country: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "borrowed_text")]
    created_at: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "borrowed_text")]
    locale: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "borrowed_text")]
    referral: Option<Cow<'a, str>>,
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

/// What [`parse_into`] made of a valid line.
#[allow(clippy::large_enum_variant)] // returned once per line, never stored
pub(crate) enum Parsed {
    /// The withdrawal was written into the reused one.
    Withdrawal,
    /// An account event (these are rare next to withdrawals, and owned).
    Account(Event),
}

/// Parses and validates one line like [`Event::parse_line`], writing a withdrawal into `into`
/// (reusing its strings' buffers) instead of building a new one. The line is validated before
/// anything is written: on an error `into` is unchanged.
pub(crate) fn parse_into(line: &str, into: &mut Withdrawal) -> Result<Parsed, String> {
    match parse_raw(line)?.validate()? {
        Valid::Withdrawal(fields) => {
            fields.write_into(into);
            Ok(Parsed::Withdrawal)
        }
        other => Ok(Parsed::Account(other.into_event())),
    }
}

fn required<'a>(
    value: Option<Cow<'a, str>>,
    kind: &str,
    field: &str,
) -> Result<Cow<'a, str>, String> {
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

/// A validated event whose strings may still borrow from the line (never boxed: it lives on
/// the stack for one line).
#[allow(clippy::large_enum_variant)]
enum Valid<'a> {
    Withdrawal(ValidWithdrawal<'a>),
    PasswordReset {
        ts: Timestamp,
        user_id: Cow<'a, str>,
    },
    Login {
        ts: Timestamp,
        user_id: Cow<'a, str>,
        device_id: Cow<'a, str>,
    },
}

/// [`Withdrawal`]'s fields, validated, borrowed where the line allows.
struct ValidWithdrawal<'a> {
    id: Cow<'a, str>,
    ts: Timestamp,
    user_id: Cow<'a, str>,
    asset: Cow<'a, str>,
    network: Cow<'a, str>,
    amount_usd: f64,
    destination: Cow<'a, str>,
    country: Cow<'a, str>,
    created_at: Timestamp,
    locale: Cow<'a, str>,
    referral: Cow<'a, str>,
    device_id: Option<Cow<'a, str>>,
    status: Status,
    label: Option<Label>,
}

impl Valid<'_> {
    fn into_event(self) -> Event {
        match self {
            Valid::PasswordReset { ts, user_id } => Event::PasswordReset {
                ts,
                user_id: user_id.into_owned(),
            },
            Valid::Login {
                ts,
                user_id,
                device_id,
            } => Event::Login {
                ts,
                user_id: user_id.into_owned(),
                device_id: device_id.into_owned(),
            },
            Valid::Withdrawal(w) => Event::Withdrawal(Withdrawal {
                id: w.id.into_owned(),
                ts: w.ts,
                user_id: w.user_id.into_owned(),
                asset: w.asset.into_owned(),
                network: w.network.into_owned(),
                amount_usd: w.amount_usd,
                destination: w.destination.into_owned(),
                user: UserProfile {
                    country: w.country.into_owned(),
                    created_at: w.created_at,
                    locale: w.locale.into_owned(),
                    referral: w.referral.into_owned(),
                },
                device_id: w.device_id.map(Cow::into_owned),
                status: w.status,
                label: w.label,
            }),
        }
    }
}

impl ValidWithdrawal<'_> {
    /// Overwrites `w`, reusing the capacity of its strings.
    fn write_into(self, w: &mut Withdrawal) {
        fn set(to: &mut String, from: &str) {
            to.clear();
            to.push_str(from);
        }
        set(&mut w.id, &self.id);
        w.ts = self.ts;
        set(&mut w.user_id, &self.user_id);
        set(&mut w.asset, &self.asset);
        set(&mut w.network, &self.network);
        w.amount_usd = self.amount_usd;
        set(&mut w.destination, &self.destination);
        set(&mut w.user.country, &self.country);
        w.user.created_at = self.created_at;
        set(&mut w.user.locale, &self.locale);
        set(&mut w.user.referral, &self.referral);
        match (&mut w.device_id, self.device_id) {
            (Some(to), Some(from)) => set(to, &from),
            (to, from) => *to = from.map(Cow::into_owned),
        }
        w.status = self.status;
        w.label = self.label;
    }
}

impl<'a> RawEvent<'a> {
    pub(crate) fn into_event(self) -> Result<Event, String> {
        self.validate().map(Valid::into_event)
    }

    fn validate(self) -> Result<Valid<'a>, String> {
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
            Kind::PasswordReset => Ok(Valid::PasswordReset { ts, user_id }),
            Kind::Login => {
                let device_id = required(self.device_id, name, "device_id")?;
                Ok(Valid::Login {
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
                let country = required(raw_user.country, "withdrawal", "user.country")?;
                if country.len() != 2 || !country.bytes().all(|b| b.is_ascii_alphabetic()) {
                    return Err(format!(
                        "withdrawal field `user.country` must be an ISO 3166 alpha-2 code such as \"HK\", got {country:?}"
                    ));
                }
                let created_at = timestamp(raw_user.created_at, "withdrawal", "user.created_at")?;
                let locale = match raw_user.locale {
                    Some(l) if !l.is_empty() => l,
                    _ => Cow::Borrowed("en"),
                };
                if matches!(&self.device_id, Some(d) if d.is_empty()) {
                    return Err("withdrawal field `device_id` must not be empty when given".into());
                }
                Ok(Valid::Withdrawal(ValidWithdrawal {
                    id,
                    ts,
                    user_id,
                    asset,
                    network,
                    amount_usd,
                    destination,
                    country,
                    created_at,
                    locale,
                    referral: raw_user.referral.unwrap_or_default(),
                    device_id: self.device_id,
                    status: self.status.unwrap_or_default(),
                    label: self.label,
                }))
            }
        }
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
