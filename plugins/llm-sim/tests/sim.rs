//! The simulator: determinism, call-order independence, independent draws,
//! malformed output that exercises retries, code that really runs.

use flowrl_llm_sim::{SimBackend, SimConfig, perturb_code};
use flowrl_operators::{CallError, OperatorError, OperatorInput, Registry, TaskContext};
use flowrl_plugin_abi::{ChatRequest, LlmBackendImpl};

fn math_task(i: usize) -> TaskContext {
    let mut c = TaskContext::new(format!("m{i}"), "math", format!("What is {i} plus {i}?"));
    c.gold = Some(serde_json::json!({ "answers": [(2 * i).to_string()] }));
    c
}

fn sim(seed: u64) -> SimBackend {
    SimBackend::new(SimConfig {
        seed,
        ..SimConfig::default()
    })
    .unwrap()
}

fn answers(backend: &SimBackend, op: &str, n: usize) -> Vec<Option<String>> {
    let r = Registry::workflow_r1();
    (0..n)
        .map(|i| {
            r.call(op, &math_task(i), &OperatorInput::default(), backend)
                .ok()
                .and_then(|o| o.answer)
        })
        .collect()
}

#[test]
fn same_seed_same_answers_other_seed_other_answers() {
    let a = answers(&sim(1), "AnswerGenerate", 60);
    assert_eq!(a, answers(&sim(1), "AnswerGenerate", 60));
    assert_ne!(a, answers(&sim(2), "AnswerGenerate", 60));
    let right = a
        .iter()
        .enumerate()
        .filter(|(i, x)| x.as_deref() == Some((2 * i).to_string().as_str()))
        .count();
    assert!(
        (15..=45).contains(&right),
        "{right} of 60 right with skill 0.5"
    );
}

#[test]
fn replies_do_not_depend_on_call_order() {
    let s = sim(5);
    let r = Registry::workflow_r1();
    let forward: Vec<String> = (0..20)
        .map(|i| {
            r.call(
                "AnswerGenerate",
                &math_task(i),
                &OperatorInput::default(),
                &s,
            )
            .unwrap()
            .text
        })
        .collect();
    let mut backward: Vec<String> = (0..20)
        .rev()
        .map(|i| {
            r.call(
                "AnswerGenerate",
                &math_task(i),
                &OperatorInput::default(),
                &s,
            )
            .unwrap()
            .text
        })
        .collect();
    backward.reverse();
    assert_eq!(forward, backward);
}

#[test]
fn multi_answers_and_instructions_draw_independently() {
    let s = sim(0);
    let r = Registry::workflow_r1();
    let mut mixed = 0;
    let mut differs = 0;
    for i in 0..40 {
        let out = r
            .call(
                "MultiAnswerGenerate",
                &math_task(i),
                &OperatorInput::default(),
                &s,
            )
            .unwrap();
        if out.candidates.iter().any(|c| c != &out.candidates[0]) {
            mixed += 1;
        }
        let a = r.call(
            "Custom",
            &math_task(i),
            &OperatorInput {
                instruction: Some("Be careful.".into()),
                ..Default::default()
            },
            &s,
        );
        let b = r.call(
            "Custom",
            &math_task(i),
            &OperatorInput {
                instruction: Some("Double-check.".into()),
                ..Default::default()
            },
            &s,
        );
        if a.unwrap().answer != b.unwrap().answer {
            differs += 1;
        }
    }
    assert!(mixed > 10, "{mixed} of 40 multi-answers mixed");
    assert!(differs > 5, "{differs} of 40 instruction pairs differ");
}

#[test]
fn malformed_replies_exercise_retries() {
    let always = SimBackend::new(SimConfig {
        malformed_rate: 1.0,
        truncate_rate: 0.0,
        ..SimConfig::default()
    })
    .unwrap();
    let err = Registry::workflow_r1()
        .call(
            "AnswerGenerate",
            &math_task(3),
            &OperatorInput::default(),
            &always,
        )
        .unwrap_err();
    assert!(
        matches!(
            err,
            CallError::Operator(OperatorError::Unparseable { attempts: 4, .. })
        ),
        "{err:?}"
    );

    let often = SimBackend::new(SimConfig {
        malformed_rate: 0.3,
        truncate_rate: 0.1,
        ..SimConfig::default()
    })
    .unwrap();
    let r = Registry::workflow_r1();
    let results: Vec<Result<u32, CallError>> = (0..50)
        .map(|i| {
            r.call(
                "AnswerGenerate",
                &math_task(i),
                &OperatorInput::default(),
                &often,
            )
            .map(|o| o.executor_calls)
        })
        .collect();
    let calls: Vec<u32> = results
        .iter()
        .filter_map(|r| r.as_ref().ok().copied())
        .collect();
    // With 40% bad replies, 0.4^4 ≈ 2.6% of calls stay unparseable after three retries.
    assert!(calls.len() >= 45, "{} of 50 calls parsed", calls.len());
    assert!(calls.iter().any(|&c| c > 1), "some calls were retried");
    assert!(
        calls.iter().filter(|&&c| c == 1).count() > 20,
        "most calls succeed at once"
    );
}

#[test]
fn requests_without_side_channel_get_an_explanation() {
    let resp = LlmBackendImpl::chat(&SimBackend::default(), &ChatRequest::user("hello")).unwrap();
    assert!(resp.text.contains("simulated executor"));
    assert_eq!(resp.finish_reason, "stop");
}

#[test]
fn config_is_checked_and_has_a_schema() {
    let mut bad = SimConfig::default();
    bad.skills.get_mut("qa").unwrap().answer = 1.5;
    assert!(
        SimBackend::new(bad)
            .unwrap_err()
            .contains("skills.qa.answer")
    );
    assert!(flowrl_llm_sim::config_schema().contains("review_catch"));
    let round: SimConfig =
        serde_json::from_str(&serde_json::to_string(&SimConfig::default()).unwrap()).unwrap();
    assert_eq!(round, SimConfig::default());
}

#[test]
fn perturbed_code_runs_and_fails_the_tests() {
    let Ok(sandbox) = flowrl_rewards::Sandbox::new(flowrl_rewards::SandboxConfig::default()) else {
        eprintln!("skipped: bubblewrap is not available");
        return;
    };
    let reference = "def count_a(s):\n    return s.count('a')\n";
    let tests = flowrl_rewards::CodeTests {
        asserts: vec!["assert count_a('abca') == 2".into()],
        ..Default::default()
    };
    assert_eq!(
        flowrl_rewards::code_reward(&sandbox, reference, &tests)
            .unwrap()
            .reward,
        1
    );
    let wrong = perturb_code(reference);
    assert_ne!(wrong, reference);
    let r = flowrl_rewards::code_reward(&sandbox, &wrong, &tests).unwrap();
    assert_eq!(r.reward, 0);
    assert!(matches!(
        r.result.outcome,
        flowrl_rewards::ExecOutcome::Failed { .. }
    ));
    assert!(perturb_code("def f(x):\n    pass\n").contains("def f_draft("));
}

/// Whether each of `MultiAnswerGenerate`'s three candidates is right, on
/// `n` math tasks.
fn candidates_right(backend: &SimBackend, n: usize) -> Vec<Vec<bool>> {
    let r = Registry::workflow_r1();
    (0..n)
        .map(|i| {
            let gold = (2 * i).to_string();
            r.call(
                "MultiAnswerGenerate",
                &math_task(i),
                &OperatorInput::default(),
                backend,
            )
            .unwrap()
            .candidates
            .iter()
            .map(|c| *c == gold)
            .collect()
        })
        .collect()
}

#[test]
fn task_correlation_makes_attempts_agree_and_keeps_their_skill() {
    let n = 400;
    let backend = |c: f64| {
        SimBackend::new(SimConfig {
            seed: 3,
            malformed_rate: 0.0,
            truncate_rate: 0.0,
            task_correlation: c,
            ..SimConfig::default()
        })
        .unwrap()
    };
    let stats = |v: &[Vec<bool>]| {
        let right = v.iter().flatten().filter(|r| **r).count() as f64 / (3 * v.len()) as f64;
        let mixed =
            v.iter().filter(|c| c.iter().any(|r| *r != c[0])).count() as f64 / v.len() as f64;
        (right, mixed)
    };
    // Math answer skill 0.5: independent attempts disagree on 75% of tasks;
    // with correlation c all three read the task's difficulty with
    // probability c³, so they disagree on at most 75% · (1 − c³).
    for (c, max_mixed) in [(0.0, 0.85), (0.8, 0.75 * (1.0 - 0.512) + 0.07), (1.0, 0.0)] {
        let (right, mixed) = stats(&candidates_right(&backend(c), n));
        assert!(
            (right - 0.5).abs() < 0.07,
            "correlation {c}: {right:.3} right, skill 0.5"
        );
        assert!(
            mixed <= max_mixed,
            "correlation {c}: attempts disagree on {mixed:.3} of tasks"
        );
        if c == 0.0 {
            assert!(
                mixed > 0.65,
                "independent attempts disagree on only {mixed:.3}"
            );
        }
    }
    let bad = SimBackend::new(SimConfig {
        task_correlation: 1.5,
        ..SimConfig::default()
    });
    assert!(bad.is_err());
}
