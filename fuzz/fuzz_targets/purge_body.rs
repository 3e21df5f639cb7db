//! Purge and event bodies: events, legacy bodies and `POST /purge`, down to
//! the keys of the URLs they name.

#![no_main]

#[path = "common.rs"]
mod common;

use libfuzzer_sys::fuzz_target;
use tagcache::admin::{parse_purge_body, UrlItem};
use tagcache::purge::events::{resolve_events, resolve_legacy};
use tagcache::purge::{Purger, UrlTarget};

fuzz_target!(|data: &[u8]| {
    let cache = common::header_cache();
    let config = cache.config();
    if let Err(e) = resolve_events(&config, data) {
        let _ = (e.to_string(), e.field());
    }
    if let Err(e) = resolve_legacy(&config, data) {
        let _ = (e.to_string(), e.field());
    }
    let Ok(body) = parse_purge_body(data) else {
        return;
    };
    let purger = purger();
    for item in body.urls.iter().take(16) {
        let target = match item {
            UrlItem::Plain(url) => UrlTarget {
                url: url.clone(),
                workspace: body.workspace.clone(),
                user: None,
            },
            UrlItem::Full {
                url,
                workspace,
                user,
            } => UrlTarget {
                url: url.clone(),
                workspace: workspace.clone(),
                user: user.clone(),
            },
        };
        let _ = purger.url_tag(&target);
    }
    for w in &body.workspaces {
        let _ = tagcache::tags::hash(&Purger::workspace_tag(w));
    }
});

fn purger() -> &'static Purger {
    static P: std::sync::OnceLock<Purger> = std::sync::OnceLock::new();
    P.get_or_init(|| {
        let cache = common::header_cache();
        // The purger wants an Arc; a second TagCache on the same config is fine.
        Purger::new(std::sync::Arc::new(tagcache::cache::TagCache::new(
            cache.config().clone(),
        )))
    })
}
