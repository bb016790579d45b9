//! Request bodies and response parsing of the two OpenAI endpoints.

use flowrl_plugin_abi::{ChatMessage, ChatRequest, ChatResponse, Usage};
use serde_json::{Map, Value, json};

use crate::Endpoint;

/// Renders chat messages into one text prompt for the completions endpoint.
///
/// A lone user message is sent verbatim. Otherwise each message becomes
/// `"<Role>: <content>\n\n"` (role capitalised) and the prompt ends with
/// `"Assistant:"`; when the last message is an assistant message, its text
/// is left open after `"Assistant: "` so the model continues it.
pub fn render_prompt(messages: &[ChatMessage]) -> String {
    if let [only] = messages
        && only.role == "user"
    {
        return only.content.clone();
    }
    let mut prompt = String::new();
    let (last_open, body) = match messages.split_last() {
        Some((last, rest)) if last.role == "assistant" => (Some(last), rest),
        _ => (None, messages),
    };
    for m in body {
        prompt.push_str(&capitalised(&m.role));
        prompt.push_str(": ");
        prompt.push_str(&m.content);
        prompt.push_str("\n\n");
    }
    match last_open {
        Some(m) => {
            prompt.push_str("Assistant: ");
            prompt.push_str(&m.content);
        }
        None => prompt.push_str("Assistant:"),
    }
    prompt
}

fn capitalised(role: &str) -> String {
    let mut chars = role.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// The JSON body of `request` for `endpoint` and `model`.
pub fn request_body(endpoint: Endpoint, model: &str, request: &ChatRequest) -> Value {
    let mut body = Map::new();
    body.insert("model".into(), json!(model));
    match endpoint {
        Endpoint::Chat => {
            let messages: Vec<Value> = request
                .messages
                .iter()
                .map(|m| json!({ "role": m.role, "content": m.content }))
                .collect();
            body.insert("messages".into(), Value::Array(messages));
            if request.logprobs {
                body.insert("logprobs".into(), json!(true));
            }
        }
        Endpoint::Completions => {
            body.insert("prompt".into(), json!(render_prompt(&request.messages)));
            if request.logprobs {
                // One alternative per position: the widest-supported value
                // that makes servers fill `token_logprobs`.
                body.insert("logprobs".into(), json!(1));
            }
        }
    }
    body.insert("max_tokens".into(), json!(request.max_tokens));
    body.insert("temperature".into(), json!(request.sampling.temperature));
    body.insert("top_p".into(), json!(request.sampling.top_p));
    if let Some(seed) = request.sampling.seed {
        body.insert("seed".into(), json!(seed));
    }
    if let Some(top_k) = request.sampling.top_k {
        // Not in OpenAI's own API; vLLM, SGLang, llama.cpp and Ollama accept it.
        body.insert("top_k".into(), json!(top_k));
    }
    if !request.stop.is_empty() {
        body.insert("stop".into(), json!(request.stop));
    }
    Value::Object(body)
}

fn excerpt(text: &str) -> String {
    const MAX: usize = 300;
    if text.len() <= MAX {
        return text.to_string();
    }
    let mut end = MAX;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

/// The human message of an error body: `error.message`, `error` (a
/// string), `message` or `detail`, else an excerpt of the raw body.
pub fn error_message(body: &str) -> String {
    let from_json = serde_json::from_str::<Value>(body).ok().and_then(|v| {
        let candidates = [
            v.pointer("/error/message"),
            v.get("error"),
            v.get("message"),
            v.get("detail"),
        ];
        candidates.into_iter().flatten().find_map(|c| match c {
            Value::String(s) if !s.is_empty() => Some(s.clone()),
            Value::Null => None,
            Value::String(_) => None,
            other if !other.is_object() => Some(other.to_string()),
            _ => None,
        })
    });
    from_json.unwrap_or_else(|| {
        let trimmed = body.trim();
        if trimmed.is_empty() {
            "(empty body)".to_string()
        } else {
            excerpt(trimmed)
        }
    })
}

fn count(usage: Option<&Value>, field: &str) -> u32 {
    usage
        .and_then(|u| u.get(field))
        .and_then(Value::as_u64)
        .map_or(0, |n| u32::try_from(n).unwrap_or(u32::MAX))
}

fn logprob_value(v: &Value, what: &str) -> Result<f32, String> {
    v.as_f64()
        .map(|x| x as f32)
        .ok_or_else(|| format!("{what} is not a number: {v}"))
}

/// Parses a 2xx response body of `endpoint` into a [`ChatResponse`].
/// Log-probs are read only when `want_logprobs`; a server that omits them
/// gives `logprobs: None`.
///
/// # Errors
/// A description of what is missing or malformed.
pub fn parse_response(
    endpoint: Endpoint,
    body: &str,
    want_logprobs: bool,
) -> Result<ChatResponse, String> {
    let value: Value = serde_json::from_str(body)
        .map_err(|e| format!("body is not JSON ({e}): {}", excerpt(body)))?;
    let Some(choice) = value.pointer("/choices/0") else {
        if value.get("error").is_some() {
            return Err(format!(
                "error body with a success status: {}",
                error_message(body)
            ));
        }
        return Err(format!("no `choices[0]`: {}", excerpt(body)));
    };
    let text = match endpoint {
        Endpoint::Chat => match choice.pointer("/message/content") {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Null) if choice.get("message").is_some_and(Value::is_object) => {
                String::new()
            }
            _ => return Err("`choices[0].message.content` is missing or not a string".into()),
        },
        Endpoint::Completions => match choice.get("text") {
            Some(Value::String(s)) => s.clone(),
            _ => return Err("`choices[0].text` is missing or not a string".into()),
        },
    };
    let finish_reason = choice
        .get("finish_reason")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let usage = value.get("usage");
    let usage = Usage {
        prompt_tokens: count(usage, "prompt_tokens"),
        completion_tokens: count(usage, "completion_tokens"),
    };
    let logprobs = if want_logprobs {
        match choice.get("logprobs") {
            None | Some(Value::Null) => None,
            Some(lp) => Some(match endpoint {
                Endpoint::Chat => {
                    let Some(content) = lp.get("content").and_then(Value::as_array) else {
                        return Err("`choices[0].logprobs.content` is not an array".into());
                    };
                    content
                        .iter()
                        .map(|t| {
                            t.get("logprob")
                                .ok_or_else(|| {
                                    "a `logprobs.content` entry has no `logprob`".to_string()
                                })
                                .and_then(|v| logprob_value(v, "`logprobs.content[].logprob`"))
                        })
                        .collect::<Result<Vec<f32>, String>>()?
                }
                Endpoint::Completions => {
                    let Some(values) = lp.get("token_logprobs").and_then(Value::as_array) else {
                        return Err("`choices[0].logprobs.token_logprobs` is not an array".into());
                    };
                    values
                        .iter()
                        .map(|v| logprob_value(v, "`logprobs.token_logprobs[]`"))
                        .collect::<Result<Vec<f32>, String>>()?
                }
            }),
        }
    } else {
        None
    };
    Ok(ChatResponse {
        text,
        logprobs,
        usage,
        finish_reason,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use flowrl_plugin_abi::SamplingParams;

    #[test]
    fn prompts_render_roles_and_open_assistant_turns() {
        assert_eq!(render_prompt(&[ChatMessage::new("user", "hi")]), "hi");
        let msgs = [
            ChatMessage::new("system", "S"),
            ChatMessage::new("user", "U"),
        ];
        assert_eq!(render_prompt(&msgs), "System: S\n\nUser: U\n\nAssistant:");
        let msgs = [
            ChatMessage::new("user", "U"),
            ChatMessage::new("assistant", "The answer is"),
        ];
        assert_eq!(render_prompt(&msgs), "User: U\n\nAssistant: The answer is");
    }

    #[test]
    fn bodies_carry_sampling_stop_and_logprobs() {
        let mut req = ChatRequest::user("q");
        req.sampling = SamplingParams {
            temperature: 0.0,
            top_p: 0.9,
            seed: Some(7),
            top_k: Some(20),
        };
        req.stop = vec!["</tool>".into()];
        req.logprobs = true;
        req.max_tokens = 16;
        let chat = request_body(Endpoint::Chat, "m", &req);
        assert_eq!(chat["messages"], json!([{"role": "user", "content": "q"}]));
        assert_eq!(chat["logprobs"], json!(true));
        assert_eq!(
            (chat["seed"].clone(), chat["max_tokens"].clone()),
            (json!(7), json!(16))
        );
        assert_eq!(chat["stop"], json!(["</tool>"]));
        assert_eq!(chat["top_k"], json!(20));
        let text = request_body(Endpoint::Completions, "m", &req);
        assert_eq!(
            (text["prompt"].clone(), text["logprobs"].clone()),
            (json!("q"), json!(1))
        );
        req.logprobs = false;
        req.stop.clear();
        req.sampling.seed = None;
        req.sampling.top_k = None;
        let chat = request_body(Endpoint::Chat, "m", &req);
        for absent in ["logprobs", "stop", "seed", "top_k"] {
            assert!(chat.get(absent).is_none(), "{absent}");
        }
    }

    #[test]
    fn error_messages_are_found_in_common_shapes() {
        assert_eq!(
            error_message(r#"{"error": {"message": "bad model"}}"#),
            "bad model"
        );
        assert_eq!(error_message(r#"{"error": "nope"}"#), "nope");
        assert_eq!(error_message(r#"{"detail": "Not Found"}"#), "Not Found");
        assert_eq!(error_message("plain text"), "plain text");
        assert_eq!(error_message(""), "(empty body)");
        assert!(error_message(&"é".repeat(400)).ends_with('…'));
    }

    #[test]
    fn responses_parse_and_malformed_ones_are_described() {
        let body = r#"{"choices":[{"message":{"content":"hi"},"finish_reason":"stop","logprobs":{"content":[{"token":"hi","logprob":-0.5}]}}],"usage":{"prompt_tokens":3,"completion_tokens":1}}"#;
        let r = parse_response(Endpoint::Chat, body, true).unwrap();
        assert_eq!(r.text, "hi");
        assert_eq!(r.logprobs, Some(vec![-0.5]));
        assert_eq!((r.usage.prompt_tokens, r.usage.completion_tokens), (3, 1));
        assert_eq!(
            parse_response(Endpoint::Chat, body, false)
                .unwrap()
                .logprobs,
            None
        );

        let body = r#"{"choices":[{"text":"a b","finish_reason":"length","logprobs":{"token_logprobs":[-1.0,-0.25]}}]}"#;
        let r = parse_response(Endpoint::Completions, body, true).unwrap();
        assert_eq!(
            (r.text.as_str(), r.finish_reason.as_str()),
            ("a b", "length")
        );
        assert_eq!(r.logprobs, Some(vec![-1.0, -0.25]));
        assert_eq!(r.usage, Usage::default());

        assert!(
            parse_response(Endpoint::Chat, "{", false)
                .unwrap_err()
                .contains("not JSON")
        );
        assert!(
            parse_response(Endpoint::Chat, "{}", false)
                .unwrap_err()
                .contains("choices")
        );
        let err = parse_response(
            Endpoint::Chat,
            r#"{"error":{"message":"overloaded"}}"#,
            false,
        )
        .unwrap_err();
        assert!(err.contains("overloaded"));
        let bad = r#"{"choices":[{"text":"x","logprobs":{"token_logprobs":[null]}}]}"#;
        assert!(
            parse_response(Endpoint::Completions, bad, true)
                .unwrap_err()
                .contains("not a number")
        );
        let bad = r#"{"choices":[{"message":{"content":5}}]}"#;
        assert!(parse_response(Endpoint::Chat, bad, false).is_err());
    }
}
