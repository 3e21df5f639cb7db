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

use jsonwebtoken::jwk::{Jwk, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};
use parking_lot::{Mutex, RwLock};
use serde_json::Value;

use super::jwt::{family_name, KeyError};

/// One usable key of the set.
pub(super) struct Key {
    kid: Option<String>,
    /// The key's own `alg`, when the JWK states one.
    alg: Option<Algorithm>,
    key: DecodingKey,
}

/// Parses a JWKS document, keeping the signing keys of `alg`'s family. Keys
/// of other types, for encryption, or that do not parse are skipped.
///
/// # Errors
/// When the document is not a key set, or holds no usable key.
pub(super) fn parse(text: &[u8], alg: Algorithm) -> Result<Vec<Key>, KeyError> {
    let doc: Value = serde_json::from_slice(text).map_err(|e| KeyError::Jwks(e.to_string()))?;
    let items = doc
        .get("keys")
        .and_then(Value::as_array)
        .ok_or_else(|| KeyError::Jwks("no \"keys\" array".into()))?;
    let mut keys = Vec::new();
    for item in items {
        let Ok(jwk) = serde_json::from_value::<Jwk>(item.clone()) else {
            continue;
        };
        if matches!(jwk.common.public_key_use, Some(ref u) if *u != PublicKeyUse::Signature) {
            continue;
        }
        let key_alg = match jwk.common.key_algorithm {
            Some(a) => match a.to_string().parse::<Algorithm>() {
                Ok(a) => Some(a),
                Err(_) => continue, // an encryption algorithm
            },
            None => None,
        };
        let Ok(key) = DecodingKey::from_jwk(&jwk) else {
            continue;
        };
        if key.family() != alg.family() || key_alg.is_some_and(|a| a.family() != alg.family()) {
            continue;
        }
        keys.push(Key {
            kid: jwk.common.key_id,
            alg: key_alg,
            key,
        });
    }
    if keys.is_empty() {
        return Err(KeyError::NoUsableKey(family_name(alg)));
    }
    Ok(keys)
}

/// The key for a token's `kid` and `alg`: the key with that `kid`, or, for a
/// token without `kid`, the only key that fits its algorithm.
pub(super) fn select<'k>(
    keys: &'k [Key],
    kid: Option<&str>,
    alg: Algorithm,
) -> Option<&'k DecodingKey> {
    let fits = |k: &&Key| k.alg.is_none_or(|a| a == alg);
    match kid {
        Some(kid) => keys
            .iter()
            .filter(fits)
            .find(|k| k.kid.as_deref() == Some(kid))
            .map(|k| &k.key),
        None => {
            let mut candidates = keys.iter().filter(fits);
            let only = candidates.next()?;
            candidates.next().is_none().then_some(&only.key)
        }
    }
}

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
