//! Public keys for JWT verification, parsed from PEM and JWKS files: one
//! leaf that config validation (is this key usable?) and the verifier (use
//! it) both call, so neither depends on the other.

use jsonwebtoken::jwk::{Jwk, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};
use serde_json::Value;

/// Why a configured key cannot be used. Key material is public (or, for
/// HMAC, never printed), so the messages only name the problem.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// The PEM file does not hold a public key of the configured algorithms' family.
    #[error("not a PEM {0} public key")]
    Pem(&'static str),
    /// The JWKS file is not a JSON key set.
    #[error("not a JWKS document ({0})")]
    Jwks(String),
    /// The JWKS file holds no key usable with the configured algorithms.
    #[error("the JWKS has no {0} signing key")]
    NoUsableKey(&'static str),
}

/// The name of an algorithm family, for messages.
pub(crate) fn family_name(alg: Algorithm) -> &'static str {
    use jsonwebtoken::AlgorithmFamily;
    match alg.family() {
        AlgorithmFamily::Hmac => "HMAC",
        AlgorithmFamily::Rsa => "RSA",
        AlgorithmFamily::Ec => "EC",
        AlgorithmFamily::Ed => "Ed25519",
    }
}

/// Parses a PEM public key for `alg`'s family.
pub(crate) fn pem_key(alg: Algorithm, pem: &[u8]) -> Result<DecodingKey, KeyError> {
    use jsonwebtoken::AlgorithmFamily;
    let key = match alg.family() {
        AlgorithmFamily::Rsa => DecodingKey::from_rsa_pem(pem),
        AlgorithmFamily::Ec => DecodingKey::from_ec_pem(pem),
        AlgorithmFamily::Ed => DecodingKey::from_ed_pem(pem),
        AlgorithmFamily::Hmac => return Err(KeyError::Pem("HMAC")),
    };
    key.map_err(|_| KeyError::Pem(family_name(alg)))
}

/// Key material, as a config names it.
#[derive(Debug, Clone, Copy)]
pub enum Material<'a> {
    /// An HMAC secret: always usable once the config accepted it.
    Secret,
    /// The bytes of a PEM file.
    Pem(&'a [u8]),
    /// The bytes of a JWKS file.
    Jwks(&'a [u8]),
}

/// Checks that `material` can verify tokens of `algorithms` (which config
/// validation has checked to be one non-empty family).
///
/// # Errors
/// What is wrong with the key.
pub fn check(algorithms: &[Algorithm], material: Material<'_>) -> Result<(), KeyError> {
    let Some(&alg) = algorithms.first() else {
        return Ok(());
    };
    match material {
        Material::Secret => Ok(()),
        Material::Pem(pem) => pem_key(alg, pem).map(|_| ()),
        Material::Jwks(text) => parse(text, alg).map(|_| ()),
    }
}

/// One usable key of the set.
pub(crate) struct Key {
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
pub(crate) fn parse(text: &[u8], alg: Algorithm) -> Result<Vec<Key>, KeyError> {
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
pub(crate) fn select<'k>(
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
