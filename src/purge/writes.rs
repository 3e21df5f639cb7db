//! Purges from writes that pass through the proxy: what
//! [`crate::cache::TagCache::write_invalidation`] decides, applied through
//! the one purge path ([`Purger::purge_hashes`]), so with Redis it reaches
//! every instance, and bounded like any purge: a Redis that fails or stalls
//! past its timeout leaves the purge applied here and queued, never a write
//! waiting.

use pingora_http::{RequestHeader, ResponseHeader};

use super::Purger;
use crate::cache::{RequestCtx, WriteOutcome};
use crate::metrics::NO_WRITE_RULE;

/// Purges what the answer `resp` to the write `req` invalidates (nothing
/// for a safe method), and counts it. Call before the answer's header goes
/// to the client (`ProxyHttp::upstream_response_filter`), so a client that
/// wrote never reads what it replaced.
pub async fn after_write(
    purger: &Purger,
    req: &RequestHeader,
    resp: &ResponseHeader,
    ctx: &RequestCtx,
) {
    let Some(write) = purger.cache().write_invalidation(req, resp, ctx) else {
        return;
    };
    let rule = write.rule.as_deref().unwrap_or(NO_WRITE_RULE);
    let outcome = match &write.outcome {
        WriteOutcome::Failed => "failed_write",
        // A 3xx to a rule's write whose target no route caches.
        WriteOutcome::Purge(hashes) if hashes.is_empty() => return,
        WriteOutcome::Purge(hashes) => {
            let report = purger.purge_hashes("write", hashes, false).await;
            if report.not_shared.is_some() {
                "not_shared"
            } else {
                "ok"
            }
        }
    };
    purger
        .cache()
        .metrics()
        .write_invalidations
        .with_label_values(&[rule, outcome])
        .inc();
}
