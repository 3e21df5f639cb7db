//! Test harness: a real HTTP origin, tagcache started in-process on
//! ephemeral ports, and a client.

#![allow(dead_code)]

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::{SocketAddr, TcpListener as StdListener};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// A free loopback port (bound then released).
/// Sends `n` concurrent requests for `path` (workspace `w1`) that the
/// origin answers after 300 ms, spread over `proxies` in turn, and returns
/// the answers in order.
pub async fn cold_herd(proxies: &[std::sync::Arc<Proxy>], path: &str, n: usize) -> Vec<Resp> {
    let tasks: Vec<_> = (0..n)
        .map(|i| {
            let p = proxies[i % proxies.len()].clone();
            let path = path.to_string();
            tokio::spawn(async move {
                p.get_with(&path, Some("w1"), None, &[("x-origin-delay-ms", "300")])
                    .await
            })
        })
        .collect();
    let mut answers = Vec::with_capacity(n);
    for t in tasks {
        answers.push(t.await.expect("request task"));
    }
    answers
}

pub fn free_port() -> u16 {
    StdListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// `N` distinct free ports. Two calls of [`free_port`] may return the same
/// port (the first listener is closed before the second is bound), which
/// would give a proxy and its admin listener one address: each is held
/// until all are chosen.
pub fn free_ports<const N: usize>() -> [u16; N] {
    let held: [StdListener; N] =
        std::array::from_fn(|_| StdListener::bind("127.0.0.1:0").expect("free port"));
    held.map(|l| l.local_addr().expect("free port").port())
}

/// A shared multi-threaded runtime for origins (kept alive for the whole test binary).
fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: std::sync::OnceLock<tokio::runtime::Runtime> = std::sync::OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime")
    })
}

/// A real HTTP/1.1 origin. It answers every request with a JSON echo unless
/// the request carries `x-origin-*` directives:
/// - `x-origin-status: 503`, `x-origin-delay-ms: 300`
/// - `x-origin-reason: Fine` sends that reason phrase in the status line
/// - `x-origin-header: Name: value` (repeatable) adds a response header
/// - `x-origin-body-size: N` answers N bytes of `a`
/// - `x-origin-chunked: 1` streams the body in chunks without Content-Length
/// - `x-origin-etag: "v1"` sends that `ETag`, and `x-origin-last-modified:
///   <HTTP-date>` that `Last-Modified`; either answers a request whose
///   `If-None-Match` (or, without one, `If-Modified-Since`) matches with a
///   304 that carries the same headers and no body
///
/// It counts requests per path (without query) and in total, and serves the
/// current `version` so tests can tell fresh data from old.
#[derive(Clone)]
pub struct Origin {
    pub addr: SocketAddr,
    state: Arc<OriginState>,
}

#[derive(Default)]
struct OriginState {
    down: std::sync::atomic::AtomicBool,
    total: AtomicU64,
    version: AtomicU64,
    per_path: Mutex<HashMap<String, u64>>,
    last_headers: Mutex<HashMap<String, Vec<(String, String)>>>,
}

impl Origin {
    pub fn start() -> Origin {
        let std = StdListener::bind("127.0.0.1:0").expect("bind origin");
        std.set_nonblocking(true).expect("nonblocking");
        let addr = std.local_addr().expect("addr");
        let state = Arc::new(OriginState::default());
        let st = state.clone();
        runtime().spawn(async move {
            let listener = TcpListener::from_std(std).expect("listener");
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                if st.down.load(Ordering::SeqCst) {
                    drop(stream);
                    continue;
                }
                let st = st.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req| handle(st.clone(), req));
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        Origin { addr, state }
    }

    /// Requests received for `path` (query ignored).
    pub fn hits(&self, path: &str) -> u64 {
        *self.state.per_path.lock().unwrap().get(path).unwrap_or(&0)
    }

    /// Requests received in total.
    pub fn total(&self) -> u64 {
        self.state.total.load(Ordering::SeqCst)
    }

    /// The data version served now.
    pub fn version(&self) -> u64 {
        self.state.version.load(Ordering::SeqCst)
    }

    /// Changes the data: later responses carry the new version.
    pub fn bump(&self) -> u64 {
        self.state.version.fetch_add(1, Ordering::SeqCst) + 1
    }

    /// Makes the origin drop every connection (true) or serve again (false).
    pub fn set_down(&self, down: bool) {
        self.state.down.store(down, Ordering::SeqCst);
    }

    /// Headers of the last request seen for `path`, lower-cased names.
    pub fn last_headers(&self, path: &str) -> Vec<(String, String)> {
        self.state
            .last_headers
            .lock()
            .unwrap()
            .get(path)
            .cloned()
            .unwrap_or_default()
    }
}

type Body = http_body_util::combinators::BoxBody<Bytes, Infallible>;

type HandlerError = Box<dyn std::error::Error + Send + Sync>;

async fn handle(
    st: Arc<OriginState>,
    req: Request<Incoming>,
) -> Result<Response<Body>, HandlerError> {
    if st.down.load(Ordering::SeqCst) {
        // Abort the connection without an answer, as a crashed origin would.
        return Err("origin down".into());
    }
    let path = req.uri().path().to_string();
    let query = req.uri().query().unwrap_or("").to_string();
    let method = req.method().to_string();
    st.total.fetch_add(1, Ordering::SeqCst);
    *st.per_path.lock().unwrap().entry(path.clone()).or_default() += 1;
    let n = st.per_path.lock().unwrap()[&path];
    let headers: Vec<(String, String)> = req
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    st.last_headers
        .lock()
        .unwrap()
        .insert(path.clone(), headers.clone());
    let get = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let version = st.version.load(Ordering::SeqCst);
    if let Some(ms) = get("x-origin-delay-ms").and_then(|v| v.parse::<u64>().ok()) {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    let status = get("x-origin-status")
        .and_then(|v| v.parse::<u16>().ok())
        .unwrap_or(200);
    let body_size = get("x-origin-body-size").and_then(|v| v.parse::<usize>().ok());
    let chunked = get("x-origin-chunked").is_some();
    let reason = get("x-origin-reason");
    let extra: Vec<String> = req
        .headers()
        .get_all("x-origin-header")
        .iter()
        .filter_map(|v| v.to_str().ok().map(str::to_string))
        .collect();
    let etag = get("x-origin-etag");
    let last_modified = get("x-origin-last-modified");
    let if_none_match = get("if-none-match");
    let if_modified_since = get("if-modified-since");
    let req_body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let body = match body_size {
        Some(n) => Bytes::from(vec![b'a'; n]),
        None => {
            let ws = headers
                .iter()
                .find(|(k, _)| k == "x-workspace-id")
                .map(|(_, v)| v.clone());
            let user = headers
                .iter()
                .find(|(k, _)| k == "x-user-id")
                .map(|(_, v)| v.clone());
            // Echoed as a careless origin would (absolute links built from it).
            let fwd_host = headers
                .iter()
                .find(|(k, _)| k == "x-forwarded-host")
                .map(|(_, v)| v.clone());
            Bytes::from(
                serde_json::json!({
                    "path": path, "query": query, "method": method, "n": n, "version": version,
                    "workspace": ws, "user": user, "body": String::from_utf8_lossy(&req_body),
                    "forwarded_host": fwd_host,
                })
                .to_string(),
            )
        }
    };
    let not_modified = match (&etag, if_none_match) {
        (Some(etag), Some(inm)) => inm.split(',').any(|t| t.trim() == etag || t.trim() == "*"),
        (_, Some(_)) => false,
        (_, None) => match (&last_modified, if_modified_since) {
            (Some(lm), Some(ims)) => match (
                httpdate::parse_http_date(lm),
                httpdate::parse_http_date(&ims),
            ) {
                (Ok(lm), Ok(ims)) => lm <= ims,
                _ => false,
            },
            _ => false,
        },
    };
    let (status, body) = if not_modified {
        (304, Bytes::new())
    } else {
        (status, body)
    };
    let mut builder = Response::builder()
        .status(status)
        .header("content-type", "application/json");
    if let Some(etag) = &etag {
        builder = builder.header("etag", etag.as_str());
    }
    if let Some(lm) = &last_modified {
        builder = builder.header("last-modified", lm.as_str());
    }
    for h in extra {
        if let Some((k, v)) = h.split_once(':') {
            builder = builder.header(k.trim(), v.trim());
        }
    }
    if let Some(reason) = reason.and_then(|r| hyper::ext::ReasonPhrase::try_from(r).ok()) {
        builder = builder.extension(reason);
    }
    let resp = if chunked {
        let chunks: Vec<Result<Frame<Bytes>, Infallible>> = body
            .chunks(1000)
            .map(|c| Ok(Frame::data(Bytes::copy_from_slice(c))))
            .collect();
        builder.body(BodyExt::boxed(StreamBody::new(futures::stream::iter(
            chunks,
        ))))
    } else {
        builder.body(BodyExt::boxed(Full::new(body)))
    };
    Ok(resp.expect("response"))
}

/// The webhook secret, where a test enables signatures.
pub const WEBHOOK_SECRET: &str = "test-webhook-secret";

/// The admin token used by every test proxy.
pub const TOKEN: &str = "test-admin-token";

/// A base config for tests: `{origin}` is filled in, routes appended.
pub const BASE_ROUTES: &str = r#"
routes:
  - name: contact_list
    match: "GET /api/boards/{board_id}/contacts"
    ttl: 180s
    key:
      query: [page, pageSize, filter, search, assignedTo, sortBy, sortOrder, columnId]
      defaults: { page: "1", pageSize: "50", filter: all, sortBy: created_at, sortOrder: desc }
      per_user_when: { filter: [assigned_to_me] }
    bypass_when:
      - { query: pageSize, greater_than: 100 }
    tags:
      - "workspace:{workspace}"
      - "board:{workspace}:{board_id}"
      - "filter:{workspace}:{query.filter}"
  - name: contact_counts
    match: "GET /api/cache-settings/workspace/{workspace_id}/counts"
    ttl: 300s
    tags: ["counts:{workspace_id}"]
  - name: short
    match: "GET /short/{id}"
    ttl: 1s
  - name: swr
    match: "GET /swr/{id}"
    ttl: 1s
    stale_while_revalidate: 60s
  - name: sie
    match: "GET /sie/{id}"
    ttl: 1s
    stale_if_error: 60s
  - name: swr_soft
    match: "GET /soft/{id}"
    ttl: 300s
    stale_while_revalidate: 60s
    stale_if_error: 60s
    tags: ["soft:{id}"]
  - name: item
    match: "GET /item/{id}"
    ttl: 300s
    tags: ["item:{workspace}:{id}"]
  - name: ignore_unknown
    match: "GET /lenient/{id}"
    ttl: 300s
    unknown_query: ignore
    key: { query: [page] }
  - name: statuses
    match: "GET /status/{id}"
    ttl: 300s
    statuses: [200, 404]
events:
  "contact:moved": ["board:{workspace_id}:{board_id}", "counts:{workspace_id}"]
  "contact:created": ["workspace:{workspace_id}", "counts:{workspace_id}"]
  "contact:updated": ["contact:{workspace_id}:{contact_id}", "board:{workspace_id}:{board_id}", "counts:{workspace_id}"]
  "employee:*": ["enterprise:{enterprise_id}"]
"#;

/// A running proxy with its origin.
pub struct Proxy {
    pub origin: Origin,
    pub port: u16,
    pub admin_port: u16,
    pub running: Option<tagcache::server::Running>,
    /// The `tagcache` process, with [`Options::process`].
    pub child: Option<std::process::Child>,
    pub client: reqwest::Client,
}

/// Options for [`Proxy::start_with`].
pub struct Options {
    /// Extra top-level YAML (e.g. `debug_headers: true`).
    pub extra: String,
    /// Routes/events YAML; defaults to [`BASE_ROUTES`].
    pub routes: String,
    /// Memory store size.
    pub max_size: String,
    /// Upstream address override (e.g. a dead port).
    pub upstream: Option<String>,
    /// Upstream timeouts block.
    pub upstream_extra: String,
    /// Extra lines in the admin block (indented two spaces).
    pub admin_extra: String,
    /// The `tenant:` block; defaults to [`HEADER_TENANT`].
    pub tenant: String,
    /// Extra lines in the `storage.memory` block (indented four spaces).
    pub memory_extra: String,
    /// Extra environment variables for `${VAR}` in the config.
    pub env: Vec<(String, String)>,
    /// The whole `storage:` block, replacing the memory-only default built
    /// from `max_size` and `memory_extra`.
    pub storage: Option<String>,
    /// Runs the `tagcache` binary as a child process instead of a server in
    /// this process: a stopped process gives all its memory back, which an
    /// in-process server (whose stores are `'static`) cannot.
    pub process: bool,
}

/// Header mode: identities trusted from `X-Workspace-ID` and `X-User-ID`.
pub const HEADER_TENANT: &str = "tenant:
  workspace: { header: X-Workspace-ID }
  user: { header: X-User-ID }";

impl Default for Options {
    fn default() -> Self {
        Options {
            extra: String::new(),
            routes: BASE_ROUTES.to_string(),
            max_size: "64MiB".into(),
            upstream: None,
            upstream_extra: String::new(),
            admin_extra: String::new(),
            tenant: HEADER_TENANT.to_string(),
            memory_extra: String::new(),
            env: Vec::new(),
            storage: None,
            process: false,
        }
    }
}

impl Proxy {
    pub fn start() -> Proxy {
        Self::start_with(Options::default())
    }

    pub fn start_with(opts: Options) -> Proxy {
        let origin = Origin::start();
        Self::start_on(origin, opts)
    }

    /// Starts a proxy in front of an existing origin.
    pub fn start_on(origin: Origin, opts: Options) -> Proxy {
        init_tracing();
        let [port, admin_port] = free_ports();
        let upstream = opts
            .upstream
            .clone()
            .unwrap_or_else(|| origin.addr.to_string());
        let yaml = format!(
            r#"
listen: "127.0.0.1:{port}"
upstream:
  address: "{upstream}"
{upstream_extra}
admin:
  listen: "127.0.0.1:{admin_port}"
  token: "${{TAGCACHE_TEST_TOKEN}}"
{admin_extra}
{storage}
{tenant}
server:
  threads: 2
  grace_period: 1s
{extra}
{routes}
"#,
            upstream_extra = opts.upstream_extra,
            admin_extra = opts.admin_extra,
            storage = opts.storage.clone().unwrap_or_else(|| format!(
                "storage:\n  memory:\n    max_size: {}\n{}",
                opts.max_size, opts.memory_extra
            )),
            tenant = opts.tenant,
            extra = opts.extra,
            routes = opts.routes,
        );
        let extra_env = opts.env.clone();
        let env = move |name: &str| match name {
            "TAGCACHE_TEST_TOKEN" => Some(TOKEN.to_string()),
            "TAGCACHE_TEST_WEBHOOK_SECRET" => Some(WEBHOOK_SECRET.to_string()),
            _ => extra_env
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone()),
        };
        let loaded = tagcache::config::load_str(&yaml, "test.yaml", &env)
            .unwrap_or_else(|e| panic!("test config invalid:\n{e}\n{yaml}"));
        let (running, child) = if opts.process {
            (None, Some(spawn_process(&yaml, port, &opts.env)))
        } else {
            let running = tagcache::server::spawn(Arc::new(loaded.config)).expect("spawn proxy");
            (Some(running), None)
        };
        wait_for_port(port);
        wait_for_port(admin_port);
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(64)
            .timeout(Duration::from_secs(30))
            .build()
            .expect("client");
        Proxy {
            origin,
            port,
            admin_port,
            running,
            child,
            client,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{}", self.port, path)
    }

    pub fn admin_url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{}", self.admin_port, path)
    }

    /// GET as workspace `ws` (and user, if given).
    pub async fn get(&self, path: &str, ws: Option<&str>, user: Option<&str>) -> Resp {
        self.get_with(path, ws, user, &[]).await
    }

    /// The `X-Cache-Status` of a GET of `path` in workspace `ws`, with no
    /// user; see [`assert_cache!`](crate::assert_cache).
    pub async fn status_of(&self, path: &str, ws: Option<&str>) -> String {
        self.get(path, ws, None).await.cache().to_string()
    }

    pub async fn get_with(
        &self,
        path: &str,
        ws: Option<&str>,
        user: Option<&str>,
        headers: &[(&str, &str)],
    ) -> Resp {
        let mut req = self.client.get(self.url(path));
        if let Some(w) = ws {
            req = req.header("X-Workspace-ID", w);
        }
        if let Some(u) = user {
            req = req.header("X-User-ID", u);
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        Resp::from(req.send().await.expect("request")).await
    }

    /// POST JSON to the admin API with the token.
    pub async fn admin_post(&self, path: &str, body: &str) -> Resp {
        let req = self
            .client
            .post(self.admin_url(path))
            .header("authorization", format!("Bearer {TOKEN}"))
            .header("content-type", "application/json")
            .body(body.to_string());
        Resp::from(req.send().await.expect("admin request")).await
    }

    pub async fn admin_get(&self, path: &str) -> Resp {
        let req = self
            .client
            .get(self.admin_url(path))
            .header("authorization", format!("Bearer {TOKEN}"));
        Resp::from(req.send().await.expect("admin request")).await
    }

    /// `/stats` as JSON.
    pub async fn stats(&self) -> serde_json::Value {
        self.admin_get("/stats").await.json()
    }

    /// `/stats` once `n` requests are counted. A request is counted in
    /// Pingora's logging hook, just after its answer is written, so on a
    /// busy machine a client can ask before the last one is. Fails after 5 s.
    pub async fn stats_after(&self, n: u64) -> serde_json::Value {
        let start = std::time::Instant::now();
        loop {
            let s = self.stats().await;
            let counted: u64 = [
                "hits",
                "misses",
                "bypasses",
                "stale",
                "expired",
                "revalidated",
            ]
            .iter()
            .map(|k| s[k].as_u64().unwrap_or(0))
            .sum();
            if counted >= n || start.elapsed() > Duration::from_secs(5) {
                return s;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Purges tags and asserts success.
    pub async fn purge_tags(&self, tags: &[&str], soft: bool) {
        let body = serde_json::json!({ "tags": tags, "soft": soft }).to_string();
        let r = self.admin_post("/purge", &body).await;
        assert_eq!(r.status, 200, "purge failed: {}", r.text);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        if let Some(r) = self.running.take() {
            r.stop();
        }
        if let Some(mut child) = self.child.take() {
            // SIGTERM: the process leaves the live set and drains, as in production.
            let _ = std::process::Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            for _ in 0..200 {
                if matches!(child.try_wait(), Ok(Some(_))) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(25));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Runs `tagcache run` on `yaml` (written next to the other temporary files)
/// with the test's secrets in its environment; its log goes to a file.
fn spawn_process(yaml: &str, port: u16, env: &[(String, String)]) -> std::process::Child {
    let dir = std::env::temp_dir().join(format!("tagcache-test-{}-{port}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temporary directory");
    let config = dir.join("tagcache.yaml");
    std::fs::write(&config, yaml).expect("write config");
    let log = std::fs::File::create(dir.join("tagcache.log")).expect("log file");
    std::process::Command::new(env!("CARGO_BIN_EXE_tagcache"))
        .arg("run")
        .arg("-c")
        .arg(&config)
        .env("TAGCACHE_TEST_TOKEN", TOKEN)
        .env("TAGCACHE_TEST_WEBHOOK_SECRET", WEBHOOK_SECRET)
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start the tagcache binary")
}

impl Proxy {
    /// Resident memory of the proxy's process, in KiB, when it runs as one.
    pub fn process_rss_kib(&self) -> Option<u64> {
        let pid = self.child.as_ref()?.id();
        std::fs::read_to_string(format!("/proc/{pid}/status"))
            .ok()?
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
    }
}

/// Everything logged by the process (tagcache, pingora) since the first
/// proxy started, for tests that check what never reaches the logs.
pub fn captured_logs() -> String {
    String::from_utf8_lossy(&log_buffer().lock().unwrap()).into_owned()
}

fn log_buffer() -> &'static Arc<Mutex<Vec<u8>>> {
    static BUF: std::sync::OnceLock<Arc<Mutex<Vec<u8>>>> = std::sync::OnceLock::new();
    BUF.get_or_init(|| Arc::new(Mutex::new(Vec::new())))
}

/// Writes log lines into [`log_buffer`], up to 256 MiB.
struct Capture;

impl std::io::Write for Capture {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        let mut buf = log_buffer().lock().unwrap();
        if buf.len() < 256 << 20 {
            buf.extend_from_slice(data);
        }
        Ok(data.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Installs, once, a subscriber that captures every log line at debug level
/// (and prints those `TAGCACHE_TEST_LOG` selects).
pub fn init_tracing() {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    use tracing_subscriber::Layer;
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let capture = tracing_subscriber::fmt::layer()
            .with_ansi(false)
            .with_writer(|| Capture)
            .with_filter(tracing_subscriber::filter::LevelFilter::DEBUG);
        let print = std::env::var("TAGCACHE_TEST_LOG").ok().map(|filter| {
            tracing_subscriber::fmt::layer()
                .with_test_writer()
                .with_filter(tracing_subscriber::EnvFilter::new(filter))
        });
        let _ = tracing_subscriber::registry()
            .with(capture)
            .with(print)
            .try_init();
    });
}

pub fn wait_for_port(port: u16) {
    for _ in 0..500 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("port {port} never opened");
}

/// A response, read whole.
#[derive(Debug, Clone)]
pub struct Resp {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub text: String,
}

impl Resp {
    pub async fn from(r: reqwest::Response) -> Resp {
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        let text = r.text().await.unwrap_or_default();
        Resp {
            status,
            headers,
            text,
        }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// `X-Cache-Status`.
    pub fn cache(&self) -> &str {
        self.header("x-cache-status").unwrap_or("<none>")
    }

    /// `X-Cache-Layer`.
    pub fn layer(&self) -> &str {
        self.header("x-cache-layer").unwrap_or("<none>")
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text))
    }

    /// The origin's `n` (how many times the origin served this path).
    pub fn n(&self) -> u64 {
        self.json()["n"].as_u64().expect("n")
    }
}

/// Sends a request line exactly as given (no client-side path normalization)
/// and returns the status and the raw response head.
pub fn raw_get(port: u16, target: &str, headers: &[(&str, &str)]) -> (u16, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut req = format!("GET {target} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf).into_owned();
    let head = text.split("\r\n\r\n").next().unwrap_or("").to_string();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, head.to_ascii_lowercase())
}

/// Asserts the `X-Cache-Status` of a GET of `path` in workspace `ws` (no
/// user) on proxy `p`: `assert_cache!(p, "/item/1", Some("w1"), "HIT")`.
#[macro_export]
macro_rules! assert_cache {
    ($p:expr, $path:expr, $ws:expr, $status:expr $(,)?) => {
        assert_eq!($p.status_of($path, $ws).await, $status, "{}", $path)
    };
}
