//! Why reading or writing an archive failed, with the entry and byte offset concerned.

use std::fmt;

/// A tar error: what went wrong, where in the stream, and in which entry.
#[derive(Debug)]
pub struct Error {
    /// Byte offset in the archive of the header (or data) being processed.
    pub offset: u64,
    /// The entry concerned, as far as it is known (lossy UTF-8).
    pub entry: Option<String>,
    pub kind: ErrorKind,
}

/// The kinds of [`Error`].
#[non_exhaustive]
#[derive(Debug)]
pub enum ErrorKind {
    /// The underlying stream failed.
    Io(std::io::Error),
    /// The stream ended in the middle of an entry, or without the end-of-archive marker.
    Truncated(String),
    /// The bytes are not a valid tar archive.
    Malformed(String),
    /// Valid, but something this reader does not handle (multi-volume archives, ...).
    Unsupported(String),
    /// A limit on a header's size was exceeded (see [`crate::Limits`]).
    TooLarge(String),
    /// The writer was given an entry it cannot represent, or data of the wrong length.
    Invalid(String),
}

impl Error {
    pub(crate) fn new(offset: u64, entry: Option<&[u8]>, kind: ErrorKind) -> Error {
        Error {
            offset,
            entry: entry.map(|e| String::from_utf8_lossy(e).into_owned()),
            kind,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.entry {
            Some(e) => write!(f, "entry {e:?} (at byte {}): ", self.offset)?,
            None => write!(f, "at byte {}: ", self.offset)?,
        }
        match &self.kind {
            ErrorKind::Io(e) => write!(f, "{e}"),
            ErrorKind::Truncated(d) => write!(f, "the archive is truncated: {d}"),
            ErrorKind::Malformed(d) => write!(f, "not a valid tar archive: {d}"),
            ErrorKind::Unsupported(d) => write!(f, "unsupported: {d}"),
            ErrorKind::TooLarge(d) => write!(f, "too large: {d}"),
            ErrorKind::Invalid(d) => write!(f, "{d}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.kind {
            ErrorKind::Io(e) => Some(e),
            _ => None,
        }
    }
}
