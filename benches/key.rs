//! Key path: route matching, query normalization and key framing for a
//! contact-list request, as done once per request.
//!
//! Run with `cargo bench --bench key`.

use std::collections::BTreeMap;
use std::time::Duration;

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use pingora_cache::key::CacheHashKey;
use pingora_cache::CacheKey;
use tagcache::config::{
    BypassCondition, BypassRule, KeySpec, PerUserRule, Route, RouteMethod, Segment, UnknownQuery,
};
use tagcache::key::{self, Identity};
use tagcache::route::Router;

fn contact_list() -> Route {
    let mut query: Vec<String> = [
        "page",
        "pageSize",
        "filter",
        "search",
        "assignedTo",
        "sortBy",
        "sortOrder",
        "columnId",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    query.sort();
    let defaults: BTreeMap<String, String> = [
        ("page", "1"),
        ("pageSize", "50"),
        ("filter", "all"),
        ("sortBy", "created_at"),
        ("sortOrder", "desc"),
    ]
    .iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    Route {
        name: "contact_list".into(),
        method: RouteMethod::Get,
        segments: vec![
            Segment::Literal("api".into()),
            Segment::Literal("boards".into()),
            Segment::Param("board_id".into()),
            Segment::Literal("contacts".into()),
        ],
        ttl: Duration::from_secs(180),
        freshness: Default::default(),
        stale_while_revalidate: Duration::ZERO,
        stale_if_error: Duration::ZERO,
        key: KeySpec {
            query,
            defaults,
            per_user_when: vec![PerUserRule {
                param: "filter".into(),
                values: vec!["assigned_to_me".into()],
            }],
            per_user: false,
            query_all: false,
        },
        unknown_query: UnknownQuery::Bypass,
        bypass_when: vec![BypassRule {
            param: "pageSize".into(),
            when: BypassCondition::GreaterThan(100.0),
        }],
        tags: vec![],
        statuses: vec![200],
        honor_client_no_cache: true,
        unkeyed_headers: tagcache::config::UnkeyedAction::Strip,
        vary: vec![],
        key_fingerprint: [0; 8],
    }
}

fn key_path(c: &mut Criterion) {
    let route = contact_list();
    let routes = vec![route.clone()];
    let router = Router::new(&routes);
    let path = "/api/boards/7f3c2a/contacts";
    let query = "page=3&pageSize=50&filter=open&sortBy=last_message_time&search=ann%20lee";
    c.bench_function("key/route_match", |b| {
        b.iter(|| router.find(black_box(path)))
    });
    c.bench_function("key/build", |b| {
        b.iter(|| {
            let m = router.find(black_box(path)).expect("matches");
            let values = key::query_values(&route, Some(black_box(query)), 64).expect("keyable");
            assert!(!key::bypassed(&route, &values));
            let user = key::is_per_user(&route, &values).then_some("u1");
            let id = Identity {
                workspace: Some("ws_42"),
                user,
            };
            key::primary(&route, id, &m.params, &values)
        })
    });
    c.bench_function("key/build_and_hash", |b| {
        b.iter(|| {
            let m = router.find(black_box(path)).expect("matches");
            let values = key::query_values(&route, Some(black_box(query)), 64).expect("keyable");
            let id = Identity {
                workspace: Some("ws_42"),
                user: None,
            };
            let k = CacheKey::new(key::primary(&route, id, &m.params, &values), "ws_42");
            k.combined_bin()
        })
    });
}

criterion_group!(benches, key_path);
criterion_main!(benches);
