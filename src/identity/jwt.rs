//! JWT verification with `jsonwebtoken`: keys, validation rules, claims.
//!
//! Algorithm confusion is closed at three places: the config only accepts
//! algorithms of one family and a key of that family (an HMAC secret for
//! `HS*`, a public key or JWKS for the others); `Validation::algorithms` lists
//! only the configured algorithms, so a token whose header says `HS256` is
//! refused before any key is touched when `RS256` is configured; and
//! `jsonwebtoken` itself refuses a key whose family does not match the
//! token's algorithm. `alg: none` is not an algorithm `jsonwebtoken` knows, so
//! such a token fails to parse.
//!
//! Verifying with a public key costs a few hundred microseconds (RSA and ECDSA
//! in pure Rust), far more than a cache hit, and clients send the same token
//! on every poll. So a successful public-key verification is remembered,
//! keyed by the SHA-256 of the token, until the token's `exp` (plus leeway)
//! or until the JWKS keys change; a token differing in any byte is verified
//! in full. HMAC verification costs about as much as that hash, so HS*
//! tokens are always verified.

use std::collections::HashMap;
use std::sync::Arc;

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{DecodingKey, Validation};
use parking_lot::RwLock;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use super::jwks::Jwks;
use super::{valid_id, Claims, IdentityError, MAX_WORKSPACES};
use crate::config::{Jwt, JwtKey};
use crate::jwt_keys::pem_key;
pub use crate::jwt_keys::KeyError;

/// Most verifications remembered; past it, expired ones are dropped, then all.
const REMEMBERED: usize = 16 * 1024;

/// A verification remembered (public-key algorithms only).
struct Remembered {
    claims: Arc<Claims>,
    /// The token's `exp`.
    exp: u64,
    /// The JWKS generation it was verified under (0 for a PEM key).
    generation: u64,
}

enum Keys {
    One(DecodingKey),
    Jwks(Jwks),
}

/// Verifies tokens against the configured key and rules, and reads their claims.
pub struct JwtVerifier {
    /// Successful public-key verifications, by SHA-256 of the token; `None` for HMAC.
    remembered: Option<RwLock<HashMap<[u8; 32], Remembered>>>,
    validation: Validation,
    keys: Keys,
    workspace_claim: String,
    user_claim: Option<String>,
}

impl std::fmt::Debug for JwtVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtVerifier")
            .field("algorithms", &self.validation.algorithms)
            .finish_non_exhaustive()
    }
}

impl JwtVerifier {
    /// A verifier for a validated `tenant.jwt`.
    ///
    /// # Errors
    /// When the key cannot be used.
    pub fn new(cfg: &Jwt) -> Result<Self, KeyError> {
        let alg = *cfg
            .algorithms
            .first()
            .ok_or(KeyError::NoUsableKey("signing"))?;
        let keys = match &cfg.key {
            JwtKey::Secret(s) => Keys::One(DecodingKey::from_secret(s.expose().as_bytes())),
            JwtKey::PublicKey { pem, .. } => Keys::One(pem_key(alg, pem)?),
            JwtKey::Jwks {
                path,
                reload_interval,
                initial,
            } => Keys::Jwks(Jwks::new(path.clone(), *reload_interval, initial, alg)?),
        };
        let mut validation = Validation::new(alg);
        validation.algorithms = cfg.algorithms.clone();
        validation.leeway = cfg.leeway.as_secs();
        validation.validate_exp = true;
        validation.validate_nbf = true;
        let mut required = vec!["exp"];
        if !cfg.issuer.is_empty() {
            validation.set_issuer(&cfg.issuer);
            required.push("iss");
        }
        if cfg.audience.is_empty() {
            // jsonwebtoken refuses any token with `aud` when no audience is
            // configured; without one, the audience is simply not checked.
            validation.validate_aud = false;
        } else {
            validation.set_audience(&cfg.audience);
            required.push("aud");
        }
        validation.set_required_spec_claims(&required);
        let remembered = (alg.family() != jsonwebtoken::AlgorithmFamily::Hmac)
            .then(|| RwLock::new(HashMap::new()));
        Ok(JwtVerifier {
            remembered,
            validation,
            keys,
            workspace_claim: cfg.workspace_claim.clone(),
            user_claim: cfg.user_claim.clone(),
        })
    }

    fn generation(&self) -> u64 {
        match &self.keys {
            Keys::Jwks(set) => set.generation(),
            Keys::One(_) => 0,
        }
    }

    /// A remembered verification of the token with this digest, still valid.
    fn recall(&self, digest: &[u8; 32]) -> Option<Claims> {
        let map = self.remembered.as_ref()?.read();
        let r = map.get(digest)?;
        let now = jsonwebtoken::get_current_timestamp();
        // The same rule as jsonwebtoken's: expired once exp < now - leeway.
        let fresh = r.exp.saturating_add(self.validation.leeway) >= now;
        (fresh && r.generation == self.generation()).then(|| Claims::clone(&r.claims))
    }

    fn remember(&self, digest: [u8; 32], claims: &Claims, exp: u64, generation: u64) {
        let Some(remembered) = &self.remembered else {
            return;
        };
        let mut map = remembered.write();
        if map.len() >= REMEMBERED {
            let now = jsonwebtoken::get_current_timestamp();
            let leeway = self.validation.leeway;
            map.retain(|_, r| r.exp.saturating_add(leeway) >= now);
            if map.len() >= REMEMBERED {
                map.clear();
            }
        }
        map.insert(
            digest,
            Remembered {
                claims: Arc::new(claims.clone()),
                exp,
                generation,
            },
        );
    }

    /// Verifies `token` and returns its claims.
    ///
    /// # Errors
    /// Why the token is not valid.
    pub fn verify(&self, token: &str) -> Result<Claims, IdentityError> {
        let digest: Option<[u8; 32]> = self
            .remembered
            .as_ref()
            .map(|_| Sha256::digest(token.as_bytes()).into());
        if let Some(claims) = digest.as_ref().and_then(|d| self.recall(d)) {
            return Ok(claims);
        }
        // Read before verifying: keys installed meanwhile make the memory stale, not wrong.
        let generation = self.generation();
        let data = match &self.keys {
            Keys::One(key) => {
                jsonwebtoken::decode::<Map<String, Value>>(token, key, &self.validation)
            }
            Keys::Jwks(set) => {
                let header = jsonwebtoken::decode_header(token).map_err(map_error)?;
                if !self.validation.algorithms.contains(&header.alg) {
                    return Err(IdentityError::Algorithm);
                }
                let keys = set.keys();
                let key = crate::jwt_keys::select(&keys, header.kid.as_deref(), header.alg)
                    .ok_or(IdentityError::UnknownKey)?;
                jsonwebtoken::decode::<Map<String, Value>>(token, key, &self.validation)
            }
        }
        .map_err(map_error)?;
        let claims = claims(
            &data.claims,
            &self.workspace_claim,
            self.user_claim.as_deref(),
        )?;
        if let (Some(digest), Some(exp)) = (digest, data.claims.get("exp").and_then(Value::as_u64))
        {
            self.remember(digest, &claims, exp, generation);
        }
        Ok(claims)
    }
}

fn map_error(e: jsonwebtoken::errors::Error) -> IdentityError {
    match e.kind() {
        ErrorKind::InvalidSignature => IdentityError::Signature,
        ErrorKind::InvalidAlgorithm
        | ErrorKind::MissingAlgorithm
        | ErrorKind::InvalidAlgorithmName
        | ErrorKind::InvalidKeyFormat => IdentityError::Algorithm,
        ErrorKind::ExpiredSignature => IdentityError::Expired,
        ErrorKind::ImmatureSignature => IdentityError::NotYetValid,
        ErrorKind::InvalidIssuer => IdentityError::Issuer,
        ErrorKind::InvalidAudience => IdentityError::Audience,
        ErrorKind::MissingRequiredClaim(c) if c == "iss" => IdentityError::Issuer,
        ErrorKind::MissingRequiredClaim(c) if c == "aud" => IdentityError::Audience,
        _ => IdentityError::Malformed,
    }
}

/// One id from a claim value: a string, or an integer written as text.
fn id_of(v: &Value) -> Option<String> {
    let s = match v {
        Value::String(s) => s.clone(),
        Value::Number(n) if n.is_i64() || n.is_u64() => n.to_string(),
        _ => return None,
    };
    valid_id(&s).then_some(s)
}

/// Reads the workspaces and the user from verified claims.
///
/// # Errors
/// [`IdentityError::NoWorkspace`] when the workspace claim is absent, empty,
/// of another type, too long, or holds an unusable id.
pub fn claims(
    map: &Map<String, Value>,
    workspace_claim: &str,
    user_claim: Option<&str>,
) -> Result<Claims, IdentityError> {
    let workspaces = match map.get(workspace_claim) {
        Some(Value::Array(items)) if !items.is_empty() && items.len() <= MAX_WORKSPACES => items
            .iter()
            .map(id_of)
            .collect::<Option<Vec<String>>>()
            .ok_or(IdentityError::NoWorkspace)?,
        Some(v @ (Value::String(_) | Value::Number(_))) => {
            vec![id_of(v).ok_or(IdentityError::NoWorkspace)?]
        }
        _ => return Err(IdentityError::NoWorkspace),
    };
    // A user claim of the wrong shape is no user: per-user responses then bypass.
    let user = user_claim.and_then(|c| map.get(c)).and_then(id_of);
    Ok(Claims { workspaces, user })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{OnInvalid, Secret};
    use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
    use serde_json::json;
    use std::time::Duration;

    const SECRET: &str = "0123456789abcdef0123456789abcdef-test";

    fn cfg(issuer: &[&str], audience: &[&str]) -> Jwt {
        Jwt {
            algorithms: vec![Algorithm::HS256],
            key: JwtKey::Secret(Secret::new(SECRET)),
            issuer: issuer.iter().map(|s| s.to_string()).collect(),
            audience: audience.iter().map(|s| s.to_string()).collect(),
            leeway: Duration::from_secs(30),
            on_invalid: OnInvalid::Reject,
            workspace_claim: "workspace_id".into(),
            user_claim: Some("sub".into()),
            workspace_param: "workspace_id".into(),
        }
    }

    fn now() -> i64 {
        jsonwebtoken::get_current_timestamp() as i64
    }

    fn token(claims: Value) -> String {
        encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(SECRET.as_bytes()),
        )
        .unwrap()
    }

    fn check(
        v: &JwtVerifier,
        claims: Value,
        expected: Result<(&[&str], Option<&str>), IdentityError>,
    ) {
        let got = v.verify(&token(claims.clone()));
        let want = expected.map(|(ws, u)| Claims {
            workspaces: ws.iter().map(|s| s.to_string()).collect(),
            user: u.map(str::to_string),
        });
        assert_eq!(got, want, "{claims}");
    }

    #[test]
    fn time_and_claims() {
        let v = JwtVerifier::new(&cfg(&[], &[])).unwrap();
        let t = now();
        check(
            &v,
            json!({"exp": t + 60, "workspace_id": "w1", "sub": "u1"}),
            Ok((&["w1"], Some("u1"))),
        );
        check(
            &v,
            json!({"exp": t + 60, "workspace_id": ["w1", 7], "sub": 42}),
            Ok((&["w1", "7"], Some("42"))),
        );
        // jsonwebtoken itself refuses a `sub` that is not a string or number.
        check(
            &v,
            json!({"exp": t + 60, "workspace_id": "w1", "sub": {"x": 1}}),
            Err(IdentityError::Malformed),
        );
        // Within the leeway either side.
        check(
            &v,
            json!({"exp": t - 10, "nbf": t + 10, "workspace_id": "w1"}),
            Ok((&["w1"], None)),
        );
        check(
            &v,
            json!({"exp": t - 120, "workspace_id": "w1"}),
            Err(IdentityError::Expired),
        );
        check(
            &v,
            json!({"exp": t + 600, "nbf": t + 120, "workspace_id": "w1"}),
            Err(IdentityError::NotYetValid),
        );
        check(
            &v,
            json!({"workspace_id": "w1"}),
            Err(IdentityError::Malformed),
        );
        check(
            &v,
            json!({"exp": "soon", "workspace_id": "w1"}),
            Err(IdentityError::Malformed),
        );
        check(&v, json!({"exp": t + 60}), Err(IdentityError::NoWorkspace));
        check(
            &v,
            json!({"exp": t + 60, "workspace_id": []}),
            Err(IdentityError::NoWorkspace),
        );
        check(
            &v,
            json!({"exp": t + 60, "workspace_id": ["w1", ""]}),
            Err(IdentityError::NoWorkspace),
        );
        check(
            &v,
            json!({"exp": t + 60, "workspace_id": "a b"}),
            Err(IdentityError::NoWorkspace),
        );
        check(
            &v,
            json!({"exp": t + 60, "workspace_id": true}),
            Err(IdentityError::NoWorkspace),
        );
        check(
            &v,
            json!({"exp": t + 60, "workspace_id": 1.5}),
            Err(IdentityError::NoWorkspace),
        );
        // An audience in the token is not checked when none is configured.
        check(
            &v,
            json!({"exp": t + 60, "aud": "x", "workspace_id": "w1"}),
            Ok((&["w1"], None)),
        );
    }

    #[test]
    fn issuer_and_audience() {
        let v = JwtVerifier::new(&cfg(&["https://auth"], &["api"])).unwrap();
        let t = now();
        check(
            &v,
            json!({"exp": t + 60, "iss": "https://auth", "aud": "api", "workspace_id": "w"}),
            Ok((&["w"], None)),
        );
        check(
            &v,
            json!({"exp": t + 60, "iss": "https://auth", "aud": ["x", "api"], "workspace_id": "w"}),
            Ok((&["w"], None)),
        );
        check(
            &v,
            json!({"exp": t + 60, "iss": "https://evil", "aud": "api", "workspace_id": "w"}),
            Err(IdentityError::Issuer),
        );
        check(
            &v,
            json!({"exp": t + 60, "aud": "api", "workspace_id": "w"}),
            Err(IdentityError::Issuer),
        );
        check(
            &v,
            json!({"exp": t + 60, "iss": "https://auth", "aud": "web", "workspace_id": "w"}),
            Err(IdentityError::Audience),
        );
        check(
            &v,
            json!({"exp": t + 60, "iss": "https://auth", "workspace_id": "w"}),
            Err(IdentityError::Audience),
        );
    }

    #[test]
    fn forged_and_garbled_tokens() {
        let v = JwtVerifier::new(&cfg(&[], &[])).unwrap();
        let good = token(json!({"exp": now() + 60, "workspace_id": "w1"}));
        let (head, rest) = good.split_once('.').unwrap();
        let (body, sig) = rest.split_once('.').unwrap();
        // Another payload under the original signature.
        let other = token(json!({"exp": now() + 60, "workspace_id": "w2"}));
        let other_body = other.split('.').nth(1).unwrap();
        assert_eq!(
            v.verify(&format!("{head}.{other_body}.{sig}")),
            Err(IdentityError::Signature)
        );
        // A flipped signature character.
        let mut bad_sig = sig.to_string();
        let c = if bad_sig.starts_with('A') { "B" } else { "A" };
        bad_sig.replace_range(0..1, c);
        assert_eq!(
            v.verify(&format!("{head}.{body}.{bad_sig}")),
            Err(IdentityError::Signature)
        );
        // alg: none, with and without a signature.
        let none = base64url(br#"{"alg":"none","typ":"JWT"}"#);
        assert_eq!(
            v.verify(&format!("{none}.{body}.")),
            Err(IdentityError::Malformed)
        );
        assert_eq!(
            v.verify(&format!("{none}.{body}.{sig}")),
            Err(IdentityError::Malformed)
        );
        for garbage in ["", ".", "..", "a.b", "a.b.c", "a.b.c.d", "%%%.x.y"] {
            assert_eq!(
                v.verify(garbage),
                Err(IdentityError::Malformed),
                "{garbage:?}"
            );
        }
        // Signed with another secret.
        let wrong = encode(
            &Header::new(Algorithm::HS256),
            &json!({"exp": now() + 60, "workspace_id": "w1"}),
            &EncodingKey::from_secret(b"another-secret-another-secret-xx"),
        )
        .unwrap();
        assert_eq!(v.verify(&wrong), Err(IdentityError::Signature));
        // HS512 is not configured.
        let hs512 = encode(
            &Header::new(Algorithm::HS512),
            &json!({"exp": now() + 60, "workspace_id": "w1"}),
            &EncodingKey::from_secret(SECRET.as_bytes()),
        )
        .unwrap();
        assert_eq!(v.verify(&hs512), Err(IdentityError::Algorithm));
    }

    pub(crate) fn base64url(bytes: &[u8]) -> String {
        const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let mut out = String::new();
        for chunk in bytes.chunks(3) {
            let n = chunk
                .iter()
                .enumerate()
                .fold(0u32, |acc, (i, b)| acc | (u32::from(*b) << (16 - 8 * i)));
            for i in 0..=chunk.len() {
                out.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
            }
        }
        out
    }
}
