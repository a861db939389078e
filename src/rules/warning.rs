//! Warning texts: localized, with placeholders resolved at load time into segments.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::problem::{Problems, Source};
use crate::event::Withdrawal;

/// A warning as written in a manifest: `[warnings.<key>.<locale>]` with a title and a body.
#[derive(Deserialize)]
pub(crate) struct RawText {
    title: String,
    body: String,
}

pub(crate) type RawWarnings =
    BTreeMap<String, toml::Spanned<BTreeMap<String, toml::Spanned<RawText>>>>;

/// A warning with all its translations.
#[derive(Debug)]
pub(crate) struct Warning {
    /// `pack/key`, or `default` for the policy's (shared with rendered [`WarningText`]s).
    pub(crate) key: Arc<str>,
    texts: Vec<Text>,
}

#[derive(Debug)]
struct Text {
    locale: Arc<str>,
    title: Template,
    body: Template,
}

/// The warning chosen for a decision, in the user's language.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct WarningText {
    /// `pack/key` (or `default`, the policy's), shared with the rule set.
    pub key: Arc<str>,
    /// The locale of the text chosen, as the pack spells it (shared with the rule set).
    pub locale: Arc<str>,
    /// Title, placeholders filled in.
    pub title: String,
    /// Body, placeholders filled in.
    pub body: String,
}

impl Warning {
    /// Builds the warnings of one manifest; `prefix` is `pack/` (empty for the policy).
    pub(crate) fn load_all(
        raw: RawWarnings,
        prefix: &str,
        source: &Source<'_>,
        problems: &mut Problems,
    ) -> Vec<Warning> {
        let mut out = Vec::new();
        for (key, texts) in raw {
            let span = texts.span();
            let texts = texts.into_inner();
            if !texts.keys().any(|l| l.eq_ignore_ascii_case("en")) {
                problems.in_source(source, span, format!("warning \"{key}\" has no `en` text; every warning needs [warnings.{key}.en] with a title and a body"));
            }
            let texts = texts
                .into_iter()
                .map(|(locale, text)| {
                    let text = text.into_inner();
                    Text {
                        locale: locale.into(),
                        title: Template::parse(&text.title),
                        body: Template::parse(&text.body),
                    }
                })
                .collect();
            out.push(Warning {
                key: format!("{prefix}{key}").into(),
                texts,
            });
        }
        out
    }

    /// The warning in `locale` (see [`Warning::text_for`]), placeholders filled in.
    pub(crate) fn render(
        &self,
        locale: &str,
        w: &Withdrawal,
        destination: &str,
    ) -> Option<WarningText> {
        let text = self.text_for(locale)?;
        Some(WarningText {
            key: self.key.clone(),
            locale: text.locale.clone(),
            title: text.title.render(w, destination),
            body: text.body.render(w, destination),
        })
    }

    /// [`Warning::render`] into reused buffers (cleared first): the chosen text's locale, or
    /// `None` (buffers left empty) when there is no text for it.
    pub(crate) fn render_into(
        &self,
        locale: &str,
        w: &Withdrawal,
        destination: &str,
        title: &mut String,
        body: &mut String,
    ) -> Option<&Arc<str>> {
        title.clear();
        body.clear();
        let text = self.text_for(locale)?;
        text.title.render_into(w, destination, title);
        text.body.render_into(w, destination, body);
        Some(&text.locale)
    }

    /// The text for `locale`: the exact tag, then its language, then `en` (case-insensitively).
    fn text_for(&self, locale: &str) -> Option<&Text> {
        let language = locale.split(['-', '_']).next().unwrap_or(locale);
        let find = |tag: &str| {
            self.texts
                .iter()
                .find(|t| t.locale.eq_ignore_ascii_case(tag))
        };
        find(locale)
            .or_else(|| find(language))
            .or_else(|| find("en"))
    }
}

/// A text split at its placeholders.
#[derive(Debug)]
struct Template(Vec<Segment>);

#[derive(Debug)]
enum Segment {
    Literal(String),
    Asset,
    AmountUsd,
    Destination,
}

impl Template {
    fn parse(text: &str) -> Template {
        let mut segments = Vec::new();
        let mut literal = String::new();
        let mut rest = text;
        while let Some(open) = rest.find('{') {
            literal.push_str(rest.get(..open).unwrap_or_default());
            let after = rest.get(open..).unwrap_or_default();
            let placeholder = [
                ("{asset}", Segment::Asset),
                ("{amount_usd}", Segment::AmountUsd),
                ("{destination}", Segment::Destination),
            ]
            .into_iter()
            .find(|(name, _)| after.starts_with(name));
            match placeholder {
                Some((name, segment)) => {
                    if !literal.is_empty() {
                        segments.push(Segment::Literal(std::mem::take(&mut literal)));
                    }
                    segments.push(segment);
                    rest = after.get(name.len()..).unwrap_or_default();
                }
                None => {
                    literal.push('{');
                    rest = after.get(1..).unwrap_or_default();
                }
            }
        }
        literal.push_str(rest);
        if !literal.is_empty() {
            segments.push(Segment::Literal(literal));
        }
        Template(segments)
    }

    fn render(&self, w: &Withdrawal, destination: &str) -> String {
        // Sized once: a body of a few hundred bytes otherwise grows through several reallocations.
        let size = self
            .0
            .iter()
            .map(|segment| match segment {
                Segment::Literal(s) => s.len(),
                Segment::Asset => w.asset.len(),
                Segment::AmountUsd => 24,
                Segment::Destination => destination.len(),
            })
            .sum();
        let mut out = String::with_capacity(size);
        self.render_into(w, destination, &mut out);
        out
    }

    /// Appends the text, placeholders filled in, to `out`.
    fn render_into(&self, w: &Withdrawal, destination: &str, out: &mut String) {
        for segment in &self.0 {
            match segment {
                Segment::Literal(s) => out.push_str(s),
                Segment::Asset => out.push_str(&w.asset),
                Segment::AmountUsd => push_two_decimals(out, w.amount_usd),
                Segment::Destination => out.push_str(destination),
            }
        }
    }
}

/// Appends `format!("{:.2}", x)`: for a positive finite `x` of 2^-68 or more (every amount a
/// withdrawal carries) computed from its exact binary value in integers (the standard library's
/// exact float formatting was ~3% of a replay), else by the standard library.
fn push_two_decimals(out: &mut String, x: f64) {
    match hundredths(x) {
        Some(h) => {
            // Digits by hand: `write!` of two integers cost half of what it saved.
            let (mut units, cents) = (h / 100, (h % 100) as u8);
            let mut digits = [0_u8; 40];
            let mut start = digits.len();
            for slot in digits.iter_mut().rev() {
                *slot = b'0' + (units % 10) as u8;
                units /= 10;
                start -= 1;
                if units == 0 {
                    break;
                }
            }
            let text = digits.get(start..).unwrap_or_default();
            out.push_str(std::str::from_utf8(text).unwrap_or_default());
            out.push('.');
            out.push(char::from(b'0' + cents / 10));
            out.push(char::from(b'0' + cents % 10));
        }
        None => {
            let _ = write!(out, "{x:.2}");
        }
    }
}

/// `x * 100` rounded to the nearest integer, ties to even, as `{:.2}` rounds `x`'s exact
/// value; `None` for a negative, non-finite, tiny (below 2^-68) or integral (2^52 or more) `x`.
fn hundredths(x: f64) -> Option<u128> {
    if !(x.is_finite() && x.is_sign_positive()) {
        return None;
    }
    // x = m * 2^e exactly.
    let bits = x.to_bits();
    let exponent = ((bits >> 52) & 0x7ff) as i32;
    let fraction = bits & ((1_u64 << 52) - 1);
    let (m, e) = if exponent == 0 {
        (fraction, -1074)
    } else {
        (fraction | 1 << 52, exponent - 1075)
    };
    if !(-120..0).contains(&e) {
        return None;
    }
    // x * 100 = (m * 100) / 2^shift: the quotient, and the remainder against a half.
    let scaled = u128::from(m) * 100;
    let shift = e.unsigned_abs();
    let q = scaled >> shift;
    let r = scaled & ((1_u128 << shift) - 1);
    let half = 1_u128 << (shift - 1);
    Some(if r > half || (r == half && q & 1 == 1) {
        q + 1
    } else {
        q
    })
}

#[cfg(test)]
mod two_decimals_tests {
    use super::*;

    fn fast(x: f64) -> String {
        let mut out = String::new();
        push_two_decimals(&mut out, x);
        out
    }

    /// The same text as `{:.2}` for every kind of value: ties (exact halves of a cent, which
    /// round to even), cents, random bit patterns, the extremes and the values left to it.
    #[test]
    fn amounts_print_as_the_standard_library_prints_them() {
        let edges = [
            0.0,
            -0.0,
            0.125,
            0.375,
            0.625,
            0.875,
            1.125,
            2.5,
            0.005,
            0.015,
            0.025,
            173.81,
            0.1 + 0.2,
            1e15 + 0.125,
            4_503_599_627_370_495.5,
            4_503_599_627_370_496.0,
            f64::MAX,
            f64::MIN_POSITIVE,
            5e-324,
            1e-20,
            -5.255,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::NAN,
        ];
        for x in edges {
            assert_eq!(fast(x), format!("{x:.2}"), "{x:e}");
        }
        let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
        for i in 0..400_000_u64 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let x = match i % 4 {
                0 => f64::from_bits(seed),
                1 => (seed % 10_000_000_000) as f64 / 1000.0,
                2 => (seed % 100_000_000) as f64 / 8.0,
                _ => f64::from_bits((seed >> 12) | 0x3ff0_0000_0000_0000) * 1e3,
            };
            assert_eq!(fast(x), format!("{x:.2}"), "{x:e}");
        }
    }
}
