//! Run-time settings in Redis, shared by every instance: one hash,
//! `{prefix}:settings`, with a field per workspace (`w:{id}`) and per route
//! (`r:{name}`) holding its JSON, and a `version` that every write bumps in
//! the same transaction. Instances poll the version and re-read the hash
//! when it moved. Like the epoch, this key has no TTL: settings persist
//! until someone changes them.

use std::collections::HashMap;

use super::{Shared, SharedError};

impl Shared {
    /// The settings hash's key.
    fn settings_key(&self) -> String {
        format!("{{{}}}:settings", self.keys().prefix())
    }

    /// The settings version (0 when none were ever written).
    ///
    /// # Errors
    /// Redis trouble.
    pub async fn settings_version(&self) -> Result<u64, SharedError> {
        let key = self.settings_key();
        let v: Option<u64> = self
            .call("settings", |mut c| async move {
                redis::cmd("HGET")
                    .arg(key)
                    .arg("version")
                    .query_async(&mut c)
                    .await
            })
            .await?;
        Ok(v.unwrap_or(0))
    }

    /// Every field of the settings hash (`version` included).
    ///
    /// # Errors
    /// Redis trouble.
    pub async fn settings_all(&self) -> Result<HashMap<String, String>, SharedError> {
        let key = self.settings_key();
        self.call("settings", |mut c| async move {
            redis::cmd("HGETALL").arg(key).query_async(&mut c).await
        })
        .await
    }

    /// [`Self::settings_all`] from outside any runtime, waiting at most the
    /// Redis timeout twice over: at start-up, so that the first requests
    /// already see the settings.
    pub fn settings_all_blocking(self: &std::sync::Arc<Self>) -> Option<HashMap<String, String>> {
        let (tx, rx) = std::sync::mpsc::channel();
        let this = self.clone();
        self.spawn(async move {
            let _ = tx.send(this.settings_all().await);
        });
        rx.recv_timeout(self.settings().timeout * 2 + std::time::Duration::from_millis(100))
            .ok()
            .and_then(Result::ok)
    }

    /// Sets `field` to `json` (or deletes it, with `None`) and bumps the
    /// version, in one transaction.
    ///
    /// # Errors
    /// Redis trouble: nothing was written.
    pub async fn settings_write(
        &self,
        field: String,
        json: Option<String>,
    ) -> Result<(), SharedError> {
        let key = self.settings_key();
        self.call("settings", |mut c| async move {
            let mut pipe = redis::pipe();
            pipe.atomic();
            match json {
                Some(json) => pipe.cmd("HSET").arg(&key).arg(&field).arg(json).ignore(),
                None => pipe.cmd("HDEL").arg(&key).arg(&field).ignore(),
            };
            pipe.cmd("HINCRBY").arg(&key).arg("version").arg(1).ignore();
            pipe.query_async::<()>(&mut c).await
        })
        .await
    }
}
