//! The deterministic OpenAI-compatible answers of the fake server.
//!
//! Tokens are whitespace-delimited pieces: a token is a run of whitespace
//! followed by a run of non-whitespace (the first token has no leading
//! whitespace), so the concatenation of the tokens is exactly the text.
//! Each token's fake log-prob is [`fake_logprob`], a pure function of the
//! token text.

use serde_json::{Value, json};

/// Splits `text` into fake tokens whose concatenation is `text`.
pub fn tokenize(text: &str) -> Vec<&str> {
    let mut tokens = Vec::new();
    let mut start = 0;
    // Start of the current whitespace run, if the last char was whitespace.
    let mut ws_start: Option<usize> = None;
    let mut seen_word = false;
    for (i, c) in text.char_indices() {
        if c.is_whitespace() {
            ws_start.get_or_insert(i);
        } else {
            if let Some(ws) = ws_start.take()
                && seen_word
            {
                tokens.push(&text[start..ws]);
                start = ws;
            }
            seen_word = true;
        }
    }
    if start < text.len() {
        tokens.push(&text[start..]);
    }
    tokens
}

/// Number of fake tokens in `text`.
pub fn count_tokens(text: &str) -> usize {
    tokenize(text).len()
}

/// The fake natural-log probability of `token`: a deterministic value in
/// `[-1.0, -0.01]` derived from its bytes.
pub fn fake_logprob(token: &str) -> f64 {
    let sum: u64 = token.bytes().map(u64::from).sum();
    -(((sum % 100) as f64) / 100.0 + 0.01).min(1.0)
}

/// A generated answer before it is wrapped into an endpoint's JSON.
#[derive(Debug, Clone, PartialEq)]
pub struct Generation {
    /// Final text after `max_tokens` truncation and stop strings.
    pub text: String,
    /// `stop` or `length`.
    pub finish_reason: &'static str,
    /// Prompt token count.
    pub prompt_tokens: usize,
}

impl Generation {
    /// Generates from the raw reply text, honouring `max_tokens` and `stop`.
    pub fn new(
        reply: &str,
        max_tokens: Option<usize>,
        stop: &[String],
        prompt_tokens: usize,
    ) -> Self {
        let mut text = reply.to_string();
        let mut finish_reason = "stop";
        if let Some(cut) = stop
            .iter()
            .filter(|s| !s.is_empty())
            .filter_map(|s| text.find(s.as_str()))
            .min()
        {
            text.truncate(cut);
        }
        if let Some(max) = max_tokens {
            let tokens = tokenize(&text);
            if tokens.len() > max {
                text = tokens[..max].concat();
                finish_reason = "length";
            }
        }
        Self {
            text,
            finish_reason,
            prompt_tokens,
        }
    }

    fn usage(&self) -> Value {
        let completion = count_tokens(&self.text);
        json!({
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": completion,
            "total_tokens": self.prompt_tokens + completion,
        })
    }

    /// The `/v1/chat/completions` response body.
    pub fn chat_json(&self, id: u64, model: &str, logprobs: bool) -> Value {
        let logprobs = logprobs.then(|| {
            let content: Vec<Value> = tokenize(&self.text)
                .into_iter()
                .map(|t| {
                    json!({
                        "token": t,
                        "logprob": fake_logprob(t),
                        "bytes": t.as_bytes(),
                        "top_logprobs": [],
                    })
                })
                .collect();
            json!({ "content": content })
        });
        json!({
            "id": format!("chatcmpl-fake-{id}"),
            "object": "chat.completion",
            "created": 1_700_000_000 + id,
            "model": model,
            "choices": [{
                "index": 0,
                "message": { "role": "assistant", "content": self.text },
                "logprobs": logprobs,
                "finish_reason": self.finish_reason,
            }],
            "usage": self.usage(),
        })
    }

    /// The `/v1/completions` response body; `logprobs` is the requested
    /// number of alternatives per position (`None` for no log-probs).
    pub fn completion_json(&self, id: u64, model: &str, logprobs: Option<u64>) -> Value {
        let logprobs = logprobs.map(|_| {
            let tokens = tokenize(&self.text);
            let mut offset = 0;
            let mut offsets = Vec::with_capacity(tokens.len());
            for t in &tokens {
                offsets.push(offset);
                offset += t.len();
            }
            json!({
                "tokens": tokens,
                "token_logprobs": tokens.iter().map(|t| fake_logprob(t)).collect::<Vec<_>>(),
                "top_logprobs": tokens.iter().map(|t| json!({ *t: fake_logprob(t) })).collect::<Vec<_>>(),
                "text_offset": offsets,
            })
        });
        json!({
            "id": format!("cmpl-fake-{id}"),
            "object": "text_completion",
            "created": 1_700_000_000 + id,
            "model": model,
            "choices": [{
                "index": 0,
                "text": self.text,
                "logprobs": logprobs,
                "finish_reason": self.finish_reason,
            }],
            "usage": self.usage(),
        })
    }
}

/// An OpenAI-style error body.
pub fn error_json(message: &str, kind: &str, code: Option<&str>) -> Value {
    json!({ "error": { "message": message, "type": kind, "param": null, "code": code } })
}

/// Text of a chat message `content`: a string, or an array of
/// `{"type": "text", "text": …}` parts.
pub fn content_text(content: &Value) -> Option<String> {
    match content {
        Value::String(s) => Some(s.clone()),
        Value::Null => Some(String::new()),
        Value::Array(parts) => {
            let mut out = String::new();
            for part in parts {
                out.push_str(part.get("text")?.as_str()?);
            }
            Some(out)
        }
        _ => None,
    }
}

/// The `stop` member: absent, a string, or an array of strings.
pub fn stop_list(body: &Value) -> Result<Vec<String>, String> {
    match body.get("stop") {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(s)) => Ok(vec![s.clone()]),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| {
                v.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| "`stop` must hold strings".to_string())
            })
            .collect(),
        Some(_) => Err("`stop` must be a string or an array of strings".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_concatenate_to_text() {
        for text in ["", "a", "echo: hello  world\n", "  lead", "x\ty z "] {
            assert_eq!(tokenize(text).concat(), text, "{text:?}");
        }
        assert_eq!(tokenize("echo: hi there"), vec!["echo:", " hi", " there"]);
        assert_eq!(tokenize("  lead"), vec!["  lead"]);
    }

    #[test]
    fn logprobs_are_negative_and_deterministic() {
        for t in ["a", " b", "hello", ""] {
            let lp = fake_logprob(t);
            assert!((-1.0..0.0).contains(&lp), "{lp}");
            assert_eq!(lp, fake_logprob(t));
        }
        assert_ne!(fake_logprob("a"), fake_logprob("b"));
    }

    #[test]
    fn generation_truncates_and_stops() {
        let g = Generation::new("one two three four", Some(2), &[], 3);
        assert_eq!((g.text.as_str(), g.finish_reason), ("one two", "length"));
        let g = Generation::new("one two. three", Some(10), &[".".into()], 3);
        assert_eq!((g.text.as_str(), g.finish_reason), ("one two", "stop"));
        let v = g.chat_json(7, "m", true);
        assert_eq!(v["usage"]["completion_tokens"], 2);
        assert_eq!(v["choices"][0]["logprobs"]["content"][1]["token"], " two");
        let v = g.completion_json(7, "m", Some(0));
        assert_eq!(v["choices"][0]["logprobs"]["text_offset"], json!([0, 3]));
    }
}
