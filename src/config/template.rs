//! Tag template syntax: `board:{workspace}:{board_id}`, `filter:{workspace}:{query.filter}`.
//!
//! `{name}` is a variable; names use `[A-Za-z0-9_.]`. There is no escape: a tag
//! never needs a literal brace. Which variables a template may use depends on
//! where it is written (route, event, legacy purge) and is checked by
//! [`super::convert`].

use super::model::{Template, TemplatePart};

/// A template syntax error: message and hint.
pub(crate) type SyntaxError = (String, Option<String>);

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '.'
}

/// Parses `source` into literal and variable parts.
///
/// `{workspace}` and `{user}` become [`TemplatePart::Workspace`] and
/// [`TemplatePart::User`], `{query.NAME}` becomes [`TemplatePart::Query`], and
/// any other name a [`TemplatePart::Var`].
///
/// # Errors
/// The first syntax problem: empty template, unclosed `{`, stray `}`, bad name.
pub(crate) fn parse(source: &str) -> Result<Template, SyntaxError> {
    if source.is_empty() {
        return Err(("empty tag template".to_string(), None));
    }
    let mut parts = Vec::new();
    let mut literal = String::new();
    let mut rest = source;
    while let Some(c) = rest.chars().next() {
        match c {
            '{' => {
                let Some(end) = rest.find('}') else {
                    return Err((
                        format!("unclosed \"{{\" in template {source:?}"),
                        Some("close the variable with \"}\", e.g. \"{board_id}\"".to_string()),
                    ));
                };
                let name = &rest[1..end];
                if name.is_empty() {
                    return Err((
                        format!("empty \"{{}}\" in template {source:?}"),
                        Some(
                            "put a variable name between the braces, e.g. \"{workspace}\""
                                .to_string(),
                        ),
                    ));
                }
                if !name.chars().all(is_name_char) {
                    return Err((
                        format!("invalid variable name {name:?} in template {source:?}"),
                        Some("names use letters, digits, \"_\" and \".\"".to_string()),
                    ));
                }
                if !literal.is_empty() {
                    parts.push(TemplatePart::Literal(std::mem::take(&mut literal)));
                }
                parts.push(match name {
                    "workspace" => TemplatePart::Workspace,
                    "user" => TemplatePart::User,
                    _ => match name.strip_prefix("query.") {
                        Some(param) if !param.is_empty() => TemplatePart::Query(param.to_string()),
                        Some(_) => {
                            return Err((
                                format!("\"{{query.}}\" names no parameter in template {source:?}"),
                                Some("write \"{query.NAME}\" with NAME in key.query".to_string()),
                            ))
                        }
                        None => TemplatePart::Var(name.to_string()),
                    },
                });
                rest = &rest[end + 1..];
            }
            '}' => {
                return Err((
                    format!("unmatched \"}}\" in template {source:?}"),
                    Some("variables are written \"{name}\"".to_string()),
                ));
            }
            _ => {
                literal.push(c);
                rest = &rest[c.len_utf8()..];
            }
        }
    }
    if !literal.is_empty() {
        parts.push(TemplatePart::Literal(literal));
    }
    Ok(Template {
        source: source.to_string(),
        parts,
    })
}

/// How a variable part is written in the template (`{query.filter}`); `None` for literals.
pub(crate) fn written(part: &TemplatePart) -> Option<String> {
    match part {
        TemplatePart::Literal(_) => None,
        TemplatePart::Workspace => Some("{workspace}".to_string()),
        TemplatePart::User => Some("{user}".to_string()),
        TemplatePart::Var(name) => Some(format!("{{{name}}}")),
        TemplatePart::Query(name) => Some(format!("{{query.{name}}}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use TemplatePart::{Literal, Query, User, Var, Workspace};

    /// `expected` is the parts, or a fragment of the error message.
    fn check(source: &str, expected: Result<Vec<TemplatePart>, &str>) {
        match (parse(source), expected) {
            (Ok(got), Ok(want)) => {
                assert_eq!(got.parts, want, "{source:?}");
                assert_eq!(got.source, source);
            }
            (Err((message, _)), Err(want)) => {
                assert!(
                    message.contains(want),
                    "{source:?}: {message:?} lacks {want:?}"
                );
            }
            (got, want) => panic!("{source:?}: got {got:?}, expected {want:?}"),
        }
    }

    fn lit(s: &str) -> TemplatePart {
        Literal(s.to_string())
    }

    #[test]
    fn templates() {
        check("static", Ok(vec![lit("static")]));
        check(
            "workspace:{workspace}",
            Ok(vec![lit("workspace:"), Workspace]),
        );
        check(
            "board:{workspace}:{board_id}",
            Ok(vec![
                lit("board:"),
                Workspace,
                lit(":"),
                Var("board_id".into()),
            ]),
        );
        check(
            "filter:{workspace}:{query.filter}",
            Ok(vec![
                lit("filter:"),
                Workspace,
                lit(":"),
                Query("filter".into()),
            ]),
        );
        check("{user}{workspace}", Ok(vec![User, Workspace]));
        check("é:{a.b}", Ok(vec![lit("é:"), Var("a.b".into())]));
        check("", Err("empty tag template"));
        check("board:{board_id", Err("unclosed \"{\""));
        check("board:{}", Err("empty \"{}\""));
        check(
            "board:{board id}",
            Err("invalid variable name \"board id\""),
        );
        check("board:{a{b}", Err("invalid variable name \"a{b\""));
        check("board}", Err("unmatched \"}\""));
        check("{query.}", Err("names no parameter"));
    }
}
