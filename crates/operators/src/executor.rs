//! The frozen executor LLM and the request / parse / retry loop every
//! operator uses.

use flowrl_plugin_abi::{ChatMessage, ChatRequest, ChatResponse, LlmBackendImpl};

use crate::{ExecutorError, OPERATOR_KEY, OperatorError, SIDE_CHANNEL_KEY, SideChannel};

/// The executor LLM that operators call.
///
/// Every [`LlmBackendImpl`] (a backend plugin's author-side type, e.g. the
/// simulated executor) is an `Executor`; [`AbiExecutor`] adapts the handle an
/// operator library receives through the plugin ABI, and [`FnExecutor`] a
/// closure (scripted executors in tests).
pub trait Executor: Send + Sync {
    /// Completes one chat request.
    ///
    /// # Errors
    /// Whatever stops the backend from answering.
    fn chat(&self, req: &ChatRequest) -> Result<ChatResponse, ExecutorError>;
}

impl<B: LlmBackendImpl + ?Sized> Executor for B {
    fn chat(&self, req: &ChatRequest) -> Result<ChatResponse, ExecutorError> {
        LlmBackendImpl::chat(self, req).map_err(ExecutorError::from)
    }
}

/// The executor handle of an ABI operator call, as an [`Executor`].
pub struct AbiExecutor<'a, 'b>(pub &'a flowrl_plugin_abi::Executor<'b>);

impl Executor for AbiExecutor<'_, '_> {
    fn chat(&self, req: &ChatRequest) -> Result<ChatResponse, ExecutorError> {
        self.0.chat(req).map_err(ExecutorError::from)
    }
}

/// A closure as an [`Executor`].
pub struct FnExecutor<F>(pub F);

impl<F> Executor for FnExecutor<F>
where
    F: Fn(&ChatRequest) -> Result<ChatResponse, ExecutorError> + Send + Sync,
{
    fn chat(&self, req: &ChatRequest) -> Result<ChatResponse, ExecutorError> {
        (self.0)(req)
    }
}

/// How operators talk to the executor.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct CallSettings {
    pub temperature: f64,
    pub max_tokens: u32,
    pub max_retries: u32,
}

/// The result of [`ask`]: the parsed value and the number of executor calls.
pub(crate) struct Asked<T> {
    pub value: T,
    pub calls: u32,
}

/// Builds the request for `messages` with the side channel attached.
pub(crate) fn request(
    settings: &CallSettings,
    messages: Vec<ChatMessage>,
    side: &SideChannel,
) -> ChatRequest {
    let mut req = ChatRequest::user(String::new());
    req.messages = messages;
    req.sampling.temperature = settings.temperature;
    req.max_tokens = settings.max_tokens;
    req.metadata.insert(
        OPERATOR_KEY.to_string(),
        serde_json::Value::String(side.operator.clone()),
    );
    if let Ok(v) = serde_json::to_value(side) {
        req.metadata.insert(SIDE_CHANNEL_KEY.to_string(), v);
    }
    req
}

/// Sends `system` + `user` to the executor and parses the reply with
/// `parse`; on a parse failure retries up to `max_retries` times, each time
/// showing the executor its previous reply and a hint (the parser's message,
/// or a request to be shorter when the reply was cut at the token limit).
pub(crate) fn ask<T>(
    exec: &dyn Executor,
    settings: &CallSettings,
    mut side: SideChannel,
    system: &str,
    user: &str,
    parse: impl Fn(&str) -> Result<T, String>,
) -> Result<Asked<T>, OperatorError> {
    let base = vec![
        ChatMessage::new("system", system),
        ChatMessage::new("user", user),
    ];
    let mut messages = base.clone();
    let mut calls = 0u32;
    let mut reason = String::new();
    for attempt in 0..=settings.max_retries {
        side.attempt = attempt;
        let req = request(settings, messages.clone(), &side);
        calls += 1;
        let resp = exec.chat(&req).map_err(|source| OperatorError::Executor {
            operator: side.operator.clone(),
            source,
        })?;
        match parse(&resp.text) {
            Ok(value) => return Ok(Asked { value, calls }),
            Err(why) => {
                let truncated = resp.finish_reason == "length";
                reason = if truncated {
                    format!("{why}; the reply was cut at the token limit")
                } else {
                    why
                };
                let hint = if truncated {
                    format!(
                        "Your reply was cut off at the length limit before it was complete ({reason}). \
                         Answer again, much more briefly, and make sure every tag is closed."
                    )
                } else {
                    format!(
                        "Your reply could not be used: {reason}. Answer again in exactly the requested format."
                    )
                };
                messages = base.clone();
                messages.push(ChatMessage::new("assistant", resp.text));
                messages.push(ChatMessage::new("user", hint));
            }
        }
    }
    Err(OperatorError::Unparseable {
        operator: side.operator,
        attempts: calls,
        reason,
    })
}
