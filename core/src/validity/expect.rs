//! What a request expects of its answer: read from `response_format` and `tools`, its schemas
//! compiled once (see [`super::cache`]).
//!
//! - `response_format: {"type": "json_schema", "json_schema": {"schema": S}}`: the message
//!   content must parse as JSON and satisfy `S` (JSON Schema 2020-12). Without `schema`, any JSON.
//! - `response_format: {"type": "json_object"}`: the content must parse as a JSON object.
//! - `tools: [{"type": "function", "function": {"name": N, "parameters": P}}]`: each tool call's
//!   `arguments` in the answer must parse as JSON and satisfy the `parameters` of the tool it
//!   names; a call to a tool the request did not offer is invalid.

use crate::request::RequestError;
use serde_json::Value;

/// Schemas nested deeper than this are refused before anything is sent (the answers they
/// check are bounded by serde_json's own recursion limit of 128).
pub const MAX_SCHEMA_DEPTH: usize = 64;

/// What the message content must be.
#[derive(Debug)]
pub(crate) enum ContentRule {
    /// Anything (only tools are checked).
    Free,
    /// Any JSON value (`json_schema` without a `schema`).
    Json,
    /// A JSON object (`json_object`).
    JsonObject,
    /// JSON satisfying a schema.
    Schema(jsonschema::Validator),
}

/// A request's compiled expectation. The machine builds and caches these itself; they are
/// public for callers who want the same check outside a route (and for the bench).
#[derive(Debug)]
pub struct Expectation {
    pub(crate) content: ContentRule,
    /// The offered function tools: name and compiled `parameters` (none: any JSON arguments).
    pub(crate) tools: Vec<(String, Option<jsonschema::Validator>)>,
}

/// A schema that does not compile: the field and the compiler's message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaError {
    /// The request field holding the schema, e.g. `tools[0].function.parameters`.
    pub field: String,
    /// The compiler's message.
    pub message: String,
}

fn shape(field: impl Into<String>, problem: impl Into<String>) -> RequestError {
    RequestError::Field {
        field: field.into(),
        problem: problem.into(),
    }
}

/// Whether the request asks for anything checkable (two map look-ups: what every request pays).
pub(crate) fn wants_check(body: &serde_json::Map<String, Value>) -> bool {
    // Anything but an explicit `{"type": "text"}` is checked (a malformed one is refused).
    let structured = body
        .get("response_format")
        .is_some_and(|f| !f.is_null() && f.get("type").and_then(Value::as_str) != Some("text"));
    structured || body.get("tools").is_some_and(|t| !t.is_null())
}

/// Checks the shape of `response_format` and `tools` when present, so a malformed one is a
/// typed error before anything is sent. Compiling the schemas is the machine's (it caches them).
pub(crate) fn check_shape(body: &serde_json::Map<String, Value>) -> Result<(), RequestError> {
    if let Some(format) = body.get("response_format").filter(|v| !v.is_null()) {
        let Some(format) = format.as_object() else {
            return Err(shape("response_format", "must be an object with a `type`"));
        };
        match format.get("type").and_then(Value::as_str) {
            Some("text" | "json_object") => {}
            Some("json_schema") => {
                let Some(spec) = format.get("json_schema").and_then(Value::as_object) else {
                    return Err(shape(
                        "response_format.json_schema",
                        "is required for type `json_schema` and must be an object",
                    ));
                };
                if spec.get("name").is_some_and(|n| !n.is_string()) {
                    return Err(shape(
                        "response_format.json_schema.name",
                        "must be a string",
                    ));
                }
                if let Some(schema) = spec.get("schema") {
                    schema_shape(schema, "response_format.json_schema.schema")?;
                }
            }
            Some(_) => {
                return Err(shape(
                    "response_format.type",
                    "must be `text`, `json_object` or `json_schema`",
                ));
            }
            None => {
                return Err(shape(
                    "response_format.type",
                    "is required and must be a string",
                ));
            }
        }
    }
    if let Some(tools) = body.get("tools").filter(|v| !v.is_null()) {
        let Some(tools) = tools.as_array() else {
            return Err(shape("tools", "must be an array"));
        };
        for (i, tool) in tools.iter().enumerate() {
            if tool.get("type").and_then(Value::as_str) != Some("function") {
                continue; // Other tool kinds are the codecs' to accept or refuse.
            }
            let Some(function) = tool.get("function").and_then(Value::as_object) else {
                return Err(shape(format!("tools[{i}].function"), "must be an object"));
            };
            if !function.get("name").is_some_and(Value::is_string) {
                return Err(shape(
                    format!("tools[{i}].function.name"),
                    "is required and must be a string",
                ));
            }
            if let Some(parameters) = function.get("parameters") {
                schema_shape(parameters, &format!("tools[{i}].function.parameters"))?;
            }
        }
    }
    Ok(())
}

fn schema_shape(schema: &Value, field: &str) -> Result<(), RequestError> {
    if !(schema.is_object() || schema.is_boolean()) {
        return Err(shape(
            field,
            "must be a JSON Schema (an object or a boolean)",
        ));
    }
    if depth(schema, 0) > MAX_SCHEMA_DEPTH {
        return Err(shape(
            field,
            format!("is nested deeper than {MAX_SCHEMA_DEPTH} levels"),
        ));
    }
    Ok(())
}

/// Nesting depth, stopping as soon as it passes the limit (so a deep value costs no stack).
fn depth(value: &Value, at: usize) -> usize {
    if at > MAX_SCHEMA_DEPTH {
        return at;
    }
    match value {
        Value::Array(items) => items.iter().map(|v| depth(v, at + 1)).max().unwrap_or(at),
        Value::Object(map) => map.values().map(|v| depth(v, at + 1)).max().unwrap_or(at),
        _ => at,
    }
}

fn compile(schema: &Value, field: impl Into<String>) -> Result<jsonschema::Validator, SchemaError> {
    jsonschema::options()
        .with_draft(jsonschema::Draft::Draft202012)
        .build(schema)
        .map_err(|e| SchemaError {
            field: field.into(),
            message: super::check::clip(&e.to_string()),
        })
}

impl Expectation {
    /// Compiles what `response_format` and `tools` ask for (their shape already checked); `None`
    /// when they ask for nothing checkable.
    pub fn compile(
        response_format: Option<&Value>,
        tools: Option<&Value>,
    ) -> Result<Option<Expectation>, SchemaError> {
        let content = match response_format
            .and_then(|f| f.get("type"))
            .and_then(Value::as_str)
        {
            Some("json_object") => ContentRule::JsonObject,
            Some("json_schema") => {
                match response_format
                    .and_then(|f| f.get("json_schema"))
                    .and_then(|s| s.get("schema"))
                {
                    Some(schema) => {
                        ContentRule::Schema(compile(schema, "response_format.json_schema.schema")?)
                    }
                    None => ContentRule::Json,
                }
            }
            _ => ContentRule::Free,
        };
        let mut compiled = Vec::new();
        for (i, tool) in tools
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            let Some(function) = tool.get("function") else {
                continue;
            };
            let Some(name) = function.get("name").and_then(Value::as_str) else {
                continue;
            };
            let parameters = match function.get("parameters") {
                Some(p) => Some(compile(p, format!("tools[{i}].function.parameters"))?),
                None => None,
            };
            compiled.push((name.to_owned(), parameters));
        }
        if matches!(content, ContentRule::Free) && compiled.is_empty() {
            return Ok(None);
        }
        Ok(Some(Expectation {
            content,
            tools: compiled,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn shape_of(body: Value) -> Result<(), RequestError> {
        check_shape(body.as_object().unwrap())
    }

    #[test]
    fn malformed_formats_and_tools_name_their_field() {
        let field = |body: Value| match shape_of(body).unwrap_err() {
            RequestError::Field { field, .. } => field,
            other => panic!("{other:?}"),
        };
        assert_eq!(field(json!({"response_format": "json"})), "response_format");
        assert_eq!(
            field(json!({"response_format": {"type": "yaml"}})),
            "response_format.type"
        );
        assert_eq!(
            field(json!({"response_format": {"type": "json_schema"}})),
            "response_format.json_schema"
        );
        assert_eq!(
            field(
                json!({"response_format": {"type": "json_schema", "json_schema": {"schema": 3}}})
            ),
            "response_format.json_schema.schema"
        );
        assert_eq!(field(json!({"tools": {}})), "tools");
        assert_eq!(
            field(json!({"tools": [{"type": "function", "function": {"parameters": {}}}]})),
            "tools[0].function.name"
        );
        let mut deep = json!({"type": "object"});
        for _ in 0..100 {
            deep = json!({"properties": {"x": deep}});
        }
        assert_eq!(
            field(
                json!({"response_format": {"type": "json_schema", "json_schema": {"schema": deep}}})
            ),
            "response_format.json_schema.schema"
        );
        shape_of(json!({"response_format": {"type": "text"}, "tools": null})).unwrap();
    }

    #[test]
    fn a_schema_that_does_not_compile_names_its_field() {
        let format = json!({"type": "json_schema", "json_schema": {"schema": {"type": "strnig"}}});
        let e = Expectation::compile(Some(&format), None).unwrap_err();
        assert_eq!(e.field, "response_format.json_schema.schema");
        let tools = json!([{"type": "function", "function": {"name": "f", "parameters": {"minimum": "x"}}}]);
        let e = Expectation::compile(None, Some(&tools)).unwrap_err();
        assert_eq!(e.field, "tools[0].function.parameters");
    }

    #[test]
    fn text_and_no_tools_expect_nothing() {
        let format = json!({"type": "text"});
        assert!(Expectation::compile(Some(&format), None).unwrap().is_none());
        assert!(!wants_check(
            json!({"response_format": {"type": "text"}})
                .as_object()
                .unwrap()
        ));
        assert!(wants_check(json!({"tools": []}).as_object().unwrap()));
    }
}
