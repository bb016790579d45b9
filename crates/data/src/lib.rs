//! Datasets for workflow-building agents.
//!
//! * [`loaders`] read the JSONL layouts of the common benchmarks (Search-R1 /
//!   FlashRAG QA, SQuAD v2, GSM8K, MATH, MathQA, HumanEval, MBPP) into one
//!   [`Task`] type, with errors that name the file, line and field;
//! * [`score`] scores predictions against tasks with `flowrl-rewards`
//!   (EM/F1, `math_equal`, sandboxed tests);
//! * [`suite`] generates a seeded task suite (qa / math / code, train and
//!   held-out) for the embedded default trainer and for tests.

pub mod error;
pub mod loaders;
pub mod score;
pub mod suite;
pub mod task;

pub use error::DataError;
pub use loaders::{DatasetFormat, load_file, parse_jsonl};
pub use score::{
    ItemScore, Prediction, QaMetric, ScoreConfig, ScoreReport, Scorer, Totals, load_predictions,
};
pub use suite::{Suite, SuiteConfig, generate_suite};
pub use task::{Task, TaskFamily, task_schema_json};
