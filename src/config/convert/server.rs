//! The listeners and their neighbours: `upstream`, `admin`, `debug_headers`,
//! `log`, `server`, `coalescing`, `metrics` and `limits`.

use super::*;

impl Cx<'_> {
    pub(super) fn upstream(&mut self, raw: Option<Spanned<raw::Upstream>>, root: Pos) -> Upstream {
        let Some(Spanned { value: raw, pos }) = raw else {
            self.missing_keys(
                root,
                "the config",
                &[(
                    "upstream",
                    false,
                    "upstream: { address: \"127.0.0.1:3000\" }",
                )],
            );
            return Upstream {
                address: String::new(),
                tls: defaults::UPSTREAM_TLS,
                sni: String::new(),
                connect_timeout: defaults::UPSTREAM_CONNECT_TIMEOUT,
                read_timeout: defaults::UPSTREAM_READ_TIMEOUT,
                write_timeout: defaults::UPSTREAM_WRITE_TIMEOUT,
                idle_timeout: defaults::UPSTREAM_IDLE_TIMEOUT,
                retries: defaults::UPSTREAM_RETRIES,
            };
        };
        self.missing_keys(
            pos,
            "upstream",
            &[(
                "address",
                raw.address.is_some(),
                "address: \"127.0.0.1:3000\"",
            )],
        );
        let (address, host) = match &raw.address {
            Some(field) => match split_host_port(&field.value) {
                Ok(host) => (field.value.trim().to_string(), host),
                Err(hint) => {
                    self.error(
                        field.pos,
                        format!(
                            "invalid upstream address {:?}: expected HOST:PORT",
                            field.value
                        ),
                        Some(hint),
                    );
                    (String::new(), String::new())
                }
            },
            None => (String::new(), String::new()),
        };
        let sni = match raw.sni {
            Some(field) if field.value.trim().is_empty() => {
                self.error(
                    field.pos,
                    "upstream.sni is empty",
                    Some("remove it to use the host of address".to_string()),
                );
                host
            }
            Some(field) => field.value.trim().to_string(),
            None => host,
        };
        Upstream {
            address,
            tls: raw.tls.unwrap_or(defaults::UPSTREAM_TLS),
            sni,
            connect_timeout: self.positive_duration(
                raw.connect_timeout.as_ref(),
                defaults::UPSTREAM_CONNECT_TIMEOUT,
                "connect_timeout",
            ),
            read_timeout: self.positive_duration(
                raw.read_timeout.as_ref(),
                defaults::UPSTREAM_READ_TIMEOUT,
                "read_timeout",
            ),
            write_timeout: self.positive_duration(
                raw.write_timeout.as_ref(),
                defaults::UPSTREAM_WRITE_TIMEOUT,
                "write_timeout",
            ),
            idle_timeout: self.positive_duration(
                raw.idle_timeout.as_ref(),
                defaults::UPSTREAM_IDLE_TIMEOUT,
                "idle_timeout",
            ),
            retries: match &raw.retries {
                Some(field) if field.value > usize::from(defaults::UPSTREAM_RETRIES) => {
                    self.error(
                        field.pos,
                        format!(
                            "upstream.retries is {}, at most {}",
                            field.value,
                            defaults::UPSTREAM_RETRIES
                        ),
                        Some(
                            "a failed request is retried at most once, on a new connection"
                                .to_string(),
                        ),
                    );
                    defaults::UPSTREAM_RETRIES
                }
                Some(field) => field.value as u8,
                None => defaults::UPSTREAM_RETRIES,
            },
        }
    }

    /// The admin section. `proxy` is the proxy's listening address, and
    /// `proxy_pos` where the file sets it: a listener may not share it.
    pub(super) fn admin(
        &mut self,
        raw: Option<Spanned<raw::Admin>>,
        proxy: SocketAddr,
        proxy_pos: Pos,
    ) -> Admin {
        let raw = raw.map(|r| r.value).unwrap_or_default();
        let listen = self.socket_addr(raw.listen.as_ref(), defaults::ADMIN_LISTEN, "admin listen");
        if same_socket(listen, proxy) {
            // Two services on one address would share one socket: the
            // proxy's clients would reach the admin API, or the reverse.
            let other_port = if proxy.port() == defaults::ADMIN_LISTEN.port() {
                defaults::ADMIN_LISTEN.port() + 1
            } else {
                defaults::ADMIN_LISTEN.port()
            };
            self.error(
                raw.listen.as_ref().map_or(proxy_pos, |f| f.pos),
                format!("admin.listen {listen} is the same address as listen"),
                Some(format!(
                    "give the admin listener another port, e.g. admin: {{ listen: \"127.0.0.1:{other_port}\" }}"
                )),
            );
        }
        let metrics_listen = raw.metrics_listen.as_ref().map(|field| {
            let addr = self.socket_addr(
                Some(field),
                defaults::METRICS_LISTEN,
                "admin.metrics_listen",
            );
            for (other, name) in [(proxy, "listen"), (listen, "admin.listen")] {
                if same_socket(addr, other) {
                    self.error(
                        field.pos,
                        format!("admin.metrics_listen {addr} is the same address as {name}"),
                        Some(format!(
                            "use another port, e.g. \"{}:{}\"",
                            addr.ip(),
                            defaults::METRICS_LISTEN.port()
                        )),
                    );
                }
            }
            addr
        });
        let token_given = raw.token.is_some();
        let token = self.secret(raw.token, "admin.token");
        let webhook_secret = self.secret(raw.webhook_secret, "admin.webhook_secret");
        if !listen.ip().is_loopback() && !token_given {
            if let Some(field) = &raw.listen {
                self.error(
                    field.pos,
                    "the admin listener is reachable from other hosts; set admin.token",
                    Some(format!(
                        "add token: \"${{TAGCACHE_ADMIN_TOKEN}}\" under admin, or listen on \"127.0.0.1:{}\"",
                        listen.port()
                    )),
                );
            }
        }
        Admin {
            listen,
            token,
            max_body: self.size(
                raw.max_body.as_ref(),
                defaults::ADMIN_MAX_BODY,
                "admin.max_body",
            ),
            webhook_secret,
            metrics_listen,
        }
    }

    /// `debug_headers`, refused on a listener other hosts can reach unless forced.
    pub(super) fn debug_headers(
        &mut self,
        raw: Option<Spanned<bool>>,
        force: Option<bool>,
        listen: SocketAddr,
    ) -> bool {
        let Some(field) = raw else {
            return defaults::DEBUG_HEADERS;
        };
        if field.value
            && !listen.ip().is_loopback()
            && !force.unwrap_or(defaults::DEBUG_HEADERS_FORCE)
        {
            self.error(
                field.pos,
                format!("debug_headers exposes cache keys (workspaces, users, query) to every client, and listen {listen} is reachable from other hosts"),
                Some("turn it off, listen on loopback, or add debug_headers_force: true if you really mean it".to_string()),
            );
        }
        field.value
    }

    pub(super) fn log(&mut self, raw: Option<Spanned<raw::Log>>) -> Log {
        let raw = raw.map(|r| r.value).unwrap_or_default();
        let level = match raw.level {
            Some(field) => {
                if let Err(e) = tracing_subscriber::EnvFilter::try_new(&field.value) {
                    self.error(
                        field.pos,
                        format!("invalid log.level {:?}: {e}", field.value),
                        Some("a level (error, warn, info, debug, trace) or RUST_LOG directives such as \"tagcache=debug,warn\"".to_string()),
                    );
                }
                field.value
            }
            None => defaults::LOG_LEVEL.to_string(),
        };
        let access = raw.access.map(|a| a.value).and_then(|a| {
            if !a.enabled.unwrap_or(defaults::ACCESS_LOG_ENABLED) {
                return None;
            }
            let path = a
                .path
                .as_ref()
                .map(|p| p.value.trim())
                .filter(|p| !p.is_empty() && *p != "-")
                .map(std::path::PathBuf::from);
            if let (Some(field), None) = (&a.max_size, &path) {
                self.error(
                    field.pos,
                    "log.access.max_size needs log.access.path",
                    Some("stdout is not rotated; give a file path".to_string()),
                );
            }
            let max_size = a
                .max_size
                .as_ref()
                .map(|f| self.size(Some(f), 0, "log.access.max_size") as u64);
            Some(AccessLogConfig {
                format: match a.format {
                    Some(raw::AccessFormat::Text) => AccessFormat::Text,
                    Some(raw::AccessFormat::Json) => AccessFormat::Json,
                    None => defaults::ACCESS_LOG_FORMAT,
                },
                path,
                query: a.query.unwrap_or(defaults::ACCESS_LOG_QUERY),
                max_size,
            })
        });
        Log {
            level,
            hash_identities: raw.hash_identities.unwrap_or(defaults::LOG_HASH_IDENTITIES),
            access,
        }
    }

    pub(super) fn server(&mut self, raw: Option<Spanned<raw::Server>>) -> Server {
        let raw = raw.map(|r| r.value).unwrap_or_default();
        Server {
            threads: self.count(
                raw.threads.as_ref(),
                defaults::server_threads(),
                "server.threads",
            ),
            grace_period: self.duration(raw.grace_period.as_ref(), defaults::GRACE_PERIOD),
            write_buffer: self.write_buffer(raw.write_buffer.as_ref()),
            upgrade_sock: raw
                .upgrade_sock
                .map(|s| s.value.trim().to_string())
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| defaults::UPGRADE_SOCK.to_string()),
        }
    }

    /// `server.write_buffer`: between 1 KiB and 1 MiB (every client connection
    /// holds one).
    fn write_buffer(&mut self, field: Option<&Spanned<String>>) -> usize {
        let size = self.size(field, defaults::WRITE_BUFFER, "server.write_buffer");
        match field {
            Some(field) if !(1 << 10..=1 << 20).contains(&size) => {
                self.error(
                    field.pos,
                    "server.write_buffer must be between 1KiB and 1MiB".to_string(),
                    Some(format!(
                        "every client connection holds one; {} fits most cached answers",
                        defaults::size_text(defaults::WRITE_BUFFER)
                    )),
                );
                defaults::WRITE_BUFFER
            }
            _ => size,
        }
    }

    pub(super) fn coalescing(&mut self, raw: Option<Spanned<raw::Coalescing>>) -> Coalescing {
        let raw = raw.map(|r| r.value).unwrap_or_default();
        Coalescing {
            enabled: raw.enabled.unwrap_or(defaults::COALESCING_ENABLED),
            across_instances: raw
                .across_instances
                .unwrap_or(defaults::COALESCING_ACROSS_INSTANCES),
            wait_timeout: self.positive_duration(
                raw.wait_timeout.as_ref(),
                defaults::COALESCING_WAIT_TIMEOUT,
                "coalescing.wait_timeout",
            ),
            lock_lease: self.positive_duration(
                raw.lock_lease.as_ref(),
                defaults::COALESCING_LOCK_LEASE,
                "coalescing.lock_lease",
            ),
        }
    }

    pub(super) fn metrics(&mut self, raw: Option<Spanned<raw::Metrics>>) -> MetricsConfig {
        let raw = raw.map(|r| r.value).unwrap_or_default();
        let workspace_labels = match raw.workspace_labels {
            Some(field) if field.value > crate::config::model::MAX_WORKSPACE_LABELS => {
                self.error(
                    field.pos,
                    format!(
                        "metrics.workspace_labels is at most {}",
                        crate::config::model::MAX_WORKSPACE_LABELS
                    ),
                    Some("each workspace adds seven series to every scrape".to_string()),
                );
                defaults::WORKSPACE_LABELS
            }
            Some(field) => field.value,
            None => defaults::WORKSPACE_LABELS,
        };
        MetricsConfig { workspace_labels }
    }

    pub(super) fn limits(&mut self, raw: Option<Spanned<raw::Limits>>) -> Limits {
        let raw = raw.map(|r| r.value).unwrap_or_default();
        Limits {
            max_uri_len: self.count(
                raw.max_uri_len.as_ref(),
                defaults::MAX_URI_LEN,
                "limits.max_uri_len",
            ),
            max_query_params: self.count(
                raw.max_query_params.as_ref(),
                defaults::MAX_QUERY_PARAMS,
                "limits.max_query_params",
            ),
            max_header_size: self.size(
                raw.max_header_size.as_ref(),
                defaults::MAX_HEADER_SIZE,
                "limits.max_header_size",
            ),
        }
    }
}
