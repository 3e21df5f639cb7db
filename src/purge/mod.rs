//! Purging: by tag, by URL, by workspace, from backend events, from writes
//! that pass through, or everything.
//!
//! Every kind of purge becomes a list of tags handed to the
//! [`crate::generations::TagRegistry`] in one call, so a purge costs the same whether
//! it covers one entry or a million, and a batch applies all or nothing. A
//! purge of everything raises the registry's floor instead: one counter.
//! [`Purger`] is the single entry point: with the Redis tier it also sends
//! the purge to every other instance (`shared::fanout`).

internal_mods!(events);
pub mod signature;
pub mod writes;

use std::sync::Arc;
use std::time::Instant;

use pingora_cache::key::CacheHashKey;

use serde::Serialize;

use crate::cache::{TagCache, Unkeyable};
use crate::shared::fanout::FanoutReport;
use crate::tags;

/// What a purge did.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct PurgeReport {
    /// `tag`, `url`, `workspace`, `event`, `legacy`, `mixed`, `write` or `all`.
    pub kind: &'static str,
    /// Tags purged (including the implicit tags of URLs and workspaces).
    pub tags: usize,
    /// Whether entries were marked stale rather than dropped.
    pub soft: bool,
    /// The purge epoch after this purge.
    pub epoch: u64,
    /// Time taken to apply the purge, in microseconds.
    pub took_us: u64,
    /// With the Redis tier: how the purge reached the other instances.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shared: Option<FanoutReport>,
    /// With the Redis tier: why the purge could not reach the other instances
    /// (it was applied here, and will be sent when Redis answers again).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub not_shared: Option<String>,
}

/// A URL to purge, with the identity its key was built with.
#[derive(Debug, Clone, Default)]
pub struct UrlTarget {
    /// Path and query, e.g. `/api/boards/b1/contacts?page=2`.
    pub url: String,
    /// Workspace the entry was stored for.
    pub workspace: Option<String>,
    /// User the entry was stored for (per-user routes).
    pub user: Option<String>,
}

/// Why a URL cannot be purged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    /// The URL is not a valid request target.
    #[error("invalid URL {0:?}")]
    Invalid(String),
    /// The URL is not on a cached route, or could never be cached as given.
    #[error("URL {url:?} is not cacheable: {reason}")]
    NotCacheable {
        /// The URL.
        url: String,
        /// Why.
        reason: &'static str,
    },
}

/// Applies purges to a [`TagCache`].
#[derive(Debug, Clone)]
pub struct Purger {
    cache: Arc<TagCache>,
}

impl Purger {
    /// A purger for `cache`.
    pub fn new(cache: Arc<TagCache>) -> Self {
        Purger { cache }
    }

    /// The cache purged.
    pub fn cache(&self) -> &Arc<TagCache> {
        &self.cache
    }

    /// Purges tag names, as given (no namespacing).
    pub async fn purge_tags(
        &self,
        kind: &'static str,
        names: &[String],
        soft: bool,
    ) -> PurgeReport {
        let hashes: Vec<u64> = names.iter().map(|t| tags::hash(t)).collect();
        self.purge_hashes(kind, &hashes, soft).await
    }

    /// Purges every entry, whatever its tags, in O(1): in this instance's
    /// registry and, with the Redis tier, on every instance. Entries fetched
    /// after it returns are cached again. It has taken effect here when this
    /// returns.
    pub async fn purge_all(&self) -> PurgeReport {
        let start = Instant::now();
        let (epoch, shared, not_shared) = match self.cache.fanout() {
            None => (self.cache.registry().purge_all(), None, None),
            Some(fanout) => match fanout.purge_all().await {
                Ok((generation, report)) => (generation, Some(report), None),
                Err(e) => {
                    tracing::warn!("{e}");
                    (e.generation, None, Some(e.reason))
                }
            },
        };
        tracing::info!("purged every entry (epoch {epoch})");
        self.report("all", 0, false, start, epoch, shared, not_shared)
    }

    /// Purges already-hashed tags in one step: in this instance's registry
    /// and, with the Redis tier, on every instance (see `shared::fanout`).
    /// Either way the purge has taken effect here when this returns.
    pub async fn purge_hashes(
        &self,
        kind: &'static str,
        hashes: &[u64],
        soft: bool,
    ) -> PurgeReport {
        let start = Instant::now();
        let (epoch, shared, not_shared) = match self.cache.fanout() {
            None => (self.cache.registry().purge(hashes, soft), None, None),
            Some(fanout) => match fanout.purge(hashes, soft).await {
                Ok((generation, report)) => (generation, Some(report), None),
                Err(e) => {
                    tracing::warn!("{e}");
                    (e.generation, None, Some(e.reason))
                }
            },
        };
        self.report(kind, hashes.len(), soft, start, epoch, shared, not_shared)
    }

    /// Counts a purge and reports it.
    #[allow(clippy::too_many_arguments)]
    fn report(
        &self,
        kind: &'static str,
        tags: usize,
        soft: bool,
        start: Instant,
        epoch: u64,
        shared: Option<FanoutReport>,
        not_shared: Option<String>,
    ) -> PurgeReport {
        let took = start.elapsed();
        let m = self.cache.metrics();
        let result = if not_shared.is_some() {
            "not_shared"
        } else {
            "ok"
        };
        m.purges.with_label_values(&[kind, result]).inc();
        m.tags_purged.inc_by(tags as u64);
        m.purge_latency.observe(took.as_secs_f64());
        PurgeReport {
            kind,
            tags,
            soft,
            epoch,
            took_us: u64::try_from(took.as_micros()).unwrap_or(u64::MAX),
            shared,
            not_shared,
        }
    }

    /// The implicit tag of a whole workspace.
    pub fn workspace_tag(workspace: &str) -> String {
        tags::workspace_tag(workspace)
    }

    /// The implicit tag hash of the entry a URL would be stored under.
    ///
    /// # Errors
    /// When the URL is invalid or could not be cached as given.
    pub fn url_tag(&self, target: &UrlTarget) -> Result<u64, UrlError> {
        let who = crate::key::Identity {
            workspace: target.workspace.as_deref(),
            user: target.user.as_deref(),
        };
        let key = self.cache.key_for(&target.url, who).map_err(|e| match e {
            Unkeyable::Invalid => UrlError::Invalid(target.url.clone()),
            other => UrlError::NotCacheable {
                url: target.url.clone(),
                reason: other.as_str(),
            },
        })?;
        Ok(tags::hash(&tags::key_tag(&key.primary_bin())))
    }
}
