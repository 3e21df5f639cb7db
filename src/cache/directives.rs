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
//!
//! The freshness directives keep their values ([`Delta`]): a second
//! occurrence of one, or an argument that is not delta-seconds, makes it
//! [`Delta::Invalid`], which RFC 9111 §4.2.1 asks a cache to treat as stale.
//! [`Directives::targeted`] reads a targeted field (RFC 9213:
//! `CDN-Cache-Control`, `Tagcache-Cache-Control`), a Structured Fields
//! dictionary, into the same shape.

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
    /// `max-age`, with its value.
    pub max_age: Delta,
    /// `s-maxage`, with its value.
    pub s_maxage_value: Delta,
    /// `proxy-revalidate`.
    pub proxy_revalidate: bool,
    /// `stale-while-revalidate` (RFC 5861), with its value.
    pub stale_while_revalidate: Delta,
    /// `stale-if-error` (RFC 5861), with its value.
    pub stale_if_error: Delta,
}

/// A directive that takes delta-seconds (RFC 9111 §1.2.2).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Delta {
    /// Not present.
    #[default]
    Absent,
    /// Present once, with this many seconds (2^31 when larger).
    Seconds(u32),
    /// Present more than once, or with an argument that is not a number.
    Invalid,
}

/// delta-seconds larger than this are read as this (RFC 9111 §1.2.2).
const DELTA_MAX: u32 = 1 << 31;

impl Delta {
    /// Folds in one more occurrence: a second one makes the directive invalid.
    fn add(&mut self, arg: Option<&[u8]>) {
        *self = match self {
            Delta::Absent => arg
                .and_then(delta_seconds)
                .map_or(Delta::Invalid, Delta::Seconds),
            _ => Delta::Invalid,
        };
    }

    /// Whether the directive appears at all, valid or not.
    pub(crate) fn present(self) -> bool {
        self != Delta::Absent
    }
}

/// `1*DIGIT`, saturating at [`DELTA_MAX`].
fn delta_seconds(arg: &[u8]) -> Option<u32> {
    if arg.is_empty() || !arg.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let mut n: u64 = 0;
    for d in arg {
        n = (n * 10 + u64::from(d - b'0')).min(u64::from(DELTA_MAX));
    }
    u32::try_from(n).ok()
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
            self.s_maxage_value.add(arg);
        } else if is("max-age") {
            if arg.is_some_and(|a| !a.is_empty() && a.iter().all(|b| *b == b'0')) {
                self.max_age_zero = true;
            }
            self.max_age.add(arg);
        } else if is("proxy-revalidate") {
            self.proxy_revalidate = true;
        } else if is("stale-while-revalidate") {
            self.stale_while_revalidate.add(arg);
        } else if is("stale-if-error") {
            self.stale_if_error.add(arg);
        }
    }

    /// The directives of the targeted field `name` (RFC 9213), when it is
    /// present, parses as a Structured Fields dictionary (RFC 8941 §3.2,
    /// every line joined) and holds at least one member; `None` otherwise,
    /// and the cache then falls back to the next field of its list.
    ///
    /// Names are lowercase in a dictionary. A directive whose value is not of
    /// its type (an integer for the delta-seconds ones, a boolean or nothing
    /// for the others) is ignored, as RFC 9213 §2.1 says; `?0` turns a
    /// boolean directive off. Dictionary keys do not repeat (the last one
    /// wins), so no directive here is ever [`Delta::Invalid`].
    pub(crate) fn targeted(headers: &HeaderMap, name: &str) -> Option<Self> {
        let mut lines = headers.get_all(name).iter().peekable();
        lines.peek()?;
        let mut joined = Vec::new();
        for (i, line) in lines.enumerate() {
            if i > 0 {
                joined.push(b',');
            }
            joined.extend_from_slice(line.as_bytes());
        }
        let members = sf::dictionary(&joined)?;
        if members.is_empty() {
            return None;
        }
        let mut out = Directives::default();
        for (key, value) in members {
            let flag = match value {
                sf::Item::Bool(b) => Some(b),
                _ => None,
            };
            let seconds = match value {
                sf::Item::Integer(n) => u32::try_from(n.clamp(0, i64::from(DELTA_MAX)))
                    .ok()
                    .filter(|_| n >= 0)
                    .map_or(Delta::Absent, Delta::Seconds),
                _ => Delta::Absent,
            };
            match key.as_str() {
                "no-store" => out.no_store |= flag == Some(true),
                "private" => out.private |= flag == Some(true),
                "no-cache" => out.no_cache |= flag == Some(true),
                "public" => out.public |= flag == Some(true),
                "must-revalidate" => out.must_revalidate |= flag == Some(true),
                "proxy-revalidate" => out.proxy_revalidate |= flag == Some(true),
                "max-age" => out.max_age = seconds,
                "s-maxage" => {
                    out.s_maxage_value = seconds;
                    out.s_maxage = seconds.present();
                }
                "stale-while-revalidate" => out.stale_while_revalidate = seconds,
                "stale-if-error" => out.stale_if_error = seconds,
                _ => {}
            }
        }
        Some(out)
    }
}

/// The part of RFC 8941 Structured Fields a targeted cache-control field
/// needs: a dictionary whose values are bare items or inner lists, each with
/// parameters (parsed, then dropped).
mod sf {
    /// A member's value, as far as cache directives care.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub(super) enum Item {
        Bool(bool),
        Integer(i64),
        /// A decimal, string, token, byte sequence or inner list.
        Other,
    }

    /// The members of a dictionary in order (a repeated key keeps its last
    /// value, in its first place), or `None` when `s` is not one.
    pub(super) fn dictionary(s: &[u8]) -> Option<Vec<(String, Item)>> {
        let mut p = Parser { s, i: 0 };
        let mut out: Vec<(String, Item)> = Vec::new();
        p.sp();
        if p.at_end() {
            return Some(out);
        }
        loop {
            let key = p.key()?;
            let value = if p.eat(b'=') {
                if p.peek() == Some(b'(') {
                    p.inner_list()?;
                    Item::Other
                } else {
                    p.bare_item()?
                }
            } else {
                Item::Bool(true)
            };
            p.parameters()?;
            match out.iter_mut().find(|(k, _)| *k == key) {
                Some(slot) => slot.1 = value,
                None => out.push((key, value)),
            }
            p.ows();
            if p.at_end() {
                return Some(out);
            }
            if !p.eat(b',') {
                return None;
            }
            p.ows();
            if p.at_end() {
                return None;
            }
        }
    }

    struct Parser<'a> {
        s: &'a [u8],
        i: usize,
    }

    impl Parser<'_> {
        fn peek(&self) -> Option<u8> {
            self.s.get(self.i).copied()
        }
        fn at_end(&self) -> bool {
            self.i >= self.s.len()
        }
        fn eat(&mut self, b: u8) -> bool {
            if self.peek() == Some(b) {
                self.i += 1;
                true
            } else {
                false
            }
        }
        fn sp(&mut self) {
            while self.peek() == Some(b' ') {
                self.i += 1;
            }
        }
        fn ows(&mut self) {
            while matches!(self.peek(), Some(b' ' | b'\t')) {
                self.i += 1;
            }
        }
        fn key(&mut self) -> Option<String> {
            let start = self.i;
            match self.peek() {
                Some(b) if b.is_ascii_lowercase() || b == b'*' => self.i += 1,
                _ => return None,
            }
            while let Some(b) = self.peek() {
                if b.is_ascii_lowercase() || b.is_ascii_digit() || b"_-.*".contains(&b) {
                    self.i += 1;
                } else {
                    break;
                }
            }
            Some(String::from_utf8_lossy(&self.s[start..self.i]).into_owned())
        }
        fn parameters(&mut self) -> Option<()> {
            while self.eat(b';') {
                self.sp();
                self.key()?;
                if self.eat(b'=') {
                    self.bare_item()?;
                }
            }
            Some(())
        }
        fn inner_list(&mut self) -> Option<()> {
            if !self.eat(b'(') {
                return None;
            }
            loop {
                self.sp();
                if self.eat(b')') {
                    return self.parameters();
                }
                self.bare_item()?;
                self.parameters()?;
                match self.peek() {
                    Some(b' ') | Some(b')') => {}
                    _ => return None,
                }
            }
        }
        fn bare_item(&mut self) -> Option<Item> {
            match self.peek()? {
                b'-' | b'0'..=b'9' => self.number(),
                b'"' => {
                    self.i += 1;
                    loop {
                        match self.peek()? {
                            b'\\' => {
                                self.i += 1;
                                if !matches!(self.peek()?, b'"' | b'\\') {
                                    return None;
                                }
                                self.i += 1;
                            }
                            b'"' => {
                                self.i += 1;
                                return Some(Item::Other);
                            }
                            0x20..=0x7e => self.i += 1,
                            _ => return None,
                        }
                    }
                }
                b'?' => {
                    self.i += 1;
                    let b = match self.peek()? {
                        b'0' => false,
                        b'1' => true,
                        _ => return None,
                    };
                    self.i += 1;
                    Some(Item::Bool(b))
                }
                b':' => {
                    self.i += 1;
                    while self.peek()? != b':' {
                        let b = self.peek()?;
                        if !(b.is_ascii_alphanumeric() || b"+/=".contains(&b)) {
                            return None;
                        }
                        self.i += 1;
                    }
                    self.i += 1;
                    Some(Item::Other)
                }
                b if b.is_ascii_alphabetic() || b == b'*' => {
                    self.i += 1;
                    while let Some(b) = self.peek() {
                        if super::is_tchar(b) || b == b':' || b == b'/' {
                            self.i += 1;
                        } else {
                            break;
                        }
                    }
                    Some(Item::Other)
                }
                _ => None,
            }
        }
        fn number(&mut self) -> Option<Item> {
            let negative = self.eat(b'-');
            let start = self.i;
            while self.peek().is_some_and(|b| b.is_ascii_digit()) {
                self.i += 1;
            }
            let int_len = self.i - start;
            if int_len == 0 {
                return None;
            }
            if self.eat(b'.') {
                let frac = self.i;
                while self.peek().is_some_and(|b| b.is_ascii_digit()) {
                    self.i += 1;
                }
                let frac_len = self.i - frac;
                return (int_len <= 12 && (1..=3).contains(&frac_len)).then_some(Item::Other);
            }
            if int_len > 15 {
                return None;
            }
            let digits = std::str::from_utf8(&self.s[start..self.i]).ok()?;
            let n: i64 = digits.parse().ok()?;
            Some(Item::Integer(if negative { -n } else { n }))
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
