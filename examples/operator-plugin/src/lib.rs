//! An example flowrl operator plugin: copy this crate to start your own.
//!
//! It provides one operator library, `text`, with two operators:
//!
//! * `WordCount` — counts words, lines and characters and lists the most
//!   frequent words (pure Rust, never calls the LLM);
//! * `Summarize` — asks the executor LLM for a summary and, when the host
//!   has no executor configured, falls back to the leading sentences.

use std::collections::HashMap;

use flowrl_plugin_abi::{
    ChatMessage, ChatRequest, ComponentKind, Executor, Metadata, OperatorLibraryImpl, OperatorSpec,
    Plugin, PluginError, PluginErrorKind,
    author::{parse_input, to_output},
};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Input of `WordCount`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WordCountInput {
    /// Text to analyse.
    pub text: String,
    /// How many of the most frequent words to list (default 5).
    #[serde(default = "default_top")]
    pub top: u32,
}

fn default_top() -> u32 {
    5
}

/// A word and how often it occurs.
#[derive(Debug, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
pub struct WordFrequency {
    /// The word, lowercased, without surrounding punctuation.
    pub word: String,
    /// Occurrences.
    pub count: u32,
}

/// Output of `WordCount`.
#[derive(Debug, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
pub struct WordCountOutput {
    /// Whitespace-separated words.
    pub words: u32,
    /// Lines (0 for empty text).
    pub lines: u32,
    /// Unicode scalar values.
    pub characters: u32,
    /// Most frequent words, most frequent first, ties alphabetical.
    pub top_words: Vec<WordFrequency>,
}

/// Input of `Summarize`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SummarizeInput {
    /// Text to summarise.
    pub text: String,
    /// Upper bound on the summary length in words (default 30).
    #[serde(default = "default_max_words")]
    pub max_words: u32,
}

fn default_max_words() -> u32 {
    30
}

/// Output of `Summarize`.
#[derive(Debug, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
pub struct SummarizeOutput {
    /// The summary.
    pub summary: String,
    /// `llm` when the executor wrote it, `extractive` for the fallback.
    pub method: String,
}

/// Counts words, lines, characters and the `top` most frequent words.
pub fn word_count(text: &str, top: usize) -> WordCountOutput {
    let mut freq: HashMap<String, u32> = HashMap::new();
    let mut words = 0u32;
    for raw in text.split_whitespace() {
        words = words.saturating_add(1);
        let word: String = raw
            .trim_matches(|c: char| !c.is_alphanumeric())
            .to_lowercase();
        if !word.is_empty() {
            *freq.entry(word).or_insert(0) += 1;
        }
    }
    let mut top_words: Vec<WordFrequency> = freq
        .into_iter()
        .map(|(word, count)| WordFrequency { word, count })
        .collect();
    top_words.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.word.cmp(&b.word)));
    top_words.truncate(top);
    let clamp = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
    WordCountOutput {
        words,
        lines: clamp(text.lines().count()),
        characters: clamp(text.chars().count()),
        top_words,
    }
}

/// The leading whole sentences of `text` that fit in `max_words` words (at
/// least the first `max_words` words when the first sentence is longer).
pub fn extractive_summary(text: &str, max_words: usize) -> String {
    let mut out: Vec<&str> = Vec::new();
    let mut sentence: Vec<&str> = Vec::new();
    for word in text.split_whitespace() {
        sentence.push(word);
        if word.ends_with(['.', '!', '?']) {
            if out.len() + sentence.len() > max_words {
                break;
            }
            out.append(&mut sentence);
        }
    }
    if out.is_empty() {
        // No complete sentence fits (or none ends): cut the words.
        out = text.split_whitespace().take(max_words).collect();
    } else if out.len() + sentence.len() <= max_words {
        // A trailing unterminated sentence that still fits.
        out.append(&mut sentence);
    }
    out.join(" ")
}

/// The `text` operator library.
pub struct TextOperators;

impl OperatorLibraryImpl for TextOperators {
    fn operators(&self) -> Vec<OperatorSpec> {
        vec![
            OperatorSpec::typed::<WordCountInput, WordCountOutput>(
                "WordCount",
                "Counts words, lines and characters of a text and lists its most frequent words.",
            ),
            OperatorSpec::typed::<SummarizeInput, SummarizeOutput>(
                "Summarize",
                "Summarises a text with the executor LLM, or extractively when no LLM is configured.",
            ),
        ]
    }

    fn call(
        &self,
        operator: &str,
        input: &str,
        executor: &Executor<'_>,
    ) -> Result<String, PluginError> {
        match operator {
            "WordCount" => {
                let input: WordCountInput = parse_input(input)?;
                to_output(&word_count(&input.text, input.top as usize))
            }
            "Summarize" => {
                let input: SummarizeInput = parse_input(input)?;
                let mut request = ChatRequest::user(format!(
                    "Summarise the following text in at most {} words. Answer with the summary only.\n\n{}",
                    input.max_words, input.text
                ));
                request.messages.insert(
                    0,
                    ChatMessage::new("system", "You write faithful, short summaries."),
                );
                request.sampling.temperature = 0.0;
                request.max_tokens = input.max_words.saturating_mul(2).max(16);
                let output = match executor.chat(&request) {
                    Ok(answer) => SummarizeOutput {
                        summary: answer.text.trim().to_string(),
                        method: "llm".into(),
                    },
                    Err(e) if e.kind == PluginErrorKind::UNAVAILABLE => SummarizeOutput {
                        summary: extractive_summary(&input.text, input.max_words as usize),
                        method: "extractive".into(),
                    },
                    Err(e) => return Err(e),
                };
                to_output(&output)
            }
            other => Err(PluginError::not_found(format!(
                "no operator `{other}` in library `text`"
            ))),
        }
    }
}

/// The plugin: one operator library called `text`.
pub struct TextPlugin;

impl Plugin for TextPlugin {
    fn metadata() -> Metadata {
        Metadata {
            name: "example-text".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Example operator plugin: word statistics and summaries.".into(),
            provides: vec![(
                ComponentKind::OPERATOR_LIBRARY,
                "text".into(),
                "WordCount and Summarize operators".into(),
            )],
        }
    }

    fn operator_library(
        name: &str,
        _config: &str,
    ) -> Result<Box<dyn OperatorLibraryImpl>, PluginError> {
        match name {
            "text" => Ok(Box::new(TextOperators)),
            other => Err(PluginError::not_found(format!(
                "no operator library `{other}`"
            ))),
        }
    }
}

flowrl_plugin_abi::export_plugin!(TextPlugin);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn word_count_counts_and_ranks() {
        let out = word_count("The cat saw the dog.\nThe dog ran!", 2);
        assert_eq!(out.words, 8);
        assert_eq!(out.lines, 2);
        assert_eq!(out.characters, 33);
        assert_eq!(
            out.top_words,
            vec![
                WordFrequency {
                    word: "the".into(),
                    count: 3
                },
                WordFrequency {
                    word: "dog".into(),
                    count: 2
                },
            ]
        );
        assert_eq!(
            word_count("", 5),
            WordCountOutput {
                words: 0,
                lines: 0,
                characters: 0,
                top_words: vec![]
            }
        );
    }

    #[test]
    fn extractive_summary_keeps_whole_sentences() {
        let text = "One two three. Four five six seven. Eight.";
        assert_eq!(extractive_summary(text, 3), "One two three.");
        assert_eq!(
            extractive_summary(text, 7),
            "One two three. Four five six seven."
        );
        assert_eq!(extractive_summary(text, 8), text);
        assert_eq!(extractive_summary(text, 100), text);
        assert_eq!(
            extractive_summary("no terminal punctuation here", 2),
            "no terminal"
        );
    }
}
