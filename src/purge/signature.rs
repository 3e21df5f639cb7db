//! Signed webhooks: `X-Tagcache-Signature: t=<unix>,v1=<hex>` where `v1` is
//! HMAC-SHA256 over `"<t>.<body>"` with the shared secret.
//!
//! Timestamps older or newer than the replay window are refused, and each
//! accepted signature is remembered for the window so a captured request
//! cannot be replayed. Comparison is constant-time (the `hmac` crate's
//! `verify_slice`).

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hmac::{Hmac, Mac};
use parking_lot::Mutex;
use sha2::Sha256;

use crate::config::Secret;

/// How far a signature's timestamp may be from now.
pub const REPLAY_WINDOW: Duration = Duration::from_secs(300);

/// Most signatures remembered; beyond this new signed requests are refused
/// until old ones age out (bounded memory under a flood).
const MAX_REMEMBERED: usize = 100_000;

/// Why a signature was refused. The message is safe to return to the caller.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// No `X-Tagcache-Signature` header.
    #[error("missing X-Tagcache-Signature header")]
    Missing,
    /// The header is not `t=<unix>,v1=<hex>`.
    #[error("malformed X-Tagcache-Signature header")]
    Malformed,
    /// The timestamp is outside the replay window.
    #[error("signature timestamp outside the 5-minute window")]
    Expired,
    /// The MAC does not match.
    #[error("signature does not match")]
    Mismatch,
    /// This exact signature was already used.
    #[error("signature already used (replay)")]
    Replayed,
}

/// Verifies signatures and remembers the ones used.
#[derive(Debug)]
pub struct Verifier {
    secret: Secret,
    seen: Mutex<HashMap<Vec<u8>, u64>>,
}

impl Verifier {
    /// A verifier for `secret`.
    pub fn new(secret: Secret) -> Self {
        Verifier {
            secret,
            seen: Mutex::new(HashMap::new()),
        }
    }

    /// Checks `header` against `body` at the current time.
    ///
    /// # Errors
    /// Why the signature is refused.
    pub fn verify(&self, header: Option<&str>, body: &[u8]) -> Result<(), SignatureError> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        self.verify_at(header, body, now)
    }

    fn verify_at(&self, header: Option<&str>, body: &[u8], now: u64) -> Result<(), SignatureError> {
        let header = header.ok_or(SignatureError::Missing)?;
        let (mut t, mut v1) = (None, None);
        for part in header.split(',').map(str::trim) {
            match part.split_once('=') {
                Some(("t", v)) => t = v.parse::<u64>().ok(),
                Some(("v1", v)) => v1 = hex::decode(v).ok(),
                _ => {}
            }
        }
        let (t, v1) = t.zip(v1).ok_or(SignatureError::Malformed)?;
        if now.abs_diff(t) > REPLAY_WINDOW.as_secs() {
            return Err(SignatureError::Expired);
        }
        let mut mac = Hmac::<Sha256>::new_from_slice(self.secret.expose().as_bytes())
            .map_err(|_| SignatureError::Mismatch)?;
        mac.update(t.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        mac.verify_slice(&v1)
            .map_err(|_| SignatureError::Mismatch)?;
        let mut seen = self.seen.lock();
        seen.retain(|_, at| now.abs_diff(*at) <= REPLAY_WINDOW.as_secs());
        if seen.contains_key(&v1) || seen.len() >= MAX_REMEMBERED {
            return Err(SignatureError::Replayed);
        }
        seen.insert(v1, t);
        Ok(())
    }
}

/// Signs `body` at time `t` (for clients and tests).
pub fn sign(secret: &str, t: u64, body: &[u8]) -> String {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("hmac takes any key");
    mac.update(t.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("t={t},v1={}", hex::encode(mac.finalize().into_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_once_and_refuses_the_rest() {
        let v = Verifier::new(Secret::new("s3cret"));
        let now = 1_800_000_000;
        let sig = sign("s3cret", now, b"{}");
        assert_eq!(v.verify_at(Some(&sig), b"{}", now), Ok(()));
        assert_eq!(
            v.verify_at(Some(&sig), b"{}", now),
            Err(SignatureError::Replayed)
        );
        let sig2 = sign("s3cret", now, b"{}x");
        assert_eq!(
            v.verify_at(Some(&sig2), b"{}", now),
            Err(SignatureError::Mismatch)
        );
        let old = sign("s3cret", now - 301, b"{}");
        assert_eq!(
            v.verify_at(Some(&old), b"{}", now),
            Err(SignatureError::Expired)
        );
        let wrong = sign("other", now, b"{}");
        assert_eq!(
            v.verify_at(Some(&wrong), b"{}", now),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(v.verify_at(None, b"{}", now), Err(SignatureError::Missing));
        assert_eq!(
            v.verify_at(Some("t=1"), b"{}", now),
            Err(SignatureError::Malformed)
        );
        assert_eq!(
            v.verify_at(Some("v1=zz,t=x"), b"{}", now),
            Err(SignatureError::Malformed)
        );
    }
}
