//! The workflow graph: a sequence of steps, each an operator or a structure.

use std::collections::BTreeSet;
use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// One operator occurrence with its optional custom prompt (the policy's
/// instruction for that node).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct OpSlot {
    /// Operator name, e.g. `Programmer`.
    pub op: String,
    /// Custom prompt set by the policy, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt: Option<String>,
}

impl OpSlot {
    /// A slot without a prompt.
    pub fn new(op: impl Into<String>) -> Self {
        OpSlot {
            op: op.into(),
            prompt: None,
        }
    }
}

/// What one node of the sequence does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Step {
    /// A single operator, fed the problem plus the previous output.
    Operator(OpSlot),
    /// Branches that share their input; their outputs pass on as a list.
    Parallel(Vec<OpSlot>),
    /// Runs `check`; when the check *fails* runs `on_fail`, otherwise
    /// `on_pass` (`None` = done, pass the input through).
    Conditional {
        /// The checker (Review, Verify or Test).
        check: OpSlot,
        /// Branch taken when the check fails.
        on_fail: Option<OpSlot>,
        /// Branch taken when the check passes.
        on_pass: Option<OpSlot>,
    },
    /// A sub-sequence of operators repeated `count` times (1–10).
    Loop {
        /// The body, in order.
        body: Vec<OpSlot>,
        /// Number of repetitions.
        count: u8,
    },
}

impl Step {
    /// Every operator slot of the step, in execution order (loop bodies once).
    pub fn slots(&self) -> Vec<&OpSlot> {
        match self {
            Step::Operator(s) => vec![s],
            Step::Parallel(v) | Step::Loop { body: v, .. } => v.iter().collect(),
            Step::Conditional {
                check,
                on_fail,
                on_pass,
            } => std::iter::once(check)
                .chain(on_fail.iter())
                .chain(on_pass.iter())
                .collect(),
        }
    }

    /// Mutable access to the slots, in the order of [`Step::slots`].
    pub fn slots_mut(&mut self) -> Vec<&mut OpSlot> {
        match self {
            Step::Operator(s) => vec![s],
            Step::Parallel(v) | Step::Loop { body: v, .. } => v.iter_mut().collect(),
            Step::Conditional {
                check,
                on_fail,
                on_pass,
            } => std::iter::once(check)
                .chain(on_fail.iter_mut())
                .chain(on_pass.iter_mut())
                .collect(),
        }
    }

    /// True for parallel, conditional and loop steps.
    pub fn is_structure(&self) -> bool {
        !matches!(self, Step::Operator(_))
    }
}

/// A node: a step with a stable id (`node_<id>`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Node {
    /// Stable numeric id; printed as `node_<id>`.
    pub id: u32,
    /// What the node does.
    pub step: Step,
}

/// The workflow: nodes executed in order.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
pub struct Workflow {
    /// Nodes in execution order.
    pub nodes: Vec<Node>,
    /// Id given to the next added node.
    pub next_id: u32,
}

/// Structural statistics (what the diversity reward and the feedback read).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
pub struct WorkflowStats {
    /// Number of nodes.
    pub nodes: usize,
    /// Number of operator occurrences (structure children included, loop bodies once).
    pub operators: usize,
    /// Distinct operator names, sorted.
    pub unique_types: Vec<String>,
    /// A parallel step is present.
    pub has_parallel: bool,
    /// A conditional step is present.
    pub has_conditional: bool,
    /// A loop step is present.
    pub has_loop: bool,
}

impl Workflow {
    /// An empty workflow whose first node will be `node_1`.
    pub fn new() -> Self {
        Workflow {
            nodes: Vec::new(),
            next_id: 1,
        }
    }

    /// Appends a step and returns its id.
    pub fn push(&mut self, step: Step) -> u32 {
        let id = self.next_id.max(1);
        self.next_id = id + 1;
        self.nodes.push(Node { id, step });
        id
    }

    /// Index of the node with this id.
    pub fn position(&self, id: u32) -> Option<usize> {
        self.nodes.iter().position(|n| n.id == id)
    }

    /// Removes the node with this id; returns it, or `None` when absent.
    pub fn remove(&mut self, id: u32) -> Option<Node> {
        let i = self.position(id)?;
        Some(self.nodes.remove(i))
    }

    /// Every operator slot in execution order.
    pub fn slots(&self) -> impl Iterator<Item = &OpSlot> {
        self.nodes.iter().flat_map(|n| n.step.slots())
    }

    /// The structural statistics.
    pub fn stats(&self) -> WorkflowStats {
        let types: BTreeSet<&str> = self.slots().map(|s| s.op.as_str()).collect();
        WorkflowStats {
            nodes: self.nodes.len(),
            operators: self.slots().count(),
            unique_types: types.into_iter().map(str::to_string).collect(),
            has_parallel: self
                .nodes
                .iter()
                .any(|n| matches!(n.step, Step::Parallel(_))),
            has_conditional: self
                .nodes
                .iter()
                .any(|n| matches!(n.step, Step::Conditional { .. })),
            has_loop: self
                .nodes
                .iter()
                .any(|n| matches!(n.step, Step::Loop { .. })),
        }
    }

    /// Node ids as printed in the state (`node_1, node_2, …`).
    pub fn node_ids(&self) -> Vec<String> {
        self.nodes
            .iter()
            .map(|n| format!("node_{}", n.id))
            .collect()
    }
}

impl fmt::Display for Workflow {
    /// The DSL form, e.g. `A -> [B, C] -> D ? E : done -> (F -> G) * 2`
    /// (`(empty)` for no nodes is *not* printed: an empty workflow is `""`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, n) in self.nodes.iter().enumerate() {
            if i > 0 {
                f.write_str(" -> ")?;
            }
            let branch =
                |b: &Option<OpSlot>| b.as_ref().map_or("done", |s| s.op.as_str()).to_string();
            match &n.step {
                Step::Operator(s) => f.write_str(&s.op)?,
                Step::Parallel(v) => write!(
                    f,
                    "[{}]",
                    v.iter()
                        .map(|s| s.op.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )?,
                Step::Conditional {
                    check,
                    on_fail,
                    on_pass,
                } => write!(
                    f,
                    "{} ? {} : {}",
                    check.op,
                    branch(on_fail),
                    branch(on_pass)
                )?,
                Step::Loop { body, count } => write!(
                    f,
                    "({}) * {count}",
                    body.iter()
                        .map(|s| s.op.as_str())
                        .collect::<Vec<_>>()
                        .join(" -> ")
                )?,
            }
        }
        Ok(())
    }
}
