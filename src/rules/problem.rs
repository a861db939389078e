//! Load problems: every one names `file:line:column`.

use std::ops::Range;

pub use crate::problem::Problem;

/// A file being loaded, to turn byte offsets into lines and columns.
pub(crate) struct Source<'a> {
    pub(crate) name: String,
    pub(crate) text: &'a str,
}

impl Source<'_> {
    /// 1-based line and column of a byte offset.
    pub(crate) fn position(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let before = self.text.get(..offset).unwrap_or(self.text);
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let column = before.get(line_start..).map_or(0, |s| s.chars().count()) + 1;
        (line, column)
    }
}

/// Collects problems as loading goes on, so that all of them are reported at once.
#[derive(Default)]
pub(crate) struct Problems(pub(crate) Vec<Problem>);

impl Problems {
    pub(crate) fn at(
        &mut self,
        file: &str,
        line: usize,
        column: usize,
        message: impl Into<String>,
    ) {
        self.0.push(Problem {
            file: file.to_string(),
            line,
            column,
            message: message.into(),
        });
    }

    pub(crate) fn in_source(
        &mut self,
        source: &Source<'_>,
        span: Range<usize>,
        message: impl Into<String>,
    ) {
        let (line, column) = source.position(span.start);
        self.at(&source.name, line, column, message);
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }
}
