//! Anthropic Messages API <-> OpenAI chat completions.
// IMPLEMENTATION: helper task (see brief).
