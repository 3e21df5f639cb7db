//! Cross-instance coalescing: a short Redis lease per cold key, so that one
//! cold key makes one origin request whichever instances it arrives on.
//!
//! The lock (`{prefix}:{hash}:lock`) lives in the entry's slot, so taking it
//! and checking for the entry is one script. It holds a random token and is
//! a lease of `coalescing.lock_lease` (1 s by default): the holder renews it
//! every third of the lease while its request runs ([`Lease`]), so a lock
//! whose holder died, or one Redis applied after its caller had timed out,
//! expires within about a lease and holds nobody for longer.
//!
//! When its request ends, whatever the outcome, the holder replaces its token
//! by a short result marker for the waiters: `=` and the fill's `born` epoch
//! when its answer was stored, `!` when it was not (not storable, the origin
//! failed, the client left). Waiters see the marker on their next poll and
//! leave at once: on `stored` they serve the entry if it is the holder's
//! (born no earlier) and still clean, else they fetch; on `not stored` they
//! fetch. A lock gone without a marker means its holder is gone: waiters
//! compete again. A newcomer treats a `stored` marker as no lock (it only
//! asks because the entry did not do for it), and a `not stored` marker as a
//! reason to fetch without queueing. Only the holder's token renews or
//! releases the lock. Any Redis trouble makes the caller fall back to
//! pingora's per-instance lock: never to an error, never to a wait.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use redis::Value;

use super::{int, scripts, text, Shared, SharedError};

/// How long a result marker stays: far longer than a waiter's poll interval.
const MARKER: Duration = Duration::from_secs(2);

/// The shortest interval between two renewals, whatever the lease.
const RENEW_MIN: Duration = Duration::from_millis(10);

/// The answer to a lock attempt.
#[derive(Debug)]
pub enum Acquire {
    /// The entry is already in Redis: its stored value.
    Entry(Vec<u8>),
    /// This instance holds the lock with this token: fetch, store, release.
    Leader(String),
    /// Another instance is fetching: wait for its result.
    Held,
    /// The last holder's answer could not be shared: fetch without waiting.
    GaveUp,
}

/// What a waiter finds.
#[derive(Debug)]
pub enum Poll {
    /// Still being fetched.
    Held,
    /// The holder stored its answer; its fill's `born` epoch, and the entry
    /// now in Redis if there is one (which may be older than the fill when
    /// the holder's write did not land).
    Stored {
        /// The holder's `born` epoch.
        born: u64,
        /// The entry's stored value.
        entry: Option<Vec<u8>>,
    },
    /// The holder's answer was not stored: fetch without waiting.
    GaveUp,
    /// No lock and no marker (the holder is gone, or finished long ago):
    /// the entry, if there is one.
    Free(Option<Vec<u8>>),
}

/// How a holder's fill ended, for its waiters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The answer was stored, from a fetch that started at this epoch.
    Stored {
        /// The fill's `born` epoch.
        born: u64,
    },
    /// Nothing was stored: not storable, the origin failed, or the request
    /// ended before its answer was.
    NotStored,
}

impl Outcome {
    /// The marker the waiters read (see the module doc).
    fn marker(self) -> String {
        match self {
            Outcome::Stored { born } => format!("={born}"),
            Outcome::NotStored => "!".to_string(),
        }
    }
}

fn status(parts: &[Value]) -> Option<i64> {
    parts.first().and_then(int)
}

fn bytes(parts: &mut [Value], i: usize) -> Option<Vec<u8>> {
    match parts.get_mut(i) {
        Some(Value::BulkString(b)) => Some(std::mem::take(b)),
        _ => None,
    }
}

/// A held lock: renewed in the background until released. Releasing it
/// leaves the holder's result marker; dropping it unreleased (the request
/// ended on a path that never reported its outcome) leaves `not stored`,
/// so the waiters never wait for a fill that ended.
pub struct Lease {
    shared: Arc<Shared>,
    key: [u8; 16],
    token: Arc<str>,
    renewer: tokio::task::AbortHandle,
    released: AtomicBool,
}

impl fmt::Debug for Lease {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lease")
            .field("released", &self.released.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl Lease {
    /// Stops renewing and replaces the lock, if still ours, by the marker of
    /// `outcome`. Only the first call does anything. Runs in the background:
    /// the request never waits for Redis.
    pub fn release(&self, outcome: Outcome) {
        if self.released.swap(true, Ordering::AcqRel) {
            return;
        }
        self.renewer.abort();
        let shared = self.shared.clone();
        let key = self.key;
        let token = self.token.clone();
        self.shared.spawn(async move {
            let _ = shared.unlock(&key, &token, outcome).await;
        });
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.release(Outcome::NotStored);
    }
}

impl Shared {
    /// Takes the lock of `key` as a lease of `lease`, unless its entry is
    /// already there (not checked when `check_entry` is false: the caller
    /// found it unusable).
    ///
    /// # Errors
    /// Redis trouble; the caller then relies on per-instance coalescing.
    pub async fn lock(
        &self,
        key: &[u8; 16],
        lease: Duration,
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
                inv.arg(millis(lease));
                inv.arg(if check_entry { "0" } else { "1" });
                async move { inv.invoke_async(&mut c).await }
            })
            .await?;
        let Value::Array(mut parts) = reply else {
            return Err(SharedError::Reply("lock"));
        };
        match status(&parts) {
            Some(0) => Ok(Acquire::Leader(token)),
            Some(1) => bytes(&mut parts, 1)
                .map(Acquire::Entry)
                .ok_or(SharedError::Reply("lock")),
            Some(2) => Ok(Acquire::Held),
            Some(3) => Ok(Acquire::GaveUp),
            _ => Err(SharedError::Reply("lock")),
        }
    }

    /// Starts renewing a lock this instance took ([`Acquire::Leader`]) every
    /// third of `lease`, until the returned [`Lease`] is released or dropped.
    pub fn lease(self: &Arc<Self>, key: [u8; 16], token: String, lease: Duration) -> Lease {
        let token: Arc<str> = Arc::from(token);
        let every = (lease / 3).max(RENEW_MIN);
        let shared = self.clone();
        let mine = token.clone();
        let renewer = self
            .spawn(async move {
                loop {
                    tokio::time::sleep(every).await;
                    // A failed renewal is tried again: the lease outlives two of them.
                    if let Ok(false) = shared.renew(&key, &mine, lease).await {
                        // Expired, or taken over: nothing of ours to keep.
                        return;
                    }
                }
            })
            .abort_handle();
        Lease {
            shared: self.clone(),
            key,
            token,
            renewer,
            released: AtomicBool::new(false),
        }
    }

    /// Extends the lock of `key` to `lease` from now if `token` still holds
    /// it. Returns whether it did.
    ///
    /// # Errors
    /// Redis trouble; the lock then expires unless a later renewal lands.
    pub async fn renew(
        &self,
        key: &[u8; 16],
        token: &str,
        lease: Duration,
    ) -> Result<bool, SharedError> {
        let lock = self.keys().lock(key);
        let token = token.to_string();
        let reply: i64 = self
            .call_local("renew", |mut c| {
                let mut inv = scripts::RENEW.prepare_invoke();
                inv.key(lock);
                inv.arg(token);
                inv.arg(millis(lease));
                async move { inv.invoke_async(&mut c).await }
            })
            .await?;
        Ok(reply == 1)
    }

    /// One poll of a waiter: the state of the lock, with the entry where the
    /// waiter may serve it.
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
        let Value::Array(mut parts) = reply else {
            return Err(SharedError::Reply("poll"));
        };
        match status(&parts) {
            Some(0) => Ok(Poll::Free(bytes(&mut parts, 1))),
            Some(2) => Ok(Poll::Held),
            Some(3) => Ok(Poll::GaveUp),
            Some(4) => {
                let born = parts
                    .get(1)
                    .and_then(text)
                    .and_then(|b| b.parse().ok())
                    .ok_or(SharedError::Reply("poll"))?;
                Ok(Poll::Stored {
                    born,
                    entry: bytes(&mut parts, 2),
                })
            }
            _ => Err(SharedError::Reply("poll")),
        }
    }

    /// Replaces the lock of `key` by the marker of `outcome` if `token` still
    /// holds it. Returns whether it did.
    ///
    /// # Errors
    /// Redis trouble; the lock then expires within a lease, and the waiters
    /// compete again.
    pub async fn unlock(
        &self,
        key: &[u8; 16],
        token: &str,
        outcome: Outcome,
    ) -> Result<bool, SharedError> {
        let lock = self.keys().lock(key);
        let token = token.to_string();
        let reply: i64 = self
            .call_local("unlock", |mut c| {
                let mut inv = scripts::UNLOCK.prepare_invoke();
                inv.key(lock);
                inv.arg(token);
                inv.arg(outcome.marker());
                inv.arg(millis(MARKER));
                async move { inv.invoke_async(&mut c).await }
            })
            .await?;
        Ok(reply == 1)
    }
}

/// A duration in whole milliseconds for `PX`, at least 1.
fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_tell_stored_from_not_stored() {
        assert_eq!(Outcome::Stored { born: 42 }.marker(), "=42");
        assert_eq!(Outcome::NotStored.marker(), "!");
    }
}
