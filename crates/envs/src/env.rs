//! What every environment implements, and the services it runs on.

use std::sync::Arc;

use flowrl_data::{Scorer, Task};
use flowrl_operators::{Executor, ExecutorError, Registry, TaskContext};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// The prompt of a context window, as chat messages to be rendered with the
/// policy's chat template.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Prompt {
    /// System message, if any.
    pub system: Option<String>,
    /// User message.
    pub user: String,
}

impl Prompt {
    /// The prompt as one text: the system message, a blank line, the user
    /// message (just the user message when there is no system message).
    pub fn text(&self) -> String {
        match &self.system {
            Some(s) => format!("{s}\n\n{}", self.user),
            None => self.user.clone(),
        }
    }
}

/// What the policy sees after a turn.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "text", rename_all = "snake_case")]
pub enum Observation {
    /// Text appended to the current context window (an environment span).
    Append(String),
    /// A new context window (a new prompt span): the canvas rebuilds its prompt.
    NewContext(Prompt),
    /// Nothing (the episode ended).
    Nothing,
}

/// The result of one step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepOutcome {
    /// What the policy sees next.
    pub observation: Observation,
    /// Whether the episode ended.
    pub done: bool,
    /// The episode reward, set on the final step.
    pub reward: Option<f64>,
    /// Details for logs and metrics (a JSON object).
    pub info: serde_json::Value,
}

/// What happened in an episode, for metrics.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct EpisodeSummary {
    /// Policy turns taken.
    pub turns: usize,
    /// Operator calls that ran (think-action) or operator nodes (canvas).
    pub operator_calls: usize,
    /// Operators used, in order.
    pub operators: Vec<String>,
    /// Turns that broke the protocol (format warnings, invalid actions).
    pub invalid_turns: usize,
    /// The final answer, if any.
    pub answer: Option<String>,
    /// Whether the answer is correct.
    pub correct: bool,
    /// The reward, once the episode ended.
    pub reward: Option<f64>,
    /// Whether the response follows the protocol's format.
    pub well_formed: bool,
}

/// Errors that stop an episode (protocol mistakes of the policy never do).
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum EnvError {
    /// `step` before `reset`.
    #[error("the episode has not started: call reset first")]
    NotStarted,
    /// `step` after the episode ended.
    #[error("the episode has ended")]
    Finished,
    /// The executor LLM failed after its retries.
    #[error("executor failure: {0}")]
    Executor(#[from] ExecutorError),
    /// Scoring the answer failed (e.g. the code sandbox cannot start).
    #[error("scoring failed: {0}")]
    Scoring(String),
    /// The task cannot be run by this environment.
    #[error("invalid task: {0}")]
    InvalidTask(String),
}

/// Shared, thread-safe services an environment runs on.
#[derive(Clone)]
pub struct Services {
    /// The operators the policy may call.
    pub registry: Arc<Registry>,
    /// The frozen executor LLM operators call.
    pub executor: Arc<dyn Executor>,
    /// Scores final answers.
    pub scorer: Arc<Scorer>,
}

impl Services {
    /// The operators offered to the policy: `configured` when non-empty,
    /// else every operator of the registry.
    pub fn offered(&self, configured: &[String]) -> Vec<String> {
        if configured.is_empty() {
            self.registry
                .names()
                .into_iter()
                .map(str::to_string)
                .collect()
        } else {
            configured.to_vec()
        }
    }
}

/// An episodic text environment.
pub trait Env: Send {
    /// Starts an episode on `task` and returns the first prompt.
    ///
    /// # Errors
    /// [`EnvError::InvalidTask`] when the task cannot be run.
    fn reset(&mut self, task: &Task) -> Result<Prompt, EnvError>;

    /// Applies one policy turn (its full text, stop string included).
    ///
    /// # Errors
    /// [`EnvError`] for failures that must stop the run (executor down,
    /// sandbox missing) or misuse; a malformed turn is never an error.
    fn step(&mut self, turn: &str) -> Result<StepOutcome, EnvError>;

    /// Ends the episode now (the rollout engine ran out of token budget),
    /// scoring what exists: think-action scores a missing answer, the
    /// canvas scores its current workflow.
    ///
    /// # Errors
    /// As [`Env::step`].
    fn truncate(&mut self) -> Result<StepOutcome, EnvError>;

    /// Strings at which the policy's generation of one turn should stop
    /// (they stay part of the turn).
    fn stop_strings(&self) -> Vec<String>;

    /// What happened so far in the current episode.
    fn summary(&self) -> EpisodeSummary;
}

/// The operator-side view of a task: question, family, tests as Python
/// text, and the gold answer for the simulator's side channel.
pub fn task_context(task: &Task) -> TaskContext {
    let mut ctx = TaskContext::new(task.id.clone(), task.family.as_str(), task.question.clone());
    if let Some(tests) = &task.tests {
        ctx.entry_point = tests.harness.as_ref().map(|h| h.entry_point.clone());
        if !tests.is_empty() {
            ctx.tests = Some(
                flowrl_rewards::build_program("", tests)
                    .trim_start()
                    .to_string(),
            );
        }
    }
    if ctx.entry_point.is_none() {
        ctx.entry_point = task
            .metadata
            .get("entry_point")
            .and_then(|v| v.as_str())
            .map(str::to_string);
    }
    let mut gold = serde_json::Map::new();
    gold.insert("answers".into(), serde_json::json!(task.answers));
    if let Some(r) = &task.reference {
        gold.insert("reference".into(), serde_json::json!(r));
    }
    ctx.gold = Some(serde_json::Value::Object(gold));
    ctx
}
