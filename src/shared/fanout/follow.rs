//! Following the other instances: the subscription, the replay of the purge
//! log, synchronization with the shared epoch, and the heartbeat.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use redis::Value;

use crate::shared::{int, scripts, text, SharedError};

use super::wire::{parse_log_entry, parse_message, stream_id, Message, Purge};
use super::*;

/// Log entries read per round trip when replaying.
pub(super) const REPLAY_BATCH: usize = 512;

#[derive(Debug, Default)]
pub(super) struct SyncState {
    /// The epoch identity this instance last synchronized with.
    pub(super) known_id: Option<String>,
    /// The id of the newest log entry applied.
    pub(super) last_log_id: Option<String>,
    /// Whether the registry has been synchronized at least once.
    pub(super) synced: bool,
}

impl Fanout {
    /// Applies one purge; acknowledges it when it is a sync purge.
    /// Applies one purge. Returns its generation when it is a sync purge,
    /// which the caller acknowledges.
    pub(super) fn apply(&self, purge: &Purge) -> Option<u64> {
        if purge.all {
            self.registry.set_floor(purge.generation);
        } else {
            self.registry
                .apply(&purge.tags, purge.generation, purge.soft);
        }
        {
            let mut state = self.state.lock();
            let newer = match (&state.last_log_id, stream_id(&purge.id)) {
                (Some(last), Some(id)) => stream_id(last).is_none_or(|l| id > l),
                (None, _) => true,
                (_, None) => false,
            };
            if newer {
                state.last_log_id = Some(purge.id.clone());
            }
        }
        purge.sync.then_some(purge.generation)
    }

    /// Acknowledges every purge up to sync purge `generation` (applied in order).
    pub(super) fn ack(&self, generation: u64) {
        {
            let shared = self.shared.clone();
            let ttl = (self.sync_timeout * 4).max(Duration::from_secs(10));
            self.shared.spawn(async move {
                let keys = shared.keys().clone();
                let instance = shared.instance().to_string();
                let _ = shared
                    .call("ack", |mut c| {
                        let mut inv = scripts::ACK.prepare_invoke();
                        inv.key(keys.acks());
                        inv.arg(instance);
                        inv.arg(generation);
                        inv.arg(ttl.as_millis() as u64);
                        inv.arg(keys.channel());
                        async move { inv.invoke_async::<Value>(&mut c).await }
                    })
                    .await;
            });
        }
    }

    pub(super) fn on_message(&self, payload: &[u8]) {
        match parse_message(payload) {
            Some(Message::Purge(p)) => {
                if let Some(generation) = self.apply(&p) {
                    self.ack(generation);
                }
            }
            Some(Message::Ack) => self.acks.notify_waiters(),
            Some(Message::Floor { floor, id, all }) => {
                self.registry.set_floor(floor);
                self.state.lock().known_id = Some(id);
                if !all {
                    self.shared
                        .metrics()
                        .resyncs
                        .with_label_values(&["floor"])
                        .inc();
                }
            }
            None => tracing::debug!("ignored a malformed purge message"),
        }
    }

    /// Synchronizes with the shared epoch: detects lost state (and floors),
    /// then replays the log from the last purge applied.
    pub(super) async fn resync(&self) -> Result<(), SharedError> {
        self.sync_with_redis(false).await
    }

    pub(super) async fn sync_with_redis(&self, force_floor: bool) -> Result<(), SharedError> {
        let keys = self.shared.keys().clone();
        let (known, last) = {
            let state = self.state.lock();
            (state.known_id.clone(), state.last_log_id.clone())
        };
        // A forced floor claims an identity no store has, which counts as lost state.
        let known = if force_floor {
            "!".to_string()
        } else {
            known.unwrap_or_default()
        };
        let mirror = self.registry.epoch();
        let reply: Value = self
            .shared
            .call("sync", |mut c| {
                let mut inv = scripts::SYNC.prepare_invoke();
                inv.key(keys.epoch());
                inv.arg(crate::shared::token());
                inv.arg(mirror);
                inv.arg(known.as_str());
                inv.arg(keys.channel());
                async move { inv.invoke_async(&mut c).await }
            })
            .await?;
        let Value::Array(parts) = reply else {
            return Err(SharedError::Reply("sync"));
        };
        let id = parts
            .first()
            .and_then(text)
            .ok_or(SharedError::Reply("sync"))?;
        let epoch = parts
            .get(1)
            .and_then(int)
            .ok_or(SharedError::Reply("sync"))?;
        let floor = parts
            .get(2)
            .and_then(int)
            .ok_or(SharedError::Reply("sync"))?;
        let lost = parts.get(3).and_then(int) == Some(1);
        let epoch = u64::try_from(epoch).unwrap_or(0);
        let floor = u64::try_from(floor).unwrap_or(0);
        if lost {
            tracing::warn!(
                "redis lost its purge state: every entry born before epoch {floor} is purged"
            );
            self.shared
                .metrics()
                .resyncs
                .with_label_values(&["floor"])
                .inc();
        }
        self.registry.set_floor(floor);
        self.state.lock().known_id = Some(id);

        // Replay the log after the last purge we applied.
        let mut from = match &last {
            Some(id) => format!("({id}"),
            None => "-".to_string(),
        };
        let mut sync_up_to = None;
        loop {
            let log = keys.log();
            let start = from.clone();
            let reply: Value = self
                .shared
                .call_within(
                    "replay",
                    self.shared.settings().heartbeat.max(Duration::from_secs(1)),
                    |mut c| async move {
                        redis::cmd("XRANGE")
                            .arg(log)
                            .arg(start)
                            .arg("+")
                            .arg("COUNT")
                            .arg(REPLAY_BATCH)
                            .query_async(&mut c)
                            .await
                    },
                )
                .await?;
            let Value::Array(entries) = reply else {
                return Err(SharedError::Reply("replay"));
            };
            let n = entries.len();
            for entry in &entries {
                if let Some(purge) = parse_log_entry(entry) {
                    from = format!("({}", purge.id);
                    if let Some(generation) = self.apply(&purge) {
                        sync_up_to = Some(generation);
                    }
                }
            }
            if n < REPLAY_BATCH {
                break;
            }
        }
        // Every purge up to `epoch` was in the log we just read.
        self.registry.advance(epoch);
        // One acknowledgement covers every sync purge replayed.
        if let Some(generation) = sync_up_to {
            self.ack(generation);
        }
        let mut state = self.state.lock();
        if state.synced {
            drop(state);
            self.shared
                .metrics()
                .resyncs
                .with_label_values(&["catchup"])
                .inc();
        } else {
            state.synced = true;
        }
        Ok(())
    }

    /// Runs the subscription and the heartbeat until [`Self::stop`]. Call once
    /// per process, on the Redis runtime (see [`Self::start`]).
    pub(super) async fn run(self: Arc<Self>) {
        let heartbeat = {
            let this = self.clone();
            tokio::spawn(async move { this.heartbeat_loop().await })
        };
        self.subscribe_loop().await;
        heartbeat.abort();
    }

    /// Starts the subscription and the heartbeat on the Redis runtime.
    pub fn start(self: &Arc<Self>) {
        if self.started.swap(true, std::sync::atomic::Ordering::SeqCst) {
            return;
        }
        let this = self.clone();
        self.shared.spawn(this.run());
    }

    /// Stops the subscription and the heartbeat. From then on this instance
    /// follows no purge: in sync mode its lease ends at once (it serves
    /// nothing stored, since purges no longer wait for it), and in async
    /// mode it is suspect (it serves only entries younger than the resync
    /// window). A graceful shutdown still answers requests while it drains.
    pub fn halt(&self) {
        self.lease.end();
        self.set_suspect(true);
        self.stop.notify_waiters();
        self.stop.notify_one();
    }

    /// Stops the tasks and leaves the live instance set, so sync purges stop
    /// waiting for this instance.
    pub async fn stop(&self) {
        self.halt();
        let keys = self.shared.keys().clone();
        let instance = self.shared.instance().to_string();
        let _ = self
            .shared
            .call("leave", |mut c| async move {
                redis::cmd("ZREM")
                    .arg(keys.instances())
                    .arg(instance)
                    .query_async::<i64>(&mut c)
                    .await
            })
            .await;
    }

    pub(super) async fn heartbeat_loop(&self) {
        let hb = self.shared.settings().heartbeat;
        let mut tick = tokio::time::interval(hb);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let keys = self.shared.keys().clone();
            let instance = self.shared.instance().to_string();
            let ttl = self.registration_ttl();
            let sent = Instant::now();
            // While the breaker is open, this is also its probe.
            let beat = self
                .shared
                .call("heartbeat", |mut c| {
                    let mut inv = scripts::HEARTBEAT.prepare_invoke();
                    inv.key(keys.instances());
                    inv.arg(instance);
                    inv.arg(ttl.as_millis() as u64);
                    async move { inv.invoke_async::<Value>(&mut c).await }
                })
                .await;
            let Ok(beat) = beat else {
                continue;
            };
            if self.consistency == Consistency::Sync
                && self.lease.renewed(sent, ttl, int(&beat) == Some(1))
            {
                // Joined (again): the purges completed while this instance
                // was not registered did not wait for it.
                let started = Instant::now();
                match self.resync().await {
                    Ok(()) => self.lease.replayed(started),
                    Err(e) => tracing::debug!("purge replay after joining failed: {e}"),
                }
            }
            if self.state.lock().known_id.is_some() {
                self.flush_outbox().await;
            }
        }
    }

    pub(super) async fn subscribe_loop(&self) {
        let hb = self.shared.settings().heartbeat;
        let connect_timeout = self.shared.settings().connect_timeout;
        let channel = self.shared.keys().channel();
        let mut node = 0usize;
        loop {
            self.set_suspect(true);
            let clients = self.shared.subscribe_to();
            let client = &clients[node % clients.len()];
            node = node.wrapping_add(1);
            let connected = tokio::select! {
                _ = self.stop.notified() => return,
                c = tokio::time::timeout(connect_timeout, client.get_async_pubsub()) => c,
            };
            let pubsub = match connected {
                Ok(Ok(p)) => p,
                _ => {
                    tokio::select! {
                        _ = self.stop.notified() => return,
                        _ = tokio::time::sleep(hb.min(Duration::from_millis(500))) => {}
                    }
                    continue;
                }
            };
            let (mut sink, mut stream) = pubsub.split();
            if !matches!(
                tokio::time::timeout(connect_timeout, sink.subscribe(&channel)).await,
                Ok(Ok(()))
            ) {
                continue;
            }
            // Messages published from now on are buffered in `stream` while we replay.
            let started = Instant::now();
            if let Err(e) = self.resync().await {
                tracing::debug!("purge resync failed: {e}");
                tokio::select! {
                    _ = self.stop.notified() => return,
                    _ = tokio::time::sleep(hb.min(Duration::from_millis(500))) => {}
                }
                continue;
            }
            self.lease.replayed(started);
            self.set_suspect(false);
            let mut tick = tokio::time::interval(hb);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                tokio::select! {
                    _ = self.stop.notified() => return,
                    msg = stream.next() => match msg {
                        Some(msg) => self.on_message(msg.get_payload_bytes()),
                        None => {
                            self.lease.lost();
                            break;
                        }
                    },
                    _ = tick.tick() => {
                        // The answer comes after every message published before the ping.
                        match tokio::time::timeout(hb, sink.ping::<Value>()).await {
                            Ok(Ok(_)) => {}
                            // Unanswered: Redis is slow or out of reach; the lease runs out.
                            Err(_) => break,
                            Ok(Err(_)) => {
                                self.lease.lost();
                                break;
                            }
                        }
                    }
                }
            }
        }
    }
}
