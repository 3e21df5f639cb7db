//! JWT verification, as done once per request on a cached route in JWT mode:
//! HS256 with a secret, RS256 and ES256 with a PEM public key, and the whole
//! `Authenticator::authenticate` (bearer parsing, verification, workspace check).
//!
//! Run with `cargo bench --bench jwt`.

use std::time::Duration;

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use tagcache::config::{IdentitySource, Jwt, JwtKey, OnInvalid, Secret, Tenant};
use tagcache::identity::{Authenticator, JwtVerifier};

const SECRET: &str = "bench-secret-0123456789abcdef-0123456789";

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/tests/fixtures/jwt/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

fn jwt(alg: Algorithm, key: JwtKey) -> Jwt {
    Jwt {
        algorithms: vec![alg],
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

fn token(alg: Algorithm, key: &EncodingKey) -> String {
    let claims = serde_json::json!({
        "exp": jsonwebtoken::get_current_timestamp() + 3600,
        "iat": jsonwebtoken::get_current_timestamp(),
        "workspace_id": "w1",
        "sub": "user-1234",
        "email": "someone@example.com",
        "role": "agent",
    });
    encode(&Header::new(alg), &claims, key).unwrap()
}

fn verify(c: &mut Criterion) {
    let cases = [
        (
            "hs256",
            Algorithm::HS256,
            JwtKey::Secret(Secret::new(SECRET)),
            EncodingKey::from_secret(SECRET.as_bytes()),
        ),
        (
            "rs256",
            Algorithm::RS256,
            JwtKey::PublicKey {
                path: "rsa-public.pem".into(),
                pem: fixture("rsa-public.pem"),
            },
            EncodingKey::from_rsa_pem(&fixture("rsa-private.pem")).unwrap(),
        ),
        (
            "es256",
            Algorithm::ES256,
            JwtKey::PublicKey {
                path: "ec-public.pem".into(),
                pem: fixture("ec-public.pem"),
            },
            EncodingKey::from_ec_pem(&fixture("ec-private.pem")).unwrap(),
        ),
    ];
    for (name, alg, key, signing) in cases {
        let verifier = JwtVerifier::new(&jwt(alg, key.clone())).unwrap();
        let t = token(alg, &signing);
        assert!(verifier.verify(&t).is_ok());
        c.bench_function(&format!("jwt_verify_{name}"), |b| {
            b.iter(|| verifier.verify(black_box(&t)).is_ok())
        });
        if alg == Algorithm::HS256 {
            let tenant = Tenant {
                workspace: Some(IdentitySource::Header(http::HeaderName::from_static(
                    "x-workspace-id",
                ))),
                user: Some(IdentitySource::Header(http::HeaderName::from_static(
                    "x-user-id",
                ))),
                jwt: Some(jwt(alg, key)),
            };
            let auth = Authenticator::new(&tenant).unwrap().unwrap();
            let mut req =
                pingora_http::RequestHeader::build("GET", b"/api/boards/b1/contacts", None)
                    .unwrap();
            req.insert_header("authorization", format!("Bearer {t}"))
                .unwrap();
            req.insert_header("x-workspace-id", "w1").unwrap();
            c.bench_function("jwt_authenticate_hs256", |b| {
                b.iter(|| auth.authenticate(black_box(&req), None))
            });
        }
    }
}

criterion_group!(benches, verify);
criterion_main!(benches);
