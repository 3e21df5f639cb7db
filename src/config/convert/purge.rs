//! `events` and `purge`: event templates, tag headers and legacy purge rules.

use super::*;

/// The fields of a legacy purge body, the only variables of `purge.legacy_tags`.
const LEGACY_FIELDS: [&str; 4] = ["workspace_id", "board_id", "filter", "pattern"];
/// The legacy body fields a `purge.legacy_tags` template uses.
fn legacy_fields(template: &Template) -> std::collections::BTreeSet<&str> {
    template
        .parts
        .iter()
        .filter_map(|p| match p {
            TemplatePart::Var(name) => Some(name.as_str()),
            _ => None,
        })
        .collect()
}

impl Cx<'_> {
    /// An event template: variables are fields of the event body. `{workspace}`
    /// and `{user}` are kept as such (the event's workspace and user); only
    /// `{query.*}` has no meaning without a request.
    fn event_template(&mut self, event: &str, source: &Spanned<String>) -> Option<Template> {
        let template = self.template(source)?;
        for part in &template.parts {
            if let TemplatePart::Query(name) = part {
                self.error(
                    source.pos,
                    format!("event {event:?} cannot use \"{{query.{name}}}\": events have no query string"),
                    Some(format!(
                        "event templates use fields of the event body, e.g. \"{{{name}}}\" or \"{{workspace_id}}\""
                    )),
                );
                return None;
            }
        }
        Some(template)
    }

    pub(super) fn event(
        &mut self,
        name: Spanned<String>,
        templates: Vec<Spanned<String>>,
    ) -> Option<(String, Vec<Template>)> {
        if name.value.trim().is_empty() {
            self.error(
                name.pos,
                "event name is empty",
                Some("e.g. \"contact:moved\"".to_string()),
            );
            return None;
        }
        let templates = templates
            .iter()
            .filter_map(|source| self.event_template(&name.value, source))
            .collect();
        Some((name.value, templates))
    }

    pub(super) fn purge(&mut self, raw: Option<Spanned<raw::Purge>>, has_redis: bool) -> Purge {
        let raw = raw.map(|r| r.value).unwrap_or_default();
        let consistency = match &raw.consistency {
            None => defaults::PURGE_CONSISTENCY,
            Some(field) => {
                if field.value == raw::Consistency::Sync && !has_redis {
                    self.report.warning(
                        field.pos,
                        "purge.consistency: sync has no effect without storage.redis",
                        Some(
                            "one instance applies every purge before answering anyway".to_string(),
                        ),
                    );
                }
                match field.value {
                    raw::Consistency::Async => Consistency::Async,
                    raw::Consistency::Sync => Consistency::Sync,
                }
            }
        };
        let sync_timeout = self.positive_duration(
            raw.sync_timeout.as_ref(),
            defaults::PURGE_SYNC_TIMEOUT,
            "purge.sync_timeout",
        );
        let tag_headers = match raw.tag_headers {
            None => defaults::TAG_HEADERS
                .iter()
                .map(|&(name, separator)| TagHeader {
                    name: HeaderName::from_static(name),
                    separator,
                })
                .collect(),
            Some(headers) => headers
                .into_iter()
                .filter_map(|h| self.tag_header(h))
                .collect(),
        };
        let legacy_path = match raw.legacy_path {
            Some(field) if !field.value.starts_with('/') => {
                self.error(
                    field.pos,
                    format!("purge.legacy_path {:?} must start with \"/\"", field.value),
                    Some(format!("e.g. {:?}", defaults::LEGACY_PATH)),
                );
                defaults::LEGACY_PATH.to_string()
            }
            Some(field) => field.value,
            None => defaults::LEGACY_PATH.to_string(),
        };
        let legacy_tags = match raw.legacy_tags {
            None => template::parse(defaults::LEGACY_TAG)
                .into_iter()
                .map(|t| LegacyRule {
                    alternatives: vec![t],
                })
                .collect(),
            Some(rules) => rules
                .into_iter()
                .filter_map(|r| self.legacy_rule(r))
                .collect(),
        };
        Purge {
            tag_headers,
            legacy_path,
            legacy_tags,
            consistency,
            sync_timeout,
        }
    }

    fn tag_header(&mut self, raw: Spanned<raw::TagHeader>) -> Option<TagHeader> {
        let Spanned { value, pos } = raw;
        self.missing_keys(
            pos,
            "purge.tag_headers item",
            &[("header", value.header.is_some(), "header: Surrogate-Key")],
        );
        let separator = match &value.separator {
            None => defaults::TAG_SEPARATOR,
            Some(field) if field.value == " " => ' ',
            Some(field) if field.value == "," => ',',
            Some(field) => {
                self.error(
                    field.pos,
                    format!("separator must be \" \" or \",\", not {:?}", field.value),
                    Some(
                        "Surrogate-Key separates tags with \" \", Cache-Tag with \",\"".to_string(),
                    ),
                );
                ' '
            }
        };
        let name = self.header_name(value.header.as_ref()?)?;
        Some(TagHeader { name, separator })
    }

    /// One item of `purge.legacy_tags`: a template, or templates most
    /// specific first. A template listed after one whose fields are a subset
    /// of its own could never be chosen, and is refused.
    fn legacy_rule(&mut self, raw: Spanned<raw::OneOrMany<Spanned<String>>>) -> Option<LegacyRule> {
        let Spanned { value, pos } = raw;
        if value.0.is_empty() {
            self.error(
                pos,
                "empty list in purge.legacy_tags",
                Some(
                    "list templates most specific first, e.g. [\"filter:{workspace_id}:{filter}\", \"lists:{workspace_id}\"]"
                        .to_string(),
                ),
            );
            return None;
        }
        let mut alternatives: Vec<Template> = Vec::new();
        let mut ok = true;
        for source in &value.0 {
            let Some(template) = self.legacy_template(source) else {
                ok = false;
                continue;
            };
            let fields = legacy_fields(&template);
            if let Some(wider) = alternatives
                .iter()
                .find(|earlier| legacy_fields(earlier).is_subset(&fields))
            {
                self.error(
                    source.pos,
                    format!(
                        "\"{}\" is never used: \"{}\" before it applies whenever it could",
                        template.source, wider.source
                    ),
                    Some("list the templates of an item most specific first".to_string()),
                );
                ok = false;
                continue;
            }
            alternatives.push(template);
        }
        ok.then_some(LegacyRule { alternatives })
    }

    fn legacy_template(&mut self, source: &Spanned<String>) -> Option<Template> {
        let template = self.event_template("legacy purge", source)?;
        for part in &template.parts {
            // The legacy body has no `workspace` or `user`: only its own fields.
            let name = match part {
                TemplatePart::Var(name) => name.clone(),
                TemplatePart::Workspace => "workspace".to_string(),
                TemplatePart::User => "user".to_string(),
                TemplatePart::Literal(_) | TemplatePart::Query(_) => continue,
            };
            if !LEGACY_FIELDS.contains(&name.as_str()) {
                let hint =
                    did_you_mean(&name, LEGACY_FIELDS).map_or(String::new(), |m| format!("{m} "));
                self.error(
                    source.pos,
                    format!("unknown legacy purge field \"{{{name}}}\" in purge.legacy_tags"),
                    Some(format!(
                        "{hint}the legacy body has {}",
                        LEGACY_FIELDS.map(|f| format!("{{{f}}}")).join(", ")
                    )),
                );
                return None;
            }
        }
        Some(template)
    }
}
