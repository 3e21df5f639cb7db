//! Tests of the whole loader: YAML text in, config or diagnostics out.

use std::time::Duration;

use super::*;

const TOKEN: &str = "s3cr3t-admin-token-value";
const WEBHOOK_SECRET: &str = "whsec-do-not-print";

fn test_env(name: &str) -> Option<String> {
    match name {
        "TAGCACHE_ADMIN_TOKEN" => Some(TOKEN.to_string()),
        "WEBHOOK_SECRET" => Some(WEBHOOK_SECRET.to_string()),
        "ORIGIN" => Some("10.0.0.7:3000".to_string()),
        "ORIGIN_TLS" => Some("true".to_string()),
        _ => None,
    }
}

/// Test YAML is written flush left after an opening newline, so that line 1 is
/// the first line of text.
fn load(yaml: &str) -> Result<Loaded, ConfigError> {
    load_str(
        yaml.strip_prefix('\n').unwrap_or(yaml),
        "test.yaml",
        &test_env,
    )
}

fn loads(yaml: &str) -> Loaded {
    match load(yaml) {
        Ok(loaded) => loaded,
        Err(error) => panic!("expected the config to load, got:\n{error}"),
    }
}

/// Loads `yaml` and compares its errors, with their hints, with `expected`.
/// An expected line ending in `...` only has to be a prefix.
fn check(yaml: &str, expected: &[&str]) {
    super::test_support::assert_errors(load(yaml), expected, true);
}

const MINIMAL: &str = r#"
upstream: { address: "127.0.0.1:3000" }
"#;

/// The snippet of the product context that users copy; it must keep working.
const CONTEXT_SNIPPET: &str = r#"
listen: "0.0.0.0:8080"
upstream:
  address: "127.0.0.1:3000"
admin:
  listen: "127.0.0.1:9090"            # health, stats, metrics, purge, events
  token: "${TAGCACHE_ADMIN_TOKEN}"    # env var interpolation; Bearer token for purge/events
storage:
  memory:
    max_size: 256MiB
tenant:
  workspace: { header: X-Workspace-ID }
  user: { header: X-User-ID }
routes:
  - name: contact_list
    match: "GET /api/boards/{board_id}/contacts"
    ttl: 180s
    key:
      query: [page, pageSize, filter, search, assignedTo, sortBy, sortOrder, columnId]
      defaults: { page: "1", pageSize: "50", filter: all, sortBy: created_at, sortOrder: desc }
      per_user_when: { filter: [assigned_to_me] }
    bypass_when:
      - { query: pageSize, greater_than: 100 }
    tags:
      - "workspace:{workspace}"
      - "board:{workspace}:{board_id}"
      - "filter:{workspace}:{query.filter}"
  - name: contact_counts
    match: "GET /api/cache-settings/workspace/{workspace_id}/counts"
    ttl: 300s
    tags: ["counts:{workspace_id}"]
events:
  "contact:moved": ["board:{workspace_id}:{board_id}", "counts:{workspace_id}"]
  "contact:created": ["workspace:{workspace_id}", "counts:{workspace_id}"]
"#;

fn lit(s: &str) -> TemplatePart {
    TemplatePart::Literal(s.to_string())
}

fn var(s: &str) -> TemplatePart {
    TemplatePart::Var(s.to_string())
}

#[test]
fn context_snippet_loads() {
    let loaded = loads(CONTEXT_SNIPPET);
    let config = &loaded.config;
    assert_eq!(config.listen.to_string(), "0.0.0.0:8080");
    assert_eq!(config.upstream.address, "127.0.0.1:3000");
    assert_eq!(config.upstream.sni, "127.0.0.1");
    assert_eq!(config.admin.token.as_ref().map(Secret::expose), Some(TOKEN));
    assert_eq!(
        config.storage.memory.as_ref().map(|m| m.max_size),
        Some(256 << 20)
    );
    assert!(
        matches!(&config.tenant.workspace, Some(IdentitySource::Header(h)) if h == "x-workspace-id")
    );
    assert!(matches!(&config.tenant.user, Some(IdentitySource::Header(h)) if h == "x-user-id"));

    let list = &config.routes[0];
    assert_eq!(list.name, "contact_list");
    assert_eq!(list.method, RouteMethod::Get);
    assert_eq!(
        list.segments,
        vec![
            Segment::Literal("api".into()),
            Segment::Literal("boards".into()),
            Segment::Param("board_id".into()),
            Segment::Literal("contacts".into()),
        ]
    );
    assert_eq!(list.ttl, Duration::from_secs(180));
    assert_eq!(list.stale_while_revalidate, Duration::ZERO);
    assert_eq!(
        list.key.query,
        [
            "assignedTo",
            "columnId",
            "filter",
            "page",
            "pageSize",
            "search",
            "sortBy",
            "sortOrder"
        ]
    );
    assert_eq!(list.key.defaults.get("page").map(String::as_str), Some("1"));
    assert_eq!(
        list.key.defaults.get("filter").map(String::as_str),
        Some("all")
    );
    assert_eq!(list.key.per_user_when.len(), 1);
    assert_eq!(list.key.per_user_when[0].param, "filter");
    assert_eq!(list.key.per_user_when[0].values, ["assigned_to_me"]);
    assert!(!list.key.per_user);
    assert_eq!(list.unknown_query, UnknownQuery::Bypass);
    assert_eq!(list.bypass_when.len(), 1);
    assert_eq!(list.bypass_when[0].param, "pageSize");
    assert!(matches!(list.bypass_when[0].when, BypassCondition::GreaterThan(n) if n == 100.0));
    assert_eq!(
        list.tags[2].parts,
        vec![
            lit("filter:"),
            TemplatePart::Workspace,
            lit(":"),
            TemplatePart::Query("filter".into())
        ]
    );
    assert_eq!(list.statuses, [200]);
    assert!(list.honor_client_no_cache);

    let counts = &config.routes[1];
    assert_eq!(
        counts.tags[0].parts,
        vec![lit("counts:"), var("workspace_id")]
    );
    assert_eq!(
        config.events["contact:moved"][0].parts,
        vec![
            lit("board:"),
            var("workspace_id"),
            lit(":"),
            var("board_id")
        ]
    );
    assert_eq!(config.events.len(), 2);
}

#[test]
fn example_file_loads() {
    let source = include_str!("../../conf/tagcache.example.yaml");
    let loaded = match load_str(source, "conf/tagcache.example.yaml", &test_env) {
        Ok(loaded) => loaded,
        Err(error) => panic!("the example config must load:\n{error}"),
    };
    let config = &loaded.config;
    let names: Vec<&str> = config.routes.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "contact_list",
            "contact_counts",
            "enterprise_summary",
            "department_summary",
            "webhook_calls",
            "intent_analysis",
            "contact_details",
            "contact_avatar",
        ]
    );
    assert!(config.admin.listen.ip().is_loopback());
    assert_eq!(config.admin.token.as_ref().map(Secret::expose), Some(TOKEN));
    assert!(config.routes[4].key.per_user);
    assert_eq!(
        config.routes[6].tags[0].parts,
        vec![
            lit("contact:"),
            TemplatePart::Workspace,
            lit(":"),
            var("contact_id")
        ]
    );
    for event in [
        "contact:created",
        "contact:deleted",
        "contact:updated",
        "contact:moved",
        "contact:assigned",
        "contact:unassigned",
        "board:updated",
        "column:created",
        "column:deleted",
        "employee:created",
        "employee:updated",
        "employee:deleted",
    ] {
        assert!(config.events.contains_key(event), "missing event {event}");
    }
    // The only warning is the one about trusting identity headers.
    assert_eq!(loaded.warnings.len(), 1, "{:?}", loaded.warnings);
}

#[test]
fn example_file_needs_the_admin_token() {
    let source = include_str!("../../conf/tagcache.example.yaml");
    let result = load_str(source, "example.yaml", &|_| None);
    let errors: Vec<String> = result
        .err()
        .map(|e| {
            e.diagnostics
                .iter()
                .map(|d| super::test_support::render(d, true))
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].contains(": environment variable \"TAGCACHE_ADMIN_TOKEN\" is not set"));
}

#[test]
fn defaults() {
    let loaded = loads(MINIMAL);
    let c = &loaded.config;
    assert!(loaded.warnings.is_empty());
    assert_eq!(c.listen.to_string(), "0.0.0.0:8080");
    assert!(!c.upstream.tls);
    assert_eq!(c.upstream.sni, "127.0.0.1");
    assert_eq!(c.upstream.connect_timeout, Duration::from_secs(2));
    assert_eq!(c.upstream.read_timeout, Duration::from_secs(30));
    assert_eq!(c.upstream.write_timeout, Duration::from_secs(30));
    assert_eq!(c.upstream.idle_timeout, Duration::from_secs(60));
    assert_eq!(c.admin.listen.to_string(), "127.0.0.1:9090");
    assert!(c.admin.token.is_none());
    assert!(c.admin.webhook_secret.is_none());
    assert_eq!(c.admin.max_body, 1 << 20);
    let memory = c
        .storage
        .memory
        .as_ref()
        .map(|m| (m.max_size, m.max_object_size));
    assert_eq!(memory, Some((256 << 20, 8 << 20)));
    assert!(c.tenant.workspace.is_none() && c.tenant.user.is_none());
    assert!(c.routes.is_empty());
    assert!(c.events.is_empty());
    let headers: Vec<(&str, char)> = c
        .purge
        .tag_headers
        .iter()
        .map(|h| (h.name.as_str(), h.separator))
        .collect();
    assert_eq!(headers, [("surrogate-key", ' '), ("cache-tag", ',')]);
    assert_eq!(c.purge.legacy_path, "/purge/legacy");
    assert_eq!(c.purge.legacy_tags.len(), 1);
    assert_eq!(
        c.purge.legacy_tags[0].alternatives[0].source,
        "board:{workspace_id}:{board_id}"
    );
    assert!(c.server.threads >= 1);
    assert_eq!(c.server.grace_period, Duration::from_secs(10));
    assert_eq!(c.server.write_buffer, 32 << 10);
    assert!(c.coalescing.enabled);
    assert_eq!(c.coalescing.wait_timeout, Duration::from_secs(10));
    assert_eq!(c.coalescing.lock_lease, Duration::from_secs(1));
    assert!(!c.debug_headers);
    assert_eq!(c.limits.max_uri_len, 8192);
    assert_eq!(c.limits.max_query_params, 64);
}

#[test]
fn every_key_can_be_set() {
    let loaded = loads(
        r#"
listen: "[::]:8081"
upstream:
  address: "${ORIGIN}"
  tls: ${ORIGIN_TLS}
  sni: api.example.com
  connect_timeout: 500ms
  read_timeout: 1m
  write_timeout: 1m30s
  idle_timeout: 2h
admin:
  listen: "0.0.0.0:9091"
  token: "${TAGCACHE_ADMIN_TOKEN}"
  max_body: 64KiB
  webhook_secret: "${WEBHOOK_SECRET}"
storage:
  memory: { max_size: 1GB, max_object_size: 1024 }
tenant:
  user: { header: X-User-ID }
routes:
  - name: r
    match: "GET /"
    ttl: 1s
    stale_while_revalidate: 2s
    stale_if_error: 3s
    key: { query: [b, a, b], per_user: true }
    unknown_query: ignore
    bypass_when:
      - { query: a, less_than: 1.5 }
      - { query: a, equals: 7 }
      - { query: b, equals: [x, "y"] }
      - { query: b, present: true }
    statuses: [404, 200, 200]
    honor_client_no_cache: false
purge:
  tag_headers: [{ header: X-Tags, separator: "," }]
  legacy_path: /legacy
  legacy_tags: ["p:{pattern}", "f:{filter}"]
server: { threads: 3, grace_period: 1s, write_buffer: 8KiB }
coalescing: { enabled: false, wait_timeout: 250ms, lock_lease: 3s }
debug_headers: true
debug_headers_force: true
limits: { max_uri_len: 100, max_query_params: 5 }
"#,
    );
    let c = &loaded.config;
    assert_eq!(c.listen.to_string(), "[::]:8081");
    assert_eq!(c.upstream.address, "10.0.0.7:3000");
    assert!(c.upstream.tls);
    assert_eq!(c.upstream.sni, "api.example.com");
    assert_eq!(c.upstream.connect_timeout, Duration::from_millis(500));
    assert_eq!(c.upstream.write_timeout, Duration::from_secs(90));
    assert_eq!(c.upstream.idle_timeout, Duration::from_secs(7200));
    assert_eq!(c.admin.max_body, 64 << 10);
    assert_eq!(
        c.admin.webhook_secret.as_ref().map(Secret::expose),
        Some(WEBHOOK_SECRET)
    );
    assert_eq!(
        c.storage
            .memory
            .as_ref()
            .map(|m| (m.max_size, m.max_object_size)),
        Some((1_000_000_000, 1024))
    );
    let r = &c.routes[0];
    assert!(r.segments.is_empty());
    assert_eq!(r.key.query, ["a", "b"]);
    assert!(r.key.per_user);
    assert_eq!(r.unknown_query, UnknownQuery::Ignore);
    assert!(matches!(r.bypass_when[0].when, BypassCondition::LessThan(n) if n == 1.5));
    assert!(matches!(&r.bypass_when[1].when, BypassCondition::Equals(v) if v == &["7"]));
    assert!(matches!(&r.bypass_when[2].when, BypassCondition::Equals(v) if v == &["x", "y"]));
    assert!(matches!(r.bypass_when[3].when, BypassCondition::Present));
    assert_eq!(r.statuses, [200, 404]);
    assert!(!r.honor_client_no_cache);
    assert_eq!(c.purge.tag_headers[0].name.as_str(), "x-tags");
    assert_eq!(c.purge.legacy_path, "/legacy");
    assert_eq!(
        c.purge.legacy_tags[0].alternatives[0].parts,
        vec![lit("p:"), var("pattern")]
    );
    assert_eq!(c.server.threads, 3);
    assert_eq!(c.server.write_buffer, 8 << 10);
    assert!(!c.coalescing.enabled);
    assert_eq!(c.coalescing.lock_lease, Duration::from_secs(3));
    assert!(c.debug_headers);
    assert_eq!((c.limits.max_uri_len, c.limits.max_query_params), (100, 5));
    // A lone user header still draws the warning, in the singular.
    assert_eq!(loaded.warnings.len(), 1);
    assert!(loaded.warnings[0]
        .message
        .contains("the request header X-User-ID;"));
}

#[test]
fn unknown_keys_name_the_nearest_key() {
    check(
        r#"
lisen: "0.0.0.0:8080"
upstream:
  address: "127.0.0.1:3000"
  conect_timeout: 1s
tenant:
  workspace: { heder: X-Workspace-ID }
routes:
  - name: r
    match: "GET /a"
    tll: 10s
    key: { qurey: [a] }
    bypass_when:
      - { query: a, greater_then: 5 }
"#,
        &[
            r#"1:1: unknown key "lisen" at the top level | hint: did you mean "listen"?"#,
            r#"4:3: unknown key "conect_timeout" in upstream | hint: did you mean "connect_timeout"?"#,
            r#"6:16: unknown key "heder" in tenant identity | hint: did you mean "header"?"#,
            // The misspelled ttl is not reported a second time as missing.
            r#"10:5: unknown key "tll" in route "r" | hint: did you mean "ttl"?"#,
            r#"11:12: unknown key "qurey" in route key | hint: did you mean "query"?"#,
            r#"13:9: bypass_when rule on "a" has no condition..."#,
            r#"13:21: unknown key "greater_then" in bypass_when rule | hint: did you mean "greater_than"?"#,
        ],
    );
}

#[test]
fn unknown_key_without_a_near_one_lists_the_valid_keys() {
    check(
        r#"
upstream: { address: "127.0.0.1:3000" }
coalescing: { frobnicate: true }
"#,
        &[
            r#"2:15: unknown key "frobnicate" in coalescing | hint: valid keys in coalescing are: enabled, wait_timeout, across_instances, lock_lease"#,
        ],
    );
}

#[test]
fn wrong_types() {
    check(
        r#"
upstream:
  address: "127.0.0.1:3000"
  tls: "yes"
routes:
  - name: r
    match: "GET /a"
    ttl: [10s]
    statuses: 200
    tags: { a: b }
  - just a string
debug_headers: 1
limits: { max_uri_len: -1, max_query_params: many }
"#,
        &[
            r#"3:8: "tls" must be true or false, not a string"#,
            r#"7:10: "ttl" must be a string, not a list"#,
            r#"8:15: "statuses" must be a list, not a number"#,
            r#"9:11: "tags" must be a list, not a mapping"#,
            r#"10:5: each item of "routes" must be a mapping, not a string"#,
            r#"11:16: "debug_headers" must be true or false, not a number"#,
            r#"12:24: "max_uri_len" must be a whole number, 0 or more, not -1"#,
            r#"12:46: "max_query_params" must be a whole number, 0 or more, not a string"#,
        ],
    );
    check(
        "- a\n- b\n",
        &["1:1: the config file must be a mapping, not a list"],
    );
}

#[test]
fn missing_required_keys() {
    check(
        r#"
listen: "0.0.0.0:8080"
"#,
        &[
            r#"1:1: the config is missing required key "upstream" | hint: add upstream: { address: "127.0.0.1:3000" }"#,
        ],
    );
    check(
        "",
        &[r#"1:1: the config is missing required key "upstream"..."#],
    );
    check(
        r#"
upstream: { tls: true }
storage:
  memory: { max_object_size: 1MiB }
tenant:
  user: {}
routes:
  - name: r
  - ttl: 1s
    match: "GET /b"
    bypass_when: [{ greater_than: 1 }]
"#,
        &[
            r#"1:11: upstream is missing required key "address" | hint: add address: "127.0.0.1:3000""#,
            r#"3:11: storage.memory is missing required key "max_size" | hint: add max_size: 256MiB"#,
            r#"5:9: tenant.user is missing required key "header" | hint: add header: X-User-ID"#,
            r#"7:5: route "r" is missing required keys "match", "ttl" | hint: add match: "GET /api/boards/{board_id}/contacts" and ttl: 180s"#,
            r#"8:5: route #2 is missing required key "name" | hint: add name: contact_list"#,
            r#"10:19: bypass_when rule is missing required key "query" | hint: add query: pageSize"#,
        ],
    );
}

#[test]
fn bad_values() {
    check(
        r#"
listen: "localhost:8080"
upstream:
  address: "http://127.0.0.1:3000"
  read_timeout: 30
  idle_timeout: 1.5h
admin:
  max_body: 1MB!
storage:
  memory: { max_size: 256 megabytes }
routes:
  - name: r
    match: "GET /a"
    ttl: 0s
    stale_if_error: 10sec
    statuses: [200, 700]
server: { threads: 0, write_buffer: 2MiB }
"#,
        &[
            r#"1:9: invalid listen address "localhost:8080": expected IP:PORT | hint: write an IP address: "127.0.0.1" instead of "localhost""#,
            r#"3:12: invalid upstream address "http://127.0.0.1:3000": expected HOST:PORT | hint: write the address without "http"://..."#,
            r#"4:17: duration "30" has no unit | hint: write "30s" for seconds; units are ms, s, m, h and d, e.g. "180s", "10m" or "1h30m""#,
            r#"5:17: invalid duration "1.5h": expected whole numbers | hint: combine units instead of fractions, e.g. "1h30m" or "1500ms""#,
            r#"7:13: unknown size unit "MB!" in "1MB!" | hint: did you mean "MB"? units are B, KB, MB, GB, TB (powers of 1000) and KiB, MiB, GiB, TiB (powers of 1024)"#,
            r#"9:23: unknown size unit "megabytes" in "256 megabytes" | hint: units are B, KB..."#,
            r#"13:10: ttl must be longer than 0s"#,
            r#"14:21: unknown duration unit "sec" in "10sec" | hint: did you mean "10s"?..."#,
            r#"15:21: status 700 cannot be stored: statuses are from 200 to 599"#,
            r#"16:20: server.threads must be at least 1"#,
            r#"16:37: server.write_buffer must be between 1KiB and 1MiB | hint: every client connection holds one; 32KiB fits most cached answers"#,
        ],
    );
}

#[test]
fn environment_variables() {
    check(
        r#"
upstream:
  address: "${ORIGIN}"
  sni: "host-${MISSING_HOST}-${OTHER}"
admin:
  token: ${TAGCACHE_ADMIN_TOKN}
  webhook_secret: "${unclosed"
"#,
        &[
            r#"3:8: environment variables "MISSING_HOST", "OTHER" are not set | hint: set them before starting tagcache"#,
            r#"5:10: environment variable "TAGCACHE_ADMIN_TOKN" is not set | hint: set it before starting tagcache (export TAGCACHE_ADMIN_TOKN=...), or write "$${" for a literal "${""#,
            r#"6:19: unclosed "${" in string..."#,
        ],
    );
    // `$${` is a literal `${`, and `$` alone is kept.
    let loaded = loads(
        r#"
upstream:
  address: "127.0.0.1:3000"
  sni: "$${NOT_A_VAR}$"
events:
  "e": ["cost:$${x}"]
"#,
    );
    assert_eq!(loaded.config.upstream.sni, "${NOT_A_VAR}$");
    assert_eq!(
        loaded.config.events["e"][0].parts,
        vec![lit("cost:$"), var("x")]
    );
}

#[test]
fn templates_are_checked_against_their_route() {
    check(
        r#"
upstream: { address: "127.0.0.1:3000" }
tenant:
  workspace: { header: X-Workspace-ID }
routes:
  - name: list
    match: "GET /api/boards/{board_id}/contacts"
    ttl: 180s
    key: { query: [page, filter] }
    tags:
      - "board:{workspace}:{boardId}"
      - "filter:{workspace}:{query.filtr}"
      - "sort:{query.sortBy}"
      - "mine:{user}"
      - "f:{filter}"
      - "x:{nothing_like_it}"
      - "broken:{board_id"
"#,
        &[
            r#"10:9: unknown template variable "{boardId}" in route "list" | hint: did you mean "{board_id}"? this route can use {workspace}, {board_id}, {query.filter}, {query.page}"#,
            r#"11:9: "{query.filtr}" in route "list" names a parameter that is not in key.query | hint: did you mean "{query.filter}"? key.query is [filter, page]"#,
            r#"12:9: "{query.sortBy}" in route "list" names a parameter that is not in key.query | hint: add "sortBy" to key.query; it is [filter, page]"#,
            r#"13:9: "{user}" in route "list" needs the user identity, but tenant.user is not set | hint: add tenant: { user: { header: X-User-ID } }"#,
            r#"14:9: unknown template variable "{filter}" in route "list" | hint: "filter" is a query parameter: write "{query.filter}""#,
            r#"15:9: unknown template variable "{nothing_like_it}" in route "list" | hint: this route can use {workspace}, {board_id}, {query.filter}, {query.page}"#,
            r#"16:9: unclosed "{" in template "broken:{board_id" | hint: close the variable with "}", e.g. "{board_id}""#,
        ],
    );
    check(
        r#"
upstream: { address: "127.0.0.1:3000" }
routes:
  - { name: r, match: "GET /a", ttl: 1s, tags: ["w:{workspace}"] }
events:
  "contact:moved": ["board:{workspace_id}:{query.board_id}"]
purge:
  legacy_tags: ["b:{workspace}:{board}"]
"#,
        &[
            r#"3:49: "{workspace}" in route "r" needs the workspace identity, but tenant.workspace is not set | hint: add tenant: { workspace: { header: X-Workspace-ID } }"#,
            r#"5:21: event "contact:moved" cannot use "{query.board_id}": events have no query string | hint: event templates use fields of the event body, e.g. "{board_id}" or "{workspace_id}""#,
            r#"7:17: unknown legacy purge field "{workspace}" in purge.legacy_tags | hint: did you mean "workspace_id"? the legacy body has {workspace_id}, {board_id}, {filter}, {pattern}"#,
        ],
    );
}

#[test]
fn key_rules_must_use_allowlisted_params() {
    check(
        r#"
upstream: { address: "127.0.0.1:3000" }
routes:
  - name: list
    match: "GET /a"
    ttl: 1s
    key:
      query: [page, pageSize]
      defaults: { pagesize: 50, sort: name }
      per_user_when: { filter: [assigned_to_me] }
      per_user: true
    bypass_when:
      - { query: page_size, greater_than: 100 }
"#,
        &[
            r#"8:19: default "pagesize" is not in key.query of route "list" | hint: did you mean "pageSize"? key.query is [page, pageSize]"#,
            r#"8:33: default "sort" is not in key.query of route "list" | hint: add "sort" to key.query; key.query is [page, pageSize]"#,
            r#"9:22: key.per_user_when needs the user identity, but tenant.user is not set | hint: add tenant: { user: { header: X-User-ID } }"#,
            r#"9:24: per_user_when parameter "filter" is not in key.query of route "list" | hint: add "filter" to key.query; key.query is [page, pageSize]"#,
            r#"10:17: key.per_user needs the user identity, but tenant.user is not set | hint: add tenant: { user: { header: X-User-ID } }"#,
            r#"12:18: bypass_when parameter "page_size" is not in key.query of route "list" | hint: did you mean "pageSize"? key.query is [page, pageSize]"#,
        ],
    );
}

#[test]
fn duplicate_route_names() {
    check(
        r#"
upstream: { address: "127.0.0.1:3000" }
routes:
  - { name: list, match: "GET /a", ttl: 1s }
  - { name: other, match: "GET /b", ttl: 1s }
  - { name: list, match: "GET /c", ttl: 1s }
  - { name: "bad name", match: "GET /d", ttl: 1s }
"#,
        &[
            r#"5:13: duplicate route name "list" | hint: the first route named "list" is at line 3; route names must be unique"#,
            r#"6:13: route name "bad name" may only contain letters, digits, "_" and "-"..."#,
        ],
    );
}

#[test]
fn a_route_may_not_take_the_unmatched_metrics_label() {
    check(
        r#"
upstream: { address: "127.0.0.1:3000" }
routes:
  - { name: unmatched, match: "GET /a", ttl: 1s }
"#,
        &[
            r#"3:13: route name "unmatched" is taken: metrics count requests that match no route under it | hint: pick another name, e.g. "unmatched_pages""#,
        ],
    );
}

#[test]
fn bad_matches() {
    check(
        r#"
upstream: { address: "127.0.0.1:3000" }
routes:
  - { name: a, match: "POST /api/contacts", ttl: 1s }
  - { name: b, match: "/api/contacts", ttl: 1s }
  - { name: c, match: "GET api/contacts", ttl: 1s }
  - { name: d, match: "GET /api/{id}/x/{id}", ttl: 1s }
  - { name: e, match: "GET /api/{id", ttl: 1s }
  - { name: f, match: "GET /api//x", ttl: 1s }
"#,
        &[
            r#"3:23: only GET routes are cached, not "POST" | hint: requests that match no route are proxied untouched; remove this route"#,
            r#"4:23: match "/api/contacts" has no method | hint: write "GET /api/contacts""#,
            r#"5:23: path "api/contacts" must start with "/" | hint: write "/api/contacts""#,
            r#"6:23: path parameter "{id}" is used twice in "/api/{id}/x/{id}" | hint: give each parameter its own name"#,
            r#"7:23: invalid path segment "{id" in "/api/{id"..."#,
            r#"8:23: empty segment in path "/api//x" | hint: remove the doubled or trailing "/""#,
        ],
    );
}

#[test]
fn the_admin_listener_may_not_share_the_proxys_address() {
    check(
        r#"
listen: "127.0.0.1:8080"
upstream: { address: "127.0.0.1:3000" }
admin:
  listen: "127.0.0.1:8080"
"#,
        &[
            r#"4:11: admin.listen 127.0.0.1:8080 is the same address as listen | hint: give the admin listener another port, e.g. admin: { listen: "127.0.0.1:9090" }"#,
        ],
    );
    // The admin's default address, taken by the proxy: reported where the
    // proxy's address is set.
    check(
        r#"
listen: "0.0.0.0:9090"
upstream: { address: "127.0.0.1:3000" }
"#,
        &[
            r#"1:9: admin.listen 127.0.0.1:9090 is the same address as listen | hint: give the admin listener another port, e.g. admin: { listen: "127.0.0.1:9091" }"#,
        ],
    );
    loads(
        r#"
listen: "127.0.0.1:9091"
upstream: { address: "127.0.0.1:3000" }
admin: { listen: "127.0.0.1:9090" }
"#,
    );
}

#[test]
fn admin_listener_off_loopback_needs_a_token() {
    check(
        r#"
upstream: { address: "127.0.0.1:3000" }
admin:
  listen: "0.0.0.0:9090"
"#,
        &[
            r#"3:11: the admin listener is reachable from other hosts; set admin.token | hint: add token: "${TAGCACHE_ADMIN_TOKEN}" under admin, or listen on "127.0.0.1:9090""#,
        ],
    );
    // With a token it is fine; on loopback no token is needed.
    loads(
        r#"
upstream: { address: "127.0.0.1:3000" }
admin: { listen: "0.0.0.0:9090", token: "${TAGCACHE_ADMIN_TOKEN}" }
"#,
    );
    loads(
        r#"
upstream: { address: "127.0.0.1:3000" }
admin: { listen: "[::1]:9090" }
"#,
    );
    // A missing token variable is one error, not two.
    check(
        r#"
upstream: { address: "127.0.0.1:3000" }
admin: { listen: "0.0.0.0:9090", token: "${NOT_SET}" }
"#,
        &[r#"2:41: environment variable "NOT_SET" is not set..."#],
    );
}

#[test]
fn yaml_syntax_errors_are_one_diagnostic() {
    check(
        r#"
upstream:
  address: "127.0.0.1:3000
routes: []
"#,
        &["2:12: invalid YAML: invalid indentation in quoted scalar"],
    );
    check(
        r#"
upstream: { address: "127.0.0.1:3000" }
listen: "0.0.0.0:1"
listen: "0.0.0.0:2"
"#,
        &["3:1: duplicate key \"listen\" in mapping | hint: each key may appear once in a mapping; remove or merge one of them"],
    );
    check(
        "upstream:\n\taddress: x\n",
        &["2:2: invalid YAML: tabs disallowed within this context (block indentation) | hint: YAML is indented with spaces; this part of the file contains a tab"],
    );
    check(
        "upstream: { address: \"127.0.0.1:3000\" }\n---\nlisten: \"0.0.0.0:1\"\n",
        &["3:1: a config file holds one YAML document, but this is a second one | hint: remove the \"---\" line and merge the documents"],
    );
}

#[test]
fn five_problems_are_all_reported() {
    check(
        r#"
upstream:
  address: "127.0.0.1:3000"
  read_timeout: soon
routes:
  - name: list
    match: "DELETE /api/x"
    ttl: 180s
    tags: ["x:{nope}"]
storage:
  memory: { max_size: lots }
admin: { tokn: x }
"#,
        &[
            r#"3:17: invalid duration "soon": expected a number with a unit..."#,
            r#"6:12: only GET routes are cached, not "DELETE"..."#,
            r#"8:12: unknown template variable "{nope}" in route "list" | hint: this route has no variables"#,
            r#"10:23: invalid size "lots": expected a number of bytes with an optional unit..."#,
            r#"11:10: unknown key "tokn" in admin | hint: did you mean "token"?"#,
        ],
    );
}

#[test]
fn config_error_display() {
    let error = match load("\nupstream: {}\nlimits: { max_uri_len: 0 }\n") {
        Err(error) => error,
        Ok(_) => panic!("expected errors"),
    };
    assert_eq!(
        error.to_string(),
        "test.yaml:1:11: error: upstream is missing required key \"address\"\n  hint: add address: \"127.0.0.1:3000\"\n\
         test.yaml:2:24: error: limits.max_uri_len must be at least 1\n\
         2 errors"
    );
}

#[test]
fn secrets_never_appear() {
    // Loaded config: Debug redacts both secrets.
    let loaded = loads(
        r#"
upstream: { address: "127.0.0.1:3000" }
admin: { token: "${TAGCACHE_ADMIN_TOKEN}", webhook_secret: "${WEBHOOK_SECRET}" }
tenant: { workspace: { header: X-Workspace-ID } }
"#,
    );
    let debug = format!("{loaded:?}");
    assert!(
        !debug.contains(TOKEN) && !debug.contains(WEBHOOK_SECRET),
        "{debug}"
    );
    assert!(debug.contains("Secret(***)"));
    let shown: String = loaded.warnings.iter().map(ToString::to_string).collect();
    assert!(!shown.contains(TOKEN));

    // A file with problems around the secrets: no message, hint or Debug shows them.
    let sources = [
        "upstream: { address: \"127.0.0.1:3000\" }\nadmin: { token: [\"${TAGCACHE_ADMIN_TOKEN}\"] }\n",
        "upstream: { address: x }\nadmin: { token: \"${TAGCACHE_ADMIN_TOKEN}\", webhook_secret: \"${WEBHOOK_SECRET}\", listen: \"nope\" }\n",
        "upstream: { address: x }\nadmin: { token: \"Bearer ${TAGCACHE_ADMIN_TOKEN} ${NOT_SET}\" }\n",
        "upstream: { address: x }\nadmin: { token: \"${WEBHOOK_SECRET}\", tokenn: \"${TAGCACHE_ADMIN_TOKEN}\" }\n",
    ];
    for source in sources {
        let error = match load_str(source, "t.yaml", &test_env) {
            Err(error) => error,
            Ok(_) => panic!("expected errors for {source:?}"),
        };
        for shown in [error.to_string(), format!("{error:?}")] {
            assert!(
                !shown.contains(TOKEN) && !shown.contains(WEBHOOK_SECRET),
                "{shown}"
            );
        }
    }

    // An empty token (the variable is set but empty) is an error that shows nothing.
    let empty = load_str(
        "upstream: { address: \"127.0.0.1:3000\" }\nadmin: { token: \"${EMPTY}\" }\n",
        "t.yaml",
        &|name| (name == "EMPTY").then(String::new),
    );
    let errors: Vec<String> = empty
        .err()
        .map(|e| {
            e.diagnostics
                .iter()
                .map(|d| super::test_support::render(d, true))
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(errors.len(), 1);
    assert!(
        errors[0].starts_with("2:17: admin.token is empty"),
        "{errors:?}"
    );
}

#[test]
fn identity_headers_warn_once() {
    let loaded = loads(CONTEXT_SNIPPET);
    let warnings: Vec<String> = loaded
        .warnings
        .iter()
        .map(|d| super::test_support::render(d, true))
        .collect();
    assert_eq!(
        warnings,
        ["11:3: tenant identity is trusted from the request headers X-Workspace-ID and X-User-ID; \
          this is only safe behind a gateway that sets or overwrites them \
          | hint: make sure clients cannot reach tagcache without going through that gateway"]
    );
    assert_eq!(loaded.warnings[0].severity, Severity::Warning);
    assert!(loads(MINIMAL).warnings.is_empty());
}

#[test]
fn load_file_reads_files_and_names_io_errors() {
    let dir = std::env::temp_dir().join(format!("tagcache-config-test-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let path = dir.join("ok.yaml");
    assert!(std::fs::write(&path, MINIMAL).is_ok());
    assert!(load_file(&path).is_ok());
    let _ = std::fs::remove_dir_all(&dir);

    let missing = dir.join("missing.yaml");
    let error = match load_file(&missing) {
        Err(error) => error,
        Ok(_) => panic!("a missing file cannot load"),
    };
    assert_eq!(error.diagnostics.len(), 1);
    let d = &error.diagnostics[0];
    assert_eq!((d.line, d.col), (0, 0));
    let path_text = missing.display().to_string();
    assert!(d.message.contains(&path_text), "{}", d.message);
    assert!(d.message.contains("os error"), "{}", d.message);
    assert!(error
        .to_string()
        .starts_with(&format!("{path_text}: error: cannot read config file")));
}

#[test]
fn no_input_panics() {
    let odd = [
        "",
        "~",
        "null",
        "[]",
        "42",
        "\"just a string\"",
        ":",
        "{",
        "- - -",
        "? [a, b]\n: c\n",
        "upstream: !!int abc\n",
        "upstream: &a { address: x }\nlisten: *a\n",
        "routes: [[[[[]]]]]\n",
        "routes:\n  - { name: { a: b }, match: [], ttl: {}, key: [], tags: [[]], statuses: [[], {}], bypass_when: [x, [], {}] }\n",
        "routes:\n  - key: { defaults: [], per_user_when: { a: { b: c } } }\n    unknown_query: { ignore: 1 }\n",
        "events: [a]\n",
        "events: { [a]: [b], 1: [c], ~: x }\n",
        "server: { threads: 99999999999999999999999 }\n",
        "limits: { max_uri_len: 1.5 }\n",
        "routes:\n  - bypass_when: [{ query: a, greater_than: .nan, less_than: .inf }]\n",
        "upstream: { address: \"${\" }\n",
        "\u{feff}upstream: x\n",
        "!custom { upstream: { address: \"127.0.0.1:1\" } }\n",
    ];
    for source in odd {
        // Only that it returns; errors are expected.
        let _ = load_str(source, "odd.yaml", &test_env);
    }
    // Truncations of the example file, cut every few characters.
    let example = include_str!("../../conf/tagcache.example.yaml");
    for cut in (0..example.len())
        .step_by(7)
        .filter(|i| example.is_char_boundary(*i))
    {
        let _ = load_str(&example[..cut], "cut.yaml", &test_env);
    }
}

#[test]
fn event_templates_use_body_fields() {
    let loaded = loads(
        r#"
upstream: { address: "127.0.0.1:3000" }
events:
  "contact:updated": ["contact:{workspace}:{contact_id}", "plain"]
"#,
    );
    assert_eq!(
        loaded.config.events["contact:updated"][0].parts,
        vec![
            lit("contact:"),
            TemplatePart::Workspace,
            lit(":"),
            var("contact_id")
        ]
    );
    assert_eq!(
        loaded.config.events["contact:updated"][1].parts,
        vec![lit("plain")]
    );
}

#[test]
fn enums_are_plain_strings() {
    check(
        r#"
upstream: { address: "127.0.0.1:3000" }
routes:
  - { name: a, match: "GET /a", ttl: 1s, unknown_query: ignor }
  - { name: b, match: "GET /b", ttl: 1s, unknown_query: { ignore: 1 } }
"#,
        &[
            r#"3:57: "unknown_query" must be one of "bypass", "ignore", not "ignor" | hint: did you mean "ignore"?"#,
            r#"4:57: "unknown_query" must be one of "bypass", "ignore", not a mapping"#,
        ],
    );
}

#[test]
fn redis_tier_loads_with_its_defaults_and_hides_its_url() {
    let loaded = load_str(
        "upstream: { address: \"127.0.0.1:3000\" }\nstorage:\n  memory: { max_size: 64MiB }\n  redis: { url: \"${REDIS_URL}\" }\npurge: { consistency: sync }\n",
        "t.yaml",
        &|name| (name == "REDIS_URL").then(|| "redis://:hunter2@10.0.0.9:6379/2".to_string()),
    )
    .expect("loads");
    let c = &loaded.config;
    let r = c.storage.redis.as_ref().expect("redis tier");
    assert!(c.storage.memory.is_some());
    assert_eq!(r.prefix, "tagcache");
    assert_eq!(r.timeout, Duration::from_millis(25));
    assert_eq!(r.connect_timeout, Duration::from_secs(1));
    assert_eq!(r.compress_above, 4096);
    assert_eq!(r.max_object_size, 8 << 20);
    assert_eq!(r.breaker_failures, 5);
    assert_eq!(r.probe_interval, Duration::from_secs(1));
    assert_eq!(r.heartbeat, Duration::from_secs(1));
    assert!(matches!(&r.target, RedisTarget::Server(url) if url.expose().ends_with("/2")));
    assert_eq!(c.purge.consistency, Consistency::Sync);
    assert_eq!(c.purge.sync_timeout, Duration::from_secs(2));
    assert!(c.coalescing.across_instances);
    assert!(
        !format!("{loaded:?}").contains("hunter2"),
        "the URL is a secret"
    );

    // Redis alone, a cluster, and every key set.
    let loaded = loads(
        r#"
upstream: { address: "127.0.0.1:3000" }
storage:
  redis:
    cluster: ["10.0.0.1:7000", "rediss://10.0.0.2:7000"]
    prefix: tc-prod
    timeout: 10ms
    connect_timeout: 500ms
    compress_above: 1KiB
    max_object_size: 2MiB
    breaker: { failures: 2, probe_interval: 3s }
    heartbeat: 250ms
coalescing: { across_instances: false }
"#,
    );
    let s = &loaded.config.storage;
    assert!(s.memory.is_none());
    let r = s.redis.as_ref().expect("redis tier");
    assert!(matches!(&r.target, RedisTarget::Cluster(nodes) if nodes.len() == 2));
    assert_eq!(
        (
            r.prefix.as_str(),
            r.timeout,
            r.compress_above,
            r.max_object_size
        ),
        ("tc-prod", Duration::from_millis(10), 1024, 2 << 20)
    );
    assert_eq!(
        (r.breaker_failures, r.probe_interval),
        (2, Duration::from_secs(3))
    );
    assert_eq!(r.heartbeat, Duration::from_millis(250));
    assert!(!loaded.config.coalescing.across_instances);
}

#[test]
fn redis_tier_problems_are_all_reported_at_their_place() {
    check(
        r#"
upstream: { address: "127.0.0.1:3000" }
storage:
  redis:
    url: "http://example.com"
    prefix: "{tc}"
    timeout: 0s
    breaker: { failures: 0, probe: 1s }
    heartbeat: soon
purge: { consistency: eventually }
"#,
        &[
            r#"4:10: storage.redis.url is not a Redis URL | hint: e.g. url: "${REDIS_URL}" with REDIS_URL=redis://127.0.0.1:6379/0 (rediss:// for TLS, unix:///run/redis.sock for a local socket), or cluster: ["10.0.0.1:6379", ...]"#,
            r#"5:13: invalid storage.redis.prefix "{tc}" | hint: use 1 to 64 letters, digits, "_", "-", "." or ":", e.g. "tagcache-prod""#,
            "6:14: storage.redis.timeout must be longer than 0s",
            "7:26: storage.redis.breaker.failures must be at least 1",
            r#"7:29: unknown key "probe" in storage.redis.breaker | hint: valid keys in storage.redis.breaker are: failures, probe_interval"#,
            r#"8:16: invalid duration "soon"..."#,
            r#"9:23: "consistency" must be one of "async", "sync", not "eventually""#,
        ],
    );
    check(
        r#"
upstream: { address: "127.0.0.1:3000" }
storage:
  redis: { prefix: tc }
"#,
        &[r#"3:10: storage.redis is missing required key "url" | hint: add url: "${REDIS_URL}""#],
    );
    check(
        r#"
upstream: { address: "127.0.0.1:3000" }
storage:
  redis:
    url: "redis://127.0.0.1"
    cluster: ["10.0.0.1:7000", "no-port", "10.0.0.1:0"]
"#,
        &[
            r#"5:14: storage.redis has both url and cluster | hint: keep url for one server, or cluster for a Redis Cluster"#,
        ],
    );
    check(
        r#"
upstream: { address: "127.0.0.1:3000" }
storage:
  redis:
    cluster: ["10.0.0.1:7000", "no-port", "10.0.0.1:0"]
"#,
        &[
            r#"4:32: storage.redis.cluster node is not host:port or a Redis URL..."#,
            r#"4:43: storage.redis.cluster node is not host:port or a Redis URL..."#,
        ],
    );
    // Sync consistency without Redis is only a warning.
    let loaded = loads("upstream: { address: \"127.0.0.1:3000\" }\npurge: { consistency: sync }\n");
    assert_eq!(loaded.warnings.len(), 1);
    assert!(loaded.warnings[0]
        .message
        .contains("no effect without storage.redis"));
}

#[test]
fn freshness_origin_bounds_and_defaults() {
    let loaded = loads(
        r#"
upstream: { address: "127.0.0.1:3000" }
routes:
  - { name: a, match: "GET /a/{id}", freshness: origin }
  - { name: b, match: "GET /b/{id}", freshness: origin, max_ttl: 10m, default_ttl: 30s, statuses: [200] }
  - { name: c, match: "GET /c/{id}", ttl: 60s, freshness: config }
"#,
    );
    let r = &loaded.config.routes;
    assert_eq!(
        r[0].freshness,
        Freshness::Origin {
            max_ttl: Duration::from_secs(86_400),
            default_ttl: None
        }
    );
    assert_eq!(r[0].ttl, Duration::from_secs(86_400));
    assert_eq!(r[0].statuses, ORIGIN_STATUSES);
    assert_eq!(
        r[1].freshness,
        Freshness::Origin {
            max_ttl: Duration::from_secs(600),
            default_ttl: Some(Duration::from_secs(30))
        }
    );
    assert_eq!(r[1].statuses, [200]);
    assert_eq!(r[1].longest_life(), Duration::from_secs(1200));
    assert_eq!(r[2].freshness, Freshness::Config);
    assert_eq!(r[2].statuses, [200]);
}

#[test]
fn freshness_fields_belong_to_their_mode() {
    check(
        r#"
upstream: { address: "127.0.0.1:3000" }
routes:
  - { name: a, match: "GET /a/{id}", freshness: origin, ttl: 60s, max_ttl: 0s }
  - { name: b, match: "GET /b/{id}", ttl: 60s, max_ttl: 1h, default_ttl: 1m }
  - { name: c, match: "GET /c/{id}", freshness: sometimes }
"#,
        &[
            r#"3:62: ttl does not apply to route "a": its freshness comes from the origin | hint: use max_ttl to cap the origin's freshness, default_ttl for responses that carry none"#,
            "3:76: max_ttl must be longer than 0s",
            r#"4:57: max_ttl of route "b" applies only with freshness: origin | hint: add `freshness: origin`, or use ttl"#,
            r#"4:74: default_ttl of route "b" applies only with freshness: origin | hint: add `freshness: origin`, or use ttl"#,
            r#"5:5: route "c" is missing required key "ttl" | hint: add ttl: 180s"#,
            r#"5:49: "freshness" must be one of "config", "origin", not "sometimes""#,
        ],
    );
}
