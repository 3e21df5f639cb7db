//! tagcache: a tenant-aware, tag-purgeable HTTP reverse-proxy cache on Pingora.
//!
//! The crate is both the `tagcache` binary and a library: [`cache::TagCache`]
//! is the embeddable cache layer a custom Pingora `ProxyHttp` can call from
//! its hooks, and [`server`] assembles tagcache's own proxy from a config.
//! See `ARCHITECTURE.md` for the code map.
//!
//! The public modules are what an embedder needs: [`cache`] (the layer),
//! [`config`] (loading and the validated model), [`server`] (the whole
//! proxy, on a thread or in the foreground), [`storage`] (the memory, Redis
//! and tiered stores), [`purge`] (purging, and the webhook signatures a
//! backend signs with) and [`admin`] (the admin application and its client).
//! Everything else is crate-private, unless the `internals` feature is on.

/// Declares modules that only the `internals` feature makes public (the
/// benches, fuzz targets and tests of internals use it); without it they are
/// crate-private, so the compiler finds what nothing calls.
macro_rules! internal_mods {
    ($($name:ident),* $(,)?) => {$(
        #[cfg(feature = "internals")]
        pub mod $name;
        #[cfg(not(feature = "internals"))]
        pub(crate) mod $name;
    )*};
}

pub mod admin;
pub mod cache;
pub mod config;
pub mod purge;
pub mod server;
pub mod storage;

internal_mods!(
    access_log,
    generations,
    identity,
    jwt_keys,
    key,
    metrics,
    proxy,
    route,
    settings,
    shared,
    tags,
    workspaces,
);
