//! Anthropic stream events -> OpenAI chunks.

use super::*;

// ---------------------------------------------------------------------------------------------
// Stream: Anthropic events -> OpenAI chunks
// ---------------------------------------------------------------------------------------------

/// Turns Anthropic stream events into OpenAI `chat.completion.chunk`s, one event at a time, so a
/// driver can forward each piece as it arrives. Holds what later chunks need from earlier events:
/// the message id and model (sent once, in `message_start`), which Anthropic content blocks are
/// tool calls and their OpenAI `index`, and the token counts for the final usage chunk.
#[derive(Debug)]
pub struct StreamTranslator {
    include_usage: bool,
    created: u64,
    /// From `message_start`; `None` until then.
    id: Option<String>,
    model: String,
    /// (Anthropic block index, OpenAI tool call index) for each client tool block so far.
    tool_blocks: Vec<(u64, usize)>,
    usage: Usage,
    finished: bool,
    done: bool,
}

impl StreamTranslator {
    /// `include_usage` is the caller's `stream_options.include_usage`: whether to end with a
    /// usage-only chunk as OpenAI does. `created` is Unix seconds for every chunk (from the
    /// response's Date header; 0 if unknown).
    pub fn new(include_usage: bool, created: u64) -> Self {
        Self {
            include_usage,
            created,
            id: None,
            model: String::new(),
            tool_blocks: Vec::new(),
            usage: Usage::default(),
            finished: false,
            done: false,
        }
    }

    /// Translates one event, appending what it becomes to `out` (often nothing). Events after
    /// `message_stop` are ignored. A known event whose data is not the JSON it should be, or a
    /// content event before `message_start`, is a [`DecodeError`].
    pub fn on_event(
        &mut self,
        event: &SseEvent,
        out: &mut Vec<StreamItem>,
    ) -> Result<(), DecodeError> {
        if self.done {
            return Ok(());
        }
        let parsed: Option<Value> = serde_json::from_str(&event.data).ok();
        let name = match (&event.event, &parsed) {
            (Some(name), _) => name.clone(),
            (None, Some(v)) => v
                .get("type")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
            (None, None) => return Ok(()),
        };
        const KNOWN: [&str; 7] = [
            "message_start",
            "content_block_start",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop",
            "error",
        ];
        if !KNOWN.contains(&name.as_str()) {
            // `ping` and event types added after this codec was written.
            return Ok(());
        }
        let data = match parsed {
            Some(v @ Value::Object(_)) => v,
            _ => {
                return Err(dec_err(format!(
                    "Anthropic `{name}` event data is not a JSON object: {:?}",
                    event.data
                )));
            }
        };
        if name == "error" {
            let error = data.get("error");
            let kind = error
                .and_then(|e| e.get("type"))
                .and_then(Value::as_str)
                .unwrap_or("error");
            let message = error
                .and_then(|e| e.get("message"))
                .and_then(Value::as_str)
                .unwrap_or("(no message)");
            out.push(StreamItem::Error {
                message: format!("{kind}: {message}"),
            });
            return Ok(());
        }
        if name == "message_start" {
            let message = data
                .get("message")
                .ok_or_else(|| dec_err("Anthropic `message_start` has no `message`"))?;
            self.id =
                Some(required_str(message, "id", "Anthropic `message_start` message")?.to_owned());
            self.model =
                required_str(message, "model", "Anthropic `message_start` message")?.to_owned();
            self.usage.update(message.get("usage"));
            let chunk = self.chunk(json!({ "role": "assistant", "content": "" }), None);
            out.push(StreamItem::Chunk {
                json: chunk,
                content: false,
            });
            return Ok(());
        }
        if self.id.is_none() {
            return Err(dec_err(format!(
                "Anthropic `{name}` event arrived before `message_start`"
            )));
        }
        match name.as_str() {
            "content_block_start" => self.on_block_start(&data, out),
            "content_block_delta" => self.on_block_delta(&data, out),
            "message_delta" => {
                let stop_reason = data
                    .get("delta")
                    .and_then(|d| d.get("stop_reason"))
                    .and_then(Value::as_str);
                self.usage.update(data.get("usage"));
                let chunk = self.chunk(json!({}), Some(finish_reason(stop_reason)));
                out.push(StreamItem::Chunk {
                    json: chunk,
                    content: true,
                });
                self.finished = true;
                Ok(())
            }
            "message_stop" => {
                if !self.finished {
                    // A stream that ends without `message_delta` still owes the caller a finish.
                    let chunk = self.chunk(json!({}), Some("stop"));
                    out.push(StreamItem::Chunk {
                        json: chunk,
                        content: true,
                    });
                    self.finished = true;
                }
                if self.include_usage {
                    let chunk = json!({
                        "id": self.id,
                        "object": "chat.completion.chunk",
                        "created": self.created,
                        "model": self.model,
                        "choices": [],
                        "usage": self.usage.to_openai(),
                    });
                    out.push(StreamItem::Chunk {
                        json: Bytes::from(chunk.to_string()),
                        content: true,
                    });
                }
                out.push(StreamItem::Done);
                self.done = true;
                Ok(())
            }
            // content_block_stop: OpenAI has no counterpart.
            _ => Ok(()),
        }
    }

    fn on_block_start(
        &mut self,
        data: &Value,
        out: &mut Vec<StreamItem>,
    ) -> Result<(), DecodeError> {
        let what = "Anthropic `content_block_start`";
        let index = data
            .get("index")
            .and_then(Value::as_u64)
            .ok_or_else(|| dec_err(format!("{what} has no integer `index`")))?;
        let block = data
            .get("content_block")
            .ok_or_else(|| dec_err(format!("{what} has no `content_block`")))?;
        if block.get("type").and_then(Value::as_str) != Some("tool_use") {
            // Text arrives in deltas, server tools have no OpenAI counterpart; a thinking block
            // may start with text, a redacted one is whole at its start.
            if let Some(delta) = thinking::stream_delta(block, what)? {
                let chunk = self.chunk(delta, None);
                out.push(StreamItem::Chunk {
                    json: chunk,
                    content: true,
                });
            }
            return Ok(());
        }
        let id = required_str(block, "id", what)?;
        let name = required_str(block, "name", what)?;
        // Anthropic starts with `input: {}` and streams the JSON in deltas; only a non-empty
        // starting input is worth sending as the first piece of the arguments.
        let arguments = match block.get("input") {
            Some(Value::Object(m)) if !m.is_empty() => Value::Object(m.clone()).to_string(),
            _ => String::new(),
        };
        let k = self.tool_blocks.len();
        self.tool_blocks.push((index, k));
        let delta = json!({ "tool_calls": [{
            "index": k,
            "id": id,
            "type": "function",
            "function": { "name": name, "arguments": arguments },
        }]});
        let chunk = self.chunk(delta, None);
        out.push(StreamItem::Chunk {
            json: chunk,
            content: true,
        });
        Ok(())
    }

    fn on_block_delta(
        &mut self,
        data: &Value,
        out: &mut Vec<StreamItem>,
    ) -> Result<(), DecodeError> {
        let what = "Anthropic `content_block_delta`";
        let index = data
            .get("index")
            .and_then(Value::as_u64)
            .ok_or_else(|| dec_err(format!("{what} has no integer `index`")))?;
        let delta = data
            .get("delta")
            .ok_or_else(|| dec_err(format!("{what} has no `delta`")))?;
        let delta = match delta.get("type").and_then(Value::as_str) {
            Some("text_delta") => {
                let text = required_str(delta, "text", what)?;
                if text.is_empty() {
                    return Ok(());
                }
                json!({ "content": text })
            }
            Some("input_json_delta") => {
                let partial = required_str(delta, "partial_json", what)?;
                // Server-side tool blocks stream input too; only client tool calls are the caller's.
                let Some(&(_, k)) = self.tool_blocks.iter().find(|(i, _)| *i == index) else {
                    return Ok(());
                };
                if partial.is_empty() {
                    return Ok(());
                }
                json!({ "tool_calls": [{ "index": k, "function": { "arguments": partial } }] })
            }
            // thinking_delta and signature_delta; citations_delta and anything new: nothing.
            _ => match thinking::stream_delta(delta, what)? {
                Some(delta) => delta,
                None => return Ok(()),
            },
        };
        let chunk = self.chunk(delta, None);
        out.push(StreamItem::Chunk {
            json: chunk,
            content: true,
        });
        Ok(())
    }

    fn chunk(&self, delta: Value, finish_reason: Option<&str>) -> Bytes {
        let chunk = json!({
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [{
                "index": 0,
                "delta": delta,
                "logprobs": null,
                "finish_reason": finish_reason,
            }],
        });
        Bytes::from(chunk.to_string())
    }
}
