//! Scoring predictions against tasks with the rewards of `flowrl-rewards`.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::OnceLock;

use flowrl_rewards::math::extract_answer;
use flowrl_rewards::{
    ExecOutcome, F1Config, Sandbox, SandboxConfig, code_reward, exact_match_any, f1_reward,
    math_equal,
};
use rayon::prelude::*;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::{DataError, Task, TaskFamily};

/// Which number is the score of a QA item.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum QaMetric {
    /// SQuAD exact match (Workflow-R1).
    #[default]
    Em,
    /// SQuAD token F1 with the optional substring rule (FlowSteer).
    F1,
}

/// Scoring settings.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct ScoreConfig {
    /// The score of QA items.
    pub qa_metric: QaMetric,
    /// F1 options (substring rule).
    pub f1: F1Config,
    /// Sandbox for code items.
    pub sandbox: SandboxConfig,
    /// Items scored at once by [`Scorer::score_all`]; 0 means four per CPU
    /// core. Sandbox runs spend most of their time waiting on the kernel
    /// (namespace set-up), not computing, so more jobs than cores pays off.
    pub parallelism: usize,
}

/// One prediction record: `{"id": …, "prediction": …}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Prediction {
    /// The task id.
    pub id: String,
    /// The model's answer (QA/math) or code (code tasks).
    pub prediction: String,
}

/// The score of one task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ItemScore {
    /// Task id.
    pub id: String,
    /// Task family.
    pub family: TaskFamily,
    /// The score in [0, 1] (EM or F1 for QA, 0/1 for math and code).
    pub score: f64,
    /// Whether the item counts as solved (EM for QA, score = 1 otherwise).
    pub correct: bool,
    /// QA: token F1.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub f1: Option<f64>,
    /// Math: the extracted final answer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub extracted: Option<String>,
    /// Code: how the test run ended.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outcome: Option<ExecOutcome>,
    /// No prediction was given for this task (scored 0).
    #[serde(skip_serializing_if = "std::ops::Not::not", default)]
    pub missing: bool,
}

/// All items plus totals.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ScoreReport {
    /// One entry per task, in task order.
    pub items: Vec<ItemScore>,
    /// Totals.
    pub totals: Totals,
}

/// Totals of a [`ScoreReport`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Totals {
    /// Number of tasks.
    pub tasks: usize,
    /// Tasks with a prediction.
    pub predicted: usize,
    /// Tasks counted as solved.
    pub correct: usize,
    /// correct / tasks (0 when there are no tasks).
    pub accuracy: f64,
    /// Mean score over all tasks (missing ones count 0).
    pub mean_score: f64,
    /// Task ids without a prediction (counted wrong).
    pub missing: Vec<String>,
    /// Prediction ids that match no task (ignored).
    pub unknown: Vec<String>,
    /// Prediction ids given more than once (the first one is used).
    pub duplicate: Vec<String>,
}

/// Scores predictions; creates the sandbox only when a code task needs it.
#[derive(Debug)]
pub struct Scorer {
    config: ScoreConfig,
    sandbox: OnceLock<Sandbox>,
}

impl Scorer {
    /// A scorer with these settings.
    pub fn new(config: ScoreConfig) -> Self {
        Self {
            config,
            sandbox: OnceLock::new(),
        }
    }

    fn sandbox(&self) -> Result<&Sandbox, DataError> {
        if let Some(s) = self.sandbox.get() {
            return Ok(s);
        }
        let created = Sandbox::new(self.config.sandbox.clone())?;
        Ok(self.sandbox.get_or_init(|| created))
    }

    /// Scores one prediction for one task.
    ///
    /// # Errors
    /// Only for code tasks, when the sandbox cannot be created or started.
    pub fn score(&self, task: &Task, prediction: &str) -> Result<ItemScore, DataError> {
        let mut item = ItemScore {
            id: task.id.clone(),
            family: task.family,
            score: 0.0,
            correct: false,
            f1: None,
            extracted: None,
            outcome: None,
            missing: false,
        };
        match task.family {
            TaskFamily::Qa => {
                let em = exact_match_any(prediction, &task.answers);
                let f1 = f1_reward(prediction, &task.answers, &self.config.f1);
                item.correct = em;
                item.f1 = Some(f1);
                item.score = match self.config.qa_metric {
                    QaMetric::Em => f64::from(u8::from(em)),
                    QaMetric::F1 => f1,
                };
            }
            TaskFamily::Math => {
                let extracted = extract_answer(prediction);
                let candidates = extracted
                    .iter()
                    .map(String::as_str)
                    .chain(std::iter::once(prediction.trim()));
                let ok = candidates
                    .into_iter()
                    .any(|c| task.answers.iter().any(|g| math_equal(c, g)));
                item.correct = ok;
                item.score = f64::from(u8::from(ok));
                item.extracted = extracted;
            }
            TaskFamily::Code => {
                let tests = task.tests.clone().unwrap_or_default();
                let r = code_reward(self.sandbox()?, &task.solution_program(prediction), &tests)?;
                item.correct = r.reward == 1;
                item.score = f64::from(r.reward);
                item.outcome = Some(r.result.outcome);
            }
        }
        Ok(item)
    }

    /// Scores a whole prediction set against the tasks, in parallel. Tasks
    /// without a prediction score 0 and are listed in [`Totals::missing`];
    /// predictions for unknown ids are listed in [`Totals::unknown`].
    ///
    /// # Errors
    /// As [`Scorer::score`].
    pub fn score_all(
        &self,
        tasks: &[Task],
        predictions: &[Prediction],
    ) -> Result<ScoreReport, DataError> {
        let mut by_id: HashMap<&str, &str> = HashMap::new();
        let mut duplicate = Vec::new();
        for p in predictions {
            if by_id.contains_key(p.id.as_str()) {
                duplicate.push(p.id.clone());
            } else {
                by_id.insert(p.id.as_str(), p.prediction.as_str());
            }
        }
        let task_ids: HashSet<&str> = tasks.iter().map(|t| t.id.as_str()).collect();
        let mut unknown: Vec<String> = by_id
            .keys()
            .filter(|id| !task_ids.contains(*id))
            .map(|id| id.to_string())
            .collect();
        unknown.sort();
        let jobs = if self.config.parallelism == 0 {
            4 * std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
        } else {
            self.config.parallelism
        };
        let score_one = |t: &Task| match by_id.get(t.id.as_str()) {
            Some(pred) => self.score(t, pred),
            None => Ok(ItemScore {
                id: t.id.clone(),
                family: t.family,
                score: 0.0,
                correct: false,
                f1: None,
                extracted: None,
                outcome: None,
                missing: true,
            }),
        };
        let items: Vec<ItemScore> = match rayon::ThreadPoolBuilder::new().num_threads(jobs).build()
        {
            Ok(pool) => {
                pool.install(|| tasks.par_iter().map(score_one).collect::<Result<_, _>>())?
            }
            Err(_) => tasks.par_iter().map(score_one).collect::<Result<_, _>>()?,
        };
        let n = items.len();
        let correct = items.iter().filter(|i| i.correct).count();
        let missing: Vec<String> = items
            .iter()
            .filter(|i| i.missing)
            .map(|i| i.id.clone())
            .collect();
        let mean = |x: f64| if n == 0 { 0.0 } else { x / n as f64 };
        let totals = Totals {
            tasks: n,
            predicted: n - missing.len(),
            correct,
            accuracy: mean(correct as f64),
            mean_score: mean(items.iter().map(|i| i.score).sum()),
            missing,
            unknown,
            duplicate,
        };
        Ok(ScoreReport { items, totals })
    }
}

/// Reads a predictions JSONL file (`id` string or integer, `prediction` string).
///
/// # Errors
/// [`DataError::Io`], [`DataError::Json`] or [`DataError::Field`] with the line.
pub fn load_predictions(path: &Path) -> Result<Vec<Prediction>, DataError> {
    let text = std::fs::read_to_string(path).map_err(|source| DataError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let field_err = |field: &str, message: &str| DataError::Field {
            path: path.to_path_buf(),
            line: i + 1,
            field: field.into(),
            message: message.into(),
        };
        let v: serde_json::Value = serde_json::from_str(line).map_err(|e| DataError::Json {
            path: path.to_path_buf(),
            line: i + 1,
            message: e.to_string(),
        })?;
        let id = match v.get("id") {
            Some(serde_json::Value::String(s)) => s.clone(),
            Some(serde_json::Value::Number(n)) => n.to_string(),
            Some(_) => return Err(field_err("id", "expected a string or an integer")),
            None => return Err(field_err("id", "missing")),
        };
        let prediction = match v.get("prediction") {
            Some(serde_json::Value::String(s)) => s.clone(),
            Some(serde_json::Value::Null) | None => return Err(field_err("prediction", "missing")),
            Some(_) => return Err(field_err("prediction", "expected a string")),
        };
        out.push(Prediction { id, prediction });
    }
    Ok(out)
}
