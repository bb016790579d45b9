//! A plugin that exercises every path of the flowrl plugin host.
//!
//! * operator library `fixtures`: `Noop` (`{}` → `{}`), `Panic` (panics),
//!   `BadOutput` (answers outside its output schema), `AskLlm` (forwards a
//!   prompt to the executor);
//! * LLM backend `echo`: answers `echo: <last message>`, after an optional
//!   `delay_ms` from its config; LLM backend `boom`: its constructor panics;
//! * environment `countdown`: counts from the task's `start` down to 0.

use std::time::Duration;

use flowrl_plugin_abi::{
    ChatRequest, ChatResponse, ComponentKind, EnvironmentImpl, Executor, LlmBackendImpl, Metadata,
    OperatorLibraryImpl, OperatorSpec, Plugin, PluginError, Step, Usage,
    author::{parse_input, to_output},
};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Input and output of `Noop`.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct Empty {}

/// Output `BadOutput` promises (and does not deliver).
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct Promised {
    /// Always present in a valid output.
    pub ok: bool,
}

/// Input of `AskLlm`.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct Prompt {
    /// Text sent to the executor as one user message.
    pub prompt: String,
}

/// Output of `AskLlm`.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct Answer {
    /// The executor's text.
    pub answer: String,
}

struct Fixtures;

impl OperatorLibraryImpl for Fixtures {
    fn operators(&self) -> Vec<OperatorSpec> {
        vec![
            OperatorSpec::typed::<Empty, Empty>("Noop", "Returns an empty object."),
            OperatorSpec::typed::<Empty, Empty>("Panic", "Panics."),
            OperatorSpec::typed::<Empty, Promised>(
                "BadOutput",
                "Returns output that violates its schema.",
            ),
            OperatorSpec::typed::<Prompt, Answer>("AskLlm", "Forwards the prompt to the executor."),
        ]
    }

    fn call(
        &self,
        operator: &str,
        input: &str,
        executor: &Executor<'_>,
    ) -> Result<String, PluginError> {
        match operator {
            "Noop" => Ok("{}".to_string()),
            "Panic" => panic!("the Panic operator always panics"),
            "BadOutput" => Ok(r#"{"ok":"not a boolean"}"#.to_string()),
            "AskLlm" => {
                let prompt: Prompt = parse_input(input)?;
                let answer = executor.chat(&ChatRequest::user(prompt.prompt))?;
                to_output(&Answer {
                    answer: answer.text,
                })
            }
            other => Err(PluginError::not_found(format!("no operator `{other}`"))),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EchoConfig {
    #[serde(default)]
    delay_ms: u64,
}

struct Echo {
    delay: Duration,
}

impl LlmBackendImpl for Echo {
    fn describe(&self) -> String {
        serde_json::json!({ "backend": "echo", "delay_ms": self.delay.as_millis() as u64 })
            .to_string()
    }

    fn chat(&self, request: &ChatRequest) -> Result<ChatResponse, PluginError> {
        std::thread::sleep(self.delay);
        let last = request
            .messages
            .last()
            .ok_or_else(|| PluginError::invalid_input("no messages"))?;
        let text = format!("echo: {}", last.content);
        let completion = text.split_whitespace().count() as u32;
        let prompt: usize = request
            .messages
            .iter()
            .map(|m| m.content.split_whitespace().count())
            .sum();
        Ok(ChatResponse {
            logprobs: request.logprobs.then(|| vec![-0.5; completion as usize]),
            usage: Usage {
                prompt_tokens: prompt as u32,
                completion_tokens: completion,
            },
            finish_reason: "stop".into(),
            text,
        })
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CountdownTask {
    start: u32,
}

#[derive(Default)]
struct Countdown {
    left: Option<u32>,
}

impl EnvironmentImpl for Countdown {
    fn describe(&self) -> String {
        serde_json::json!({
            "name": "countdown",
            "task_schema": {
                "type": "object",
                "properties": { "start": { "type": "integer", "minimum": 1 } },
                "required": ["start"],
                "additionalProperties": false
            }
        })
        .to_string()
    }

    fn reset(&mut self, task: &str) -> Result<String, PluginError> {
        let task: CountdownTask = parse_input(task)?;
        self.left = Some(task.start);
        Ok(format!("{} left", task.start))
    }

    fn step(&mut self, action: &str) -> Result<Step, PluginError> {
        let left = match self.left {
            Some(0) => {
                return Err(PluginError::invalid_state(
                    "the episode has ended; call reset",
                ));
            }
            Some(n) => n,
            None => return Err(PluginError::invalid_state("step before reset")),
        };
        let next = if action.trim() == "down" {
            left - 1
        } else {
            left
        };
        self.left = Some(next);
        Ok(Step {
            observation: format!("{next} left"),
            reward: if next == 0 { 1.0 } else { 0.0 },
            done: next == 0,
            info: serde_json::json!({ "left": next }),
        })
    }
}

/// The fixtures plugin.
pub struct FixturesPlugin;

impl Plugin for FixturesPlugin {
    fn metadata() -> Metadata {
        Metadata {
            name: "test-fixtures".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Fixtures for plugin host tests.".into(),
            provides: vec![
                (
                    ComponentKind::OPERATOR_LIBRARY,
                    "fixtures".into(),
                    "Noop, Panic, BadOutput, AskLlm".into(),
                ),
                (
                    ComponentKind::LLM_BACKEND,
                    "echo".into(),
                    "Echoes the last message".into(),
                ),
                (
                    ComponentKind::LLM_BACKEND,
                    "boom".into(),
                    "Panics when constructed".into(),
                ),
                (
                    ComponentKind::ENVIRONMENT,
                    "countdown".into(),
                    "Counts down to zero".into(),
                ),
            ],
        }
    }

    fn operator_library(
        name: &str,
        _config: &str,
    ) -> Result<Box<dyn OperatorLibraryImpl>, PluginError> {
        match name {
            "fixtures" => Ok(Box::new(Fixtures)),
            other => Err(PluginError::not_found(format!(
                "no operator library `{other}`"
            ))),
        }
    }

    fn llm_backend(name: &str, config: &str) -> Result<Box<dyn LlmBackendImpl>, PluginError> {
        match name {
            "echo" => {
                let config: EchoConfig = parse_input(config)?;
                Ok(Box::new(Echo {
                    delay: Duration::from_millis(config.delay_ms),
                }))
            }
            "boom" => panic!("the boom backend cannot be constructed"),
            other => Err(PluginError::not_found(format!("no LLM backend `{other}`"))),
        }
    }

    fn environment(name: &str, _config: &str) -> Result<Box<dyn EnvironmentImpl>, PluginError> {
        match name {
            "countdown" => Ok(Box::new(Countdown::default())),
            other => Err(PluginError::not_found(format!("no environment `{other}`"))),
        }
    }
}

flowrl_plugin_abi::export_plugin!(FixturesPlugin);
