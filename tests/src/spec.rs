//! Validation of the router's output against the official OpenAI OpenAPI spec.
//!
//! The router promises that every response body and every stream chunk it hands back has the
//! OpenAI shape, whichever provider served it. "The OpenAI shape" is not ours to define: it is
//! `CreateChatCompletionResponse` and `CreateChatCompletionStreamResponse` in
//! `tests/spec/openai-openapi.yaml`, a verbatim copy of `openai/openai-openapi` (see
//! `tests/fixtures/SOURCES.md`). This module compiles those two schemas once and checks JSON
//! values against them, offline.
//!
//! The spec declares OpenAPI 3.1, whose schemas are JSON Schema 2020-12, but it still uses the
//! OpenAPI 3.0 keyword `nullable: true` in many places (for example on a stream choice's
//! `finish_reason`). Read literally as 2020-12, `nullable` is an unknown keyword and
//! `{"type": "string", "nullable": true}` rejects `null`, which would reject every real stream
//! chunk OpenAI sends. So the loader rewrites `nullable: true` into the 2020-12 equivalent
//! (see [`normalize_nullable`]) and changes nothing else: `additionalProperties`, `required`,
//! `enum` and the rest apply exactly as written. `format` is not asserted (the 2020-12 default,
//! made explicit here), because the spec's formats are mostly OpenAPI-specific (`unixtime`,
//! `int64`, `double`, `binary`) and are annotations, not constraints, in the spec's own dialect.

use std::path::PathBuf;
use std::sync::OnceLock;

use jsonschema::{Draft, Registry, Validator};
use serde_json::{Map, Value, json};

/// The URI the spec document is registered under. Only a name for `$ref` resolution: the
/// validator is built offline and never fetches anything, and `.invalid` cannot resolve anyway.
const SPEC_URI: &str = "https://f3dx-router.invalid/openai-openapi.json";

/// Spec component that every non-streamed router response must validate against.
pub const RESPONSE_SCHEMA: &str = "CreateChatCompletionResponse";
/// Spec component that every `data:` chunk of a routed stream (other than `[DONE]`) must
/// validate against.
pub const STREAM_CHUNK_SCHEMA: &str = "CreateChatCompletionStreamResponse";

/// The OpenAI spec's chat-completion schemas, compiled once.
///
/// Holds only compiled validators, so it is cheap to share; use [`OpenAiSpec::get`] rather than
/// [`OpenAiSpec::load`] in tests, because loading parses a 3 MB YAML file and compiles the
/// reachable part of the spec.
pub struct OpenAiSpec {
    response: Validator,
    stream_chunk: Validator,
}

impl std::fmt::Debug for OpenAiSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenAiSpec")
            .field("response", &RESPONSE_SCHEMA)
            .field("stream_chunk", &STREAM_CHUNK_SCHEMA)
            .finish()
    }
}

impl OpenAiSpec {
    /// Path of the vendored spec, `tests/spec/openai-openapi.yaml`.
    ///
    /// Resolved from this crate's manifest directory so tests work from a plain clone, where
    /// the workspace's shared reference directory does not exist.
    pub fn spec_path() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("spec/openai-openapi.yaml")
    }

    /// Loads `tests/spec/openai-openapi.yaml` and compiles validators for
    /// `CreateChatCompletionResponse` and `CreateChatCompletionStreamResponse`.
    ///
    /// Panics if the file is missing or the spec does not compile: this is test
    /// infrastructure, and a broken spec copy must stop the test run loudly rather than let
    /// validation silently pass.
    pub fn load() -> Self {
        let path = Self::spec_path();
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
        Self::from_yaml(&text)
    }

    /// Compiles the two chat-completion validators from the text of an OpenAPI document.
    ///
    /// Separate from [`OpenAiSpec::load`] so a test can feed a modified spec (for example to
    /// check the validator against a future spec revision) without touching the vendored file.
    pub fn from_yaml(text: &str) -> Self {
        let JsonFromYaml(spec) =
            serde_yaml::from_str(text).unwrap_or_else(|e| panic!("parsing OpenAPI YAML: {e}"));
        let mut schemas = spec
            .get("components")
            .and_then(|c| c.get("schemas"))
            .cloned()
            .expect("OpenAPI document has no components.schemas");
        normalize_nullable(&mut schemas);
        // Only `components.schemas` is kept, at the same path, so the spec's own
        // `#/components/schemas/X` references resolve unchanged against this document.
        let document = json!({ "components": { "schemas": schemas } });

        let registry = Registry::new()
            .draft(Draft::Draft202012)
            .add(SPEC_URI, document)
            .and_then(|b| b.prepare())
            .unwrap_or_else(|e| panic!("indexing OpenAPI schemas: {e}"));
        let compile = |name: &str| -> Validator {
            jsonschema::options()
                .with_draft(Draft::Draft202012)
                .with_registry(&registry)
                .offline()
                .should_validate_formats(false)
                .build(&json!({ "$ref": format!("{SPEC_URI}#/components/schemas/{name}") }))
                .unwrap_or_else(|e| panic!("compiling {name}: {e}"))
        };
        OpenAiSpec {
            response: compile(RESPONSE_SCHEMA),
            stream_chunk: compile(STREAM_CHUNK_SCHEMA),
        }
    }

    /// A process-wide shared instance, compiled on first use.
    ///
    /// Compiling takes long enough in a debug build that doing it per test would dominate
    /// the test run; every test thread shares this one.
    pub fn get() -> &'static OpenAiSpec {
        static SPEC: OnceLock<OpenAiSpec> = OnceLock::new();
        SPEC.get_or_init(OpenAiSpec::load)
    }

    /// Checks a non-streamed body against `CreateChatCompletionResponse`.
    ///
    /// Returns every violation as `"<instance path>: <error>"` (the path is a JSON pointer,
    /// empty for the root), so a failing test names the field that broke the contract.
    pub fn validate_response(&self, json: &Value) -> Result<(), Vec<String>> {
        collect(&self.response, json)
    }

    /// Checks one stream chunk (the JSON of one `data:` line) against
    /// `CreateChatCompletionStreamResponse`. Same error format as
    /// [`OpenAiSpec::validate_response`].
    pub fn validate_stream_chunk(&self, json: &Value) -> Result<(), Vec<String>> {
        collect(&self.stream_chunk, json)
    }
}

fn collect(validator: &Validator, json: &Value) -> Result<(), Vec<String>> {
    let errors: Vec<String> = validator
        .iter_errors(json)
        .map(|e| format!("{}: {}", e.instance_path(), e))
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

/// A `serde_json::Value` deserialized from YAML, tolerating integers beyond 64 bits.
///
/// The spec has bounds like `seed.minimum: -9223372036854776000` (a float printed as an
/// integer, just below `i64::MIN`). serde_yaml hands such a literal over as i128, which both
/// `serde_json::Value` and `serde_yaml::Value` refuse. Here it becomes the f64 it was printed
/// from. Non-string mapping keys (YAML allows them) are stringified, as JSON requires.
struct JsonFromYaml(Value);

impl<'de> serde::Deserialize<'de> for JsonFromYaml {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(JsonFromYamlVisitor).map(JsonFromYaml)
    }
}

struct JsonFromYamlVisitor;

impl<'de> serde::de::Visitor<'de> for JsonFromYamlVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any YAML value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(v.into())
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(v.into())
    }
    fn visit_i128<E: serde::de::Error>(self, v: i128) -> Result<Value, E> {
        match i64::try_from(v) {
            Ok(v) => Ok(v.into()),
            #[allow(clippy::cast_precision_loss)] // the literal was printed from an f64
            Err(_) => self.visit_f64(v as f64),
        }
    }
    fn visit_u128<E: serde::de::Error>(self, v: u128) -> Result<Value, E> {
        match u64::try_from(v) {
            Ok(v) => Ok(v.into()),
            #[allow(clippy::cast_precision_loss)] // the literal was printed from an f64
            Err(_) => self.visit_f64(v as f64),
        }
    }
    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Value, E> {
        serde_json::Number::from_f64(v)
            .map(Value::Number)
            .ok_or_else(|| E::custom(format!("{v} has no JSON representation")))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_some<D: serde::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(JsonFromYaml(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut object = Map::new();
        while let Some((JsonFromYaml(key), JsonFromYaml(value))) = map.next_entry()? {
            let key = match key {
                Value::String(key) => key,
                other => other.to_string(),
            };
            object.insert(key, value);
        }
        Ok(Value::Object(object))
    }
}

/// Rewrites the OpenAPI 3.0 keyword `nullable` into JSON Schema 2020-12, in place.
///
/// The spec is OpenAPI 3.1 but keeps `nullable: true` on many schemas, and OpenAI's live API
/// sends `null` there (every stream chunk has `"finish_reason": null` until the last). A
/// schema object with `nullable: true` becomes:
/// - `type: T` (a single string, no combinators) → `type: [T, "null"]`, with `null` added to
///   its `enum` if it has one (an `enum` without `null` would otherwise still reject it);
/// - anything else (`$ref`, `allOf`/`anyOf`/`oneOf`, no `type`) →
///   `anyOf: [<the schema without nullable>, {"type": "null"}]`.
///
/// `nullable: false` is dropped (it is the default). Nothing else is touched. The walk is
/// keyword-blind, so a `nullable: true` inside an `example` or `default` value is rewritten
/// too; those are annotations and never affect validation.
pub fn normalize_nullable(value: &mut Value) {
    match value {
        Value::Array(items) => items.iter_mut().for_each(normalize_nullable),
        Value::Object(map) => {
            map.values_mut().for_each(normalize_nullable);
            match map.get("nullable") {
                Some(Value::Bool(true)) => {
                    map.remove("nullable");
                    make_nullable(map);
                }
                Some(Value::Bool(false)) => {
                    map.remove("nullable");
                }
                _ => {}
            }
        }
        _ => {}
    }
}

fn make_nullable(map: &mut Map<String, Value>) {
    let combinator = ["$ref", "allOf", "anyOf", "oneOf", "not"]
        .iter()
        .any(|k| map.contains_key(*k));
    if let (false, Some(Value::String(ty))) = (combinator, map.get("type")) {
        let ty = ty.clone();
        if ty != "null" {
            map.insert("type".into(), json!([ty, "null"]));
        }
        if let Some(Value::Array(options)) = map.get_mut("enum") {
            if !options.contains(&Value::Null) {
                options.push(Value::Null);
            }
        }
        return;
    }
    let inner = std::mem::take(map);
    map.insert(
        "anyOf".into(),
        json!([Value::Object(inner), {"type": "null"}]),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nullable_type_admits_null_and_keeps_enum() {
        let mut s = json!({"type": "string", "enum": ["stop"], "nullable": true});
        normalize_nullable(&mut s);
        assert_eq!(
            s,
            json!({"type": ["string", "null"], "enum": ["stop", null]})
        );
    }

    #[test]
    fn nullable_ref_is_wrapped_in_any_of() {
        let mut s = json!({"$ref": "#/x", "nullable": true, "description": "d"});
        normalize_nullable(&mut s);
        assert_eq!(
            s,
            json!({"anyOf": [{"$ref": "#/x", "description": "d"}, {"type": "null"}]})
        );
    }

    #[test]
    fn nullable_false_is_dropped_and_nested_schemas_are_rewritten() {
        let mut s = json!({"type": "object", "nullable": false,
            "properties": {"a": {"type": "integer", "nullable": true}}});
        normalize_nullable(&mut s);
        assert_eq!(
            s,
            json!({"type": "object", "properties": {"a": {"type": ["integer", "null"]}}})
        );
    }
}
