//! The one error type of the library.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::rules::Problem;

/// An error from riskgate. [`Error::kind`] says which.
#[derive(Debug)]
pub struct Error {
    kind: ErrorKind,
}

/// What went wrong.
#[derive(Debug)]
#[non_exhaustive]
pub enum ErrorKind {
    /// A rule set could not be loaded; every problem found, each naming `file:line:column`.
    /// Nothing of it was loaded (a running scorer keeps its current rule set).
    Load(Vec<Problem>),
    /// A file or directory could not be read or written.
    Io {
        /// Which.
        path: PathBuf,
        /// What the system said.
        message: String,
    },
    /// An input line is not a valid event.
    InvalidEvent {
        /// 1-based line number.
        line: usize,
        /// What is wrong with it.
        message: String,
    },
    /// An argument given to a tool (e.g. `--param` of `riskgate replay`) is not valid.
    InvalidArgument {
        /// Which argument, as given.
        argument: String,
        /// What is wrong with it.
        message: String,
    },
    /// A state snapshot or decision log is corrupt, truncated or of an unknown version.
    Corrupt {
        /// Which file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
}

impl Error {
    /// What went wrong.
    pub fn kind(&self) -> &ErrorKind {
        &self.kind
    }

    /// The load problems, when this is a load error.
    pub fn problems(&self) -> &[Problem] {
        match &self.kind {
            ErrorKind::Load(problems) => problems,
            _ => &[],
        }
    }

    pub(crate) fn load(problems: Vec<Problem>) -> Error {
        Error {
            kind: ErrorKind::Load(problems),
        }
    }

    pub(crate) fn io(path: &Path, error: impl fmt::Display) -> Error {
        Error {
            kind: ErrorKind::Io {
                path: path.to_path_buf(),
                message: error.to_string(),
            },
        }
    }

    pub(crate) fn invalid_event(line: usize, message: String) -> Error {
        Error {
            kind: ErrorKind::InvalidEvent { line, message },
        }
    }

    pub(crate) fn invalid_argument(argument: &str, message: impl Into<String>) -> Error {
        Error {
            kind: ErrorKind::InvalidArgument {
                argument: argument.to_string(),
                message: message.into(),
            },
        }
    }

    #[allow(dead_code)]
    pub(crate) fn corrupt(path: &Path, message: impl Into<String>) -> Error {
        Error {
            kind: ErrorKind::Corrupt {
                path: path.to_path_buf(),
                message: message.into(),
            },
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            ErrorKind::Load(problems) => {
                write!(f, "the rule set has {} problem(s):", problems.len())?;
                for p in problems {
                    write!(f, "\n{p}")?;
                }
                Ok(())
            }
            ErrorKind::Io { path, message } => write!(f, "{}: {message}", path.display()),
            ErrorKind::InvalidEvent { line, message } => write!(f, "line {line}: {message}"),
            ErrorKind::Corrupt { path, message } => write!(f, "{}: {message}", path.display()),
            ErrorKind::InvalidArgument { argument, message } => write!(f, "{argument}: {message}"),
        }
    }
}

impl std::error::Error for Error {}
