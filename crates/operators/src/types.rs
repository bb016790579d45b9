//! The data an operator works on: the task, its input and its output.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// What an operator knows about the task being solved.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TaskContext {
    /// Task id (for logs and the simulator's hashing).
    pub task_id: String,
    /// Task family: `qa`, `math` or `code`; decides output formats and
    /// which code operators run.
    pub family: String,
    /// The question, problem statement or code prompt.
    pub question: String,
    /// Code tasks: the function the solution must define.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entry_point: Option<String>,
    /// Code tasks: Python test code (asserts, or a harness followed by its
    /// call) that the `Test` operator runs after the solution.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tests: Option<String>,
    /// The gold answer, forwarded only to the simulated executor through the
    /// request metadata (real backends ignore it; operators never read it).
    /// Conventions the simulator understands: a string, an array of
    /// acceptable strings, or an object with `answers` (array of strings)
    /// and, for code, `reference` (a correct solution).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gold: Option<serde_json::Value>,
}

impl TaskContext {
    /// A context with `family` and `question`, other fields empty.
    pub fn new(
        task_id: impl Into<String>,
        family: impl Into<String>,
        question: impl Into<String>,
    ) -> Self {
        Self {
            task_id: task_id.into(),
            family: family.into(),
            question: question.into(),
            ..Self::default()
        }
    }

    /// The Python test code for [`TaskContext::tests`] from structured
    /// tests: the setup, the asserts, then the harness and its
    /// `check(entry_point)` call (the `Test` operator appends it to the solution).
    pub fn tests_text(tests: &flowrl_rewards::CodeTests) -> String {
        let mut t = flowrl_rewards::build_program("", tests);
        if t.starts_with('\n') {
            t.remove(0);
        }
        t
    }

    /// `true` for the `code` family.
    pub fn is_code(&self) -> bool {
        self.family.eq_ignore_ascii_case("code")
    }

    /// `true` for the `math` family.
    pub fn is_math(&self) -> bool {
        self.family.eq_ignore_ascii_case("math")
    }
}

/// The input of one operator call.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct OperatorInput {
    /// Previous output(s): the solution(s) to check, revise or ensemble, or
    /// the previous node's output for sequential workflows. Empty for a
    /// solver that starts from the question.
    #[serde(default)]
    pub inputs: Vec<String>,
    /// Review or test feedback for `Revise`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub feedback: Option<String>,
    /// The policy's custom prompt for this call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instruction: Option<String>,
    /// Explicit query text; defaults to the task's question.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
}

impl OperatorInput {
    /// The query text: [`OperatorInput::query`] when set and non-empty, else the question.
    pub fn query_or<'a>(&'a self, ctx: &'a TaskContext) -> &'a str {
        match self.query.as_deref() {
            Some(q) if !q.trim().is_empty() => q,
            _ => &ctx.question,
        }
    }

    /// The instruction when set and non-empty.
    pub fn instruction(&self) -> Option<&str> {
        self.instruction
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
    }

    /// The feedback when set and non-empty.
    pub fn feedback(&self) -> Option<&str> {
        self.feedback
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
    }

    /// Non-empty inputs, trimmed.
    pub fn solutions(&self) -> Vec<&str> {
        self.inputs
            .iter()
            .map(|s| s.trim())
            .filter(|s| !s.is_empty())
            .collect()
    }
}

/// The result of one operator call.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct OperatorOutput {
    /// What the policy sees (already cut to the configured length, by
    /// default 2,048 characters with the middle elided).
    pub text: String,
    /// The candidate answer, when the operator produces one (solvers,
    /// revisers, ensembles, formatters, a `Test` that repaired the code).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answer: Option<String>,
    /// Checkers only: `Some(true)` when the solution passes, `Some(false)`
    /// when a problem was found.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verdict: Option<bool>,
    /// Several candidate answers (`MultiAnswerGenerate`), in order; empty otherwise.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub candidates: Vec<String>,
    /// Executor calls made, retries included.
    pub executor_calls: u32,
}

/// What kind of step an operator is; workflow rules (a solver and a checker
/// must be present, …) are written in these terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum OperatorRole {
    /// Produces a candidate answer from the problem.
    Solver,
    /// Judges a solution (Review, Verify, Test).
    Checker,
    /// Improves a solution using feedback.
    Reviser,
    /// Chooses or combines among several solutions.
    Ensemble,
    /// Produces a plan, sub-problems or a better prompt; no answer.
    Planner,
    /// Puts an answer into its final form.
    Formatter,
    /// Looks up documents.
    Retriever,
}

impl OperatorRole {
    /// Lower-case name, e.g. `checker`.
    pub fn as_str(self) -> &'static str {
        match self {
            OperatorRole::Solver => "solver",
            OperatorRole::Checker => "checker",
            OperatorRole::Reviser => "reviser",
            OperatorRole::Ensemble => "ensemble",
            OperatorRole::Planner => "planner",
            OperatorRole::Formatter => "formatter",
            OperatorRole::Retriever => "retriever",
        }
    }
}

/// The structured side channel every operator attaches to its executor
/// requests under [`ChatRequest::metadata`](flowrl_plugin_abi::ChatRequest):
/// real backends ignore it; the simulated executor reads it instead of
/// parsing prompts.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SideChannel {
    /// Operator name.
    pub operator: String,
    /// What this request is for within the operator: `solve`, `fix`, `check`, `multi`, ….
    pub purpose: String,
    /// Task family.
    pub family: String,
    /// Task id.
    pub task_id: String,
    /// Code tasks: the entry point.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entry_point: Option<String>,
    /// The task's gold answer ([`TaskContext::gold`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gold: Option<serde_json::Value>,
    /// The effective query (the task's question unless the input overrides it).
    #[serde(default)]
    pub query: String,
    /// The solutions the request is about (checked, revised, ensembled), and
    /// for solvers the previous outputs they were given.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inputs: Vec<String>,
    /// Feedback given to a reviser.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub feedback: Option<String>,
    /// The policy's instruction.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instruction: Option<String>,
    /// 0 for the first request, then 1, 2, … for retries.
    #[serde(default)]
    pub attempt: u32,
}

/// Key of [`SideChannel`] in the request metadata.
pub const SIDE_CHANNEL_KEY: &str = "flowrl";
/// Key of the operator name in the request metadata (for logs of real backends).
pub const OPERATOR_KEY: &str = "operator";

impl SideChannel {
    /// Reads the side channel from a request's metadata, if present and well formed.
    pub fn from_metadata(metadata: &serde_json::Map<String, serde_json::Value>) -> Option<Self> {
        metadata
            .get(SIDE_CHANNEL_KEY)
            .and_then(|v| serde_json::from_value(v.clone()).ok())
    }
}
