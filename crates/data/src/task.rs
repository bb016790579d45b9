//! The common task type every loader produces.

use std::collections::BTreeMap;

use flowrl_rewards::CodeTests;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The family of a task, which decides how answers are scored.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum TaskFamily {
    /// Short-answer questions, scored by SQuAD EM / F1.
    Qa,
    /// Math problems with a final answer, scored by `math_equal`.
    Math,
    /// Programming tasks, scored by running tests in the sandbox.
    Code,
}

impl TaskFamily {
    /// The lower-case name (`qa`, `math`, `code`).
    pub fn as_str(self) -> &'static str {
        match self {
            TaskFamily::Qa => "qa",
            TaskFamily::Math => "math",
            TaskFamily::Code => "code",
        }
    }
}

impl std::fmt::Display for TaskFamily {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One task of any dataset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Task {
    /// Unique id within its source (the dataset's own id when it has one,
    /// else `<source>-<line>`).
    pub id: String,
    /// Data source name, e.g. `gsm8k`, `hotpotqa`, `suite/math`.
    pub source: String,
    /// How answers are scored.
    pub family: TaskFamily,
    /// The question, problem statement or code prompt shown to the policy.
    pub question: String,
    /// Gold answers: every acceptable answer for QA, the final answer for
    /// math (first entry is the canonical one), empty for code.
    #[serde(default)]
    pub answers: Vec<String>,
    /// Supporting passage (SQuAD context, generated facts), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<String>,
    /// Code tasks: the tests a solution must pass.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tests: Option<CodeTests>,
    /// Code tasks: a reference solution, if the dataset has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    /// Code tasks: text a completion is appended to (HumanEval `prompt`);
    /// a prediction that does not define the entry point itself is prefixed
    /// with it before running.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code_prefix: Option<String>,
    /// Everything else the dataset carries (options, levels, rationales…).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, serde_json::Value>,
}

impl Task {
    /// The program text to run for a code prediction: the prediction itself
    /// when it defines the entry point (`def <entry_point>`), else
    /// [`Task::code_prefix`] followed by the prediction.
    pub fn solution_program(&self, prediction: &str) -> String {
        let entry = self
            .tests
            .as_ref()
            .and_then(|t| t.harness.as_ref())
            .map(|h| h.entry_point.as_str());
        match (&self.code_prefix, entry) {
            (Some(prefix), Some(e)) if !prediction.contains(&format!("def {e}")) => {
                format!("{prefix}{prediction}")
            }
            _ => prediction.to_string(),
        }
    }
}

/// JSON Schema of [`Task`] as pretty-printed JSON.
pub fn task_schema_json() -> String {
    let schema = schemars::schema_for!(Task);
    serde_json::to_string_pretty(&schema).unwrap_or_default()
}
