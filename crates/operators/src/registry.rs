//! Operators by name, with the Workflow-R1 and FlowSteer sets.

use std::collections::HashMap;
use std::sync::Arc;

use crate::config::Shared;
use crate::ops::{Kind, StdOperator};
use crate::search::SearchIndex;
use crate::{
    CallError, Executor, Operator, OperatorInput, OperatorOutput, OperatorsConfig, OperatorsError,
    TaskContext,
};

/// The Workflow-R1 operator set (§5), in prompt order.
pub const WORKFLOW_R1_OPERATORS: &[&str] = &[
    "AnswerGenerate",
    "Custom",
    "PromptOptimizer",
    "Review",
    "Revise",
    "MultiAnswerGenerate",
    "ScEnsemble",
    "Search",
];

/// The FlowSteer operator set (§6), in prompt order.
pub const FLOWSTEER_OPERATORS: &[&str] = &[
    "Plan",
    "Decompose",
    "Custom",
    "AnswerGenerate",
    "Programmer",
    "Test",
    "Review",
    "Verify",
    "Revise",
    "ScEnsemble",
    "Aggregate",
    "Format",
];

/// Operators by name. Lookup is exact first, then case-insensitive.
#[derive(Clone, Default)]
pub struct Registry {
    ops: Vec<Arc<dyn Operator>>,
    index: HashMap<String, usize>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("operators", &self.names())
            .finish()
    }
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// The Workflow-R1 set with default settings (no search corpus: `Search`
    /// then reports that none is configured).
    pub fn workflow_r1() -> Self {
        Self::with_names(
            WORKFLOW_R1_OPERATORS,
            Arc::new(Shared::new(OperatorsConfig::default(), None)),
        )
    }

    /// The FlowSteer set with default settings.
    pub fn flowsteer() -> Self {
        Self::with_names(
            FLOWSTEER_OPERATORS,
            Arc::new(Shared::new(OperatorsConfig::default(), None)),
        )
    }

    /// The Workflow-R1 set with `config` (reads the search corpus if one is named).
    ///
    /// # Errors
    /// An invalid configuration or an unreadable corpus.
    pub fn workflow_r1_with(config: &OperatorsConfig) -> Result<Self, OperatorsError> {
        Self::builtin(WORKFLOW_R1_OPERATORS, config)
    }

    /// The FlowSteer set with `config`.
    ///
    /// # Errors
    /// An invalid configuration or an unreadable corpus.
    pub fn flowsteer_with(config: &OperatorsConfig) -> Result<Self, OperatorsError> {
        Self::builtin(FLOWSTEER_OPERATORS, config)
    }

    /// Every built-in operator (the union of both sets) with `config`.
    ///
    /// # Errors
    /// An invalid configuration or an unreadable corpus.
    pub fn all_with(config: &OperatorsConfig) -> Result<Self, OperatorsError> {
        let names: Vec<&str> = Kind::ALL.iter().map(|k| k.name()).collect();
        Self::builtin(&names, config)
    }

    fn builtin(names: &[&str], config: &OperatorsConfig) -> Result<Self, OperatorsError> {
        config.validate()?;
        let search = config
            .search_corpus
            .as_deref()
            .map(SearchIndex::from_jsonl)
            .transpose()?;
        Ok(Self::with_names(
            names,
            Arc::new(Shared::new(config.clone(), search)),
        ))
    }

    fn with_names(names: &[&str], shared: Arc<Shared>) -> Self {
        let mut r = Self::new();
        for kind in names.iter().filter_map(|n| Kind::from_name(n)) {
            r.register(Arc::new(StdOperator::new(kind, Arc::clone(&shared))));
        }
        r
    }

    /// Adds `op`, replacing (and returning) an operator of the same name.
    pub fn register(&mut self, op: Arc<dyn Operator>) -> Option<Arc<dyn Operator>> {
        let name = op.name().to_string();
        match self.index.get(&name) {
            Some(&i) => Some(std::mem::replace(&mut self.ops[i], op)),
            None => {
                self.index.insert(name, self.ops.len());
                self.ops.push(op);
                None
            }
        }
    }

    /// The operator called `name` (exact, else case-insensitive).
    pub fn get(&self, name: &str) -> Option<&Arc<dyn Operator>> {
        let name = name.trim();
        match self.index.get(name) {
            Some(&i) => self.ops.get(i),
            None => self
                .ops
                .iter()
                .find(|o| o.name().eq_ignore_ascii_case(name)),
        }
    }

    /// Operator names, in registration order.
    pub fn names(&self) -> Vec<&str> {
        self.ops.iter().map(|o| o.name()).collect()
    }

    /// The operators, in registration order.
    pub fn operators(&self) -> impl Iterator<Item = &Arc<dyn Operator>> {
        self.ops.iter()
    }

    /// Number of operators.
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// `true` when empty.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// One `- Name: description` line per operator, for prompts.
    pub fn describe(&self) -> String {
        self.ops
            .iter()
            .map(|o| format!("- {}: {}", o.name(), o.description()))
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn unknown(&self, name: &str) -> CallError {
        CallError::Argument(format!(
            "there is no operator `{}`; the available operators are: {}",
            name.trim(),
            self.names().join(", ")
        ))
    }

    /// Runs operator `name` on structured input.
    ///
    /// # Errors
    /// [`CallError::Argument`] for an unknown operator or unusable input,
    /// [`CallError::Operator`] when the operator fails.
    pub fn call(
        &self,
        name: &str,
        ctx: &TaskContext,
        input: &OperatorInput,
        exec: &dyn Executor,
    ) -> Result<OperatorOutput, CallError> {
        let op = self.get(name).ok_or_else(|| self.unknown(name))?;
        op.run(ctx, input, exec).map_err(argument_or_operator)
    }

    /// Runs operator `name` on the text argument `raw` (the part after
    /// `Name:` in `<tool>Name: raw</tool>`); `last` is the previous
    /// operator's output text, for `$last`.
    ///
    /// # Errors
    /// [`CallError::Argument`] with an explanation for the policy when the
    /// operator is unknown or the argument malformed; [`CallError::Operator`]
    /// when the operator fails.
    pub fn call_text(
        &self,
        name: &str,
        raw: &str,
        ctx: &TaskContext,
        last: Option<&str>,
        exec: &dyn Executor,
    ) -> Result<OperatorOutput, CallError> {
        let op = self.get(name).ok_or_else(|| self.unknown(name))?;
        let input = op.parse_text(raw, ctx, last)?;
        op.run(ctx, &input, exec).map_err(argument_or_operator)
    }
}

fn argument_or_operator(e: crate::OperatorError) -> CallError {
    match e {
        crate::OperatorError::Input { source, .. } => CallError::Argument(source.explanation),
        other => CallError::Operator(other),
    }
}
