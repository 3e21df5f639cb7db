//! tagcache integration tests: a real origin, the proxy in-process, real HTTP.

mod access_log;
mod admin;
mod coalescing;
mod config_cli;
mod dist_files;
mod example_config;
mod freshness;
mod keys;
mod layering;
mod legacy;
mod metrics;
mod operator_cli;
mod process;
mod proxying;
mod purge;
mod purge_all;
mod redis;
mod reload;
mod retries;
mod security;
mod settings;
mod standard_webhooks;
mod storability;
mod ui;
mod util;
