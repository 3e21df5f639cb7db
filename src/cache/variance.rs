//! A request's `Vary` variance for a stored response: which variant of a
//! route's entry it selects, for the proxy (`cache_vary_filter`) and for
//! `POST /explain`.

use http::header;
use pingora_cache::key::HashBinary;
use pingora_cache::VarianceBuilder;
use pingora_http::{RequestHeader, ResponseHeader};

use crate::config::Route;

/// The variance of `req` for a response stored with `stored`'s `Vary`, on
/// `Accept-Encoding` and the headers of `route`'s `vary` list; `None` when
/// the response varies on none of them.
pub(super) fn of(
    stored: &ResponseHeader,
    req: &RequestHeader,
    route: Option<&Route>,
) -> Option<HashBinary> {
    let mut names: Vec<http::HeaderName> = Vec::new();
    for vary in stored.headers.get_all(header::VARY) {
        for name in vary.to_str().ok()?.split(',').map(str::trim) {
            let Ok(name) = http::HeaderName::from_bytes(name.as_bytes()) else {
                continue;
            };
            let allowed =
                name == header::ACCEPT_ENCODING || route.is_some_and(|r| r.vary.contains(&name));
            if allowed && !names.contains(&name) {
                names.push(name);
            }
        }
    }
    if names.is_empty() {
        return None;
    }
    let mut builder = VarianceBuilder::new();
    for name in &names {
        // Every value, in order; absent and empty differ.
        let mut value = Vec::new();
        for v in req.headers.get_all(name) {
            value.push(b'=');
            value.extend_from_slice(v.as_bytes());
        }
        builder.add_owned_value(name.as_str(), value);
    }
    builder.finalize()
}
