//! `freshness: origin` in the cache layer: an origin response's timing as
//! pingora's `CacheMeta` holds it (from [`freshness_policy`]), the header
//! update of a 304 (RFC 9111 §4.3.4), and what a stored entry may still be
//! served stale for.
//!
//! A stored response's epoch is the time it was zero seconds old
//! (`response_time - corrected_initial_age`, §4.2.3), set as the meta's
//! epoch override: pingora and the memory store measure `Age` and the
//! freshness cap from it, so a hit's `Age` counts the origin's `Age`.
//!
//! pingora keeps an entry as long as its longer serve-stale window, and only
//! revalidates an entry it still has. A stale entry with a validator is
//! therefore kept `max_ttl` past its freshness through the meta's
//! stale-if-error window; whether it may really be served stale is decided
//! from its stored header at lookup ([`StaleLimits`]).

use std::time::{Duration, SystemTime};

use http::header;
use pingora_cache::CacheMeta;
use pingora_error::{Error, ErrorSource, ErrorType};
use pingora_http::ResponseHeader;

use super::freshness_policy::{self, Bounds, Exchange};
use super::storability::NotStored;
use crate::config::{Freshness, Route};

/// The bounds of an origin-mode route; `None` on a config-mode one.
pub(super) fn bounds(route: &Route) -> Option<Bounds> {
    match route.freshness {
        Freshness::Config => None,
        Freshness::Origin {
            max_ttl,
            default_ttl,
        } => Some(Bounds {
            max_ttl,
            default_ttl,
            stale_while_revalidate: route.stale_while_revalidate,
            stale_if_error: route.stale_if_error,
        }),
    }
}

/// The times a stored response's `CacheMeta` holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Timing {
    pub fresh_until: SystemTime,
    /// When the response was zero seconds old.
    pub epoch: SystemTime,
    pub stale_while_revalidate: u32,
    /// The real window, or the time kept for revalidation if longer.
    pub stale_if_error: u32,
}

/// The timing of `resp`, received `now` after the origin took `origin_time`
/// (none known: no delay), under `bounds` and the run-time `cap`.
///
/// # Errors
/// Why the response is not stored.
pub(super) fn timing(
    bounds: &Bounds,
    resp: &ResponseHeader,
    cap: Option<Duration>,
    origin_time: Option<Duration>,
    now: SystemTime,
) -> Result<Timing, NotStored> {
    let request_time = origin_time.and_then(|t| now.checked_sub(t)).unwrap_or(now);
    let exchange = Exchange {
        status: resp.status.as_u16(),
        headers: &resp.headers,
        request_time,
        response_time: now,
    };
    let plan = freshness_policy::plan(&exchange, bounds, cap)?;
    let keep = if plan.validator {
        bounds.max_ttl
    } else {
        Duration::ZERO
    };
    Ok(Timing {
        fresh_until: plan.fresh_until(now),
        epoch: plan.epoch(now),
        stale_while_revalidate: secs(plan.stale.while_revalidate),
        stale_if_error: secs(plan.stale.if_error.max(keep)),
    })
}

/// Fields a 304 never replaces in a stored response (RFC 9111 §3.2): the
/// stored body's length, coding and range, and hop-by-hop fields.
const KEPT_ON_304: [header::HeaderName; 8] = [
    header::CONTENT_LENGTH,
    header::CONTENT_ENCODING,
    header::CONTENT_RANGE,
    header::TRANSFER_ENCODING,
    header::CONNECTION,
    header::UPGRADE,
    header::TE,
    header::TRAILER,
];

/// The stored response `stored` updated with a 304's fields (RFC 9111
/// §4.3.4 and §3.2): each field the 304 carries replaces the stored one,
/// except [`KEPT_ON_304`].
pub(super) fn freshen(stored: &ResponseHeader, not_modified: &ResponseHeader) -> ResponseHeader {
    let mut out = stored.clone();
    let mut replaced: Vec<&header::HeaderName> = Vec::new();
    for (name, value) in &not_modified.headers {
        if KEPT_ON_304.contains(name) || name == "keep-alive" || name == "proxy-connection" {
            continue;
        }
        if !replaced.contains(&name) {
            out.remove_header(name);
            replaced.push(name);
        }
        let _ = out.append_header(name.clone(), value.clone());
    }
    out
}

/// A header as stored: without the origin's `Age`, which the epoch holds.
pub(super) fn stored(resp: &ResponseHeader) -> ResponseHeader {
    let mut out = resp.clone();
    out.remove_header(&header::AGE);
    out
}

/// Until when a found entry may be served stale, from its stored header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct StaleLimits {
    while_revalidate: SystemTime,
    if_error: SystemTime,
}

impl StaleLimits {
    /// The limits of `meta`, stale since `expired_at` when a soft purge made
    /// it so before its end of freshness.
    pub(super) fn of(bounds: &Bounds, meta: &CacheMeta, expired_at: Option<SystemTime>) -> Self {
        let (cc, _) = freshness_policy::select(meta.headers());
        let rules = freshness_policy::stale_rules(&cc, bounds);
        let from = expired_at.map_or(meta.fresh_until(), |at| at.min(meta.fresh_until()));
        StaleLimits {
            while_revalidate: from + rules.while_revalidate,
            if_error: from + rules.if_error,
        }
    }

    /// Whether a stale entry may be served now: while one revalidation runs
    /// (`error` is `None`), or when the origin failed.
    pub(super) fn allow(&self, error: Option<&Error>, now: SystemTime) -> bool {
        match error {
            None => now <= self.while_revalidate,
            Some(e) => {
                now <= self.if_error
                    && (e.esource() == &ErrorSource::Upstream
                        || matches!(e.etype(), ErrorType::HTTPStatus(code) if *code >= 500))
            }
        }
    }
}

fn secs(d: Duration) -> u32 {
    u32::try_from(d.as_secs()).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resp(status: u16, headers: &[(&str, &str)]) -> ResponseHeader {
        let mut r = ResponseHeader::build(status, None).unwrap();
        for (k, v) in headers {
            r.append_header(k.to_string(), *v).unwrap();
        }
        r
    }

    fn values(r: &ResponseHeader, name: &str) -> Vec<String> {
        r.headers
            .get_all(name)
            .iter()
            .map(|v| v.to_str().unwrap().to_string())
            .collect()
    }

    #[test]
    fn a_304_replaces_every_field_it_carries_but_the_body_s_own() {
        let stored = resp(
            200,
            &[
                ("content-length", "100"),
                ("content-encoding", "gzip"),
                ("etag", "\"a\""),
                ("x-stamp", "one"),
                ("x-kept", "yes"),
                ("cache-control", "max-age=1"),
                ("cache-control", "public"),
            ],
        );
        let nm = resp(
            304,
            &[
                ("content-length", "0"),
                ("content-encoding", "br"),
                ("etag", "\"a\""),
                ("x-stamp", "two"),
                ("x-new", "1"),
                ("x-new", "2"),
                ("cache-control", "max-age=50"),
                ("connection", "close"),
            ],
        );
        let out = freshen(&stored, &nm);
        assert_eq!(out.status, 200);
        assert_eq!(values(&out, "content-length"), ["100"]);
        assert_eq!(values(&out, "content-encoding"), ["gzip"]);
        assert_eq!(values(&out, "x-stamp"), ["two"]);
        assert_eq!(values(&out, "x-kept"), ["yes"]);
        assert_eq!(values(&out, "x-new"), ["1", "2"]);
        assert_eq!(values(&out, "cache-control"), ["max-age=50"]);
        assert!(values(&out, "connection").is_empty());
    }

    #[test]
    fn entries_with_a_validator_are_kept_for_revalidation() {
        let b = Bounds {
            max_ttl: Duration::from_secs(600),
            default_ttl: None,
            stale_while_revalidate: Duration::ZERO,
            stale_if_error: Duration::ZERO,
        };
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let t = timing(
            &b,
            &resp(200, &[("cache-control", "max-age=10"), ("age", "4")]),
            None,
            None,
            now,
        )
        .unwrap();
        assert_eq!(t.epoch, now - Duration::from_secs(4));
        assert_eq!(t.fresh_until, now + Duration::from_secs(6));
        assert_eq!((t.stale_while_revalidate, t.stale_if_error), (0, 0));
        let t = timing(
            &b,
            &resp(200, &[("cache-control", "no-cache"), ("etag", "\"x\"")]),
            None,
            None,
            now,
        )
        .unwrap();
        assert!(t.fresh_until < now);
        assert_eq!(t.stale_if_error, 600);
    }
}
