//! JWT parsing and verification: arbitrary tokens (which almost never carry a
//! valid signature), and arbitrary claims under a valid signature (which
//! reach the time, issuer, audience and claim checks).

#![no_main]

#[path = "common.rs"]
mod common;

use libfuzzer_sys::fuzz_target;
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let tenant = &common::jwt_cache().config().tenant;
    let Some(Ok(auth)) = tagcache::identity::Authenticator::new(tenant) else {
        panic!("the fuzz config has a JWT verifier");
    };
    let verifier = auth.verifier();
    match mode % 3 {
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
        // An Authorization header and identity headers around a token.
        _ => {
            let mut req = pingora_http::RequestHeader::build("GET", b"/api/contacts/1", None).unwrap();
            if let Ok(v) = http::HeaderValue::from_bytes(rest) {
                let _ = req.insert_header(http::header::AUTHORIZATION, v.clone());
                let _ = req.insert_header("x-workspace-id", v);
            }
            let _ = auth.authenticate(&req, None);
        }
    }
});
