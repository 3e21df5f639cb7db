//! Config tests for the security settings: `tenant.jwt`, `debug_headers`
//! on public listeners, unkeyed headers, `vary`, quotas and limits.

use std::time::Duration;

use http::HeaderName;

use super::*;

const JWT_SECRET: &str = "jwt-secret-0123456789abcdef-0123456789";

fn env(name: &str) -> Option<String> {
    match name {
        "JWT_SECRET" => Some(JWT_SECRET.to_string()),
        "SHORT_SECRET" => Some("short-secret-value".to_string()),
        "TAGCACHE_ADMIN_TOKEN" => Some("admin-token-do-not-print".to_string()),
        _ => None,
    }
}

fn fixtures() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/jwt")
}

/// Loads `yaml` as if it were the file `tests/fixtures/jwt/test.yaml`, so key
/// paths resolve against the fixtures.
fn load(yaml: &str) -> Result<Loaded, ConfigError> {
    let file = fixtures().join("test.yaml");
    load_str(
        yaml.strip_prefix('\n').unwrap_or(yaml),
        &file.display().to_string(),
        &env,
    )
}

/// The errors of `yaml` as `LINE:COL: MESSAGE`; an expected line ending in
/// `...` only has to be a prefix.
fn check(yaml: &str, expected: &[&str]) {
    super::test_support::assert_errors(load(yaml), expected, false);
}

fn loads(yaml: &str) -> Loaded {
    load(yaml).unwrap_or_else(|e| panic!("expected the config to load, got:\n{e}"))
}

#[test]
fn jwt_hs256_defaults() {
    let loaded = loads(
        r#"
upstream: { address: "127.0.0.1:3000" }
tenant:
  jwt:
    algorithms: HS256
    secret: "${JWT_SECRET}"
  workspace: { claim: workspace_id }
  user: { claim: sub }
"#,
    );
    let t = &loaded.config.tenant;
    let jwt = t.jwt.as_ref().unwrap();
    assert_eq!(jwt.algorithms, [jsonwebtoken::Algorithm::HS256]);
    assert!(matches!(&jwt.key, JwtKey::Secret(s) if s.expose() == JWT_SECRET));
    assert_eq!(jwt.leeway, Duration::from_secs(30));
    assert_eq!(jwt.on_invalid, OnInvalid::Reject);
    assert_eq!(
        (jwt.workspace_claim.as_str(), jwt.user_claim.as_deref()),
        ("workspace_id", Some("sub"))
    );
    assert_eq!(jwt.workspace_param, "workspace_id");
    assert!(jwt.issuer.is_empty() && jwt.audience.is_empty());
    // The headers that name the workspace and user default to the usual ones.
    assert!(matches!(&t.workspace, Some(IdentitySource::Header(h)) if h == "x-workspace-id"));
    assert!(matches!(&t.user, Some(IdentitySource::Header(h)) if h == "x-user-id"));
    // Identity is verified: no warning about trusting headers.
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    // The secret never shows in Debug.
    assert!(!format!("{:?}", loaded.config).contains(JWT_SECRET));
}

#[test]
fn jwt_every_key() {
    let loaded = loads(
        r#"
upstream: { address: "127.0.0.1:3000" }
tenant:
  jwt:
    algorithms: [RS256, PS256]
    jwks_file: jwks.json
    reload_interval: 5s
    issuer: https://auth.example.com/
    audience: [api, web]
    leeway: 10s
    on_invalid: pass
  workspace: { claim: workspaces, header: X-Tenant }
  workspace_param: tenant_id
"#,
    )
    .config;
    let jwt = loaded.tenant.jwt.as_ref().unwrap();
    assert_eq!(jwt.algorithms.len(), 2);
    match &jwt.key {
        JwtKey::Jwks {
            path,
            reload_interval,
            initial,
        } => {
            assert_eq!(path, &fixtures().join("jwks.json"));
            assert_eq!(*reload_interval, Duration::from_secs(5));
            assert!(!initial.is_empty());
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(jwt.issuer, ["https://auth.example.com/"]);
    assert_eq!(jwt.audience, ["api", "web"]);
    assert_eq!(jwt.leeway, Duration::from_secs(10));
    assert_eq!(jwt.on_invalid, OnInvalid::Pass);
    assert_eq!(jwt.workspace_param, "tenant_id");
    assert_eq!(jwt.user_claim, None);
    assert!(matches!(&loaded.tenant.workspace, Some(IdentitySource::Header(h)) if h == "x-tenant"));
    assert!(loaded.tenant.user.is_none());
}

#[test]
fn jwt_pem_keys() {
    for (alg, file) in [("RS256", "rsa-public.pem"), ("ES256", "ec-public.pem")] {
        let yaml = format!(
            "upstream: {{ address: \"127.0.0.1:3000\" }}\ntenant:\n  jwt: {{ algorithms: [{alg}], public_key_file: {file} }}\n  workspace: {{ claim: ws }}\n"
        );
        let c = loads(&yaml).config;
        assert!(
            matches!(c.tenant.jwt.unwrap().key, JwtKey::PublicKey { .. }),
            "{alg}"
        );
    }
}

#[test]
fn jwt_algorithms_are_checked() {
    check(
        r#"
upstream: { address: "127.0.0.1:3000" }
tenant:
  jwt: { algorithms: [none, HS265, RS256, HS256], secret: "${JWT_SECRET}" }
  workspace: { claim: w }
"#,
        &[
            "3:22: tenant.jwt.algorithms mixes key types",
            "3:23: \"none\" is never accepted: unsigned tokens would let anyone claim any workspace",
            "3:29: unknown JWT algorithm \"HS265\"",
        ],
    );
    check(
        r#"
upstream: { address: "127.0.0.1:3000" }
tenant:
  jwt: { secret: "${JWT_SECRET}" }
  workspace: { claim: w }
"#,
        &["3:8: tenant.jwt is missing required key \"algorithms\""],
    );
}

/// A secret only goes with HS*, a public key never does: the config closes
/// algorithm confusion before any token is seen.
#[test]
fn jwt_key_must_match_the_algorithms() {
    check(
        r#"
upstream: { address: "127.0.0.1:3000" }
tenant:
  jwt: { algorithms: [RS256], secret: "${JWT_SECRET}" }
  workspace: { claim: w }
"#,
        &["3:39: RS256 verifies with a public key, not a secret"],
    );
    check(
        r#"
upstream: { address: "127.0.0.1:3000" }
tenant:
  jwt: { algorithms: [HS256], public_key_file: rsa-public.pem }
  workspace: { claim: w }
"#,
        &["3:48: HS256 verifies with a shared secret, not a public key"],
    );
    check(
        r#"
upstream: { address: "127.0.0.1:3000" }
tenant:
  jwt: { algorithms: [RS256], public_key_file: ec-public.pem }
  workspace: { claim: w }
"#,
        &["3:48: ec-public.pem: not a PEM RSA public key"],
    );
    check(
        r#"
upstream: { address: "127.0.0.1:3000" }
tenant:
  jwt: { algorithms: [RS256], jwks_file: missing.json }
  workspace: { claim: w }
"#,
        &["3:42: cannot read ..."],
    );
    check(
        r#"
upstream: { address: "127.0.0.1:3000" }
tenant:
  jwt: { algorithms: [RS256] }
  workspace: { claim: w }
"#,
        &["3:8: tenant.jwt has no key"],
    );
    check(
        r#"
upstream: { address: "127.0.0.1:3000" }
tenant:
  jwt: { algorithms: [RS256], public_key_file: rsa-public.pem, jwks_file: jwks.json }
  workspace: { claim: w }
"#,
        &["3:8: tenant.jwt has more than one key (public_key_file, jwks_file)"],
    );
}

#[test]
fn short_hmac_secrets_are_refused_without_showing_them() {
    let err = load(
        r#"
upstream: { address: "127.0.0.1:3000" }
tenant:
  jwt: { algorithms: [HS512], secret: "${SHORT_SECRET}" }
  workspace: { claim: w }
"#,
    )
    .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("tenant.jwt.secret is 18 bytes; HS512 needs at least 64"),
        "{text}"
    );
    assert!(!text.contains("short-secret-value"), "{text}");
}

#[test]
fn identities_in_jwt_mode() {
    check(
        r#"
upstream: { address: "127.0.0.1:3000" }
tenant:
  jwt: { algorithms: [HS256], secret: "${JWT_SECRET}" }
  user: { header: X-User-ID }
"#,
        &[
            "3:3: tenant.jwt needs tenant.workspace to name the workspace claim",
            "4:9: tenant.user is missing required key \"claim\"",
        ],
    );
    check(
        r#"
upstream: { address: "127.0.0.1:3000" }
tenant:
  workspace: { header: X-Workspace-ID, claim: workspace_id }
  workspace_param: workspace_id
"#,
        &[
            "3:47: tenant.workspace.claim needs tenant.jwt",
            "4:20: tenant.workspace_param needs tenant.jwt",
        ],
    );
    check(
        r#"
upstream: { address: "127.0.0.1:3000" }
tenant:
  jwt: { algorithms: [HS256], secret: "${JWT_SECRET}", leeway: 1h, reload_interval: 1s, issuer: [] }
  workspace: { claim: w }
"#,
        &[
            "3:64: tenant.jwt.leeway is over 300s",
            "3:85: reload_interval only applies to jwks_file",
            "3:97: tenant.jwt.issuer has an empty value",
        ],
    );
}

#[test]
fn debug_headers_on_a_public_listener_need_force() {
    check(
        "upstream: { address: \"127.0.0.1:3000\" }\ndebug_headers: true\n",
        &["2:16: debug_headers exposes cache keys (workspaces, users, query) to every client, and listen 0.0.0.0:8080 is reachable from other hosts"],
    );
    loads("upstream: { address: \"127.0.0.1:3000\" }\ndebug_headers: true\ndebug_headers_force: true\n");
    loads("listen: \"127.0.0.1:8080\"\nupstream: { address: \"127.0.0.1:3000\" }\ndebug_headers: true\n");
    loads("upstream: { address: \"127.0.0.1:3000\" }\ndebug_headers: false\n");
}

#[test]
fn unkeyed_headers_and_vary() {
    let c = loads(
        r#"
upstream: { address: "127.0.0.1:3000" }
routes:
  - { name: a, match: "GET /a", ttl: 1s }
  - { name: b, match: "GET /b", ttl: 1s, unkeyed_headers: bypass, vary: [Accept-Language, accept-encoding] }
"#,
    )
    .config;
    assert_eq!(c.unkeyed_headers.len(), 10);
    assert!(c
        .unkeyed_headers
        .contains(&HeaderName::from_static("x-forwarded-host")));
    assert_eq!(c.routes[0].unkeyed_headers, UnkeyedAction::Strip);
    assert_eq!(c.routes[1].unkeyed_headers, UnkeyedAction::Bypass);
    assert!(c.routes[0].vary.is_empty());
    assert_eq!(
        c.routes[1].vary,
        [HeaderName::from_static("accept-language")]
    );

    let c = loads(
        r#"
upstream: { address: "127.0.0.1:3000" }
unkeyed_headers: bypass
unkeyed_header_names: [X-Debug, x-debug]
routes:
  - { name: a, match: "GET /a", ttl: 1s }
  - { name: b, match: "GET /b", ttl: 1s, unkeyed_headers: strip }
"#,
    )
    .config;
    assert_eq!(c.unkeyed_headers, [HeaderName::from_static("x-debug")]);
    assert_eq!(c.routes[0].unkeyed_headers, UnkeyedAction::Bypass);
    assert_eq!(c.routes[1].unkeyed_headers, UnkeyedAction::Strip);

    check(
        r#"
upstream: { address: "127.0.0.1:3000" }
tenant: { workspace: { header: X-Workspace-ID } }
routes:
  - { name: a, match: "GET /a", ttl: 1s, vary: [Authorization, Cookie, X-Workspace-ID, "bad header"] }
"#,
        &[
            "4:49: Authorization cannot be in vary of route \"a\"",
            "4:64: Cookie cannot be in vary of route \"a\"",
            "4:72: X-Workspace-ID cannot be in vary of route \"a\"",
            "4:88: invalid header name \"bad header\"",
        ],
    );
}

#[test]
fn quotas_and_limits() {
    let c = loads(
        r#"
upstream: { address: "127.0.0.1:3000" }
storage: { memory: { max_size: 64MiB, per_workspace_max: 8MiB } }
limits: { max_header_size: 16KiB }
"#,
    )
    .config;
    assert_eq!(c.storage.memory.unwrap().per_workspace_max, Some(8 << 20));
    assert_eq!(c.limits.max_header_size, 16 << 10);
    let c = loads("upstream: { address: \"127.0.0.1:3000\" }\n").config;
    assert_eq!(c.limits.max_header_size, 32 << 10);
    assert_eq!(c.storage.memory.unwrap().per_workspace_max, None);
    check(
        r#"
upstream: { address: "127.0.0.1:3000" }
storage: { memory: { max_size: 1MiB, per_workspace_max: 2MiB } }
"#,
        &["2:57: per_workspace_max (2097152 bytes) is larger than max_size (1048576 bytes)"],
    );
}

#[test]
fn jwt_example_file_loads() {
    let source = include_str!("../../conf/tagcache.jwt.example.yaml");
    let loaded =
        load_str(source, "conf/tagcache.jwt.example.yaml", &env).unwrap_or_else(|e| panic!("{e}"));
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    let c = loaded.config;
    let jwt = c.tenant.jwt.as_ref().unwrap();
    assert_eq!(
        (jwt.workspace_claim.as_str(), jwt.user_claim.as_deref()),
        ("workspace_id", Some("sub"))
    );
    assert_eq!(c.storage.memory.unwrap().per_workspace_max, Some(32 << 20));
    assert!(c
        .routes
        .iter()
        .all(|r| r.unkeyed_headers == UnkeyedAction::Strip));
    // Without the secret in the environment it does not load, and says which variable.
    let err = load_str(source, "x.yaml", &|n| {
        (n == "TAGCACHE_ADMIN_TOKEN").then(|| "t".into())
    })
    .unwrap_err();
    assert!(err.to_string().contains("JWT_SECRET"), "{err}");
}
