//! Diagnostics: the problems found in a config file, each with its position and a hint.

use std::collections::HashSet;
use std::fmt;

/// How serious a [`Diagnostic`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// The file cannot be loaded until this is fixed.
    Error,
    /// The file loads, but something deserves the operator's attention.
    Warning,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
        })
    }
}

/// One problem in a config file, at a 1-based line and column.
///
/// Displayed as `FILE:LINE:COL: error: MESSAGE`, followed by `  hint: HINT` on a
/// second line when there is a hint. A diagnostic about the file as a whole (it
/// cannot be read) has line and column 0 and is displayed as `FILE: error: MESSAGE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// The file name, as given to the loader.
    pub file: String,
    /// 1-based line, or 0 for the file as a whole.
    pub line: usize,
    /// 1-based column (in characters), or 0 for the file as a whole.
    pub col: usize,
    /// Error or warning.
    pub severity: Severity,
    /// What is wrong, lower-case and specific.
    pub message: String,
    /// How to fix it, when we can tell.
    pub hint: Option<String>,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}: {}", self.file, self.severity, self.message)?;
        } else {
            write!(
                f,
                "{}:{}:{}: {}: {}",
                self.file, self.line, self.col, self.severity, self.message
            )?;
        }
        if let Some(hint) = &self.hint {
            write!(f, "\n  hint: {hint}")?;
        }
        Ok(())
    }
}

/// Every error found in a config file; nothing is loaded when there is one.
///
/// Displayed as every diagnostic, one after the other, then the count (`3 errors`).
#[derive(Debug, Clone, thiserror::Error)]
#[error("{}", render(.diagnostics))]
pub struct ConfigError {
    /// The errors, in file order.
    pub diagnostics: Vec<Diagnostic>,
}

fn render(diagnostics: &[Diagnostic]) -> String {
    let mut out = String::new();
    for diagnostic in diagnostics {
        out.push_str(&diagnostic.to_string());
        out.push('\n');
    }
    let errors = diagnostics
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .count();
    out.push_str(&format!(
        "{errors} error{}",
        if errors == 1 { "" } else { "s" }
    ));
    out
}

/// A position in the config file: 1-based line and column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Pos {
    /// 1-based line.
    pub line: usize,
    /// 1-based column, in characters.
    pub col: usize,
}

/// Collects diagnostics while a file is read and checked.
///
/// It keeps the output free of cascades: once a value has been reported as
/// unusable (wrong type, missing variable, bad duration, ...), its position is
/// "poisoned" and any later error at that position is dropped, because it would
/// only be a consequence of the first one.
#[derive(Debug)]
pub(crate) struct Report {
    file: String,
    diagnostics: Vec<Diagnostic>,
    poisoned: HashSet<Pos>,
    /// (mapping position, key) for keys an unknown key was probably meant to be.
    misspelled: HashSet<(Pos, String)>,
}

impl Report {
    /// An empty report for `file`.
    pub(crate) fn new(file: &str) -> Self {
        Report {
            file: file.to_string(),
            diagnostics: Vec::new(),
            poisoned: HashSet::new(),
            misspelled: HashSet::new(),
        }
    }

    /// The name of the file being loaded, as given.
    pub(crate) fn file(&self) -> &str {
        &self.file
    }

    /// Reports an unusable value at `pos`, unless something there was already reported.
    pub(crate) fn error(&mut self, pos: Pos, message: impl Into<String>, hint: Option<String>) {
        if self.poisoned.insert(pos) {
            self.push(pos, Severity::Error, message.into(), hint);
        }
    }

    /// Reports a problem with a mapping key at `pos` (unknown key, key in the wrong
    /// place). The key's value is skipped rather than read, so this does not poison
    /// the position: the mapping that starts there can still have its own problems.
    pub(crate) fn key_error(&mut self, pos: Pos, message: impl Into<String>, hint: Option<String>) {
        self.push(pos, Severity::Error, message.into(), hint);
    }

    /// Reports a warning at `pos`.
    pub(crate) fn warning(&mut self, pos: Pos, message: impl Into<String>, hint: Option<String>) {
        self.push(pos, Severity::Warning, message.into(), hint);
    }

    /// Remembers that an unknown key in the mapping at `pos` was probably meant to
    /// be `key`, so that `key` is not also reported as missing.
    pub(crate) fn note_misspelling(&mut self, pos: Pos, key: &str) {
        self.misspelled.insert((pos, key.to_string()));
    }

    /// Whether an unknown key in the mapping at `pos` was reported as a misspelling of `key`.
    pub(crate) fn is_misspelled(&self, pos: Pos, key: &str) -> bool {
        self.misspelled.contains(&(pos, key.to_string()))
    }

    /// Whether an error was already reported for the value at `pos`.
    pub(crate) fn is_poisoned(&self, pos: Pos) -> bool {
        self.poisoned.contains(&pos)
    }

    /// Splits the report into errors and warnings, each in file order.
    pub(crate) fn finish(self) -> (Vec<Diagnostic>, Vec<Diagnostic>) {
        let mut diagnostics = self.diagnostics;
        // A stable sort keeps several problems at one position in the order found.
        diagnostics.sort_by_key(|d| (d.line, d.col));
        diagnostics
            .into_iter()
            .partition(|d| d.severity == Severity::Error)
    }

    fn push(&mut self, pos: Pos, severity: Severity, message: String, hint: Option<String>) {
        let diagnostic = Diagnostic {
            file: self.file.clone(),
            line: pos.line,
            col: pos.col,
            severity,
            message,
            hint,
        };
        if !self.diagnostics.contains(&diagnostic) {
            self.diagnostics.push(diagnostic);
        }
    }
}

/// Levenshtein distance between two strings, in characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    // `row[j]` is the distance between the prefix of `a` seen so far and `b[..j]`.
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitution = diagonal + usize::from(ca != *cb);
            diagonal = row[j + 1];
            row[j + 1] = substitution.min(row[j] + 1).min(diagonal + 1);
        }
    }
    row[b.len()]
}

/// The candidate closest to `word`, if one is close enough to be a likely typo.
///
/// Comparison ignores case, so `pagesize` finds `pageSize`.
pub(crate) fn nearest<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let word_lower = word.to_lowercase();
    let len = word.chars().count();
    // Short words tolerate one edit, longer ones about a third of their length.
    let limit = if len <= 3 { 1 } else { (len / 3).max(2) };
    candidates
        .into_iter()
        .map(|c| (edit_distance(&word_lower, &c.to_lowercase()), c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// `did you mean "X"?` for the candidate nearest to `word`, if any.
pub(crate) fn did_you_mean<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<String> {
    nearest(word, candidates).map(|c| format!("did you mean {c:?}?"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edit_distances() {
        let cases = [
            ("", "", 0),
            ("ttl", "ttl", 0),
            ("tll", "ttl", 1),
            ("lisen", "listen", 1),
            ("kitten", "sitting", 3),
            ("", "abc", 3),
            ("hedaer", "header", 2),
        ];
        for (a, b, expected) in cases {
            assert_eq!(edit_distance(a, b), expected, "{a} / {b}");
            assert_eq!(edit_distance(b, a), expected, "{b} / {a}");
        }
    }

    #[test]
    fn nearest_candidates() {
        let keys = [
            "name",
            "match",
            "ttl",
            "stale_while_revalidate",
            "key",
            "tags",
        ];
        assert_eq!(nearest("tll", keys), Some("ttl"));
        assert_eq!(nearest("TTL", keys), Some("ttl"));
        assert_eq!(
            nearest("stale_while_revalidat", keys),
            Some("stale_while_revalidate")
        );
        assert_eq!(nearest("mach", keys), Some("match"));
        assert_eq!(nearest("completely_different", keys), None);
        assert_eq!(nearest("x", keys), None);
    }

    #[test]
    fn display() {
        let mut d = Diagnostic {
            file: "t.yaml".into(),
            line: 3,
            col: 5,
            severity: Severity::Error,
            message: "unknown key \"tll\" in route".into(),
            hint: Some("did you mean \"ttl\"?".into()),
        };
        assert_eq!(
            d.to_string(),
            "t.yaml:3:5: error: unknown key \"tll\" in route\n  hint: did you mean \"ttl\"?"
        );
        d.hint = None;
        d.line = 0;
        d.col = 0;
        assert_eq!(d.to_string(), "t.yaml: error: unknown key \"tll\" in route");
        let e = ConfigError {
            diagnostics: vec![d.clone(), d],
        };
        assert!(e.to_string().ends_with("\n2 errors"));
        let e = ConfigError {
            diagnostics: vec![],
        };
        assert_eq!(e.to_string(), "0 errors");
    }
}
