//! Conversion of the raw file ([`super::raw`]) into the validated model
//! ([`super::model`]), reporting every semantic problem at its position.
//!
//! The conversion never stops early: a value with a problem is reported and
//! replaced by its default, so later checks still run. The resulting `Config`
//! is only handed out when the report has no errors.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use http::HeaderName;

use super::defaults;
use super::diagnostic::{did_you_mean, nearest, Pos, Report};
use super::model::{
    AccessFormat, AccessLogConfig, Admin, BypassCondition, BypassRule, Coalescing, Config,
    Consistency, IdentitySource, Jwt, JwtKey, KeySpec, LegacyRule, Limits, Log, MemoryStorage,
    MetricsConfig, OnInvalid, PerUserRule, Purge, RedisStorage, RedisTarget, Route, RouteMethod,
    Secret, Segment, Server, Storage, TagHeader, Template, TemplatePart, Tenant, UnkeyedAction,
    UnknownQuery, Upstream, WriteRule,
};
use super::raw::{self, Spanned};
use super::template;
use super::units::{parse_duration, parse_size};

mod freshness;
mod invalidate;
mod purge;
mod routes;
mod server;
mod storage;
mod tenant;

/// Whether two listeners would bind the same port on a common address.
fn same_socket(a: SocketAddr, b: SocketAddr) -> bool {
    a.port() != 0
        && a.port() == b.port()
        && (a.ip() == b.ip() || a.ip().is_unspecified() || b.ip().is_unspecified())
}

/// Converts `raw` (the whole file, positioned at its root mapping), reporting every problem.
///
/// The returned config is meaningful only if `report` has no errors.
pub(crate) fn convert(raw: Spanned<raw::Config>, report: &mut Report) -> Config {
    let root = raw.pos;
    let raw = raw.value;
    let mut cx = Cx { report };

    let listen = cx.socket_addr(raw.listen.as_ref(), defaults::LISTEN, "listen");
    let upstream = cx.upstream(raw.upstream, root);
    let admin = cx.admin(
        raw.admin,
        listen,
        raw.listen.as_ref().map_or(root, |f| f.pos),
    );
    let storage = cx.storage(raw.storage);
    let tenant = cx.tenant(raw.tenant);
    let unkeyed_default = unkeyed_action(raw.unkeyed_headers).unwrap_or(defaults::UNKEYED_ACTION);
    let unkeyed_headers = cx.unkeyed_header_names(raw.unkeyed_header_names);
    let debug_headers = cx.debug_headers(raw.debug_headers, raw.debug_headers_force, listen);

    let mut seen_names: HashMap<String, Pos> = HashMap::new();
    let routes = raw
        .routes
        .into_iter()
        .enumerate()
        .map(|(index, route)| cx.route(index, route, &tenant, unkeyed_default, &mut seen_names))
        .collect();

    let events = raw
        .events
        .0
        .into_iter()
        .filter_map(|(name, templates)| cx.event(name, templates))
        .collect();

    let invalidate = cx.invalidate(raw.invalidate, &tenant);
    let purge = cx.purge(raw.purge, storage.redis.is_some());
    let server = cx.server(raw.server);
    let log = cx.log(raw.log);
    let state_path = raw
        .state
        .and_then(|s| s.value.path)
        .map(|p| p.value.trim().to_string())
        .filter(|p| !p.is_empty())
        .map(std::path::PathBuf::from);
    let coalescing = cx.coalescing(raw.coalescing);
    let limits = cx.limits(raw.limits);
    let metrics = cx.metrics(raw.metrics);

    Config {
        listen,
        upstream,
        admin,
        storage,
        tenant,
        routes,
        events,
        invalidate,
        purge,
        server,
        log,
        state_path,
        coalescing,
        debug_headers,
        limits,
        unkeyed_headers,
        metrics,
    }
}

/// The conversion context: where problems are reported.
struct Cx<'r> {
    report: &'r mut Report,
}

/// `"a", "b"` for messages.
fn quoted_list<S: AsRef<str>>(items: &[S]) -> String {
    items
        .iter()
        .map(|s| format!("{:?}", s.as_ref()))
        .collect::<Vec<_>>()
        .join(", ")
}

impl Cx<'_> {
    fn error(&mut self, pos: Pos, message: impl Into<String>, hint: Option<String>) {
        self.report.error(pos, message, hint);
    }

    /// Reports the required keys of the mapping at `pos` that are absent, in one
    /// message. `missing` lists each required key, whether it is present, and an
    /// example for the hint.
    fn missing_keys(&mut self, pos: Pos, what: &str, missing: &[(&str, bool, &str)]) {
        // A key reported as misspelled (`tll` for `ttl`) is not reported again as missing.
        let absent: Vec<(&str, &str)> = missing
            .iter()
            .filter(|(key, present, _)| !present && !self.report.is_misspelled(pos, key))
            .map(|(key, _, example)| (*key, *example))
            .collect();
        if absent.is_empty() {
            return;
        }
        let keys: Vec<&str> = absent.iter().map(|(key, _)| *key).collect();
        let message = if keys.len() == 1 {
            format!("{what} is missing required key {:?}", keys[0])
        } else {
            format!("{what} is missing required keys {}", quoted_list(&keys))
        };
        let examples: Vec<&str> = absent.iter().map(|(_, example)| *example).collect();
        self.error(
            pos,
            message,
            Some(format!("add {}", examples.join(" and "))),
        );
    }

    fn duration(&mut self, field: Option<&Spanned<String>>, default: Duration) -> Duration {
        let Some(field) = field else {
            return default;
        };
        match parse_duration(&field.value) {
            Ok(duration) => duration,
            Err(error) => {
                self.error(field.pos, error.message, error.hint);
                default
            }
        }
    }

    /// A duration that must be longer than zero; `what` names it in the message.
    fn positive_duration(
        &mut self,
        field: Option<&Spanned<String>>,
        default: Duration,
        what: &str,
    ) -> Duration {
        let duration = self.duration(field, default);
        match field {
            Some(field) if duration.is_zero() => {
                self.error(field.pos, format!("{what} must be longer than 0s"), None);
                default
            }
            _ => duration,
        }
    }

    /// A size that must be more than zero bytes.
    fn size(&mut self, field: Option<&Spanned<String>>, default: usize, what: &str) -> usize {
        let Some(field) = field else {
            return default;
        };
        match parse_size(&field.value) {
            Ok(0) => {
                self.error(field.pos, format!("{what} must be more than 0 bytes"), None);
                default
            }
            Ok(size) => size,
            Err(error) => {
                self.error(field.pos, error.message, error.hint);
                default
            }
        }
    }

    /// A count that must be at least 1.
    fn count(&mut self, field: Option<&Spanned<usize>>, default: usize, what: &str) -> usize {
        match field {
            Some(field) if field.value == 0 => {
                self.error(field.pos, format!("{what} must be at least 1"), None);
                default
            }
            Some(field) => field.value,
            None => default,
        }
    }

    fn socket_addr(
        &mut self,
        field: Option<&Spanned<String>>,
        default: SocketAddr,
        what: &str,
    ) -> SocketAddr {
        let Some(field) = field else {
            return default;
        };
        let text = field.value.trim();
        if let Ok(addr) = text.parse::<SocketAddr>() {
            return addr;
        }
        let hint = if text.starts_with("localhost:") {
            "write an IP address: \"127.0.0.1\" instead of \"localhost\"".to_string()
        } else if text.parse::<u16>().is_ok() {
            format!("write an IP address and the port, e.g. \"0.0.0.0:{text}\"")
        } else {
            format!("e.g. \"{default}\"")
        };
        self.error(
            field.pos,
            format!("invalid {what} address {text:?}: expected IP:PORT"),
            Some(hint),
        );
        default
    }

    fn header_name(&mut self, field: &Spanned<String>) -> Option<HeaderName> {
        match HeaderName::from_bytes(field.value.trim().as_bytes()) {
            Ok(name) => Some(name),
            Err(_) => {
                self.error(
                    field.pos,
                    format!("invalid header name {:?}", field.value),
                    Some(
                        "header names use letters, digits and \"-\", e.g. \"X-Workspace-ID\""
                            .to_string(),
                    ),
                );
                None
            }
        }
    }

    fn secret(&mut self, field: Option<Spanned<raw::SecretString>>, what: &str) -> Option<Secret> {
        let field = field?;
        if field.value.0.is_empty() {
            // Never echo the value: there is none here, but keep the habit.
            self.error(
                field.pos,
                format!("{what} is empty"),
                Some(
                    "set it to a long random string, e.g. from `openssl rand -hex 32`".to_string(),
                ),
            );
        }
        Some(Secret::new(field.value.0))
    }

    fn template(&mut self, source: &Spanned<String>) -> Option<Template> {
        match template::parse(&source.value) {
            Ok(template) => Some(template),
            Err((message, hint)) => {
                self.error(source.pos, message, hint);
                None
            }
        }
    }
}

fn unkeyed_action(raw: Option<raw::UnkeyedAction>) -> Option<UnkeyedAction> {
    raw.map(|a| match a {
        raw::UnkeyedAction::Strip => UnkeyedAction::Strip,
        raw::UnkeyedAction::Bypass => UnkeyedAction::Bypass,
    })
}

/// Checks `host:port`; returns the host (without IPv6 brackets) or a hint.
fn split_host_port(address: &str) -> Result<String, String> {
    let address = address.trim();
    let example = "e.g. \"127.0.0.1:3000\" or \"backend.internal:443\"";
    if let Some((scheme, _)) = address.split_once("://") {
        return Err(format!(
            "write the address without {scheme:?}://, {example}; set tls: true for HTTPS"
        ));
    }
    let Some((host, port)) = address.rsplit_once(':') else {
        return Err(format!("add the port, {example}"));
    };
    if port.parse::<u16>().map_or(true, |p| p == 0) {
        return Err(format!(
            "the port must be a number from 1 to 65535, {example}"
        ));
    }
    let host = match host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        Some(v6) if v6.parse::<std::net::Ipv6Addr>().is_ok() => v6,
        Some(_) => return Err(format!("invalid IPv6 address, {example}")),
        None if host.contains(':') => {
            return Err("write an IPv6 address in brackets, e.g. \"[::1]:3000\"".to_string())
        }
        None => host,
    };
    if host.is_empty() || host.contains(|c: char| c.is_whitespace() || c == '/') {
        return Err(format!("the host is missing or invalid, {example}"));
    }
    Ok(host.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_ports() {
        let cases: [(&str, Result<&str, &str>); 9] = [
            ("127.0.0.1:3000", Ok("127.0.0.1")),
            ("backend.internal:443", Ok("backend.internal")),
            ("[::1]:3000", Ok("::1")),
            ("127.0.0.1", Err("add the port")),
            ("http://127.0.0.1:3000", Err("without \"http\"://")),
            ("::1:3000", Err("in brackets")),
            ("host:0", Err("port must be")),
            ("host:http", Err("port must be")),
            (":3000", Err("host is missing")),
        ];
        for (input, expected) in cases {
            match (split_host_port(input), expected) {
                (Ok(got), Ok(want)) => assert_eq!(got, want, "{input}"),
                (Err(got), Err(want)) => {
                    assert!(got.contains(want), "{input}: {got:?} lacks {want:?}")
                }
                (got, want) => panic!("{input}: got {got:?}, expected {want:?}"),
            }
        }
    }
}
