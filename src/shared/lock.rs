//! Cross-instance coalescing: a short Redis lock per cold key, so that one
//! cold key makes one origin request whichever instances it arrives on.
//!
//! The lock (`{prefix}:{hash}:lock`) lives in the entry's slot, so taking it
//! and checking for the entry is one script. It holds a random token and
//! expires after the longest a fill can take; only the holder's token releases
//! it. A holder whose response was not storable leaves a short give-up marker
//! instead, so that waiters fetch on their own at once rather than queue for
//! the lock one after another. Any Redis trouble makes the caller fall back to
//! pingora's per-instance lock: never to an error.

use std::time::Duration;

use redis::Value;

use super::{int, scripts, Shared, SharedError};

/// How long the give-up marker stays.
const GIVE_UP_MARKER: Duration = Duration::from_secs(2);

/// The answer to a lock attempt.
#[derive(Debug)]
pub enum Acquire {
    /// The entry is already in Redis: its stored value.
    Entry(Vec<u8>),
    /// This instance holds the lock with this token: fetch, store, release.
    Leader(String),
    /// Another instance is fetching: wait for the entry.
    Held,
    /// The holder's response could not be shared: fetch without waiting.
    GaveUp,
}

/// What a waiter finds.
#[derive(Debug)]
pub enum Poll {
    /// The entry: its stored value.
    Entry(Vec<u8>),
    /// No lock and no entry: the holder finished without storing, or its lock expired.
    Free,
    /// Still being fetched.
    Held,
    /// The holder's response could not be shared.
    GaveUp,
}

fn status(parts: &[Value]) -> Option<i64> {
    parts.first().and_then(int)
}

fn value(mut parts: Vec<Value>) -> Option<Vec<u8>> {
    match parts.get_mut(1) {
        Some(Value::BulkString(b)) => Some(std::mem::take(b)),
        _ => None,
    }
}

impl Shared {
    /// Takes the lock of `key` for `ttl`, unless its entry is already there
    /// (not checked when `check_entry` is false: the caller found it unusable).
    ///
    /// # Errors
    /// Redis trouble; the caller then relies on per-instance coalescing.
    pub async fn lock(
        &self,
        key: &[u8; 16],
        ttl: Duration,
        check_entry: bool,
    ) -> Result<Acquire, SharedError> {
        let token = super::token();
        let entry = self.keys().entry(key);
        let lock = self.keys().lock(key);
        let arg = token.clone();
        let reply: Value = self
            .call_local("lock", |mut c| {
                let mut inv = scripts::LOCK.prepare_invoke();
                inv.key(entry);
                inv.key(lock);
                inv.arg(arg);
                inv.arg(ttl.as_millis().max(1) as u64);
                inv.arg(if check_entry { "0" } else { "1" });
                async move { inv.invoke_async(&mut c).await }
            })
            .await?;
        let Value::Array(parts) = reply else {
            return Err(SharedError::Reply("lock"));
        };
        match status(&parts) {
            Some(0) => Ok(Acquire::Leader(token)),
            Some(1) => value(parts)
                .map(Acquire::Entry)
                .ok_or(SharedError::Reply("lock")),
            Some(2) => Ok(Acquire::Held),
            Some(3) => Ok(Acquire::GaveUp),
            _ => Err(SharedError::Reply("lock")),
        }
    }

    /// One poll of a waiter: the entry, or the state of the lock.
    ///
    /// # Errors
    /// Redis trouble; the caller then fetches on its own.
    pub async fn poll(&self, key: &[u8; 16]) -> Result<Poll, SharedError> {
        let entry = self.keys().entry(key);
        let lock = self.keys().lock(key);
        let reply: Value = self
            .call_local("poll", |mut c| {
                let mut inv = scripts::POLL.prepare_invoke();
                inv.key(entry);
                inv.key(lock);
                async move { inv.invoke_async(&mut c).await }
            })
            .await?;
        let Value::Array(parts) = reply else {
            return Err(SharedError::Reply("poll"));
        };
        match status(&parts) {
            Some(0) => Ok(Poll::Free),
            Some(1) => value(parts)
                .map(Poll::Entry)
                .ok_or(SharedError::Reply("poll")),
            Some(2) => Ok(Poll::Held),
            Some(3) => Ok(Poll::GaveUp),
            _ => Err(SharedError::Reply("poll")),
        }
    }

    /// Releases the lock of `key` if `token` still holds it. With `give_up`,
    /// leaves the give-up marker for the waiters.
    ///
    /// # Errors
    /// Redis trouble; the lock then expires on its own.
    pub async fn unlock(
        &self,
        key: &[u8; 16],
        token: &str,
        give_up: bool,
    ) -> Result<bool, SharedError> {
        let lock = self.keys().lock(key);
        let token = token.to_string();
        let reply: i64 = self
            .call_local("unlock", |mut c| {
                let mut inv = scripts::UNLOCK.prepare_invoke();
                inv.key(lock);
                inv.arg(token);
                inv.arg(u8::from(give_up));
                inv.arg(GIVE_UP_MARKER.as_millis() as u64);
                async move { inv.invoke_async(&mut c).await }
            })
            .await?;
        Ok(reply == 1)
    }
}
