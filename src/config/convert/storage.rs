//! `storage`: the memory tier and the optional Redis tier.

use super::*;

impl Cx<'_> {
    pub(super) fn storage(&mut self, raw: Option<Spanned<raw::Storage>>) -> Storage {
        let Some(Spanned { value: raw, pos }) = raw else {
            return Storage {
                memory: Some(MemoryStorage {
                    max_size: defaults::MEMORY_MAX_SIZE,
                    max_object_size: defaults::MAX_OBJECT_SIZE,
                    per_workspace_max: None,
                }),
                redis: None,
            };
        };
        let Some(Spanned {
            value: memory,
            pos: memory_pos,
        }) = raw.memory
        else {
            if raw.redis.is_some() {
                // Redis alone, for small instances.
                let redis = self.redis(raw.redis, None);
                return Storage {
                    memory: None,
                    redis,
                };
            }
            self.error(
                pos,
                "storage has no tier: nothing could be cached",
                Some(format!(
                    "add memory: {{ max_size: {} }}, or remove storage for that default",
                    defaults::size_text(defaults::MEMORY_MAX_SIZE)
                )),
            );
            return Storage {
                memory: None,
                redis: None,
            };
        };
        self.missing_keys(
            memory_pos,
            "storage.memory",
            &[("max_size", memory.max_size.is_some(), "max_size: 256MiB")],
        );
        let max_size = self.size(
            memory.max_size.as_ref(),
            defaults::MEMORY_MAX_SIZE,
            "max_size",
        );
        let max_object_size = match &memory.max_object_size {
            Some(field) => {
                let size = self.size(Some(field), defaults::MAX_OBJECT_SIZE, "max_object_size");
                if size > max_size {
                    self.error(
                        field.pos,
                        format!("max_object_size ({size} bytes) is larger than max_size ({max_size} bytes)"),
                        Some("an object never fits; lower max_object_size or raise max_size".to_string()),
                    );
                }
                size
            }
            // The default never exceeds the store itself.
            None => defaults::MAX_OBJECT_SIZE.min(max_size),
        };
        let per_workspace_max = memory.per_workspace_max.as_ref().map(|field| {
            let size = self.size(Some(field), max_size, "per_workspace_max");
            if size > max_size {
                self.error(
                    field.pos,
                    format!("per_workspace_max ({size} bytes) is larger than max_size ({max_size} bytes)"),
                    Some("a quota above the whole store never applies; lower it or remove it".to_string()),
                );
            } else if size < max_object_size {
                self.report.warning(
                    field.pos,
                    format!("per_workspace_max ({size} bytes) is smaller than max_object_size ({max_object_size} bytes)"),
                    Some("the largest responses can then never be stored".to_string()),
                );
            }
            size
        });
        let redis = self.redis(raw.redis, Some(max_object_size));
        Storage {
            memory: Some(MemoryStorage {
                max_size,
                max_object_size,
                per_workspace_max,
            }),
            redis,
        }
    }

    /// `storage.redis`; `memory_max_object` is the memory tier's limit, the default here.
    fn redis(
        &mut self,
        raw: Option<Spanned<raw::Redis>>,
        memory_max_object: Option<usize>,
    ) -> Option<RedisStorage> {
        let Spanned { value: raw, pos } = raw?;
        let url_hint = "e.g. url: \"${REDIS_URL}\" with REDIS_URL=redis://127.0.0.1:6379/0 (rediss:// for TLS, unix:///run/redis.sock for a local socket), or cluster: [\"10.0.0.1:6379\", ...]";
        let target = match (raw.url, raw.cluster) {
            (Some(_), Some(cluster)) => {
                self.error(
                    cluster.pos,
                    "storage.redis has both url and cluster",
                    Some("keep url for one server, or cluster for a Redis Cluster".to_string()),
                );
                None
            }
            (Some(url), None) => {
                // Never echo the URL: it may carry a password.
                if redis::Client::open(url.value.0.as_str()).is_err() {
                    self.error(
                        url.pos,
                        "storage.redis.url is not a Redis URL",
                        Some(url_hint.to_string()),
                    );
                }
                Some(RedisTarget::Server(Secret::new(url.value.0)))
            }
            (None, Some(cluster)) => {
                if cluster.value.is_empty() {
                    self.error(
                        cluster.pos,
                        "storage.redis.cluster lists no node",
                        Some(
                            "list one or more seed nodes, e.g. [\"10.0.0.1:6379\", \"10.0.0.2:6379\"]"
                                .to_string(),
                        ),
                    );
                }
                let mut nodes = Vec::with_capacity(cluster.value.len());
                for node in cluster.value {
                    let text = node.value.0.trim();
                    let ok = if text.contains("://") {
                        redis::Client::open(text).is_ok()
                    } else {
                        split_host_port(text).is_ok()
                    };
                    if !ok {
                        self.error(
                            node.pos,
                            "storage.redis.cluster node is not host:port or a Redis URL",
                            Some(
                                "e.g. \"10.0.0.1:6379\" or \"rediss://10.0.0.1:6380\"".to_string(),
                            ),
                        );
                    }
                    nodes.push(Secret::new(text));
                }
                Some(RedisTarget::Cluster(nodes))
            }
            (None, None) => {
                self.missing_keys(
                    pos,
                    "storage.redis",
                    &[("url", false, "url: \"${REDIS_URL}\"")],
                );
                None
            }
        };
        let prefix = match raw.prefix {
            None => defaults::REDIS_PREFIX.to_string(),
            Some(field) => {
                let p = field.value.trim();
                let valid = !p.is_empty()
                    && p.len() <= 64
                    && p.bytes().all(|b| {
                        b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b':')
                    });
                if !valid {
                    self.error(
                        field.pos,
                        format!("invalid storage.redis.prefix {p:?}"),
                        Some(
                            "use 1 to 64 letters, digits, \"_\", \"-\", \".\" or \":\", e.g. \"tagcache-prod\""
                                .to_string(),
                        ),
                    );
                }
                p.to_string()
            }
        };
        let timeout = self.positive_duration(
            raw.timeout.as_ref(),
            defaults::REDIS_TIMEOUT,
            "storage.redis.timeout",
        );
        let connect_timeout = self.positive_duration(
            raw.connect_timeout.as_ref(),
            defaults::REDIS_CONNECT_TIMEOUT,
            "storage.redis.connect_timeout",
        );
        let compress_above = self.size(
            raw.compress_above.as_ref(),
            defaults::REDIS_COMPRESS_ABOVE,
            "storage.redis.compress_above",
        );
        let max_object_size = self.size(
            raw.max_object_size.as_ref(),
            memory_max_object.unwrap_or(defaults::MAX_OBJECT_SIZE),
            "storage.redis.max_object_size",
        );
        let breaker = raw.breaker.map(|b| b.value).unwrap_or_default();
        let breaker_failures = self.count(
            breaker.failures.as_ref(),
            defaults::REDIS_BREAKER_FAILURES,
            "storage.redis.breaker.failures",
        );
        let probe_interval = self.positive_duration(
            breaker.probe_interval.as_ref(),
            defaults::REDIS_BREAKER_PROBE_INTERVAL,
            "storage.redis.breaker.probe_interval",
        );
        let heartbeat = self.positive_duration(
            raw.heartbeat.as_ref(),
            defaults::REDIS_HEARTBEAT,
            "storage.redis.heartbeat",
        );
        Some(RedisStorage {
            target: target?,
            prefix,
            timeout,
            connect_timeout,
            compress_above,
            max_object_size,
            breaker_failures: u32::try_from(breaker_failures).unwrap_or(u32::MAX),
            probe_interval,
            heartbeat,
        })
    }
}
