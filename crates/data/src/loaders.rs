//! JSONL loaders for the supported dataset layouts.
//!
//! Every loader reads one JSON object per line (blank lines are skipped) and
//! produces [`Task`]s. Errors name the file, the 1-based line and the field.
//! Fields a layout does not use are kept in [`Task::metadata`].

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use flowrl_rewards::math::{extract_boxed, extract_hash_answer};
use flowrl_rewards::{CodeTests, Harness};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::{DataError, Task, TaskFamily};

/// The dataset layouts this crate reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum DatasetFormat {
    /// Search-R1 / FlashRAG QA: `question`, `golden_answers` (list), optional
    /// `id` (NQ, TriviaQA, PopQA, HotpotQA, 2Wiki, Musique, Bamboogle).
    Qa,
    /// Flattened SQuAD v2: `id`, `question`, `context`, `answers.text` (list;
    /// empty for unanswerable questions, whose gold answer is then `""`).
    SquadV2,
    /// GSM8K: `question`, `answer` whose last line is `#### <number>`.
    Gsm8k,
    /// MATH: `problem`, `solution`, optional `answer` (else the last
    /// `\boxed{…}` of the solution).
    Math,
    /// MathQA: `Problem`, `options`, `correct` (a letter), optional `Rationale`.
    Mathqa,
    /// HumanEval: `task_id`, `prompt`, `canonical_solution`, `test`, `entry_point`.
    Humaneval,
    /// MBPP: `task_id`, `text`, `code`, `test_setup_code`, `test_list`,
    /// `challenge_test_list`.
    Mbpp,
}

impl DatasetFormat {
    /// Parses a format name (`qa`, `squad_v2`, `gsm8k`, `math`, `mathqa`,
    /// `humaneval`, `mbpp`; `-` and `_` are interchangeable).
    ///
    /// # Errors
    /// [`DataError::UnknownFormat`] for any other name.
    pub fn parse(name: &str) -> Result<Self, DataError> {
        match name.to_ascii_lowercase().replace('-', "_").as_str() {
            "qa" => Ok(Self::Qa),
            "squad_v2" | "squad" | "squadv2" => Ok(Self::SquadV2),
            "gsm8k" => Ok(Self::Gsm8k),
            "math" => Ok(Self::Math),
            "mathqa" => Ok(Self::Mathqa),
            "humaneval" => Ok(Self::Humaneval),
            "mbpp" => Ok(Self::Mbpp),
            _ => Err(DataError::UnknownFormat(name.to_string())),
        }
    }

    /// The family of the tasks this layout yields.
    pub fn family(self) -> TaskFamily {
        match self {
            Self::Qa | Self::SquadV2 => TaskFamily::Qa,
            Self::Gsm8k | Self::Math | Self::Mathqa => TaskFamily::Math,
            Self::Humaneval | Self::Mbpp => TaskFamily::Code,
        }
    }

    /// The default source name of this layout (`qa` uses the file stem instead).
    pub fn default_source(self) -> &'static str {
        match self {
            Self::Qa => "qa",
            Self::SquadV2 => "squad_v2",
            Self::Gsm8k => "gsm8k",
            Self::Math => "math",
            Self::Mathqa => "mathqa",
            Self::Humaneval => "humaneval",
            Self::Mbpp => "mbpp",
        }
    }
}

/// Loads a JSONL file. `source` names the data source (default: the
/// layout's name, or the file stem for [`DatasetFormat::Qa`]).
///
/// # Errors
/// [`DataError::Io`] when the file cannot be read; [`DataError::Json`],
/// [`DataError::Field`] or [`DataError::DuplicateId`] for the first bad line.
pub fn load_file(
    path: &Path,
    format: DatasetFormat,
    source: Option<&str>,
) -> Result<Vec<Task>, DataError> {
    let text = std::fs::read_to_string(path).map_err(|source| DataError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let default_source = match format {
        DatasetFormat::Qa => path.file_stem().map(|s| s.to_string_lossy().into_owned()),
        _ => None,
    };
    let source = source
        .map(str::to_string)
        .or(default_source)
        .unwrap_or_else(|| format.default_source().into());
    parse_jsonl(&text, format, &source, path)
}

/// Parses JSONL text already in memory; `path` is only used in error messages.
///
/// # Errors
/// As [`load_file`], without the I/O error.
pub fn parse_jsonl(
    text: &str,
    format: DatasetFormat,
    source: &str,
    path: &Path,
) -> Result<Vec<Task>, DataError> {
    let mut tasks = Vec::new();
    let mut seen = HashSet::new();
    for (idx, line) in text.lines().enumerate() {
        let line_no = idx + 1;
        if line.trim().is_empty() {
            continue;
        }
        let value: Value = serde_json::from_str(line).map_err(|e| DataError::Json {
            path: path.to_path_buf(),
            line: line_no,
            message: e.to_string(),
        })?;
        let Value::Object(map) = value else {
            return Err(DataError::Json {
                path: path.to_path_buf(),
                line: line_no,
                message: "the line is valid JSON but not an object".into(),
            });
        };
        let rec = Record {
            map,
            path,
            line: line_no,
        };
        let task = match format {
            DatasetFormat::Qa => rec.qa(source)?,
            DatasetFormat::SquadV2 => rec.squad(source)?,
            DatasetFormat::Gsm8k => rec.gsm8k(source)?,
            DatasetFormat::Math => rec.math(source)?,
            DatasetFormat::Mathqa => rec.mathqa(source)?,
            DatasetFormat::Humaneval => rec.humaneval(source)?,
            DatasetFormat::Mbpp => rec.mbpp(source)?,
        };
        if !seen.insert(task.id.clone()) {
            return Err(DataError::DuplicateId {
                path: path.to_path_buf(),
                line: line_no,
                id: task.id,
            });
        }
        tasks.push(task);
    }
    Ok(tasks)
}

struct Record<'a> {
    map: Map<String, Value>,
    path: &'a Path,
    line: usize,
}

impl Record<'_> {
    fn err(&self, field: &str, message: impl Into<String>) -> DataError {
        DataError::Field {
            path: PathBuf::from(self.path),
            line: self.line,
            field: field.into(),
            message: message.into(),
        }
    }

    fn take(&mut self, field: &str) -> Option<Value> {
        self.map.remove(field).filter(|v| !v.is_null())
    }

    fn string(&mut self, field: &str) -> Result<String, DataError> {
        match self.take(field) {
            Some(Value::String(s)) => Ok(s),
            Some(other) => {
                Err(self.err(field, format!("expected a string, found {}", kind(&other))))
            }
            None => Err(self.err(field, "missing")),
        }
    }

    fn opt_string(&mut self, field: &str) -> Result<Option<String>, DataError> {
        match self.take(field) {
            Some(Value::String(s)) => Ok(Some(s)),
            Some(other) => {
                Err(self.err(field, format!("expected a string, found {}", kind(&other))))
            }
            None => Ok(None),
        }
    }

    /// An id: string or integer.
    fn opt_id(&mut self, field: &str) -> Result<Option<String>, DataError> {
        match self.take(field) {
            Some(Value::String(s)) if !s.is_empty() => Ok(Some(s)),
            Some(Value::Number(n)) => Ok(Some(n.to_string())),
            Some(other) => Err(self.err(
                field,
                format!(
                    "expected a non-empty string or an integer, found {}",
                    kind(&other)
                ),
            )),
            None => Ok(None),
        }
    }

    /// A list of strings; a single string counts as a list of one.
    fn strings(&mut self, field: &str) -> Result<Vec<String>, DataError> {
        match self.take(field) {
            Some(Value::String(s)) => Ok(vec![s]),
            Some(Value::Array(items)) => items
                .into_iter()
                .enumerate()
                .map(|(i, v)| match v {
                    Value::String(s) => Ok(s),
                    Value::Number(n) => Ok(n.to_string()),
                    other => Err(self.err(
                        field,
                        format!("item {i}: expected a string, found {}", kind(&other)),
                    )),
                })
                .collect(),
            Some(other) => Err(self.err(
                field,
                format!("expected a list of strings, found {}", kind(&other)),
            )),
            None => Err(self.err(field, "missing")),
        }
    }

    fn metadata(self) -> BTreeMap<String, Value> {
        self.map.into_iter().collect()
    }

    fn qa(mut self, source: &str) -> Result<Task, DataError> {
        let question = self.string("question")?;
        let answers = self.strings("golden_answers")?;
        if answers.is_empty() {
            return Err(self.err("golden_answers", "empty list"));
        }
        let id = self
            .opt_id("id")?
            .unwrap_or_else(|| format!("{source}-{}", self.line));
        Ok(Task {
            id,
            source: source.into(),
            family: TaskFamily::Qa,
            question,
            answers,
            context: None,
            tests: None,
            reference: None,
            code_prefix: None,
            metadata: self.metadata(),
        })
    }

    fn squad(mut self, source: &str) -> Result<Task, DataError> {
        let id = self
            .opt_id("id")?
            .ok_or_else(|| self.err("id", "missing"))?;
        let question = self.string("question")?;
        let context = self.string("context")?;
        let answers = match self.take("answers") {
            Some(Value::Object(mut obj)) => match obj.remove("text") {
                Some(Value::Array(items)) => items
                    .into_iter()
                    .map(|v| match v {
                        Value::String(s) => Ok(s),
                        other => Err(self.err(
                            "answers.text",
                            format!("expected strings, found {}", kind(&other)),
                        )),
                    })
                    .collect::<Result<Vec<_>, _>>()?,
                _ => return Err(self.err("answers.text", "missing or not a list")),
            },
            Some(other) => {
                return Err(self.err(
                    "answers",
                    format!("expected an object, found {}", kind(&other)),
                ));
            }
            None => return Err(self.err("answers", "missing")),
        };
        let answers = if answers.is_empty() {
            vec![String::new()]
        } else {
            answers
        };
        Ok(Task {
            id,
            source: source.into(),
            family: TaskFamily::Qa,
            question,
            answers,
            context: Some(context),
            tests: None,
            reference: None,
            code_prefix: None,
            metadata: self.metadata(),
        })
    }

    fn gsm8k(mut self, source: &str) -> Result<Task, DataError> {
        let question = self.string("question")?;
        let solution = self.string("answer")?;
        let Some(gold) = extract_hash_answer(&solution) else {
            return Err(self.err("answer", "no `#### <answer>` line"));
        };
        let gold = gold.replace(',', "");
        let id = self
            .opt_id("id")?
            .unwrap_or_else(|| format!("{source}-{}", self.line));
        let mut metadata = self.metadata();
        metadata.insert("solution".into(), Value::String(solution));
        Ok(Task {
            id,
            source: source.into(),
            family: TaskFamily::Math,
            question,
            answers: vec![gold],
            context: None,
            tests: None,
            reference: None,
            code_prefix: None,
            metadata,
        })
    }

    fn math(mut self, source: &str) -> Result<Task, DataError> {
        let question = self.string("problem")?;
        let solution = self.string("solution")?;
        let answer = match self.opt_string("answer")? {
            Some(a) => a,
            None => extract_boxed(&solution).ok_or_else(|| {
                self.err(
                    "answer",
                    "missing, and the solution has no closed \\boxed{…}",
                )
            })?,
        };
        let id = self
            .opt_id("id")?
            .or(self.opt_id("unique_id")?)
            .unwrap_or_else(|| format!("{source}-{}", self.line));
        let mut metadata = self.metadata();
        metadata.insert("solution".into(), Value::String(solution));
        Ok(Task {
            id,
            source: source.into(),
            family: TaskFamily::Math,
            question,
            answers: vec![answer],
            context: None,
            tests: None,
            reference: None,
            code_prefix: None,
            metadata,
        })
    }

    fn mathqa(mut self, source: &str) -> Result<Task, DataError> {
        let problem = self.string("Problem")?;
        let (options_text, options) = match self.take("options") {
            Some(Value::String(s)) => {
                let parsed = parse_mathqa_options(&s);
                (s, parsed)
            }
            Some(Value::Array(items)) => {
                let joined: Vec<String> = items
                    .iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect();
                let text = joined.join(" , ");
                (text.clone(), parse_mathqa_options(&text))
            }
            Some(other) => {
                return Err(self.err(
                    "options",
                    format!("expected a string or a list, found {}", kind(&other)),
                ));
            }
            None => return Err(self.err("options", "missing")),
        };
        let correct = self.string("correct")?.trim().to_ascii_lowercase();
        let Some((_, value)) = options.iter().find(|(letter, _)| *letter == correct) else {
            return Err(self.err(
                "correct",
                format!("`{correct}` is not one of the options {options_text:?}"),
            ));
        };
        let answers = vec![value.clone(), correct.clone()];
        let id = self
            .opt_id("id")?
            .unwrap_or_else(|| format!("{source}-{}", self.line));
        let mut metadata = self.metadata();
        metadata.insert("options".into(), Value::String(options_text.clone()));
        metadata.insert("correct".into(), Value::String(correct));
        Ok(Task {
            id,
            source: source.into(),
            family: TaskFamily::Math,
            question: format!("{problem}\nOptions: {options_text}"),
            answers,
            context: None,
            tests: None,
            reference: None,
            code_prefix: None,
            metadata,
        })
    }

    fn humaneval(mut self, source: &str) -> Result<Task, DataError> {
        let id = self.string("task_id")?;
        let prompt = self.string("prompt")?;
        let canonical = self.string("canonical_solution")?;
        let test = self.string("test")?;
        let entry_point = self.string("entry_point")?;
        if entry_point.trim().is_empty() {
            return Err(self.err("entry_point", "empty"));
        }
        Ok(Task {
            id,
            source: source.into(),
            family: TaskFamily::Code,
            question: prompt.clone(),
            answers: Vec::new(),
            context: None,
            tests: Some(CodeTests {
                setup: String::new(),
                asserts: Vec::new(),
                harness: Some(Harness {
                    code: test,
                    entry_point,
                }),
            }),
            reference: Some(canonical),
            code_prefix: Some(prompt),
            metadata: self.metadata(),
        })
    }

    fn mbpp(mut self, source: &str) -> Result<Task, DataError> {
        let id = self
            .opt_id("task_id")?
            .ok_or_else(|| self.err("task_id", "missing"))?;
        let text = self.string("text")?;
        let code = self.string("code")?;
        let setup = self.opt_string("test_setup_code")?.unwrap_or_default();
        let asserts = self.strings("test_list")?;
        if asserts.is_empty() {
            return Err(self.err("test_list", "empty list"));
        }
        let challenge = match self.take("challenge_test_list") {
            None => Vec::new(),
            Some(v) => {
                self.map.insert("challenge_test_list".into(), v);
                self.strings("challenge_test_list")?
            }
        };
        let question = format!(
            "{text}\nYour code should pass these tests:\n{}",
            asserts.join("\n")
        );
        let mut metadata = self.metadata();
        if !challenge.is_empty() {
            metadata.insert("challenge_test_list".into(), Value::from(challenge));
        }
        Ok(Task {
            id: id.clone(),
            source: source.into(),
            family: TaskFamily::Code,
            question,
            answers: Vec::new(),
            context: None,
            tests: Some(CodeTests {
                setup,
                asserts,
                harness: None,
            }),
            reference: Some(code),
            code_prefix: None,
            metadata,
        })
    }
}

/// Splits MathQA's `a ) 38 , b ) 27.675 , c ) 30` into (letter, value) pairs.
pub fn parse_mathqa_options(text: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    let bytes = text.as_bytes();
    let mut starts = Vec::new();
    for i in 0..bytes.len() {
        let letter_ok =
            bytes[i].is_ascii_lowercase() && (i == 0 || !bytes[i - 1].is_ascii_alphanumeric());
        if letter_ok {
            let mut j = i + 1;
            while j < bytes.len() && bytes[j] == b' ' {
                j += 1;
            }
            if bytes.get(j) == Some(&b')') {
                starts.push((i, j + 1));
            }
        }
    }
    for (k, &(letter_at, value_at)) in starts.iter().enumerate() {
        let end = starts.get(k + 1).map_or(text.len(), |&(next, _)| next);
        let value = text[value_at..end]
            .trim_matches(|c: char| c.is_whitespace() || matches!(c, ',' | '\'' | '"' | '[' | ']'));
        out.push((
            text[letter_at..letter_at + 1].to_string(),
            value.to_string(),
        ));
    }
    out
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}
