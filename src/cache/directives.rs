//! `Cache-Control` read from every field line, as a shared cache must.
//!
//! pingora-cache's parser keeps one value per directive name, so a response
//! with `private` and `private="X-User-Token"` (on one line or two) came out
//! as only the second, and such details decide whether one user's answer is
//! handed to everyone. This reader walks every `Cache-Control` line of a
//! message, compares directive names case-insensitively, and folds the
//! directives into flags that can only tighten: any `private` (bare or with a
//! field list) and any `no-store` anywhere make a response unstorable, and the
//! field lists of `no-cache="..."` are collected from every occurrence.
//!
//! A line that is not a well-formed directive list (a name that is not an
//! RFC 9110 token, an unterminated quoted string) makes the message
//! [`Directives::malformed`]: a shared cache does not guess what a broken
//! line meant, so storability treats it as unstorable.

use http::header::CACHE_CONTROL;
use http::HeaderMap;

/// The directives of a message that a shared cache acts on, from every
/// `Cache-Control` field line.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Directives {
    /// `no-store` anywhere.
    pub no_store: bool,
    /// `private` anywhere, bare or with a field list.
    pub private: bool,
    /// `no-cache` without a field list anywhere.
    pub no_cache: bool,
    /// Field names of every `no-cache="..."`, lower-cased.
    pub no_cache_fields: Vec<String>,
    /// `public`.
    pub public: bool,
    /// `must-revalidate`.
    pub must_revalidate: bool,
    /// `s-maxage` with any argument.
    pub s_maxage: bool,
    /// `max-age=0` (the value a client sends to ask for a fresh copy).
    pub max_age_zero: bool,
    /// Some line could not be parsed as a directive list.
    pub malformed: bool,
}

impl Directives {
    /// The directives of every `Cache-Control` line in `headers`.
    pub(crate) fn of(headers: &HeaderMap) -> Self {
        let mut out = Directives::default();
        for line in headers.get_all(CACHE_CONTROL) {
            out.add_line(line.as_bytes());
        }
        out
    }

    /// Folds one field line in.
    fn add_line(&mut self, line: &[u8]) {
        let mut rest = line;
        loop {
            rest = trim_start(rest);
            if rest.is_empty() {
                return;
            }
            if rest[0] == b',' {
                rest = &rest[1..];
                continue;
            }
            let name_len = rest.iter().take_while(|b| is_tchar(**b)).count();
            if name_len == 0 {
                self.malformed = true;
                return;
            }
            let name = &rest[..name_len];
            rest = trim_start(&rest[name_len..]);
            let mut arg: Option<Vec<u8>> = None;
            if rest.first() == Some(&b'=') {
                rest = trim_start(&rest[1..]);
                match parse_value(rest) {
                    Some((value, after)) => {
                        arg = Some(value);
                        rest = after;
                    }
                    None => {
                        self.malformed = true;
                        return;
                    }
                }
            }
            self.add_directive(name, arg.as_deref());
            rest = trim_start(rest);
            match rest.first() {
                None => return,
                Some(b',') => rest = &rest[1..],
                Some(_) => {
                    self.malformed = true;
                    return;
                }
            }
        }
    }

    fn add_directive(&mut self, name: &[u8], arg: Option<&[u8]>) {
        let is = |n: &str| name.eq_ignore_ascii_case(n.as_bytes());
        if is("no-store") {
            self.no_store = true;
        } else if is("private") {
            self.private = true;
        } else if is("no-cache") {
            match arg {
                Some(fields) => self.no_cache_fields.extend(field_names(fields)),
                None => self.no_cache = true,
            }
        } else if is("public") {
            self.public = true;
        } else if is("must-revalidate") {
            self.must_revalidate = true;
        } else if is("s-maxage") {
            self.s_maxage = true;
        } else if is("max-age")
            && arg.is_some_and(|a| !a.is_empty() && a.iter().all(|b| *b == b'0'))
        {
            self.max_age_zero = true;
        }
    }
}

/// A directive's argument, a token or a quoted string (unescaped), and what
/// follows it; `None` when it is neither.
fn parse_value(s: &[u8]) -> Option<(Vec<u8>, &[u8])> {
    if s.first() == Some(&b'"') {
        let mut out = Vec::new();
        let mut i = 1;
        while i < s.len() {
            match s[i] {
                b'"' => return Some((out, &s[i + 1..])),
                b'\\' if i + 1 < s.len() => {
                    out.push(s[i + 1]);
                    i += 2;
                }
                b => {
                    out.push(b);
                    i += 1;
                }
            }
        }
        None
    } else {
        let len = s.iter().take_while(|b| is_tchar(**b)).count();
        Some((s[..len].to_vec(), &s[len..]))
    }
}

/// The field names of a `no-cache` or `private` argument, lower-cased.
fn field_names(list: &[u8]) -> impl Iterator<Item = String> + '_ {
    list.split(|b| *b == b',')
        .map(|f| String::from_utf8_lossy(trim_start(trim_end(f))).to_ascii_lowercase())
        .filter(|f| !f.is_empty())
}

fn trim_start(s: &[u8]) -> &[u8] {
    let n = s.iter().take_while(|b| matches!(b, b' ' | b'\t')).count();
    &s[n..]
}

fn trim_end(s: &[u8]) -> &[u8] {
    let n = s
        .iter()
        .rev()
        .take_while(|b| matches!(b, b' ' | b'\t'))
        .count();
    &s[..s.len() - n]
}

/// RFC 9110 §5.6.2 `tchar`.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn of(lines: &[&str]) -> Directives {
        let mut h = HeaderMap::new();
        for l in lines {
            h.append(CACHE_CONTROL, l.parse().unwrap());
        }
        Directives::of(&h)
    }

    #[test]
    fn private_on_any_line_or_in_any_form_counts() {
        for lines in [
            &["private"][..],
            &["max-age=600, private=\"X-User-Token\""],
            &["private", "private=\"X-User-Token\""],
            &["private, private=\"X-User-Token\""],
            &["public, max-age=60", "PRIVATE"],
            &["Private=X-User-Token"],
            &["max-age=1,,  private  "],
        ] {
            assert!(of(lines).private, "{lines:?}");
        }
    }

    #[test]
    fn no_store_on_any_line_counts() {
        assert!(of(&["max-age=60", "No-Store"]).no_store);
        assert!(of(&["public,no-store"]).no_store);
        assert!(!of(&["max-age=60"]).no_store);
    }

    #[test]
    fn no_cache_with_fields_is_not_bare_no_cache() {
        let d = of(&[
            "max-age=600, no-cache=\"X-User-Token, Set-Cookie2\"",
            "no-cache=x-other",
        ]);
        assert!(!d.no_cache);
        assert_eq!(
            d.no_cache_fields,
            ["x-user-token", "set-cookie2", "x-other"]
        );
        assert!(of(&["no-cache=\"a\"", "no-cache"]).no_cache);
    }

    #[test]
    fn commas_inside_quotes_do_not_split_directives() {
        let d = of(&["no-cache=\"a, private\", max-age=5"]);
        assert!(!d.private);
        assert_eq!(d.no_cache_fields, ["a", "private"]);
    }

    #[test]
    fn broken_lines_are_malformed() {
        for line in ["private\"", "max-age=\"5", "=5", "a b", "max-age=5 x"] {
            assert!(of(&[line]).malformed, "{line}");
        }
        assert!(!of(&["max-age=5, public", ""]).malformed);
    }

    #[test]
    fn shareability_directives() {
        let d = of(&["Public", "S-MaxAge=30", "must-revalidate"]);
        assert!(d.public && d.s_maxage && d.must_revalidate);
    }

    #[test]
    fn max_age_zero() {
        assert!(of(&["max-age=0"]).max_age_zero);
        assert!(of(&["max-age=00"]).max_age_zero);
        assert!(!of(&["max-age=10"]).max_age_zero);
        assert!(!of(&["max-age="]).max_age_zero);
    }
}
