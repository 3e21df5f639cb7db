//! A JWKS file's keys, reloaded when the file changes.
//!
//! The file is read again at most once per `reload_interval`, on the request
//! path by whichever request first finds the interval over (the others keep
//! using the current keys meanwhile); a JWKS file is a few kilobytes, so the
//! read costs microseconds. When the new contents do not parse or hold no
//! usable key, the old keys stay in use and a warning is logged, so a bad
//! deploy of the file cannot lock every user out at once.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use jsonwebtoken::Algorithm;
use parking_lot::{Mutex, RwLock};

use crate::jwt_keys::{parse, Key, KeyError};

struct State {
    keys: Arc<[Key]>,
    /// The file contents the keys were parsed from.
    source: Vec<u8>,
    checked: Instant,
}

/// A JWKS file and its current keys.
pub(super) struct Jwks {
    path: PathBuf,
    interval: Duration,
    alg: Algorithm,
    state: RwLock<State>,
    /// Held by the one request re-reading the file.
    reloading: Mutex<()>,
    /// Bumped each time new keys are installed, so verifications remembered
    /// under the old keys are not trusted any more.
    generation: AtomicU64,
}

impl Jwks {
    /// The set parsed from `initial` (the file as read when the config was loaded).
    pub(super) fn new(
        path: PathBuf,
        interval: Duration,
        initial: &[u8],
        alg: Algorithm,
    ) -> Result<Self, KeyError> {
        let keys = parse(initial, alg)?;
        Ok(Jwks {
            path,
            interval,
            alg,
            state: RwLock::new(State {
                keys: keys.into(),
                source: initial.to_vec(),
                checked: Instant::now(),
            }),
            reloading: Mutex::new(()),
            generation: AtomicU64::new(0),
        })
    }

    /// How many times new keys have been installed, after re-reading the
    /// file if the interval is over (so remembered verifications cannot keep
    /// the file from being checked).
    pub(super) fn generation(&self) -> u64 {
        drop(self.keys());
        self.generation.load(Ordering::Acquire)
    }

    /// The current keys, re-reading the file first if the interval is over.
    pub(super) fn keys(&self) -> Arc<[Key]> {
        {
            let state = self.state.read();
            if state.checked.elapsed() < self.interval {
                return state.keys.clone();
            }
        }
        if let Some(_guard) = self.reloading.try_lock() {
            self.reload();
        }
        self.state.read().keys.clone()
    }

    fn reload(&self) {
        let text = match std::fs::read(&self.path) {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!(path = %self.path.display(), error = %e, "cannot read the JWKS file; keeping the current keys");
                self.state.write().checked = Instant::now();
                return;
            }
        };
        if text == self.state.read().source {
            self.state.write().checked = Instant::now();
            return;
        }
        match parse(&text, self.alg) {
            Ok(keys) => {
                tracing::info!(path = %self.path.display(), keys = keys.len(), "reloaded the JWKS file");
                *self.state.write() = State {
                    keys: keys.into(),
                    source: text,
                    checked: Instant::now(),
                };
                self.generation.fetch_add(1, Ordering::AcqRel);
            }
            Err(e) => {
                tracing::warn!(path = %self.path.display(), error = %e, "the JWKS file is not usable; keeping the current keys");
                let mut state = self.state.write();
                state.source = text;
                state.checked = Instant::now();
            }
        }
    }
}
