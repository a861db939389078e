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
    if let Some(raw) = Plain::parse(line) {
        return Ok(raw);
    }
    serde_json::from_str::<RawEvent>(line).map_err(|e| {
        if e.is_syntax() || e.is_eof() {
            format!("not valid JSON: {e}")
        } else {
            format!("invalid event: {e}")
        }
    })
}

/// A reader for the lines events usually are: one object of the contract's fields whose strings
/// have no escapes, with `amount_usd` a short plain decimal, and unknown fields holding plain
/// strings (e.g. the generator's `typology`). It yields the [`RawEvent`] serde_json would (the
/// same borrowed strings, the same `f64`) or `None` at the first thing outside that subset
/// (escapes, `null`, other value types, duplicate fields, exponents, long numbers, errors of
/// any kind), for serde_json to read the line and word any error. serde's generic path (a
/// visitor per field and per `Option`) was ~30% of `riskgate score`'s instructions.
struct Plain<'a> {
    text: &'a str,
    at: usize,
}

/// Powers of ten exact in an `f64`, as serde_json's table has them.
const POW10: [f64; 16] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
];

impl<'a> Plain<'a> {
    fn parse(text: &'a str) -> Option<RawEvent<'a>> {
        let mut p = Plain { text, at: 0 };
        let mut raw = RawEvent {
            kind: None,
            ts: None,
            user_id: None,
            id: None,
            asset: None,
            network: None,
            amount_usd: None,
            destination: None,
            user: None,
            device_id: None,
            status: None,
            label: None,
        };
        p.object(|p, key| {
            // A field seen twice is serde's error: `None` (via `set`) leaves it to serde_json.
            match key {
                "kind" => {
                    let kind = match p.string()? {
                        "withdrawal" => Kind::Withdrawal,
                        "password_reset" => Kind::PasswordReset,
                        "login" => Kind::Login,
                        _ => return None,
                    };
                    set(&mut raw.kind, kind)
                }
                "ts" => set(&mut raw.ts, Cow::Borrowed(p.string()?)),
                "user_id" => set(&mut raw.user_id, Cow::Borrowed(p.string()?)),
                "id" => set(&mut raw.id, Cow::Borrowed(p.string()?)),
                "asset" => set(&mut raw.asset, Cow::Borrowed(p.string()?)),
                "network" => set(&mut raw.network, Cow::Borrowed(p.string()?)),
                "amount_usd" => set(&mut raw.amount_usd, p.number()?),
                "destination" => set(&mut raw.destination, Cow::Borrowed(p.string()?)),
                "device_id" => set(&mut raw.device_id, Cow::Borrowed(p.string()?)),
                "status" => {
                    let status = match p.string()? {
                        "completed" => Status::Completed,
                        "cancelled" => Status::Cancelled,
                        _ => return None,
                    };
                    set(&mut raw.status, status)
                }
                "label" => {
                    let label = match p.string()? {
                        "scam" => Label::Scam,
                        "legit" => Label::Legit,
                        _ => return None,
                    };
                    set(&mut raw.label, label)
                }
                "user" => {
                    let mut user = RawUser {
                        country: None,
                        created_at: None,
                        locale: None,
                        referral: None,
                    };
                    p.object(|p, key| {
                        let field = match key {
                            "country" => &mut user.country,
                            "created_at" => &mut user.created_at,
                            "locale" => &mut user.locale,
                            "referral" => &mut user.referral,
                            _ => return p.string().map(drop),
                        };
                        set(field, Cow::Borrowed(p.string()?))
                    })?;
                    set(&mut raw.user, user)
                }
                // Ignored by serde too, whatever the string.
                _ => p.string().map(drop),
            }
        })?;
        p.skip_space();
        (p.at == text.len()).then_some(raw)
    }

    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.at).copied()
    }

    /// JSON's whitespace, as serde_json skips it.
    fn skip_space(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\n' | b'\t' | b'\r')) {
            self.at += 1;
        }
    }

    /// Skips whitespace and then `byte`, if it is there.
    fn eat(&mut self, byte: u8) -> Option<()> {
        self.skip_space();
        (self.peek() == Some(byte)).then(|| self.at += 1)
    }

    /// A string without escapes or control characters, borrowed.
    fn string(&mut self) -> Option<&'a str> {
        self.skip_space();
        let bytes = self.text.as_bytes();
        if bytes.get(self.at) != Some(&b'"') {
            return None;
        }
        let start = self.at + 1;
        let end = crate::json::next_special(bytes, start);
        if bytes.get(end) != Some(&b'"') {
            return None;
        }
        self.at = end + 1;
        // Quotes are ASCII: both ends fall on character boundaries.
        self.text.get(start..end)
    }

    /// `0`, `123` or `123.45` with at most 15 digits in all, as serde_json computes it
    /// (the digits as an integer, then one division by an exact power of ten: exact and
    /// correctly rounded below 2^53, so the same `f64` whichever way it is parsed).
    fn number(&mut self) -> Option<f64> {
        self.skip_space();
        let bytes = self.text.as_bytes();
        let mut significand = 0_u64;
        let mut digits = 0_usize;
        let mut fraction = 0_usize;
        let mut point = false;
        while let Some(&b) = bytes.get(self.at) {
            match b {
                b'0'..=b'9' => {
                    // One leading zero only, and only before the point.
                    if digits == 1 && significand == 0 && !point {
                        return None;
                    }
                    significand = significand * 10 + u64::from(b - b'0');
                    digits += 1;
                    fraction += usize::from(point);
                }
                b'.' if !point && digits > 0 => point = true,
                _ => break,
            }
            if digits > 15 {
                return None;
            }
            self.at += 1;
        }
        // A digit after the point, and no exponent or other character glued on.
        if digits == 0 || (point && fraction == 0) {
            return None;
        }
        if !matches!(
            self.peek(),
            Some(b',' | b'}' | b' ' | b'\n' | b'\t' | b'\r')
        ) {
            return None;
        }
        let power = POW10.get(fraction)?;
        #[allow(clippy::cast_precision_loss)] // below 10^15: exact
        let value = significand as f64;
        Some(if point { value / power } else { value })
    }

    /// An object: calls `field` with each key, positioned at its value (after the colon).
    fn object(&mut self, mut field: impl FnMut(&mut Self, &'a str) -> Option<()>) -> Option<()> {
        self.eat(b'{')?;
        self.skip_space();
        if self.peek() == Some(b'}') {
            self.at += 1;
            return Some(());
        }
        loop {
            let key = self.string()?;
            self.eat(b':')?;
            field(self, key)?;
            self.skip_space();
            match self.peek() {
                Some(b',') => self.at += 1,
                Some(b'}') => {
                    self.at += 1;
                    return Some(());
                }
                _ => return None,
            }
        }
    }
}

/// Fills an empty field; `None` when it was filled already (a duplicate field).
fn set<T>(field: &mut Option<T>, value: T) -> Option<()> {
    field.is_none().then(|| *field = Some(value))
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

    /// Whatever the plain reader accepts, serde_json reads to the same event (or the same
    /// error): generated lines, hand-made edge cases, and every line with one byte replaced,
    /// deleted or doubled.
    #[test]
    #[allow(clippy::expect_used)] // a test fails loudly
    fn the_plain_reader_agrees_with_serde_json() {
        let serde = |line: &str| {
            serde_json::from_str::<RawEvent>(line)
                .map_err(|e| e.to_string())
                .and_then(RawEvent::into_event)
        };
        let mut generated = Vec::new();
        crate::gen::generate(&crate::gen::GenConfig::new(3, 40, 3), &mut generated)
            .expect("generated");
        let generated = String::from_utf8(generated).expect("UTF-8");
        let mut lines: Vec<String> = generated.lines().take(300).map(String::from).collect();
        let sample = lines.clone();
        let w = r#"{"kind":"withdrawal","ts":"2026-07-01T00:00:00Z","user_id":"u","id":"w","asset":"USDT","network":"TRON","amount_usd":AMOUNT,"destination":"T","user":{"country":"HK","created_at":"2025-01-01T00:00:00Z"}}"#;
        for amount in [
            "0",
            "1",
            "10",
            "0.5",
            "188.37",
            "2883.69",
            "0.1",
            "0.30",
            "123456789012345",
            "1234567890123456",
            "99999999999999.9",
            "0.000000000000001",
            "1e3",
            "1.",
            "01",
            "-0",
            "-1",
            "1.5e2",
            "00.5",
            ".5",
            "1.2.3",
            "9007199254740993",
            "3.14159265358979",
        ] {
            lines.push(w.replace("AMOUNT", amount));
        }
        lines.extend(
            [
                r#" { "kind" : "login" , "ts":"2026-07-01T00:00:00Z","user_id":"u","device_id":"d" } "#,
                r#"{"kind":"login","ts":"2026-07-01T00:00:00Z","user_id":"u","device_id":"d","x":"y"}"#,
                r#"{"kind":"login","kind":"login","ts":"2026-07-01T00:00:00Z","user_id":"u","device_id":"d"}"#,
                r#"{"kind":"login","ts":"2026-07-01T00:00:00Z","user_id":"u","device_id":null}"#,
                r#"{"kind":"login","ts":"2026-07-01T00:00:00Z","user_id":"u\u0041","device_id":"d"}"#,
                r#"{"kind":"login","ts":"2026-07-01T00:00:00Z","user_id":"u","device_id":"d"}x"#,
                r#"{"kind":"logout","ts":"2026-07-01T00:00:00Z","user_id":"u"}"#,
                r#"{"kind":"password_reset","ts":"2026-07-01T00:00:00Z","user_id":"é請"}"#,
                "{\"kind\":\"password_reset\",\"ts\":\"2026-07-01T00:00:00Z\",\"user_id\":\"a\tb\"}",
                r#"{}"#,
                r#"[]"#,
                r#"{"user":{}}"#,
                r#"{"user":{"country":"HK","country":"HK"}}"#,
                r#"{"status":"cancelled","label":"legit"}"#,
                r#"{"status":"done"}"#,
            ]
            .map(String::from),
        );
        for line in sample.iter().take(12) {
            for at in 0..line.len() {
                for with in ["", "\"", "\\", " ", "0", ".", ",", "}", "{", "e", "é"] {
                    let (Some(head), Some(tail)) = (line.get(..at), line.get(at..)) else {
                        continue;
                    };
                    lines.push(format!("{head}{with}{}", tail.get(1..).unwrap_or_default()));
                    lines.push(format!("{head}{with}{tail}"));
                }
            }
        }
        let mut plain = 0;
        for line in &lines {
            if let Some(raw) = Plain::parse(line) {
                plain += 1;
                assert_eq!(raw.into_event(), serde(line), "{line}");
            }
        }
        // The generated lines themselves all take the plain path.
        assert!(sample.iter().all(|l| Plain::parse(l).is_some()));
        assert!(plain > sample.len() + 10, "{plain}");
    }
}
