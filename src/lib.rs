//! tagcache: a tenant-aware, tag-purgeable HTTP reverse-proxy cache on Pingora.
//!
//! The crate is both the `tagcache` binary and a library: [`cache::TagCache`]
//! is the embeddable cache layer a custom Pingora `ProxyHttp` can call from
//! its hooks, and [`server`] assembles tagcache's own proxy from a config.
//! See `ARCHITECTURE.md` for the code map.

pub mod access_log;
pub mod admin;
pub mod cache;
pub mod config;
pub mod generations;
pub mod identity;
pub mod jwt_keys;
pub mod key;
pub mod metrics;
pub mod proxy;
pub mod purge;
pub mod route;
pub mod server;
pub mod settings;
pub mod shared;
pub mod storage;
pub mod tags;
pub mod workspaces;
