//! Workflow-R1's think-action protocol: parsing one policy turn.
//!
//! A turn is `<think>…</think>` followed by one action: an operator call
//! `<tool>Name: input</tool>` or a final `<answer>…</answer>`. The first action
//! in the text wins; anything after it is ignored (generation normally stops
//! there). A turn without an action, or with a malformed call, parses to a
//! [`TurnAction`] the environment answers with an explanatory observation —
//! never an error that ends the episode.

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::tags;

pub mod env;

/// Why an operator call cannot be executed.
#[derive(Debug, Clone, PartialEq, Eq, Error, Serialize, Deserialize)]
#[non_exhaustive]
pub enum ToolCallError {
    /// No `:` separates the operator name from its input.
    #[error("an operator call needs the form `Name: input`, but no `:` was found")]
    MissingColon,
    /// The name before `:` is empty or not an identifier.
    #[error("`{0}` is not an operator name (letters, digits and `_`, starting with a letter)")]
    BadName(String),
    /// Nothing after `:`.
    #[error("operator `{0}` was called with an empty input")]
    EmptyInput(String),
}

/// The action a turn ends with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum TurnAction {
    /// `<tool>Name: input</tool>`.
    Tool {
        /// Operator name as written.
        name: String,
        /// Input text (trimmed).
        input: String,
    },
    /// `<tool>…</tool>` whose content is not a valid call.
    MalformedTool {
        /// The raw content of the tag.
        raw: String,
        /// What is wrong with it.
        error: ToolCallError,
    },
    /// `<answer>…</answer>` (trimmed content).
    Answer(String),
    /// Neither a complete `<tool>` nor a complete `<answer>` tag.
    None,
}

/// One parsed policy turn.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Turn {
    /// Content of the first `<think>` block before the action, if any.
    pub think: Option<String>,
    /// The action.
    pub action: TurnAction,
    /// Byte offset one past the action's closing tag (the text length when
    /// there is no action): text after it is ignored.
    pub consumed: usize,
}

/// Parses the content of a `<tool>` tag into a call.
///
/// # Errors
/// A [`ToolCallError`] for a missing `:`, a bad name or an empty input.
pub fn parse_tool_call(raw: &str) -> Result<(String, String), ToolCallError> {
    let (name, input) = raw.split_once(':').ok_or(ToolCallError::MissingColon)?;
    let name = name.trim();
    let ok = name.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !ok {
        return Err(ToolCallError::BadName(name.to_string()));
    }
    let input = input.trim();
    if input.is_empty() {
        return Err(ToolCallError::EmptyInput(name.to_string()));
    }
    Ok((name.to_string(), input.to_string()))
}

/// Parses one policy turn; never fails and never panics.
pub fn parse_turn(text: &str) -> Turn {
    let tool = tags::find(text, "tool", 0);
    let answer = tags::find(text, "answer", 0);
    let first = match (tool, answer) {
        (Some(t), Some(a)) => Some(if t.start < a.start { t } else { a }),
        (t, a) => t.or(a),
    };
    let limit = first.as_ref().map_or(text.len(), |t| t.start);
    let think = tags::find(&text[..limit], "think", 0).map(|t| t.inner.trim().to_string());
    match first {
        None => Turn {
            think,
            action: TurnAction::None,
            consumed: text.len(),
        },
        Some(t) if t.name == "answer" => Turn {
            think,
            action: TurnAction::Answer(t.inner.trim().to_string()),
            consumed: t.end,
        },
        Some(t) => {
            let action = match parse_tool_call(t.inner) {
                Ok((name, input)) => TurnAction::Tool { name, input },
                Err(error) => TurnAction::MalformedTool {
                    raw: t.inner.to_string(),
                    error,
                },
            };
            Turn {
                think,
                action,
                consumed: t.end,
            }
        }
    }
}

/// Cuts a tool result to at most `2 × half` characters, keeping the first and
/// last `half` characters around a `...(truncated)...` marker (Workflow-R1
/// keeps 1,024 + 1,024). Counts Unicode scalar values, not bytes.
pub fn truncate_middle(s: &str, half: usize) -> String {
    let n = s.chars().count();
    if n <= 2 * half {
        return s.to_string();
    }
    let head: String = s.chars().take(half).collect();
    let tail: String = s.chars().skip(n - half).collect();
    format!("{head}...(truncated)...{tail}")
}
