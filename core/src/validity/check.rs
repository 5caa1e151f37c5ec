//! Checking an answer against its request's [`Expectation`]: a whole `chat.completion` body, or
//! the content and tool-call arguments a stream assembled. The first failure is reported with
//! where it is (`choices[0].message.content/address/zip`) and what is wrong.

use super::expect::{ContentRule, Expectation};
use serde::Deserialize;
use serde_json::Value;
use std::borrow::Cow;
use std::fmt;

/// Validation messages are cut to this many bytes (a message may quote the answer).
const MAX_MESSAGE: usize = 200;

/// Why an answer is invalid: where, and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    /// Where in the answer, e.g. `choices[0].message.content/items/2`.
    pub path: String,
    /// What is wrong, e.g. `"x" is not of type "integer"` (at most 200 bytes).
    pub message: String,
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "at {}: {}", self.path, self.message)
    }
}

/// `message` cut to [`MAX_MESSAGE`] bytes on a character boundary.
pub(crate) fn clip(message: &str) -> String {
    if message.len() <= MAX_MESSAGE {
        return message.to_owned();
    }
    let mut end = MAX_MESSAGE;
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &message[..end])
}

fn invalid(path: impl Into<String>, message: impl Into<String>) -> Invalid {
    Invalid {
        path: path.into(),
        message: message.into(),
    }
}

#[derive(Deserialize)]
struct Completion<'a> {
    #[serde(borrow, default)]
    choices: Vec<Choice<'a>>,
}

#[derive(Deserialize)]
struct Choice<'a> {
    #[serde(borrow)]
    message: Message<'a>,
}

#[derive(Deserialize)]
struct Message<'a> {
    #[serde(borrow, default)]
    content: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    tool_calls: Option<Vec<ToolCall<'a>>>,
}

#[derive(Deserialize)]
struct ToolCall<'a> {
    #[serde(borrow)]
    function: Function<'a>,
}

#[derive(Deserialize)]
struct Function<'a> {
    #[serde(borrow)]
    name: Cow<'a, str>,
    #[serde(borrow, default)]
    arguments: Cow<'a, str>,
}

impl Expectation {
    /// Checks a whole OpenAI-shape `chat.completion` body.
    pub fn check_body(&self, body: &[u8]) -> Result<(), Invalid> {
        let completion: Completion<'_> = serde_json::from_slice(body)
            .map_err(|e| invalid("<body>", clip(&format!("not a chat completion: {e}"))))?;
        if completion.choices.is_empty() {
            return Err(invalid("choices", "the answer has no choices"));
        }
        for (i, choice) in completion.choices.iter().enumerate() {
            let calls: Vec<(&str, &str)> = choice
                .message
                .tool_calls
                .iter()
                .flatten()
                .map(|c| (&*c.function.name, &*c.function.arguments))
                .collect();
            self.check_message(i, choice.message.content.as_deref(), &calls)?;
        }
        Ok(())
    }

    /// Checks one choice's message: its content and its tool calls `(name, arguments)`.
    pub(crate) fn check_message(
        &self,
        choice: usize,
        content: Option<&str>,
        tool_calls: &[(&str, &str)],
    ) -> Result<(), Invalid> {
        for (j, (name, arguments)) in tool_calls.iter().enumerate() {
            let at = format!("choices[{choice}].message.tool_calls[{j}].function.arguments");
            let Some((_, parameters)) = self.tools.iter().find(|(n, _)| n == name) else {
                if self.tools.is_empty() {
                    continue; // No tools offered (only the content is checked).
                }
                return Err(invalid(
                    format!("choices[{choice}].message.tool_calls[{j}].function.name"),
                    clip(&format!(
                        "calls tool {name:?}, which the request did not offer"
                    )),
                ));
            };
            let value = parse(arguments, &at)?;
            if let Some(schema) = parameters {
                check_schema(schema, &value, &at)?;
            }
        }
        let at = format!("choices[{choice}].message.content");
        let content = match (&self.content, content) {
            (ContentRule::Free, _) => return Ok(()),
            (_, Some(c)) if !c.is_empty() => c,
            // A message that calls tools instead of answering has no content to check.
            _ if !tool_calls.is_empty() => return Ok(()),
            _ => return Err(invalid(at, "the message has no content")),
        };
        let value = parse(content, &at)?;
        match &self.content {
            ContentRule::Free | ContentRule::Json => Ok(()),
            ContentRule::JsonObject if value.is_object() => Ok(()),
            ContentRule::JsonObject => Err(invalid(at, "is JSON but not an object")),
            ContentRule::Schema(schema) => check_schema(schema, &value, &at),
        }
    }
}

/// Parses JSON text; serde_json stops at 128 levels of nesting, so a hostile answer costs no
/// stack, and its size is already bounded by `max_response_bytes`.
fn parse(text: &str, at: &str) -> Result<Value, Invalid> {
    serde_json::from_str(text).map_err(|e| invalid(at, clip(&format!("is not JSON: {e}"))))
}

fn check_schema(schema: &jsonschema::Validator, value: &Value, at: &str) -> Result<(), Invalid> {
    schema.validate(value).map_err(|e| {
        let pointer = e.instance_path().to_string();
        invalid(format!("{at}{pointer}"), clip(&e.to_string()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn expectation(format: Value, tools: Option<Value>) -> Expectation {
        Expectation::compile(Some(&format), tools.as_ref())
            .unwrap()
            .unwrap()
    }

    fn body(content: Option<&str>) -> Vec<u8> {
        serde_json::to_vec(&json!({"choices":[{"index":0,"message":{"role":"assistant","content":content},"finish_reason":"stop"}]})).unwrap()
    }

    fn schema_format(schema: Value) -> Value {
        json!({"type":"json_schema","json_schema":{"name":"x","strict":true,"schema":schema}})
    }

    #[test]
    fn content_that_is_not_json_or_truncated_is_invalid() {
        let e = expectation(json!({"type":"json_object"}), None);
        assert!(e.check_body(&body(Some(r#"{"a":1}"#))).is_ok());
        let err = e.check_body(&body(Some("Sure! Here it is"))).unwrap_err();
        assert_eq!(err.path, "choices[0].message.content");
        assert!(err.message.contains("not JSON"), "{err}");
        // A `finish_reason: "length"` answer cut mid-object.
        let err = e
            .check_body(&body(Some(r#"{"steps":[{"explanation":"Sub"#)))
            .unwrap_err();
        assert!(err.message.contains("not JSON"), "{err}");
        let err = e.check_body(&body(Some("[1,2]"))).unwrap_err();
        assert!(err.message.contains("not an object"), "{err}");
        assert!(e.check_body(&body(None)).is_err());
    }

    #[test]
    fn refs_any_of_additional_properties_and_nested_arrays() {
        let schema = json!({
            "$defs": {"step": {"type":"object","properties":{"explanation":{"type":"string"},"output":{"type":"string"}},"required":["explanation","output"],"additionalProperties":false}},
            "type":"object",
            "properties":{
                "steps":{"type":"array","items":{"$ref":"#/$defs/step"}},
                "matrix":{"type":"array","items":{"type":"array","items":{"type":"integer"}}},
                "answer":{"anyOf":[{"type":"string"},{"type":"null"}]}
            },
            "required":["steps","answer"],
            "additionalProperties":false
        });
        let e = expectation(schema_format(schema), None);
        let good =
            r#"{"steps":[{"explanation":"a","output":"b"}],"matrix":[[1,2],[3]],"answer":null}"#;
        e.check_body(&body(Some(good))).unwrap();
        for (bad, path) in [
            (
                r#"{"steps":[{"explanation":"a"}],"answer":"x"}"#,
                "choices[0].message.content/steps/0",
            ),
            (
                r#"{"steps":[],"answer":3}"#,
                "choices[0].message.content/answer",
            ),
            (
                r#"{"steps":[],"answer":"x","extra":1}"#,
                "choices[0].message.content",
            ),
            (
                r#"{"steps":[],"answer":"x","matrix":[[1,"2"]]}"#,
                "choices[0].message.content/matrix/0/1",
            ),
        ] {
            let err = e.check_body(&body(Some(bad))).unwrap_err();
            assert_eq!(err.path, path, "{bad}: {err}");
        }
    }

    #[test]
    fn tool_arguments_are_checked_against_their_tool() {
        let tools = json!([{"type":"function","function":{"name":"get_weather","parameters":{"type":"object","properties":{"location":{"type":"string"}},"required":["location"],"additionalProperties":false}}}]);
        let e = expectation(json!({"type":"text"}), Some(tools));
        e.check_message(0, None, &[("get_weather", r#"{"location":"Paris"}"#)])
            .unwrap();
        let err = e
            .check_message(0, None, &[("get_weather", r#"{"loc":"Paris"}"#)])
            .unwrap_err();
        assert_eq!(
            err.path,
            "choices[0].message.tool_calls[0].function.arguments"
        );
        let err = e
            .check_message(0, None, &[("get_weather", r#"{"locat"#)])
            .unwrap_err();
        assert!(err.message.contains("not JSON"), "{err}");
        let err = e.check_message(0, None, &[("launch", "{}")]).unwrap_err();
        assert!(err.path.ends_with(".name"), "{err}");
        // A plain-text answer to a request with tools is fine: only calls are checked.
        e.check_message(0, Some("It is sunny."), &[]).unwrap();
    }

    #[test]
    fn hostile_answers_are_bounded() {
        let e = expectation(json!({"type":"json_object"}), None);
        let deep = "[".repeat(100_000);
        let err = e.check_body(&body(Some(&deep))).unwrap_err();
        assert!(err.message.contains("recursion limit"), "{err}");
        assert!(err.message.len() <= MAX_MESSAGE + 3);
        let long = format!("{{\"a\":\"{}\"", "é".repeat(1000));
        let err = e.check_body(&body(Some(&long))).unwrap_err();
        assert!(err.message.len() <= MAX_MESSAGE + 3);
    }
}
