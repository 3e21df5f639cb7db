//! The cache layer's side of run-time settings ([`crate::settings`]): the
//! snapshot requests read, and where changes are kept: Redis (shared by
//! every instance, polled every heartbeat), a local state file written
//! atomically, or memory only when neither is configured.

use std::path::PathBuf;
use std::sync::{Arc, Weak};

use arc_swap::ArcSwap;

use super::TagCache;
use crate::settings::{RouteSetting, Settings, WorkspaceSetting};
use crate::shared::Shared;

/// Where settings are kept.
#[derive(Debug)]
pub(crate) enum SettingsStore {
    /// Nowhere: lost on restart (no `storage.redis`, no `state.path`).
    Memory,
    /// A JSON file, replaced atomically on every change.
    File(PathBuf),
    /// Redis, shared by every instance.
    Redis(Arc<Shared>),
}

/// Why a settings change was not made; the settings stay as they were.
#[derive(Debug, thiserror::Error)]
pub enum SettingsWriteError {
    /// The state file could not be written.
    #[error("could not write the state file {path}: {source}")]
    File {
        /// The file.
        path: PathBuf,
        /// What the system said.
        source: std::io::Error,
    },
    /// Redis did not take the change.
    #[error("could not write the settings to Redis: {0}")]
    Redis(String),
}

/// One change of the run-time settings.
#[derive(Debug)]
pub enum Change {
    /// A workspace's settings replaced (or removed with `None`).
    Workspace(String, Option<WorkspaceSetting>),
    /// A route's settings replaced (or removed with `None`).
    Route(String, Option<RouteSetting>),
}

impl Change {
    /// A short description for the log.
    pub(crate) fn describe(&self) -> String {
        match self {
            Change::Workspace(w, Some(v)) => format!(
                "workspace {w}: {}",
                serde_json::to_string(v).unwrap_or_default()
            ),
            Change::Workspace(w, None) => format!("workspace {w}: removed"),
            Change::Route(r, Some(v)) => format!(
                "route {r}: {}",
                serde_json::to_string(v).unwrap_or_default()
            ),
            Change::Route(r, None) => format!("route {r}: removed"),
        }
    }

    fn apply(self, s: &mut Settings) {
        match self {
            Change::Workspace(w, Some(v)) => {
                s.workspaces.insert(w, v);
            }
            Change::Workspace(w, None) => {
                s.workspaces.remove(&w);
            }
            Change::Route(r, Some(v)) => {
                s.routes.insert(r, v);
            }
            Change::Route(r, None) => {
                s.routes.remove(&r);
            }
        }
    }

    /// The Redis hash field and value of this change.
    fn field(&self) -> (String, Option<String>) {
        match self {
            Change::Workspace(w, v) => (
                format!("w:{w}"),
                v.as_ref().and_then(|v| serde_json::to_string(v).ok()),
            ),
            Change::Route(r, v) => (
                format!("r:{r}"),
                v.as_ref().and_then(|v| serde_json::to_string(v).ok()),
            ),
        }
    }
}

/// Settings from the fields of the Redis hash; fields that do not parse
/// (written by a newer version) are skipped with a warning.
pub(crate) fn from_fields(fields: &std::collections::HashMap<String, String>) -> Settings {
    let mut s = Settings::default();
    for (field, json) in fields {
        if let Some(w) = field.strip_prefix("w:") {
            match serde_json::from_str::<WorkspaceSetting>(json) {
                Ok(v) => {
                    s.workspaces.insert(w.to_string(), v);
                }
                Err(e) => {
                    tracing::warn!(field = %field, error = %e, "unreadable workspace setting in Redis")
                }
            }
        } else if let Some(r) = field.strip_prefix("r:") {
            match serde_json::from_str::<RouteSetting>(json) {
                Ok(v) => {
                    s.routes.insert(r.to_string(), v);
                }
                Err(e) => {
                    tracing::warn!(field = %field, error = %e, "unreadable route setting in Redis")
                }
            }
        }
    }
    s
}

/// Reads a state file; a file that does not parse is moved aside (so a
/// change does not overwrite it) and the settings start empty.
pub(crate) fn load_file(path: &PathBuf) -> Settings {
    match std::fs::read(path) {
        Ok(bytes) => match serde_json::from_slice::<Settings>(&bytes) {
            Ok(s) => s,
            Err(e) => {
                let mut aside = path.clone().into_os_string();
                aside.push(".unreadable");
                let _ = std::fs::rename(path, &aside);
                tracing::error!(path = %path.display(), error = %e, "state file unreadable; moved aside, settings start empty");
                Settings::default()
            }
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Settings::default(),
        Err(e) => {
            tracing::error!(path = %path.display(), error = %e, "cannot read the state file; settings start empty");
            Settings::default()
        }
    }
}

fn write_file(path: &PathBuf, s: &Settings) -> std::io::Result<()> {
    let mut tmp = path.clone().into_os_string();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let text = serde_json::to_vec_pretty(s).map_err(std::io::Error::other)?;
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&text)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)
}

/// Follows the settings in Redis: every heartbeat, one `HGET` of the
/// version, and a re-read when it moved. Ends with the cache layer.
pub(crate) fn follow(snapshot: Weak<ArcSwap<Settings>>, shared: Arc<Shared>) {
    let every = shared.settings().heartbeat;
    let inner = shared.clone();
    shared.spawn(async move {
        let mut seen = None;
        let mut tick = tokio::time::interval(every);
        loop {
            tick.tick().await;
            let Some(snapshot) = snapshot.upgrade() else {
                return;
            };
            let Ok(version) = inner.settings_version().await else {
                continue;
            };
            if seen == Some(version) {
                continue;
            }
            if let Ok(fields) = inner.settings_all().await {
                snapshot.store(Arc::new(from_fields(&fields)));
                seen = Some(version);
            }
        }
    });
}

impl TagCache {
    /// The settings requests read now.
    pub fn settings(&self) -> Arc<Settings> {
        self.settings.load_full()
    }

    /// Makes `change` and keeps it (Redis, the state file, or memory), then
    /// lets requests see it. Changes are serialized.
    pub(crate) async fn change_settings(&self, change: Change) -> Result<(), SettingsWriteError> {
        let _one_at_a_time = self.settings_writer.lock().await;
        match &self.settings_store {
            SettingsStore::Redis(shared) => {
                let (field, json) = change.field();
                shared
                    .settings_write(field, json)
                    .await
                    .map_err(|e| SettingsWriteError::Redis(e.to_string()))?;
                // Read back what every instance will see.
                match shared.settings_all().await {
                    Ok(fields) => self.settings.store(Arc::new(from_fields(&fields))),
                    Err(_) => {
                        let mut next = (*self.settings.load_full()).clone();
                        change.apply(&mut next);
                        self.settings.store(Arc::new(next));
                    }
                }
            }
            SettingsStore::File(path) => {
                let mut next = (*self.settings.load_full()).clone();
                change.apply(&mut next);
                write_file(path, &next).map_err(|source| SettingsWriteError::File {
                    path: path.clone(),
                    source,
                })?;
                self.settings.store(Arc::new(next));
            }
            SettingsStore::Memory => {
                let mut next = (*self.settings.load_full()).clone();
                change.apply(&mut next);
                self.settings.store(Arc::new(next));
            }
        }
        Ok(())
    }

    /// Where settings are kept, for `/settings` answers.
    pub fn settings_kept_in(&self) -> &'static str {
        match self.settings_store {
            SettingsStore::Memory => "memory",
            SettingsStore::File(_) => "file",
            SettingsStore::Redis(_) => "redis",
        }
    }
}
