//! Run-time settings: caching switched on or off, and TTLs, per workspace
//! and per route, changed through the admin API without a reload.
//!
//! This is the users' "Cache Settings" panel: a workspace can be switched
//! off, a feature (route) switched off or given another TTL, for everyone or
//! for one workspace. The most specific setting wins: a workspace switched
//! off is off for every route; else its own switch for the route, else the
//! route's global switch, else on. A TTL set for the workspace's route wins
//! over the route's, which wins over the config.
//!
//! The request path reads one [`Settings`] snapshot without a lock (the
//! cache layer holds it in an `ArcSwap`) and never waits on Redis: writes go
//! to the store first (Redis, shared by every instance, or a local state
//! file) and then replace the snapshot; other instances pick Redis changes
//! up on their next poll.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Longest workspace id a setting may name (as for requests).
const MAX_WORKSPACE_LEN: usize = 256;

/// A switch and a TTL for one route (globally or in one workspace).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteSetting {
    /// Caching on (`true`) or off (`false`); absent: as the less specific level says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// Fresh lifetime of new fills, and a cap on existing entries' freshness.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "ser_ttl",
        deserialize_with = "de_ttl"
    )]
    pub ttl: Option<Duration>,
}

/// One workspace's settings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkspaceSetting {
    /// Caching on or off for the whole workspace; absent: on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// Per-route switches and TTLs for this workspace.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub routes: BTreeMap<String, RouteSetting>,
}

/// Every run-time setting.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// By workspace.
    #[serde(default)]
    pub workspaces: BTreeMap<String, WorkspaceSetting>,
    /// By route, for every workspace.
    #[serde(default)]
    pub routes: BTreeMap<String, RouteSetting>,
}

/// What the settings say of one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Caching is on, with this TTL instead of the route's, if any.
    Cache {
        /// The TTL override.
        ttl: Option<Duration>,
    },
    /// Caching is switched off for this workspace or route.
    Disabled,
}

impl Settings {
    /// The decision for a request of `workspace` on route `route`.
    pub fn decide(&self, workspace: Option<&str>, route: &str) -> Decision {
        if self.workspaces.is_empty() && self.routes.is_empty() {
            return Decision::Cache { ttl: None };
        }
        let ws = workspace.and_then(|w| self.workspaces.get(w));
        if ws.and_then(|w| w.enabled) == Some(false) {
            return Decision::Disabled;
        }
        let own = ws.and_then(|w| w.routes.get(route));
        let global = self.routes.get(route);
        let enabled = own
            .and_then(|r| r.enabled)
            .or_else(|| global.and_then(|r| r.enabled));
        if enabled == Some(false) {
            return Decision::Disabled;
        }
        Decision::Cache {
            ttl: own
                .and_then(|r| r.ttl)
                .or_else(|| global.and_then(|r| r.ttl)),
        }
    }
}

/// Why a settings body was refused: the field and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct SettingsError {
    /// The field, as a path (`routes.contact_list.ttl`).
    pub field: String,
    /// What is wrong.
    pub message: String,
}

/// Parses a body of `T`, naming the field of any error.
///
/// # Errors
/// The first field that does not parse, an unknown field, or bad JSON.
pub fn parse<T: for<'de> Deserialize<'de>>(body: &[u8]) -> Result<T, SettingsError> {
    let de = &mut serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner().to_string();
        // An unknown field is the last part of the path already.
        let field = if path == "." || path == "?" {
            "body".to_string()
        } else {
            path
        };
        SettingsError {
            field,
            message: inner,
        }
    })
}

/// Checks that every route a setting names exists in `routes`, and that a
/// workspace id is one a request could carry.
///
/// # Errors
/// The first route that does not exist, or a workspace id out of bounds.
pub fn check_names<'a>(
    workspace: Option<&str>,
    route_settings: impl Iterator<Item = &'a String>,
    prefix: &str,
    routes: &[String],
) -> Result<(), SettingsError> {
    if let Some(w) = workspace {
        if w.is_empty() || w.len() > MAX_WORKSPACE_LEN || !w.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(SettingsError {
                field: "workspace".into(),
                message: format!(
                    "a workspace id is 1 to {MAX_WORKSPACE_LEN} visible ASCII characters"
                ),
            });
        }
    }
    for name in route_settings {
        if !routes.iter().any(|r| r == name) {
            return Err(SettingsError {
                field: format!("{prefix}{name}"),
                message: format!("no route called {name:?} (routes: {})", routes.join(", ")),
            });
        }
    }
    Ok(())
}

fn ser_ttl<S: Serializer>(ttl: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match ttl {
        Some(d) if d.subsec_millis() == 0 => s.serialize_str(&format!("{}s", d.as_secs())),
        Some(d) => s.serialize_str(&format!("{}ms", d.as_millis())),
        None => s.serialize_none(),
    }
}

fn de_ttl<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    let text = String::deserialize(d)?;
    let ttl = crate::config::parse_duration_text(&text).map_err(serde::de::Error::custom)?;
    if ttl.is_zero() {
        return Err(serde::de::Error::custom("a ttl must be longer than 0s"));
    }
    Ok(Some(ttl))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(json: &str) -> Settings {
        parse(json.as_bytes()).unwrap()
    }

    #[test]
    fn the_most_specific_setting_wins() {
        let s = settings(
            r#"{"workspaces": {"w1": {"enabled": false}, "w2": {"routes": {"list": {"enabled": true, "ttl": "5s"}}}},
                "routes": {"list": {"enabled": false, "ttl": "60s"}, "counts": {"ttl": "2m"}}}"#,
        );
        assert_eq!(s.decide(Some("w1"), "counts"), Decision::Disabled);
        assert_eq!(s.decide(Some("w3"), "list"), Decision::Disabled);
        assert_eq!(
            s.decide(Some("w2"), "list"),
            Decision::Cache {
                ttl: Some(Duration::from_secs(5))
            }
        );
        assert_eq!(
            s.decide(Some("w2"), "counts"),
            Decision::Cache {
                ttl: Some(Duration::from_secs(120))
            }
        );
        assert_eq!(s.decide(None, "other"), Decision::Cache { ttl: None });
    }

    #[test]
    fn bad_bodies_name_their_field() {
        let err = |json: &str| {
            parse::<WorkspaceSetting>(json.as_bytes())
                .unwrap_err()
                .field
        };
        assert_eq!(
            err(r#"{"routes": {"list": {"ttl": "soon"}}}"#),
            "routes.list.ttl"
        );
        assert_eq!(
            err(r#"{"routes": {"list": {"ttl": "0s"}}}"#),
            "routes.list.ttl"
        );
        assert_eq!(err(r#"{"enabled": "no"}"#), "enabled");
        assert_eq!(err(r#"{"enabld": false}"#), "enabld");
        assert_eq!(
            err(r#"{"routes": {"list": {"tll": "5s"}}}"#),
            "routes.list.tll"
        );
        assert_eq!(err("not json"), "body");
    }

    #[test]
    fn settings_round_trip_through_json() {
        let s = settings(
            r#"{"workspaces": {"w1": {"routes": {"a": {"ttl": "1500ms"}}}}, "routes": {"a": {"ttl": "60s"}}}"#,
        );
        let text = serde_json::to_string(&s).unwrap();
        assert!(
            text.contains("\"1500ms\"") && text.contains("\"60s\""),
            "{text}"
        );
        assert_eq!(settings(&text), s);
    }

    #[test]
    fn unknown_routes_and_odd_workspace_ids_are_refused() {
        let routes = vec!["list".to_string()];
        let ok = check_names(Some("w1"), ["list".to_string()].iter(), "routes.", &routes);
        assert!(ok.is_ok());
        let e =
            check_names(Some("w1"), ["lst".to_string()].iter(), "routes.", &routes).unwrap_err();
        assert_eq!(e.field, "routes.lst");
        let e = check_names(Some("w 1"), std::iter::empty(), "", &routes).unwrap_err();
        assert_eq!(e.field, "workspace");
    }
}
