//! [`ThinkActionEnv`]: Workflow-R1's multi-turn operator-calling environment.

use flowrl_data::Task;
use flowrl_operators::{CallError, OperatorError, TaskContext};
use flowrl_rewards::{ThinkActionRewardConfig, check_format};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{TurnAction, parse_turn, truncate_middle};
use crate::env::{
    Env, EnvError, EpisodeSummary, Observation, Prompt, Services, StepOutcome, task_context,
};

/// How much instruction the prompt carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum PromptStyle {
    /// The full rules and the operator list (for pretrained policies).
    #[default]
    Full,
    /// Only the question and the task family, as `question\n[family]` (for
    /// tiny policies trained from scratch, which learn the protocol from
    /// demonstrations). The family tag comes last, at a fixed distance from
    /// the policy's first token, where a small model finds it easily.
    Compact,
}

/// Settings of [`ThinkActionEnv`] (defaults from Workflow-R1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct ThinkActionConfig {
    /// Maximum operator calls per episode.
    pub max_calls: usize,
    /// Maximum policy turns per episode (calls, answers and invalid turns).
    pub max_turns: usize,
    /// Response budget in tokens (tool text included); enforced by the
    /// rollout engine, which counts tokens.
    pub max_response_tokens: usize,
    /// Prompt length limit in tokens; enforced by the rollout engine.
    pub max_prompt_tokens: usize,
    /// Characters kept at each end of a long tool result.
    pub info_half_chars: usize,
    /// Operators offered to the policy (all of the registry when empty).
    pub operators: Vec<String>,
    /// Prompt style.
    pub prompt_style: PromptStyle,
    /// Reward weights.
    pub reward: ThinkActionRewardConfig,
}

impl Default for ThinkActionConfig {
    fn default() -> Self {
        ThinkActionConfig {
            max_calls: 20,
            max_turns: 24,
            max_response_tokens: 8192,
            max_prompt_tokens: 1280,
            info_half_chars: 1024,
            operators: Vec::new(),
            prompt_style: PromptStyle::Full,
            reward: ThinkActionRewardConfig::default(),
        }
    }
}

struct Episode {
    task: Task,
    ctx: TaskContext,
    transcript: String,
    /// Text of the previous operator output (for `$last` in inputs).
    last_text: Option<String>,
    /// Answer of the latest operator that produced one (for `$last` in answers).
    last_answer: Option<String>,
    summary: EpisodeSummary,
    done: bool,
}

/// Workflow-R1's environment: the policy thinks, calls operators as
/// `<tool>Name: input</tool>`, reads `<info>` results, and answers.
///
/// Extension for small policies (documented in `docs/environments.md`): in a
/// tool input, `$question` is the task's question and `$last` the previous
/// operator's output; `<answer>$last</answer>` answers with the latest
/// operator answer.
pub struct ThinkActionEnv {
    config: ThinkActionConfig,
    services: Services,
    episode: Option<Episode>,
}

impl ThinkActionEnv {
    /// An environment over these services.
    pub fn new(config: ThinkActionConfig, services: Services) -> Self {
        ThinkActionEnv {
            config,
            services,
            episode: None,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &ThinkActionConfig {
        &self.config
    }

    fn offered(&self) -> Vec<String> {
        self.services.offered(&self.config.operators)
    }

    /// The prompt for a task.
    pub fn prompt(&self, task: &Task) -> Prompt {
        match self.config.prompt_style {
            PromptStyle::Compact => Prompt {
                system: None,
                user: format!("{}\n[{}]", task.question, task.family),
            },
            PromptStyle::Full => {
                let mut ops = String::new();
                for name in self.offered() {
                    if let Some(op) = self.services.registry.get(&name) {
                        ops.push_str(&format!("- {name}: {}\n", op.description()));
                    }
                }
                let system = format!(
                    "You solve a task by building a workflow of operator calls, one call per turn.\n\
                     Reason inside <think>...</think> before every action and after every result.\n\
                     Call an operator as <tool>Name: input</tool>; its result comes back as <info>...</info>.\n\
                     In an input, $question stands for the task's question and $last for the previous result.\n\
                     You may call at most {} operators. End with the final answer, as short as possible, \
                     inside <answer>...</answer>; <answer>$last</answer> gives the latest operator answer.\n\n\
                     Operators:\n{ops}",
                    self.config.max_calls
                );
                Prompt {
                    system: Some(system),
                    user: format!("Task ({}): {}", task.family, task.question),
                }
            }
        }
    }

    fn info(&self, text: &str) -> String {
        format!(
            "\n<info>{}</info>\n",
            truncate_middle(text, self.config.info_half_chars)
        )
    }

    fn finish(&mut self, answer: Option<String>) -> Result<StepOutcome, EnvError> {
        let scorer = self.services.scorer.clone();
        let cfg = self.config.reward.clone();
        let ep = self.episode.as_mut().ok_or(EnvError::NotStarted)?;
        ep.done = true;
        let well_formed = check_format(&ep.transcript).is_ok();
        let (a, correct) = match &answer {
            None => (cfg.missing, false),
            Some(ans) => {
                let item = scorer
                    .score(&ep.task, ans)
                    .map_err(|e| EnvError::Scoring(e.to_string()))?;
                (
                    if item.correct { cfg.correct } else { cfg.wrong },
                    item.correct,
                )
            }
        };
        let f = if well_formed { 0.0 } else { cfg.format_penalty };
        let reward = f + a;
        ep.summary.answer = answer;
        ep.summary.correct = correct;
        ep.summary.reward = Some(reward);
        ep.summary.well_formed = well_formed;
        Ok(StepOutcome {
            observation: Observation::Nothing,
            done: true,
            reward: Some(reward),
            info: serde_json::json!({"format": f, "answer_reward": a, "correct": correct}),
        })
    }
}

impl Env for ThinkActionEnv {
    fn reset(&mut self, task: &Task) -> Result<Prompt, EnvError> {
        if task.question.trim().is_empty() {
            return Err(EnvError::InvalidTask(format!(
                "task `{}` has an empty question",
                task.id
            )));
        }
        self.episode = Some(Episode {
            task: task.clone(),
            ctx: task_context(task),
            transcript: String::new(),
            last_text: None,
            last_answer: None,
            summary: EpisodeSummary::default(),
            done: false,
        });
        Ok(self.prompt(task))
    }

    fn step(&mut self, turn: &str) -> Result<StepOutcome, EnvError> {
        let max_turns = self.config.max_turns;
        let max_calls = self.config.max_calls;
        let offered = self.offered();
        let ep = self.episode.as_mut().ok_or(EnvError::NotStarted)?;
        if ep.done {
            return Err(EnvError::Finished);
        }
        ep.summary.turns += 1;
        ep.transcript.push_str(turn);
        let parsed = parse_turn(turn);
        let out_of_turns = ep.summary.turns >= max_turns;
        let observation = match parsed.action {
            TurnAction::Answer(a) => {
                let a = if a == "$last" {
                    ep.last_answer.clone().unwrap_or_default()
                } else {
                    a
                };
                return self.finish(Some(a));
            }
            TurnAction::Tool { .. } if ep.summary.operator_calls >= max_calls => {
                return self.finish(None);
            }
            TurnAction::Tool { name, input } => {
                ep.summary.operator_calls += 1;
                if !offered.iter().any(|o| o == &name) {
                    ep.summary.invalid_turns += 1;
                    format!(
                        "Error: there is no operator `{name}`. Available operators: {}.",
                        offered.join(", ")
                    )
                } else {
                    ep.summary.operators.push(name.clone());
                    let exec = self.services.executor.clone();
                    match self.services.registry.call_text(
                        &name,
                        &input,
                        &ep.ctx,
                        ep.last_text.as_deref(),
                        &*exec,
                    ) {
                        Ok(out) => {
                            ep.last_text =
                                Some(out.answer.clone().unwrap_or_else(|| out.text.clone()));
                            if out.answer.is_some() {
                                ep.last_answer = out.answer.clone();
                            }
                            out.text
                        }
                        Err(CallError::Argument(explanation)) => {
                            ep.summary.invalid_turns += 1;
                            format!("Error: {explanation}")
                        }
                        Err(CallError::Operator(OperatorError::Executor { source, .. })) => {
                            return Err(EnvError::Executor(source));
                        }
                        Err(CallError::Operator(e)) => format!("The operator failed: {e}"),
                        Err(e) => format!("The operator failed: {e}"),
                    }
                }
            }
            TurnAction::MalformedTool { error, .. } => {
                ep.summary.invalid_turns += 1;
                format!("Format error: {error}. Write a call as <tool>Name: input</tool>.")
            }
            TurnAction::None => {
                ep.summary.invalid_turns += 1;
                "Format warning: no action found. Think in <think>...</think>, then either call an operator \
                 with <tool>Name: input</tool> or answer with <answer>...</answer>."
                    .to_string()
            }
        };
        let text = self.info(&observation);
        let ep = self.episode.as_mut().ok_or(EnvError::NotStarted)?;
        ep.transcript.push_str(&text);
        if out_of_turns {
            return self.finish(None);
        }
        Ok(StepOutcome {
            observation: Observation::Append(text),
            done: false,
            reward: None,
            info: serde_json::json!({}),
        })
    }

    fn truncate(&mut self) -> Result<StepOutcome, EnvError> {
        match &self.episode {
            None => Err(EnvError::NotStarted),
            Some(ep) if ep.done => Err(EnvError::Finished),
            Some(_) => self.finish(None),
        }
    }

    fn stop_strings(&self) -> Vec<String> {
        vec!["</tool>".to_string(), "</answer>".to_string()]
    }

    fn summary(&self) -> EpisodeSummary {
        self.episode
            .as_ref()
            .map(|e| e.summary.clone())
            .unwrap_or_default()
    }
}
