//! Tags: rendering tag templates and hashing tag names.
//!
//! Every stored entry carries the hashes of its tags: the route's templates,
//! the tags the origin sent (namespaced by workspace) and implicit ones (its
//! workspace, its route, its own key). A purge names tags; the purge registry
//! compares generations by hash. Hashes use fixed seeds so that every
//! instance, and Redis, agree on them; a collision can only cause a spurious
//! purge, never a stale hit.

use std::hash::{BuildHasher, Hasher};

use crate::config::{Template, TemplatePart};

/// Fixed-seed hasher shared by every instance.
fn hasher() -> ahash::AHasher {
    // Seeds are arbitrary constants; changing them invalidates stored tags.
    ahash::RandomState::with_seeds(
        0x7461_6763_6163_6865,
        0x2d74_6167_732d_7631,
        0x9e37_79b9_7f4a_7c15,
        0xc2b2_ae3d_27d4_eb4f,
    )
    .build_hasher()
}

/// Hash of a tag name.
pub fn hash(tag: &str) -> u64 {
    let mut h = hasher();
    h.write(tag.as_bytes());
    h.finish()
}

/// Implicit tag every entry of a workspace carries.
pub fn workspace_tag(workspace: &str) -> String {
    format!("tagcache:workspace:{workspace}")
}

/// Implicit tag every entry of a route carries.
pub fn route_tag(route: &str) -> String {
    format!("tagcache:route:{route}")
}

/// Implicit tag of one cache key (purge by URL).
pub fn key_tag(primary_hash: &[u8]) -> String {
    let mut s = String::with_capacity(14 + primary_hash.len() * 2);
    s.push_str("tagcache:key:");
    for b in primary_hash {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

/// Namespaces a tag sent by the origin with the request's workspace, so that
/// one tenant's origin response can never tag another tenant's entries.
pub fn origin_tag(workspace: Option<&str>, tag: &str) -> String {
    match workspace {
        Some(w) => format!("{w}:{tag}"),
        None => tag.to_string(),
    }
}

/// Values a template can draw on.
pub trait Vars {
    /// `{workspace}`.
    fn workspace(&self) -> Option<&str>;
    /// `{user}`.
    fn user(&self) -> Option<&str>;
    /// `{name}`: a path param or body field.
    fn var(&self, name: &str) -> Option<&str>;
    /// `{query.name}`.
    fn query(&self, name: &str) -> Option<&str>;
}

/// Renders a template.
///
/// # Errors
/// Returns the source text of the first placeholder that has no value.
pub fn render(template: &Template, vars: &dyn Vars) -> Result<String, String> {
    let mut out = String::with_capacity(template.source.len() + 16);
    for part in &template.parts {
        let v = match part {
            TemplatePart::Literal(s) => Some(s.as_str()),
            TemplatePart::Workspace => vars.workspace(),
            TemplatePart::User => vars.user(),
            TemplatePart::Var(name) => vars.var(name),
            TemplatePart::Query(name) => vars.query(name),
        };
        match v {
            Some(v) => out.push_str(v),
            None => return Err(placeholder(part)),
        }
    }
    Ok(out)
}

fn placeholder(part: &TemplatePart) -> String {
    match part {
        TemplatePart::Literal(s) => s.clone(),
        TemplatePart::Workspace => "workspace".into(),
        TemplatePart::User => "user".into(),
        TemplatePart::Var(n) => n.clone(),
        TemplatePart::Query(n) => format!("query.{n}"),
    }
}

/// Splits an origin tag header value (`Surrogate-Key: a b`, `Cache-Tag: a,b`).
pub fn split_header(value: &str, separator: char) -> impl Iterator<Item = &str> {
    value
        .split(separator)
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    struct V;
    impl Vars for V {
        fn workspace(&self) -> Option<&str> {
            Some("w1")
        }
        fn user(&self) -> Option<&str> {
            None
        }
        fn var(&self, name: &str) -> Option<&str> {
            (name == "board_id").then_some("b1")
        }
        fn query(&self, name: &str) -> Option<&str> {
            (name == "filter").then_some("all")
        }
    }

    fn t(parts: Vec<TemplatePart>) -> Template {
        Template {
            source: "t".into(),
            parts,
        }
    }

    #[test]
    fn renders_and_reports_missing() {
        use TemplatePart::*;
        let tpl = t(vec![
            Literal("board:".into()),
            Workspace,
            Literal(":".into()),
            Var("board_id".into()),
            Literal(":".into()),
            Query("filter".into()),
        ]);
        assert_eq!(render(&tpl, &V).as_deref(), Ok("board:w1:b1:all"));
        assert_eq!(render(&t(vec![User]), &V), Err("user".to_string()));
        assert_eq!(render(&t(vec![Var("x".into())]), &V), Err("x".to_string()));
    }

    #[test]
    fn hashing_is_stable_and_distinct() {
        assert_eq!(hash("board:w1:b1"), hash("board:w1:b1"));
        assert_ne!(hash("board:w1:b1"), hash("board:w1:b2"));
        assert_ne!(origin_tag(Some("w1"), "x"), origin_tag(Some("w2"), "x"));
    }

    #[test]
    fn splits_headers() {
        assert_eq!(split_header(" a  b ", ' ').collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(
            split_header("a, b,,c", ',').collect::<Vec<_>>(),
            ["a", "b", "c"]
        );
    }
}
