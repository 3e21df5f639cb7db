//! What a write that passes through invalidates: the stored responses for
//! its target URI and for the `Location` and `Content-Location` it answers
//! with on the same host (RFC 9111 §4.4), and the tags of the `invalidate:`
//! rule it matches. The purge itself goes through `purge::writes`.

use std::borrow::Cow;
use std::sync::Arc;

use http::header;
use pingora_http::{RequestHeader, ResponseHeader};

use super::active::Active;
use super::classify::{identity, literal_target};
use super::{RequestCtx, TagCache};
use crate::config::{IdentitySource, Segment, WriteRule};
use crate::identity::{Outcome, Verified};
use crate::tags;

/// What a write that passed through invalidates, decided from its request
/// and the origin's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteInvalidation {
    /// The `match` of the `invalidate:` rule the write matched, if any.
    pub rule: Option<String>,
    /// What is purged.
    pub outcome: WriteOutcome,
}

/// Whether a write purges anything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteOutcome {
    /// The origin accepted the write: purge these tag hashes (the implicit
    /// tags of the keys of the URLs it touched, and its rule's tags).
    Purge(Vec<u64>),
    /// The origin answered with an error (4xx or 5xx): nothing is purged.
    Failed,
}

/// The identity a write carries: its workspace and user, as the routes'
/// keys read them.
struct WriteIdentity {
    workspace: Option<Arc<str>>,
    user: Option<Arc<str>>,
}

impl TagCache {
    /// What the answer `resp` to the unsafe request `req` invalidates, or
    /// `None` for a safe method or a write that touches no cached route and
    /// no `invalidate:` rule. Call once the origin's answer header is in,
    /// before it goes to the client (`ProxyHttp::upstream_response_filter`).
    ///
    /// A non-error answer (2xx or 3xx) invalidates, for the write's identity,
    /// the key of every route its target URI matches, and those of the
    /// `Location` and `Content-Location` URIs on the same host (relative ones
    /// resolved against the target). A 2xx also purges its rule's tags.
    pub fn write_invalidation(
        &self,
        req: &RequestHeader,
        resp: &ResponseHeader,
        ctx: &RequestCtx,
    ) -> Option<WriteInvalidation> {
        // A 1xx is not the answer yet (`100 Continue` to a POST).
        if req.method.is_safe() || resp.status.is_informational() || !literal_target(req) {
            return None;
        }
        let active = self.active_of(ctx);
        let config = &active.config;
        let path = req.uri.path();
        let rule = active
            .writes
            .find_where(path, |i| {
                config
                    .invalidate
                    .get(i)
                    .is_some_and(|r| r.method == req.method)
            })
            .and_then(|m| Some((config.invalidate.get(m.index)?, m.params)));
        let status = resp.status.as_u16();
        let label = rule.as_ref().map(|(r, _)| r.label.clone());
        if !(200..400).contains(&status) {
            if rule.is_none() && active.router.find(path).is_none() {
                return None;
            }
            return Some(WriteInvalidation {
                rule: label,
                outcome: WriteOutcome::Failed,
            });
        }
        let identity = self.write_identity(&active, req, rule.as_ref());
        let mut hashes = Vec::new();
        let target = req.uri.path_and_query().map_or(path, |pq| pq.as_str());
        self.url_hashes(&active, target, &identity, &mut hashes);
        let authority = authority_of(req);
        for name in [header::LOCATION, header::CONTENT_LOCATION] {
            for value in resp.headers.get_all(&name) {
                let Ok(reference) = value.to_str() else {
                    continue;
                };
                if let Some(url) = resolve(path, authority, reference) {
                    self.url_hashes(&active, &url, &identity, &mut hashes);
                }
            }
        }
        if let Some((rule, params)) = &rule {
            if (200..300).contains(&status) {
                rule_hashes(rule, params, &identity, &mut hashes);
            }
        }
        if hashes.is_empty() && rule.is_none() {
            return None;
        }
        hashes.sort_unstable();
        hashes.dedup();
        Some(WriteInvalidation {
            rule: label,
            outcome: WriteOutcome::Purge(hashes),
        })
    }

    /// The write's workspace and user: the headers as sent, or with
    /// `tenant.jwt` the verified token's (nothing when it does not verify).
    fn write_identity(
        &self,
        active: &Active,
        req: &RequestHeader,
        rule: Option<&(&WriteRule, Vec<Cow<'_, str>>)>,
    ) -> WriteIdentity {
        let tenant = &active.config.tenant;
        let Some(jwt) = &tenant.jwt else {
            let read = |s: &Option<IdentitySource>| {
                s.as_ref()
                    .and_then(|source| identity(req, source))
                    .map(Arc::from)
            };
            return WriteIdentity {
                workspace: read(&tenant.workspace),
                user: read(&tenant.user),
            };
        };
        // The workspace a path names must be one the token allows: from the
        // rule's match, else from the route the target matches.
        let path_workspace: Option<String> = match rule {
            Some((rule, params)) => param_named(&rule.segments, params, &jwt.workspace_param),
            None => active.router.find(req.uri.path()).and_then(|m| {
                let route = active.config.routes.get(m.index)?;
                param_named(&route.segments, &m.params, &jwt.workspace_param)
            }),
        };
        let outcome = match &active.auth {
            Some(auth) => auth.authenticate(req, path_workspace.as_deref()),
            None => return WriteIdentity::none(),
        };
        match outcome {
            Outcome::Verified(Verified { workspace, user }) => WriteIdentity { workspace, user },
            Outcome::Invalid(_) | Outcome::Forbidden(_) => WriteIdentity::none(),
        }
    }

    /// Adds the implicit tag of the key `url` (path and query) has under
    /// each route it matches, for `identity`: what a purge by URL purges.
    fn url_hashes(&self, active: &Active, url: &str, identity: &WriteIdentity, out: &mut Vec<u64>) {
        let Ok(mut req) = RequestHeader::build("GET", url.as_bytes(), None) else {
            return;
        };
        if !literal_target(&req) {
            return;
        }
        let config = &active.config;
        let tenant = &config.tenant;
        let jwt = tenant.jwt.is_some();
        for (source, value) in [
            (&tenant.workspace, &identity.workspace),
            (&tenant.user, &identity.user),
        ] {
            if let (Some(IdentitySource::Header(h)), Some(v), false) = (source, value, jwt) {
                if req.insert_header(h.clone(), v.as_ref()).is_err() {
                    return;
                }
            }
        }
        for found in active.router.find_all(req.uri.path()) {
            let Some(route) = config.routes.get(found.index) else {
                continue;
            };
            let mut ctx = RequestCtx::new();
            if jwt {
                ctx.verified = Some(Verified {
                    workspace: identity.workspace.clone(),
                    user: identity.user.clone(),
                });
            }
            if let Ok(primary) = self.classify(config, None, &req, route, &found.params, &mut ctx) {
                let hash = pingora_cache::key::hash_key(&primary);
                out.push(tags::hash(&tags::key_tag(&hash)));
            }
        }
    }
}

impl WriteIdentity {
    fn none() -> Self {
        WriteIdentity {
            workspace: None,
            user: None,
        }
    }
}

/// Adds the hashes of the rule's tags; a tag whose variable the write does
/// not carry (no workspace, say) is left out.
fn rule_hashes(
    rule: &WriteRule,
    params: &[Cow<'_, str>],
    identity: &WriteIdentity,
    out: &mut Vec<u64>,
) {
    let vars = RuleVars {
        rule,
        params,
        identity,
    };
    for template in &rule.tags {
        if let Ok(tag) = tags::render(template, &vars) {
            out.push(tags::hash(&tag));
        }
    }
}

struct RuleVars<'a> {
    rule: &'a WriteRule,
    params: &'a [Cow<'a, str>],
    identity: &'a WriteIdentity,
}

impl tags::Vars for RuleVars<'_> {
    fn workspace(&self) -> Option<&str> {
        self.identity.workspace.as_deref()
    }
    fn user(&self) -> Option<&str> {
        self.identity.user.as_deref()
    }
    fn var(&self, name: &str) -> Option<&str> {
        let mut params = self.params.iter();
        for seg in &self.rule.segments {
            match seg {
                Segment::Param(p) | Segment::Rest(p) => {
                    let value = params.next()?;
                    if p == name {
                        return Some(value.as_ref());
                    }
                }
                Segment::Literal(_) => {}
            }
        }
        None
    }
    fn query(&self, _name: &str) -> Option<&str> {
        None
    }
}

/// The value of the path parameter `name` of a pattern's match.
fn param_named(segments: &[Segment], params: &[Cow<'_, str>], name: &str) -> Option<String> {
    segments
        .iter()
        .filter(|s| !matches!(s, Segment::Literal(_)))
        .zip(params)
        .find(|(s, _)| matches!(s, Segment::Param(p) if p == name))
        .map(|(_, v)| v.to_string())
}

/// The authority the client addressed: `Host`, or the target's own.
fn authority_of(req: &RequestHeader) -> Option<&str> {
    req.headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| req.uri.authority().map(|a| a.as_str()))
}

/// Resolves a `Location` or `Content-Location` value against the request's
/// path (RFC 3986 §5.2), and returns its path and query when it is on the
/// request's host; `None` for another host, or a reference that is not
/// `http`/`https`.
fn resolve(base_path: &str, authority: Option<&str>, reference: &str) -> Option<String> {
    let reference = reference.trim();
    let reference = reference.split_once('#').map_or(reference, |(r, _)| r);
    let (path, query) = match reference.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (reference, None),
    };
    let scheme_end = path
        .find(':')
        .filter(|&i| !path[..i].contains('/') && i > 0);
    let path: Cow<'_, str> = if let Some(i) = scheme_end {
        let scheme = path[..i].to_ascii_lowercase();
        let default_port = match scheme.as_str() {
            "http" => "80",
            "https" => "443",
            _ => return None,
        };
        let rest = path[i + 1..].strip_prefix("//")?;
        let (host, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        if !same_authority(host, authority?, default_port) {
            return None;
        }
        Cow::Borrowed(if path.is_empty() { "/" } else { path })
    } else if let Some(rest) = path.strip_prefix("//") {
        // A network-path reference: the request's scheme, which only
        // changes which port is the default.
        let (host, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        let authority = authority?;
        if !same_authority(host, authority, "80") && !same_authority(host, authority, "443") {
            return None;
        }
        Cow::Borrowed(if path.is_empty() { "/" } else { path })
    } else if path.starts_with('/') {
        Cow::Borrowed(path)
    } else if path.is_empty() {
        Cow::Borrowed(base_path)
    } else {
        let dir = &base_path[..base_path.rfind('/').map_or(0, |i| i + 1)];
        Cow::Owned(format!("{dir}{path}"))
    };
    let mut url = remove_dot_segments(&path);
    if let Some(q) = query {
        url.push('?');
        url.push_str(q);
    }
    Some(url)
}

/// Whether `host` (from a reference) and `authority` (the request's) name
/// the same host and port, `default_port` standing for an absent one.
fn same_authority(host: &str, authority: &str, default_port: &str) -> bool {
    let normal = |a: &str| {
        let a = a.to_ascii_lowercase();
        match a.strip_suffix(&format!(":{default_port}")) {
            Some(bare) => bare.to_string(),
            None => a,
        }
    };
    // Userinfo in a reference names no other host, but is never ours.
    !host.contains('@') && !host.is_empty() && normal(host) == normal(authority)
}

/// RFC 3986 §5.2.4: removes `.` and `..` segments from a path.
fn remove_dot_segments(path: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    let segments: Vec<&str> = path.split('/').collect();
    let last = segments.len().saturating_sub(1);
    for (i, seg) in segments.iter().enumerate() {
        match *seg {
            "." => {
                if i == last {
                    out.push("");
                }
            }
            ".." => {
                if out.len() > 1 {
                    out.pop();
                }
                if i == last {
                    out.push("");
                }
            }
            s => out.push(s),
        }
    }
    let joined = out.join("/");
    if joined.starts_with('/') {
        joined
    } else {
        format!("/{joined}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(base: &str, reference: &str, expected: Option<&str>) {
        assert_eq!(
            resolve(base, Some("api.example.com"), reference).as_deref(),
            expected,
            "{reference:?} against {base:?}"
        );
    }

    /// RFC 9111 §4.4: only URIs on the request's host are invalidated;
    /// relative references are resolved against the target (RFC 3986 §5.2).
    #[test]
    fn references_resolve_on_the_same_host_only() {
        check(
            "/api/contacts",
            "/api/contacts/42",
            Some("/api/contacts/42"),
        );
        check(
            "/api/contacts",
            "/api/contacts/42?x=1#top",
            Some("/api/contacts/42?x=1"),
        );
        check("/api/contacts/", "42", Some("/api/contacts/42"));
        check("/api/contacts", "contacts/42", Some("/api/contacts/42"));
        check("/api/contacts/7", "../boards/b1", Some("/api/boards/b1"));
        check("/api/contacts/7", "./8", Some("/api/contacts/8"));
        check("/api/contacts/7", "?page=2", Some("/api/contacts/7?page=2"));
        check("/a/b", "/../../c", Some("/c"));
        check(
            "/a",
            "http://api.example.com/api/contacts/42",
            Some("/api/contacts/42"),
        );
        check("/a", "HTTP://API.example.com:80/x", Some("/x"));
        check("/a", "https://api.example.com:443/x", Some("/x"));
        check("/a", "https://api.example.com", Some("/"));
        check("/a", "//api.example.com/x", Some("/x"));
        check("/a", "http://other.example.com/api/contacts/42", None);
        check("/a", "http://api.example.com:8080/x", None);
        check("/a", "http://api.example.com@evil.example/x", None);
        check("/a", "//other.example.com/x", None);
        check("/a", "mailto:someone@example.com", None);
        check("/a", "ftp://api.example.com/x", None);
        assert_eq!(resolve("/a", None, "http://api.example.com/x"), None);
        assert_eq!(resolve("/a", None, "/x").as_deref(), Some("/x"));
    }
}
