//! `invalidate:`: the writes whose 2xx answers purge tags, checked as routes
//! are (match syntax, template variables), each problem at its position.

use super::routes::{parse_path, RouteScope};
use super::*;

/// The methods an `invalidate:` rule may match: the unsafe ones.
const WRITE_METHODS: [http::Method; 4] = [
    http::Method::POST,
    http::Method::PUT,
    http::Method::PATCH,
    http::Method::DELETE,
];

impl Cx<'_> {
    /// `invalidate:`, in file order; a rule with a problem is reported and left out.
    pub(super) fn invalidate(
        &mut self,
        raw: Vec<Spanned<raw::Invalidate>>,
        tenant: &Tenant,
    ) -> Vec<WriteRule> {
        let mut seen: Vec<(http::Method, Vec<Segment>, Pos)> = Vec::new();
        let mut rules = Vec::new();
        for (index, item) in raw.into_iter().enumerate() {
            let Spanned { value: item, pos } = item;
            let label = match &item.match_ {
                Some(m) if !m.value.trim().is_empty() => {
                    format!("invalidate rule {:?}", m.value.trim())
                }
                _ => format!("invalidate rule #{}", index + 1),
            };
            self.missing_keys(
                pos,
                &label,
                &[
                    (
                        "match",
                        item.match_.is_some(),
                        "match: \"PATCH /api/contacts/{contact_id}\"",
                    ),
                    (
                        "tags",
                        !item.tags.is_empty(),
                        "tags: [\"contact:{workspace}:{contact_id}\"]",
                    ),
                ],
            );
            let Some(field) = item.match_ else {
                continue;
            };
            let (method, segments) = match parse_write_match(&field.value) {
                Ok(parsed) => parsed,
                Err((message, hint)) => {
                    self.error(field.pos, message, hint);
                    continue;
                }
            };
            // `/a/{x}` and `/a/{y}` match the same requests.
            let shape: Vec<Segment> = segments
                .iter()
                .map(|s| match s {
                    Segment::Literal(l) => Segment::Literal(l.clone()),
                    Segment::Param(_) => Segment::Param(String::new()),
                    Segment::Rest(_) => Segment::Rest(String::new()),
                })
                .collect();
            if let Some((_, _, first)) = seen.iter().find(|(m, s, _)| *m == method && *s == shape) {
                self.error(
                    field.pos,
                    format!("duplicate {label}"),
                    Some(format!(
                        "the rule at line {} matches the same requests; merge their tags",
                        first.line
                    )),
                );
                continue;
            }
            seen.push((method.clone(), shape, field.pos));
            let params: Vec<String> = segments
                .iter()
                .filter_map(|s| match s {
                    Segment::Param(p) | Segment::Rest(p) => Some(p.clone()),
                    Segment::Literal(_) => None,
                })
                .collect();
            let scope = RouteScope {
                label: &label,
                params: &params,
                query: &[],
                query_all: false,
                query_usable: true,
                tenant,
            };
            let mut tags = Vec::new();
            for source in &item.tags {
                let Some(template) = self.template(source) else {
                    continue;
                };
                let problem = template.parts.iter().find_map(|part| match part {
                    TemplatePart::Query(name) => Some((
                        format!("\"{{query.{name}}}\" in {label}: a write's tags cannot use its query string"),
                        "use {workspace}, {user} and the path parameters of the match".to_string(),
                    )),
                    _ => scope.check_part(part),
                });
                match problem {
                    Some((message, hint)) => self.error(source.pos, message, Some(hint)),
                    None => tags.push(template),
                }
            }
            if tags.is_empty() {
                continue;
            }
            rules.push(WriteRule {
                label: field.value.split_whitespace().collect::<Vec<_>>().join(" "),
                method,
                segments,
                tags,
            });
        }
        rules
    }
}

/// Parses `"PATCH /api/contacts/{contact_id}"`: an unsafe method and a path
/// pattern.
fn parse_write_match(text: &str) -> Result<(http::Method, Vec<Segment>), (String, Option<String>)> {
    let words: Vec<&str> = text.split_whitespace().collect();
    let (method, path) = match words.as_slice() {
        [method, path] => (*method, *path),
        [path] if path.starts_with('/') => {
            return Err((
                format!("match {text:?} has no method"),
                Some(format!(
                    "write \"PATCH {path}\", with POST, PUT, PATCH or DELETE"
                )),
            ))
        }
        _ => {
            return Err((
                format!("invalid match {text:?}: expected \"METHOD /path\""),
                Some("e.g. \"PATCH /api/contacts/{contact_id}\"".to_string()),
            ))
        }
    };
    let Some(method) = WRITE_METHODS.iter().find(|m| m.as_str() == method) else {
        let upper = method.to_ascii_uppercase();
        let hint = if WRITE_METHODS.iter().any(|m| m.as_str() == upper) {
            (
                format!("method {method:?} must be written {upper:?}"),
                format!("write \"{upper} {path}\""),
            )
        } else if ["GET", "HEAD", "OPTIONS", "TRACE"].contains(&upper.as_str()) {
            (
                format!(
                    "{upper} does not write: invalidate rules match POST, PUT, PATCH or DELETE"
                ),
                "GET requests are cached through routes:".to_string(),
            )
        } else {
            (
                format!("invalidate rules match POST, PUT, PATCH or DELETE, not {method:?}"),
                format!("e.g. \"POST {path}\""),
            )
        };
        return Err((hint.0, Some(hint.1)));
    };
    Ok((method.clone(), parse_path(path)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `expected` is the method and the number of segments, or a fragment of the error.
    fn check(text: &str, expected: Result<(&str, usize), &str>) {
        match (parse_write_match(text), expected) {
            (Ok((method, segments)), Ok((m, n))) => {
                assert_eq!((method.as_str(), segments.len()), (m, n), "{text:?}")
            }
            (Err((message, _)), Err(want)) => {
                assert!(
                    message.contains(want),
                    "{text:?}: {message:?} lacks {want:?}"
                )
            }
            (got, want) => panic!("{text:?}: got {got:?}, expected {want:?}"),
        }
    }

    #[test]
    fn write_matches() {
        check("PATCH /api/contacts/{contact_id}", Ok(("PATCH", 3)));
        check("POST /api/contacts", Ok(("POST", 2)));
        check("PUT /files/{*path}", Ok(("PUT", 2)));
        check("DELETE /api/contacts/{id}", Ok(("DELETE", 3)));
        check("patch /a", Err("must be written \"PATCH\""));
        check("GET /a", Err("GET does not write"));
        check("PURGE /a", Err("not \"PURGE\""));
        check("/a", Err("has no method"));
        check("PATCH", Err("expected \"METHOD /path\""));
        check("PATCH /a//b", Err("empty segment"));
        check("PATCH /a?x=1", Err("query string"));
    }
}
