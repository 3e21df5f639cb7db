//! Freshness of routes with `freshness: origin`: RFC 9111 as a shared cache,
//! RFC 5861's serve-stale directives and RFC 9213's targeted fields.
//!
//! Pure: an origin response's status, headers and the times of the exchange
//! go in, a [`Plan`] (or why the response is not stored) comes out. The
//! cache layer turns a plan into pingora's `CacheMeta`: its epoch (the time
//! the response was `age` old, so that pingora's `Age` on a hit is the
//! response's current age, RFC 9111 §4.2.3) and its end of freshness.
//!
//! Which directives count (RFC 9213 §2.1): the first of
//! `Tagcache-Cache-Control`, `CDN-Cache-Control` that is present, a valid
//! dictionary and not empty, and then `Cache-Control` and `Expires` are
//! ignored entirely; otherwise `Cache-Control` (every line) and `Expires`.
//!
//! The freshness lifetime (§4.2.1) is `s-maxage`, else `max-age`, else
//! `Expires` minus `Date`. A duplicated or invalid one of these makes the
//! response stale on arrival (§4.2.1: "either the first occurrence should
//! be used or the response should be considered stale"; we take the
//! stricter). Without any of them, a response whose status is heuristically
//! cacheable (RFC 9110 §15.1), or which is marked `public`, gets the route's
//! `default_ttl` when the operator set one, else [`HEURISTIC_FRACTION`] of
//! the time since its `Last-Modified`, at most [`HEURISTIC_CAP`] (§4.2.2);
//! else it is not stored. Every lifetime is capped by the route's `max_ttl`.
//!
//! `no-cache` stores the response stale on arrival, so every use is
//! revalidated; `must-revalidate`, `proxy-revalidate` and `s-maxage` (which
//! implies `proxy-revalidate`, §5.2.2.10) forbid serving it stale at all. A
//! response that is stale on arrival is stored only when it has a validator
//! (`ETag` or `Last-Modified`), since it can only ever be revalidated.

use std::time::{Duration, SystemTime};

use http::header::{AGE, DATE, ETAG, EXPIRES, LAST_MODIFIED};
use http::HeaderMap;

use super::directives::{Delta, Directives};
use super::storability::NotStored;

/// The share of the time since `Last-Modified` that a response without
/// explicit freshness stays fresh (RFC 9111 §4.2.2 suggests "no more than
/// some fraction"; 10% is the fraction it names as typical).
pub(crate) const HEURISTIC_FRACTION: u32 = 10;

/// The longest heuristic freshness, before the route's `max_ttl`.
pub(crate) const HEURISTIC_CAP: Duration = Duration::from_secs(24 * 3600);

/// The targeted fields tagcache reads, most specific first (RFC 9213 §2.1).
pub(crate) const TARGETS: [&str; 2] = ["tagcache-cache-control", "cdn-cache-control"];

/// Statuses that are heuristically cacheable (RFC 9110 §15.1), without 206:
/// tagcache never stores partial content, its origin requests carry no
/// `Range`. Also the default `statuses` of an origin-mode route.
pub(crate) const HEURISTIC_STATUSES: [u16; 11] = crate::config::ORIGIN_STATUSES;

/// What an origin-mode route allows, from its config.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Bounds {
    /// The longest freshness (and stale window) any response gets.
    pub max_ttl: Duration,
    /// Freshness for responses that carry none, instead of the heuristic.
    pub default_ttl: Option<Duration>,
    /// Stale-while-revalidate when the origin gives none (the route's).
    pub stale_while_revalidate: Duration,
    /// Stale-if-error when the origin gives none (the route's).
    pub stale_if_error: Duration,
}

/// One exchange with the origin.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Exchange<'a> {
    pub status: u16,
    pub headers: &'a HeaderMap,
    /// When the request was sent.
    pub request_time: SystemTime,
    /// When the response header arrived.
    pub response_time: SystemTime,
}

/// Where a response's freshness lifetime came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Source {
    SMaxAge,
    MaxAge,
    Expires,
    /// A fraction of the time since `Last-Modified` (§4.2.2).
    Heuristic,
    /// The route's `default_ttl`.
    DefaultTtl,
    /// Duplicated or invalid freshness information: stale (§4.2.1).
    Invalid,
    /// `no-cache` and nothing else: stale, to be revalidated.
    NoCache,
}

/// How a storable response is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Plan {
    pub source: Source,
    /// Freshness lifetime, capped; zero for `no-cache`.
    pub lifetime: Duration,
    /// Its age when it arrived (§4.2.3 `corrected_initial_age`), in seconds.
    pub age: Duration,
    /// Serve-stale windows; zero when it may never be served stale.
    pub stale: StaleRules,
    /// It carries `ETag` or `Last-Modified`.
    pub validator: bool,
}

impl Plan {
    /// The time at which the response was zero seconds old: pingora's
    /// epoch, from which it measures `Age`.
    pub(crate) fn epoch(&self, response_time: SystemTime) -> SystemTime {
        response_time.checked_sub(self.age).unwrap_or(response_time)
    }

    /// When the response stops being fresh: strictly in the past when it
    /// is stale on arrival.
    pub(crate) fn fresh_until(&self, response_time: SystemTime) -> SystemTime {
        let until = self.epoch(response_time) + self.lifetime;
        if until > response_time {
            until
        } else {
            // pingora's `is_fresh` counts the end itself as fresh.
            let before = response_time
                .checked_sub(Duration::from_secs(1))
                .unwrap_or(response_time);
            until.min(before)
        }
    }

    /// Whether the response is stale when it arrives (so it is only ever
    /// revalidated before use).
    pub(crate) fn stale_on_arrival(&self) -> bool {
        self.lifetime <= self.age
    }
}

/// How long past its freshness a stored response may be served.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct StaleRules {
    /// While one background revalidation runs (RFC 5861 §3).
    pub while_revalidate: Duration,
    /// When the origin fails (RFC 5861 §4).
    pub if_error: Duration,
}

/// The directives that decide the policy: the first valid targeted field, or
/// `Cache-Control`; and whether `Expires` still counts.
pub(crate) fn select(headers: &HeaderMap) -> (Directives, bool) {
    for name in TARGETS {
        if let Some(d) = Directives::targeted(headers, name) {
            return (d, false);
        }
    }
    (Directives::of(headers), true)
}

/// The serve-stale windows of a response with directives `cc`: none under
/// `must-revalidate`, `proxy-revalidate`, `s-maxage` or `no-cache`; else the
/// origin's (an invalid one counts as none), else the route's; capped by
/// `max_ttl`.
pub(crate) fn stale_rules(cc: &Directives, bounds: &Bounds) -> StaleRules {
    if cc.must_revalidate || cc.proxy_revalidate || cc.s_maxage || cc.no_cache {
        return StaleRules::default();
    }
    let window = |d: Delta, route: Duration| {
        let w = match d {
            Delta::Seconds(s) => Duration::from_secs(u64::from(s)),
            Delta::Invalid => Duration::ZERO,
            Delta::Absent => route,
        };
        w.min(bounds.max_ttl)
    };
    StaleRules {
        while_revalidate: window(cc.stale_while_revalidate, bounds.stale_while_revalidate),
        if_error: window(cc.stale_if_error, bounds.stale_if_error),
    }
}

/// How a response from the origin is stored, or why it is not. `cap` is a
/// shorter limit than `max_ttl` from the run-time settings, if any.
///
/// # Errors
/// The reason the response is not stored.
pub(crate) fn plan(
    ex: &Exchange<'_>,
    bounds: &Bounds,
    cap: Option<Duration>,
) -> Result<Plan, NotStored> {
    let (cc, expires_counts) = select(ex.headers);
    if cc.malformed {
        return Err(NotStored::CacheControlInvalid);
    }
    if cc.private {
        return Err(NotStored::Private);
    }
    if cc.no_store {
        return Err(NotStored::NoStore);
    }
    let date = single_date(ex.headers, DATE);
    let (source, lifetime) = match lifetime(ex, &cc, expires_counts, date, bounds) {
        Some(found) => found,
        // Stored only to be revalidated: no lifetime is needed.
        None if cc.no_cache => (Source::NoCache, Duration::ZERO),
        None => return Err(NotStored::NoFreshness),
    };
    let max = cap.map_or(bounds.max_ttl, |c| c.min(bounds.max_ttl));
    let lifetime = if cc.no_cache {
        Duration::ZERO
    } else {
        lifetime.min(max)
    };
    let plan = Plan {
        source,
        lifetime,
        age: corrected_initial_age(ex, date),
        stale: stale_rules(&cc, bounds),
        validator: ex.headers.contains_key(ETAG) || ex.headers.contains_key(LAST_MODIFIED),
    };
    if plan.stale_on_arrival() && !plan.validator {
        return Err(if cc.no_cache {
            NotStored::NoCache
        } else {
            NotStored::StaleOnArrival
        });
    }
    Ok(plan)
}

/// The freshness lifetime before caps, and where it came from (§4.2.1,
/// §4.2.2); `None` when nothing allows storing the response.
fn lifetime(
    ex: &Exchange<'_>,
    cc: &Directives,
    expires_counts: bool,
    date: Option<SystemTime>,
    bounds: &Bounds,
) -> Option<(Source, Duration)> {
    let explicit = |d: Delta, source: Source| match d {
        Delta::Absent => None,
        Delta::Seconds(s) => Some((source, Duration::from_secs(u64::from(s)))),
        Delta::Invalid => Some((Source::Invalid, Duration::ZERO)),
    };
    if let Some(found) = explicit(cc.s_maxage_value, Source::SMaxAge)
        .or_else(|| explicit(cc.max_age, Source::MaxAge))
    {
        return Some(found);
    }
    if expires_counts && ex.headers.contains_key(EXPIRES) {
        // An invalid or repeated `Expires` is a time in the past (§5.3).
        let lifetime = single_date(ex.headers, EXPIRES)
            .and_then(|e| e.duration_since(date.unwrap_or(ex.response_time)).ok())
            .map(whole_seconds);
        return Some(match lifetime {
            Some(l) => (Source::Expires, l),
            None => (Source::Invalid, Duration::ZERO),
        });
    }
    if !(HEURISTIC_STATUSES.contains(&ex.status) || cc.public) {
        return None;
    }
    if let Some(ttl) = bounds.default_ttl {
        return Some((Source::DefaultTtl, ttl));
    }
    let modified = single_date(ex.headers, LAST_MODIFIED)?;
    let since = date
        .unwrap_or(ex.response_time)
        .duration_since(modified)
        .ok()?;
    let fresh = whole_seconds(since / HEURISTIC_FRACTION).min(HEURISTIC_CAP);
    (!fresh.is_zero()).then_some((Source::Heuristic, fresh))
}

/// §4.2.3's `corrected_initial_age`, in whole seconds: the larger of the
/// apparent age (`response_time - Date`) and the origin's `Age` plus the
/// time the response took to arrive. An unreadable or repeated `Age` counts
/// as absent.
fn corrected_initial_age(ex: &Exchange<'_>, date: Option<SystemTime>) -> Duration {
    let apparent = date
        .and_then(|d| unix_secs(ex.response_time).checked_sub(unix_secs(d)))
        .unwrap_or(0);
    let delay = ex
        .response_time
        .duration_since(ex.request_time)
        .unwrap_or_default()
        .as_secs();
    let mut ages = ex.headers.get_all(AGE).iter();
    let age_value = match (ages.next(), ages.next()) {
        (Some(v), None) => v
            .to_str()
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok())
            .unwrap_or(0),
        _ => 0,
    };
    Duration::from_secs(apparent.max(age_value.saturating_add(delay)))
}

/// The one value of a date field; `None` when absent, repeated or not an
/// HTTP-date.
fn single_date(headers: &HeaderMap, name: http::HeaderName) -> Option<SystemTime> {
    let mut values = headers.get_all(name).iter();
    let (Some(v), None) = (values.next(), values.next()) else {
        return None;
    };
    httpdate::parse_http_date(v.to_str().ok()?.trim()).ok()
}

fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn whole_seconds(d: Duration) -> Duration {
    Duration::from_secs(d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: u64 = 1_700_000_000;

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(T0 + secs)
    }

    fn date(secs: u64) -> String {
        httpdate::fmt_http_date(at(secs))
    }

    fn bounds() -> Bounds {
        Bounds {
            max_ttl: Duration::from_secs(86_400),
            default_ttl: None,
            stale_while_revalidate: Duration::ZERO,
            stale_if_error: Duration::ZERO,
        }
    }

    /// What a plan comes to, in whole seconds, for compact expectations.
    #[derive(Debug, PartialEq, Eq)]
    struct Got {
        source: Source,
        lifetime: u64,
        age: u64,
        swr: u64,
        sie: u64,
    }

    fn got(source: Source, lifetime: u64, age: u64) -> Result<Got, NotStored> {
        Ok(Got {
            source,
            lifetime,
            age,
            swr: 0,
            sie: 0,
        })
    }

    fn run(status: u16, headers: &[(&str, &str)], b: &Bounds) -> Result<Got, NotStored> {
        let mut h = HeaderMap::new();
        for (k, v) in headers {
            h.append(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        // Sent and answered at once: ages come from `Age` and `Date` alone.
        let ex = Exchange {
            status,
            headers: &h,
            request_time: at(100),
            response_time: at(100),
        };
        plan(&ex, b, None).map(|p| Got {
            source: p.source,
            lifetime: p.lifetime.as_secs(),
            age: p.age.as_secs(),
            swr: p.stale.while_revalidate.as_secs(),
            sie: p.stale.if_error.as_secs(),
        })
    }

    fn check(headers: &[(&str, &str)], expected: Result<Got, NotStored>) {
        assert_eq!(run(200, headers, &bounds()), expected, "{headers:?}");
    }

    #[test]
    fn explicit_freshness_sources_and_their_precedence() {
        let d = date(100);
        let exp = date(160);
        check(
            &[("cache-control", "max-age=60")],
            got(Source::MaxAge, 60, 0),
        );
        check(
            &[("cache-control", "max-age=60, s-maxage=30")],
            got(Source::SMaxAge, 30, 0),
        );
        check(
            &[("date", &d), ("expires", &exp)],
            got(Source::Expires, 60, 0),
        );
        check(
            &[
                ("date", &d),
                ("expires", &exp),
                ("cache-control", "max-age=5"),
            ],
            got(Source::MaxAge, 5, 0),
        );
        // `Expires` is measured from `Date`, not from the cache's clock.
        check(
            &[("date", &date(40)), ("expires", &date(200))],
            Ok(Got {
                source: Source::Expires,
                lifetime: 160,
                age: 60,
                swr: 0,
                sie: 0,
            }),
        );
    }

    #[test]
    fn duplicate_or_invalid_freshness_is_stale_on_arrival() {
        let etag = ("etag", "\"v\"");
        for cc in [
            "max-age=5, max-age=5",
            "max-age=x",
            "max-age",
            "s-maxage=1, s-maxage=2",
        ] {
            check(&[("cache-control", cc), etag], got(Source::Invalid, 0, 0));
            check(&[("cache-control", cc)], Err(NotStored::StaleOnArrival));
        }
        // Two lines count as much as one.
        check(
            &[
                ("cache-control", "max-age=5"),
                ("cache-control", "max-age=6"),
                etag,
            ],
            got(Source::Invalid, 0, 0),
        );
        for expires in [&["0"][..], &["soon"], &[&date(200), &date(300)]] {
            let mut h: Vec<(&str, &str)> = expires.iter().map(|e| ("expires", *e)).collect();
            h.push(etag);
            check(&h, got(Source::Invalid, 0, 0));
        }
        // delta-seconds saturate rather than fail (§1.2.2), then max_ttl caps.
        check(
            &[("cache-control", "max-age=99999999999999999999")],
            got(Source::MaxAge, 86_400, 0),
        );
    }

    #[test]
    fn age_is_the_larger_of_apparent_age_and_corrected_age() {
        // Sent at 98, answered at 100: the 2 s on the way count.
        let with = |h: &HeaderMap| {
            plan(
                &Exchange {
                    status: 200,
                    headers: h,
                    request_time: at(98),
                    response_time: at(100),
                },
                &bounds(),
                None,
            )
        };
        let mut h = HeaderMap::new();
        h.insert(AGE, "30".parse().unwrap());
        h.insert(http::header::CACHE_CONTROL, "max-age=100".parse().unwrap());
        let p = with(&h).unwrap();
        assert_eq!(p.age, Duration::from_secs(32));
        assert_eq!(p.epoch(at(100)), at(68));
        assert_eq!(p.fresh_until(at(100)), at(168));
        // A `Date` further back than that wins (apparent age).
        h.insert(DATE, date(50).parse().unwrap());
        assert_eq!(with(&h).unwrap().age, Duration::from_secs(50));
        // A `Date` in the future is no negative age.
        h.insert(DATE, date(500).parse().unwrap());
        assert_eq!(with(&h).unwrap().age, Duration::from_secs(32));
        // Older than its lifetime: stale on arrival, and without a validator
        // not stored.
        h.insert(AGE, "200".parse().unwrap());
        assert_eq!(with(&h), Err(NotStored::StaleOnArrival));
        h.insert(ETAG, "\"v\"".parse().unwrap());
        let p = with(&h).unwrap();
        assert!(p.stale_on_arrival());
        assert!(p.fresh_until(at(100)) < at(100));
    }

    #[test]
    fn heuristic_freshness_needs_last_modified_and_a_cacheable_status() {
        let d = date(1000);
        let lm = date(0);
        check(
            &[("date", &d), ("last-modified", &lm)],
            Ok(Got {
                source: Source::Heuristic,
                lifetime: 100,
                age: 0,
                swr: 0,
                sie: 0,
            }),
        );
        check(&[("date", &d)], Err(NotStored::NoFreshness));
        // Capped at a day even when the route allows more.
        let old = httpdate::fmt_http_date(SystemTime::UNIX_EPOCH);
        let b = Bounds {
            max_ttl: Duration::from_secs(10 * 86_400),
            ..bounds()
        };
        assert_eq!(
            run(200, &[("last-modified", &old)], &b).map(|g| g.lifetime),
            Ok(HEURISTIC_CAP.as_secs())
        );
        // Not heuristically cacheable: 302, 500; unless `public`.
        for status in [302, 500] {
            assert_eq!(
                run(status, &[("date", &d), ("last-modified", &lm)], &bounds()),
                Err(NotStored::NoFreshness)
            );
        }
        assert_eq!(
            run(
                302,
                &[
                    ("date", &d),
                    ("last-modified", &lm),
                    ("cache-control", "public")
                ],
                &bounds()
            )
            .map(|g| g.source),
            Ok(Source::Heuristic)
        );
        // Explicitly fresh: any status is stored for the given time.
        assert_eq!(
            run(404, &[("cache-control", "max-age=9")], &bounds()).map(|g| g.lifetime),
            Ok(9)
        );
    }

    #[test]
    fn default_ttl_applies_only_where_the_origin_says_nothing() {
        let b = Bounds {
            default_ttl: Some(Duration::from_secs(42)),
            ..bounds()
        };
        assert_eq!(run(200, &[], &b), got(Source::DefaultTtl, 42, 0));
        assert_eq!(
            run(200, &[("cache-control", "max-age=7")], &b).map(|g| g.lifetime),
            Ok(7)
        );
        assert_eq!(run(500, &[], &b), Err(NotStored::NoFreshness));
    }

    #[test]
    fn max_ttl_and_the_run_time_cap_limit_every_source() {
        let b = Bounds {
            max_ttl: Duration::from_secs(10),
            ..bounds()
        };
        assert_eq!(
            run(200, &[("cache-control", "s-maxage=600")], &b).map(|g| g.lifetime),
            Ok(10)
        );
        let mut h = HeaderMap::new();
        h.insert(http::header::CACHE_CONTROL, "max-age=600".parse().unwrap());
        let ex = Exchange {
            status: 200,
            headers: &h,
            request_time: at(0),
            response_time: at(0),
        };
        assert_eq!(
            plan(&ex, &bounds(), Some(Duration::from_secs(3))).map(|p| p.lifetime),
            Ok(Duration::from_secs(3))
        );
    }

    #[test]
    fn storage_directives() {
        check(
            &[("cache-control", "private, max-age=60")],
            Err(NotStored::Private),
        );
        check(
            &[
                ("cache-control", "max-age=60"),
                ("cache-control", "Private=\"x\""),
            ],
            Err(NotStored::Private),
        );
        check(
            &[("cache-control", "max-age=60, no-store")],
            Err(NotStored::NoStore),
        );
        check(
            &[("cache-control", "max-age=60, \"x")],
            Err(NotStored::CacheControlInvalid),
        );
        // no-cache: stored to be revalidated every time, only with a validator.
        check(
            &[("cache-control", "no-cache, max-age=60")],
            Err(NotStored::NoCache),
        );
        check(&[("cache-control", "no-cache")], Err(NotStored::NoCache));
        check(
            &[("cache-control", "no-cache"), ("etag", "\"a\"")],
            got(Source::NoCache, 0, 0),
        );
        check(
            &[("cache-control", "no-cache, max-age=60"), ("etag", "\"a\"")],
            got(Source::MaxAge, 0, 0),
        );
        check(
            &[("cache-control", "public, max-age=60")],
            got(Source::MaxAge, 60, 0),
        );
    }

    #[test]
    fn serve_stale_windows() {
        let b = Bounds {
            stale_while_revalidate: Duration::from_secs(5),
            stale_if_error: Duration::from_secs(6),
            ..bounds()
        };
        let windows = |cc: &str| run(200, &[("cache-control", cc)], &b).map(|g| (g.swr, g.sie));
        assert_eq!(windows("max-age=1"), Ok((5, 6)));
        assert_eq!(
            windows("max-age=1, stale-while-revalidate=30, stale-if-error=40"),
            Ok((30, 40))
        );
        assert_eq!(
            windows("max-age=1, stale-while-revalidate=30, stale-while-revalidate=30"),
            Ok((0, 6))
        );
        for never in [
            "max-age=1, stale-if-error=40, must-revalidate",
            "max-age=1, stale-if-error=40, proxy-revalidate",
            "s-maxage=1, stale-if-error=40",
        ] {
            assert_eq!(windows(never), Ok((0, 0)), "{never}");
        }
        assert_eq!(windows("max-age=1, stale-if-error=999999"), Ok((5, 86_400)));
    }

    #[test]
    fn targeted_fields_win_entirely_when_valid() {
        // RFC 9213: the most specific valid field decides; Cache-Control and
        // Expires are then ignored.
        check(
            &[
                ("cache-control", "no-store"),
                ("cdn-cache-control", "max-age=30"),
            ],
            got(Source::MaxAge, 30, 0),
        );
        check(
            &[
                ("cache-control", "max-age=5"),
                ("cdn-cache-control", "max-age=30"),
                ("tagcache-cache-control", "max-age=60"),
            ],
            got(Source::MaxAge, 60, 0),
        );
        check(
            &[
                ("cache-control", "max-age=5"),
                ("Tagcache-Cache-Control", "no-store"),
            ],
            Err(NotStored::NoStore),
        );
        check(
            &[
                ("expires", &date(200)),
                ("cdn-cache-control", "public"),
                ("last-modified", &date(0)),
                ("date", &date(100)),
            ],
            got(Source::Heuristic, 10, 0),
        );
        // Invalid as a dictionary (uppercase key, trailing comma, quoted
        // number): ignored, the next field decides.
        for bad in ["Max-Age=30", "max-age=30,", "max-age=\"30", ""] {
            check(
                &[("cache-control", "max-age=5"), ("cdn-cache-control", bad)],
                got(Source::MaxAge, 5, 0),
            );
        }
        // A valid dictionary with a value of the wrong type: that directive
        // is ignored, the field still wins.
        check(
            &[
                ("cache-control", "max-age=5"),
                ("cdn-cache-control", "max-age=\"30\", s-maxage=20"),
            ],
            got(Source::SMaxAge, 20, 0),
        );
        check(
            &[
                ("cache-control", "max-age=5"),
                ("cdn-cache-control", "max-age=30, no-store=?0;x=1"),
            ],
            got(Source::MaxAge, 30, 0),
        );
        check(
            &[
                ("cdn-cache-control", "max-age=30"),
                ("cdn-cache-control", "private"),
            ],
            Err(NotStored::Private),
        );
    }

    #[test]
    fn dictionary_syntax() {
        use crate::cache::directives::Directives;
        let of = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert("cdn-cache-control", v.parse().unwrap());
            Directives::targeted(&h, "cdn-cache-control")
        };
        assert!(of("max-age=1, a=(1 2);q=?1, b=:aGk=:, c=1.5, d=tok/x, e=\"s\\\"\"").is_some());
        assert_eq!(
            of("max-age=10").map(|d| d.max_age),
            Some(Delta::Seconds(10))
        );
        assert_eq!(of("max-age=-1").map(|d| d.max_age), Some(Delta::Absent));
        for bad in ["a=(1 2", "a=1.2345", "a=?2", "a b", "A", ",a"] {
            assert!(of(bad).is_none(), "{bad}");
        }
    }
}
