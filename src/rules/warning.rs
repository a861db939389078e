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
    ) -> Option<&str> {
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
                Segment::AmountUsd => {
                    let _ = write!(out, "{:.2}", w.amount_usd);
                }
                Segment::Destination => out.push_str(destination),
            }
        }
    }
}
