//! Publishing a purge: the script that takes a generation, the wait for
//! acknowledgements, and the outbox kept while Redis is unreachable.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use redis::Value;

use crate::config::Consistency;
use crate::shared::{int, scripts, text, SharedError};

use super::wire::{broken_connection, tags_arg};
use super::*;

/// Most tags kept in the outbox while Redis is unreachable; beyond it, the
/// outbox is replaced by a global floor once Redis is back.
pub(super) const OUTBOX_LIMIT: usize = 100_000;

/// What a purge covers.
#[derive(Debug, Clone, Copy)]
pub(super) enum Scope<'a> {
    /// Entries with any of these tags, dropped or (`soft`) marked stale.
    Tags { tags: &'a [u64], soft: bool },
    /// Every entry.
    All,
}

#[derive(Debug, Default)]
pub(super) struct Outbox {
    pub(super) hard: HashSet<u64>,
    pub(super) soft: HashSet<u64>,
    pub(super) overflow: bool,
    /// A purge of everything is waiting; it covers every tag in the outbox.
    pub(super) all: bool,
}

impl Fanout {
    /// Purges `tags` on every instance: through Redis, then locally with the
    /// generation Redis gave. In sync mode, waits for every live instance.
    ///
    /// # Errors
    /// [`NotShared`] when Redis could not take the purge: it is then applied
    /// here only, and queued to be sent once Redis answers again.
    pub async fn purge(&self, tags: &[u64], soft: bool) -> Result<(u64, FanoutReport), NotShared> {
        self.purge_scope(Scope::Tags { tags, soft }).await
    }

    /// Purges every entry on every instance: a new floor, through Redis, then
    /// locally. In sync mode, waits for every live instance.
    ///
    /// # Errors
    /// [`NotShared`] when Redis could not take the purge: it is then applied
    /// here only (nothing fetched before it reaches Redis is served), and
    /// sent once Redis answers again.
    pub async fn purge_all(&self) -> Result<(u64, FanoutReport), NotShared> {
        self.purge_scope(Scope::All).await
    }

    pub(super) async fn purge_scope(
        &self,
        scope: Scope<'_>,
    ) -> Result<(u64, FanoutReport), NotShared> {
        let start = Instant::now();
        let sync = self.consistency == Consistency::Sync;
        let metrics = self.shared.metrics();
        let generation = match self.purge_in_redis(scope, sync).await {
            Ok(generation) => generation,
            Err(e) => {
                let generation = match scope {
                    Scope::Tags { tags, soft } => {
                        let generation = self.registry.purge_pending(tags, soft);
                        self.queue(tags, soft);
                        generation
                    }
                    Scope::All => {
                        let generation = self.registry.purge_all_pending();
                        self.outbox.lock().all = true;
                        generation
                    }
                };
                metrics.fanout.with_label_values(&["failed"]).inc();
                return Err(NotShared {
                    reason: e.to_string(),
                    generation,
                });
            }
        };
        match scope {
            Scope::Tags { tags, soft } => self.registry.apply(tags, generation, soft),
            Scope::All => self.registry.set_floor(generation),
        }
        let report = if sync {
            self.wait_for_acks(generation, start + self.sync_timeout)
                .await
        } else {
            FanoutReport {
                consistency: "async",
                complete: true,
                live: None,
                acked: None,
                missing: Vec::new(),
            }
        };
        let result = if report.complete { "ok" } else { "partial" };
        metrics.fanout.with_label_values(&[result]).inc();
        metrics
            .fanout_latency
            .observe(start.elapsed().as_secs_f64());
        Ok((generation, report))
    }

    /// Runs the purge script, synchronizing first if the store's identity
    /// changed. A connection that broke since the last command (Redis
    /// restarted, failed over) is retried once on a new one.
    pub(super) async fn purge_in_redis(
        &self,
        scope: Scope<'_>,
        sync: bool,
    ) -> Result<u64, SharedError> {
        let mut resynced = false;
        let mut reconnected = false;
        loop {
            let known = self.state.lock().known_id.clone();
            let Some(known) = known else {
                if resynced {
                    return Err(SharedError::Reply("purge identity"));
                }
                resynced = true;
                self.resync().await?;
                continue;
            };
            let keys = self.shared.keys();
            let reply: Result<Value, SharedError> = self
                .shared
                .call("purge", |mut c| {
                    let mut inv = match scope {
                        Scope::Tags { tags, soft } => {
                            let mut inv = scripts::PURGE.prepare_invoke();
                            inv.key(keys.epoch());
                            inv.key(keys.log());
                            inv.arg(self.registry.retention().as_millis() as u64);
                            inv.arg(u8::from(soft));
                            inv.arg(u8::from(sync));
                            inv.arg(self.shared.instance());
                            inv.arg(tags_arg(tags));
                            inv
                        }
                        Scope::All => {
                            let mut inv = scripts::PURGE_ALL.prepare_invoke();
                            inv.key(keys.epoch());
                            inv.key(keys.log());
                            inv.arg(self.registry.retention().as_millis() as u64);
                            inv.arg(u8::from(sync));
                            inv.arg(self.shared.instance());
                            inv
                        }
                    };
                    inv.arg(keys.channel());
                    inv.arg(known);
                    async move { inv.invoke_async(&mut c).await }
                })
                .await;
            let reply = match reply {
                Err(SharedError::Redis(e)) if !reconnected && broken_connection(&e) => {
                    reconnected = true;
                    continue;
                }
                other => other?,
            };
            let Value::Array(parts) = reply else {
                return Err(SharedError::Reply("purge"));
            };
            match parts.first().and_then(int) {
                Some(-1) if !resynced => {
                    // Redis lost its state since we last synchronized.
                    resynced = true;
                    self.resync().await?;
                }
                Some(g) if g > 0 => {
                    return u64::try_from(g).map_err(|_| SharedError::Reply("purge"))
                }
                _ => return Err(SharedError::Reply("purge")),
            }
        }
    }

    pub(super) async fn wait_for_acks(&self, generation: u64, deadline: Instant) -> FanoutReport {
        let keys = self.shared.keys();
        let mut last = (None, Vec::new());
        loop {
            let notified = self.acks.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let reply: Result<Value, _> = self
                .shared
                .call("sync_check", |mut c| {
                    let mut inv = scripts::MISSING.prepare_invoke();
                    inv.key(keys.instances());
                    inv.key(keys.acks());
                    inv.key(keys.epoch());
                    inv.arg(generation);
                    inv.arg(self.shared.instance());
                    inv.arg(self.registration_ttl().as_millis() as u64);
                    async move { inv.invoke_async(&mut c).await }
                })
                .await;
            if let Ok(Value::Array(parts)) = reply {
                let live = parts.first().and_then(int).map(|n| n.max(0) as usize);
                let missing: Vec<String> = match parts.get(1) {
                    Some(Value::Array(m)) => m.iter().filter_map(text).collect(),
                    _ => Vec::new(),
                };
                let settling = parts.get(2).and_then(int) == Some(1);
                if missing.is_empty() && !settling {
                    let live = live.unwrap_or(1).max(1);
                    return FanoutReport {
                        consistency: "sync",
                        complete: true,
                        live: Some(live),
                        acked: Some(live),
                        missing,
                    };
                }
                last = (live, missing);
            }
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            let wait = (deadline - now).min(Duration::from_millis(50));
            let _ = tokio::time::timeout(wait, notified).await;
        }
        let (live, missing) = last;
        let live = live.unwrap_or(1).max(1);
        FanoutReport {
            consistency: "sync",
            complete: false,
            live: Some(live),
            acked: Some(live.saturating_sub(missing.len())),
            missing,
        }
    }

    pub(super) fn queue(&self, tags: &[u64], soft: bool) {
        let mut outbox = self.outbox.lock();
        if outbox.all {
            // The waiting purge of everything covers these tags.
            return;
        }
        if outbox.hard.len() + outbox.soft.len() + tags.len() > OUTBOX_LIMIT {
            outbox.overflow = true;
            outbox.hard.clear();
            outbox.soft.clear();
            return;
        }
        let set = if soft {
            &mut outbox.soft
        } else {
            &mut outbox.hard
        };
        set.extend(tags.iter().copied());
    }

    /// Sends the purges made while Redis was unreachable.
    pub(super) async fn flush_outbox(&self) {
        let (hard, soft, overflow, all) = {
            let outbox = self.outbox.lock();
            if outbox.hard.is_empty() && outbox.soft.is_empty() && !outbox.overflow && !outbox.all {
                return;
            }
            (
                outbox.hard.iter().copied().collect::<Vec<_>>(),
                outbox.soft.iter().copied().collect::<Vec<_>>(),
                outbox.overflow,
                outbox.all,
            )
        };
        if all {
            // Sent as what it is, a purge of everything: it covers every tag
            // queued with it (their entries were born before its generation).
            match self.purge_in_redis(Scope::All, false).await {
                Ok(generation) => {
                    self.registry.set_floor(generation);
                    let mut outbox = self.outbox.lock();
                    outbox.all = false;
                    outbox.overflow = false;
                    outbox.hard.clear();
                    outbox.soft.clear();
                    tracing::info!("sent the purge of everything made while redis was unreachable");
                }
                Err(e) => tracing::debug!("outbox not sent yet: {e}"),
            }
            return;
        }
        if overflow {
            if self.sync_with_redis(true).await.is_ok() {
                self.outbox.lock().overflow = false;
            }
            return;
        }
        for (tags, is_soft) in [(hard, false), (soft, true)] {
            if tags.is_empty() {
                continue;
            }
            match self
                .purge_in_redis(
                    Scope::Tags {
                        tags: &tags,
                        soft: is_soft,
                    },
                    false,
                )
                .await
            {
                Ok(generation) => {
                    self.registry.apply(&tags, generation, is_soft);
                    let mut outbox = self.outbox.lock();
                    let set = if is_soft {
                        &mut outbox.soft
                    } else {
                        &mut outbox.hard
                    };
                    for t in &tags {
                        set.remove(t);
                    }
                    tracing::info!(
                        "sent {} tags purged while redis was unreachable",
                        tags.len()
                    );
                }
                Err(e) => {
                    tracing::debug!("outbox not sent yet: {e}");
                    return;
                }
            }
        }
    }
}
