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

/// `; did you mean "x"?` naming the known id closest to `word` (by edit distance, and only
/// when it is close: a typo, not another word), or `""` when none is.
pub fn did_you_mean<'a>(word: &str, known: impl IntoIterator<Item = &'a str>) -> String {
    let limit = (word.chars().count() / 3).max(1);
    known
        .into_iter()
        .map(|k| (edit_distance(&word.to_lowercase(), &k.to_lowercase()), k))
        .filter(|&(d, _)| d <= limit)
        .min_by_key(|&(d, _)| d)
        .map(|(_, k)| format!("; did you mean {k:?}?"))
        .unwrap_or_default()
}

/// Levenshtein distance between `a` and `b` (in characters).
pub fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diag = row[0];
        row[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let next = (diag + usize::from(ca != cb)).min(row[j] + 1).min(row[j + 1] + 1);
            diag = row[j + 1];
            row[j + 1] = next;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_closest_known_id_is_suggested_only_when_close() {
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(did_you_mean("googel-drive", ["dropbox", "google-drive"]), "; did you mean \"google-drive\"?");
        assert_eq!(did_you_mean("Finance", ["finance", "legal"]), "; did you mean \"finance\"?");
        assert_eq!(did_you_mean("zzz", ["finance", "legal"]), "");
    }

    #[test]
    fn lines_are_one_based() {
        assert_eq!(line_of("a\nb\nc", 0), 1);
        assert_eq!(line_of("a\nb\nc", 2), 2);
        assert_eq!(line_of("a\nb\nc", 99), 3);
        let d = Diagnostic::at(Path::new("x.toml"), "a\nb", Some(2), "bad");
        assert_eq!(d.to_string(), "x.toml:2: bad");
    }
}
