//! Explaining a key: what each tier holds under it, its tags' generations on
//! this instance, and whether a hit would serve it, for an operator asking
//! "why was this served?".

use std::time::SystemTime;

use http::{HeaderName, HeaderValue};
use pingora_cache::key::{CacheHashKey, HashBinary};
use pingora_http::{RequestHeader, ResponseHeader};
use serde::Serialize;

use super::TagCache;
use super::Unkeyable;
use crate::generations::Verdict;
use crate::key::Identity;
use crate::shared::fanout::FanoutView;
use crate::storage::Servable;

/// What this instance knows about the entry a request would be served from.
#[derive(Debug, Serialize)]
pub struct Explanation {
    /// The entry's key (`CacheKey::combined`, hex), as Redis and the memory tier name it.
    pub key: String,
    /// The `Vary` variance of the entry shown (hex), when the response
    /// varies: the request's fields select it. pingora-cache keeps the first
    /// variant it stored under the primary key and the others under the key
    /// with their variance; the entries shown are the request's variant.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub variance: Option<String>,
    /// This instance's purge epoch (with Redis, its mirror of the shared one):
    /// a fill starting now would be born at it.
    pub epoch: u64,
    /// Entries born before this are purged, whatever their tags.
    pub floor: u64,
    /// The memory tier's entry, if any.
    pub memory: Option<EntryView>,
    /// The Redis tier's entry: absent without a Redis tier, `null` when
    /// Redis has none (or did not answer in time).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redis: Option<Option<EntryView>>,
    /// This instance among the others, with a Redis tier.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fanout: Option<FanoutView>,
}

/// One stored entry and the verdict its tags give on this instance.
#[derive(Debug, Serialize)]
pub struct EntryView {
    /// The epoch its origin fetch started at.
    pub born: Option<u64>,
    /// Seconds since it was fetched or last revalidated.
    pub age: u64,
    /// Whether it is fresh now.
    pub fresh: bool,
    /// The route it was stored for.
    pub route: Option<String>,
    /// The workspace it was stored for.
    pub workspace: Option<String>,
    /// Every tag of the entry with this instance's generations for it.
    pub tags: Vec<TagView>,
    /// `valid`, `stale` (soft-purged) or `purged`, by this instance's
    /// registry; `untracked` for an entry without tag information.
    pub verdict: &'static str,
    /// Whether this instance may serve stored entries of that age now (sync
    /// mode: its lease; async mode: its subscription or the resync window).
    pub trusted: bool,
}

/// One tag of an entry.
#[derive(Debug, Serialize)]
pub struct TagView {
    /// The tag's hash (hex), as the registry keys it.
    pub hash: String,
    /// The tag's name, when the caller named it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The generation of its last hard purge on this instance (0: none known).
    pub hard: u64,
    /// The generation of its last soft purge on this instance (0: none known).
    pub soft: u64,
}

impl TagCache {
    /// Explains the entry a `GET` of `path_and_query` for `who`, with the
    /// request `fields` a `Vary` may select a variant by, would be served
    /// from. `names` are tag names the caller wants recognized among the
    /// entry's tag hashes.
    ///
    /// # Errors
    /// When such a request could not be cached ([`Self::key_for`]).
    pub async fn explain(
        &self,
        path_and_query: &str,
        who: Identity<'_>,
        fields: &[(HeaderName, HeaderValue)],
        names: &[String],
    ) -> Result<Explanation, Unkeyable> {
        let mut key = self.key_for(path_and_query, who)?;
        let named: Vec<(u64, &String)> = names.iter().map(|n| (crate::tags::hash(n), n)).collect();
        let mut found = self.lookup_both(&key.combined_bin()).await;
        // A varied entry under the primary key is the first variant stored;
        // the request's own, if another, is under its variance (as
        // pingora-cache's `cache_vary_lookup` finds it).
        let mut variance = None;
        if let Some(header) = found.varied() {
            let req = explained_request(path_and_query, fields)?;
            let active = self.active.load();
            let route = active
                .router
                .find(req.uri.path())
                .and_then(|f| active.config.routes.get(f.index));
            variance = super::variance::of(header, &req, route);
        }
        if let Some(wanted) = variance.filter(|&wanted| Some(wanted) != found.variance()) {
            key.set_variance_key(wanted);
            found = self.lookup_both(&key.combined_bin()).await;
        }
        Ok(Explanation {
            key: key.combined(),
            variance: variance.map(|v| format!("{:032x}", u128::from_be_bytes(v))),
            epoch: self.registry.epoch(),
            floor: self.registry.floor(),
            memory: found
                .memory
                .map(|hit| self.entry_view(&hit.servable(), &named)),
            redis: found
                .redis
                .map(|r| r.map(|d| self.entry_view(&d.servable(), &named))),
            fanout: self.redis.as_ref().map(|r| r.fanout.view()),
        })
    }

    /// What each tier holds under `hash`; Redis only with a Redis tier.
    async fn lookup_both(&self, hash: &HashBinary) -> Found {
        Found {
            memory: self.memory.and_then(|m| m.servable(hash)),
            redis: match &self.redis {
                Some(parts) => Some(parts.store.fetch(hash).await),
                None => None,
            },
        }
    }

    fn entry_view(&self, stored: &Servable<'_>, named: &[(u64, &String)]) -> EntryView {
        let now = SystemTime::now();
        let routes = &self.active.load().config.routes;
        let info = stored.info;
        let tags = info.map_or_else(Vec::new, |info| {
            info.tags
                .iter()
                .map(|&tag| {
                    let (hard, soft) = self.registry.tag_generations(tag).unwrap_or((0, 0));
                    TagView {
                        hash: format!("{tag:016x}"),
                        name: named
                            .iter()
                            .find(|(h, _)| *h == tag)
                            .map(|(_, n)| (*n).clone()),
                        hard,
                        soft,
                    }
                })
                .collect()
        });
        EntryView {
            born: info.map(|i| i.born),
            age: stored.age(now).as_secs(),
            fresh: stored.is_fresh(now),
            route: info
                .and_then(|i| routes.get(usize::from(i.route)))
                .map(|r| r.name.clone()),
            workspace: info.and_then(|i| i.workspace.as_deref().map(str::to_string)),
            tags,
            verdict: match info.map(|i| self.registry.check(i.born, &i.tags)) {
                None => "untracked",
                Some(Verdict::Valid) => "valid",
                Some(Verdict::Stale(_)) => "stale",
                Some(Verdict::Purged) => "purged",
            },
            trusted: !self.unsynced(stored.epoch),
        }
    }
}

/// What the two tiers hold under one key.
struct Found {
    memory: Option<crate::storage::MemoryHit>,
    redis: Option<Option<crate::storage::envelope::Decoded>>,
}

impl Found {
    /// The entry found, memory first: its stored header and variance.
    fn entry(&self) -> Option<(&ResponseHeader, Option<HashBinary>)> {
        let memory = self.memory.as_ref().map(|m| {
            let s = m.servable();
            (s.header, s.variance)
        });
        memory.or_else(|| {
            let d = self.redis.as_ref()?.as_ref()?;
            Some((d.meta.response_header(), d.meta.variance()))
        })
    }

    /// The stored header of the entry found, if it varies.
    fn varied(&self) -> Option<&ResponseHeader> {
        self.entry().filter(|(_, v)| v.is_some()).map(|(h, _)| h)
    }

    /// The variance of the entry found, if any.
    fn variance(&self) -> Option<HashBinary> {
        self.entry().and_then(|(_, v)| v)
    }
}

/// The `GET` the explanation is for, with the caller's fields.
fn explained_request(
    path_and_query: &str,
    fields: &[(HeaderName, HeaderValue)],
) -> Result<RequestHeader, Unkeyable> {
    let mut req = RequestHeader::build("GET", path_and_query.as_bytes(), None)
        .map_err(|_| Unkeyable::Invalid)?;
    for (name, value) in fields {
        req.append_header(name.clone(), value.clone())
            .map_err(|_| Unkeyable::Invalid)?;
    }
    Ok(req)
}
