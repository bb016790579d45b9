//! FlowSteer's workflow canvas: the graph the policy edits, its DSL, and the
//! XML actions that edit it.

pub mod action;
pub mod dsl;
pub mod env;
pub mod workflow;

pub use action::{ActionError, CanvasAction, ParsedAction, parse_action};
pub use dsl::DslError;
pub use workflow::{Node, OpSlot, Step, Workflow, WorkflowStats};

/// Longest accepted operator name, in bytes.
pub const MAX_NAME_LEN: usize = 64;

/// True when `s` can name an operator: an ASCII letter, then letters, digits
/// or `_`, at most [`MAX_NAME_LEN`] bytes, and not the keyword `done`.
pub fn is_operator_name(s: &str) -> bool {
    s.len() <= MAX_NAME_LEN
        && s != "done"
        && s.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}
