//! Harness for the Redis tier: real `redis-server` processes on ephemeral
//! ports in temporary directories (no persistence), which a test can kill,
//! restart empty, or freeze with SIGSTOP; a 3-master Redis Cluster; and
//! proxies configured with the Redis tier. Every process is killed on drop.

#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::util::{free_port, Options, Origin, Proxy, Resp};

/// Heartbeat used by test proxies: the resync window is twice this.
pub const HEARTBEAT_MS: u64 = 200;

fn temp_dir(what: &str) -> PathBuf {
    static N: AtomicU64 = AtomicU64::new(0);
    let dir = std::env::temp_dir().join(format!(
        "tagcache-{what}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    ));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// A port whose cluster bus port (port + 10000) is free too.
fn free_cluster_port() -> u16 {
    loop {
        let p = free_port();
        if p < 55000 && std::net::TcpListener::bind(("127.0.0.1", p + 10000)).is_ok() {
            return p;
        }
    }
}

fn redis_cli(port: u16, args: &[&str]) -> String {
    let out = Command::new("redis-cli")
        .arg("-p")
        .arg(port.to_string())
        .args(args)
        .stderr(Stdio::null())
        .output()
        .expect("redis-cli runs");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// One `redis-server` process.
pub struct RedisServer {
    pub port: u16,
    dir: PathBuf,
    extra: Vec<String>,
    child: Option<Child>,
    paused: bool,
    /// The CA to check the server with, when it speaks TLS.
    tls_ca: Option<String>,
    /// The socket path, when it listens on a unix socket only.
    unix: Option<String>,
}

impl RedisServer {
    /// Starts a server on a free port, without persistence.
    pub fn start() -> RedisServer {
        Self::start_with(free_port(), &[])
    }

    /// Starts a server that speaks only TLS, on a free port.
    pub fn start_tls(cert: &str, key: &str, ca: &str) -> RedisServer {
        let port = free_port();
        let tls_port = port.to_string();
        let tls = [
            "--port",
            "0",
            "--tls-port",
            &tls_port,
            "--tls-cert-file",
            cert,
            "--tls-key-file",
            key,
            "--tls-ca-cert-file",
            ca,
            "--tls-auth-clients",
            "no",
        ];
        let mut server = RedisServer {
            port,
            dir: temp_dir("redis-tls"),
            extra: tls.iter().map(|s| s.to_string()).collect(),
            child: None,
            paused: false,
            tls_ca: Some(ca.to_string()),
            unix: None,
        };
        server.spawn();
        server
    }

    /// Starts a server that listens on a unix socket only (no TCP port).
    pub fn start_unix() -> RedisServer {
        let dir = temp_dir("redis-unix");
        let sock = dir.join("redis.sock").display().to_string();
        let mut server = RedisServer {
            port: 0,
            dir,
            extra: vec![
                "--unixsocket".into(),
                sock.clone(),
                "--unixsocketperm".into(),
                "700".into(),
            ],
            child: None,
            paused: false,
            tls_ca: None,
            unix: Some(sock),
        };
        server.spawn();
        server
    }

    /// Starts a server on a given port (to bring one back where it was).
    pub fn start_on(port: u16) -> RedisServer {
        Self::start_with(port, &[])
    }

    fn start_with(port: u16, extra: &[&str]) -> RedisServer {
        let mut server = RedisServer {
            port,
            dir: temp_dir("redis"),
            extra: extra.iter().map(|s| s.to_string()).collect(),
            child: None,
            paused: false,
            tls_ca: None,
            unix: None,
        };
        server.spawn();
        server
    }

    fn spawn(&mut self) {
        let child = Command::new("redis-server")
            .arg("--port")
            .arg(self.port.to_string())
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(&self.dir)
            .args(&self.extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server is installed (./dev.sh deps)");
        self.child = Some(child);
        self.paused = false;
        let start = Instant::now();
        while self.cli(&["PING"]) != "PONG" {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "redis-server did not start on {}",
                self.port
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `redis://127.0.0.1:PORT`, or `unix:///path` for a unix socket.
    pub fn url(&self) -> String {
        match &self.unix {
            Some(sock) => format!("unix://{sock}"),
            None => format!("redis://127.0.0.1:{}", self.port),
        }
    }

    /// Runs a command with redis-cli and returns its output.
    pub fn cli(&self, args: &[&str]) -> String {
        if let Some(sock) = &self.unix {
            let out = Command::new("redis-cli")
                .arg("-s")
                .arg(sock)
                .args(args)
                .stderr(Stdio::null())
                .output()
                .expect("redis-cli runs");
            return String::from_utf8_lossy(&out.stdout).trim().to_string();
        }
        match &self.tls_ca {
            None => redis_cli(self.port, args),
            Some(ca) => {
                let mut all = vec!["--tls", "--cacert", ca.as_str()];
                all.extend_from_slice(args);
                redis_cli(self.port, &all)
            }
        }
    }

    fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// Kills the server (SIGKILL): everything it held is gone.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            if self.paused {
                let _ = Command::new("kill")
                    .arg("-CONT")
                    .arg(child.id().to_string())
                    .status();
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        self.paused = false;
    }

    /// Starts it again, empty, on the same port.
    pub fn restart_empty(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
        std::fs::create_dir_all(&self.dir).expect("temp dir");
        self.spawn();
    }

    /// Freezes the process (SIGSTOP): connections stay open, nothing answers.
    pub fn pause(&mut self) {
        let status = Command::new("kill")
            .arg("-STOP")
            .arg(self.pid().to_string())
            .status();
        assert!(status.is_ok_and(|s| s.success()));
        self.paused = true;
    }

    /// Thaws it (SIGCONT).
    pub fn resume(&mut self) {
        let status = Command::new("kill")
            .arg("-CONT")
            .arg(self.pid().to_string())
            .status();
        assert!(status.is_ok_and(|s| s.success()));
        self.paused = false;
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A Redis Cluster of three masters, no replicas.
pub struct RedisCluster {
    pub nodes: Vec<RedisServer>,
}

impl RedisCluster {
    pub fn start() -> RedisCluster {
        let nodes: Vec<RedisServer> = (0..3)
            .map(|_| {
                RedisServer::start_with(
                    free_cluster_port(),
                    &[
                        "--cluster-enabled",
                        "yes",
                        "--cluster-config-file",
                        "nodes.conf",
                        "--cluster-node-timeout",
                        "2000",
                    ],
                )
            })
            .collect();
        let addrs: Vec<String> = nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        let out = Command::new("redis-cli")
            .arg("--cluster")
            .arg("create")
            .args(&addrs)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .output()
            .expect("redis-cli --cluster create");
        assert!(
            out.status.success(),
            "cluster create failed: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        let start = Instant::now();
        for node in &nodes {
            while !node.cli(&["CLUSTER", "INFO"]).contains("cluster_state:ok") {
                assert!(
                    start.elapsed() < Duration::from_secs(20),
                    "cluster never became ok"
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        RedisCluster { nodes }
    }

    /// `["127.0.0.1:p1", ...]` as YAML flow sequence items.
    pub fn yaml_nodes(&self) -> String {
        self.nodes
            .iter()
            .map(|n| format!("\"127.0.0.1:{}\"", n.port))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Keys held by each node (`KEYS prefix*`).
    pub fn keys_per_node(&self, pattern: &str) -> Vec<Vec<String>> {
        self.nodes
            .iter()
            .map(|n| {
                n.cli(&["KEYS", pattern])
                    .lines()
                    .filter(|l| !l.is_empty())
                    .map(str::to_string)
                    .collect()
            })
            .collect()
    }
}

/// The Redis part of a test proxy's config.
#[derive(Clone)]
pub struct RedisOpts {
    /// `url: ...` or `cluster: [...]`, and any other `storage.redis` keys, each on its own line.
    pub target: String,
    /// Whether the memory tier is configured too.
    pub memory: bool,
    /// Extra top-level YAML (`purge:`, `coalescing:` ...).
    pub extra: String,
    /// The key prefix (one per test, so tests sharing nothing stay apart).
    pub prefix: String,
    /// `storage.redis.timeout`. Generous by default: tests run in parallel on
    /// a busy machine, and only the fail-open tests want Redis to look sick.
    pub timeout: String,
    /// `storage.redis.breaker.failures`.
    pub breaker_failures: u32,
    /// `storage.redis.heartbeat`, in milliseconds.
    pub heartbeat_ms: u64,
}

impl RedisOpts {
    pub fn server(redis: &RedisServer) -> RedisOpts {
        RedisOpts {
            target: format!("url: \"{}\"", redis.url()),
            memory: true,
            extra: String::new(),
            prefix: "tc".into(),
            timeout: "500ms".into(),
            breaker_failures: 20,
            heartbeat_ms: HEARTBEAT_MS,
        }
    }

    pub fn cluster(cluster: &RedisCluster) -> RedisOpts {
        RedisOpts {
            target: format!("cluster: [{}]", cluster.yaml_nodes()),
            memory: true,
            extra: String::new(),
            prefix: "tc".into(),
            timeout: "500ms".into(),
            breaker_failures: 20,
            heartbeat_ms: HEARTBEAT_MS,
        }
    }

    pub fn extra(mut self, yaml: &str) -> Self {
        self.extra.push_str(yaml);
        self.extra.push('\n');
        self
    }

    /// A Redis that misses its timeout or fails 3 times in a row is sick.
    pub fn strict(mut self) -> Self {
        self.timeout = "100ms".into();
        self.breaker_failures = 3;
        self
    }

    pub fn redis_only(mut self) -> Self {
        self.memory = false;
        self
    }
}

/// Starts a proxy with the Redis tier in front of `origin`.
pub fn proxy(origin: Origin, opts: &RedisOpts) -> Proxy {
    proxy_with(origin, opts, Options::default())
}

/// Like [`proxy`], with the rest of the config (routes, tenant) from `base`.
pub fn proxy_with(origin: Origin, opts: &RedisOpts, base: Options) -> Proxy {
    let memory = if opts.memory {
        "  memory:\n    max_size: 64MiB\n"
    } else {
        ""
    };
    let target = opts
        .target
        .lines()
        .map(|l| format!("    {l}\n"))
        .collect::<String>();
    let storage = format!(
        r#"storage:
{memory}  redis:
{target}    prefix: "{prefix}"
    timeout: {timeout}
    heartbeat: {heartbeat}ms
    compress_above: 4KiB
    breaker: {{ failures: {failures}, probe_interval: 200ms }}"#,
        prefix = opts.prefix,
        timeout = opts.timeout,
        failures = opts.breaker_failures,
        heartbeat = opts.heartbeat_ms,
    );
    Proxy::start_on(
        origin,
        Options {
            storage: Some(storage),
            // The caller's extra lines first, then the Redis options' own.
            extra: format!("{}\n{}", base.extra, opts.extra),
            ..base
        },
    )
}

/// Asks `p` for `path` (workspace `w1`) until the answer carries the
/// origin's `version`, that is until a purge has reached `p`, and returns
/// that answer, which must be a MISS. Fails after `bound`.
pub async fn wait_for_version(p: &Proxy, path: &str, version: u64, bound: Duration) -> Resp {
    let start = Instant::now();
    loop {
        let r = p.get(path, Some("w1"), None).await;
        if r.json()["version"] == version {
            assert_eq!(r.cache(), "MISS", "{path}");
            return r;
        }
        assert!(
            start.elapsed() < bound,
            "{path}: still the purged copy after {:?}",
            start.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// `/health` as JSON (no token needed).
pub async fn health(p: &Proxy) -> serde_json::Value {
    let r = p
        .client
        .get(p.admin_url("/health"))
        .send()
        .await
        .expect("health");
    assert_eq!(r.status(), 200, "health is always 200");
    r.json().await.expect("health JSON")
}

/// Waits until the proxy's purge subscription is up and synchronized.
/// Two instances on the same Redis and origin, each subscribed to purges
/// and caught up with the purge log.
pub async fn two_synced(origin: &Origin, opts: &RedisOpts) -> (Proxy, Proxy) {
    let a = proxy(origin.clone(), opts);
    let b = proxy(origin.clone(), opts);
    wait_synced(&a).await;
    wait_synced(&b).await;
    (a, b)
}

pub async fn wait_synced(p: &Proxy) {
    let start = Instant::now();
    loop {
        let h = health(p).await;
        if h["status"] == "ok" && h["redis"]["subscribed"] == true {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "never synced: {h}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until `/health` says `status` (`ok` or `degraded`); returns the document.
pub async fn wait_health(p: &Proxy, status: &str, within: Duration) -> serde_json::Value {
    let start = Instant::now();
    loop {
        let h = health(p).await;
        if h["status"] == status {
            return h;
        }
        assert!(
            start.elapsed() < within,
            "health never became {status}: {h}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The value of a metric line (`name{labels} value`) in `/metrics`, 0 if absent.
pub async fn metric(p: &Proxy, line_prefix: &str) -> f64 {
    let text = p.admin_get("/metrics").await.text;
    text.lines()
        .find(|l| l.starts_with(line_prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

/// Waits until `p` has written `fills` entries to Redis in all.
///
/// A fill answers its client after at most a few milliseconds of its Redis
/// write (a slow Redis never holds a client), so on a loaded machine the
/// client can have its answer before the entry is in Redis. A test that then
/// expects a Redis hit, or reads Redis itself, waits here first.
pub async fn wait_l2_stored(p: &Proxy, fills: u32) {
    let start = Instant::now();
    loop {
        let stored = metric(p, "tagcache_l2_writes_total{result=\"stored\"}").await;
        if stored >= f64::from(fills) {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "{stored} of {fills} fills in Redis after 5 s"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
