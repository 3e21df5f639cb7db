//! The hostile suite: each test is an attack that tries to read another
//! tenant's or another user's cached data, or to poison what others get, and
//! must fail. Shared helpers live here: a proxy in JWT mode and token minting.

mod admin;
mod coalescing;
mod directives;
mod hop_by_hop;
mod identity;
mod limits;
mod paths;
mod poisoning;
mod users;

use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

use crate::util::{Options, Proxy, Resp};

/// The HMAC secret of the JWT-mode test proxies.
pub const JWT_SECRET: &str = "security-suite-jwt-secret-0123456789abcdef";

/// A test key file, by absolute path.
pub fn fixture(name: &str) -> String {
    format!("{}/tests/fixtures/jwt/{name}", env!("CARGO_MANIFEST_DIR"))
}

/// The `tenant:` block of an HS256 proxy; `extra` adds lines to `jwt:`
/// (indented four spaces).
pub fn hs256_tenant(extra: &str) -> String {
    format!(
        "tenant:
  jwt:
    algorithms: [HS256]
    secret: \"${{TEST_JWT_SECRET}}\"
{extra}
  workspace: {{ claim: workspace_id }}
  user: {{ claim: sub }}"
    )
}

/// A proxy verifying HS256 tokens signed with [`JWT_SECRET`].
pub fn hs256_proxy(extra: &str) -> Proxy {
    Proxy::start_with(hs256_options(extra))
}

pub fn hs256_options(extra: &str) -> Options {
    Options {
        tenant: hs256_tenant(extra),
        env: vec![("TEST_JWT_SECRET".into(), JWT_SECRET.into())],
        ..Options::default()
    }
}

/// A proxy verifying RS256 tokens against `rsa-public.pem`.
pub fn rs256_proxy() -> Proxy {
    Proxy::start_with(Options {
        tenant: format!(
            "tenant:
  jwt:
    algorithms: [RS256]
    public_key_file: \"{}\"
  workspace: {{ claim: workspace_id }}
  user: {{ claim: sub }}",
            fixture("rsa-public.pem")
        ),
        ..Options::default()
    })
}

pub fn now() -> i64 {
    jsonwebtoken::get_current_timestamp() as i64
}

/// Claims valid for five minutes.
pub fn claims(workspace: Value, sub: &str) -> Value {
    json!({ "exp": now() + 300, "iat": now(), "workspace_id": workspace, "sub": sub })
}

/// An HS256 token signed with [`JWT_SECRET`].
pub fn hs256(claims: &Value) -> String {
    encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(JWT_SECRET.as_bytes()),
    )
    .unwrap()
}

/// A valid HS256 token for a workspace and user.
pub fn token(workspace: &str, sub: &str) -> String {
    hs256(&claims(json!(workspace), sub))
}

/// An RS256 token signed with `rsa-private.pem`.
pub fn rs256(claims: &Value) -> String {
    let pem = std::fs::read(fixture("rsa-private.pem")).unwrap();
    encode(
        &Header::new(Algorithm::RS256),
        claims,
        &EncodingKey::from_rsa_pem(&pem).unwrap(),
    )
    .unwrap()
}

/// Unpadded base64url, for hand-made tokens.
pub fn b64(bytes: &[u8]) -> String {
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

/// GET with a bearer token (if any) and extra headers; no identity headers
/// unless given.
pub async fn get(p: &Proxy, path: &str, token: Option<&str>, headers: &[(&str, &str)]) -> Resp {
    let mut req = p.client.get(p.url(path));
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    Resp::from(req.send().await.expect("request")).await
}

/// Sends raw bytes as a request and returns the status and the whole
/// response, lower-cased head and body.
pub fn raw(port: u16, request: &[u8]) -> (u16, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    s.write_all(request).unwrap();
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, text)
}
