//! Whole episodes of both environments against a scripted executor.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use flowrl_data::{ScoreConfig, Scorer, Task, TaskFamily};
use flowrl_envs::canvas::env::CanvasConfig;
use flowrl_envs::think_action::env::ThinkActionConfig;
use flowrl_envs::{CanvasEnv, Env, EnvError, Observation, Services, ThinkActionEnv};
use flowrl_operators::{ExecutorError, FnExecutor, Registry, SideChannel};
use flowrl_plugin_abi::{ChatRequest, ChatResponse, Usage};

fn task() -> Task {
    serde_json::from_value(serde_json::json!({
        "id": "q1", "source": "test", "family": "qa",
        "question": "What is the capital of France?", "answers": ["Paris"]
    }))
    .unwrap()
}

/// Answers every request correctly (from the side channel's gold answer)
/// or wrongly, with every tag the operators parse; counts calls.
fn services(correct: bool, registry: Registry, calls: Arc<AtomicUsize>) -> Services {
    let exec = FnExecutor(
        move |req: &ChatRequest| -> Result<ChatResponse, ExecutorError> {
            calls.fetch_add(1, Ordering::SeqCst);
            let side =
                SideChannel::from_metadata(&req.metadata).expect("operators send a side channel");
            let gold = side
                .gold
                .as_ref()
                .and_then(|g| g["answers"][0].as_str())
                .unwrap_or("")
                .to_string();
            let ans = if correct { gold } else { "Lyon".to_string() };
            let verdict = if correct { "correct" } else { "incorrect" };
            Ok(ChatResponse {
                text: format!(
                    "<thought>t</thought><answer>{ans}</answer><analysis>ok</analysis><feedback>ok</feedback><verdict>{verdict}</verdict><choice>A</choice>"
                ),
                logprobs: None,
                usage: Usage::default(),
                finish_reason: "stop".into(),
            })
        },
    );
    Services {
        registry: Arc::new(registry),
        executor: Arc::new(exec),
        scorer: Arc::new(Scorer::new(ScoreConfig::default())),
    }
}

fn info(o: &Observation) -> &str {
    match o {
        Observation::Append(t) => t,
        other => panic!("expected appended text, got {other:?}"),
    }
}

#[test]
fn think_action_episode_with_a_correct_answer() {
    let calls = Arc::new(AtomicUsize::new(0));
    let mut env = ThinkActionEnv::new(
        ThinkActionConfig::default(),
        services(true, Registry::workflow_r1(), calls.clone()),
    );
    let p = env.reset(&task()).unwrap();
    assert!(p.system.unwrap().contains("<tool>Name: input</tool>"));
    assert!(p.user.contains("capital of France"));
    let s = env
        .step("<think>ask</think><tool>AnswerGenerate: $question</tool>")
        .unwrap();
    assert!(!s.done);
    let t = info(&s.observation);
    assert!(t.starts_with("\n<info>") && t.contains("Paris"), "{t}");
    let s = env
        .step("<think>review</think><tool>Review: $last</tool>")
        .unwrap();
    assert!(info(&s.observation).contains("correct"));
    let s = env
        .step("<think>done</think><answer>$last</answer>")
        .unwrap();
    assert!(s.done);
    assert_eq!(s.reward, Some(1.0));
    let sum = env.summary();
    assert_eq!(sum.operators, ["AnswerGenerate", "Review"]);
    assert_eq!(sum.answer.as_deref(), Some("Paris"));
    assert!(sum.correct && sum.well_formed);
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    assert!(matches!(
        env.step("<answer>x</answer>"),
        Err(EnvError::Finished)
    ));
}

#[test]
fn format_problems_are_observations_and_cost_the_format_reward() {
    let calls = Arc::new(AtomicUsize::new(0));
    let mut env = ThinkActionEnv::new(
        ThinkActionConfig::default(),
        services(false, Registry::workflow_r1(), calls),
    );
    env.reset(&task()).unwrap();
    let s = env.step("I think the answer is Paris").unwrap();
    assert!(info(&s.observation).contains("Format warning"));
    let s = env
        .step("<think>x</think><tool>Review the answer</tool>")
        .unwrap();
    assert!(info(&s.observation).contains("Format error"));
    let s = env
        .step("<think>x</think><tool>Oracle: tell me</tool>")
        .unwrap();
    assert!(info(&s.observation).contains("no operator `Oracle`"));
    let s = env.step("<think>x</think><answer>Paris</answer>").unwrap();
    // Correct answer (+1) but a broken format (−0.5).
    assert_eq!(s.reward, Some(0.5));
    assert_eq!(env.summary().invalid_turns, 3);
}

#[test]
fn call_and_turn_limits_end_the_episode_without_an_answer() {
    let calls = Arc::new(AtomicUsize::new(0));
    let cfg = ThinkActionConfig {
        max_calls: 2,
        ..Default::default()
    };
    let mut env = ThinkActionEnv::new(cfg, services(true, Registry::workflow_r1(), calls));
    env.reset(&task()).unwrap();
    for _ in 0..2 {
        assert!(
            !env.step("<think>a</think><tool>AnswerGenerate: $question</tool>")
                .unwrap()
                .done
        );
    }
    let s = env
        .step("<think>a</think><tool>AnswerGenerate: $question</tool>")
        .unwrap();
    assert!(s.done);
    // No answer (−1), and a response that does not end with one is malformed (−0.5).
    assert_eq!(s.reward, Some(-1.5));
    assert_eq!(env.summary().operator_calls, 2);

    let cfg = ThinkActionConfig {
        max_turns: 2,
        ..Default::default()
    };
    let mut env = ThinkActionEnv::new(cfg, services(true, Registry::workflow_r1(), Arc::default()));
    env.reset(&task()).unwrap();
    assert!(!env.step("<think>a</think>").unwrap().done);
    let s = env.step("<think>a</think>").unwrap();
    assert!(s.done);
    assert_eq!(s.reward, Some(-1.5));
}

#[test]
fn a_dead_executor_stops_the_episode_with_an_error() {
    let dead = FnExecutor(|_: &ChatRequest| -> Result<ChatResponse, ExecutorError> {
        Err(ExecutorError::Unavailable("connection refused".into()))
    });
    let services = Services {
        registry: Arc::new(Registry::workflow_r1()),
        executor: Arc::new(dead),
        scorer: Arc::new(Scorer::new(ScoreConfig::default())),
    };
    let mut env = ThinkActionEnv::new(ThinkActionConfig::default(), services);
    assert!(matches!(env.step("x"), Err(EnvError::NotStarted)));
    env.reset(&task()).unwrap();
    let e = env
        .step("<think>a</think><tool>AnswerGenerate: $question</tool>")
        .unwrap_err();
    assert!(
        matches!(e, EnvError::Executor(ExecutorError::Unavailable(_))),
        "{e}"
    );
}

fn prompt_text(o: &Observation) -> String {
    match o {
        Observation::NewContext(p) => p.user.clone(),
        other => panic!("expected a new prompt, got {other:?}"),
    }
}

#[test]
fn canvas_episode_builds_executes_and_is_rewarded() {
    let calls = Arc::new(AtomicUsize::new(0));
    let mut env = CanvasEnv::new(
        CanvasConfig::default(),
        services(true, Registry::flowsteer(), calls.clone()),
    );
    let p = env.reset(&task()).unwrap();
    assert!(p.user.contains("Canvas: (empty)"));

    let s = env
        .step("<think>start</think><action>add</action><operator>AnswerGenerate</operator>")
        .unwrap();
    let u = prompt_text(&s.observation);
    assert!(
        u.contains("Write the instruction for node_1 (AnswerGenerate)"),
        "{u}"
    );
    assert_eq!(
        calls.load(Ordering::SeqCst),
        0,
        "nothing runs before the prompt is set"
    );
    let s = env.step("Answer in one word.").unwrap();
    assert!(prompt_text(&s.observation).contains("status: Success"));
    assert_eq!(calls.load(Ordering::SeqCst), 1);

    // Finishing now is refused, with the reasons.
    let s = env.step("<action>finish</action>").unwrap();
    let u = prompt_text(&s.observation);
    assert!(
        u.contains("finish refused") && u.contains("checker") && u.contains("structure"),
        "{u}"
    );

    env.step("<action>add</action><structure>conditional</structure><condition>Review</condition><true>Revise</true><false>done</false>").unwrap();
    env.step("Check the answer.").unwrap();
    let before = calls.load(Ordering::SeqCst);
    env.step("Fix it if needed.").unwrap();
    // node_1 comes from the cache: only Review ran (it passes, so Revise does not).
    assert_eq!(calls.load(Ordering::SeqCst), before + 1);
    env.step("<action>add</action><operator>Verify</operator>")
        .unwrap();
    env.step("Verify it.").unwrap();
    env.step("<action>add</action><operator>Format</operator>")
        .unwrap();
    env.step("Keep it short.").unwrap();
    assert_eq!(
        env.workflow().unwrap().to_string(),
        "AnswerGenerate -> Review ? Revise : done -> Verify -> Format"
    );
    let s = env.step("<action>finish</action>").unwrap();
    assert!(s.done, "{:?}", s.info);
    // R_div = 1 (checker, Format, 5 operators, a structure): the answer reward is released.
    assert_eq!(s.reward, Some(1.0));
    assert_eq!(s.info["released"], true);
    let sum = env.summary();
    assert_eq!(sum.answer.as_deref(), Some("Paris"));
    assert_eq!(sum.turns, 11);
}

#[test]
fn canvas_invalid_actions_fail_and_the_round_cap_finishes() {
    let cfg = CanvasConfig {
        max_rounds: 3,
        ..Default::default()
    };
    let mut env = CanvasEnv::new(cfg, services(true, Registry::flowsteer(), Arc::default()));
    env.reset(&task()).unwrap();
    let s = env
        .step("<action>add</action><operator>Oracle</operator>")
        .unwrap();
    assert!(prompt_text(&s.observation).contains("status: Failed"));
    let s = env
        .step("<action>delete</action><target>node_9</target>")
        .unwrap();
    assert!(prompt_text(&s.observation).contains("there is no node_9"));
    let s = env
        .step("<action>add</action><operator>AnswerGenerate</operator>")
        .unwrap();
    assert!(s.done);
    // Nothing complete was built: R_div = 0 and the answer is not released.
    assert_eq!(s.reward, Some(-1.0));
    assert_eq!(env.summary().invalid_turns, 2);
}

#[test]
fn canvas_parallel_branches_and_wrong_answers() {
    let mut env = CanvasEnv::new(
        CanvasConfig::default(),
        services(false, Registry::flowsteer(), Arc::default()),
    );
    env.reset(&task()).unwrap();
    env.step("<action>add</action><structure>parallel</structure><operators>AnswerGenerate,AnswerGenerate</operators>").unwrap();
    env.step("One.").unwrap();
    let s = env.step("Two.").unwrap();
    assert!(prompt_text(&s.observation).contains("Lyon"));
    for (a, p) in [
        ("ScEnsemble", "Pick."),
        ("Review", "Check."),
        ("Format", "Short."),
    ] {
        env.step(&format!("<action>add</action><operator>{a}</operator>"))
            .unwrap();
        env.step(p).unwrap();
    }
    let s = env.step("<action>finish</action>").unwrap();
    assert!(s.done);
    assert_eq!(s.info["released"], true);
    assert_eq!(s.reward, Some(0.0));
    assert_eq!(env.summary().operators.len(), 5);
    let _ = TaskFamily::Qa;
}

#[test]
fn environments_are_served_through_the_plugin_interface() {
    use flowrl_envs::plugin::EnvPlugin;
    use flowrl_plugin_abi::EnvironmentImpl;
    let env = ThinkActionEnv::new(
        ThinkActionConfig::default(),
        services(true, Registry::workflow_r1(), Arc::default()),
    );
    let mut p = EnvPlugin::new("think-action", env);
    let d: serde_json::Value = serde_json::from_str(&p.describe()).unwrap();
    assert_eq!(d["stop"], serde_json::json!(["</tool>", "</answer>"]));
    assert!(d["task_schema"].is_object());
    let task = serde_json::to_string(&task()).unwrap();
    let obs = p.reset(&task).unwrap();
    assert!(obs.contains("capital of France"));
    let s = p
        .step("<think>a</think><tool>AnswerGenerate: $question</tool>")
        .unwrap();
    assert!(!s.done && s.observation.contains("<info>"));
    let s = p.step("<think>b</think><answer>$last</answer>").unwrap();
    assert!(s.done);
    assert_eq!(s.reward, 1.0);
    // A malformed task is an input error, not a panic.
    assert!(p.reset("{\"id\": 3}").is_err());
}

#[test]
fn compact_prompts_end_with_the_family_tag() {
    use flowrl_envs::think_action::env::PromptStyle;
    let calls = Arc::new(AtomicUsize::new(0));
    let svc = services(true, Registry::flowsteer(), calls);
    let mut ta = ThinkActionEnv::new(
        ThinkActionConfig {
            prompt_style: PromptStyle::Compact,
            ..ThinkActionConfig::default()
        },
        svc.clone(),
    );
    let p = ta.reset(&task()).unwrap();
    assert_eq!(p.system, None);
    assert_eq!(p.user, "What is the capital of France?\n[qa]");
    let mut canvas = CanvasEnv::new(
        CanvasConfig {
            prompt_style: PromptStyle::Compact,
            ..CanvasConfig::default()
        },
        svc,
    );
    let p = canvas.reset(&task()).unwrap();
    assert!(
        p.user.starts_with("What is the capital of France?\n"),
        "{}",
        p.user
    );
    assert!(p.user.ends_with("\n[qa]"), "{}", p.user);
}
