//! Signed webhooks, in two schemes sharing one secret and one replay window.
//!
//! tagcache's own: `X-Tagcache-Signature: t=<unix>,v1=<hex>`, where `v1` is
//! HMAC-SHA256 over `"<t>.<body>"` with the shared secret's bytes.
//!
//! [Standard Webhooks](https://www.standardwebhooks.com/), so that backends
//! can use a stock signer: `webhook-id`, `webhook-timestamp` (unix seconds)
//! and `webhook-signature: v1,<base64> [v1,<base64> ...]`, each a base64
//! HMAC-SHA256 over `"<id>.<timestamp>.<body>"`; any one of the listed `v1`
//! signatures may match. The key is the secret's bytes, or for a secret
//! written `whsec_<base64>` (the specification's format) the base64 decoding
//! of what follows the prefix.
//!
//! A request carrying `X-Tagcache-Signature` is checked in tagcache's scheme,
//! any other in the Standard Webhooks scheme. Timestamps older or newer than
//! the replay window are refused, and what makes a request unique (the MAC in
//! tagcache's scheme, the `webhook-id` in Standard Webhooks) is remembered
//! for the window once its signature has verified, so a captured request
//! cannot be replayed. MACs are compared in constant time (the `hmac`
//! crate's `verify_slice`).

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use hmac::{Hmac, Mac};
use http::HeaderMap;
use parking_lot::Mutex;
use sha2::Sha256;

use crate::config::Secret;

/// How far a signature's timestamp may be from now.
pub const REPLAY_WINDOW: Duration = Duration::from_secs(300);

/// Most signatures remembered; beyond this new signed requests are refused
/// until old ones age out (bounded memory under a flood).
const MAX_REMEMBERED: usize = 100_000;

/// tagcache's own signature header.
pub const TAGCACHE_HEADER: &str = "x-tagcache-signature";
/// The Standard Webhooks message id header.
pub const WEBHOOK_ID: &str = "webhook-id";
/// The Standard Webhooks timestamp header.
pub const WEBHOOK_TIMESTAMP: &str = "webhook-timestamp";
/// The Standard Webhooks signature header.
pub const WEBHOOK_SIGNATURE: &str = "webhook-signature";

/// The prefix of a Standard Webhooks secret whose rest is base64.
const WHSEC_PREFIX: &str = "whsec_";

/// Longest `webhook-id` accepted (ids are remembered for the window).
const MAX_ID_LEN: usize = 256;

/// Why a signature was refused, with the header it is about. The message is
/// safe to return to the caller.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// Neither `X-Tagcache-Signature` nor the Standard Webhooks headers.
    #[error(
        "missing X-Tagcache-Signature header (or the Standard Webhooks headers \
         webhook-id, webhook-timestamp, webhook-signature)"
    )]
    Missing,
    /// One of the Standard Webhooks headers is there, but not this one.
    #[error("missing {0} header")]
    MissingHeader(&'static str),
    /// The header is not in its scheme's format (`t=<unix>,v1=<hex>`;
    /// `v1,<base64>` items; a unix timestamp; a short id).
    #[error("malformed {0} header")]
    Malformed(&'static str),
    /// The timestamp is outside the replay window.
    #[error("{0}: timestamp outside the 5-minute window")]
    Expired(&'static str),
    /// The MAC does not match.
    #[error("{0}: signature does not match")]
    Mismatch(&'static str),
    /// This exact signature, or this `webhook-id`, was already used.
    #[error("{0} already used (replay)")]
    Replayed(&'static str),
}

impl SignatureError {
    /// The header the refusal is about, lower case as sent on the wire.
    pub fn header(&self) -> &'static str {
        match self {
            SignatureError::Missing => TAGCACHE_HEADER,
            SignatureError::MissingHeader(h)
            | SignatureError::Malformed(h)
            | SignatureError::Expired(h)
            | SignatureError::Mismatch(h)
            | SignatureError::Replayed(h) => h,
        }
    }
}

/// What an accepted request is remembered by for the replay window.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Seen {
    /// The MAC of a tagcache-scheme signature.
    Mac(Vec<u8>),
    /// A Standard Webhooks `webhook-id`.
    Id(String),
}

/// Verifies signatures and remembers the ones used.
#[derive(Debug)]
pub struct Verifier {
    secret: Secret,
    /// The Standard Webhooks key: `None` for a `whsec_` secret that is not
    /// base64, which no Standard Webhooks signature can then match.
    standard_key: Option<Vec<u8>>,
    seen: Mutex<HashMap<Seen, u64>>,
}

impl Verifier {
    /// A verifier for `secret`.
    pub fn new(secret: Secret) -> Self {
        let standard_key = standard_key(secret.expose());
        if standard_key.is_none() {
            tracing::warn!(
                "admin.webhook_secret starts with \"whsec_\" but the rest is not base64: \
                 Standard Webhooks signatures will not verify"
            );
        }
        Verifier {
            secret,
            standard_key,
            seen: Mutex::new(HashMap::new()),
        }
    }

    /// Checks a request's signature headers against `body` at the current
    /// time: tagcache's scheme when `X-Tagcache-Signature` is there, else
    /// Standard Webhooks.
    ///
    /// # Errors
    /// Why the signature is refused.
    pub fn verify_headers(&self, headers: &HeaderMap, body: &[u8]) -> Result<(), SignatureError> {
        self.verify_headers_at(headers, body, unix_now())
    }

    fn verify_headers_at(
        &self,
        headers: &HeaderMap,
        body: &[u8],
        now: u64,
    ) -> Result<(), SignatureError> {
        let get = |name: &'static str| -> Result<Option<&str>, SignatureError> {
            headers
                .get(name)
                .map(|v| v.to_str().map_err(|_| SignatureError::Malformed(name)))
                .transpose()
        };
        if let Some(header) = get(TAGCACHE_HEADER)? {
            return self.verify_at(Some(header), body, now);
        }
        let (id, timestamp, signature) = (
            get(WEBHOOK_ID)?,
            get(WEBHOOK_TIMESTAMP)?,
            get(WEBHOOK_SIGNATURE)?,
        );
        if id.is_none() && timestamp.is_none() && signature.is_none() {
            return Err(SignatureError::Missing);
        }
        let id = id.ok_or(SignatureError::MissingHeader(WEBHOOK_ID))?;
        let timestamp = timestamp.ok_or(SignatureError::MissingHeader(WEBHOOK_TIMESTAMP))?;
        let signature = signature.ok_or(SignatureError::MissingHeader(WEBHOOK_SIGNATURE))?;
        self.verify_standard_at(id, timestamp, signature, body, now)
    }

    /// Checks an `X-Tagcache-Signature` value against `body` at the current time.
    ///
    /// # Errors
    /// Why the signature is refused.
    pub fn verify(&self, header: Option<&str>, body: &[u8]) -> Result<(), SignatureError> {
        self.verify_at(header, body, unix_now())
    }

    fn verify_at(&self, header: Option<&str>, body: &[u8], now: u64) -> Result<(), SignatureError> {
        const H: &str = TAGCACHE_HEADER;
        let header = header.ok_or(SignatureError::Missing)?;
        let (mut t, mut v1) = (None, None);
        for part in header.split(',').map(str::trim) {
            match part.split_once('=') {
                Some(("t", v)) => t = v.parse::<u64>().ok(),
                Some(("v1", v)) => v1 = hex::decode(v).ok(),
                _ => {}
            }
        }
        let (t, v1) = t.zip(v1).ok_or(SignatureError::Malformed(H))?;
        if now.abs_diff(t) > REPLAY_WINDOW.as_secs() {
            return Err(SignatureError::Expired(H));
        }
        let mut mac = Hmac::<Sha256>::new_from_slice(self.secret.expose().as_bytes())
            .map_err(|_| SignatureError::Mismatch(H))?;
        mac.update(t.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        mac.verify_slice(&v1)
            .map_err(|_| SignatureError::Mismatch(H))?;
        self.remember(Seen::Mac(v1), t, now, H)
    }

    /// Checks Standard Webhooks headers against `body` at time `now`.
    fn verify_standard_at(
        &self,
        id: &str,
        timestamp: &str,
        signature: &str,
        body: &[u8],
        now: u64,
    ) -> Result<(), SignatureError> {
        if id.is_empty() || id.len() > MAX_ID_LEN {
            return Err(SignatureError::Malformed(WEBHOOK_ID));
        }
        let t: u64 = timestamp
            .trim()
            .parse()
            .map_err(|_| SignatureError::Malformed(WEBHOOK_TIMESTAMP))?;
        if now.abs_diff(t) > REPLAY_WINDOW.as_secs() {
            return Err(SignatureError::Expired(WEBHOOK_TIMESTAMP));
        }
        // Every `v1,<base64>` item; other versions are skipped, as the
        // specification allows for signatures of schemes not known here.
        let candidates: Vec<Vec<u8>> = signature
            .split_ascii_whitespace()
            .filter_map(|item| item.strip_prefix("v1,"))
            .filter_map(|b64| base64::engine::general_purpose::STANDARD.decode(b64).ok())
            .collect();
        if candidates.is_empty() {
            return Err(SignatureError::Malformed(WEBHOOK_SIGNATURE));
        }
        let key = self
            .standard_key
            .as_deref()
            .ok_or(SignatureError::Mismatch(WEBHOOK_SIGNATURE))?;
        let mut mac = Hmac::<Sha256>::new_from_slice(key)
            .map_err(|_| SignatureError::Mismatch(WEBHOOK_SIGNATURE))?;
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.as_bytes());
        mac.update(b".");
        mac.update(body);
        // Each candidate is checked in constant time; which one matched (or
        // how many there are) is not secret.
        if !candidates
            .iter()
            .any(|c| mac.clone().verify_slice(c).is_ok())
        {
            return Err(SignatureError::Mismatch(WEBHOOK_SIGNATURE));
        }
        self.remember(Seen::Id(id.to_string()), t, now, WEBHOOK_ID)
    }

    /// Records `what` (signed at `t`) for the replay window, or refuses it
    /// when it was already used.
    fn remember(
        &self,
        what: Seen,
        t: u64,
        now: u64,
        header: &'static str,
    ) -> Result<(), SignatureError> {
        let mut seen = self.seen.lock();
        seen.retain(|_, at| now.abs_diff(*at) <= REPLAY_WINDOW.as_secs());
        if seen.contains_key(&what) || seen.len() >= MAX_REMEMBERED {
            return Err(SignatureError::Replayed(header));
        }
        seen.insert(what, t);
        Ok(())
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The Standard Webhooks HMAC key of `secret`: the base64 decoding of what
/// follows `whsec_`, or the secret's own bytes. `None` when a `whsec_`
/// secret is not base64.
fn standard_key(secret: &str) -> Option<Vec<u8>> {
    match secret.strip_prefix(WHSEC_PREFIX) {
        Some(b64) => base64::engine::general_purpose::STANDARD.decode(b64).ok(),
        None => Some(secret.as_bytes().to_vec()),
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

/// The Standard Webhooks `webhook-signature` value (`v1,<base64>`) of `body`
/// sent with `id` at time `t` (for clients and tests). `None` when `secret`
/// starts with `whsec_` and the rest is not base64.
pub fn sign_standard(secret: &str, id: &str, t: u64, body: &[u8]) -> Option<String> {
    let key = standard_key(secret)?;
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).expect("hmac takes any key");
    mac.update(format!("{id}.{t}.").as_bytes());
    mac.update(body);
    Some(format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: &str = TAGCACHE_HEADER;

    #[test]
    fn accepts_once_and_refuses_the_rest() {
        let v = Verifier::new(Secret::new("s3cret"));
        let now = 1_800_000_000;
        let sig = sign("s3cret", now, b"{}");
        assert_eq!(v.verify_at(Some(&sig), b"{}", now), Ok(()));
        assert_eq!(
            v.verify_at(Some(&sig), b"{}", now),
            Err(SignatureError::Replayed(H))
        );
        let sig2 = sign("s3cret", now, b"{}x");
        assert_eq!(
            v.verify_at(Some(&sig2), b"{}", now),
            Err(SignatureError::Mismatch(H))
        );
        let old = sign("s3cret", now - 301, b"{}");
        assert_eq!(
            v.verify_at(Some(&old), b"{}", now),
            Err(SignatureError::Expired(H))
        );
        let wrong = sign("other", now, b"{}");
        assert_eq!(
            v.verify_at(Some(&wrong), b"{}", now),
            Err(SignatureError::Mismatch(H))
        );
        assert_eq!(v.verify_at(None, b"{}", now), Err(SignatureError::Missing));
        assert_eq!(
            v.verify_at(Some("t=1"), b"{}", now),
            Err(SignatureError::Malformed(H))
        );
        assert_eq!(
            v.verify_at(Some("v1=zz,t=x"), b"{}", now),
            Err(SignatureError::Malformed(H))
        );
    }

    /// The example of the Standard Webhooks specification.
    const SPEC_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const SPEC_ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const SPEC_T: u64 = 1_614_265_330;
    const SPEC_BODY: &[u8] = br#"{"test": 2432232314}"#;
    const SPEC_SIGNATURE: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    fn headers(id: &str, t: &str, signature: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (name, value) in [
            (WEBHOOK_ID, id),
            (WEBHOOK_TIMESTAMP, t),
            (WEBHOOK_SIGNATURE, signature),
        ] {
            if !value.is_empty() {
                h.insert(name, value.parse().unwrap());
            }
        }
        h
    }

    #[test]
    fn standard_webhooks_example_vector() {
        assert_eq!(
            sign_standard(SPEC_SECRET, SPEC_ID, SPEC_T, SPEC_BODY).as_deref(),
            Some(SPEC_SIGNATURE)
        );
        let v = Verifier::new(Secret::new(SPEC_SECRET));
        let h = headers(SPEC_ID, &SPEC_T.to_string(), SPEC_SIGNATURE);
        assert_eq!(v.verify_headers_at(&h, SPEC_BODY, SPEC_T + 10), Ok(()));
        assert_eq!(
            v.verify_headers_at(&h, SPEC_BODY, SPEC_T + 10),
            Err(SignatureError::Replayed(WEBHOOK_ID))
        );
    }

    #[test]
    fn standard_webhooks_refusals_name_their_header() {
        let secret = "plain-secret";
        let v = Verifier::new(Secret::new(secret));
        let now = 1_800_000_000;
        let body = br#"{"event":"contact:moved"}"#;
        let good = sign_standard(secret, "msg_1", now, body).unwrap();
        let other = sign_standard("other", "msg_1", now, body).unwrap();
        let check = |h: HeaderMap, expected: Result<(), SignatureError>| {
            assert_eq!(v.verify_headers_at(&h, body, now), expected, "{h:?}");
        };
        check(HeaderMap::new(), Err(SignatureError::Missing));
        check(
            headers("msg_1", "", &good),
            Err(SignatureError::MissingHeader(WEBHOOK_TIMESTAMP)),
        );
        check(
            headers("", &now.to_string(), &good),
            Err(SignatureError::MissingHeader(WEBHOOK_ID)),
        );
        check(
            headers("msg_1", &now.to_string(), ""),
            Err(SignatureError::MissingHeader(WEBHOOK_SIGNATURE)),
        );
        check(
            headers("msg_1", "soon", &good),
            Err(SignatureError::Malformed(WEBHOOK_TIMESTAMP)),
        );
        check(
            headers("msg_1", &now.to_string(), "v2,abc"),
            Err(SignatureError::Malformed(WEBHOOK_SIGNATURE)),
        );
        check(
            headers("msg_1", &now.to_string(), &other),
            Err(SignatureError::Mismatch(WEBHOOK_SIGNATURE)),
        );
        // Signed for another id, or another time: no.
        check(
            headers("msg_2", &now.to_string(), &good),
            Err(SignatureError::Mismatch(WEBHOOK_SIGNATURE)),
        );
        let old = sign_standard(secret, "msg_1", now - 301, body).unwrap();
        check(
            headers("msg_1", &(now - 301).to_string(), &old),
            Err(SignatureError::Expired(WEBHOOK_TIMESTAMP)),
        );
        // Refusals remember nothing: the good one still passes, once, even
        // listed after a signature of another scheme version and a wrong one.
        let list = format!("v1a,xyz {other} {good}");
        check(headers("msg_1", &now.to_string(), &list), Ok(()));
        check(
            headers("msg_1", &now.to_string(), &good),
            Err(SignatureError::Replayed(WEBHOOK_ID)),
        );
        // A fresh id with its own signature passes.
        let next = sign_standard(secret, "msg_2", now, body).unwrap();
        check(headers("msg_2", &now.to_string(), &next), Ok(()));
    }

    #[test]
    fn tagcache_header_wins_over_standard_headers() {
        let v = Verifier::new(Secret::new("s3cret"));
        let now = 1_800_000_000;
        let mut h = headers("msg_1", &now.to_string(), "v1,AAAA");
        h.insert(TAGCACHE_HEADER, sign("s3cret", now, b"{}").parse().unwrap());
        assert_eq!(v.verify_headers_at(&h, b"{}", now), Ok(()));
    }

    #[test]
    fn a_whsec_secret_that_is_not_base64_verifies_nothing() {
        assert_eq!(standard_key("whsec_***"), None);
        assert_eq!(standard_key("s3cret").as_deref(), Some(&b"s3cret"[..]));
        let v = Verifier::new(Secret::new("whsec_***"));
        let h = headers("msg_1", "1800000000", "v1,AAAA");
        assert_eq!(
            v.verify_headers_at(&h, b"{}", 1_800_000_000),
            Err(SignatureError::Mismatch(WEBHOOK_SIGNATURE))
        );
    }
}
