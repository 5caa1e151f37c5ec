//! A stream's answer put back together from its OpenAI chunks (content and tool-call arguments
//! per choice), so a validated stream can be checked at its end. Only requests with an
//! expectation pay for it. Indices are bounded, so a hostile chunk cannot make it allocate.

use super::check::Invalid;
use super::expect::Expectation;
use serde::Deserialize;
use std::borrow::Cow;

/// Choices and tool calls per choice a stream may index.
const MAX_INDEX: usize = 128;

#[derive(Debug, Default)]
struct AssembledChoice {
    content: String,
    has_content: bool,
    /// `(name, arguments)` per tool-call index.
    tool_calls: Vec<(String, String)>,
}

/// The assembled answer.
#[derive(Debug, Default)]
pub(crate) struct Assembly {
    choices: Vec<AssembledChoice>,
    /// The first chunk that did not read as a chunk, if any.
    broken: Option<String>,
}

#[derive(Deserialize)]
struct Chunk<'a> {
    #[serde(borrow, default)]
    choices: Vec<ChunkChoice<'a>>,
}

#[derive(Deserialize)]
struct ChunkChoice<'a> {
    #[serde(default)]
    index: usize,
    #[serde(borrow, default)]
    delta: Option<Delta<'a>>,
}

#[derive(Deserialize)]
struct Delta<'a> {
    #[serde(borrow, default)]
    content: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    tool_calls: Option<Vec<ToolDelta<'a>>>,
}

#[derive(Deserialize)]
struct ToolDelta<'a> {
    #[serde(default)]
    index: usize,
    #[serde(borrow, default)]
    function: Option<FunctionDelta<'a>>,
}

#[derive(Deserialize)]
struct FunctionDelta<'a> {
    #[serde(borrow, default)]
    name: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    arguments: Option<Cow<'a, str>>,
}

impl Assembly {
    /// Adds one `chat.completion.chunk`.
    pub(crate) fn push(&mut self, chunk: &[u8]) {
        if self.broken.is_some() {
            return;
        }
        let chunk: Chunk<'_> = match serde_json::from_slice(chunk) {
            Ok(c) => c,
            Err(e) => {
                self.broken = Some(format!("a stream chunk is not a chunk: {e}"));
                return;
            }
        };
        for choice in chunk.choices {
            if choice.index >= MAX_INDEX {
                self.broken = Some(format!("choice index {} out of range", choice.index));
                return;
            }
            let Some(delta) = choice.delta else {
                continue;
            };
            if self.choices.len() <= choice.index {
                self.choices
                    .resize_with(choice.index + 1, AssembledChoice::default);
            }
            let slot = &mut self.choices[choice.index];
            if let Some(content) = delta.content {
                slot.content.push_str(&content);
                slot.has_content = true;
            }
            for call in delta.tool_calls.into_iter().flatten() {
                if call.index >= MAX_INDEX {
                    self.broken = Some(format!("tool call index {} out of range", call.index));
                    return;
                }
                if slot.tool_calls.len() <= call.index {
                    slot.tool_calls
                        .resize_with(call.index + 1, Default::default);
                }
                let (name, arguments) = &mut slot.tool_calls[call.index];
                if let Some(f) = call.function {
                    if let Some(n) = f.name {
                        name.push_str(&n);
                    }
                    if let Some(a) = f.arguments {
                        arguments.push_str(&a);
                    }
                }
            }
        }
    }

    /// Checks the assembled answer.
    pub(crate) fn check(&self, expectation: &Expectation) -> Result<(), Invalid> {
        if let Some(reason) = &self.broken {
            return Err(Invalid {
                path: "<stream>".to_owned(),
                message: super::check::clip(reason),
            });
        }
        if self.choices.is_empty() {
            return expectation.check_message(0, None, &[]);
        }
        for (i, choice) in self.choices.iter().enumerate() {
            let calls: Vec<(&str, &str)> = choice
                .tool_calls
                .iter()
                .map(|(n, a)| (n.as_str(), a.as_str()))
                .collect();
            let content = choice.has_content.then_some(choice.content.as_str());
            expectation.check_message(i, content, &calls)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn content_and_arguments_are_assembled_across_chunks() {
        let tools = json!([{"type":"function","function":{"name":"f","parameters":{"type":"object","required":["x"]}}}]);
        let format = json!({"type":"json_object"});
        let e = Expectation::compile(Some(&format), Some(&tools))
            .unwrap()
            .unwrap();
        let mut a = Assembly::default();
        for piece in [r#"{"ans"#, r#"wer":"#, r#"42}"#] {
            a.push(
                json!({"choices":[{"index":0,"delta":{"content":piece}}]})
                    .to_string()
                    .as_bytes(),
            );
        }
        a.check(&e).unwrap();
        let mut a = Assembly::default();
        a.push(json!({"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"name":"f","arguments":"{\"y\""}}]}}]}).to_string().as_bytes());
        a.push(json!({"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":":1}"}}]}}]}).to_string().as_bytes());
        let err = a.check(&e).unwrap_err();
        assert_eq!(
            err.path,
            "choices[0].message.tool_calls[0].function.arguments"
        );
    }

    #[test]
    fn hostile_indices_do_not_allocate() {
        let mut a = Assembly::default();
        a.push(br#"{"choices":[{"index":4000000000,"delta":{"content":"x"}}]}"#);
        assert!(a.choices.is_empty());
        let e = Expectation::compile(Some(&json!({"type":"json_object"})), None)
            .unwrap()
            .unwrap();
        assert!(a.check(&e).unwrap_err().message.contains("out of range"));
    }
}
