//! [`CanvasEnv`]: FlowSteer's workflow canvas as an environment.
//!
//! Each turn the policy emits one action; the prompt is rebuilt every turn
//! from the problem, the canvas state and the last feedback. An added node
//! waits for its custom prompt (one turn per operator slot), then the whole
//! workflow is re-executed — unchanged nodes come from a per-node cache keyed
//! on their inputs — and the result comes back in a `<feedback>` block.

use std::collections::{HashMap, VecDeque};

use flowrl_data::{Task, TaskFamily};
use flowrl_operators::{
    CallError, OperatorError, OperatorInput, OperatorOutput, OperatorRole, TaskContext,
};
use flowrl_rewards::{DiversityConfig, WorkflowSummary, cwrpo_reward};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::action::{CanvasAction, parse_action};
use super::workflow::{OpSlot, Step, Workflow};
use crate::env::{
    Env, EnvError, EpisodeSummary, Observation, Prompt, Services, StepOutcome, task_context,
};
use crate::tags;
use crate::think_action::env::PromptStyle;
use crate::think_action::truncate_middle;

/// Settings of [`CanvasEnv`] (defaults from FlowSteer).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct CanvasConfig {
    /// Policy turns before the episode is finished automatically.
    pub max_rounds: usize,
    /// Operators a workflow needs before `finish` is accepted.
    pub min_operators: usize,
    /// A qa/math answer longer than this (characters) needs a Format node
    /// before `finish` is accepted.
    pub format_after_chars: usize,
    /// Longest last-feedback text shown in the prompt (characters).
    pub feedback_chars: usize,
    /// Longest execution result shown in the feedback (characters).
    pub result_chars: usize,
    /// Operators the policy may place (all of the registry when empty).
    pub operators: Vec<String>,
    /// Prompt style.
    pub prompt_style: PromptStyle,
    /// The diversity-constrained reward's settings.
    pub diversity: DiversityConfig,
}

impl Default for CanvasConfig {
    fn default() -> Self {
        CanvasConfig {
            max_rounds: 20,
            min_operators: 5,
            format_after_chars: 300,
            feedback_chars: 800,
            result_chars: 500,
            operators: Vec::new(),
            prompt_style: PromptStyle::Full,
            diversity: DiversityConfig::default(),
        }
    }
}

/// The result of executing the workflow once.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Execution {
    /// The last answer an answering operator produced.
    pub answer: Option<String>,
    /// The output flowing out of the last node.
    pub output: String,
    /// Operator runs that were not served from the cache.
    pub fresh_runs: usize,
    /// Problems met while running (argument errors, failed operators).
    pub errors: Vec<String>,
}

struct Episode {
    task: Task,
    ctx: TaskContext,
    workflow: Workflow,
    pending: VecDeque<(u32, usize)>,
    round: usize,
    feedback: String,
    cache: HashMap<String, OperatorOutput>,
    execution: Execution,
    summary: EpisodeSummary,
    done: bool,
}

/// FlowSteer's canvas environment.
pub struct CanvasEnv {
    config: CanvasConfig,
    services: Services,
    episode: Option<Episode>,
}

fn cache_key(op: &str, input: &OperatorInput) -> String {
    let mut k = String::new();
    for part in [
        op,
        input.instruction.as_deref().unwrap_or(""),
        input.feedback.as_deref().unwrap_or(""),
    ] {
        k.push_str(part);
        k.push('\u{1f}');
    }
    for i in &input.inputs {
        k.push_str(i);
        k.push('\u{1e}');
    }
    k
}

impl CanvasEnv {
    /// An environment over these services.
    pub fn new(config: CanvasConfig, services: Services) -> Self {
        CanvasEnv {
            config,
            services,
            episode: None,
        }
    }

    /// The current workflow, if an episode is running.
    pub fn workflow(&self) -> Option<&Workflow> {
        self.episode.as_ref().map(|e| &e.workflow)
    }

    fn offered(&self) -> Vec<String> {
        self.services.offered(&self.config.operators)
    }

    fn role(&self, op: &str) -> Option<OperatorRole> {
        self.services.registry.get(op).map(|o| o.role())
    }

    fn check_ops<'a>(&self, ops: impl IntoIterator<Item = &'a String>) -> Result<(), String> {
        let offered = self.offered();
        for op in ops {
            if !offered.iter().any(|o| o == op) {
                return Err(format!(
                    "unknown operator `{op}`; available: {}",
                    offered.join(", ")
                ));
            }
        }
        Ok(())
    }

    /// Runs one operator slot, through the cache.
    fn run_slot(
        &self,
        ep: &mut Episode,
        slot: &OpSlot,
        inputs: &[String],
        feedback: Option<&str>,
        exec: &mut Execution,
    ) -> Result<Option<OperatorOutput>, EnvError> {
        let input = OperatorInput {
            inputs: inputs.to_vec(),
            feedback: feedback.map(str::to_string),
            instruction: slot.prompt.clone(),
            query: None,
        };
        let key = cache_key(&slot.op, &input);
        if let Some(hit) = ep.cache.get(&key) {
            return Ok(Some(hit.clone()));
        }
        let executor = self.services.executor.clone();
        match self
            .services
            .registry
            .call(&slot.op, &ep.ctx, &input, &*executor)
        {
            Ok(out) => {
                exec.fresh_runs += 1;
                ep.cache.insert(key, out.clone());
                Ok(Some(out))
            }
            Err(CallError::Operator(OperatorError::Executor { source, .. })) => {
                Err(EnvError::Executor(source))
            }
            Err(e) => {
                exec.errors.push(format!("{}: {e}", slot.op));
                Ok(None)
            }
        }
    }

    /// Executes the whole workflow on the episode's task.
    fn execute(&self, ep: &mut Episode) -> Result<Execution, EnvError> {
        let mut exec = Execution::default();
        let mut current: Vec<String> = Vec::new();
        let mut feedback: Option<String> = None;
        let nodes = ep.workflow.nodes.clone();
        // Applies one sequential slot: checkers leave the solution in place and
        // provide feedback; every other operator's output flows on.
        let seq = |env: &Self,
                   ep: &mut Episode,
                   slot: &OpSlot,
                   current: &mut Vec<String>,
                   feedback: &mut Option<String>,
                   exec: &mut Execution|
         -> Result<Option<OperatorOutput>, EnvError> {
            let out = env.run_slot(ep, slot, current, feedback.as_deref(), exec)?;
            if let Some(o) = &out {
                if env.role(&slot.op) == Some(OperatorRole::Checker) {
                    *feedback = Some(o.text.clone());
                } else {
                    *current = vec![o.answer.clone().unwrap_or_else(|| o.text.clone())];
                    *feedback = None;
                }
                if o.answer.is_some() {
                    exec.answer = o.answer.clone();
                }
            }
            Ok(out)
        };
        for node in &nodes {
            match &node.step {
                Step::Operator(slot) => {
                    seq(self, ep, slot, &mut current, &mut feedback, &mut exec)?;
                }
                Step::Parallel(slots) => {
                    let mut outs = Vec::new();
                    for slot in slots {
                        if let Some(o) =
                            self.run_slot(ep, slot, &current, feedback.as_deref(), &mut exec)?
                        {
                            if o.answer.is_some() {
                                exec.answer = o.answer.clone();
                            }
                            outs.push(o.answer.unwrap_or(o.text));
                        }
                    }
                    if !outs.is_empty() {
                        current = outs;
                        feedback = None;
                    }
                }
                Step::Conditional {
                    check,
                    on_fail,
                    on_pass,
                } => {
                    let verdict = self.run_slot(ep, check, &current, None, &mut exec)?;
                    let failed = verdict.as_ref().is_some_and(|v| v.verdict == Some(false));
                    feedback = verdict.map(|v| v.text);
                    if let Some(branch) = if failed { on_fail } else { on_pass } {
                        seq(self, ep, branch, &mut current, &mut feedback, &mut exec)?;
                    }
                }
                Step::Loop { body, count } => {
                    for _ in 0..*count {
                        for slot in body {
                            seq(self, ep, slot, &mut current, &mut feedback, &mut exec)?;
                        }
                    }
                }
            }
        }
        exec.output = current.join("\n---\n");
        Ok(exec)
    }

    /// Why `finish` is refused, if it is.
    fn finish_problems(&self, ep: &Episode) -> Vec<String> {
        let stats = ep.workflow.stats();
        let roles: Vec<Option<OperatorRole>> =
            ep.workflow.slots().map(|s| self.role(&s.op)).collect();
        let mut why = Vec::new();
        if stats.operators < self.config.min_operators {
            why.push(format!(
                "use at least {} operators (now {})",
                self.config.min_operators, stats.operators
            ));
        }
        if !roles.contains(&Some(OperatorRole::Solver)) {
            why.push("add a solver (e.g. AnswerGenerate, Programmer, Custom)".into());
        }
        if !roles.contains(&Some(OperatorRole::Checker)) {
            why.push("add a checker (Review, Verify or Test)".into());
        }
        if !(stats.has_parallel || stats.has_conditional || stats.has_loop) {
            why.push("add a structure (parallel, conditional or loop)".into());
        }
        if ep.task.family == TaskFamily::Code
            && ep.task.tests.as_ref().is_some_and(|t| !t.is_empty())
            && !ep.workflow.slots().any(|s| s.op == "Test")
        {
            why.push("code tasks with tests need a Test node".into());
        }
        let long = ep
            .execution
            .answer
            .as_ref()
            .is_some_and(|a| a.chars().count() > self.config.format_after_chars);
        if ep.task.family != TaskFamily::Code
            && long
            && !ep.workflow.slots().any(|s| s.op == "Format")
        {
            why.push("the answer is long: add a Format node".into());
        }
        if !ep.pending.is_empty() {
            why.push("finish the pending node prompts first".into());
        }
        why
    }

    fn feedback_block(&self, ep: &Episode, ok: bool, message: &str) -> String {
        let st = ep.workflow.stats();
        let nodes: Vec<String> = ep
            .workflow
            .nodes
            .iter()
            .map(|n| {
                let ops: Vec<&str> = n.step.slots().iter().map(|s| s.op.as_str()).collect();
                format!("node_{} ({})", n.id, ops.join(", "))
            })
            .collect();
        let mut hints = Vec::new();
        if let Some(&(id, slot)) = ep.pending.front() {
            hints.push(format!("write the prompt for node_{id} slot {}", slot + 1));
        } else {
            hints.extend(self.finish_problems(ep));
        }
        let result = ep
            .execution
            .answer
            .clone()
            .unwrap_or_else(|| ep.execution.output.clone());
        format!(
            "<feedback>\nstatus: {}\nmessage: {}\nworkflow: {}\nnodes: {}\nstats: operators={} unique={} parallel={} conditional={} loop={}\nresult: {}\nhints: {}\nround: {}/{}\n</feedback>",
            if ok { "Success" } else { "Failed" },
            message,
            if ep.workflow.nodes.is_empty() {
                "(empty)".to_string()
            } else {
                ep.workflow.to_string()
            },
            if nodes.is_empty() {
                "(none)".to_string()
            } else {
                nodes.join(", ")
            },
            st.operators,
            st.unique_types.len(),
            st.has_parallel,
            st.has_conditional,
            st.has_loop,
            truncate_middle(&result, self.config.result_chars / 2),
            if hints.is_empty() {
                "you may finish".to_string()
            } else {
                hints.join("; ")
            },
            ep.round,
            self.config.max_rounds
        )
    }

    fn prompt_for(&self, ep: &Episode) -> Prompt {
        let dsl = if ep.workflow.nodes.is_empty() {
            "(empty)".to_string()
        } else {
            ep.workflow.to_string()
        };
        let awaiting = ep.pending.front().map(|&(id, slot)| {
            let op = ep
                .workflow
                .position(id)
                .and_then(|i| {
                    ep.workflow.nodes[i]
                        .step
                        .slots()
                        .get(slot)
                        .map(|s| s.op.clone())
                })
                .unwrap_or_default();
            format!("node_{id} ({op})")
        });
        match self.config.prompt_style {
            PromptStyle::Compact => {
                // The family tag comes last, next to the policy's turn.
                let mut user = format!(
                    "{}\nworkflow: {dsl}\nround {}/{}",
                    ep.task.question,
                    ep.round + 1,
                    self.config.max_rounds
                );
                if let Some(a) = awaiting {
                    user.push_str(&format!("\nprompt for {a}"));
                }
                user.push_str(&format!("\n[{}]", ep.task.family));
                Prompt { system: None, user }
            }
            PromptStyle::Full => {
                let mut ops = String::new();
                for name in self.offered() {
                    if let Some(op) = self.services.registry.get(&name) {
                        ops.push_str(&format!(
                            "- {name} ({}): {}\n",
                            op.role().as_str(),
                            op.description()
                        ));
                    }
                }
                let system = format!(
                    "You design an executable workflow for a problem by editing a canvas, one action per turn.\n\
                     Actions (you may think first in <think>...</think>):\n\
                     <action>add</action><operator>X</operator>\n\
                     <action>add</action><structure>parallel</structure><operators>A,B</operators>\n\
                     <action>add</action><structure>conditional</structure><condition>Review|Verify|Test</condition><true>X</true><false>done</false>  (true runs when the check fails)\n\
                     <action>add</action><structure>loop</structure><operators>A,B</operators><count>n</count>\n\
                     <action>delete</action><target>node_i</target>\n\
                     <action>modify</action><target>node_i</target><operator>X</operator>\n\
                     <action>set_prompt</action><target>node_i</target><prompt>...</prompt>\n\
                     <action>finish</action>\n\
                     After adding, write a 1-3 sentence instruction for each new operator, one per turn.\n\
                     Every edit re-runs the workflow and returns feedback. Finish needs at least {} operators, \
                     a solver, a checker and one structure.\n\nOperators:\n{ops}",
                    self.config.min_operators
                );
                let hint = match ep.task.family {
                    TaskFamily::Qa => "a question with a short factual answer",
                    TaskFamily::Math => "a math problem with a final numeric or symbolic answer",
                    TaskFamily::Code => "a programming task checked by tests",
                };
                let mut user = format!(
                    "Problem type: {hint}.\nProblem: {}\n\nCanvas: {dsl}\nNodes: {}\nRound {} of {}\n",
                    ep.task.question,
                    ep.workflow.stats().operators,
                    ep.round + 1,
                    self.config.max_rounds
                );
                if let Some(a) = awaiting {
                    user.push_str(&format!("Write the instruction for {a}.\n"));
                }
                if !ep.feedback.is_empty() {
                    user.push_str(&format!(
                        "Last feedback:\n{}\n",
                        truncate_middle(&ep.feedback, self.config.feedback_chars / 2)
                    ));
                }
                Prompt {
                    system: Some(system),
                    user,
                }
            }
        }
    }

    fn end(&mut self) -> Result<StepOutcome, EnvError> {
        let scorer = self.services.scorer.clone();
        let diversity = self.config.diversity.clone();
        let ep = self.episode.as_mut().ok_or(EnvError::NotStarted)?;
        ep.done = true;
        let answer = ep.execution.answer.clone();
        let (r_answer, correct) = match &answer {
            None => (0.0, false),
            Some(a) => {
                let item = scorer
                    .score(&ep.task, a)
                    .map_err(|e| EnvError::Scoring(e.to_string()))?;
                let r = if ep.task.family == TaskFamily::Qa {
                    item.f1.unwrap_or(item.score)
                } else {
                    item.score
                };
                (r, item.correct)
            }
        };
        let st = ep.workflow.stats();
        let summary = WorkflowSummary {
            operators: ep.workflow.slots().map(|s| s.op.clone()).collect(),
            has_parallel: st.has_parallel,
            has_conditional: st.has_conditional,
            has_loop: st.has_loop,
        };
        let r = cwrpo_reward(&summary, r_answer, &diversity);
        ep.summary.answer = answer;
        ep.summary.correct = correct;
        ep.summary.reward = Some(r.reward);
        ep.summary.operators = summary.operators.clone();
        ep.summary.operator_calls = summary.operators.len();
        ep.summary.well_formed = r.released;
        Ok(StepOutcome {
            observation: Observation::Nothing,
            done: true,
            reward: Some(r.reward),
            info: serde_json::json!({
                "diversity": r.diversity, "released": r.released, "answer_reward": r.answer,
                "correct": correct, "workflow": ep.workflow.to_string(),
            }),
        })
    }

    /// Applies an edit; `Ok(message)` on success, `Err(reason)` for an invalid action.
    fn apply(&self, ep: &mut Episode, action: CanvasAction) -> Result<String, String> {
        let slots_of = |step: &Step| step.slots().len();
        match action {
            CanvasAction::AddOperator { op } => {
                self.check_ops([&op])?;
                let id = ep.workflow.push(Step::Operator(OpSlot::new(op.clone())));
                ep.pending.push_back((id, 0));
                Ok(format!(
                    "added node_{id} ({op}); write its instruction next"
                ))
            }
            CanvasAction::AddParallel { ops } => {
                self.check_ops(&ops)?;
                let step = Step::Parallel(ops.iter().map(OpSlot::new).collect());
                self.push_structure(ep, step, "parallel")
            }
            CanvasAction::AddConditional {
                check,
                on_fail,
                on_pass,
            } => {
                self.check_ops(
                    std::iter::once(&check)
                        .chain(on_fail.iter())
                        .chain(on_pass.iter()),
                )?;
                if self.role(&check) != Some(OperatorRole::Checker) {
                    return Err(format!(
                        "`{check}` is not a checker; use Review, Verify or Test as the condition"
                    ));
                }
                let step = Step::Conditional {
                    check: OpSlot::new(check),
                    on_fail: on_fail.map(OpSlot::new),
                    on_pass: on_pass.map(OpSlot::new),
                };
                self.push_structure(ep, step, "conditional")
            }
            CanvasAction::AddLoop { ops, count } => {
                self.check_ops(&ops)?;
                let step = Step::Loop {
                    body: ops.iter().map(OpSlot::new).collect(),
                    count,
                };
                self.push_structure(ep, step, "loop")
            }
            CanvasAction::Delete { target } => {
                ep.workflow
                    .remove(target)
                    .ok_or_else(|| format!("there is no node_{target}"))?;
                ep.pending.retain(|&(id, _)| id != target);
                Ok(format!("deleted node_{target}"))
            }
            CanvasAction::Modify { target, op } => {
                self.check_ops([&op])?;
                let i = ep
                    .workflow
                    .position(target)
                    .ok_or_else(|| format!("there is no node_{target}"))?;
                match &mut ep.workflow.nodes[i].step {
                    Step::Operator(slot) => {
                        slot.op = op.clone();
                        Ok(format!("node_{target} is now {op}"))
                    }
                    s => Err(format!(
                        "node_{target} is a structure with {} operators; delete and re-add it",
                        slots_of(s)
                    )),
                }
            }
            CanvasAction::SetPrompt { target, prompt } => {
                let i = ep
                    .workflow
                    .position(target)
                    .ok_or_else(|| format!("there is no node_{target}"))?;
                for slot in ep.workflow.nodes[i].step.slots_mut() {
                    slot.prompt = Some(prompt.clone());
                }
                ep.pending.retain(|&(id, _)| id != target);
                Ok(format!("set the instruction of node_{target}"))
            }
            CanvasAction::Finish { .. } => Err("internal: finish is handled by step".into()),
        }
    }

    fn push_structure(&self, ep: &mut Episode, step: Step, kind: &str) -> Result<String, String> {
        let n = step.slots().len();
        let id = ep.workflow.push(step);
        for s in 0..n {
            ep.pending.push_back((id, s));
        }
        Ok(format!(
            "added node_{id} ({kind}); write the instructions of its {n} operators next, one per turn"
        ))
    }
}

impl Env for CanvasEnv {
    fn reset(&mut self, task: &Task) -> Result<Prompt, EnvError> {
        if task.question.trim().is_empty() {
            return Err(EnvError::InvalidTask(format!(
                "task `{}` has an empty question",
                task.id
            )));
        }
        let ep = Episode {
            task: task.clone(),
            ctx: task_context(task),
            workflow: Workflow::new(),
            pending: VecDeque::new(),
            round: 0,
            feedback: String::new(),
            cache: HashMap::new(),
            execution: Execution::default(),
            summary: EpisodeSummary::default(),
            done: false,
        };
        let prompt = self.prompt_for(&ep);
        self.episode = Some(ep);
        Ok(prompt)
    }

    fn step(&mut self, turn: &str) -> Result<StepOutcome, EnvError> {
        let mut ep = self.episode.take().ok_or(EnvError::NotStarted)?;
        if ep.done {
            self.episode = Some(ep);
            return Err(EnvError::Finished);
        }
        let result = self.step_episode(&mut ep, turn);
        self.episode = Some(ep);
        match result? {
            Some(()) => self.end(),
            None => {
                let ep = self.episode.as_ref().ok_or(EnvError::NotStarted)?;
                Ok(StepOutcome {
                    observation: Observation::NewContext(self.prompt_for(ep)),
                    done: false,
                    reward: None,
                    info: serde_json::json!({"feedback": ep.feedback}),
                })
            }
        }
    }

    fn truncate(&mut self) -> Result<StepOutcome, EnvError> {
        match &self.episode {
            None => Err(EnvError::NotStarted),
            Some(ep) if ep.done => Err(EnvError::Finished),
            Some(_) => self.end(),
        }
    }

    fn stop_strings(&self) -> Vec<String> {
        Vec::new()
    }

    fn summary(&self) -> EpisodeSummary {
        self.episode
            .as_ref()
            .map(|e| e.summary.clone())
            .unwrap_or_default()
    }
}

impl CanvasEnv {
    /// One turn; `Ok(Some(()))` when the episode must end now.
    fn step_episode(&self, ep: &mut Episode, turn: &str) -> Result<Option<()>, EnvError> {
        ep.round += 1;
        ep.summary.turns += 1;
        let last_round = ep.round >= self.config.max_rounds;
        let text = tags::strip(turn, "think");
        let (ok, message, edited) = if let Some(&(id, slot)) = ep.pending.front() {
            let prompt = tags::find(&text, "prompt", 0)
                .map_or(text.trim(), |t| t.inner.trim())
                .to_string();
            if prompt.is_empty() || prompt.contains("<action>") {
                (
                    false,
                    format!("an instruction for node_{id} is expected, not an action"),
                    false,
                )
            } else {
                let i = ep.workflow.position(id);
                if let Some(s) =
                    i.and_then(|i| ep.workflow.nodes[i].step.slots_mut().into_iter().nth(slot))
                {
                    s.prompt = Some(prompt);
                }
                ep.pending.pop_front();
                (
                    true,
                    format!("set the instruction of node_{id}"),
                    ep.pending.is_empty(),
                )
            }
        } else {
            match parse_action(&text) {
                Err(e) => (false, format!("invalid action: {e}"), false),
                Ok(p) => match p.action {
                    CanvasAction::Finish { .. } => {
                        let why = self.finish_problems(ep);
                        if why.is_empty() {
                            return Ok(Some(()));
                        }
                        (false, format!("finish refused: {}", why.join("; ")), false)
                    }
                    action => match self.apply(ep, action) {
                        Ok(m) => {
                            let ready = ep.pending.is_empty();
                            (true, m, ready)
                        }
                        Err(m) => (false, m, false),
                    },
                },
            }
        };
        if !ok {
            ep.summary.invalid_turns += 1;
        }
        if edited {
            ep.execution = self.execute(ep)?;
        }
        ep.summary.operators = ep.workflow.slots().map(|s| s.op.clone()).collect();
        ep.feedback = self.feedback_block(ep, ok, &message);
        if last_round {
            return Ok(Some(()));
        }
        Ok(None)
    }
}
