//! Backend events and legacy purge bodies, turned into tags through the config.
//!
//! A batch is resolved completely before anything is purged: an unknown event
//! or a missing field rejects the whole batch, naming what was wrong.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::config::{Config, Template};
use crate::tags::{self, Vars};

/// Why an event batch was refused. Serialized as the 4xx JSON body.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventError {
    /// The body is not JSON, or not an object or array of objects.
    #[error("body must be a JSON object or an array of objects: {0}")]
    Malformed(String),
    /// An event object has no string `event` field.
    #[error("event {index}: missing field \"event\"")]
    MissingEvent {
        /// Position in the batch.
        index: usize,
    },
    /// No `events:` entry matches this event name.
    #[error("event {index}: unknown event {event:?}")]
    UnknownEvent {
        /// Position in the batch.
        index: usize,
        /// The event name.
        event: String,
    },
    /// A template needs a field the body does not have.
    #[error("event {index} ({event}): missing field {field:?}")]
    MissingField {
        /// Position in the batch.
        index: usize,
        /// The event name.
        event: String,
        /// The missing field.
        field: String,
    },
    /// A field the templates use is not a string or number.
    #[error("event {index}: field {field:?} must be a string or a number")]
    BadField {
        /// Position in the batch.
        index: usize,
        /// The field.
        field: String,
    },
}

impl EventError {
    /// The field named by this error, for the JSON body.
    pub fn field(&self) -> Option<&str> {
        match self {
            EventError::Malformed(_) => None,
            EventError::MissingEvent { .. } => Some("event"),
            EventError::UnknownEvent { .. } => Some("event"),
            EventError::MissingField { field, .. } | EventError::BadField { field, .. } => {
                Some(field)
            }
        }
    }
}

/// Fields of one event body, as strings.
struct Fields<'a>(&'a serde_json::Map<String, Value>, usize);

impl Fields<'_> {
    fn get(&self, name: &str) -> Result<Option<String>, EventError> {
        match self.0.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if s.is_empty() => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(Value::Number(n)) => Ok(Some(n.to_string())),
            Some(_) => Err(EventError::BadField {
                index: self.1,
                field: name.to_string(),
            }),
        }
    }
}

struct FieldVars(BTreeMap<String, String>);

impl Vars for FieldVars {
    fn workspace(&self) -> Option<&str> {
        self.0.get("workspace_id").map(String::as_str)
    }
    fn user(&self) -> Option<&str> {
        self.0.get("user_id").map(String::as_str)
    }
    fn var(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }
    fn query(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }
}

/// Finds the templates of an event: an exact name, else the longest `prefix*` pattern.
fn templates_for<'c>(config: &'c Config, event: &str) -> Option<&'c Vec<Template>> {
    if let Some(t) = config.events.get(event) {
        return Some(t);
    }
    config
        .events
        .iter()
        .filter_map(|(name, t)| {
            let prefix = name.strip_suffix('*')?;
            event.starts_with(prefix).then_some((prefix.len(), t))
        })
        .max_by_key(|(len, _)| *len)
        .map(|(_, t)| t)
}

fn objects(body: &[u8]) -> Result<Vec<serde_json::Map<String, Value>>, EventError> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| EventError::Malformed(e.to_string()))?;
    let items = match value {
        Value::Array(items) => items,
        other => vec![other],
    };
    items
        .into_iter()
        .map(|v| match v {
            Value::Object(m) => Ok(m),
            _ => Err(EventError::Malformed("an item is not an object".into())),
        })
        .collect()
}

fn render_all(
    templates: &[Template],
    fields: &Fields<'_>,
    event: &str,
) -> Result<Vec<String>, EventError> {
    let mut vars = BTreeMap::new();
    for t in templates {
        for part in &t.parts {
            let name = match part {
                crate::config::TemplatePart::Var(n) | crate::config::TemplatePart::Query(n) => {
                    n.as_str()
                }
                crate::config::TemplatePart::Workspace => "workspace_id",
                crate::config::TemplatePart::User => "user_id",
                crate::config::TemplatePart::Literal(_) => continue,
            };
            match fields.get(name)? {
                Some(v) => {
                    vars.insert(name.to_string(), v);
                }
                None => {
                    return Err(EventError::MissingField {
                        index: fields.1,
                        event: event.to_string(),
                        field: name.to_string(),
                    })
                }
            }
        }
    }
    let vars = FieldVars(vars);
    templates
        .iter()
        .map(|t| {
            tags::render(t, &vars).map_err(|field| EventError::MissingField {
                index: fields.1,
                event: event.to_string(),
                field,
            })
        })
        .collect()
}

/// Resolves an event body (one object or an array) to the tags to purge.
///
/// # Errors
/// The first problem found; nothing must be purged then.
pub fn resolve_events(config: &Config, body: &[u8]) -> Result<Vec<String>, EventError> {
    let mut out = Vec::new();
    for (index, obj) in objects(body)?.iter().enumerate() {
        let fields = Fields(obj, index);
        let event = match obj.get("event") {
            Some(Value::String(e)) if !e.is_empty() => e.as_str(),
            _ => return Err(EventError::MissingEvent { index }),
        };
        let templates = templates_for(config, event).ok_or_else(|| EventError::UnknownEvent {
            index,
            event: event.to_string(),
        })?;
        out.extend(render_all(templates, &fields, event)?);
    }
    out.sort();
    out.dedup();
    Ok(out)
}

/// Resolves the backend's legacy purge body (`workspace_id`, `board_id`,
/// `filter`, `pattern`) through `purge.legacy_tags`. Each rule purges the
/// first of its templates whose fields are all in the body (a rule of one
/// template: that template when its fields are there), so the fewer fields,
/// the wider the purge. At least `workspace_id` is required, and at least one
/// rule must apply.
///
/// # Errors
/// A malformed body, a missing `workspace_id`, or a body no rule applies to
/// (naming the field the last template of the first rule lacks).
pub fn resolve_legacy(config: &Config, body: &[u8]) -> Result<Vec<String>, EventError> {
    let mut out = Vec::new();
    for (index, obj) in objects(body)?.iter().enumerate() {
        let fields = Fields(obj, index);
        if fields.get("workspace_id")?.is_none() {
            return Err(EventError::MissingField {
                index,
                event: "legacy".into(),
                field: "workspace_id".into(),
            });
        }
        let before = out.len();
        let mut first_missing = None;
        for rule in &config.purge.legacy_tags {
            let mut missing = None;
            for t in &rule.alternatives {
                match render_all(std::slice::from_ref(t), &fields, "legacy") {
                    Ok(tags) => {
                        out.extend(tags);
                        missing = None;
                        break;
                    }
                    Err(EventError::MissingField { field, .. }) => missing = Some(field),
                    Err(e) => return Err(e),
                }
            }
            if let Some(field) = missing {
                first_missing.get_or_insert(field);
            }
        }
        if out.len() == before {
            return Err(EventError::MissingField {
                index,
                event: "legacy".into(),
                field: first_missing.unwrap_or_else(|| "board_id".into()),
            });
        }
    }
    out.sort();
    out.dedup();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(legacy_tags: &str) -> Config {
        let yaml = format!(
            "upstream: {{ address: \"127.0.0.1:3000\" }}\npurge:\n  legacy_tags: {legacy_tags}\n"
        );
        crate::config::load_str(&yaml, "t.yaml", &|_| None)
            .unwrap_or_else(|e| panic!("{e}"))
            .config
    }

    fn check(config: &Config, body: &str, expected: Result<&[&str], &str>) {
        let got = resolve_legacy(config, body.as_bytes());
        match (got, expected) {
            (Ok(tags), Ok(want)) => assert_eq!(tags, want, "{body}"),
            (Err(e), Err(field)) => assert_eq!(e.field(), Some(field), "{body}: {e}"),
            (got, want) => panic!("{body}: got {got:?}, expected {want:?}"),
        }
    }

    #[test]
    fn the_most_specific_template_whose_fields_are_present_is_purged() {
        let c = config(
            r#"[["filter:{workspace_id}:{filter}", "board:{workspace_id}:{board_id}", "lists:{workspace_id}"], "p:{pattern}"]"#,
        );
        check(&c, r#"{"workspace_id": "w1"}"#, Ok(&["lists:w1"]));
        check(
            &c,
            r#"{"workspace_id": "w1", "board_id": "b1"}"#,
            Ok(&["board:w1:b1"]),
        );
        check(
            &c,
            r#"{"workspace_id": "w1", "filter": "open"}"#,
            Ok(&["filter:w1:open"]),
        );
        check(
            &c,
            r#"{"workspace_id": "w1", "board_id": "b1", "filter": "open", "pattern": "x"}"#,
            Ok(&["filter:w1:open", "p:x"]),
        );
        check(
            &c,
            r#"{"workspace_id": "w1", "board_id": ""}"#,
            Ok(&["lists:w1"]),
        );
        check(&c, r#"{"board_id": "b1"}"#, Err("workspace_id"));
        check(
            &c,
            r#"{"workspace_id": "w1", "board_id": {}}"#,
            Err("board_id"),
        );
    }

    #[test]
    fn plain_templates_keep_their_meaning() {
        // Every template whose fields are present applies, as before rules existed.
        let c = config(r#"["board:{workspace_id}:{board_id}", "f:{workspace_id}:{filter}"]"#);
        check(
            &c,
            r#"{"workspace_id": "w1", "board_id": "b1", "filter": "open"}"#,
            Ok(&["board:w1:b1", "f:w1:open"]),
        );
        check(
            &c,
            r#"{"workspace_id": "w1", "filter": "open"}"#,
            Ok(&["f:w1:open"]),
        );
        check(&c, r#"{"workspace_id": "w1"}"#, Err("board_id"));
    }
}
