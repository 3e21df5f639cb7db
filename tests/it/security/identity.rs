//! Attacks on identity: forged workspaces, bad tokens, algorithm confusion.
//! Each one tries to read the victim workspace's cached contact list.

use serde_json::json;

use super::*;

const LIST: &str = "/api/boards/b1/contacts?filter=open";

/// The victim fills the cache with its own list; returns that response.
async fn victim_fills(p: &Proxy, path: &str) -> Resp {
    let t = token("victim", "alice");
    let first = get(p, path, Some(&t), &[("x-workspace-id", "victim")]).await;
    assert_eq!(
        (first.status, first.cache()),
        (200, "MISS"),
        "{}",
        first.text
    );
    let again = get(p, path, Some(&t), &[]).await;
    assert_eq!(again.cache(), "HIT");
    assert_eq!(again.json()["workspace"], "victim");
    first
}

/// A refusal must not carry the victim's data, and must not reach the origin.
fn refused(r: &Resp, status: u16, error: &str) {
    assert_eq!(r.status, status, "{}", r.text);
    assert_eq!(r.json()["error"], error, "{}", r.text);
    assert!(!r.text.contains("victim"), "{}", r.text);
    assert!(r.header("age").is_none());
    assert_eq!(r.cache(), "BYPASS");
}

#[tokio::test]
async fn forged_workspace_header_with_another_workspaces_token_is_refused() {
    let p = hs256_proxy("");
    victim_fills(&p, LIST).await;
    let hits = p.origin.hits("/api/boards/b1/contacts");
    let attacker = token("attacker", "mallory");
    let r = get(&p, LIST, Some(&attacker), &[("x-workspace-id", "victim")]).await;
    refused(&r, 403, "forbidden");
    // Lower case, padded, repeated: all refused.
    for forged in [" victim ", "VICTIM"] {
        let r = get(&p, LIST, Some(&attacker), &[("x-workspace-id", forged)]).await;
        refused(&r, 403, "forbidden");
    }
    let r = p
        .client
        .get(p.url(LIST))
        .header("authorization", format!("Bearer {attacker}"))
        .header("x-workspace-id", "attacker")
        .header("x-workspace-id", "victim")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(
        p.origin.hits("/api/boards/b1/contacts"),
        hits,
        "refusals never reach the origin"
    );
    // The attacker's own request is keyed on its own workspace: a miss.
    let own = get(&p, LIST, Some(&attacker), &[]).await;
    assert_eq!((own.status, own.cache()), (200, "MISS"));
    assert_ne!(own.json()["workspace"], "victim");
}

#[tokio::test]
async fn a_workspace_path_parameter_must_be_allowed_by_the_token() {
    let p = hs256_proxy("");
    let counts = "/api/cache-settings/workspace/victim/counts";
    victim_fills(&p, counts).await;
    let attacker = token("attacker", "mallory");
    refused(
        &get(&p, counts, Some(&attacker), &[]).await,
        403,
        "forbidden",
    );
    // Naming its own workspace in the header does not help.
    let r = get(
        &p,
        counts,
        Some(&attacker),
        &[("x-workspace-id", "attacker")],
    )
    .await;
    refused(&r, 403, "forbidden");
    // Percent-encoding the path parameter is the same parameter.
    let r = get(
        &p,
        "/api/cache-settings/workspace/%76ictim/counts",
        Some(&attacker),
        &[],
    )
    .await;
    refused(&r, 403, "forbidden");
    assert_eq!(p.origin.hits(counts), 1);
}

#[tokio::test]
async fn bad_tokens_get_401_and_never_the_cached_entry() {
    let p = hs256_proxy("");
    victim_fills(&p, LIST).await;
    let hits = p.origin.hits("/api/boards/b1/contacts");
    let valid = token("victim", "alice");
    let (head, rest) = valid.split_once('.').unwrap();
    let (body, sig) = rest.split_once('.').unwrap();
    let mut flipped = sig.to_string();
    let c = if flipped.ends_with('A') { "B" } else { "A" };
    flipped.replace_range(flipped.len() - 1.., c);
    // The victim's claims, under the attacker's own (valid) signature: no.
    let attacker_sig = token("attacker", "mallory");
    let attacker_sig = attacker_sig.rsplit('.').next().unwrap();
    let none = b64(br#"{"alg":"none","typ":"JWT"}"#);
    let none_lower = b64(br#"{"alg":"NONE"}"#);
    let expired = hs256(&json!({"exp": now() - 120, "workspace_id": "victim", "sub": "alice"}));
    let not_yet = hs256(&json!({"exp": now() + 600, "nbf": now() + 300, "workspace_id": "victim"}));
    let no_exp = hs256(&json!({"workspace_id": "victim", "sub": "alice"}));
    let wrong_secret = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims(json!("victim"), "alice"),
        &jsonwebtoken::EncodingKey::from_secret(b"guessed-secret-guessed-secret-guessed"),
    )
    .unwrap();
    let no_workspace = hs256(&json!({"exp": now() + 300, "sub": "alice"}));
    let cases: Vec<(&str, String)> = vec![
        ("expired", expired),
        ("not yet valid", not_yet),
        ("no exp", no_exp),
        ("alg none, empty signature", format!("{none}.{body}.")),
        ("alg none, kept signature", format!("{none}.{body}.{sig}")),
        ("alg NONE", format!("{none_lower}.{body}.")),
        ("flipped signature", format!("{head}.{body}.{flipped}")),
        ("spliced signature", format!("{head}.{body}.{attacker_sig}")),
        ("no signature", format!("{head}.{body}")),
        ("wrong secret", wrong_secret),
        ("no workspace claim", no_workspace),
        ("garbage", "not-a-token".to_string()),
    ];
    for (what, t) in cases {
        let r = get(&p, LIST, Some(&t), &[("x-workspace-id", "victim")]).await;
        assert_eq!(r.status, 401, "{what}: {}", r.text);
        assert!(
            r.header("www-authenticate").unwrap().starts_with("Bearer"),
            "{what}"
        );
        refused(&r, 401, "unauthorized");
    }
    // No token at all, and other schemes.
    for auth in [
        None,
        Some("Basic dmljdGltOnB3"),
        Some("Bearer"),
        Some("Token abc"),
    ] {
        let mut req = p.client.get(p.url(LIST)).header("x-workspace-id", "victim");
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        let r = Resp::from(req.send().await.unwrap()).await;
        refused(&r, 401, "unauthorized");
    }
    assert_eq!(p.origin.hits("/api/boards/b1/contacts"), hits);
}

/// An HS256 token whose HMAC key is the server's RSA *public* key: the
/// classic algorithm-confusion forgery. Also the reverse, and `alg: none`.
#[tokio::test]
async fn hs_rs_algorithm_confusion_is_refused() {
    let p = rs256_proxy();
    let good = rs256(&claims(json!("victim"), "alice"));
    let r = get(&p, LIST, Some(&good), &[]).await;
    assert_eq!((r.status, r.cache()), (200, "MISS"));
    assert_eq!(get(&p, LIST, Some(&good), &[]).await.cache(), "HIT");

    let public = std::fs::read(fixture("rsa-public.pem")).unwrap();
    let forged = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims(json!("victim"), "mallory"),
        &jsonwebtoken::EncodingKey::from_secret(&public),
    )
    .unwrap();
    refused(
        &get(&p, LIST, Some(&forged), &[]).await,
        401,
        "unauthorized",
    );
    // The public key as the HMAC secret, trimmed of its trailing newline too.
    let trimmed = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims(json!("victim"), "mallory"),
        &jsonwebtoken::EncodingKey::from_secret(String::from_utf8_lossy(&public).trim().as_bytes()),
    )
    .unwrap();
    refused(
        &get(&p, LIST, Some(&trimmed), &[]).await,
        401,
        "unauthorized",
    );
    // Signed by another RSA key.
    let other = std::fs::read(fixture("rsa2-private.pem")).unwrap();
    let other = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256),
        &claims(json!("victim"), "mallory"),
        &jsonwebtoken::EncodingKey::from_rsa_pem(&other).unwrap(),
    )
    .unwrap();
    refused(&get(&p, LIST, Some(&other), &[]).await, 401, "unauthorized");
    // An HS256-configured proxy refuses RS256 tokens.
    let hs = hs256_proxy("");
    refused(&get(&hs, LIST, Some(&good), &[]).await, 401, "unauthorized");
}

#[tokio::test]
async fn issuer_and_audience_are_checked() {
    let p = hs256_proxy("    issuer: https://auth.example\n    audience: tagcache");
    let ok = hs256(
        &json!({"exp": now() + 60, "iss": "https://auth.example", "aud": "tagcache", "workspace_id": "w1"}),
    );
    assert_eq!(get(&p, LIST, Some(&ok), &[]).await.status, 200);
    for claims in [
        json!({"exp": now() + 60, "iss": "https://evil.example", "aud": "tagcache", "workspace_id": "w1"}),
        json!({"exp": now() + 60, "aud": "tagcache", "workspace_id": "w1"}),
        json!({"exp": now() + 60, "iss": "https://auth.example", "aud": "other", "workspace_id": "w1"}),
        json!({"exp": now() + 60, "iss": "https://auth.example", "workspace_id": "w1"}),
    ] {
        let r = get(&p, LIST, Some(&hs256(&claims)), &[]).await;
        assert_eq!(r.status, 401, "{claims}");
    }
}

#[tokio::test]
async fn a_multi_workspace_token_acts_only_in_the_workspace_it_names() {
    let p = hs256_proxy("");
    let both = hs256(&claims(json!(["w1", "w2"]), "alice"));
    let a = get(&p, LIST, Some(&both), &[("x-workspace-id", "w1")]).await;
    let b = get(&p, LIST, Some(&both), &[("x-workspace-id", "w2")]).await;
    assert_eq!(
        (a.cache(), b.cache()),
        ("MISS", "MISS"),
        "one entry per workspace"
    );
    assert_eq!(b.json()["workspace"], "w2");
    // Naming none: cannot be keyed, so passed through uncached.
    let r = get(&p, LIST, Some(&both), &[]).await;
    assert_eq!((r.status, r.cache()), (200, "BYPASS"));
    assert!(r.header("cache-status").unwrap().contains("no-workspace"));
    // A workspace outside the claim.
    refused(
        &get(&p, LIST, Some(&both), &[("x-workspace-id", "victim")]).await,
        403,
        "forbidden",
    );
    // A w1-only token never reads the w2 entry.
    let w1 = token("w1", "bob");
    let r = get(&p, LIST, Some(&w1), &[("x-workspace-id", "w2")]).await;
    assert_eq!(r.status, 403);
    let r = get(&p, LIST, Some(&w1), &[]).await;
    assert_eq!(
        (r.cache(), r.json()["workspace"].as_str()),
        ("HIT", Some("w1"))
    );
}

#[tokio::test]
async fn a_user_header_must_be_the_tokens_user() {
    let p = hs256_proxy("");
    let mine = "/api/boards/b1/contacts?filter=assigned_to_me";
    let alice = token("w1", "alice");
    let r = get(&p, mine, Some(&alice), &[("x-user-id", "alice")]).await;
    assert_eq!((r.status, r.cache()), (200, "MISS"));
    let mallory = token("w1", "mallory");
    let r = get(&p, mine, Some(&mallory), &[("x-user-id", "alice")]).await;
    assert_eq!(r.status, 403);
    assert!(!r.text.contains("alice"));
}

#[tokio::test]
async fn on_invalid_pass_forwards_uncached_and_lets_the_origin_decide() {
    let p = hs256_proxy("    on_invalid: pass");
    victim_fills(&p, LIST).await;
    let hits = p.origin.hits("/api/boards/b1/contacts");
    let expired = hs256(&json!({"exp": now() - 600, "workspace_id": "victim"}));
    for t in [None, Some(expired.as_str()), Some("garbage")] {
        let r = get(&p, LIST, t, &[("x-origin-status", "401")]).await;
        assert_eq!(
            (r.status, r.cache()),
            (401, "BYPASS"),
            "the origin's answer, never the cache's"
        );
        assert!(r
            .header("cache-status")
            .unwrap()
            .contains("unauthenticated"));
    }
    assert_eq!(p.origin.hits("/api/boards/b1/contacts"), hits + 3);
    // A forged workspace is still refused outright.
    let attacker = token("attacker", "mallory");
    assert_eq!(
        get(&p, LIST, Some(&attacker), &[("x-workspace-id", "victim")])
            .await
            .status,
        403
    );
}

/// Non-UTF-8 bytes where identities are read.
#[tokio::test]
async fn non_utf8_identity_headers_are_refused() {
    let p = hs256_proxy("");
    victim_fills(&p, LIST).await;
    let t = token("attacker", "mallory");
    let req = |extra: &[u8]| {
        let mut r = format!(
            "GET {LIST} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer {t}\r\n"
        )
        .into_bytes();
        r.extend_from_slice(extra);
        r.extend_from_slice(b"\r\n");
        r
    };
    let (status, text) = raw(p.port, &req(b"X-Workspace-ID: vict\xffim\r\n"));
    assert_eq!(status, 403, "{text}");
    let (status, _) = raw(p.port, &req(b"X-User-ID: m\xe9llory\r\n"));
    assert_eq!(status, 403);
    let mut bad_auth =
        format!("GET {LIST} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n").into_bytes();
    bad_auth.extend_from_slice(b"Authorization: Bearer \xff\xfe.\x80.\x81\r\n\r\n");
    let (status, text) = raw(p.port, &bad_auth);
    assert_eq!(status, 401, "{text}");
    assert!(!text.contains("victim"));
}

/// In JWT mode the origin is told the identity the key was built from, even
/// when the client sent no identity headers, so its answer and the key agree.
#[tokio::test]
async fn the_origin_sees_the_verified_identity() {
    let p = hs256_proxy("");
    let alice = token("w1", "alice");
    let r = get(&p, "/item/who", Some(&alice), &[]).await;
    assert_eq!(r.cache(), "MISS");
    let body = r.json();
    assert_eq!(
        (body["workspace"].as_str(), body["user"].as_str()),
        (Some("w1"), Some("alice"))
    );
    let seen = p.origin.last_headers("/item/who");
    assert!(
        seen.contains(&("x-workspace-id".into(), "w1".into())),
        "{seen:?}"
    );
    // A multi-workspace token acting in the workspace it names.
    let both = hs256(&claims(json!(["w1", "w2"]), "bob"));
    let r = get(
        &p,
        "/api/cache-settings/workspace/w2/counts",
        Some(&both),
        &[],
    )
    .await;
    assert_eq!(r.json()["workspace"], "w2");
}
