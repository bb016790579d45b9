//! Parsing the policy's canvas actions (one XML action per turn).
//!
//! `<think>` blocks are stripped first. The first `<action>` tag decides the
//! action; its arguments are read from the text between it and the next
//! `<action>` tag, and everything after the last argument the action needs is
//! ignored (`ParsedAction::consumed` says where that is).

use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::is_operator_name;
use crate::tags;

/// Default number of loop repetitions when `<count>` is absent.
pub const DEFAULT_LOOP_COUNT: u8 = 3;

/// One edit of the canvas.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum CanvasAction {
    /// `<action>add</action><operator>X</operator>`.
    AddOperator {
        /// Operator name.
        op: String,
    },
    /// `<action>add</action><structure>parallel</structure><operators>A,B</operators>`.
    AddParallel {
        /// Branch operators (≥ 2).
        ops: Vec<String>,
    },
    /// `<action>add</action><structure>conditional</structure><condition>C</condition><true>X</true><false>done</false>`.
    AddConditional {
        /// The checker.
        check: String,
        /// Branch run when the check fails (`None` = done).
        on_fail: Option<String>,
        /// Branch run when the check passes (`None` = done).
        on_pass: Option<String>,
    },
    /// `<action>add</action><structure>loop</structure><operators>A,B</operators><count>n</count>`.
    AddLoop {
        /// Loop body (≥ 1).
        ops: Vec<String>,
        /// Repetitions, 1–10.
        count: u8,
    },
    /// `<action>delete</action><target>node_i</target>`.
    Delete {
        /// Node id `i`.
        target: u32,
    },
    /// `<action>modify</action><target>node_i</target><operator>X</operator>`.
    Modify {
        /// Node id.
        target: u32,
        /// New operator.
        op: String,
    },
    /// `<action>set_prompt</action><target>node_i</target><prompt>…</prompt>`.
    SetPrompt {
        /// Node id.
        target: u32,
        /// The prompt text (trimmed).
        prompt: String,
    },
    /// `<action>finish</action>`, optionally with `<answer>…</answer>`.
    Finish {
        /// The policy's own answer, if given.
        answer: Option<String>,
    },
}

/// Why a turn is not a valid action. Environments report it as a `Failed`
/// feedback; the episode goes on.
#[derive(Debug, Clone, PartialEq, Eq, Error, Serialize, Deserialize)]
#[non_exhaustive]
pub enum ActionError {
    /// No complete `<action>…</action>` tag.
    #[error("no <action>…</action> tag found")]
    NoAction,
    /// An action name other than add, delete, modify, set_prompt, finish.
    #[error("unknown action `{0}` (expected add, delete, modify, set_prompt or finish)")]
    UnknownAction(String),
    /// A required argument tag is missing.
    #[error("action `{action}` needs a <{tag}>…</{tag}> tag")]
    MissingTag {
        /// The action.
        action: &'static str,
        /// The missing tag.
        tag: &'static str,
    },
    /// A structure other than parallel, conditional, loop.
    #[error("unknown structure `{0}` (expected parallel, conditional or loop)")]
    UnknownStructure(String),
    /// An operator name that is not an identifier.
    #[error("`{0}` is not an operator name")]
    BadOperator(String),
    /// A parallel structure with fewer than two operators, or an empty loop.
    #[error("structure `{structure}` needs at least {min} operator(s), got {got}")]
    TooFewOperators {
        /// The structure.
        structure: &'static str,
        /// Minimum.
        min: usize,
        /// Given.
        got: usize,
    },
    /// A loop count that is not an integer in 1..=10.
    #[error("loop count `{0}` is not an integer in 1..=10")]
    BadCount(String),
    /// A target that is not `node_<n>` (or a bare number).
    #[error("target `{0}` is not a node id like node_3")]
    BadTarget(String),
    /// An empty prompt.
    #[error("the prompt is empty")]
    EmptyPrompt,
}

/// A parsed action and where it ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParsedAction {
    /// The action.
    pub action: CanvasAction,
    /// Byte offset, in the `<think>`-stripped text, one past the last tag
    /// the action used; text after it is ignored.
    pub consumed: usize,
}

struct Scope<'a> {
    text: &'a str,
    from: usize,
    until: usize,
    consumed: usize,
}

impl<'a> Scope<'a> {
    fn get(&mut self, tag: &'a str) -> Option<&'a str> {
        let t = tags::find(&self.text[..self.until], tag, self.from)?;
        self.consumed = self.consumed.max(t.end);
        Some(t.inner.trim())
    }

    fn need(&mut self, action: &'static str, tag: &'static str) -> Result<&'a str, ActionError> {
        self.get(tag).ok_or(ActionError::MissingTag { action, tag })
    }
}

fn operator(name: &str) -> Result<String, ActionError> {
    if is_operator_name(name) {
        Ok(name.to_string())
    } else {
        Err(ActionError::BadOperator(name.to_string()))
    }
}

fn operator_list(s: &str) -> Result<Vec<String>, ActionError> {
    s.split(',')
        .map(str::trim)
        .filter(|x| !x.is_empty())
        .map(operator)
        .collect()
}

fn branch(s: &str) -> Result<Option<String>, ActionError> {
    if s.eq_ignore_ascii_case("done") || s.is_empty() {
        Ok(None)
    } else {
        operator(s).map(Some)
    }
}

/// Parses a node reference: `node_3`, `node3`, `Node_3` or `3`.
///
/// # Errors
/// [`ActionError::BadTarget`] for anything else.
pub fn parse_target(s: &str) -> Result<u32, ActionError> {
    let t = s.trim();
    let lower = t.to_ascii_lowercase();
    let digits = lower
        .strip_prefix("node_")
        .or_else(|| lower.strip_prefix("node"))
        .unwrap_or(&lower);
    digits
        .parse::<u32>()
        .map_err(|_| ActionError::BadTarget(t.to_string()))
}

/// Parses one turn of canvas output; `<think>` blocks are removed first and
/// the result's `consumed` offset refers to the stripped text.
///
/// # Errors
/// An [`ActionError`] describing the first problem.
pub fn parse_action(text: &str) -> Result<ParsedAction, ActionError> {
    let text = tags::strip(text, "think");
    parse_stripped(&text)
}

fn parse_stripped(text: &str) -> Result<ParsedAction, ActionError> {
    let head = tags::find(text, "action", 0).ok_or(ActionError::NoAction)?;
    let until = tags::find(text, "action", head.end).map_or(text.len(), |t| t.start);
    let mut sc = Scope {
        text,
        from: head.end,
        until,
        consumed: head.end,
    };
    let name = head.inner.trim().to_ascii_lowercase();
    let action = match name.as_str() {
        "add" => {
            if let Some(st) = sc.get("structure") {
                match st.to_ascii_lowercase().as_str() {
                    "parallel" => {
                        let ops = operator_list(sc.need("add", "operators")?)?;
                        if ops.len() < 2 {
                            return Err(ActionError::TooFewOperators {
                                structure: "parallel",
                                min: 2,
                                got: ops.len(),
                            });
                        }
                        CanvasAction::AddParallel { ops }
                    }
                    "conditional" => {
                        let check = operator(sc.need("add", "condition")?)?;
                        let on_fail = branch(sc.need("add", "true")?)?;
                        let on_pass = match sc.get("false") {
                            Some(f) => branch(f)?,
                            None => None,
                        };
                        CanvasAction::AddConditional {
                            check,
                            on_fail,
                            on_pass,
                        }
                    }
                    "loop" => {
                        let ops = operator_list(sc.need("add", "operators")?)?;
                        if ops.is_empty() {
                            return Err(ActionError::TooFewOperators {
                                structure: "loop",
                                min: 1,
                                got: 0,
                            });
                        }
                        let count = match sc.get("count") {
                            None => DEFAULT_LOOP_COUNT,
                            Some(c) => match c.parse::<u8>() {
                                Ok(n) if (1..=10).contains(&n) => n,
                                _ => return Err(ActionError::BadCount(c.to_string())),
                            },
                        };
                        CanvasAction::AddLoop { ops, count }
                    }
                    other => return Err(ActionError::UnknownStructure(other.to_string())),
                }
            } else {
                CanvasAction::AddOperator {
                    op: operator(sc.need("add", "operator")?)?,
                }
            }
        }
        "delete" => CanvasAction::Delete {
            target: parse_target(sc.need("delete", "target")?)?,
        },
        "modify" => {
            let target = parse_target(sc.need("modify", "target")?)?;
            CanvasAction::Modify {
                target,
                op: operator(sc.need("modify", "operator")?)?,
            }
        }
        "set_prompt" => {
            let target = parse_target(sc.need("set_prompt", "target")?)?;
            let prompt = sc.need("set_prompt", "prompt")?;
            if prompt.is_empty() {
                return Err(ActionError::EmptyPrompt);
            }
            CanvasAction::SetPrompt {
                target,
                prompt: prompt.to_string(),
            }
        }
        "finish" => CanvasAction::Finish {
            answer: sc.get("answer").map(str::to_string),
        },
        _ => return Err(ActionError::UnknownAction(head.inner.trim().to_string())),
    };
    Ok(ParsedAction {
        action,
        consumed: sc.consumed,
    })
}
