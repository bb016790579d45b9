//! The OpenAI wire format: request parsing, responses and errors.

use std::io::Read;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;

use flowrl_plugin_abi::{ChatMessage, ChatRequest, ChatResponse, SamplingParams};
use serde_json::{Map, Value, json};

use crate::{CompletionError, Job, ServeConfig};

/// A request the server refuses, with its HTTP status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{status}: {message}")]
pub struct ApiError {
    /// HTTP status code (400, 404, 413, 500…).
    pub status: u16,
    /// OpenAI error type (`invalid_request_error`, `not_found_error`, `server_error`).
    pub kind: &'static str,
    /// The offending parameter, when there is one.
    pub param: Option<String>,
    /// What is wrong.
    pub message: String,
}

impl ApiError {
    fn bad(param: &str, message: impl Into<String>) -> Self {
        Self {
            status: 400,
            kind: "invalid_request_error",
            param: Some(param.to_string()),
            message: message.into(),
        }
    }

    fn not_found(message: impl Into<String>) -> Self {
        Self {
            status: 404,
            kind: "not_found_error",
            param: None,
            message: message.into(),
        }
    }

    fn body(&self) -> Value {
        json!({"error": {
            "message": self.message,
            "type": self.kind,
            "param": self.param,
            "code": self.status,
        }})
    }
}

fn number(body: &Map<String, Value>, key: &str) -> Result<Option<f64>, ApiError> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_f64()
            .filter(|x| x.is_finite())
            .map(Some)
            .ok_or_else(|| ApiError::bad(key, format!("`{key}` must be a number, got {v}"))),
    }
}

fn unsigned(body: &Map<String, Value>, key: &str) -> Result<Option<u64>, ApiError> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v.as_u64().map(Some).ok_or_else(|| {
            ApiError::bad(
                key,
                format!("`{key}` must be a non-negative integer, got {v}"),
            )
        }),
    }
}

fn content_text(i: usize, content: &Value) -> Result<String, ApiError> {
    let param = format!("messages[{i}].content");
    match content {
        Value::String(s) => Ok(s.clone()),
        Value::Null => Ok(String::new()),
        Value::Array(parts) => {
            let mut out = String::new();
            for (j, p) in parts.iter().enumerate() {
                match (p.get("type").and_then(Value::as_str), p.get("text")) {
                    (Some("text"), Some(Value::String(t))) => out.push_str(t),
                    _ => {
                        return Err(ApiError::bad(
                            &param,
                            format!(
                                "part {j}: only text parts (`{{\"type\": \"text\", \"text\": …}}`) are supported"
                            ),
                        ));
                    }
                }
            }
            Ok(out)
        }
        other => Err(ApiError::bad(
            &param,
            format!("must be a string or a list of text parts, got {other}"),
        )),
    }
}

/// Parses an OpenAI chat-completion body into a [`ChatRequest`], checking
/// the model name against `config.model` and every parameter's type and
/// range.
///
/// # Errors
/// An [`ApiError`] (400 or 404) naming the offending parameter.
pub fn parse_chat_request(body: &[u8], config: &ServeConfig) -> Result<ChatRequest, ApiError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad("body", format!("the body is not JSON: {e}")))?;
    let Value::Object(body) = value else {
        return Err(ApiError::bad("body", "the body must be a JSON object"));
    };
    if let Some(m) = body.get("model").filter(|m| !m.is_null()) {
        match m.as_str() {
            Some(name) if name == config.model => {}
            Some(name) => {
                return Err(ApiError::not_found(format!(
                    "model `{name}` is not served here; this server serves `{}`",
                    config.model
                )));
            }
            None => return Err(ApiError::bad("model", "`model` must be a string")),
        }
    }
    if body.get("stream").and_then(Value::as_bool) == Some(true) {
        return Err(ApiError::bad("stream", "streaming is not supported"));
    }
    if let Some(n) = unsigned(&body, "n")?
        && n != 1
    {
        return Err(ApiError::bad(
            "n",
            format!("only n = 1 is supported, got {n}"),
        ));
    }
    let Some(Value::Array(raw)) = body.get("messages") else {
        return Err(ApiError::bad(
            "messages",
            "`messages` must be a non-empty list",
        ));
    };
    if raw.is_empty() {
        return Err(ApiError::bad(
            "messages",
            "`messages` must be a non-empty list",
        ));
    }
    let mut messages = Vec::with_capacity(raw.len());
    for (i, m) in raw.iter().enumerate() {
        let role = m.get("role").and_then(Value::as_str).ok_or_else(|| {
            ApiError::bad(
                &format!("messages[{i}].role"),
                "every message needs a string `role`",
            )
        })?;
        if !matches!(role, "system" | "developer" | "user" | "assistant" | "tool") {
            return Err(ApiError::bad(
                &format!("messages[{i}].role"),
                format!("unknown role `{role}` (system, developer, user, assistant, tool)"),
            ));
        }
        let role = if role == "developer" { "system" } else { role };
        let content = content_text(i, m.get("content").unwrap_or(&Value::Null))?;
        messages.push(ChatMessage::new(role, content));
    }
    let temperature = number(&body, "temperature")?.unwrap_or(1.0);
    if !(0.0..=2.0).contains(&temperature) {
        return Err(ApiError::bad(
            "temperature",
            format!("must be in [0, 2], got {temperature}"),
        ));
    }
    let top_p = number(&body, "top_p")?.unwrap_or(1.0);
    if !(top_p > 0.0 && top_p <= 1.0) {
        return Err(ApiError::bad(
            "top_p",
            format!("must be in (0, 1], got {top_p}"),
        ));
    }
    let top_k = match unsigned(&body, "top_k")? {
        None | Some(0) => None,
        Some(k) => Some(u32::try_from(k).map_err(|_| ApiError::bad("top_k", "too large"))?),
    };
    let seed = unsigned(&body, "seed")?;
    let max_tokens = match (
        unsigned(&body, "max_completion_tokens")?,
        unsigned(&body, "max_tokens")?,
    ) {
        (Some(n), _) | (None, Some(n)) => n,
        (None, None) => 512.min(u64::from(config.max_tokens_limit)),
    };
    if max_tokens == 0 || max_tokens > u64::from(config.max_tokens_limit) {
        return Err(ApiError::bad(
            "max_tokens",
            format!(
                "must be in 1..={}, got {max_tokens}",
                config.max_tokens_limit
            ),
        ));
    }
    let stop = match body.get("stop") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(items)) => items
            .iter()
            .map(|s| {
                s.as_str().map(str::to_string).ok_or_else(|| {
                    ApiError::bad("stop", "`stop` must be a string or a list of strings")
                })
            })
            .collect::<Result<_, _>>()?,
        Some(_) => {
            return Err(ApiError::bad(
                "stop",
                "`stop` must be a string or a list of strings",
            ));
        }
    };
    if stop.iter().any(String::is_empty) {
        return Err(ApiError::bad("stop", "stop strings must not be empty"));
    }
    let logprobs = match body.get("logprobs") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(ApiError::bad("logprobs", "`logprobs` must be a boolean")),
    };
    if unsigned(&body, "top_logprobs")?.is_some_and(|k| k > 0) {
        return Err(ApiError::bad(
            "top_logprobs",
            "top log-probs are not supported",
        ));
    }
    let metadata = match body.get("metadata") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(m)) => m.clone(),
        Some(_) => return Err(ApiError::bad("metadata", "`metadata` must be an object")),
    };
    Ok(ChatRequest {
        messages,
        sampling: SamplingParams {
            temperature,
            top_p,
            seed,
            top_k,
        },
        stop,
        max_tokens: max_tokens as u32,
        logprobs,
        metadata,
    })
}

fn completion_body(id: u64, model: &str, r: &ChatResponse, logprobs: bool) -> Value {
    let created = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let lp = match (&r.logprobs, logprobs) {
        (Some(v), true) => json!({"content": v
            .iter()
            .map(|x| json!({"token": "", "logprob": x, "bytes": null, "top_logprobs": []}))
            .collect::<Vec<_>>()}),
        _ => Value::Null,
    };
    json!({
        "id": format!("chatcmpl-{id}"),
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": r.text},
            "finish_reason": if r.finish_reason.is_empty() { "stop" } else { r.finish_reason.as_str() },
            "logprobs": lp,
        }],
        "usage": {
            "prompt_tokens": r.usage.prompt_tokens,
            "completion_tokens": r.usage.completion_tokens,
            "total_tokens": r.usage.prompt_tokens + r.usage.completion_tokens,
        },
    })
}

fn respond(request: tiny_http::Request, status: u16, body: &Value) {
    let text = body.to_string();
    let mut response = tiny_http::Response::from_string(text).with_status_code(status);
    if let Ok(h) = tiny_http::Header::from_bytes(&b"Content-Type"[..], &b"application/json"[..]) {
        response = response.with_header(h);
    }
    if let Err(e) = request.respond(response) {
        tracing::debug!(error = %e, "client went away before the response");
    }
}

fn read_body(request: &mut tiny_http::Request, limit: usize) -> Result<Vec<u8>, ApiError> {
    let too_large = || ApiError {
        status: 413,
        kind: "invalid_request_error",
        param: None,
        message: format!("the body exceeds {limit} bytes"),
    };
    if request.body_length().is_some_and(|n| n > limit) {
        return Err(too_large());
    }
    let mut body = Vec::new();
    request
        .as_reader()
        .take(limit as u64 + 1)
        .read_to_end(&mut body)
        .map_err(|e| ApiError::bad("body", format!("cannot read the body: {e}")))?;
    if body.len() > limit {
        return Err(too_large());
    }
    Ok(body)
}

fn chat(
    request: &mut tiny_http::Request,
    jobs: &mpsc::Sender<Job>,
    config: &ServeConfig,
    ids: &AtomicU64,
) -> Result<Value, ApiError> {
    let body = read_body(request, config.max_body_bytes)?;
    let parsed = parse_chat_request(&body, config)?;
    let logprobs = parsed.logprobs;
    let (tx, rx) = mpsc::channel();
    let server_error = |message: String| ApiError {
        status: 500,
        kind: "server_error",
        param: None,
        message,
    };
    jobs.send(Job {
        request: parsed,
        reply: tx,
    })
    .map_err(|_| server_error("the server is shutting down".into()))?;
    let result = rx
        .recv()
        .map_err(|_| server_error("the backend stopped before answering".into()))?;
    match result {
        Ok(r) => Ok(completion_body(
            ids.fetch_add(1, Ordering::Relaxed),
            &config.model,
            &r,
            logprobs,
        )),
        Err(CompletionError {
            client_error: true,
            message,
        }) => Err(ApiError::bad("messages", message)),
        Err(CompletionError { message, .. }) => Err(server_error(message)),
    }
}

/// Serves one HTTP request.
pub(crate) fn handle(
    mut request: tiny_http::Request,
    jobs: &mpsc::Sender<Job>,
    config: &ServeConfig,
    ids: &AtomicU64,
) {
    let path = request.url().split('?').next().unwrap_or("").to_string();
    let method = request.method().as_str().to_ascii_uppercase();
    let outcome = match (method.as_str(), path.trim_end_matches('/')) {
        ("POST", "/v1/chat/completions") => chat(&mut request, jobs, config, ids),
        ("GET", "/v1/models") => Ok(json!({
            "object": "list",
            "data": [{"id": config.model, "object": "model", "owned_by": "flowrl"}],
        })),
        ("GET", "/health") => Ok(json!({"status": "ok"})),
        ("POST", "/v1/completions") => Err(ApiError::not_found(
            "text completions are not served; use /v1/chat/completions",
        )),
        (_, p) => Err(ApiError::not_found(format!("no route for {method} {p}"))),
    };
    match outcome {
        Ok(body) => respond(request, 200, &body),
        Err(e) => {
            tracing::debug!(status = e.status, message = %e.message, "request refused");
            respond(request, e.status, &e.body());
        }
    }
}
