//! The headers that tell clients what the cache did: `X-Cache-Status`,
//! `X-Cache-Layer` and RFC 9211 `Cache-Status`.

use std::fmt::Write;
use std::time::SystemTime;

use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use pingora_cache::CachePhase;
use pingora_http::ResponseHeader;
use pingora_proxy::Session;

use super::RequestCtx;
use crate::metrics::CacheStatus;
use crate::storage::Layer;

/// Name of the cache in `Cache-Status`.
const CACHE_NAME: &str = "tagcache";

const X_CACHE_STATUS: HeaderName = HeaderName::from_static("x-cache-status");
const X_CACHE_LAYER: HeaderName = HeaderName::from_static("x-cache-layer");
const X_CACHE_KEY: HeaderName = HeaderName::from_static("x-cache-key");
const CACHE_STATUS: HeaderName = HeaderName::from_static("cache-status");

/// Where the headers go: a pingora header, which keeps its case map in step,
/// or the bare map of a hit's header under construction, which has none and
/// skips pingora's per-insert name parsing.
pub(super) trait Sink {
    fn put(&mut self, name: HeaderName, value: HeaderValue);

    /// Puts a copy of `value`.
    fn put_copy(&mut self, name: HeaderName, value: &HeaderValue) {
        self.put(name, value.clone());
    }

    /// Puts `text`, if it is a valid field value (else nothing).
    fn put_text(&mut self, name: HeaderName, text: String) {
        if let Ok(value) = HeaderValue::try_from(text) {
            self.put(name, value);
        }
    }
}

impl Sink for ResponseHeader {
    fn put(&mut self, name: HeaderName, value: HeaderValue) {
        // A valid HeaderName and HeaderValue cannot be refused.
        let _ = self.insert_header(name, value);
    }
}

impl Sink for HeaderMap {
    fn put(&mut self, name: HeaderName, value: HeaderValue) {
        self.insert(name, value);
    }
}

/// A hit's header block being written as bytes (the front path): each field
/// is appended as a line, the stored block holding none of these names.
///
/// Values are appended from where they are, without the `HeaderValue` a
/// map needs: a copy of the request id and of `Cache-Status` per hit.
impl Sink for Vec<u8> {
    fn put(&mut self, name: HeaderName, value: HeaderValue) {
        crate::storage::wire::put_field(self, &name, value.as_bytes());
    }

    fn put_copy(&mut self, name: HeaderName, value: &HeaderValue) {
        crate::storage::wire::put_field(self, &name, value.as_bytes());
    }

    fn put_text(&mut self, name: HeaderName, text: String) {
        // What `HeaderValue` accepts: no control characters but tab.
        if text.bytes().all(|b| b == b'\t' || (b >= b' ' && b != 0x7f)) {
            crate::storage::wire::put_field(self, &name, text.as_bytes());
        }
    }
}

/// Works out the status from the cache phase and writes the headers.
pub(super) fn decorate(session: &Session, resp: &mut ResponseHeader, ctx: &mut RequestCtx) {
    let phase = session.cache.phase();
    let status = if !ctx.enabled {
        CacheStatus::Bypass
    } else {
        match phase {
            CachePhase::Hit => CacheStatus::Hit,
            CachePhase::Stale | CachePhase::StaleUpdating => CacheStatus::Stale,
            CachePhase::Expired => CacheStatus::Expired,
            CachePhase::Revalidated | CachePhase::RevalidatedNoCache(_) => CacheStatus::Revalidated,
            CachePhase::Bypass => CacheStatus::Bypass,
            // A miss whose response turned out not storable ends up disabled.
            _ => CacheStatus::Miss,
        }
    };
    let fresh_until = match status {
        CacheStatus::Hit | CacheStatus::Stale => {
            session.cache.maybe_cache_meta().map(|m| m.fresh_until())
        }
        _ => None,
    };
    let code = resp.status;
    write(resp, code, ctx, status, fresh_until, layer(session, status));
}

/// Writes the headers for a hit the proxy answers itself (the fast path, or
/// an entry another instance filled while this one waited), the same ones
/// [`decorate`] writes for a hit pingora-cache served.
pub(super) fn decorate_hit(
    headers: &mut impl Sink,
    code: StatusCode,
    ctx: &mut RequestCtx,
    fresh_until: SystemTime,
    layer: Layer,
) {
    write(
        headers,
        code,
        ctx,
        CacheStatus::Hit,
        Some(fresh_until),
        Some(layer),
    );
}

/// Writes `X-Cache-Status`, `X-Cache-Layer` and `Cache-Status` (and
/// `X-Cache-Key` with debug headers) for `status`, and records it in `ctx`.
fn write(
    resp: &mut impl Sink,
    code: StatusCode,
    ctx: &mut RequestCtx,
    status: CacheStatus,
    fresh_until: Option<SystemTime>,
    layer: Option<Layer>,
) {
    let layer = Layer::name_of(layer);
    ctx.status = Some(status);
    ctx.layer = Some(layer);
    if let Some(id) = &ctx.request_id {
        resp.put_copy(super::request_id::HEADER, id);
    }

    let mut cs = String::with_capacity(64);
    cs.push_str(CACHE_NAME);
    match status {
        CacheStatus::Hit | CacheStatus::Stale => {
            cs.push_str("; hit");
            if let Some(fresh_until) = fresh_until {
                let ttl = match fresh_until.duration_since(SystemTime::now()) {
                    Ok(d) => d.as_secs() as i64,
                    Err(e) => -(e.duration().as_secs() as i64),
                };
                cs.push_str("; ttl=");
                cs.push_str(itoa::Buffer::new().format(ttl));
            }
            if ctx.coalesced {
                cs.push_str("; detail=coalesced");
            }
            if status == CacheStatus::Stale {
                cs.push_str(if ctx.purged.is_some() {
                    "; detail=soft-purged"
                } else {
                    "; detail=stale"
                });
            }
        }
        CacheStatus::Revalidated => {
            cs.push_str("; fwd=stale; fwd-status=304");
        }
        CacheStatus::Miss | CacheStatus::Expired => {
            let fwd = if status == CacheStatus::Expired {
                "stale"
            } else if ctx.client_no_cache {
                "request"
            } else {
                "miss"
            };
            let _ = write!(cs, "; fwd={fwd}");
            if ctx.origin_failed {
                // Nothing came back from the origin to report a status of.
                cs.push_str("; detail=origin-error");
            } else {
                let _ = write!(cs, "; fwd-status={}", code.as_u16());
            }
            if ctx.stored {
                cs.push_str("; stored");
            } else if let Some(why) = ctx.not_stored {
                let _ = write!(cs, "; detail=uncacheable-{}", why.as_str());
            }
            if let Some(p) = ctx.purged {
                let _ = write!(cs, "; detail={p}");
            }
        }
        CacheStatus::Bypass => {
            let detail = match (ctx.route, ctx.bypass) {
                (None, _) => "no-route",
                (Some(_), Some(reason)) => reason.as_str(),
                (Some(_), None) => "bypass",
            };
            let _ = write!(cs, "; fwd=bypass; detail={detail}");
        }
    }
    if let Some(key) = &ctx.key_debug {
        let _ = write!(cs, "; key=\"{}\"", key.replace(['"', '\\'], "_"));
        if let Ok(value) = HeaderValue::from_str(key) {
            resp.put(X_CACHE_KEY, value);
        }
    }
    resp.put(X_CACHE_STATUS, HeaderValue::from_static(status.as_str()));
    resp.put(X_CACHE_LAYER, HeaderValue::from_static(layer));
    // Built from constants, numbers and sanitized text: always valid.
    resp.put_text(CACHE_STATUS, cs);
}

/// `X-Cache-Layer`: the tier a stored response came from (the store marks
/// Redis hits in the meta), or the origin (`None`).
fn layer(session: &Session, status: CacheStatus) -> Option<Layer> {
    match status {
        CacheStatus::Hit | CacheStatus::Stale | CacheStatus::Revalidated => Some(
            session
                .cache
                .maybe_cache_meta()
                .map_or(Layer::Memory, Layer::of),
        ),
        CacheStatus::Miss | CacheStatus::Expired | CacheStatus::Bypass => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The byte sink checks a value itself (no `HeaderValue` per hit): it
    /// must accept exactly what `HeaderValue` accepts.
    #[test]
    fn the_byte_sink_takes_exactly_the_values_header_value_takes() {
        let samples = (0u32..0x100)
            .filter_map(char::from_u32)
            .chain(['\u{2028}', '€', '日']);
        for c in samples {
            let text = format!("a{c}b");
            let mut out = Vec::new();
            out.put_text(CACHE_STATUS, text.clone());
            assert_eq!(
                !out.is_empty(),
                HeaderValue::try_from(text).is_ok(),
                "{c:?}"
            );
        }
    }
}
