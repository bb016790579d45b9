//! Worked examples of the batch layout, validation errors and JSONL recovery.

use flowrl_trajectory::export::to_trainer_records;
use flowrl_trajectory::schema::trajectory_schema_json;
use flowrl_trajectory::{
    BatchError, JsonlReader, JsonlReport, ReadMode, RecordErrorKind, Role, Span, Trajectory,
    TrajectoryError, TrajectoryStats, flatten_packed,
};

fn think_action() -> Trajectory {
    Trajectory {
        id: "t0".into(),
        task_id: "q1".into(),
        data_source: "nq".into(),
        group_key: None,
        spans: vec![
            Span::prompt("Q?", vec![1, 2, 3]),
            Span::policy("<tool>", vec![10, 11], Some(vec![-0.5, -0.25])),
            Span::environment("<info>", vec![20]),
            Span::policy("<answer>", vec![12, 13, 14], Some(vec![-1.0, -0.125, -2.0])),
        ],
        reward: 1.0,
        metadata: Default::default(),
    }
}

fn canvas() -> Trajectory {
    Trajectory {
        id: "c0".into(),
        task_id: "m1".into(),
        data_source: "gsm8k".into(),
        group_key: Some("gsm8k".into()),
        spans: vec![
            Span::prompt("state 0", vec![5, 6]),
            Span::policy("add", vec![30], None),
            Span::prompt("state 1", vec![7]),
            Span::policy("finish", vec![31, 32], None),
        ],
        reward: -0.4,
        metadata: Default::default(),
    }
}

#[test]
fn think_action_layout_is_next_token_shifted() {
    let b = flatten_packed(&[think_action()]).unwrap();
    // Tokens: 1 2 3 | 10 11 | 20 | 12 13 14 → 8 positions.
    assert_eq!(b.input_ids, vec![1, 2, 3, 10, 11, 20, 12, 13]);
    assert_eq!(b.target_ids, vec![2, 3, 10, 11, 20, 12, 13, 14]);
    assert_eq!(b.loss_mask, vec![0, 0, 1, 1, 0, 1, 1, 1]);
    assert_eq!(b.subseq, vec![-1, -1, 0, 0, -1, 1, 1, 1]);
    assert_eq!(b.position_ids, (0..8).collect::<Vec<u32>>());
    assert_eq!(
        b.sampler_logprobs.as_deref(),
        Some(&[0.0, 0.0, -0.5, -0.25, 0.0, -1.0, -0.125, -2.0][..])
    );
    assert_eq!(b.offsets, vec![0, 8]);
    assert_eq!(b.subseq_len, vec![2, 3]);
    assert_eq!(b.subseq_turn, vec![0, 1]);
}

#[test]
fn canvas_trajectory_has_one_row_per_prompt() {
    let b = flatten_packed(&[think_action(), canvas()]).unwrap();
    assert_eq!(b.num_rows(), 3);
    assert_eq!(b.row_traj, vec![0, 1, 1]);
    assert_eq!(b.offsets, vec![0, 8, 10, 12]);
    // Canvas rows: 5 6 30 → (5→6, 6→30); 7 31 32 → (7→31, 31→32).
    assert_eq!(&b.target_ids[8..], &[6, 30, 31, 32]);
    assert_eq!(&b.subseq[8..], &[-1, 2, 3, 3]);
    assert_eq!(&b.position_ids[8..], &[0, 1, 0, 1]);
    assert_eq!(b.traj_subseq, vec![0, 2, 4]);
    // One trajectory lacks sampler log-probs, so the batch has none.
    assert!(b.sampler_logprobs.is_none());
    let per = b.sum_per_subseq(&vec![1.0; b.len()]).unwrap();
    assert_eq!(per, vec![2.0, 3.0, 1.0, 2.0]);
    assert_eq!(
        b.unflatten(&[0u8; 3]),
        Err(BatchError::LengthMismatch {
            expected: 12,
            got: 3
        })
    );
}

#[test]
fn padded_layout_of_two_rows() {
    let b = flatten_packed(&[canvas()]).unwrap();
    let p = b.to_padded(99).unwrap();
    assert_eq!((p.rows, p.width), (2, 2));
    assert_eq!(p.input_ids, vec![5, 6, 7, 31]);
}

#[test]
fn validation_errors_are_typed() {
    let mut t = think_action();
    t.spans[1].logprobs = Some(vec![-0.5]);
    assert_eq!(
        t.validate(),
        Err(TrajectoryError::LogprobLengthMismatch {
            span: 1,
            tokens: 2,
            logprobs: 1
        })
    );

    let mut t = think_action();
    t.spans[3].tokens.clear();
    t.spans[3].logprobs = None;
    assert_eq!(
        t.validate(),
        Err(TrajectoryError::EmptyPolicySpan { span: 3 })
    );

    let mut t = think_action();
    t.reward = f64::NAN;
    assert!(matches!(t.validate(), Err(TrajectoryError::NonFiniteReward(r)) if r.is_nan()));

    let mut t = think_action();
    t.spans[1].logprobs = Some(vec![0.5, -1.0]);
    assert_eq!(
        t.validate(),
        Err(TrajectoryError::InvalidLogprob {
            span: 1,
            index: 0,
            value: 0.5
        })
    );

    let mut t = think_action();
    t.spans[2].logprobs = Some(vec![-1.0]);
    assert_eq!(
        t.validate(),
        Err(TrajectoryError::LogprobsOnNonPolicySpan {
            span: 2,
            role: Role::Environment
        })
    );

    let mut t = think_action();
    t.spans.remove(0);
    assert_eq!(
        t.validate(),
        Err(TrajectoryError::MissingPrompt { role: Role::Policy })
    );

    let mut t = canvas();
    t.spans[2].tokens.clear();
    assert_eq!(
        t.validate(),
        Err(TrajectoryError::PolicyWithoutContext { span: 3 })
    );

    let mut t = canvas();
    t.id.clear();
    assert_eq!(t.validate(), Err(TrajectoryError::EmptyId));

    assert_eq!(
        "tool".parse::<Role>(),
        Err(TrajectoryError::UnknownRole("tool".into()))
    );

    let err = flatten_packed(&[
        think_action(),
        Trajectory {
            spans: vec![],
            ..canvas()
        },
    ])
    .unwrap_err();
    assert_eq!(
        err,
        BatchError::Invalid {
            index: 1,
            id: "c0".into(),
            source: TrajectoryError::NoSpans
        }
    );
    assert_eq!(flatten_packed(&[]), Err(BatchError::Empty));
}

/// Three good records around two bad ones, and a truncated last line.
fn corrupted_jsonl() -> String {
    let good = |id: &str| {
        serde_json::to_string(&Trajectory {
            id: id.into(),
            ..think_action()
        })
        .unwrap()
    };
    let unknown_role = good("x").replace("\"environment\"", "\"tool\"");
    let truncated = &good("z")[..40];
    format!(
        "{}\n{}\n\n{}\n{{not json\n{}\n{}",
        good("a"),
        good("b"),
        unknown_role,
        good("c"),
        truncated
    )
}

#[test]
fn jsonl_reports_bad_lines_and_keeps_the_good_ones() {
    let text = corrupted_jsonl();
    let got: Vec<_> = JsonlReader::new(text.as_bytes()).collect();
    assert_eq!(got.len(), 6);
    let report = JsonlReport::read(text.as_bytes(), ReadMode::Lenient).unwrap();
    let ids: Vec<&str> = report.trajectories.iter().map(|t| t.id.as_str()).collect();
    assert_eq!(ids, ["a", "b", "c"]);
    let lines: Vec<usize> = report.errors.iter().map(|e| e.line).collect();
    assert_eq!(lines, [4, 5, 7]);
    assert!(
        report.errors[0]
            .to_string()
            .contains("unknown variant `tool`"),
        "{}",
        report.errors[0]
    );
    assert!(matches!(report.errors[2].kind, RecordErrorKind::Json(ref e) if e.is_eof()));
    assert_eq!(report.lines, 7);

    let strict = JsonlReport::read(text.as_bytes(), ReadMode::Strict).unwrap_err();
    assert_eq!(strict.line, 4);
}

#[test]
fn invalid_records_are_reported_with_their_reason() {
    let mut bad = think_action();
    bad.spans[1].logprobs = Some(vec![-1.0]);
    let text = format!(
        "{}\n{}\n",
        serde_json::to_string(&bad).unwrap(),
        serde_json::to_string(&canvas()).unwrap()
    );
    let report = JsonlReport::read(text.as_bytes(), ReadMode::Lenient).unwrap();
    assert_eq!(report.trajectories.len(), 1);
    assert_eq!(report.errors[0].line, 1);
    assert!(matches!(
        report.errors[0].kind,
        RecordErrorKind::Invalid(TrajectoryError::LogprobLengthMismatch { .. })
    ));
}

#[test]
fn trainer_export_splits_windows_and_masks_environment_tokens() {
    let recs = to_trainer_records(&think_action()).unwrap();
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0].prompt_ids, vec![1, 2, 3]);
    assert_eq!(recs[0].response_ids, vec![10, 11, 20, 12, 13, 14]);
    assert_eq!(recs[0].response_mask, vec![1, 1, 0, 1, 1, 1]);
    assert_eq!(recs[0].response, "<tool><info><answer>");
    assert_eq!(recs[0].uid, "q1");
    let recs = to_trainer_records(&canvas()).unwrap();
    assert_eq!(recs.len(), 2);
    assert_eq!(recs[1].turn, 1);
    assert_eq!(recs[1].uid, "gsm8k");
    assert_eq!(recs[1].reward, -0.4);
}

#[test]
fn stats_summarise_turns_tokens_and_rewards() {
    let s = TrajectoryStats::of(&[think_action(), canvas()]);
    assert_eq!(s.trajectories, 2);
    assert_eq!(s.groups, 2);
    assert_eq!(s.turns.mean, 2.0);
    assert_eq!(s.policy_tokens, 8);
    assert_eq!(s.prompt_tokens, 6);
    assert_eq!(s.environment_tokens, 1);
    assert!((s.reward.mean - 0.3).abs() < 1e-12);
    assert_eq!(s.reward.min, -0.4);
}

#[test]
fn committed_schema_matches_the_code() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/schemas/trajectory.schema.json"
    );
    let committed = std::fs::read_to_string(path).unwrap_or_default();
    let current = trajectory_schema_json();
    if std::env::var_os("FLOWRL_BLESS").is_some() {
        std::fs::write(path, &current).unwrap();
        return;
    }
    assert!(
        committed == current,
        "docs/schemas/trajectory.schema.json is out of date; regenerate it with \
         `FLOWRL_BLESS=1 cargo test -p flowrl-trajectory committed_schema` or `flowrl schema trajectory`"
    );
    // The schema lists every role.
    for role in ["prompt", "policy", "environment"] {
        assert!(current.contains(&format!("\"{role}\"")));
    }
}
