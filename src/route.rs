//! Route matching: which configured route, if any, a request path belongs to.
//!
//! Paths are matched segment by segment after percent-decoding each segment.
//! Anything ambiguous (empty segments from `//`, `.` or `..` segments, an
//! encoded `/` inside a segment) matches no route, so it is proxied untouched
//! and never cached: an odd spelling of a path can never reach another route's
//! entries.

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
            let seg = percent_decode_str(raw).decode_utf8().ok()?;
            if seg.contains('/') || seg == "." || seg == ".." || seg.is_empty() {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(p: &str) -> Vec<Segment> {
        p.trim_start_matches('/')
            .split('/')
            .map(|s| match s.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                Some(name) => Segment::Param(name.to_string()),
                None => Segment::Literal(s.to_string()),
            })
            .collect()
    }

    fn router() -> Router {
        Router {
            routes: ["/api/boards/{board_id}/contacts", "/api/contacts/{id}", "/api/boards/special/contacts"]
                .iter()
                .map(|p| CompiledRoute { segments: seg(p) })
                .collect(),
        }
    }

    fn check(path: &str, expected: Option<(usize, &[&str])>) {
        let got = router().find(path);
        let got = got.as_ref().map(|m| {
            (m.index, m.params.iter().map(|p| p.as_ref()).collect::<Vec<_>>())
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
}
