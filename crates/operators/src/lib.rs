//! Workflow operators: the [`Operator`] trait, the [`Registry`] with the
//! Workflow-R1 and FlowSteer sets, and the built-in operators' shared logic.
//!
//! An operator turns an [`OperatorInput`] about a task ([`TaskContext`])
//! into an [`OperatorOutput`], usually by asking the frozen executor LLM
//! ([`Executor`]) with its own prompt, parsing the reply's tags and retrying
//! with a hint when they are missing or the reply was cut at the token limit
//! (§5 of the algorithms notes: temperature 0, 1,024 tokens, 3 retries).
//! `Programmer` and `Test` run code only in `flowrl_rewards`'s sandbox;
//! `Search` uses the small BM25 index of [`search`].
//!
//! Every executor request carries a [`SideChannel`] in its metadata (the
//! operator name, the task family, the gold answer from
//! [`TaskContext::gold`], the structured inputs): real backends ignore it;
//! the simulated executor (`plugins/llm-sim`) answers from it.
//!
//! The text form of arguments used by the think-action environment
//! (`<tool>Review: $last</tool>`) is described in [`args`]; the operators
//! themselves in `docs/operators.md`.

pub mod args;
pub mod config;
pub mod error;
pub mod executor;
pub mod ops;
pub mod registry;
pub mod search;
pub mod tags;
pub mod types;

pub use config::OperatorsConfig;
pub use error::{ArgumentError, CallError, ExecutorError, OperatorError, OperatorsError};
pub use executor::{AbiExecutor, Executor, FnExecutor};
pub use ops::{Kind, StdOperator};
pub use registry::{FLOWSTEER_OPERATORS, Registry, WORKFLOW_R1_OPERATORS};
pub use search::{Document, SearchIndex};
pub use types::{
    OPERATOR_KEY, OperatorInput, OperatorOutput, OperatorRole, SIDE_CHANNEL_KEY, SideChannel,
    TaskContext,
};

/// A workflow operator.
pub trait Operator: Send + Sync {
    /// Its name, e.g. `Review`.
    fn name(&self) -> &str;

    /// One-line description, shown to policies.
    fn description(&self) -> &str;

    /// What kind of step it is.
    fn role(&self) -> OperatorRole;

    /// Runs the operator.
    ///
    /// # Errors
    /// [`OperatorError`] when the executor fails, its reply stays
    /// unparseable after the retries, the sandbox cannot start, or the
    /// input is unusable.
    fn run(
        &self,
        ctx: &TaskContext,
        input: &OperatorInput,
        exec: &dyn Executor,
    ) -> Result<OperatorOutput, OperatorError>;

    /// Reads the Workflow-R1 text form of an argument (the `input` of
    /// `<tool>Name: input</tool>`); `last` is the previous operator output
    /// (for `$last`). See [`args`] for the conventions.
    ///
    /// # Errors
    /// [`ArgumentError`] with an explanation meant for the policy.
    fn parse_text(
        &self,
        text: &str,
        ctx: &TaskContext,
        last: Option<&str>,
    ) -> Result<OperatorInput, ArgumentError>;
}
