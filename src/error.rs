//! The one error type of the library.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::problem::Problem;

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
    /// The shared state store (see [`crate::Store`]) cannot be reached or failed to answer.
    /// Nothing was decided or recorded on the strength of it: the caller stops (the CLI exits
    /// non-zero) or answers "unavailable" (the service, 503), never decides on empty state.
    Store {
        /// What failed (never the store's password).
        message: String,
    },
    /// The withdrawal id was already recorded (by this process or another one sharing the
    /// store): the event is refused and changes nothing.
    Duplicate {
        /// The withdrawal id.
        id: String,
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

    pub(crate) fn store(message: impl Into<String>) -> Error {
        Error {
            kind: ErrorKind::Store {
                message: message.into(),
            },
        }
    }

    pub(crate) fn duplicate(id: &str) -> Error {
        Error {
            kind: ErrorKind::Duplicate { id: id.to_owned() },
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
            ErrorKind::Store { message } => write!(f, "state store: {message}"),
            ErrorKind::Duplicate { id } => {
                write!(
                    f,
                    "withdrawal id \"{id}\" was seen before; ids must be unique"
                )
            }
        }
    }
}

impl std::error::Error for Error {}
