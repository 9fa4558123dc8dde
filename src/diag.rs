//! Diagnostics of configuration and catalog files: what is wrong, in which file, on which line.

use std::fmt;
use std::path::{Path, PathBuf};

/// One problem found while loading or checking configuration or rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// The file.
    pub file: PathBuf,
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// What is wrong.
    pub message: String,
}

impl Diagnostic {
    /// A diagnostic at the byte offset `at` of `text` (the contents of `file`).
    pub fn at(file: &Path, text: &str, at: Option<usize>, message: impl Into<String>) -> Self {
        Diagnostic { file: file.to_path_buf(), line: at.map(|o| line_of(text, o)), message: message.into() }
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(l) => write!(f, "{}:{}: {}", self.file.display(), l, self.message),
            None => write!(f, "{}: {}", self.file.display(), self.message),
        }
    }
}

/// The 1-based line of byte offset `at` in `text`.
pub fn line_of(text: &str, at: usize) -> usize {
    text.as_bytes()[..at.min(text.len())].iter().filter(|&&b| b == b'\n').count() + 1
}

/// Turns a TOML parse error into a diagnostic with its line.
pub fn from_toml(file: &Path, text: &str, e: &toml::de::Error) -> Diagnostic {
    let msg = e.message().trim().to_string();
    Diagnostic::at(file, text, e.span().map(|s| s.start), msg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_one_based() {
        assert_eq!(line_of("a\nb\nc", 0), 1);
        assert_eq!(line_of("a\nb\nc", 2), 2);
        assert_eq!(line_of("a\nb\nc", 99), 3);
        let d = Diagnostic::at(Path::new("x.toml"), "a\nb", Some(2), "bad");
        assert_eq!(d.to_string(), "x.toml:2: bad");
    }
}
