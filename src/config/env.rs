//! `${VAR}` interpolation of environment variables inside config strings.
//!
//! `${NAME}` anywhere in a string scalar is replaced by the variable's value;
//! `$${` writes a literal `${`. Any other `$` is kept as is. Substitution is a
//! single pass: a value that itself contains `${` is not expanded again.

/// Why a string could not be interpolated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum EnvError {
    /// These variables are referenced but not set (in order, without repeats).
    Missing(Vec<String>),
    /// A `${` without its closing `}`.
    Unclosed,
    /// `${...}` whose content is not a variable name.
    BadName(String),
}

impl EnvError {
    /// The message and hint for this error. Never includes a variable's value.
    pub(crate) fn describe(&self) -> (String, Option<String>) {
        match self {
            EnvError::Missing(names) if names.len() == 1 => (
                format!("environment variable {:?} is not set", names[0]),
                Some(format!(
                    "set it before starting tagcache (export {}=...), or write \"$${{\" for a literal \"${{\"",
                    names[0]
                )),
            ),
            EnvError::Missing(names) => (
                format!(
                    "environment variables {} are not set",
                    names
                        .iter()
                        .map(|n| format!("{n:?}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                Some("set them before starting tagcache".to_string()),
            ),
            EnvError::Unclosed => (
                "unclosed \"${\" in string".to_string(),
                Some("write \"${NAME}\", or \"$${\" for a literal \"${\"".to_string()),
            ),
            EnvError::BadName(name) => (
                format!("invalid environment variable name {name:?} in \"${{...}}\""),
                Some(
                    "names use letters, digits and \"_\" and do not start with a digit; \
                     write \"$${\" for a literal \"${\""
                        .to_string(),
                ),
            ),
        }
    }
}

fn is_var_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Replaces every `${NAME}` in `text` by `env(NAME)`.
///
/// # Errors
/// All missing variables at once, or the first syntax problem.
pub(crate) fn interpolate(
    text: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<String, EnvError> {
    let mut out = String::with_capacity(text.len());
    let mut missing: Vec<String> = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at..];
        if let Some(tail) = after.strip_prefix("$${") {
            out.push_str("${");
            rest = tail;
        } else if let Some(tail) = after.strip_prefix("${") {
            let Some(end) = tail.find('}') else {
                return Err(EnvError::Unclosed);
            };
            let name = &tail[..end];
            if !is_var_name(name) {
                return Err(EnvError::BadName(name.to_string()));
            }
            match env(name) {
                Some(value) => out.push_str(&value),
                None if !missing.iter().any(|m| m == name) => missing.push(name.to_string()),
                None => {}
            }
            rest = &tail[end + 1..];
        } else {
            out.push('$');
            rest = &after[1..];
        }
    }
    out.push_str(rest);
    if missing.is_empty() {
        Ok(out)
    } else {
        Err(EnvError::Missing(missing))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "TOKEN" => Some("s3cret".to_string()),
            "EMPTY" => Some(String::new()),
            "LOOP" => Some("${TOKEN}".to_string()),
            _ => None,
        }
    }

    fn check(input: &str, expected: Result<&str, EnvError>) {
        let got = interpolate(input, &env);
        assert_eq!(got, expected.map(str::to_string), "input {input:?}");
    }

    #[test]
    fn interpolation() {
        check("plain", Ok("plain"));
        check("", Ok(""));
        check("${TOKEN}", Ok("s3cret"));
        check("Bearer ${TOKEN}!", Ok("Bearer s3cret!"));
        check("${TOKEN}${TOKEN}", Ok("s3crets3cret"));
        check("[${EMPTY}]", Ok("[]"));
        check("$${TOKEN}", Ok("${TOKEN}"));
        check("a$${b}c", Ok("a${b}c"));
        // Left to right: a lone "$", then the "$${" escape.
        check("$$${TOKEN}", Ok("$${TOKEN}"));
        check("price: $5 and $", Ok("price: $5 and $"));
        check("{workspace}", Ok("{workspace}"));
        // Values are not expanded again.
        check("${LOOP}", Ok("${TOKEN}"));
        check("${NOPE}", Err(EnvError::Missing(vec!["NOPE".into()])));
        check(
            "${A}:${B}:${A}",
            Err(EnvError::Missing(vec!["A".into(), "B".into()])),
        );
        check("${TOKEN", Err(EnvError::Unclosed));
        check("${}", Err(EnvError::BadName(String::new())));
        check("${1X}", Err(EnvError::BadName("1X".into())));
        check("${A-B}", Err(EnvError::BadName("A-B".into())));
    }

    #[test]
    fn messages_name_the_variable() {
        let (message, hint) = EnvError::Missing(vec!["TAGCACHE_ADMIN_TOKEN".into()]).describe();
        assert_eq!(
            message,
            "environment variable \"TAGCACHE_ADMIN_TOKEN\" is not set"
        );
        assert!(hint
            .unwrap_or_default()
            .contains("export TAGCACHE_ADMIN_TOKEN="));
    }
}
