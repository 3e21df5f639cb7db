//! A stored response that may be served: what either tier hands the hit
//! path, with its age, freshness and "dead at" each worked out here only.

use std::time::{Duration, SystemTime};

use bytes::Bytes;
use pingora_cache::key::HashBinary;
use pingora_cache::CacheMeta;
use pingora_http::ResponseHeader;

use super::{EntryInfo, Layer};

/// A stored response as found in a tier, before the hit policy decides
/// whether it may be served to a request as it is.
#[derive(Debug)]
pub struct Servable<'a> {
    /// The stored response header.
    pub header: &'a ResponseHeader,
    /// The body (shared, not copied).
    pub body: Bytes,
    /// When the response was stored or last revalidated (`CacheMeta::updated`).
    pub updated: SystemTime,
    /// Where its age counts from (`CacheMeta::epoch`).
    pub epoch: SystemTime,
    /// When it stops being fresh.
    pub fresh_until: SystemTime,
    /// The `Vary` variance it was stored under, if any.
    pub variance: Option<HashBinary>,
    /// Its tags and birth epoch.
    pub info: Option<&'a EntryInfo>,
    /// The tier it was found in.
    pub layer: Layer,
}

impl<'a> Servable<'a> {
    /// The response `meta` describes, with `body`, found in `layer`.
    pub fn of_meta(meta: &'a CacheMeta, body: Bytes, layer: Layer) -> Self {
        Servable {
            header: meta.response_header(),
            body,
            updated: meta.updated(),
            epoch: meta.epoch(),
            fresh_until: meta.fresh_until(),
            variance: meta.variance(),
            info: EntryInfo::of(meta).map(|i| &**i),
            layer,
        }
    }

    /// Its age at `now`, measured as `CacheMeta::age` does (RFC 9111 §4.2.3,
    /// without the origin's own `Age`): from the epoch.
    pub fn age(&self, now: SystemTime) -> Duration {
        now.duration_since(self.epoch).unwrap_or_default()
    }

    /// Whether it is still fresh at `now`.
    pub fn is_fresh(&self, now: SystemTime) -> bool {
        now < self.fresh_until
    }
}

/// When an entry fresh until `fresh_until` dies: once its longer serve-stale
/// window (`stale-while-revalidate`, `stale-if-error`, in seconds) has run
/// out too. `None` when that moment cannot be represented.
pub fn dead_at(fresh_until: SystemTime, swr_sec: u32, sie_sec: u32) -> Option<SystemTime> {
    fresh_until.checked_add(Duration::from_secs(u64::from(swr_sec.max(sie_sec))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_longer_stale_window_decides_when_an_entry_dies() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
        assert_eq!(dead_at(t, 0, 0), Some(t));
        assert_eq!(dead_at(t, 30, 5), Some(t + Duration::from_secs(30)));
        assert_eq!(dead_at(t, 5, 60), Some(t + Duration::from_secs(60)));
    }

    #[test]
    fn age_counts_from_the_epoch_and_never_goes_negative() {
        let header = ResponseHeader::build(200, None).unwrap();
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
        let s = Servable {
            header: &header,
            body: Bytes::new(),
            updated: t,
            epoch: t,
            fresh_until: t + Duration::from_secs(10),
            variance: None,
            info: None,
            layer: Layer::Memory,
        };
        assert_eq!(s.age(t + Duration::from_secs(7)), Duration::from_secs(7));
        assert_eq!(s.age(t - Duration::from_secs(7)), Duration::ZERO);
        assert!(s.is_fresh(t + Duration::from_secs(9)));
        assert!(!s.is_fresh(t + Duration::from_secs(10)));
    }
}
