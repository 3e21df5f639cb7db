//! The JSON Schema of the config file (`tagcache schema`), generated from the
//! `raw.rs` structs the loader reads, so the two cannot drift apart.
//!
//! The raw structs derive `JsonSchema`, and their doc comments become the
//! descriptions. This module gives the schemas of the types the derive cannot
//! see through: [`Spanned<T>`](super::yaml::Spanned) is `T` (the position is
//! the deserializer's business), a [`OneOrMany<T>`](super::yaml::OneOrMany)
//! is a `T` or a list of them, and an [`Entries`](super::raw::Entries)
//! mapping is an object of `V`s. [`Size`], [`DurationText`] and
//! [`ScalarText`] describe strings the loader parses later.
//!
//! A value written `"${VAR}"` is a string for the schema, so fields that take
//! numbers or booleans accept it only in the loader, which interpolates
//! before it reads the value.

use std::borrow::Cow;

use schemars::{json_schema, JsonSchema, Schema, SchemaGenerator};

use super::raw::{Config, Entries};
use super::yaml::{OneOrMany, Spanned};

/// The JSON Schema (draft 2020-12) of the config file, pretty-printed.
pub fn json_schema() -> String {
    let generator = schemars::generate::SchemaSettings::draft2020_12()
        .for_deserialize()
        .into_generator();
    let mut schema = generator.into_root_schema_for::<Config>();
    schema.insert("title".into(), "tagcache config".into());
    // A `Schema` is a JSON value; pretty-printing one cannot fail.
    serde_json::to_string_pretty(&schema).unwrap_or_default()
}

impl<T: JsonSchema> JsonSchema for Spanned<T> {
    fn inline_schema() -> bool {
        T::inline_schema()
    }

    fn schema_name() -> Cow<'static, str> {
        T::schema_name()
    }

    fn schema_id() -> Cow<'static, str> {
        T::schema_id()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        T::json_schema(generator)
    }
}

impl<T: JsonSchema> JsonSchema for OneOrMany<T> {
    fn inline_schema() -> bool {
        true
    }

    fn schema_name() -> Cow<'static, str> {
        format!("OneOrMany_{}", T::schema_name()).into()
    }

    fn schema_id() -> Cow<'static, str> {
        format!("OneOrMany<{}>", T::schema_id()).into()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let one = generator.subschema_for::<T>();
        json_schema!({
            "anyOf": [one, { "type": "array", "items": one }]
        })
    }
}

impl<K, V: JsonSchema> JsonSchema for Entries<K, V> {
    fn inline_schema() -> bool {
        true
    }

    fn schema_name() -> Cow<'static, str> {
        format!("Map_of_{}", V::schema_name()).into()
    }

    fn schema_id() -> Cow<'static, str> {
        format!("Entries<{}>", V::schema_id()).into()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let value = generator.subschema_for::<V>();
        json_schema!({
            "type": "object",
            "additionalProperties": value
        })
    }
}

/// A size: `256MiB`, `1GB`, `512KiB`, or a number of bytes.
pub(crate) struct Size;

impl JsonSchema for Size {
    fn schema_name() -> Cow<'static, str> {
        "Size".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": ["string", "integer"],
            "description": "A size: a number of bytes with an optional unit, B, KB, MB, GB, TB \
                (powers of 1000) or KiB, MiB, GiB, TiB (powers of 1024), such as 256MiB or 1024.",
            "minimum": 0
        })
    }
}

/// A duration: `500ms`, `180s`, `10m`, `1h30m`.
pub(crate) struct DurationText;

impl JsonSchema for DurationText {
    fn schema_name() -> Cow<'static, str> {
        "Duration".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "description": "A duration: numbers with units ms, s, m, h or d, such as 500ms, \
                180s, 10m or 1h30m."
        })
    }
}

/// A scalar read as its text (`page: 1` is `"1"`).
pub(crate) struct ScalarText;

impl JsonSchema for ScalarText {
    fn inline_schema() -> bool {
        true
    }

    fn schema_name() -> Cow<'static, str> {
        "ScalarText".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({ "type": ["string", "number", "boolean"] })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    #[test]
    fn the_schema_describes_the_file() {
        let schema: Value = serde_json::from_str(&super::json_schema()).unwrap();
        assert_eq!(
            schema["$schema"],
            "https://json-schema.org/draft/2020-12/schema"
        );
        assert_eq!(schema["additionalProperties"], false);
        let props = &schema["properties"];
        // Doc comments are descriptions.
        assert!(
            props["listen"]["description"]
                .as_str()
                .unwrap()
                .contains("Address the proxy listens on"),
            "{}",
            props["listen"]
        );
        // Spanned<T> is T; Entries is a map; OneOrMany is one or a list.
        assert_eq!(
            props["debug_headers"]["type"],
            serde_json::json!(["boolean", "null"])
        );
        assert_eq!(props["events"]["type"], "object");
        assert_eq!(
            props["events"]["additionalProperties"]["items"]["type"],
            "string"
        );
        let jwt = &schema["$defs"]["Jwt"]["properties"]["algorithms"];
        assert!(jwt.to_string().contains("anyOf"), "{jwt}");
        assert_eq!(schema["$defs"]["Route"]["additionalProperties"], false);
        assert_eq!(
            schema["$defs"]["Route"]["properties"]["ttl"]["anyOf"][0]["$ref"],
            "#/$defs/Duration"
        );
    }
}
