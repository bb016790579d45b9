//! A small in-memory BM25 index over a JSONL corpus of `{ "title", "text" }`
//! documents: the built-in backend of the `Search` operator.

use std::collections::HashMap;
use std::path::Path;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::OperatorsError;

/// One corpus document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Document {
    /// Title (indexed too).
    pub title: String,
    /// Body text.
    pub text: String,
}

/// One search result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Hit {
    /// Index of the document in the corpus.
    pub doc: usize,
    /// BM25 score (higher is better).
    pub score: f64,
}

/// A BM25 index (Okapi BM25 with `k1` and `b`).
#[derive(Debug, Clone)]
pub struct SearchIndex {
    docs: Vec<Document>,
    /// term → (doc, term frequency) postings.
    postings: HashMap<String, Vec<(usize, u32)>>,
    doc_len: Vec<u32>,
    avg_len: f64,
    k1: f64,
    b: f64,
}

const STOP_WORDS: &[&str] = &[
    "a", "an", "the", "of", "in", "on", "at", "to", "is", "are", "was", "were", "and", "or", "for",
    "by", "with", "what", "who", "which", "when", "where", "how", "did", "does", "do", "be", "as",
    "it", "its",
];

/// Lower-cased alphanumeric tokens without stop words.
pub fn tokenize(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .filter(|w| !STOP_WORDS.contains(&w.as_str()))
        .collect()
}

impl SearchIndex {
    /// Indexes `docs` (title and text) with the usual parameters k1 = 1.2, b = 0.75.
    pub fn new(docs: Vec<Document>) -> Self {
        let mut postings: HashMap<String, Vec<(usize, u32)>> = HashMap::new();
        let mut doc_len = Vec::with_capacity(docs.len());
        for (i, d) in docs.iter().enumerate() {
            let toks = tokenize(&format!("{} {}", d.title, d.text));
            doc_len.push(u32::try_from(toks.len()).unwrap_or(u32::MAX));
            let mut tf: HashMap<String, u32> = HashMap::new();
            for t in toks {
                *tf.entry(t).or_insert(0) += 1;
            }
            for (t, n) in tf {
                postings.entry(t).or_default().push((i, n));
            }
        }
        let avg_len = if docs.is_empty() {
            0.0
        } else {
            doc_len.iter().map(|&l| f64::from(l)).sum::<f64>() / docs.len() as f64
        };
        Self {
            docs,
            postings,
            doc_len,
            avg_len,
            k1: 1.2,
            b: 0.75,
        }
    }

    /// Reads a JSONL corpus (one `{ "title", "text" }` object per line; blank
    /// lines are skipped) and indexes it.
    ///
    /// # Errors
    /// [`OperatorsError::CorpusIo`] when the file cannot be read,
    /// [`OperatorsError::CorpusLine`] for a line that is not a document.
    pub fn from_jsonl(path: &Path) -> Result<Self, OperatorsError> {
        let text = std::fs::read_to_string(path).map_err(|source| OperatorsError::CorpusIo {
            path: path.display().to_string(),
            source,
        })?;
        let mut docs = Vec::new();
        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let doc: Document =
                serde_json::from_str(line).map_err(|e| OperatorsError::CorpusLine {
                    path: path.display().to_string(),
                    line: i + 1,
                    reason: e.to_string(),
                })?;
            docs.push(doc);
        }
        Ok(Self::new(docs))
    }

    /// Number of documents.
    pub fn len(&self) -> usize {
        self.docs.len()
    }

    /// `true` when the corpus is empty.
    pub fn is_empty(&self) -> bool {
        self.docs.is_empty()
    }

    /// Document `i`.
    pub fn document(&self, i: usize) -> Option<&Document> {
        self.docs.get(i)
    }

    /// The `k` best documents for `query`, best first (ties by corpus order);
    /// documents sharing no term with the query are left out.
    pub fn search(&self, query: &str, k: usize) -> Vec<Hit> {
        let n = self.docs.len() as f64;
        let mut scores: HashMap<usize, f64> = HashMap::new();
        let mut terms = tokenize(query);
        terms.sort();
        terms.dedup();
        for t in &terms {
            let Some(list) = self.postings.get(t) else {
                continue;
            };
            let df = list.len() as f64;
            let idf = (1.0 + (n - df + 0.5) / (df + 0.5)).ln();
            for &(doc, tf) in list {
                let tf = f64::from(tf);
                let len = f64::from(self.doc_len[doc]);
                let norm = self.k1 * (1.0 - self.b + self.b * len / self.avg_len.max(1e-9));
                *scores.entry(doc).or_insert(0.0) += idf * tf * (self.k1 + 1.0) / (tf + norm);
            }
        }
        let mut hits: Vec<Hit> = scores
            .into_iter()
            .map(|(doc, score)| Hit { doc, score })
            .collect();
        hits.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.doc.cmp(&b.doc)));
        hits.truncate(k);
        hits
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranks_matching_documents_first() {
        let idx = SearchIndex::new(vec![
            Document {
                title: "Paris".into(),
                text: "Paris is the capital of France.".into(),
            },
            Document {
                title: "Berlin".into(),
                text: "Berlin is the capital of Germany.".into(),
            },
            Document {
                title: "Cheese".into(),
                text: "France makes many cheeses.".into(),
            },
        ]);
        let hits = idx.search("capital of France", 5);
        assert_eq!(hits[0].doc, 0);
        assert_eq!(hits.len(), 3);
        assert!(idx.search("zebra", 5).is_empty());
        assert!(SearchIndex::new(vec![]).search("x", 3).is_empty());
    }
}
