//! `routes`: matches, keys, tags, bypass rules and `vary`, checked against
//! what each route may refer to; and `unkeyed_header_names`.

use super::*;

impl Cx<'_> {
    pub(super) fn unkeyed_header_names(
        &mut self,
        raw: Option<Spanned<Vec<Spanned<String>>>>,
    ) -> Vec<HeaderName> {
        let Some(list) = raw else {
            return defaults::UNKEYED_HEADER_NAMES
                .iter()
                .map(|h| HeaderName::from_static(h))
                .collect();
        };
        let mut out: Vec<HeaderName> = list
            .value
            .iter()
            .filter_map(|h| self.header_name(h))
            .collect();
        out.sort_by(|a, b| a.as_str().cmp(b.as_str()));
        out.dedup();
        out
    }

    pub(super) fn route(
        &mut self,
        index: usize,
        raw: Spanned<raw::Route>,
        tenant: &Tenant,
        unkeyed_default: UnkeyedAction,
        seen_names: &mut HashMap<String, Pos>,
    ) -> Route {
        let Spanned { value: raw, pos } = raw;
        let label = match &raw.name {
            Some(name) if !name.value.is_empty() => format!("route {:?}", name.value),
            _ => format!("route #{}", index + 1),
        };
        self.missing_keys(
            pos,
            &label,
            &[
                ("name", raw.name.is_some(), "name: contact_list"),
                (
                    "match",
                    raw.match_.is_some(),
                    "match: \"GET /api/boards/{board_id}/contacts\"",
                ),
                (
                    "ttl",
                    raw.ttl.is_some() || raw.freshness == Some(raw::Freshness::Origin),
                    "ttl: 180s",
                ),
            ],
        );

        let name = match raw.name {
            Some(field) => self.route_name(field, seen_names),
            None => String::new(),
        };
        let (method, segments) = match &raw.match_ {
            Some(field) => match parse_match(&field.value) {
                Ok(parsed) => parsed,
                Err((message, hint)) => {
                    self.error(field.pos, message, hint);
                    (RouteMethod::Get, Vec::new())
                }
            },
            None => (RouteMethod::Get, Vec::new()),
        };
        // `{*rest}` is keyed, but is no template variable.
        let params: Vec<String> = segments
            .iter()
            .filter_map(|s| match s {
                Segment::Param(p) => Some(p.clone()),
                Segment::Literal(_) | Segment::Rest(_) => None,
            })
            .collect();

        let (ttl, freshness) = self.freshness(
            &freshness::FreshnessFields {
                freshness: raw.freshness,
                ttl: raw.ttl.as_ref(),
                max_ttl: raw.max_ttl.as_ref(),
                default_ttl: raw.default_ttl.as_ref(),
            },
            &label,
        );
        let stale_while_revalidate = self.duration(
            raw.stale_while_revalidate.as_ref(),
            defaults::ROUTE_STALE_WHILE_REVALIDATE,
        );
        let stale_if_error =
            self.duration(raw.stale_if_error.as_ref(), defaults::ROUTE_STALE_IF_ERROR);

        let key_pos = raw.key.as_ref().map(|k| k.pos);
        let key = raw.key.map(|k| k.value).unwrap_or_default();
        // When key.query was unusable or misspelled, checks against it would only
        // repeat that error.
        let query_usable = match &key.query {
            Some(q) => !self.report.is_poisoned(q.pos),
            None => key_pos.is_none_or(|pos| !self.report.is_misspelled(pos, "query")),
        };
        let mut query_all = false;
        let mut query: Vec<String> = Vec::new();
        match key.query.as_ref().map(|q| (&q.value, q.pos)) {
            Some((raw::QueryKeys::Names(names), _)) => {
                for name in names {
                    if name.value.trim().is_empty() {
                        self.error(
                            name.pos,
                            format!("empty query parameter name in key.query of {label}"),
                            None,
                        );
                    }
                    query.push(name.value.trim().to_string());
                }
            }
            Some((raw::QueryKeys::Word(word), _)) if word.trim() == "all" => query_all = true,
            Some((raw::QueryKeys::Word(word), pos)) => self.error(
                pos,
                format!(
                    "key.query of {label} is {word:?}: expected a list of parameter names, or all"
                ),
                Some(
                    "e.g. query: [page, pageSize], or query: all to key every parameter"
                        .to_string(),
                ),
            ),
            None => {}
        }
        query.retain(|q| !q.is_empty());
        query.sort();
        query.dedup();
        let scope = RouteScope {
            label: &label,
            params: &params,
            query: &query,
            query_all,
            query_usable,
            tenant,
        };

        let mut defaults = std::collections::BTreeMap::new();
        for (param, value) in key.defaults.0 {
            if self.check_in_query(&scope, &param, "default") {
                defaults.insert(param.value, value.value);
            }
        }

        let mut per_user_when = Vec::new();
        if let Some(rules) = key.per_user_when {
            if !rules.value.0.is_empty() {
                self.require_user(&scope, rules.pos, "key.per_user_when");
            }
            for (param, values) in rules.value.0 {
                if !self.check_in_query(&scope, &param, "per_user_when parameter") {
                    continue;
                }
                if values.0.is_empty() {
                    self.error(
                        param.pos,
                        format!("per_user_when {:?} lists no values", param.value),
                        Some(format!("e.g. {}: [assigned_to_me]", param.value)),
                    );
                }
                per_user_when.push(PerUserRule {
                    param: param.value,
                    values: values.0.into_iter().map(|v| v.value).collect(),
                });
            }
        }
        let per_user = match key.per_user {
            Some(field) if field.value => {
                self.require_user(&scope, field.pos, "key.per_user");
                true
            }
            Some(_) => false,
            None => defaults::PER_USER,
        };

        let bypass_when = raw
            .bypass_when
            .into_iter()
            .filter_map(|rule| self.bypass_rule(&scope, rule))
            .collect();
        let tags = raw
            .tags
            .iter()
            .filter_map(|source| self.route_template(&scope, source))
            .collect();
        let statuses = match (&freshness, &raw.statuses) {
            (crate::config::Freshness::Origin { .. }, None) => {
                defaults::ORIGIN_ROUTE_STATUSES.to_vec()
            }
            _ => self.statuses(raw.statuses, &label),
        };
        let vary = self.vary(raw.vary, &scope);

        let mut route = Route {
            name,
            method,
            segments,
            ttl,
            freshness,
            stale_while_revalidate,
            stale_if_error,
            key: KeySpec {
                query,
                query_all,
                defaults,
                per_user_when,
                per_user,
            },
            unknown_query: match raw.unknown_query {
                Some(raw::UnknownQuery::Ignore) => UnknownQuery::Ignore,
                Some(raw::UnknownQuery::Bypass) => UnknownQuery::Bypass,
                None => defaults::UNKNOWN_QUERY,
            },
            bypass_when,
            tags,
            statuses,
            honor_client_no_cache: raw
                .honor_client_no_cache
                .unwrap_or(defaults::HONOR_CLIENT_NO_CACHE),
            unkeyed_headers: unkeyed_action(raw.unkeyed_headers).unwrap_or(unkeyed_default),
            vary,
            key_fingerprint: [0; 8],
        };
        route.key_fingerprint = route.key_definition(tenant);
        route
    }

    /// `route.vary`: header names; identity headers are refused, since the
    /// key already holds the verified (or trusted) identity.
    fn vary(
        &mut self,
        raw: Option<Spanned<Vec<Spanned<String>>>>,
        scope: &RouteScope<'_>,
    ) -> Vec<HeaderName> {
        let Some(list) = raw else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for field in &list.value {
            let Some(name) = self.header_name(field) else {
                continue;
            };
            let identity = |s: &Option<IdentitySource>| matches!(s, Some(IdentitySource::Header(h)) if *h == name);
            if name == http::header::AUTHORIZATION
                || name == http::header::COOKIE
                || identity(&scope.tenant.workspace)
                || identity(&scope.tenant.user)
            {
                self.error(
                    field.pos,
                    format!("{} cannot be in vary of {}", field.value.trim(), scope.label),
                    Some("responses that depend on who asks are keyed per workspace, or per user with key.per_user; a response varying on credentials is never stored".to_string()),
                );
                continue;
            }
            if name != http::header::ACCEPT_ENCODING && !out.contains(&name) {
                out.push(name);
            }
        }
        out
    }

    fn route_name(&mut self, field: Spanned<String>, seen: &mut HashMap<String, Pos>) -> String {
        let name = field.value;
        if name.is_empty() {
            self.error(field.pos, "route name is empty", None);
        } else if !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            self.error(
                field.pos,
                format!("route name {name:?} may only contain letters, digits, \"_\" and \"-\""),
                Some(
                    "route names appear in cache keys and metrics, e.g. \"contact_list\""
                        .to_string(),
                ),
            );
        } else if name == crate::config::UNMATCHED_ROUTE {
            self.error(
                field.pos,
                format!("route name {name:?} is taken: metrics count requests that match no route under it"),
                Some("pick another name, e.g. \"unmatched_pages\"".to_string()),
            );
        } else if let Some(first) = seen.get(&name) {
            self.error(
                field.pos,
                format!("duplicate route name {name:?}"),
                Some(format!(
                    "the first route named {name:?} is at line {}; route names must be unique",
                    first.line
                )),
            );
        } else {
            seen.insert(name.clone(), field.pos);
        }
        name
    }

    /// Whether `param` is in `key.query`; reports it if not.
    fn check_in_query(
        &mut self,
        scope: &RouteScope<'_>,
        param: &Spanned<String>,
        what: &str,
    ) -> bool {
        if scope.query_all || scope.query.contains(&param.value) {
            return true;
        }
        if scope.query_usable {
            self.error(
                param.pos,
                format!(
                    "{what} {:?} is not in key.query of {}",
                    param.value, scope.label
                ),
                Some(scope.query_hint(&param.value)),
            );
        }
        false
    }

    fn require_user(&mut self, scope: &RouteScope<'_>, pos: Pos, what: &str) {
        if scope.tenant.user.is_none() {
            self.error(
                pos,
                format!("{what} needs the user identity, but tenant.user is not set"),
                Some("add tenant: { user: { header: X-User-ID } }".to_string()),
            );
        }
    }

    fn bypass_rule(
        &mut self,
        scope: &RouteScope<'_>,
        rule: Spanned<raw::BypassRule>,
    ) -> Option<BypassRule> {
        let Spanned { value: rule, pos } = rule;
        let mut conditions: Vec<(&str, Pos, BypassCondition)> = Vec::new();
        if let Some(n) = &rule.greater_than {
            conditions.push(("greater_than", n.pos, BypassCondition::GreaterThan(n.value)));
        }
        if let Some(n) = &rule.less_than {
            conditions.push(("less_than", n.pos, BypassCondition::LessThan(n.value)));
        }
        if let Some(Spanned {
            value: values,
            pos: at,
        }) = rule.equals
        {
            let values: Vec<String> = values.0.into_iter().map(|v| v.value).collect();
            if values.is_empty() {
                self.error(
                    at,
                    "equals lists no values",
                    Some("e.g. equals: [archived, closed]".to_string()),
                );
            }
            conditions.push(("equals", at, BypassCondition::Equals(values)));
        }
        if let Some(present) = &rule.present {
            if !present.value {
                self.error(
                    present.pos,
                    "present: false never bypasses",
                    Some("write present: true, or remove the rule".to_string()),
                );
            }
            conditions.push(("present", present.pos, BypassCondition::Present));
        }
        for (name, at, condition) in &conditions {
            if let BypassCondition::GreaterThan(n) | BypassCondition::LessThan(n) = condition {
                if !n.is_finite() {
                    self.error(*at, format!("{name} must be a finite number"), None);
                }
            }
        }

        let Some(query) = rule.query else {
            self.missing_keys(
                pos,
                "bypass_when rule",
                &[("query", false, "query: pageSize")],
            );
            return None;
        };
        let in_query = self.check_in_query(scope, &query, "bypass_when parameter");
        let names: Vec<&str> = conditions.iter().map(|(name, _, _)| *name).collect();
        match conditions.len() {
            0 => {
                self.error(
                    pos,
                    format!("bypass_when rule on {:?} has no condition", query.value),
                    Some("add one of greater_than, less_than, equals or present".to_string()),
                );
                None
            }
            1 if in_query => conditions.pop().map(|(_, _, when)| BypassRule {
                param: query.value,
                when,
            }),
            1 => None,
            _ => {
                self.error(
                    pos,
                    format!(
                        "bypass_when rule on {:?} has more than one condition ({})",
                        query.value,
                        names.join(", ")
                    ),
                    Some(
                        "write one rule per condition; a request bypasses when any rule matches"
                            .to_string(),
                    ),
                );
                None
            }
        }
    }

    fn statuses(&mut self, raw: Option<Spanned<Vec<Spanned<i64>>>>, label: &str) -> Vec<u16> {
        let Some(Spanned { value, pos }) = raw else {
            return defaults::ROUTE_STATUSES.to_vec();
        };
        if value.is_empty() {
            self.error(
                pos,
                format!("statuses of {label} is empty: nothing would be stored"),
                Some(format!(
                    "remove it for the default {:?}",
                    defaults::ROUTE_STATUSES
                )),
            );
            return defaults::ROUTE_STATUSES.to_vec();
        }
        let mut statuses = Vec::new();
        for status in value {
            if let Some(code) = u16::try_from(status.value)
                .ok()
                .filter(|c| (200..=599).contains(c))
            {
                statuses.push(code);
            } else {
                self.error(
                    status.pos,
                    format!(
                        "status {} cannot be stored: statuses are from 200 to 599",
                        status.value
                    ),
                    None,
                );
            }
        }
        statuses.sort_unstable();
        statuses.dedup();
        statuses
    }

    fn route_template(
        &mut self,
        scope: &RouteScope<'_>,
        source: &Spanned<String>,
    ) -> Option<Template> {
        let template = self.template(source)?;
        for part in &template.parts {
            if let Some((message, hint)) = scope.check_part(part) {
                self.error(source.pos, message, Some(hint));
                return None;
            }
        }
        Some(template)
    }
}

/// What a route's templates and key rules may refer to (an `invalidate:`
/// rule's templates are checked against one too).
pub(super) struct RouteScope<'a> {
    pub(super) label: &'a str,
    pub(super) params: &'a [String],
    /// `key.query`, sorted.
    pub(super) query: &'a [String],
    /// `key.query: all`: any parameter name is in the key.
    pub(super) query_all: bool,
    /// False when `key.query` itself was reported as unusable.
    pub(super) query_usable: bool,
    pub(super) tenant: &'a Tenant,
}

impl RouteScope<'_> {
    /// `did you mean "pageSize"? key.query of route "x" is [page, pageSize]`.
    fn query_hint(&self, param: &str) -> String {
        let allowlist = format!("key.query is [{}]", self.query.join(", "));
        match did_you_mean(param, self.query.iter().map(String::as_str)) {
            Some(mean) => format!("{mean} {allowlist}"),
            None => format!("add {param:?} to key.query; {allowlist}"),
        }
    }

    /// The variables this route's templates may use, as written.
    fn available(&self) -> Vec<String> {
        let mut names = Vec::new();
        if self.tenant.workspace.is_some() {
            names.push("workspace".to_string());
        }
        if self.tenant.user.is_some() {
            names.push("user".to_string());
        }
        names.extend(self.params.iter().cloned());
        names.extend(self.query.iter().map(|q| format!("query.{q}")));
        names
    }

    /// The problem with a template part in this route, as (message, hint).
    pub(super) fn check_part(&self, part: &TemplatePart) -> Option<(String, String)> {
        let written = template::written(part)?;
        match part {
            TemplatePart::Literal(_) => None,
            TemplatePart::Workspace if self.tenant.workspace.is_none() => Some((
                format!("{written:?} in {} needs the workspace identity, but tenant.workspace is not set", self.label),
                "add tenant: { workspace: { header: X-Workspace-ID } }".to_string(),
            )),
            TemplatePart::User if self.tenant.user.is_none() => Some((
                format!("{written:?} in {} needs the user identity, but tenant.user is not set", self.label),
                "add tenant: { user: { header: X-User-ID } }".to_string(),
            )),
            TemplatePart::Workspace | TemplatePart::User => None,
            TemplatePart::Var(name) if self.params.contains(name) => None,
            TemplatePart::Var(name) if self.query.contains(name) => Some((
                format!("unknown template variable {written:?} in {}", self.label),
                format!("{name:?} is a query parameter: write \"{{query.{name}}}\""),
            )),
            TemplatePart::Var(name) => Some((
                format!("unknown template variable {written:?} in {}", self.label),
                self.variable_hint(name),
            )),
            TemplatePart::Query(name)
                if self.query_all || self.query.contains(name) || !self.query_usable =>
            {
                None
            }
            TemplatePart::Query(name) => Some((
                format!("{written:?} in {} names a parameter that is not in key.query", self.label),
                match nearest(name, self.query.iter().map(String::as_str)) {
                    Some(near) => format!("did you mean \"{{query.{near}}}\"? key.query is [{}]", self.query.join(", ")),
                    None => format!("add {name:?} to key.query; it is [{}]", self.query.join(", ")),
                },
            )),
        }
    }

    fn variable_hint(&self, name: &str) -> String {
        let available = self.available();
        let list = if available.is_empty() {
            "this route has no variables".to_string()
        } else {
            format!(
                "this route can use {}",
                available
                    .iter()
                    .map(|a| format!("{{{a}}}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        match nearest(name, available.iter().map(String::as_str)) {
            Some(near) => format!("did you mean \"{{{near}}}\"? {list}"),
            None => list,
        }
    }
}

/// Parses `"GET /path/{param}"` into the method and the path segments.
fn parse_match(text: &str) -> Result<(RouteMethod, Vec<Segment>), (String, Option<String>)> {
    let example = "e.g. \"GET /api/boards/{board_id}/contacts\"";
    let words: Vec<&str> = text.split_whitespace().collect();
    let (method, path) = match words.as_slice() {
        [method, path] => (*method, *path),
        [path] if path.starts_with('/') => {
            return Err((
                format!("match {text:?} has no method"),
                Some(format!("write \"GET {path}\"")),
            ))
        }
        _ => {
            return Err((
                format!("invalid match {text:?}: expected \"GET /path\""),
                Some(example.to_string()),
            ))
        }
    };
    if method != "GET" {
        let (message, hint) = if method.eq_ignore_ascii_case("GET") {
            (
                format!("method {method:?} must be written \"GET\""),
                format!("write \"GET {path}\""),
            )
        } else if method.eq_ignore_ascii_case("HEAD") {
            (
                "only GET routes are cached, not \"HEAD\"".to_string(),
                format!("HEAD requests are served from GET entries: write \"GET {path}\""),
            )
        } else {
            (
                format!("only GET routes are cached, not {method:?}"),
                "requests that match no route are proxied untouched; remove this route".to_string(),
            )
        };
        return Err((message, Some(hint)));
    }
    Ok((RouteMethod::Get, parse_path(path)?))
}

/// Parses a path pattern, `/api/boards/{board_id}/contacts` or
/// `/static/{*rest}`, into its segments.
pub(super) fn parse_path(path: &str) -> Result<Vec<Segment>, (String, Option<String>)> {
    if !path.starts_with('/') {
        return Err((
            format!("path {path:?} must start with \"/\""),
            Some(format!("write \"/{path}\"")),
        ));
    }
    if path.contains('?') || path.contains('#') {
        return Err((
            format!("path {path:?} must not contain a query string"),
            Some("list the query parameters that matter in key.query".to_string()),
        ));
    }
    let mut segments: Vec<Segment> = Vec::new();
    if path == "/" {
        return Ok(segments);
    }
    for segment in path[1..].split('/') {
        if segment.is_empty() {
            return Err((
                format!("empty segment in path {path:?}"),
                Some("remove the doubled or trailing \"/\"".to_string()),
            ));
        }
        if matches!(segments.last(), Some(Segment::Rest(_))) {
            return Err((
                format!("\"{{*...}}\" must be the last segment of {path:?}"),
                Some(
                    "a subtree parameter takes the rest of the path, e.g. \"/static/{*rest}\""
                        .to_string(),
                ),
            ));
        }
        if !segment.contains(['{', '}']) {
            segments.push(Segment::Literal(segment.to_string()));
            continue;
        }
        let inner = segment.strip_prefix('{').and_then(|s| s.strip_suffix('}'));
        let (rest, inner) = match inner.map(|i| (i.strip_prefix('*'), i)) {
            Some((Some(name), _)) => (true, Some(name)),
            Some((None, i)) => (false, Some(i)),
            None => (false, None),
        };
        let name = inner
            .filter(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'));
        let Some(name) = name else {
            return Err((
                format!("invalid path segment {segment:?} in {path:?}"),
                Some("a parameter is a whole segment named with letters, digits and \"_\", e.g. \"{board_id}\", or \"{*rest}\" for the rest of the path".to_string()),
            ));
        };
        if name == "workspace" || name == "user" || name == "query" {
            return Err((
                format!("path parameter \"{{{name}}}\" would hide the built-in template variable"),
                Some(format!("rename it, e.g. \"{{{name}_id}}\"")),
            ));
        }
        let taken = segments
            .iter()
            .any(|s| matches!(s, Segment::Param(p) | Segment::Rest(p) if p == name));
        if taken {
            return Err((
                format!("path parameter \"{{{name}}}\" is used twice in {path:?}"),
                Some("give each parameter its own name".to_string()),
            ));
        }
        segments.push(if rest {
            Segment::Rest(name.to_string())
        } else {
            Segment::Param(name.to_string())
        });
    }
    Ok(segments)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lit(s: &str) -> Segment {
        Segment::Literal(s.to_string())
    }

    fn param(s: &str) -> Segment {
        Segment::Param(s.to_string())
    }

    /// `expected` is the segments, or a fragment of the error message.
    fn check_match(text: &str, expected: Result<Vec<Segment>, &str>) {
        match (parse_match(text), expected) {
            (Ok((RouteMethod::Get, got)), Ok(want)) => assert_eq!(got, want, "{text:?}"),
            (Err((message, _)), Err(want)) => {
                assert!(
                    message.contains(want),
                    "{text:?}: {message:?} lacks {want:?}"
                );
            }
            (got, want) => panic!("{text:?}: got {got:?}, expected {want:?}"),
        }
    }

    #[test]
    fn matches() {
        check_match(
            "GET /api/boards/{board_id}/contacts",
            Ok(vec![
                lit("api"),
                lit("boards"),
                param("board_id"),
                lit("contacts"),
            ]),
        );
        check_match("GET /", Ok(vec![]));
        check_match("  GET   /a  ", Ok(vec![lit("a")]));
        check_match(
            "POST /api/contacts",
            Err("only GET routes are cached, not \"POST\""),
        );
        check_match("HEAD /api/contacts", Err("not \"HEAD\""));
        check_match("get /api", Err("must be written \"GET\""));
        check_match("/api/contacts", Err("has no method"));
        check_match("GET", Err("expected \"GET /path\""));
        check_match("GET /a /b", Err("expected \"GET /path\""));
        check_match("GET api/contacts", Err("must start with \"/\""));
        check_match("GET /api//contacts", Err("empty segment"));
        check_match("GET /api/contacts/", Err("empty segment"));
        check_match("GET /api?x=1", Err("query string"));
        check_match("GET /api/{id", Err("invalid path segment \"{id\""));
        check_match("GET /api/x{id}", Err("invalid path segment"));
        check_match("GET /api/{}", Err("invalid path segment"));
        check_match("GET /api/{a-b}", Err("invalid path segment"));
        check_match("GET /a/{id}/b/{id}", Err("\"{id}\" is used twice"));
        check_match("GET /w/{workspace}", Err("would hide the built-in"));
        check_match(
            "GET /static/{*rest}",
            Ok(vec![lit("static"), Segment::Rest("rest".into())]),
        );
        check_match("GET /{*all}", Ok(vec![Segment::Rest("all".into())]));
        check_match("GET /static/{*rest}/x", Err("must be the last segment"));
        check_match("GET /a/{*}", Err("invalid path segment"));
        check_match("GET /a/{*a-b}", Err("invalid path segment"));
        check_match("GET /a/{id}/{*id}", Err("\"{id}\" is used twice"));
        check_match("GET /a/{*workspace}", Err("would hide the built-in"));
    }
}
