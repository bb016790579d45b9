//! End-to-end checks on the real benchmark files in `../shared/data` (from
//! the workspace root) or `$FLOWRL_DATA_DIR`. Missing files skip the test
//! with a message, except with `CI=true`, where they are a failure.

use std::path::PathBuf;
use std::time::Instant;

use flowrl_data::{DatasetFormat, Prediction, ScoreConfig, Scorer, Task, load_file};
use flowrl_rewards::{ExecOutcome, SandboxConfig};
use rayon::prelude::*;

fn data_file(name: &str) -> Option<PathBuf> {
    let dir = match std::env::var_os("FLOWRL_DATA_DIR") {
        Some(d) => PathBuf::from(d),
        None => {
            let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
            let manifest = manifest.canonicalize().unwrap_or(manifest);
            manifest.join("../../../shared/data")
        }
    };
    let path = dir.join(name);
    if path.is_file() {
        return Some(path);
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "CI=true but {} is missing",
        path.display()
    );
    eprintln!(
        "skipping: {} not found (set FLOWRL_DATA_DIR)",
        path.display()
    );
    None
}

/// A scorer, or `None` (with a message) when bubblewrap is unavailable outside CI.
///
/// The limits are generous: a few reference solutions (MBPP 123 sums amicable
/// numbers below 10,000) need seconds of CPU, more on a busy machine.
fn code_scorer() -> Option<Scorer> {
    let sandbox = SandboxConfig {
        timeout_ms: 120_000,
        cpu_seconds: 60,
        ..SandboxConfig::default()
    };
    let scorer = Scorer::new(ScoreConfig {
        sandbox,
        ..ScoreConfig::default()
    });
    let probe = Task {
        id: "probe".into(),
        source: "probe".into(),
        family: flowrl_data::TaskFamily::Code,
        question: String::new(),
        answers: Vec::new(),
        context: None,
        tests: Some(flowrl_rewards::CodeTests {
            asserts: vec!["assert True".into()],
            ..Default::default()
        }),
        reference: None,
        code_prefix: None,
        metadata: Default::default(),
    };
    match scorer.score(&probe, "pass") {
        Ok(item) if item.correct => Some(scorer),
        Ok(item) => panic!("the sandbox cannot run a trivial program: {item:?}"),
        Err(e) => {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "CI=true but the sandbox is unavailable: {e}"
            );
            eprintln!("skipping: {e}");
            None
        }
    }
}

fn reference_predictions(tasks: &[Task]) -> Vec<Prediction> {
    tasks
        .iter()
        .map(|t| Prediction {
            id: t.id.clone(),
            prediction: t.reference.clone().unwrap_or_default(),
        })
        .collect()
}

#[test]
fn humaneval_canonical_solutions_pass_and_broken_ones_fail() {
    let Some(path) = data_file("humaneval.jsonl") else {
        return;
    };
    let Some(scorer) = code_scorer() else { return };
    let tasks = load_file(&path, DatasetFormat::Humaneval, None).unwrap();
    assert_eq!(tasks.len(), 164);
    let t = Instant::now();
    let report = scorer
        .score_all(&tasks, &reference_predictions(&tasks))
        .unwrap();
    let failed: Vec<_> = report
        .items
        .iter()
        .filter(|i| !i.correct)
        .map(|i| (&i.id, &i.outcome))
        .collect();
    assert!(failed.is_empty(), "canonical solutions failed: {failed:?}");
    assert_eq!(report.totals.correct, 164);
    eprintln!(
        "humaneval: 164 canonical solutions passed in {:.2}s",
        t.elapsed().as_secs_f64()
    );

    // Broken variants of every fourth task: the body returns None, or does not parse.
    let broken: Vec<(usize, String)> = (0..tasks.len())
        .step_by(4)
        .map(|i| {
            (
                i,
                if i % 8 == 0 {
                    "    return None\n".to_string()
                } else {
                    "    return (\n".to_string()
                },
            )
        })
        .collect();
    let results: Vec<_> = broken
        .par_iter()
        .map(|(i, body)| {
            (
                tasks[*i].id.clone(),
                body.clone(),
                scorer.score(&tasks[*i], body).unwrap(),
            )
        })
        .collect();
    for (id, body, item) in &results {
        assert!(!item.correct, "{id}: broken solution {body:?} passed");
        if body.contains('(') {
            assert!(
                matches!(&item.outcome, Some(ExecOutcome::Failed { stderr_tail, .. }) if stderr_tail.contains("SyntaxError")),
                "{id}: {:?}",
                item.outcome
            );
        }
    }
    eprintln!("humaneval: {} broken solutions failed", results.len());
}

/// The standard test split (task ids 11–510); all 974 tasks with
/// `FLOWRL_MBPP_ALL=1`.
#[test]
fn mbpp_reference_code_passes_its_tests() {
    let Some(path) = data_file("mbpp.jsonl") else {
        return;
    };
    let Some(scorer) = code_scorer() else { return };
    let all = load_file(&path, DatasetFormat::Mbpp, None).unwrap();
    assert_eq!(all.len(), 974);
    let everything = std::env::var("FLOWRL_MBPP_ALL").is_ok_and(|v| v == "1");
    let tasks: Vec<Task> = all
        .into_iter()
        .filter(|t| everything || t.id.parse::<u32>().is_ok_and(|id| (11..=510).contains(&id)))
        .collect();
    assert_eq!(tasks.len(), if everything { 974 } else { 500 });
    let t = Instant::now();
    let report = scorer
        .score_all(&tasks, &reference_predictions(&tasks))
        .unwrap();
    let elapsed = t.elapsed().as_secs_f64();
    let mut failed: Vec<&str> = report
        .items
        .iter()
        .filter(|i| !i.correct)
        .map(|i| i.id.as_str())
        .collect();
    failed.sort();
    // Every reference solution passes once the setup code runs after the
    // solution (see `flowrl_rewards::build_program`).
    let known_failures: [&str; 0] = [];
    assert_eq!(
        failed,
        known_failures,
        "unexpected MBPP results: {:?}",
        report
            .items
            .iter()
            .filter(|i| !i.correct)
            .map(|i| (&i.id, &i.outcome))
            .collect::<Vec<_>>()
    );
    eprintln!(
        "mbpp: {} / {} reference solutions passed in {elapsed:.2}s",
        report.totals.correct,
        tasks.len()
    );
}

#[test]
fn gsm8k_gold_answers_score_against_themselves_only() {
    let Some(path) = data_file("gsm8k_test.jsonl") else {
        return;
    };
    let tasks = load_file(&path, DatasetFormat::Gsm8k, None).unwrap();
    assert_eq!(tasks.len(), 1319);
    let scorer = Scorer::new(ScoreConfig::default());
    let solution = |t: &Task| {
        t.metadata["solution"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    let own: Vec<Prediction> = tasks
        .iter()
        .map(|t| Prediction {
            id: t.id.clone(),
            prediction: solution(t),
        })
        .collect();
    let report = scorer.score_all(&tasks, &own).unwrap();
    assert_eq!(
        report.totals.mean_score, 1.0,
        "gold solutions must score 1 against themselves"
    );
    let shifted: Vec<Prediction> = tasks
        .iter()
        .enumerate()
        .map(|(i, t)| Prediction {
            id: t.id.clone(),
            prediction: solution(&tasks[(i + 1) % tasks.len()]),
        })
        .collect();
    let report = scorer.score_all(&tasks, &shifted).unwrap();
    eprintln!(
        "gsm8k: shifted pairing scores {:.4}",
        report.totals.mean_score
    );
    assert!(
        report.totals.mean_score < 0.05,
        "shifted pairing scored {}",
        report.totals.mean_score
    );
}
