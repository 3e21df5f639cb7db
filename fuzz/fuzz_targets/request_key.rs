//! Key building from arbitrary request lines and headers: routing, query
//! normalization, identity, the framed key, in header and in JWT mode.

#![no_main]

#[path = "common.rs"]
mod common;

use std::borrow::Cow;

use libfuzzer_sys::fuzz_target;
use tagcache::key::{self, Identity};

fuzz_target!(|data: &[u8]| {
    let Some(req) = common::request(data) else {
        return;
    };
    for cache in [common::header_cache(), common::jwt_cache()] {
        // What an admin URL purge computes, and what the proxy keys on.
        let read = |name: &'static str| match tagcache::identity::header_value(
            &req,
            &http::HeaderName::from_static(name),
        ) {
            tagcache::identity::HeaderValue::One(v) => Some(v),
            _ => None,
        };
        let who = Identity {
            workspace: read("x-workspace-id"),
            user: read("x-user-id"),
        };
        let target = std::str::from_utf8(req.raw_path()).unwrap_or("/");
        let _ = cache.key_for(target, who);
        let config = cache.config();
        // Every route's query normalization on the raw query, routed or not.
        let query = req.uri.query();
        for route in &config.routes {
            if let Ok(values) = key::query_values(route, query, config.limits.max_query_params) {
                let _ = key::bypassed(route, &values);
                let per_user = key::is_per_user(route, &values);
                let id = Identity {
                    workspace: Some("w"),
                    user: per_user.then_some("u"),
                };
                let primary = key::primary(route, id, &[Cow::Borrowed("p")], &values);
                let _ = key::describe(&primary);
            }
        }
        let router = tagcache::route::Router::new(&config.routes);
        let _ = router.find(req.uri.path());
        if let Ok(s) = std::str::from_utf8(req.raw_path()) {
            let _ = router.find(s.split('?').next().unwrap_or(""));
        }
    }
    // The identity checks of JWT mode, on whatever headers came in.
    let tenant = &common::jwt_cache().config().tenant;
    if let Some(Ok(auth)) = tagcache::identity::Authenticator::new(tenant) {
        let _ = auth.authenticate(&req, Some("w"));
        let _ = auth.authenticate(&req, None);
    }
    let _ = tagcache::identity::bearer(&req);
});
