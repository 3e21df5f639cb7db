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
//!
//! A pattern may end in `{*rest}`, which matches one or more segments (a
//! subtree): each of them is held to the same rules, so a subtree route
//! matches exactly the paths that a route spelling the segments out would.

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
    /// The pattern ends in `{*rest}`: it matches one or more segments more
    /// than the ones before it.
    rest: bool,
}

impl CompiledRoute {
    fn new(segments: &[Segment]) -> Self {
        CompiledRoute {
            rest: matches!(segments.last(), Some(Segment::Rest(_))),
            segments: segments.to_vec(),
        }
    }

    /// The parameters of `decoded` if this pattern matches it.
    fn params<'a>(&self, decoded: &[Cow<'a, str>]) -> Option<Vec<Cow<'a, str>>> {
        let fixed = if self.rest {
            // `{*rest}` takes at least one segment.
            if decoded.len() < self.segments.len() {
                return None;
            }
            self.segments.len() - 1
        } else {
            if decoded.len() != self.segments.len() {
                return None;
            }
            self.segments.len()
        };
        for (pat, seg) in self.segments[..fixed].iter().zip(decoded) {
            if let Segment::Literal(lit) = pat {
                if lit != seg {
                    return None;
                }
            }
        }
        let mut params: Vec<Cow<'a, str>> = self.segments[..fixed]
            .iter()
            .zip(decoded)
            .filter(|(pat, _)| matches!(pat, Segment::Param(_)))
            .map(|(_, seg)| seg.clone())
            .collect();
        if self.rest {
            // Every segment passed the checks above and none holds a `/`,
            // so joining them is unambiguous.
            params.push(Cow::Owned(decoded[fixed..].join("/")));
        }
        Some(params)
    }
}

impl Router {
    /// Compiles the route table from the validated routes.
    pub fn new(routes: &[Route]) -> Self {
        Self::from_patterns(routes.iter().map(|r| r.segments.as_slice()))
    }

    /// Compiles a table from path patterns, matched in order (the
    /// `invalidate:` rules use one too).
    pub fn from_patterns<'s>(patterns: impl IntoIterator<Item = &'s [Segment]>) -> Self {
        Router {
            routes: patterns.into_iter().map(CompiledRoute::new).collect(),
        }
    }

    /// Finds the first route whose pattern matches `path` (the raw, still
    /// percent-encoded request path, without the query).
    pub fn find<'a>(&self, path: &'a str) -> Option<RouteMatch<'a>> {
        let decoded = decode(path)?;
        self.routes.iter().enumerate().find_map(|(index, route)| {
            route
                .params(&decoded)
                .map(|params| RouteMatch { index, params })
        })
    }

    /// Every route whose pattern matches `path`, in order.
    pub fn find_all<'a>(&self, path: &'a str) -> Vec<RouteMatch<'a>> {
        let Some(decoded) = decode(path) else {
            return Vec::new();
        };
        self.routes
            .iter()
            .enumerate()
            .filter_map(|(index, route)| {
                route
                    .params(&decoded)
                    .map(|params| RouteMatch { index, params })
            })
            .collect()
    }

    /// The first pattern that matches `path` among those `accept` takes.
    pub fn find_where<'a>(
        &self,
        path: &'a str,
        accept: impl Fn(usize) -> bool,
    ) -> Option<RouteMatch<'a>> {
        let decoded = decode(path)?;
        self.routes
            .iter()
            .enumerate()
            .filter(|(index, _)| accept(*index))
            .find_map(|(index, route)| {
                route
                    .params(&decoded)
                    .map(|params| RouteMatch { index, params })
            })
    }
}

/// The decoded segments of `path`, or `None` when it is ambiguous (see the
/// module docs).
fn decode(path: &str) -> Option<Vec<Cow<'_, str>>> {
    let rest = path.strip_prefix('/')?;
    // A trailing slash is a different resource to most origins: no match.
    let mut decoded: Vec<Cow<'_, str>> = Vec::with_capacity(8);
    for raw in split_ascii(rest, b'/') {
        if raw.is_empty() || raw == "." || raw == ".." {
            return None;
        }
        let seg = if raw.as_bytes().contains(&b'%') {
            percent_decode_str(raw).decode_utf8().ok()?
        } else {
            // Nothing to decode, and a `&str` is valid UTF-8 already.
            Cow::Borrowed(raw)
        };
        let ambiguous = if seg.is_ascii() {
            seg.bytes().any(ambiguous_byte)
        } else {
            seg.chars().any(ambiguous)
        };
        if seg == "." || seg == ".." || seg.is_empty() || ambiguous {
            return None;
        }
        decoded.push(seg);
    }
    Some(decoded)
}

/// Characters that make a decoded segment ambiguous (see the module docs).
fn ambiguous(c: char) -> bool {
    matches!(c, '/' | '\\' | ';' | '%') || c.is_control()
}

/// [`ambiguous`] for an ASCII character: ASCII's control characters are
/// the ones below space and DEL.
fn ambiguous_byte(b: u8) -> bool {
    matches!(b, b'/' | b'\\' | b';' | b'%') || b.is_ascii_control()
}

/// The pieces of `s` between each `sep` (an ASCII byte), as
/// `s.split(char::from(sep))` gives them: a plain scan of the bytes, cheaper
/// than `str::split`'s searcher for the few short pieces of a path or a
/// query, which every request on a route splits.
pub(crate) fn split_ascii(s: &str, sep: u8) -> impl Iterator<Item = &str> {
    debug_assert!(sep.is_ascii());
    let mut rest = Some(s);
    std::iter::from_fn(move || {
        let r = rest?;
        match r.bytes().position(|b| b == sep) {
            // An ASCII byte is a character of its own: both ends of it
            // are character boundaries.
            Some(i) => {
                rest = r.get(i + 1..);
                r.get(..i)
            }
            None => {
                rest = None;
                Some(r)
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_ascii_gives_the_pieces_str_split_gives() {
        for s in [
            "", "/", "a", "a/b", "/a/b/", "//", "é/ü/ß", "a//b", "x/%2F/y", "日本/語",
        ] {
            let ours: Vec<&str> = split_ascii(s, b'/').collect();
            let std: Vec<&str> = s.split('/').collect();
            assert_eq!(ours, std, "{s:?}");
        }
    }

    #[test]
    fn ascii_and_char_checks_agree_on_every_ascii_character() {
        for b in 0u8..=0x7f {
            assert_eq!(ambiguous_byte(b), ambiguous(char::from(b)), "{b:#x}");
        }
    }

    fn seg(p: &str) -> Vec<Segment> {
        p.trim_start_matches('/')
            .split('/')
            .map(
                |s| match s.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                    Some(name) => match name.strip_prefix('*') {
                        Some(rest) => Segment::Rest(rest.to_string()),
                        None => Segment::Param(name.to_string()),
                    },
                    None => Segment::Literal(s.to_string()),
                },
            )
            .collect()
    }

    fn router_of(patterns: &[&str]) -> Router {
        let segments: Vec<Vec<Segment>> = patterns.iter().map(|p| seg(p)).collect();
        Router::from_patterns(segments.iter().map(Vec::as_slice))
    }

    fn router() -> Router {
        router_of(&[
            "/api/boards/{board_id}/contacts",
            "/api/contacts/{id}",
            "/api/boards/special/contacts",
        ])
    }

    fn check(path: &str, expected: Option<(usize, &[&str])>) {
        check_in(&router(), path, expected);
    }

    fn check_in(router: &Router, path: &str, expected: Option<(usize, &[&str])>) {
        let got = router.find(path);
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

    #[test]
    fn subtree_routes() {
        let r = router_of(&["/static/{*rest}", "/sites/{site}/{*path}", "/{*all}"]);
        check_in(&r, "/static/app.js", Some((0, &["app.js"])));
        check_in(&r, "/static/v1/css/a.css", Some((0, &["v1/css/a.css"])));
        check_in(&r, "/static/v%31/a%20b.css", Some((0, &["v1/a b.css"])));
        check_in(&r, "/sites/s1/index.html", Some((1, &["s1", "index.html"])));
        check_in(&r, "/sites/s1/a/b", Some((1, &["s1", "a/b"])));
        // The rest takes at least one segment: `/static` alone is the catch-all's.
        check_in(&r, "/static", Some((2, &["static"])));
        check_in(&r, "/x", Some((2, &["x"])));
        check_in(&r, "/", None);
        // Every segment of the rest obeys the rules of any segment.
        for path in [
            "/static/",
            "/static/v1/",
            "/static//a.js",
            "/static/v1/../secret",
            "/static/./a.js",
            "/static/%2e%2e/a.js",
            "/static/a%2Fb.js",
            "/static/a%5Cb.js",
            "/static/a;b/c.js",
            "/static/v1/%C0%AE%C0%AE/a.js",
            "/static/a%00.js",
            "/static/a%252e.js",
            "/sites/s1/a/../b",
        ] {
            check_in(&r, path, None);
        }
    }

    #[test]
    fn every_match_in_order() {
        let r = router_of(&["/a/{x}", "/a/b", "/{*rest}"]);
        let all: Vec<usize> = r.find_all("/a/b").iter().map(|m| m.index).collect();
        assert_eq!(all, [0, 1, 2]);
        assert!(r.find_all("/a/../b").is_empty());
        assert_eq!(r.find_where("/a/b", |i| i > 0).map(|m| m.index), Some(1));
    }
}
