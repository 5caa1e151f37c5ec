//! OpenAI shape: the body passes through.
