//! Reload: a new validated config swapped in whole, while requests run.
//!
//! Requests that start after the swap run under the new config; a request
//! that started before keeps its own to its end ([`super::Active`]). Both
//! tiers keep their entries. An entry is found only by requests of a route
//! with the same name and key definition (the key holds the route's
//! fingerprint), so a route whose key changed starts empty and a removed
//! route stops caching. A shorter TTL caps how long existing entries stay
//! fresh ([`super::TagCache::hit_policy`]); tags and TTLs apply to new fills.
//! What only a restart can change is reported, never silently ignored.

use std::path::PathBuf;
use std::sync::Arc;

use serde::Serialize;

use super::{retention, Active, TagCache};
use crate::config::{Config, ConfigError};

/// Why a reload was refused; the running config stays.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// The cache was not built from a file, so there is nothing to re-read.
    #[error("no config file to reload: the server was not started from one")]
    NoFile,
    /// The file does not validate: every problem, as `check` prints them.
    #[error("{0}")]
    Invalid(ConfigError),
    /// The file validates but cannot be applied (an access log path that
    /// cannot be written).
    #[error("{0}")]
    Unusable(String),
}

/// What a reload changed.
#[derive(Debug, Default, Serialize, PartialEq, Eq)]
pub struct ReloadReport {
    /// Routes in the new config only.
    pub routes_added: Vec<String>,
    /// Routes in the old config only: they stop caching.
    pub routes_removed: Vec<String>,
    /// Routes in both whose settings differ.
    pub routes_changed: Vec<String>,
    /// Routes whose key definition changed: their existing entries are no
    /// longer found.
    pub routes_rekeyed: Vec<String>,
    /// Settings that differ but take effect only after a restart.
    pub restart_required: Vec<&'static str>,
}

impl TagCache {
    /// Remembers the file the config came from, for [`Self::reload_file`].
    pub fn set_config_file(&self, path: PathBuf) {
        *self.config_file.lock() = Some(path);
    }

    /// Re-reads and validates the config file in full, then swaps it in
    /// ([`Self::reload`]). Reloads are serialized.
    ///
    /// # Errors
    /// Every problem of the file, with the running config left as it was;
    /// or no file to read.
    pub fn reload_file(&self) -> Result<ReloadReport, ReloadError> {
        let file = self.config_file.lock();
        let path = file.as_ref().ok_or(ReloadError::NoFile)?;
        let loaded = crate::config::load_file(path).map_err(ReloadError::Invalid)?;
        crate::access_log::check(&loaded.config).map_err(ReloadError::Unusable)?;
        for w in &loaded.warnings {
            tracing::warn!("{w}");
        }
        Ok(self.reload(loaded.config))
    }

    /// Swaps in `new` for every request that starts from now on, and says
    /// what changed. Settings only a restart applies (listen addresses,
    /// threads, storage, the coalescing lock) keep their running values and
    /// are listed in [`ReloadReport::restart_required`].
    pub fn reload(&self, new: Config) -> ReloadReport {
        let old = self.config();
        let report = diff(&old, &new);
        // Tag records must outlive every entry the new routes may store.
        self.registry.extend_retention(retention(&new));
        self.active
            .store(Arc::new(Active::new(Arc::new(new), &self.metrics)));
        report
    }
}

fn diff(old: &Config, new: &Config) -> ReloadReport {
    let mut report = ReloadReport::default();
    for route in &new.routes {
        match old.routes.iter().find(|r| r.name == route.name) {
            None => report.routes_added.push(route.name.clone()),
            Some(before) => {
                if before.key_fingerprint != route.key_fingerprint {
                    report.routes_rekeyed.push(route.name.clone());
                }
                if format!("{before:?}") != format!("{route:?}") {
                    report.routes_changed.push(route.name.clone());
                }
            }
        }
    }
    for route in &old.routes {
        if !new.routes.iter().any(|r| r.name == route.name) {
            report.routes_removed.push(route.name.clone());
        }
    }
    let restart = [
        ("listen", old.listen != new.listen),
        ("admin.listen", old.admin.listen != new.admin.listen),
        ("server.threads", old.server.threads != new.server.threads),
        (
            "server.write_buffer",
            old.server.write_buffer != new.server.write_buffer,
        ),
        (
            "server.upgrade_sock",
            old.server.upgrade_sock != new.server.upgrade_sock,
        ),
        (
            "server.grace_period",
            old.server.grace_period != new.server.grace_period,
        ),
        (
            "storage",
            format!("{:?}", old.storage) != format!("{:?}", new.storage),
        ),
        (
            "coalescing.enabled",
            old.coalescing.enabled != new.coalescing.enabled,
        ),
    ];
    report.restart_required = restart
        .into_iter()
        .filter_map(|(name, differs)| differs.then_some(name))
        .collect();
    report
}
