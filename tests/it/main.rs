//! tagcache integration tests: a real origin, the proxy in-process, real HTTP.

mod access_log;
mod admin;
mod coalescing;
mod config_cli;
mod dist_files;
mod freshness;
mod keys;
mod metrics;
mod operator_cli;
mod process;
mod proxying;
mod purge;
mod redis;
mod reload;
mod retries;
mod security;
mod standard_webhooks;
mod storability;
mod util;
