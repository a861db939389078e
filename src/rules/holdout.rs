//! The holdout group (contract section 4 item 6): `[holdout]` in `policy.toml`.
//!
//! A user is in the group when `h / 2^64 < share`, where `h` is the first 8 bytes (big-endian)
//! of `SHA-256(salt + ":" + user_id)` and the division is done in IEEE double precision. A
//! decision is held out when its user is in the group and its final tier is one of `tiers`
//! (`notice` and/or `warn`; never `cool_off`): it keeps tier, score and hits, and shows no
//! warning, so that what warnings achieve can be measured against the users who saw none.

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};

use super::problem::{Problems, Source};
use crate::decision::Tier;

/// The largest `share` a policy may hold out.
pub const MAX_HOLDOUT_SHARE: f64 = 0.5;

/// 2^64 as a double.
const TWO_POW_64: f64 = 18_446_744_073_709_551_616.0;

/// `[holdout]` as written: every key with its span, checked by hand so that each breach is
/// reported with its own position (and unknown keys are refused, a typo would else go unseen).
pub(crate) type RawHoldout = toml::Spanned<Shape>;

/// What `holdout` holds: a table (its keys with their spans), or something else (named), so
/// that `holdout = 1` is reported as a holdout problem rather than as a bare type error.
pub(crate) enum Shape {
    Table(BTreeMap<String, toml::Spanned<toml::Value>>),
    Other(&'static str),
}

impl<'de> serde::Deserialize<'de> for Shape {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Shape, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Shape;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a [holdout] table")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Shape, A::Error> {
                let mut table = BTreeMap::new();
                while let Some((k, v)) = map.next_entry::<String, toml::Spanned<toml::Value>>()? {
                    table.insert(k, v);
                }
                Ok(Shape::Table(table))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Shape, A::Error> {
                while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
                Ok(Shape::Other("an array"))
            }
            fn visit_bool<E>(self, _: bool) -> Result<Shape, E> {
                Ok(Shape::Other("a boolean"))
            }
            fn visit_i64<E>(self, _: i64) -> Result<Shape, E> {
                Ok(Shape::Other("a number"))
            }
            fn visit_u64<E>(self, _: u64) -> Result<Shape, E> {
                Ok(Shape::Other("a number"))
            }
            fn visit_f64<E>(self, _: f64) -> Result<Shape, E> {
                Ok(Shape::Other("a number"))
            }
            fn visit_str<E>(self, _: &str) -> Result<Shape, E> {
                Ok(Shape::Other("a string"))
            }
        }
        d.deserialize_any(V)
    }
}

/// A loaded `[holdout]` table.
#[derive(Clone)]
pub struct Holdout {
    share: f64,
    salt: String,
    notice: bool,
    warn: bool,
    /// SHA-256 already fed with `salt + ":"`: one clone and the user id per decision.
    prefix: Sha256,
}

impl std::fmt::Debug for Holdout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Holdout")
            .field("share", &self.share)
            .field("salt", &self.salt)
            .field("tiers", &self.tiers())
            .finish()
    }
}

impl PartialEq for Holdout {
    fn eq(&self, other: &Holdout) -> bool {
        self.share.to_bits() == other.share.to_bits()
            && self.salt == other.salt
            && self.notice == other.notice
            && self.warn == other.warn
    }
}

impl Holdout {
    /// A holdout of `share` (0 to 0.5) of users drawn by `salt`, at `tiers` (`notice` and/or
    /// `warn`); `None` when any of these is out of bounds.
    pub fn new(share: f64, salt: &str, tiers: &[Tier]) -> Option<Holdout> {
        let share_ok = (0.0..=MAX_HOLDOUT_SHARE).contains(&share);
        let tiers_ok = tiers.iter().all(|t| matches!(t, Tier::Notice | Tier::Warn));
        (share_ok && tiers_ok && !salt.is_empty()).then(|| Holdout::build(share, salt, tiers))
    }

    fn build(share: f64, salt: &str, tiers: &[Tier]) -> Holdout {
        let mut prefix = Sha256::new();
        prefix.update(salt.as_bytes());
        prefix.update(b":");
        Holdout {
            share,
            salt: salt.to_string(),
            notice: tiers.contains(&Tier::Notice),
            warn: tiers.contains(&Tier::Warn),
            prefix,
        }
    }

    /// The share of users in the group.
    pub fn share(&self) -> f64 {
        self.share
    }

    /// The salt that draws the group.
    pub fn salt(&self) -> &str {
        &self.salt
    }

    /// The tiers at which the group's warnings are withheld, lowest first.
    pub fn tiers(&self) -> Vec<Tier> {
        [(Tier::Notice, self.notice), (Tier::Warn, self.warn)]
            .into_iter()
            .filter_map(|(t, on)| on.then_some(t))
            .collect()
    }

    /// Whether the warning is withheld at `tier` for users of the group (never at `allow`,
    /// which shows none, nor at `cool_off`).
    pub fn lists(&self, tier: Tier) -> bool {
        match tier {
            Tier::Notice => self.notice,
            Tier::Warn => self.warn,
            Tier::Allow | Tier::CoolOff => false,
        }
    }

    /// `h`: the first 8 bytes, big-endian, of `SHA-256(salt + ":" + user_id)`.
    pub fn hash(salt: &str, user_id: &str) -> u64 {
        let mut hasher = Sha256::new();
        hasher.update(salt.as_bytes());
        hasher.update(b":");
        hasher.update(user_id.as_bytes());
        first_u64(&hasher.finalize())
    }

    /// Whether `user_id` is in the group: `h / 2^64 < share` in double precision.
    pub fn in_group(&self, user_id: &str) -> bool {
        if self.share <= 0.0 {
            return false;
        }
        let mut hasher = self.prefix.clone();
        hasher.update(user_id.as_bytes());
        let h = first_u64(&hasher.finalize());
        (h as f64) / TWO_POW_64 < self.share
    }

    /// Whether a decision of `user_id` whose final tier is `tier` is held out.
    pub fn holds_out(&self, tier: Tier, user_id: &str) -> bool {
        self.lists(tier) && self.in_group(user_id)
    }

    /// Checks a `[holdout]` table; every breach goes to `problems`, naming `holdout`.
    pub(crate) fn load(
        raw: RawHoldout,
        source: &Source<'_>,
        problems: &mut Problems,
    ) -> Option<Holdout> {
        let table_span = raw.span();
        let table = match raw.into_inner() {
            Shape::Table(table) => table,
            Shape::Other(what) => {
                problems.in_source(
                    source,
                    table_span,
                    format!("holdout must be a table ([holdout] with share and salt), got {what}"),
                );
                return None;
            }
        };
        let before = problems.len();
        let mut share = None;
        let mut salt = None;
        let mut tiers = vec![Tier::Notice];
        let missing_share = !table.contains_key("share");
        let missing_salt = !table.contains_key("salt");
        for (key, value) in table {
            let span = value.span();
            let value = value.into_inner();
            match key.as_str() {
                "share" => {
                    let number = match value {
                        toml::Value::Float(x) => Some(x),
                        toml::Value::Integer(n) => Some(n as f64),
                        _ => None,
                    };
                    match number {
                        Some(x) if (0.0..=MAX_HOLDOUT_SHARE).contains(&x) => share = Some(x),
                        _ => problems.in_source(
                            source,
                            span,
                            format!(
                                "holdout.share must be a number with 0 <= share <= 0.5, got {}",
                                describe(&value)
                            ),
                        ),
                    }
                }
                "salt" => match value {
                    toml::Value::String(s) if !s.is_empty() => salt = Some(s),
                    toml::Value::String(_) => problems.in_source(
                        source,
                        span,
                        "holdout.salt must not be empty (a new salt draws a new group)",
                    ),
                    other => problems.in_source(
                        source,
                        span,
                        format!(
                            "holdout.salt must be a non-empty string, got {}",
                            describe(&other)
                        ),
                    ),
                },
                "tiers" => match value {
                    toml::Value::Array(items) => {
                        tiers.clear();
                        for item in &items {
                            match item.as_str() {
                                Some("notice") => tiers.push(Tier::Notice),
                                Some("warn") => tiers.push(Tier::Warn),
                                Some("cool_off") => problems.in_source(
                                    source,
                                    span.clone(),
                                    "holdout.tiers may not hold \"cool_off\": a cooling-off is never withheld",
                                ),
                                _ => problems.in_source(
                                    source,
                                    span.clone(),
                                    format!("holdout.tiers may hold only \"notice\" and \"warn\", got {}", describe(item)),
                                ),
                            }
                        }
                    }
                    other => problems.in_source(
                        source,
                        span,
                        format!(
                            "holdout.tiers must be an array of \"notice\" and/or \"warn\", got {}",
                            describe(&other)
                        ),
                    ),
                },
                other => problems.in_source(
                    source,
                    span,
                    format!("holdout: unknown key \"{other}\" (expected share, salt, tiers)"),
                ),
            }
        }
        if missing_share {
            problems.in_source(
                source,
                table_span.clone(),
                "holdout.share is required: a number with 0 <= share <= 0.5",
            );
        }
        if missing_salt {
            problems.in_source(
                source,
                table_span,
                "holdout.salt is required: a non-empty string (a new salt draws a new group)",
            );
        }
        if problems.len() > before {
            return None;
        }
        Some(Holdout::build(share?, &salt?, &tiers))
    }
}

/// A TOML value for a message: scalars as written, others by kind.
fn describe(value: &toml::Value) -> String {
    match value {
        toml::Value::String(s) => format!("{s:?}"),
        toml::Value::Integer(n) => n.to_string(),
        toml::Value::Float(x) => x.to_string(),
        toml::Value::Boolean(b) => b.to_string(),
        toml::Value::Datetime(_) => "a date".to_string(),
        toml::Value::Array(_) => "an array".to_string(),
        toml::Value::Table(_) => "a table".to_string(),
    }
}

fn first_u64(digest: &[u8]) -> u64 {
    let mut bytes = [0_u8; 8];
    for (b, d) in bytes.iter_mut().zip(digest) {
        *b = *d;
    }
    u64::from_be_bytes(bytes)
}

/// Which warning a held-out decision would have shown (the decision's `withheld` field, present
/// only when `holdout` is true): what the warning effect is measured per.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct WithheldWarning {
    /// `pack/key` (or `default`), shared with the rule set.
    pub key: std::sync::Arc<str>,
    /// The locale of the text that would have been chosen (shared with the rule set).
    pub locale: std::sync::Arc<str>,
}
