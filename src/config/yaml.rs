//! The tolerant YAML layer: parses a file into saphyr's marked tree and runs serde
//! over it without ever stopping at the first problem.
//!
//! Every problem the deserializer meets is recorded in the [`Report`] at the
//! line:col of the node concerned, and the visitor is handed a neutral value
//! instead (`None`, `""`, `0`, `false`, an empty list or mapping), so that one
//! pass finds all the problems of a file:
//!
//! - an unknown key in a struct is reported at the key, with the nearest valid key
//!   as hint, and skipped;
//! - a value of the wrong type is reported at the value and replaced by a neutral
//!   one;
//! - an enum (always a plain string) is checked against its variants first;
//! - `${VAR}` in a string value is replaced from the environment (see [`super::env`]).
//!
//! Two wrapper types cooperate with the deserializer: [`Spanned`] carries the
//! position of a value so the conversion step can report semantic errors at the
//! right place, and [`OneOrMany`] accepts a single value where a list is expected.
//! Both are recognised by a reserved struct name, the technique toml's `Spanned`
//! uses; with any other deserializer they fail.

use std::cell::RefCell;
use std::fmt;
use std::marker::PhantomData;

use saphyr::{LoadableYamlNode, MarkedYaml, Scalar, ScanError, YamlData};
use serde::de::{self, DeserializeSeed, IntoDeserializer, Visitor};
use serde::Deserialize;

use super::diagnostic::{did_you_mean, nearest, Pos, Report};
use super::env::interpolate;

/// Reserved struct name through which [`Spanned`] asks for a node's position.
const SPANNED: &str = "$tagcache::config::Spanned";
/// Reserved newtype name through which [`OneOrMany`] accepts a lone value.
const ONE_OR_MANY: &str = "$tagcache::config::OneOrMany";

/// A value together with the position of the YAML node it was read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Spanned<T> {
    /// The value.
    pub(crate) value: T,
    /// Where its node starts.
    pub(crate) pos: Pos,
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Spanned<T> {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct SpannedVisitor<T>(PhantomData<T>);

        impl<'de, T: Deserialize<'de>> Visitor<'de> for SpannedVisitor<T> {
            type Value = Spanned<T>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a value with its position")
            }

            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Spanned<T>, A::Error> {
                let missing = || de::Error::custom("incomplete spanned value");
                let line: usize = seq.next_element()?.ok_or_else(missing)?;
                let col: usize = seq.next_element()?.ok_or_else(missing)?;
                let value: T = seq.next_element()?.ok_or_else(missing)?;
                Ok(Spanned {
                    value,
                    pos: Pos { line, col },
                })
            }
        }

        deserializer.deserialize_struct(SPANNED, &[], SpannedVisitor(PhantomData))
    }
}

/// A list that may also be written as a single value (`equals: open` or
/// `equals: [open, closed]`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct OneOrMany<T>(pub(crate) Vec<T>);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for OneOrMany<T> {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct OneOrManyVisitor<T>(PhantomData<T>);

        impl<'de, T: Deserialize<'de>> Visitor<'de> for OneOrManyVisitor<T> {
            type Value = OneOrMany<T>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a value or a list of values")
            }

            fn visit_newtype_struct<D: de::Deserializer<'de>>(
                self,
                deserializer: D,
            ) -> Result<OneOrMany<T>, D::Error> {
                Vec::<T>::deserialize(deserializer).map(OneOrMany)
            }
        }

        deserializer.deserialize_newtype_struct(ONE_OR_MANY, OneOrManyVisitor(PhantomData))
    }
}

/// An error a visitor returned to the deserializer.
///
/// Our deserializer itself never fails: it records problems in the [`Report`].
/// Visitors only return errors if a raw type asks for something this layer does
/// not support, which is a bug in `raw.rs`; it is still reported, at the node
/// where it happened, rather than panicking.
#[derive(Debug)]
pub(crate) struct Error {
    message: String,
    /// Already recorded in the report; only unwinding to a place that can skip it.
    reported: bool,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

impl de::Error for Error {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        Error {
            message: msg.to_string(),
            reported: false,
        }
    }
}

/// Reads `source` into `T`, recording every problem in `report`.
///
/// Returns `None` when the YAML itself cannot be parsed (reported as one
/// diagnostic at the position of the syntax error) or, through a bug in a raw
/// type, a visitor failed; otherwise a `T` built from whatever was valid, whose
/// neutral parts are covered by the errors in `report`.
pub(crate) fn from_str<T: de::DeserializeOwned>(
    source: &str,
    env: &dyn Fn(&str) -> Option<String>,
    report: Report,
) -> (Option<T>, Report) {
    let mut report = report;
    let docs = match MarkedYaml::load_from_str(source) {
        Ok(docs) => docs,
        Err(error) => {
            syntax_error(&error, source, &mut report);
            return (None, report);
        }
    };
    if let Some(second) = docs.get(1) {
        report.key_error(
            node_pos(second),
            "a config file holds one YAML document, but this is a second one",
            Some("remove the \"---\" line and merge the documents".to_string()),
        );
    }
    // An empty file (or one with only comments) reads as an empty mapping, so that
    // the conversion step reports what is missing.
    let empty = MarkedYaml {
        span: Default::default(),
        data: YamlData::Mapping(Default::default()),
    };
    let root = match docs.first() {
        Some(doc) if !matches!(kind(doc), Kind::Null) => doc,
        _ => &empty,
    };
    let ctx = Ctx {
        report: RefCell::new(report),
        env,
        chars: source.chars().collect(),
    };
    let de = De {
        node: root,
        ctx: &ctx,
        label: Label::Root,
        one_or_many: false,
    };
    let result = T::deserialize(de);
    let mut report = ctx.report.into_inner();
    match result {
        Ok(value) => (Some(value), report),
        Err(error) => {
            if !error.reported {
                report.error(node_pos(root), error.message, None);
            }
            (None, report)
        }
    }
}

fn syntax_error(error: &ScanError, source: &str, report: &mut Report) {
    let marker = error.marker();
    let pos = Pos {
        line: marker.line().max(1),
        col: marker.col() + 1,
    };
    let info = error.info();
    let (message, hint) = if info.contains("duplicated key") {
        // The marker is at the second occurrence of the key: name it.
        let key: String = source
            .lines()
            .nth(pos.line - 1)
            .unwrap_or_default()
            .chars()
            .skip(pos.col - 1)
            .take_while(|c| !matches!(c, ':' | ',' | '}' | '\n'))
            .collect();
        let key = key.trim().trim_matches(|c| c == '"' || c == '\'');
        (
            if key.is_empty() {
                "duplicate key in mapping".to_string()
            } else {
                format!("duplicate key {key:?} in mapping")
            },
            Some("each key may appear once in a mapping; remove or merge one of them".to_string()),
        )
    } else {
        // Tabs are the most common cause of baffling YAML errors; say so when the
        // offending line (or the one before) has one.
        let has_tab = source
            .lines()
            .skip(pos.line.saturating_sub(2))
            .take(2)
            .any(|line| line.contains('\t'));
        (
            format!("invalid YAML: {info}"),
            has_tab.then(|| {
                "YAML is indented with spaces; this part of the file contains a tab".to_string()
            }),
        )
    };
    report.error(pos, message, hint);
}

/// The position where `node` starts (1-based line and column).
fn node_pos(node: &MarkedYaml<'_>) -> Pos {
    Pos {
        line: node.span.start.line().max(1),
        col: node.span.start.col() + 1,
    }
}

/// State shared by every deserializer over one document.
struct Ctx<'a> {
    report: RefCell<Report>,
    env: &'a dyn Fn(&str) -> Option<String>,
    /// The source, by character, to recover the exact text of plain scalars.
    chars: Vec<char>,
}

/// What a node is, once tags are looked through.
enum Kind<'a> {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(&'a str),
    Seq(&'a [MarkedYaml<'a>]),
    Map(Vec<(&'a MarkedYaml<'a>, &'a MarkedYaml<'a>)>),
    /// A value saphyr could not resolve (e.g. `!!int abc`).
    Invalid,
}

fn kind<'a>(node: &'a MarkedYaml<'a>) -> Kind<'a> {
    match &node.data {
        YamlData::Value(Scalar::Null) => Kind::Null,
        YamlData::Value(Scalar::Boolean(b)) => Kind::Bool(*b),
        YamlData::Value(Scalar::Integer(i)) => Kind::Int(*i),
        YamlData::Value(Scalar::FloatingPoint(f)) => Kind::Float(f.into_inner()),
        YamlData::Value(Scalar::String(s)) => Kind::Str(s),
        // Only produced by lazy loading, which we do not use; read it as text.
        YamlData::Representation(s, _, _) => Kind::Str(s),
        YamlData::Sequence(items) => Kind::Seq(items),
        YamlData::Mapping(map) => Kind::Map(map.iter().collect()),
        // Custom tags (`!foo`) carry no meaning for us: read what they tag.
        YamlData::Tagged(_, inner) => kind(inner),
        YamlData::Alias(_) | YamlData::BadValue => Kind::Invalid,
    }
}

/// What a node was found to be, for "must be X, not Y" messages. Never quotes a
/// string, so that a secret in the wrong place is not echoed back.
fn found(kind: &Kind<'_>) -> &'static str {
    match kind {
        Kind::Null => "empty",
        Kind::Bool(_) => "a boolean",
        Kind::Int(_) | Kind::Float(_) => "a number",
        Kind::Str(_) => "a string",
        Kind::Seq(_) => "a list",
        Kind::Map(_) => "a mapping",
        Kind::Invalid => "an invalid value",
    }
}

/// How the value being read is named in messages.
#[derive(Clone)]
enum Label {
    /// The whole document.
    Root,
    /// The value of a key.
    Key(String),
    /// An item of the list under a key.
    Item(String),
    /// A key of the mapping under a key. Keys are never interpolated.
    KeyOf(String),
}

impl Label {
    fn subject(&self) -> String {
        match self {
            Label::Root => "the config file".to_string(),
            Label::Key(key) => format!("{key:?}"),
            Label::Item(key) => format!("each item of {key:?}"),
            Label::KeyOf(key) => format!("each key of {key:?}"),
        }
    }

    /// The name children of this value are labelled with.
    fn name(&self) -> String {
        match self {
            Label::Root => String::new(),
            Label::Key(key) | Label::Item(key) | Label::KeyOf(key) => key.clone(),
        }
    }
}

/// A deserializer over one node. It never fails on its own account.
struct De<'a> {
    node: &'a MarkedYaml<'a>,
    ctx: &'a Ctx<'a>,
    label: Label,
    /// Read a lone scalar as a one-item list (set by [`OneOrMany`]).
    one_or_many: bool,
}

impl<'a> De<'a> {
    fn child(&self, node: &'a MarkedYaml<'a>, label: Label) -> De<'a> {
        De {
            node,
            ctx: self.ctx,
            label,
            one_or_many: false,
        }
    }

    fn pos(&self) -> Pos {
        node_pos(self.node)
    }

    fn kind(&self) -> Kind<'a> {
        kind(self.node)
    }

    fn error(&self, message: String, hint: Option<String>) {
        self.ctx
            .report
            .borrow_mut()
            .error(self.pos(), message, hint);
    }

    /// Reports that the node is not what was `expected`.
    fn mismatch(&self, expected: &str) {
        let message = format!(
            "{} must be {expected}, not {}",
            self.label.subject(),
            found(&self.kind())
        );
        self.error(message, None);
    }

    /// The exact source text of a plain scalar (`1.50`, `0x10`, `true`).
    fn source_text(&self) -> Option<String> {
        let (start, end) = (self.node.span.start.index(), self.node.span.end.index());
        self.ctx
            .chars
            .get(start..end)
            .map(|chars| chars.iter().collect::<String>())
            .filter(|text| !text.is_empty())
    }

    /// `s` with `${VAR}` replaced; a problem is reported at this node and reads as "".
    fn interpolate(&self, s: &str) -> String {
        if matches!(self.label, Label::KeyOf(_)) {
            return s.to_string();
        }
        match interpolate(s, self.ctx.env) {
            Ok(text) => text,
            Err(error) => {
                let (message, hint) = error.describe();
                self.error(message, hint);
                String::new()
            }
        }
    }

    /// The text of a non-null scalar (interpolated if it is a string), or `None`
    /// after reporting that a string was expected.
    fn text(&self) -> Option<String> {
        match self.kind() {
            Kind::Str(s) => Some(self.interpolate(s)),
            Kind::Int(i) => Some(self.source_text().unwrap_or_else(|| i.to_string())),
            Kind::Float(f) => Some(self.source_text().unwrap_or_else(|| f.to_string())),
            Kind::Bool(b) => Some(self.source_text().unwrap_or_else(|| b.to_string())),
            Kind::Null | Kind::Seq(_) | Kind::Map(_) | Kind::Invalid => {
                self.mismatch("a string");
                None
            }
        }
    }

    /// For a string scalar holding `${VAR}`: its interpolated text, so that
    /// `tls: ${ORIGIN_TLS}` can still be a boolean.
    fn interpolated_scalar(&self) -> Option<String> {
        match self.kind() {
            Kind::Str(s) if s.contains("${") => Some(self.interpolate(s)),
            _ => None,
        }
    }

    /// An integer within `min..=max`, or `None` after reporting why not.
    fn integer(&self, min: i128, max: i128) -> Option<i128> {
        let expected = if min == 0 && max >= i128::from(i64::MAX) {
            "a whole number, 0 or more".to_string()
        } else if max >= i128::from(i64::MAX) {
            "a whole number".to_string()
        } else {
            format!("a whole number from {min} to {max}")
        };
        let value = match self.kind() {
            Kind::Int(i) => Some(i128::from(i)),
            _ => match self.interpolated_scalar() {
                Some(text) => text.trim().parse::<i128>().ok(),
                None => None,
            },
        };
        match value {
            Some(v) if (min..=max).contains(&v) => Some(v),
            Some(v) => {
                self.error(
                    format!("{} must be {expected}, not {v}", self.label.subject()),
                    None,
                );
                None
            }
            None => {
                self.mismatch(&expected);
                None
            }
        }
    }

    fn float(&self) -> f64 {
        let value = match self.kind() {
            // Thresholds are small numbers; exactness beyond 2^53 does not matter.
            Kind::Int(i) => Some(i as f64),
            Kind::Float(f) => Some(f),
            _ => self
                .interpolated_scalar()
                .and_then(|text| text.trim().parse::<f64>().ok()),
        };
        value.unwrap_or_else(|| {
            self.mismatch("a number");
            0.0
        })
    }

    fn items(&self) -> Vec<&'a MarkedYaml<'a>> {
        match self.kind() {
            Kind::Seq(items) => items.iter().collect(),
            Kind::Null => Vec::new(),
            Kind::Bool(_) | Kind::Int(_) | Kind::Float(_) | Kind::Str(_) if self.one_or_many => {
                vec![self.node]
            }
            _ => {
                self.mismatch("a list");
                Vec::new()
            }
        }
    }

    fn entries(&self) -> Vec<(&'a MarkedYaml<'a>, &'a MarkedYaml<'a>)> {
        match self.kind() {
            Kind::Map(entries) => entries,
            Kind::Null => Vec::new(),
            _ => {
                self.mismatch("a mapping");
                Vec::new()
            }
        }
    }

    /// The entries whose key is one of `fields`; every other key is reported.
    fn struct_entries(
        &self,
        name: &str,
        fields: &'static [&'static str],
    ) -> Vec<(&'a MarkedYaml<'a>, &'a MarkedYaml<'a>)> {
        let entries = self.entries();
        let place = self.struct_place(name, fields, &entries);
        let mut known = Vec::with_capacity(entries.len());
        for (key, value) in entries {
            let key_de = self.child(key, Label::KeyOf(self.label.name()));
            let key_text = match key_de.kind() {
                Kind::Str(s) => s.to_string(),
                Kind::Int(_) | Kind::Float(_) | Kind::Bool(_) => {
                    key_de.source_text().unwrap_or_default()
                }
                other => {
                    self.ctx.report.borrow_mut().key_error(
                        key_de.pos(),
                        format!("keys {place} must be names, not {}", found(&other)),
                        None,
                    );
                    continue;
                }
            };
            if fields.contains(&key_text.as_str()) {
                known.push((key, value));
                continue;
            }
            let mut report = self.ctx.report.borrow_mut();
            let hint = match nearest(&key_text, fields.iter().copied()) {
                Some(meant) => {
                    report.note_misspelling(self.pos(), meant);
                    format!("did you mean {meant:?}?")
                }
                None => format!("valid keys {place} are: {}", fields.join(", ")),
            };
            report.key_error(
                key_de.pos(),
                format!("unknown key {key_text:?} {place}"),
                Some(hint),
            );
        }
        known
    }

    /// "in route \"contact_list\"", "at the top level": where a struct's keys are.
    fn struct_place(
        &self,
        name: &str,
        fields: &[&str],
        entries: &[(&'a MarkedYaml<'a>, &'a MarkedYaml<'a>)],
    ) -> String {
        if matches!(self.label, Label::Root) {
            return "at the top level".to_string();
        }
        // A struct with a `name` key (a route) is best identified by it.
        let own_name = fields.contains(&"name").then(|| {
            entries.iter().find_map(|(k, v)| match (kind(k), kind(v)) {
                (Kind::Str("name"), Kind::Str(value)) => Some(value),
                _ => None,
            })
        });
        match own_name.flatten() {
            Some(own) => format!("in {name} {own:?}"),
            None => format!("in {name}"),
        }
    }
}

/// Implements an integer method of the deserializer: out-of-range and
/// non-integer values are reported and read as 0.
macro_rules! deserialize_integer {
    ($method:ident, $visit:ident, $ty:ty) => {
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
            let value = self
                .integer(i128::from(<$ty>::MIN), i128::from(<$ty>::MAX))
                .and_then(|v| <$ty>::try_from(v).ok())
                .unwrap_or_default();
            visitor.$visit(value)
        }
    };
}

impl<'de, 'a> de::Deserializer<'de> for De<'a> {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.kind() {
            Kind::Null => visitor.visit_unit(),
            Kind::Bool(b) => visitor.visit_bool(b),
            Kind::Int(i) => visitor.visit_i64(i),
            Kind::Float(f) => visitor.visit_f64(f),
            Kind::Str(s) => visitor.visit_string(self.interpolate(s)),
            Kind::Seq(_) => self.deserialize_seq(visitor),
            Kind::Map(_) => self.deserialize_map(visitor),
            Kind::Invalid => {
                self.mismatch("a valid value");
                visitor.visit_unit()
            }
        }
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        let value = match self.kind() {
            Kind::Bool(b) => Some(b),
            _ => self
                .interpolated_scalar()
                .and_then(|text| text.trim().parse::<bool>().ok()),
        };
        visitor.visit_bool(value.unwrap_or_else(|| {
            self.mismatch("true or false");
            false
        }))
    }

    deserialize_integer!(deserialize_i8, visit_i8, i8);
    deserialize_integer!(deserialize_i16, visit_i16, i16);
    deserialize_integer!(deserialize_i32, visit_i32, i32);
    deserialize_integer!(deserialize_i64, visit_i64, i64);
    deserialize_integer!(deserialize_u8, visit_u8, u8);
    deserialize_integer!(deserialize_u16, visit_u16, u16);
    deserialize_integer!(deserialize_u32, visit_u32, u32);
    deserialize_integer!(deserialize_u64, visit_u64, u64);

    fn deserialize_f32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_f64(visitor)
    }

    fn deserialize_f64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_f64(self.float())
    }

    fn deserialize_char<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        let text = self.text();
        let mut chars = text.as_deref().unwrap_or_default().chars();
        match (chars.next(), chars.next()) {
            (Some(c), None) => visitor.visit_char(c),
            _ => {
                if text.is_some() {
                    self.mismatch("a single character");
                }
                visitor.visit_char(' ')
            }
        }
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_string(self.text().unwrap_or_default())
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_str(visitor)
    }

    fn deserialize_bytes<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_byte_buf(self.text().unwrap_or_default().into_bytes())
    }

    fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_bytes(visitor)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.kind() {
            Kind::Null => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_unit()
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        visitor.visit_unit()
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        let one_or_many = name == ONE_OR_MANY;
        visitor.visit_newtype_struct(De {
            one_or_many,
            ..self
        })
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        let label = Label::Item(self.label.name());
        let items: Vec<De<'a>> = self
            .items()
            .into_iter()
            .map(|node| self.child(node, label.clone()))
            .collect();
        visitor.visit_seq(SeqDe {
            items: items.into_iter(),
        })
    }

    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        let entries = self.entries();
        visitor.visit_map(MapDe::new(&self, entries))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        if name == SPANNED {
            let pos = self.pos();
            return visitor.visit_seq(SpannedDe {
                line: Some(pos.line),
                col: Some(pos.col),
                value: Some(self),
            });
        }
        let entries = self.struct_entries(name, fields);
        visitor.visit_map(MapDe::new(&self, entries))
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        let expected = format!(
            "one of {}",
            variants
                .iter()
                .map(|v| format!("{v:?}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        // Only the plain string form: raw enums are all unit-only (`unknown_query: ignore`).
        let variant = match self.kind() {
            Kind::Str(s) => Some(self.interpolate(s)),
            _ => {
                self.mismatch(&expected);
                None
            }
        };
        let variant = match variant {
            Some(v) if variants.contains(&v.as_str()) => v,
            other => {
                if let Some(v) = other {
                    let hint = did_you_mean(&v, variants.iter().copied());
                    self.error(
                        format!("{} must be {expected}, not {v:?}", self.label.subject()),
                        hint,
                    );
                }
                // Carry on with the first variant; the error above stops the load.
                match variants.first() {
                    Some(first) => (*first).to_string(),
                    None => {
                        return Err(de::Error::custom("an enum without variants cannot be read"))
                    }
                }
            }
        };
        visitor.visit_enum(variant.into_deserializer())
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_str(visitor)
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_unit()
    }
}

/// The items of a list.
struct SeqDe<'a> {
    items: std::vec::IntoIter<De<'a>>,
}

impl<'de, 'a> de::SeqAccess<'de> for SeqDe<'a> {
    type Error = Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Error> {
        let Some(item) = self.items.next() else {
            return Ok(None);
        };
        let pos = item.pos();
        let report = &item.ctx.report;
        match seed.deserialize(item) {
            Ok(value) => Ok(Some(value)),
            Err(error) => {
                // A seed cannot be retried, so the list ends here; the error stops the load.
                if !error.reported {
                    report.borrow_mut().error(pos, error.message, None);
                }
                Ok(None)
            }
        }
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.items.len())
    }
}

/// The entries of a mapping, or the known entries of a struct.
struct MapDe<'a> {
    entries: std::vec::IntoIter<(De<'a>, De<'a>)>,
    value: Option<De<'a>>,
}

impl<'a> MapDe<'a> {
    fn new(parent: &De<'a>, entries: Vec<(&'a MarkedYaml<'a>, &'a MarkedYaml<'a>)>) -> Self {
        let name = parent.label.name();
        let pairs: Vec<(De<'a>, De<'a>)> = entries
            .into_iter()
            .map(|(key, value)| {
                let key_de = parent.child(key, Label::KeyOf(name.clone()));
                let value_label = match key_de.kind() {
                    Kind::Str(s) => Label::Key(s.to_string()),
                    _ => Label::Key(key_de.source_text().unwrap_or_default()),
                };
                (key_de, parent.child(value, value_label))
            })
            .collect();
        MapDe {
            entries: pairs.into_iter(),
            value: None,
        }
    }
}

impl<'de, 'a> de::MapAccess<'de> for MapDe<'a> {
    type Error = Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Error> {
        let Some((key, value)) = self.entries.next() else {
            return Ok(None);
        };
        self.value = Some(value);
        seed.deserialize(key).map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Error> {
        let Some(value) = self.value.take() else {
            return Err(de::Error::custom("a mapping value was read before its key"));
        };
        let pos = value.pos();
        let report = &value.ctx.report;
        seed.deserialize(value).map_err(|mut error| {
            if !error.reported {
                report.borrow_mut().error(pos, error.message.clone(), None);
                error.reported = true;
            }
            error
        })
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.entries.len())
    }
}

/// The three parts of a [`Spanned`]: line, column, value.
struct SpannedDe<'a> {
    line: Option<usize>,
    col: Option<usize>,
    value: Option<De<'a>>,
}

impl<'de, 'a> de::SeqAccess<'de> for SpannedDe<'a> {
    type Error = Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Error> {
        if let Some(line) = self.line.take() {
            return seed.deserialize(line.into_deserializer()).map(Some);
        }
        if let Some(col) = self.col.take() {
            return seed.deserialize(col.into_deserializer()).map(Some);
        }
        match self.value.take() {
            Some(value) => seed.deserialize(value).map(Some),
            None => Ok(None),
        }
    }
}
