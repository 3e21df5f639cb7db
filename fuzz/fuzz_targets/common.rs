//! Shared setup of the fuzz targets: a config like the product's example,
//! in header mode and in JWT mode, loaded once.

#![allow(dead_code)]

use std::sync::{Arc, OnceLock};

use tagcache::cache::TagCache;
use tagcache::config::Config;

/// The HMAC secret of the JWT-mode config.
pub const SECRET: &str = "fuzz-secret-0123456789abcdef-0123456789";

const ROUTES: &str = r#"
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
      - { query: search, present: true }
      - { query: sortBy, equals: [name, x] }
      - { query: page, less_than: 1 }
    tags:
      - "workspace:{workspace}"
      - "board:{workspace}:{board_id}"
      - "filter:{workspace}:{query.filter}"
  - name: contact_counts
    match: "GET /api/cache-settings/workspace/{workspace_id}/counts"
    ttl: 300s
    tags: ["counts:{workspace_id}"]
  - name: contact
    match: "GET /api/contacts/{id}"
    ttl: 600s
    key: { per_user: true }
  - name: lenient
    match: "GET /lenient/{a}/{b}"
    ttl: 60s
    unknown_query: ignore
    key: { query: [q] }
    vary: [Accept-Language]
events:
  "contact:moved": ["board:{workspace_id}:{board_id}", "counts:{workspace_id}"]
  "contact:created": ["workspace:{workspace_id}", "counts:{workspace_id}"]
  "contact:updated": ["contact:{workspace_id}:{contact_id}", "board:{workspace_id}:{board_id}"]
  "employee:*": ["enterprise:{enterprise_id}"]
  "user:*": ["user:{workspace}:{user}"]
purge:
  legacy_tags: ["board:{workspace_id}:{board_id}", "filter:{workspace_id}:{filter}", "p:{pattern}"]
"#;

fn load(tenant: &str) -> Config {
    let yaml = format!(
        "listen: \"127.0.0.1:1\"\nupstream: {{ address: \"127.0.0.1:2\" }}\n{tenant}\n{ROUTES}"
    );
    let env = |name: &str| (name == "SECRET").then(|| SECRET.to_string());
    match tagcache::config::load_str(&yaml, "fuzz.yaml", &env) {
        Ok(l) => l.config,
        Err(e) => panic!("fuzz config invalid: {e}"),
    }
}

/// Header mode.
pub fn header_cache() -> &'static TagCache {
    static C: OnceLock<TagCache> = OnceLock::new();
    C.get_or_init(|| {
        TagCache::new(Arc::new(load(
            "tenant:\n  workspace: { header: X-Workspace-ID }\n  user: { header: X-User-ID }",
        )))
    })
}

/// JWT mode, HS256 with [`SECRET`].
pub fn jwt_cache() -> &'static TagCache {
    static C: OnceLock<TagCache> = OnceLock::new();
    C.get_or_init(|| {
        TagCache::new(Arc::new(load(
            "tenant:\n  jwt: { algorithms: [HS256], secret: \"${SECRET}\", issuer: iss, audience: [a, b] }\n  workspace: { claim: workspace_id }\n  user: { claim: sub }",
        )))
    })
}

/// Splits fuzz bytes into a request target and header lines, and builds the
/// request (or `None` when pingora itself would refuse it).
pub fn request(data: &[u8]) -> Option<pingora_http::RequestHeader> {
    let mut lines = data.split(|b| *b == b'\n');
    let target = lines.next()?;
    let mut req = pingora_http::RequestHeader::build("GET", target, None).ok()?;
    for line in lines {
        let Some(colon) = line.iter().position(|b| *b == b':') else {
            continue;
        };
        let (name, value) = (&line[..colon], &line[colon + 1..]);
        let (Ok(name), Ok(value)) = (
            http::HeaderName::from_bytes(name),
            http::HeaderValue::from_bytes(value.trim_ascii()),
        ) else {
            continue;
        };
        let _ = req.append_header(name, value);
    }
    Some(req)
}
