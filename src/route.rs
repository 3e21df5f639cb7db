//! Route matching: which configured route, if any, a request path belongs to.
//!
//! Paths are matched segment by segment after percent-decoding each segment.
//! Anything ambiguous (empty segments from `//`, `.` or `..` segments, an
//! encoded `/` inside a segment) matches no route, so it is proxied untouched
//! and never cached: an odd spelling of a path can never reach another route's
//! entries.
//!
//! So does anything an origin or a framework in front of it might read
//! differently from us: a backslash (a separator to some servers), a `;`
//! (path parameters, stripped by some servers), a `%` left after decoding
//! (decoded twice by some), control characters, and bytes that are not UTF-8
//! (overlong encodings such as `%C0%AE` included).

use std::borrow::Cow;

use percent_encoding::percent_decode_str;

use crate::config::{Route, Segment};

/// The outcome of matching a path against the route table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteMatch<'a> {
    /// Index of the route in the config's route list.
    pub index: usize,
    /// Values of the route's path parameters, in pattern order.
    pub params: Vec<Cow<'a, str>>,
}

/// The compiled route table.
#[derive(Debug, Clone)]
pub struct Router {
    routes: Vec<CompiledRoute>,
}

#[derive(Debug, Clone)]
struct CompiledRoute {
    segments: Vec<Segment>,
}

impl Router {
    /// Compiles the route table from the validated routes.
    pub fn new(routes: &[Route]) -> Self {
        Router {
            routes: routes
                .iter()
                .map(|r| CompiledRoute {
                    segments: r.segments.clone(),
                })
                .collect(),
        }
    }

    /// Finds the first route whose pattern matches `path` (the raw, still
    /// percent-encoded request path, without the query).
    pub fn find<'a>(&self, path: &'a str) -> Option<RouteMatch<'a>> {
        let rest = path.strip_prefix('/')?;
        // A trailing slash is a different resource to most origins: no match.
        let mut decoded: Vec<Cow<'a, str>> = Vec::with_capacity(8);
        for raw in rest.split('/') {
            if raw.is_empty() || raw == "." || raw == ".." {
                return None;
            }
            let seg = if raw.contains('%') {
                percent_decode_str(raw).decode_utf8().ok()?
            } else {
                // Nothing to decode, and a `&str` is valid UTF-8 already.
                Cow::Borrowed(raw)
            };
            if seg == "." || seg == ".." || seg.is_empty() || seg.chars().any(ambiguous) {
                return None;
            }
            decoded.push(seg);
        }
        'routes: for (index, route) in self.routes.iter().enumerate() {
            if route.segments.len() != decoded.len() {
                continue;
            }
            for (pat, seg) in route.segments.iter().zip(&decoded) {
                if let Segment::Literal(lit) = pat {
                    if lit != seg {
                        continue 'routes;
                    }
                }
            }
            let params = route
                .segments
                .iter()
                .zip(&decoded)
                .filter(|(pat, _)| matches!(pat, Segment::Param(_)))
                .map(|(_, seg)| seg.clone())
                .collect();
            return Some(RouteMatch { index, params });
        }
        None
    }
}

/// Characters that make a decoded segment ambiguous (see the module docs).
fn ambiguous(c: char) -> bool {
    matches!(c, '/' | '\\' | ';' | '%') || c.is_control()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(p: &str) -> Vec<Segment> {
        p.trim_start_matches('/')
            .split('/')
            .map(
                |s| match s.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                    Some(name) => Segment::Param(name.to_string()),
                    None => Segment::Literal(s.to_string()),
                },
            )
            .collect()
    }

    fn router() -> Router {
        Router {
            routes: [
                "/api/boards/{board_id}/contacts",
                "/api/contacts/{id}",
                "/api/boards/special/contacts",
            ]
            .iter()
            .map(|p| CompiledRoute { segments: seg(p) })
            .collect(),
        }
    }

    fn check(path: &str, expected: Option<(usize, &[&str])>) {
        let got = router().find(path);
        let got = got.as_ref().map(|m| {
            (
                m.index,
                m.params.iter().map(|p| p.as_ref()).collect::<Vec<_>>(),
            )
        });
        let expected = expected.map(|(i, p)| (i, p.to_vec()));
        assert_eq!(got, expected, "path {path}");
    }

    #[test]
    fn matching() {
        check("/api/boards/b1/contacts", Some((0, &["b1"])));
        check("/api/boards/b%201/contacts", Some((0, &["b 1"])));
        check("/api/%62oards/b1/contacts", Some((0, &["b1"])));
        check("/api/contacts/42", Some((1, &["42"])));
        // First match wins, in config order.
        check("/api/boards/special/contacts", Some((0, &["special"])));
        check("/api/boards/b1/contacts/", None);
        check("/api//boards/b1/contacts", None);
        check("/api/boards/./b1/contacts", None);
        check("/api/boards/b1/./contacts", None);
        check("/api/boards/../boards/b1/contacts", None);
        check("/api/boards/b1%2Fx/contacts", None);
        check("/api/boards/%2e%2e/contacts", None);
        check("/api/boards/%FF/contacts", None);
        check("/api/boards/b1", None);
        check("api/boards/b1/contacts", None);
        check("", None);
    }

    /// Spellings an origin might read as another path: never matched.
    #[test]
    fn ambiguous_spellings_match_nothing() {
        for path in [
            "/api/boards/%2e/contacts",
            "/api/boards/%2E%2E/contacts",
            "/api/boards/.%2e/contacts",
            "/api/boards/b1%2fx/contacts",
            "/api/boards/%C0%AE%C0%AE/contacts",
            "/api/boards/%C0%AF/contacts",
            "/api/boards/%E0%80%AE/contacts",
            "/api/boards/b1\\..\\b2/contacts",
            "/api/boards/b1%5C..%5Cb2/contacts",
            "/api\\boards/b1/contacts",
            "/api/boards/b1;jsessionid=x/contacts",
            "/api/boards/b1%3Bx/contacts",
            "/api/boards/%252e%252e/contacts",
            "/api/boards/b1%00/contacts",
            "/api/boards/b1%0d%0a/contacts",
            "/api/boards/b1%09/contacts",
            "/api/boards/b1%7F/contacts",
        ] {
            check(path, None);
        }
        // Plain percent-encoding of ordinary characters still matches.
        check("/api/boards/b%31/contacts", Some((0, &["b1"])));
        check("/api/boards/%C3%A9/contacts", Some((0, &["\u{e9}"])));
    }
}
