//! Public-key verification: RSA and EC PEM keys, JWKS files and their reload,
//! and the algorithm-confusion attacks against them.

use std::path::PathBuf;
use std::time::Duration;

use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::json;

use super::*;
use crate::config::{Jwt, JwtKey, OnInvalid, Secret};

/// What config validation checks of a key: can it verify tokens of `algorithms`.
fn check_key(algorithms: &[Algorithm], key: &JwtKey) -> Result<(), KeyError> {
    use crate::jwt_keys::Material;
    let material = match key {
        JwtKey::Secret(_) => Material::Secret,
        JwtKey::PublicKey { pem, .. } => Material::Pem(pem),
        JwtKey::Jwks { initial, .. } => Material::Jwks(initial),
    };
    crate::jwt_keys::check(algorithms, material)
}

fn fixture(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/jwt")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn cfg(algorithms: &[Algorithm], key: JwtKey) -> Jwt {
    Jwt {
        algorithms: algorithms.to_vec(),
        key,
        issuer: vec![],
        audience: vec![],
        leeway: Duration::from_secs(30),
        on_invalid: OnInvalid::Reject,
        workspace_claim: "workspace_id".into(),
        user_claim: Some("sub".into()),
        workspace_param: "workspace_id".into(),
    }
}

fn claims() -> serde_json::Value {
    json!({"exp": jsonwebtoken::get_current_timestamp() + 300, "workspace_id": "w1", "sub": "u1"})
}

fn sign(alg: Algorithm, kid: Option<&str>, key: &EncodingKey) -> String {
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_string);
    encode(&header, &claims(), key).unwrap()
}

fn rsa(name: &str) -> EncodingKey {
    EncodingKey::from_rsa_pem(&fixture(name)).unwrap()
}

fn ok() -> Result<Claims, IdentityError> {
    Ok(Claims {
        workspaces: vec!["w1".into()],
        user: Some("u1".into()),
    })
}

fn pem(name: &str) -> JwtKey {
    JwtKey::PublicKey {
        path: name.into(),
        pem: fixture(name),
    }
}

#[test]
fn rsa_pem_keys() {
    let v = JwtVerifier::new(&cfg(
        &[Algorithm::RS256, Algorithm::PS256],
        pem("rsa-public.pem"),
    ))
    .unwrap();
    assert_eq!(
        v.verify(&sign(Algorithm::RS256, None, &rsa("rsa-private.pem"))),
        ok()
    );
    assert_eq!(
        v.verify(&sign(Algorithm::PS256, None, &rsa("rsa-private.pem"))),
        ok()
    );
    // Another key pair's signature.
    assert_eq!(
        v.verify(&sign(Algorithm::RS256, None, &rsa("rsa2-private.pem"))),
        Err(IdentityError::Signature)
    );
    // RS512 is not configured, even with the right key.
    assert_eq!(
        v.verify(&sign(Algorithm::RS512, None, &rsa("rsa-private.pem"))),
        Err(IdentityError::Algorithm)
    );
}

#[test]
fn ec_pem_keys() {
    let v = JwtVerifier::new(&cfg(&[Algorithm::ES256], pem("ec-public.pem"))).unwrap();
    let key = EncodingKey::from_ec_pem(&fixture("ec-private.pem")).unwrap();
    assert_eq!(v.verify(&sign(Algorithm::ES256, None, &key)), ok());
    assert_eq!(
        v.verify(&sign(Algorithm::RS256, None, &rsa("rsa-private.pem"))),
        Err(IdentityError::Algorithm)
    );
}

/// The classic confusion: the attacker signs an HS256 token using the
/// server's *public* key as the HMAC secret, hoping the verifier feeds the
/// same key bytes to HMAC.
#[test]
fn hs256_signed_with_the_public_key_is_refused() {
    let public = fixture("rsa-public.pem");
    let forged = sign(Algorithm::HS256, None, &EncodingKey::from_secret(&public));
    let v = JwtVerifier::new(&cfg(&[Algorithm::RS256], pem("rsa-public.pem"))).unwrap();
    assert_eq!(v.verify(&forged), Err(IdentityError::Algorithm));
    // Through a JWKS too, with and without a matching kid.
    let jwks = jwks_of(&[("k1", Algorithm::RS256, "rsa-private.pem")]);
    let v = JwtVerifier::new(&cfg(&[Algorithm::RS256], jwks_key("/nonexistent", &jwks))).unwrap();
    assert_eq!(v.verify(&forged), Err(IdentityError::Algorithm));
    let forged_kid = sign(
        Algorithm::HS256,
        Some("k1"),
        &EncodingKey::from_secret(&public),
    );
    assert_eq!(v.verify(&forged_kid), Err(IdentityError::Algorithm));
    // And the config refuses to pair a secret with RS256 in the first place
    // (see config::tests_security::jwt_key_must_match_the_algorithms).
}

/// The reverse: an RS256 token presented where HS256 is configured.
#[test]
fn rs256_where_hs256_is_configured_is_refused() {
    let secret = JwtKey::Secret(Secret::new("0123456789abcdef0123456789abcdef"));
    let v = JwtVerifier::new(&cfg(&[Algorithm::HS256], secret)).unwrap();
    assert_eq!(
        v.verify(&sign(Algorithm::RS256, None, &rsa("rsa-private.pem"))),
        Err(IdentityError::Algorithm)
    );
}

fn jwks_of(keys: &[(&str, Algorithm, &str)]) -> String {
    let keys = keys
        .iter()
        .map(|(kid, alg, private)| {
            let mut jwk = Jwk::from_encoding_key(&rsa(private), *alg).unwrap();
            jwk.common.key_id = Some(kid.to_string());
            jwk
        })
        .collect();
    serde_json::to_string(&JwkSet { keys }).unwrap()
}

fn jwks_key(path: &str, text: &str) -> JwtKey {
    JwtKey::Jwks {
        path: path.into(),
        reload_interval: Duration::from_millis(50),
        initial: text.as_bytes().to_vec(),
    }
}

#[test]
fn jwks_selects_by_kid() {
    let text = jwks_of(&[
        ("k1", Algorithm::RS256, "rsa-private.pem"),
        ("k2", Algorithm::RS256, "rsa2-private.pem"),
    ]);
    let v = JwtVerifier::new(&cfg(&[Algorithm::RS256], jwks_key("/nonexistent", &text))).unwrap();
    assert_eq!(
        v.verify(&sign(Algorithm::RS256, Some("k1"), &rsa("rsa-private.pem"))),
        ok()
    );
    assert_eq!(
        v.verify(&sign(
            Algorithm::RS256,
            Some("k2"),
            &rsa("rsa2-private.pem")
        )),
        ok()
    );
    // The right kid with the other key's signature.
    assert_eq!(
        v.verify(&sign(
            Algorithm::RS256,
            Some("k1"),
            &rsa("rsa2-private.pem")
        )),
        Err(IdentityError::Signature)
    );
    assert_eq!(
        v.verify(&sign(Algorithm::RS256, Some("k9"), &rsa("rsa-private.pem"))),
        Err(IdentityError::UnknownKey)
    );
    // Without a kid, two candidate keys: no guessing.
    assert_eq!(
        v.verify(&sign(Algorithm::RS256, None, &rsa("rsa-private.pem"))),
        Err(IdentityError::UnknownKey)
    );
}

#[test]
fn jwks_skips_unusable_keys_and_refuses_empty_sets() {
    let good = jwks_of(&[("k1", Algorithm::RS256, "rsa-private.pem")]);
    let mut doc: serde_json::Value = serde_json::from_str(&good).unwrap();
    let keys = doc["keys"].as_array_mut().unwrap();
    keys.push(json!({"kty": "oct", "k": "c2VjcmV0", "kid": "hmac"}));
    keys.push(json!({"kty": "RSA", "use": "enc", "kid": "enc", "n": keys[0]["n"], "e": "AQAB"}));
    keys.push(json!({"kty": "weird"}));
    let text = doc.to_string();
    let v = JwtVerifier::new(&cfg(&[Algorithm::RS256], jwks_key("/nonexistent", &text))).unwrap();
    // The only usable key serves tokens without a kid.
    assert_eq!(
        v.verify(&sign(Algorithm::RS256, None, &rsa("rsa-private.pem"))),
        ok()
    );
    // The oct key is never used, even when named.
    let hs = sign(
        Algorithm::HS256,
        Some("hmac"),
        &EncodingKey::from_secret(b"secret"),
    );
    assert_eq!(v.verify(&hs), Err(IdentityError::Algorithm));
    let only_oct = json!({"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}).to_string();
    assert!(matches!(
        check_key(&[Algorithm::RS256], &jwks_key("x", &only_oct)),
        Err(KeyError::NoUsableKey("RSA"))
    ));
    assert!(matches!(
        check_key(&[Algorithm::RS256], &jwks_key("x", "{}")),
        Err(KeyError::Jwks(_))
    ));
    assert!(matches!(
        check_key(&[Algorithm::RS256], &jwks_key("x", "not json")),
        Err(KeyError::Jwks(_))
    ));
    assert!(matches!(
        check_key(&[Algorithm::RS256], &pem("ec-public.pem")),
        Err(KeyError::Pem("RSA"))
    ));
}

#[test]
fn jwks_file_is_reloaded_when_it_changes() {
    let dir = std::env::temp_dir().join(format!("tagcache-jwks-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("jwks.json");
    let first = jwks_of(&[("k1", Algorithm::RS256, "rsa-private.pem")]);
    std::fs::write(&path, &first).unwrap();
    let v = JwtVerifier::new(&cfg(
        &[Algorithm::RS256],
        jwks_key(path.to_str().unwrap(), &first),
    ))
    .unwrap();
    let old = sign(Algorithm::RS256, Some("k1"), &rsa("rsa-private.pem"));
    let new = sign(Algorithm::RS256, Some("k2"), &rsa("rsa2-private.pem"));
    assert_eq!(v.verify(&old), ok());
    assert_eq!(v.verify(&new), Err(IdentityError::UnknownKey));

    // Rotate: k1 out, k2 in.
    std::fs::write(
        &path,
        jwks_of(&[("k2", Algorithm::RS256, "rsa2-private.pem")]),
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(80));
    assert_eq!(v.verify(&new), ok());
    assert_eq!(v.verify(&old), Err(IdentityError::UnknownKey));

    // A broken file keeps the last good keys.
    std::fs::write(&path, "{ not json").unwrap();
    std::thread::sleep(Duration::from_millis(80));
    assert_eq!(v.verify(&new), ok());
    std::fs::remove_file(&path).unwrap();
    std::thread::sleep(Duration::from_millis(80));
    assert_eq!(v.verify(&new), ok());
    let _ = std::fs::remove_dir(&dir);
}

/// Public-key verifications are remembered; the memory must never outlive
/// the token nor accept a different token.
#[test]
fn remembered_verifications_expire_and_never_match_another_token() {
    let mut c = cfg(&[Algorithm::RS256], pem("rsa-public.pem"));
    c.leeway = Duration::ZERO;
    let v = JwtVerifier::new(&c).unwrap();
    // Room for a slow debug-build RSA signature before the first check.
    let exp = jsonwebtoken::get_current_timestamp() + 5;
    let claims = json!({"exp": exp, "workspace_id": "w1", "sub": "u1"});
    let t = encode(
        &Header::new(Algorithm::RS256),
        &claims,
        &rsa("rsa-private.pem"),
    )
    .unwrap();
    assert_eq!(v.verify(&t), ok());
    assert_eq!(v.verify(&t), ok(), "from memory");
    // One byte changed in the signature: verified in full, refused. The
    // character changed is inside the signature: the last one also carries
    // padding bits, and changing those makes the token malformed instead.
    let mut forged = t.clone();
    let at = forged.len() - 10;
    let swap = if &forged[at..=at] == "A" { "B" } else { "A" };
    forged.replace_range(at..=at, swap);
    assert_eq!(v.verify(&forged), Err(IdentityError::Signature));
    // Another payload under the remembered token's signature.
    let other = encode(
        &Header::new(Algorithm::RS256),
        &json!({"exp": exp, "workspace_id": "w2", "sub": "u1"}),
        &rsa("rsa-private.pem"),
    )
    .unwrap();
    let (head, rest) = t.split_once('.').unwrap();
    let sig = rest.split_once('.').unwrap().1;
    let spliced = format!("{head}.{}.{sig}", other.split('.').nth(1).unwrap());
    assert_eq!(v.verify(&spliced), Err(IdentityError::Signature));
    // Past exp, the remembered verification no longer counts.
    while jsonwebtoken::get_current_timestamp() <= exp {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(v.verify(&t), Err(IdentityError::Expired));
}
