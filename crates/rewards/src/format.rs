//! The Workflow-R1 format automaton and outcome reward.
//!
//! A response is well formed when its tags follow
//! `think → (tool → info → think)* → answer`, with no tags other than
//! `<think>`, `<tool>`, `<info>`, `<answer>` (and their closers), nothing but
//! whitespace between blocks, no nested tags, and no empty `<think>` or
//! `<tool>` block. The reward is R = F + A with F = 0 (well formed) or −0.5,
//! and A = 1 (last answer matches a gold answer by SQuAD exact match), 0
//! (wrong) or −1 (no answer).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::qa::exact_match_any;

/// The four block kinds of a think-action response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Block {
    /// `<think>…</think>`
    Think,
    /// `<tool>…</tool>`
    Tool,
    /// `<info>…</info>` (environment output)
    Info,
    /// `<answer>…</answer>`
    Answer,
}

impl Block {
    fn from_name(name: &str) -> Option<Self> {
        match name {
            "think" => Some(Block::Think),
            "tool" => Some(Block::Tool),
            "info" => Some(Block::Info),
            "answer" => Some(Block::Answer),
            _ => None,
        }
    }
}

/// Why a response is not well formed (the first problem found).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum FormatViolation {
    /// A tag other than think/tool/info/answer, at this byte offset.
    UnknownTag {
        /// The tag as written, e.g. `<search>`.
        tag: String,
        /// Byte offset in the response.
        offset: usize,
    },
    /// Non-whitespace text outside of any block, at this byte offset.
    TextOutsideBlocks {
        /// Byte offset in the response.
        offset: usize,
    },
    /// A tag opened inside another block, or a closer that does not match.
    BadNesting {
        /// Byte offset in the response.
        offset: usize,
    },
    /// A block was opened and never closed.
    Unclosed {
        /// The unclosed block.
        block: Block,
    },
    /// A `<think>` or `<tool>` block with only whitespace inside.
    EmptyBlock {
        /// The empty block.
        block: Block,
    },
    /// The block order breaks `think (tool info think)* answer`.
    WrongOrder {
        /// The block that arrived out of order (`None`: the response ended
        /// before an answer).
        found: Option<Block>,
        /// Index of that block in the sequence of blocks.
        index: usize,
    },
}

/// One parsed block: kind and inner text (not trimmed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedBlock<'a> {
    /// Block kind.
    pub block: Block,
    /// Text between the opening and the closing tag.
    pub content: &'a str,
}

/// Finds the next tag-like token `<name>` or `</name>` (name = ASCII letter
/// followed by letters, digits, `_` or `-`) at or after `from`. Returns
/// (start, end, name, is_closer).
fn next_tag(s: &str, from: usize) -> Option<(usize, usize, &str, bool)> {
    let bytes = s.as_bytes();
    let mut i = from;
    while let Some(off) = s.get(i..)?.find('<') {
        let start = i + off;
        let mut j = start + 1;
        let closer = bytes.get(j) == Some(&b'/');
        if closer {
            j += 1;
        }
        let name_start = j;
        if bytes.get(j).is_some_and(u8::is_ascii_alphabetic) {
            j += 1;
            while bytes
                .get(j)
                .is_some_and(|b| b.is_ascii_alphanumeric() || *b == b'_' || *b == b'-')
            {
                j += 1;
            }
            if bytes.get(j) == Some(&b'>') {
                return Some((start, j + 1, &s[name_start..j], closer));
            }
        }
        i = start + 1;
    }
    None
}

/// Splits a response into blocks, checking tags, nesting and text outside
/// blocks (but not the order; see [`check_format`]).
pub fn parse_blocks(response: &str) -> Result<Vec<ParsedBlock<'_>>, FormatViolation> {
    let mut blocks = Vec::new();
    let mut pos = 0;
    let mut open: Option<(Block, usize)> = None;
    while let Some((start, end, name, closer)) = next_tag(response, pos) {
        let Some(block) = Block::from_name(name) else {
            return Err(FormatViolation::UnknownTag {
                tag: response[start..end].to_string(),
                offset: start,
            });
        };
        match (open, closer) {
            (None, false) => {
                if let Some(off) = first_non_ws(&response[pos..start]) {
                    return Err(FormatViolation::TextOutsideBlocks { offset: pos + off });
                }
                open = Some((block, end));
            }
            (Some((b, content_start)), true) if b == block => {
                blocks.push(ParsedBlock {
                    block,
                    content: &response[content_start..start],
                });
                open = None;
            }
            _ => return Err(FormatViolation::BadNesting { offset: start }),
        }
        pos = end;
    }
    if let Some((block, _)) = open {
        return Err(FormatViolation::Unclosed { block });
    }
    if let Some(off) = first_non_ws(&response[pos..]) {
        return Err(FormatViolation::TextOutsideBlocks { offset: pos + off });
    }
    Ok(blocks)
}

fn first_non_ws(s: &str) -> Option<usize> {
    s.char_indices()
        .find(|(_, c)| !c.is_whitespace())
        .map(|(i, _)| i)
}

/// Checks the whole format automaton; `Ok` holds the parsed blocks.
pub fn check_format(response: &str) -> Result<Vec<ParsedBlock<'_>>, FormatViolation> {
    let blocks = parse_blocks(response)?;
    // States: 0 expect think; 1 after think (tool or answer); 2 after tool
    // (info); 3 after info (think); 4 after answer (end).
    let mut state = 0u8;
    for (index, b) in blocks.iter().enumerate() {
        if matches!(b.block, Block::Think | Block::Tool) && b.content.trim().is_empty() {
            return Err(FormatViolation::EmptyBlock { block: b.block });
        }
        state = match (state, b.block) {
            (0 | 3, Block::Think) => 1,
            (1, Block::Tool) => 2,
            (1, Block::Answer) => 4,
            (2, Block::Info) => 3,
            _ => {
                return Err(FormatViolation::WrongOrder {
                    found: Some(b.block),
                    index,
                });
            }
        };
    }
    if state == 4 {
        Ok(blocks)
    } else {
        Err(FormatViolation::WrongOrder {
            found: None,
            index: blocks.len(),
        })
    }
}

/// The content of the last complete `<answer>…</answer>` block, trimmed,
/// whether or not the rest of the response is well formed.
pub fn last_answer(response: &str) -> Option<&str> {
    let start = response.rfind("<answer>")? + "<answer>".len();
    let len = response[start..].find("</answer>")?;
    Some(response[start..start + len].trim())
}

/// Weights of the Workflow-R1 reward (defaults from the paper).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct ThinkActionRewardConfig {
    /// F when the format is broken (well formed: 0).
    pub format_penalty: f64,
    /// A when the answer is correct.
    pub correct: f64,
    /// A when the answer is wrong.
    pub wrong: f64,
    /// A when there is no answer.
    pub missing: f64,
}

impl Default for ThinkActionRewardConfig {
    fn default() -> Self {
        Self {
            format_penalty: -0.5,
            correct: 1.0,
            wrong: 0.0,
            missing: -1.0,
        }
    }
}

/// The reward of one think-action response, with its parts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ThinkActionReward {
    /// R = F + A.
    pub reward: f64,
    /// Format part F.
    pub format: f64,
    /// Answer part A.
    pub answer: f64,
    /// The first format problem, `None` when well formed.
    pub violation: Option<FormatViolation>,
    /// The extracted final answer.
    pub extracted: Option<String>,
}

/// Workflow-R1's reward R = F + A of a full response (policy turns and
/// `<info>` observations) against gold answers, by SQuAD exact match.
pub fn think_action_reward<S: AsRef<str>>(
    response: &str,
    golds: &[S],
    config: &ThinkActionRewardConfig,
) -> ThinkActionReward {
    let violation = check_format(response).err();
    let format = if violation.is_some() {
        config.format_penalty
    } else {
        0.0
    };
    let extracted = last_answer(response).map(str::to_string);
    let answer = match &extracted {
        None => config.missing,
        Some(a) if exact_match_any(a, golds) => config.correct,
        Some(_) => config.wrong,
    };
    ThinkActionReward {
        reward: format + answer,
        format,
        answer,
        violation,
        extracted,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "<think>need search</think>\n<tool>Search: capital of France</tool>\n<info>Paris is the capital.</info>\n<think>so Paris</think>\n<answer>Paris</answer>";

    #[test]
    fn accepts_well_formed() {
        assert!(check_format(GOOD).is_ok());
        assert!(check_format("<think>easy</think><answer>4</answer>").is_ok());
        let r = think_action_reward(GOOD, &["paris"], &ThinkActionRewardConfig::default());
        assert_eq!((r.format, r.answer, r.reward), (0.0, 1.0, 1.0));
    }

    #[test]
    fn rejects_bad_forms() {
        let cases = [
            "<answer>4</answer>",
            "<think>x</think>",
            "<think> </think><answer>4</answer>",
            "<think>x</think><tool> </tool><info>i</info><think>y</think><answer>4</answer>",
            "<think>x</think><tool>t</tool><think>y</think><answer>4</answer>",
            "<think>x</think><search>q</search><answer>4</answer>",
            "hello <think>x</think><answer>4</answer>",
            "<think>x</think><answer>4</answer> trailing",
            "<think>x<tool>t</tool></think><answer>4</answer>",
            "<think>x</think><answer>4",
            "<think>x</think><answer>4</answer><think>again</think>",
        ];
        for c in cases {
            assert!(check_format(c).is_err(), "should reject {c:?}");
        }
    }

    #[test]
    fn reward_parts() {
        let cfg = ThinkActionRewardConfig::default();
        let r = think_action_reward("<think>x</think><answer>Lyon</answer>", &["Paris"], &cfg);
        assert_eq!(r.reward, 0.0);
        let r = think_action_reward("<answer>Paris</answer>", &["Paris"], &cfg);
        assert_eq!(r.reward, 0.5);
        let r = think_action_reward("no tags at all", &["Paris"], &cfg);
        assert_eq!(r.reward, -1.5);
        assert!(r.extracted.is_none());
        // a < b in thinking text is not a tag
        assert!(check_format("<think>a < b and c<d</think><answer>1</answer>").is_ok());
    }
}
