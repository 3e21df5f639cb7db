//! JWT parsing and verification: arbitrary tokens (which almost never carry a
//! valid signature), and arbitrary claims under a valid signature (which
//! reach the time, issuer, audience and claim checks).

#![no_main]

#[path = "common.rs"]
mod common;

use std::sync::OnceLock;

use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use libfuzzer_sys::fuzz_target;
use tagcache::config::{Jwt, JwtKey, OnInvalid};
use tagcache::identity::JwtVerifier;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let tenant = &common::jwt_cache().config().tenant;
    // The authenticator's verifier is this one: built from the same config.
    let (Some(Ok(auth)), Some(Ok(verifier))) = (
        tagcache::identity::Authenticator::new(tenant),
        tenant.jwt.as_ref().map(JwtVerifier::new),
    ) else {
        panic!("the fuzz config has a JWT verifier");
    };
    match mode % 5 {
        // A raw token.
        0 => {
            let token = String::from_utf8_lossy(rest);
            let _ = verifier.verify(&token);
            let _ = jsonwebtoken::decode_header(token.as_bytes());
        }
        // Arbitrary JSON claims, validly signed.
        1 => {
            let Ok(claims) = serde_json::from_slice::<serde_json::Value>(rest) else {
                return;
            };
            let key = EncodingKey::from_secret(common::SECRET.as_bytes());
            if let Ok(token) = encode(&Header::new(Algorithm::HS256), &claims, &key) {
                let _ = verifier.verify(&token);
            }
        }
        // A raw token against an RS256 public key and an RS256 JWKS (which
        // remember successful verifications).
        3 => {
            let token = String::from_utf8_lossy(rest);
            let _ = public_key().verify(&token);
        }
        4 => {
            let token = String::from_utf8_lossy(rest);
            let _ = jwks().verify(&token);
        }
        // An Authorization header and identity headers around a token.
        _ => {
            let mut req =
                pingora_http::RequestHeader::build("GET", b"/api/contacts/1", None).unwrap();
            if let Ok(v) = http::HeaderValue::from_bytes(rest) {
                let _ = req.insert_header(http::header::AUTHORIZATION, v.clone());
                let _ = req.insert_header("x-workspace-id", v);
            }
            let _ = auth.authenticate(&req, None);
        }
    }
});

fn rs256(key: JwtKey) -> JwtVerifier {
    JwtVerifier::new(&Jwt {
        algorithms: vec![Algorithm::RS256, Algorithm::PS256],
        key,
        issuer: vec![],
        audience: vec!["a".into()],
        leeway: std::time::Duration::from_secs(30),
        on_invalid: OnInvalid::Reject,
        workspace_claim: "workspace_id".into(),
        user_claim: Some("sub".into()),
        workspace_param: "workspace_id".into(),
    })
    .expect("fixture keys")
}

fn fixture(name: &str) -> (std::path::PathBuf, Vec<u8>) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/jwt")
        .join(name);
    let bytes = std::fs::read(&path).expect("fixture");
    (path, bytes)
}

fn public_key() -> &'static JwtVerifier {
    static V: OnceLock<JwtVerifier> = OnceLock::new();
    V.get_or_init(|| {
        let (path, pem) = fixture("rsa-public.pem");
        rs256(JwtKey::PublicKey { path, pem })
    })
}

fn jwks() -> &'static JwtVerifier {
    static V: OnceLock<JwtVerifier> = OnceLock::new();
    V.get_or_init(|| {
        let (path, initial) = fixture("jwks.json");
        rs256(JwtKey::Jwks {
            path,
            reload_interval: std::time::Duration::from_secs(1),
            initial,
        })
    })
}
