//! `flowrl score --task … --data FILE --predictions FILE`

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, ValueEnum};
use flowrl_data::{DatasetFormat, QaMetric, ScoreConfig, Scorer, load_file, load_predictions};
use flowrl_rewards::{Fallback, SandboxConfig};

/// The dataset layout of `--data`, which also picks the reward.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ScoreTask {
    /// HumanEval: completions (or full functions) run against `check`.
    Humaneval,
    /// MBPP: code run against `test_list`.
    Mbpp,
    /// GSM8K: final number (`#### n`, `\boxed{}`, or the last number).
    Gsm8k,
    /// MATH: `\boxed{}` answer compared with `math_equal`.
    Math,
    /// MathQA: option value or letter.
    Mathqa,
    /// Search-R1 / FlashRAG QA layout (`question`, `golden_answers`).
    Qa,
    /// Flattened SQuAD v2.
    SquadV2,
}

impl ScoreTask {
    fn format(self) -> DatasetFormat {
        match self {
            ScoreTask::Humaneval => DatasetFormat::Humaneval,
            ScoreTask::Mbpp => DatasetFormat::Mbpp,
            ScoreTask::Gsm8k => DatasetFormat::Gsm8k,
            ScoreTask::Math => DatasetFormat::Math,
            ScoreTask::Mathqa => DatasetFormat::Mathqa,
            ScoreTask::Qa => DatasetFormat::Qa,
            ScoreTask::SquadV2 => DatasetFormat::SquadV2,
        }
    }
}

/// The score of QA items.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum QaMetricArg {
    /// SQuAD exact match.
    Em,
    /// SQuAD token F1.
    F1,
}

#[derive(Debug, Args)]
pub struct ScoreArgs {
    /// Layout of the data file (and so the reward).
    #[arg(long, value_enum)]
    task: ScoreTask,
    /// Dataset JSONL file.
    #[arg(long)]
    data: PathBuf,
    /// Predictions JSONL file: one `{"id": …, "prediction": …}` per line.
    #[arg(long)]
    predictions: PathBuf,
    /// QA score: exact match or token F1.
    #[arg(long, value_enum, default_value = "em")]
    qa_metric: QaMetricArg,
    /// Turn off the F1 substring rule (0.9 when the gold answer is inside the prediction).
    #[arg(long)]
    no_substring_rule: bool,
    /// Wall-clock limit per code run, in milliseconds.
    #[arg(long, default_value_t = 10_000)]
    timeout_ms: u64,
    /// Run code without bubblewrap (rlimits and timeout only, no isolation) when it is missing.
    #[arg(long)]
    allow_unsandboxed: bool,
    /// Items scored at once (0: four per CPU core).
    #[arg(long, default_value_t = 0)]
    jobs: usize,
    /// Print only the totals.
    #[arg(long)]
    totals_only: bool,
}

/// Loads, scores and returns the JSON report.
fn report(args: &ScoreArgs) -> anyhow::Result<serde_json::Value> {
    let tasks = load_file(&args.data, args.task.format(), None).context("loading --data")?;
    let predictions = load_predictions(&args.predictions).context("loading --predictions")?;
    let mut config = ScoreConfig {
        qa_metric: match args.qa_metric {
            QaMetricArg::Em => QaMetric::Em,
            QaMetricArg::F1 => QaMetric::F1,
        },
        sandbox: SandboxConfig {
            timeout_ms: args.timeout_ms,
            cpu_seconds: args.timeout_ms.div_ceil(1000).max(1),
            fallback: if args.allow_unsandboxed {
                Fallback::Plain
            } else {
                Fallback::None
            },
            ..SandboxConfig::default()
        },
        parallelism: args.jobs,
        ..ScoreConfig::default()
    };
    config.f1.substring_rule = !args.no_substring_rule;
    let report = Scorer::new(config)
        .score_all(&tasks, &predictions)
        .context("scoring")?;
    let mut value = serde_json::json!({
        "task": format!("{:?}", args.task).to_lowercase(),
        "totals": report.totals,
    });
    if !args.totals_only {
        value["items"] = serde_json::to_value(&report.items)?;
    }
    Ok(value)
}

pub fn run(args: ScoreArgs) -> anyhow::Result<ExitCode> {
    let value = report(&args)?;
    println!("{}", serde_json::to_string_pretty(&value)?);
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("crates/data/tests/fixtures")
            .join(name)
    }

    #[test]
    fn scores_gsm8k_fixture_with_missing_and_unknown_ids() {
        let dir = tempfile::tempdir().unwrap();
        let preds = dir.path().join("p.jsonl");
        std::fs::write(
            &preds,
            "{\"id\": \"gsm8k-1\", \"prediction\": \"so he has 31 pencils\"}\n{\"id\": \"zzz\", \"prediction\": \"1\"}\n",
        )
        .unwrap();
        let args = ScoreArgs {
            task: ScoreTask::Gsm8k,
            data: fixture("gsm8k.jsonl"),
            predictions: preds,
            qa_metric: QaMetricArg::Em,
            no_substring_rule: false,
            timeout_ms: 1000,
            allow_unsandboxed: false,
            jobs: 1,
            totals_only: false,
        };
        let v = report(&args).unwrap();
        assert_eq!(v["totals"]["tasks"], 2);
        assert_eq!(v["totals"]["correct"], 1);
        assert_eq!(v["totals"]["missing"][0], "gsm8k-2");
        assert_eq!(v["totals"]["unknown"][0], "zzz");
        assert_eq!(v["items"][0]["extracted"], "31");
        assert_eq!(v["items"][1]["missing"], true);
    }
}
