//! tagcache integration tests: a real origin, the proxy in-process, real HTTP.

mod access_log;
mod admin;
mod coalescing;
mod config_cli;
mod freshness;
mod keys;
mod metrics;
mod process;
mod proxying;
mod purge;
mod redis;
mod reload;
mod retries;
mod security;
mod storability;
mod util;
mod warm;
mod workspaces;
