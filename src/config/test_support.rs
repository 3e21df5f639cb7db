//! What the config test modules share: comparing a load's diagnostics with the expected list.

use super::{ConfigError, Diagnostic, Loaded};

/// `LINE:COL: MESSAGE`, then ` | hint: HINT` if there is one and `hints` is set.
pub(super) fn render(d: &Diagnostic, hints: bool) -> String {
    let mut out = format!("{}:{}: {}", d.line, d.col, d.message);
    if let (true, Some(hint)) = (hints, &d.hint) {
        out.push_str(&format!(" | hint: {hint}"));
    }
    out
}

/// Compares the errors of `result`, rendered in file order, with `expected`.
/// An expected line ending in `...` only has to be a prefix.
pub(super) fn assert_errors(result: Result<Loaded, ConfigError>, expected: &[&str], hints: bool) {
    let errors: Vec<String> = match result {
        Ok(_) => Vec::new(),
        Err(error) => error.diagnostics.iter().map(|d| render(d, hints)).collect(),
    };
    let matches = errors.len() == expected.len()
        && errors
            .iter()
            .zip(expected)
            .all(|(got, want)| match want.strip_suffix("...") {
                Some(prefix) => got.starts_with(prefix),
                None => got == want,
            });
    assert!(
        matches,
        "\nexpected:\n  {}\ngot:\n  {}\n",
        expected.join("\n  "),
        errors.join("\n  ")
    );
}
