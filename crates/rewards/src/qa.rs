//! Question answering rewards: SQuAD-normalised exact match and token F1.
//!
//! Normalisation follows the official SQuAD evaluation script: lower-case,
//! remove ASCII punctuation, remove the articles `a`, `an`, `the` (as whole
//! words), collapse whitespace.

use std::collections::HashMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// SQuAD answer normalisation: lower-case, strip ASCII punctuation, drop the
/// whole words `a`/`an`/`the`, collapse runs of whitespace to one space.
pub fn normalize_answer(text: &str) -> String {
    let lower = text.to_lowercase();
    let no_punct: String = lower
        .chars()
        .filter(|c| !c.is_ascii_punctuation())
        .collect();
    // Replace article words (maximal runs of word characters) by a space.
    let mut no_articles = String::with_capacity(no_punct.len());
    let mut word = String::new();
    let flush = |word: &mut String, out: &mut String| {
        if matches!(word.as_str(), "a" | "an" | "the") {
            out.push(' ');
        } else {
            out.push_str(word);
        }
        word.clear();
    };
    for c in no_punct.chars() {
        if c.is_alphanumeric() || c == '_' {
            word.push(c);
        } else {
            flush(&mut word, &mut no_articles);
            no_articles.push(c);
        }
    }
    flush(&mut word, &mut no_articles);
    no_articles.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// `true` when the prediction equals the gold answer after [`normalize_answer`].
pub fn exact_match(prediction: &str, gold: &str) -> bool {
    normalize_answer(prediction) == normalize_answer(gold)
}

/// `true` when the prediction exactly matches any of the gold answers
/// (after normalisation). An empty gold list never matches.
pub fn exact_match_any<S: AsRef<str>>(prediction: &str, golds: &[S]) -> bool {
    let p = normalize_answer(prediction);
    golds.iter().any(|g| normalize_answer(g.as_ref()) == p)
}

/// SQuAD token F1 in [0, 1] between a prediction and one gold answer.
///
/// Tokens are the whitespace-separated words of the normalised strings. When
/// either side has no tokens, F1 is 1 if both are empty and 0 otherwise.
pub fn token_f1(prediction: &str, gold: &str) -> f64 {
    let p = normalize_answer(prediction);
    let g = normalize_answer(gold);
    let pt: Vec<&str> = p.split_whitespace().collect();
    let gt: Vec<&str> = g.split_whitespace().collect();
    if pt.is_empty() || gt.is_empty() {
        return f64::from(u8::from(pt == gt));
    }
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for t in &gt {
        *counts.entry(t).or_default() += 1;
    }
    let mut same = 0usize;
    for t in &pt {
        if let Some(c) = counts.get_mut(t)
            && *c > 0
        {
            *c -= 1;
            same += 1;
        }
    }
    if same == 0 {
        return 0.0;
    }
    let precision = same as f64 / pt.len() as f64;
    let recall = same as f64 / gt.len() as f64;
    2.0 * precision * recall / (precision + recall)
}

/// Options of the QA F1 reward.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct F1Config {
    /// FlowSteer's substring rule: when the normalised gold answer occurs in
    /// the normalised prediction and F1 is lower than `substring_score`, the
    /// score is raised to `substring_score`.
    pub substring_rule: bool,
    /// The score given by the substring rule (FlowSteer: 0.9).
    pub substring_score: f64,
}

impl Default for F1Config {
    fn default() -> Self {
        Self {
            substring_rule: true,
            substring_score: 0.9,
        }
    }
}

/// The best F1 of a prediction over a list of gold answers, in [0, 1], with
/// the optional substring rule of [`F1Config`]. An empty gold list scores 0.
pub fn f1_reward<S: AsRef<str>>(prediction: &str, golds: &[S], config: &F1Config) -> f64 {
    let np = normalize_answer(prediction);
    golds
        .iter()
        .map(|g| {
            let f1 = token_f1(prediction, g.as_ref());
            let ng = normalize_answer(g.as_ref());
            if config.substring_rule
                && !ng.is_empty()
                && f1 < config.substring_score
                && np.contains(&ng)
            {
                config.substring_score
            } else {
                f1
            }
        })
        .fold(0.0, f64::max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalisation_matches_squad() {
        assert_eq!(normalize_answer("The  Eiffel Tower!"), "eiffel tower");
        assert_eq!(normalize_answer("an apple, a pear"), "apple pear");
        assert_eq!(normalize_answer("Theater"), "theater");
        assert_eq!(normalize_answer("  "), "");
    }

    #[test]
    fn em_and_f1() {
        assert!(exact_match("the Beatles", "Beatles."));
        assert!(!exact_match("Beatles band", "Beatles"));
        assert!(exact_match_any("Paris", &["London", "paris"]));
        assert!((token_f1("new york city", "new york") - 0.8).abs() < 1e-12);
        assert_eq!(token_f1("", ""), 1.0);
        assert_eq!(token_f1("x", ""), 0.0);
        assert_eq!(token_f1("red", "blue"), 0.0);
    }

    #[test]
    fn substring_rule() {
        let on = F1Config::default();
        let off = F1Config {
            substring_rule: false,
            ..F1Config::default()
        };
        let pred = "I think the answer is probably Barack Obama in the end";
        assert!((f1_reward(pred, &["Barack Obama"], &on) - 0.9).abs() < 1e-12);
        assert!(f1_reward(pred, &["Barack Obama"], &off) < 0.5);
        assert_eq!(f1_reward("Obama", &["Barack Obama", "Obama"], &on), 1.0);
        assert_eq!(f1_reward("x", &[] as &[&str], &on), 0.0);
    }
}
