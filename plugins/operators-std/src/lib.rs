//! The Workflow-R1 and FlowSteer operator libraries of flowrl as a plugin.
//!
//! Two operator libraries, both built on `flowrl-operators`:
//! * `workflow-r1` — AnswerGenerate, Custom, PromptOptimizer, Review, Revise,
//!   MultiAnswerGenerate, ScEnsemble, Search;
//! * `flowsteer` — Plan, Decompose, Custom, AnswerGenerate, Programmer, Test,
//!   Review, Verify, Revise, ScEnsemble, Aggregate, Format.
//!
//! The library configuration is [`OperatorsConfig`] JSON (`"{}"` for the
//! defaults). Each operator takes either structured input
//! `{ "context": TaskContext, "input": OperatorInput }` or the text form
//! `{ "context": TaskContext, "text": "…", "last": "…" }` and returns
//! [`OperatorOutput`] JSON; both schemas are published with the operators.
//! The executor handle of each call is adapted to [`flowrl_operators::Executor`].
//! A malformed text argument is an `INVALID_INPUT` error whose message is the
//! explanation meant for the policy.

use flowrl_operators::{
    AbiExecutor, CallError, OperatorError, OperatorInput, OperatorOutput, OperatorsConfig,
    Registry, TaskContext,
};
use flowrl_plugin_abi::{
    ComponentKind, Executor, Metadata, OperatorLibraryImpl, OperatorSpec, Plugin, PluginError,
    author::{parse_input, to_output},
};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Input of every operator of this plugin.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum CallInput {
    /// Structured input.
    Structured {
        /// The task.
        context: TaskContext,
        /// The operator input.
        input: OperatorInput,
    },
    /// The Workflow-R1 text form.
    Text {
        /// The task.
        context: TaskContext,
        /// The argument text (`$question` and `$last` expand).
        text: String,
        /// The previous operator's output, for `$last`.
        #[serde(default)]
        last: Option<String>,
    },
}

/// The operator libraries of this plugin.
pub const LIBRARIES: &[&str] = &["workflow-r1", "flowsteer"];

/// One operator library: a [`Registry`] behind the plugin ABI.
pub struct StdLibrary {
    name: String,
    registry: Registry,
}

impl StdLibrary {
    /// The library `name` (`workflow-r1` or `flowsteer`) with `config`.
    ///
    /// # Errors
    /// `NOT_FOUND` for another name, `INVALID_INPUT` for a bad configuration
    /// or an unreadable search corpus.
    pub fn new(name: &str, config: &OperatorsConfig) -> Result<Self, PluginError> {
        let registry = match name {
            "workflow-r1" => Registry::workflow_r1_with(config),
            "flowsteer" => Registry::flowsteer_with(config),
            other => {
                return Err(PluginError::not_found(format!(
                    "no operator library `{other}` (available: {})",
                    LIBRARIES.join(", ")
                )));
            }
        }
        .map_err(|e| PluginError::invalid_input(e.to_string()))?;
        Ok(Self {
            name: name.to_string(),
            registry,
        })
    }
}

impl OperatorLibraryImpl for StdLibrary {
    fn operators(&self) -> Vec<OperatorSpec> {
        self.registry
            .operators()
            .map(|op| OperatorSpec::typed::<CallInput, OperatorOutput>(op.name(), op.description()))
            .collect()
    }

    fn call(
        &self,
        operator: &str,
        input: &str,
        executor: &Executor<'_>,
    ) -> Result<String, PluginError> {
        if self.registry.get(operator).is_none() {
            return Err(PluginError::not_found(format!(
                "no operator `{operator}` in library `{}` (available: {})",
                self.name,
                self.registry.names().join(", ")
            )));
        }
        let call: CallInput = parse_input(input)?;
        let exec = AbiExecutor(executor);
        let result = match &call {
            CallInput::Structured { context, input } => {
                self.registry.call(operator, context, input, &exec)
            }
            CallInput::Text {
                context,
                text,
                last,
            } => self
                .registry
                .call_text(operator, text, context, last.as_deref(), &exec),
        };
        match result {
            Ok(out) => to_output(&out),
            Err(CallError::Argument(explanation)) => Err(PluginError::invalid_input(explanation)),
            Err(CallError::Operator(e)) => Err(operator_error(e)),
            Err(other) => Err(PluginError::execution(other.to_string())),
        }
    }
}

fn operator_error(e: OperatorError) -> PluginError {
    use flowrl_operators::ExecutorError as X;
    match &e {
        OperatorError::Executor {
            source: X::Unavailable(_),
            ..
        } => PluginError::unavailable(e.to_string()),
        OperatorError::Executor {
            source: X::Timeout(_),
            ..
        } => PluginError::new(flowrl_plugin_abi::PluginErrorKind::TIMEOUT, e.to_string()),
        OperatorError::Unavailable { .. } | OperatorError::Sandbox { .. } => {
            PluginError::unavailable(e.to_string())
        }
        _ => PluginError::execution(e.to_string()),
    }
}

/// The plugin: operator libraries `workflow-r1` and `flowsteer`.
pub struct OperatorsStdPlugin;

impl Plugin for OperatorsStdPlugin {
    fn metadata() -> Metadata {
        Metadata {
            name: "operators-std".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "The Workflow-R1 and FlowSteer workflow operators".into(),
            provides: vec![
                (
                    ComponentKind::OPERATOR_LIBRARY,
                    "workflow-r1".into(),
                    "AnswerGenerate, Custom, PromptOptimizer, Review, Revise, MultiAnswerGenerate, ScEnsemble, Search"
                        .into(),
                ),
                (
                    ComponentKind::OPERATOR_LIBRARY,
                    "flowsteer".into(),
                    "Plan, Decompose, Custom, AnswerGenerate, Programmer, Test, Review, Verify, Revise, ScEnsemble, \
                     Aggregate, Format"
                        .into(),
                ),
            ],
        }
    }

    fn operator_library(
        name: &str,
        config: &str,
    ) -> Result<Box<dyn OperatorLibraryImpl>, PluginError> {
        let config: OperatorsConfig = if config.trim().is_empty() {
            OperatorsConfig::default()
        } else {
            serde_json::from_str(config)
                .map_err(|e| PluginError::invalid_input(format!("operators config: {e}")))?
        };
        Ok(Box::new(StdLibrary::new(name, &config)?))
    }
}

flowrl_plugin_abi::export_plugin!(OperatorsStdPlugin);
