//! Reload: a re-validated config applied whole to requests that start after
//! it, entries of unchanged routes kept, a broken file refused with every
//! problem while the old config keeps serving, and no failed request while
//! reloads happen under load.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::util::{free_ports, wait_for_port, Origin, Proxy, TOKEN};

/// A config file for a proxy in front of `origin`; `routes` is YAML.
struct File {
    path: PathBuf,
    head: String,
}

impl File {
    fn new(origin: &Origin, port: u16, admin: u16) -> File {
        let dir =
            std::env::temp_dir().join(format!("tagcache-reload-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        File {
            path: dir.join("tagcache.yaml"),
            head: format!(
                r#"listen: "127.0.0.1:{port}"
upstream:
  address: "{}"
admin:
  listen: "127.0.0.1:{admin}"
  token: "{TOKEN}"
storage:
  memory: {{ max_size: 16MiB }}
server: {{ threads: 2, grace_period: 1s }}
tenant:
  workspace: {{ header: X-Workspace-ID }}
  user: {{ header: X-User-ID }}
"#,
                origin.addr
            ),
        }
    }

    fn write(&self, routes: &str) {
        std::fs::write(&self.path, format!("{}{routes}", self.head)).unwrap();
    }
}

const ROUTES: &str = r#"routes:
  - name: item
    match: "GET /item/{id}"
    ttl: 300s
    tags: ["item:{workspace}:{id}"]
  - name: list
    match: "GET /list/{id}"
    ttl: 300s
    key: { query: [page] }
  - name: gone
    match: "GET /gone/{id}"
    ttl: 300s
"#;

/// Starts a proxy from the file, as `tagcache run -c FILE` does.
fn start(file: &File, origin: Origin, port: u16, admin: u16) -> Proxy {
    let loaded = tagcache::config::load_file(&file.path).expect("valid config");
    let running = tagcache::server::spawn(Arc::new(loaded.config)).expect("spawn");
    running.cache.set_config_file(file.path.clone());
    wait_for_port(port);
    wait_for_port(admin);
    Proxy {
        origin,
        port,
        admin_port: admin,
        running: Some(running),
        child: None,
        client: reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap(),
    }
}

fn setup() -> (File, Proxy) {
    let origin = Origin::start();
    let [port, admin] = free_ports();
    let file = File::new(&origin, port, admin);
    file.write(ROUTES);
    let p = start(&file, origin, port, admin);
    (file, p)
}

#[tokio::test]
async fn a_reload_applies_new_routes_and_keeps_the_entries_of_unchanged_ones() {
    let (file, p) = setup();
    crate::assert_cache!(p, "/item/1", Some("w1"), "MISS");
    crate::assert_cache!(p, "/item/1", Some("w1"), "HIT");
    crate::assert_cache!(p, "/gone/1", Some("w1"), "MISS");
    crate::assert_cache!(p, "/new/1", Some("w1"), "BYPASS");

    let changed = ROUTES.replace(
        "  - name: gone\n    match: \"GET /gone/{id}\"\n    ttl: 300s\n",
        "  - name: new\n    match: \"GET /new/{id}\"\n    ttl: 300s\n",
    );
    file.write(&changed);
    let r = p.admin_post("/reload", "").await;
    assert_eq!(r.status, 200, "{}", r.text);
    let changes = &r.json()["changes"];
    assert_eq!(changes["routes_added"], serde_json::json!(["new"]));
    assert_eq!(changes["routes_removed"], serde_json::json!(["gone"]));
    assert_eq!(changes["restart_required"], serde_json::json!([]));

    // The unchanged route's entry survived the reload.
    crate::assert_cache!(p, "/item/1", Some("w1"), "HIT");
    // The new route caches; the removed one no longer does.
    crate::assert_cache!(p, "/new/1", Some("w1"), "MISS");
    crate::assert_cache!(p, "/new/1", Some("w1"), "HIT");
    let gone = p.get("/gone/1", Some("w1"), None).await;
    assert_eq!(gone.cache(), "BYPASS");
    assert!(gone.header("cache-status").unwrap().contains("no-route"));
}

#[tokio::test]
async fn a_broken_file_is_refused_with_every_problem_and_the_old_config_keeps_serving() {
    let (file, p) = setup();
    p.get("/item/2", Some("w1"), None).await;
    file.write(
        &ROUTES
            .replace("ttl: 300s\n    tags", "tll: 300s\n    tags")
            .replace(
                "key: { query: [page] }",
                "key: { query: [page], defaults: {nope: 1} }",
            ),
    );
    let r = p.admin_post("/reload", "").await;
    assert_eq!(r.status, 422, "{}", r.text);
    let body = r.json();
    assert_eq!(body["reloaded"], false);
    let problems: Vec<String> = body["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    assert!(problems.len() >= 2, "{problems:?}");
    let at = format!("{}:", file.path.display());
    assert!(
        problems.iter().all(|p| p.starts_with(&at)
            && p.split(':')
                .nth(1)
                .is_some_and(|l| l.parse::<u32>().is_ok())),
        "{problems:?}"
    );
    assert!(problems.iter().any(|p| p.contains("tll")), "{problems:?}");
    // Still the old config: the entry is served, the routes are the same.
    crate::assert_cache!(p, "/item/2", Some("w1"), "HIT");
    crate::assert_cache!(p, "/gone/2", Some("w1"), "MISS");
}

#[tokio::test]
async fn a_route_whose_key_changed_starts_empty_and_a_shorter_ttl_caps_old_entries() {
    let (file, p) = setup();
    for path in ["/list/1?page=2", "/item/3"] {
        p.get(path, Some("w1"), None).await;
        crate::assert_cache!(p, path, Some("w1"), "HIT");
    }
    file.write(
        &ROUTES
            .replace("key: { query: [page] }", "key: { query: [page, sort] }")
            .replace("ttl: 300s\n    tags", "ttl: 1s\n    tags"),
    );
    let r = p.admin_post("/reload", "").await;
    assert_eq!(r.status, 200, "{}", r.text);
    let changes = &r.json()["changes"];
    assert_eq!(changes["routes_rekeyed"], serde_json::json!(["list"]));
    assert_eq!(
        changes["routes_changed"],
        serde_json::json!(["item", "list"])
    );
    // Another key definition: the old entry is not found.
    crate::assert_cache!(p, "/list/1?page=2", Some("w1"), "MISS");
    // The entry stored with 300 s is fresh only for the new 1 s.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let r = p.get("/item/3", Some("w1"), None).await;
    assert_ne!(r.cache(), "HIT", "{:?}", r.header("cache-status"));
}

#[tokio::test]
async fn a_reload_that_needs_a_restart_says_so() {
    let (file, p) = setup();
    let threads = ROUTES.to_string();
    let head = file.head.replace("threads: 2", "threads: 3");
    std::fs::write(&file.path, format!("{head}{threads}")).unwrap();
    let r = p.admin_post("/reload", "").await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.json()["changes"]["restart_required"],
        serde_json::json!(["server.threads"])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_reloads_under_load_fail_no_request() {
    let (file, p) = setup();
    let p = Arc::new(p);
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let mut clients = Vec::new();
    for c in 0..8 {
        let (p, stop, ok, failed) = (p.clone(), stop.clone(), ok.clone(), failed.clone());
        clients.push(tokio::spawn(async move {
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                i += 1;
                let path = format!("/item/{}", (c * 31 + i) % 40);
                match p
                    .client
                    .get(p.url(&path))
                    .header("x-workspace-id", "w1")
                    .send()
                    .await
                {
                    Ok(r) if r.status() == 200 => ok.fetch_add(1, Ordering::Relaxed),
                    _ => failed.fetch_add(1, Ordering::Relaxed),
                };
            }
        }));
    }
    for n in 0..20 {
        // Alternate two valid configs.
        let routes = if n % 2 == 0 {
            ROUTES.replace("ttl: 300s\n    tags", "ttl: 200s\n    tags")
        } else {
            ROUTES.to_string()
        };
        file.write(&routes);
        let r = p.admin_post("/reload", "").await;
        assert_eq!(r.status, 200, "{}", r.text);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.await.unwrap();
    }
    assert_eq!(failed.load(Ordering::Relaxed), 0);
    assert!(ok.load(Ordering::Relaxed) > 100);
    // Entries outlived all twenty reloads (item's key never changed).
    crate::assert_cache!(p, "/item/1", Some("w1"), "HIT");
}
