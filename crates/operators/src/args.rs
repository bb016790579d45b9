//! The text form of operator arguments (Workflow-R1's `<tool>Name: input</tool>`).
//!
//! Conventions, shared by every operator's [`crate::Operator::parse_text`]:
//! * `$question` expands to the task's question and `$last` to the previous
//!   operator's output text (so that a small policy need not copy text);
//! * structured sub-tags `<question>`, `<task>`, `<query>`, `<solution>`
//!   (repeatable), `<feedback>` and `<instruction>` fill the matching fields;
//! * the remaining plain text fills the operator's main field;
//! * a checker's output (`Verdict: …` … `Checked solution: …`) given as plain
//!   text to `Revise` is split back into the solution and the feedback.

use crate::{ArgumentError, TaskContext, tags};

/// Sub-tags recognised in text arguments.
pub const SUB_TAGS: &[&str] = &[
    "question",
    "task",
    "query",
    "solution",
    "feedback",
    "instruction",
];

/// Marker line that checkers put before the solution they checked.
pub const CHECKED_MARKER: &str = "Checked solution:";

/// A text argument split into its parts, each with `$question`/`$last` expanded.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TextArgs {
    /// `<question>`, `<task>` or `<query>` content (the first present, in that order).
    pub query: Option<String>,
    /// Every `<solution>` block.
    pub solutions: Vec<String>,
    /// `<feedback>` content.
    pub feedback: Option<String>,
    /// `<instruction>` content.
    pub instruction: Option<String>,
    /// Text outside the sub-tags, trimmed (empty when there is none).
    pub plain: String,
}

/// Expands `$question` and `$last` in `text`.
///
/// # Errors
/// `$last` when no operator has produced output yet.
pub fn expand(text: &str, ctx: &TaskContext, last: Option<&str>) -> Result<String, ArgumentError> {
    let mut out = text.replace("$question", &ctx.question);
    if out.contains("$last") {
        let Some(last) = last else {
            return Err(ArgumentError::new(
                "`$last` stands for the previous operator's output, but no operator has run yet; \
                 call a solver first or write the text out",
            ));
        };
        out = out.replace("$last", last);
    }
    Ok(out)
}

/// Splits a raw text argument into [`TextArgs`].
///
/// # Errors
/// An unclosed sub-tag, or `$last` before any operator ran.
pub fn parse(raw: &str, ctx: &TaskContext, last: Option<&str>) -> Result<TextArgs, ArgumentError> {
    for tag in SUB_TAGS {
        if tags::unclosed(raw, tag) {
            return Err(ArgumentError::new(format!(
                "the `<{tag}>` tag is opened but never closed; write `<{tag}>…</{tag}>`"
            )));
        }
    }
    let field = |tag: &str| -> Result<Option<String>, ArgumentError> {
        tags::extract(raw, tag)
            .map(|t| expand(&t, ctx, last))
            .transpose()
    };
    let query = match field("question")? {
        Some(q) => Some(q),
        None => match field("task")? {
            Some(t) => Some(t),
            None => field("query")?,
        },
    };
    let solutions = tags::extract_all(raw, "solution")
        .iter()
        .map(|s| expand(s, ctx, last))
        .collect::<Result<Vec<_>, _>>()?;
    let feedback = field("feedback")?;
    let instruction = field("instruction")?;
    let plain = expand(&tags::strip(raw, SUB_TAGS), ctx, last)?
        .trim()
        .to_string();
    Ok(TextArgs {
        query,
        solutions,
        feedback,
        instruction,
        plain,
    })
}

/// Splits a checker's output text into `(solution, feedback)`: the text after
/// the [`CHECKED_MARKER`] line is the solution, the text before it the feedback.
pub fn split_checked(text: &str) -> Option<(String, String)> {
    let at = text.find(CHECKED_MARKER)?;
    let feedback = text[..at].trim().to_string();
    let solution = text[at + CHECKED_MARKER.len()..].trim().to_string();
    (!solution.is_empty()).then_some((solution, feedback))
}

/// Splits a list of numbered candidates (`Answer 1: …`, `Answer 2: …`, as
/// `MultiAnswerGenerate` writes them; `Solution k:` and `Candidate k:` also
/// work) into its items. Returns an empty list when there are no such markers.
pub fn split_candidates(text: &str) -> Vec<String> {
    let mut items: Vec<String> = Vec::new();
    let mut current: Option<String> = None;
    for line in text.lines() {
        if let Some(rest) = numbered_item(line) {
            if let Some(done) = current.take() {
                items.push(done.trim().to_string());
            }
            current = Some(rest.to_string());
        } else if let Some(cur) = current.as_mut() {
            cur.push('\n');
            cur.push_str(line);
        }
    }
    if let Some(done) = current {
        items.push(done.trim().to_string());
    }
    items.retain(|s| !s.is_empty());
    items
}

fn numbered_item(line: &str) -> Option<&str> {
    let t = line.trim_start();
    let lower = t.to_ascii_lowercase();
    for word in ["answer", "solution", "candidate"] {
        if let Some(rest) = lower.strip_prefix(word) {
            let rest_t = rest.trim_start();
            let digits = rest_t.chars().take_while(char::is_ascii_digit).count();
            if digits > 0 && rest_t[digits..].starts_with(':') {
                let offset = t.len() - rest_t.len() + digits + 1;
                return Some(t[offset..].trim());
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> TaskContext {
        TaskContext::new("t", "qa", "Who wrote Hamlet?")
    }

    #[test]
    fn expands_and_splits() {
        let a = parse(
            "<question>$question</question><solution>$last</solution> be brief",
            &ctx(),
            Some("Marlowe"),
        )
        .unwrap();
        assert_eq!(a.query.as_deref(), Some("Who wrote Hamlet?"));
        assert_eq!(a.solutions, vec!["Marlowe"]);
        assert_eq!(a.plain, "be brief");
        assert!(parse("$last", &ctx(), None).is_err());
        assert!(parse("<solution>x", &ctx(), Some("y")).is_err());
    }

    #[test]
    fn splits_candidates_and_checked() {
        assert_eq!(
            split_candidates("Answer 1: a\nAnswer 2: b\nmore\nAnswer 3: c"),
            vec!["a", "b\nmore", "c"]
        );
        assert!(split_candidates("no markers").is_empty());
        let (s, f) =
            split_checked("Verdict: incorrect\nFeedback: wrong\nChecked solution: 41").unwrap();
        assert_eq!(s, "41");
        assert!(f.contains("incorrect"));
    }
}
