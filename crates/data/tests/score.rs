//! Scoring predictions: QA, math, missing and unknown ids.

use std::path::Path;

use flowrl_data::{
    DatasetFormat, Prediction, QaMetric, ScoreConfig, Scorer, load_file, load_predictions,
};

fn fixture(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn pred(id: &str, p: &str) -> Prediction {
    Prediction {
        id: id.into(),
        prediction: p.into(),
    }
}

#[test]
fn qa_scores_missing_and_unknown() {
    let tasks = load_file(&fixture("qa_nq.jsonl"), DatasetFormat::Qa, Some("nq")).unwrap();
    let preds = vec![
        pred("test_0", "melville"),
        pred("test_1", "It is Canberra, the capital"),
        pred("nope", "x"),
        pred("test_0", "ignored second prediction"),
    ];
    let em = Scorer::new(ScoreConfig::default())
        .score_all(&tasks, &preds)
        .unwrap();
    assert_eq!(em.totals.tasks, 3);
    assert_eq!(em.totals.correct, 1);
    assert_eq!(em.totals.missing, ["nq-4"]);
    assert_eq!(em.totals.unknown, ["nope"]);
    assert_eq!(em.totals.duplicate, ["test_0"]);
    assert!(em.items[2].missing);
    assert_eq!(em.items[1].score, 0.0);
    assert_eq!(em.items[1].f1, Some(0.9), "substring rule");
    let f1 = Scorer::new(ScoreConfig {
        qa_metric: QaMetric::F1,
        ..Default::default()
    })
    .score_all(&tasks, &preds)
    .unwrap();
    assert!((f1.totals.mean_score - (1.0 + 0.9) / 3.0).abs() < 1e-12);
}

#[test]
fn math_scores_with_extraction() {
    let tasks = load_file(&fixture("math.jsonl"), DatasetFormat::Math, None).unwrap();
    let scorer = Scorer::new(ScoreConfig::default());
    assert!(
        scorer
            .score(&tasks[0], "so we get \\boxed{1.0}")
            .unwrap()
            .correct
    );
    assert!(
        scorer
            .score(&tasks[1], "\\boxed{\\sqrt{50}}")
            .unwrap()
            .correct
    );
    assert!(!scorer.score(&tasks[1], "\\boxed{7}").unwrap().correct);
    assert!(scorer.score(&tasks[2], "The result is 5").unwrap().correct);
    let q = load_file(&fixture("mathqa.jsonl"), DatasetFormat::Mathqa, None).unwrap();
    assert!(scorer.score(&q[0], "speed is 40 km/hr").unwrap().correct);
    assert!(scorer.score(&q[0], "b").unwrap().correct);
    assert!(!scorer.score(&q[0], "45").unwrap().correct);
}

#[test]
fn predictions_file() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("p.jsonl");
    std::fs::write(
        &p,
        "{\"id\": 3, \"prediction\": \"x\"}\n\n{\"id\": \"a\", \"prediction\": \"y\"}\n",
    )
    .unwrap();
    let preds = load_predictions(&p).unwrap();
    assert_eq!(preds, [pred("3", "x"), pred("a", "y")]);
    std::fs::write(&p, "{\"id\": \"a\"}\n").unwrap();
    assert_eq!(
        load_predictions(&p).unwrap_err().to_string(),
        format!("{}:1: field `prediction`: missing", p.display())
    );
}
