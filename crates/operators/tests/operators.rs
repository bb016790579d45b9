//! Per-operator tests with a scripted executor: argument parsing, output
//! formatting, explanatory errors for malformed arguments, and retries.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use flowrl_operators::{
    CallError, ExecutorError, FnExecutor, OperatorError, OperatorInput, OperatorRole,
    OperatorsConfig, Registry, SideChannel, TaskContext,
};
use flowrl_plugin_abi::{ChatRequest, ChatResponse};

/// Replies in order; records every request.
#[derive(Clone, Default)]
struct Script {
    replies: Arc<Mutex<VecDeque<(String, String)>>>,
    seen: Arc<Mutex<Vec<ChatRequest>>>,
}

impl Script {
    fn new(replies: &[&str]) -> Self {
        let s = Self::default();
        for r in replies {
            s.push(r, "stop");
        }
        s
    }

    fn push(&self, text: &str, finish: &str) {
        self.replies
            .lock()
            .unwrap()
            .push_back((text.to_string(), finish.to_string()));
    }

    fn exec(
        &self,
    ) -> FnExecutor<
        impl Fn(&ChatRequest) -> Result<ChatResponse, ExecutorError> + Send + Sync + use<>,
    > {
        let s = self.clone();
        FnExecutor(move |req: &ChatRequest| {
            s.seen.lock().unwrap().push(req.clone());
            let (text, finish_reason) = s
                .replies
                .lock()
                .unwrap()
                .pop_front()
                .ok_or_else(|| ExecutorError::Failed("script exhausted".into()))?;
            Ok(ChatResponse {
                text,
                logprobs: None,
                usage: Default::default(),
                finish_reason,
            })
        })
    }

    fn requests(&self) -> Vec<ChatRequest> {
        self.seen.lock().unwrap().clone()
    }
}

fn qa() -> TaskContext {
    let mut c = TaskContext::new("q1", "qa", "Who wrote Hamlet?");
    c.gold = Some(serde_json::json!({"answers": ["William Shakespeare"]}));
    c
}

fn math() -> TaskContext {
    TaskContext::new("m1", "math", "What is 6 times 7?")
}

fn all() -> Registry {
    let cfg = OperatorsConfig {
        search_corpus: Some(
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/corpus.jsonl"),
        ),
        ..OperatorsConfig::default()
    };
    Registry::all_with(&cfg).unwrap()
}

fn argument(e: CallError) -> String {
    match e {
        CallError::Argument(s) => s,
        other => panic!("expected an argument error, got {other:?}"),
    }
}

#[test]
fn sets_have_the_documented_operators_and_roles() {
    assert_eq!(
        Registry::workflow_r1().names(),
        flowrl_operators::WORKFLOW_R1_OPERATORS
    );
    assert_eq!(
        Registry::flowsteer().names(),
        flowrl_operators::FLOWSTEER_OPERATORS
    );
    let r = Registry::flowsteer();
    assert_eq!(r.get("test").unwrap().role(), OperatorRole::Checker);
    assert_eq!(r.get("Programmer").unwrap().role(), OperatorRole::Solver);
    assert_eq!(r.get("Format").unwrap().role(), OperatorRole::Formatter);
    assert!(r.describe().contains("- Verify: "));
}

#[test]
fn answer_generate_formats_and_sends_the_side_channel() {
    let s = Script::new(&["<thought>Known fact.</thought>\n<answer>William Shakespeare</answer>"]);
    let out = all()
        .call_text("AnswerGenerate", "$question", &qa(), None, &s.exec())
        .unwrap();
    assert_eq!(
        out.text,
        "Thought: Known fact.\nAnswer: William Shakespeare"
    );
    assert_eq!(out.answer.as_deref(), Some("William Shakespeare"));
    assert_eq!(out.executor_calls, 1);
    let req = &s.requests()[0];
    assert_eq!(req.sampling.temperature, 0.0);
    assert_eq!(req.max_tokens, 1024);
    assert!(req.messages[1].content.contains("Who wrote Hamlet?"));
    let side = SideChannel::from_metadata(&req.metadata).unwrap();
    assert_eq!(side.operator, "AnswerGenerate");
    assert_eq!(side.family, "qa");
    assert_eq!(side.gold, qa().gold);
    assert_eq!(side.attempt, 0);
}

#[test]
fn missing_tags_trigger_a_retry_with_a_hint() {
    let s = Script::new(&[
        "The answer is William Shakespeare.",
        "<answer>William Shakespeare</answer>",
    ]);
    let out = all()
        .call_text("AnswerGenerate", "", &qa(), None, &s.exec())
        .unwrap();
    assert_eq!(out.answer.as_deref(), Some("William Shakespeare"));
    assert_eq!(out.executor_calls, 2);
    let reqs = s.requests();
    let retry = &reqs[1];
    assert_eq!(retry.messages.len(), 4);
    assert_eq!(retry.messages[2].role, "assistant");
    assert!(
        retry.messages[3].content.contains("<answer>"),
        "{}",
        retry.messages[3].content
    );
    assert_eq!(
        SideChannel::from_metadata(&retry.metadata).unwrap().attempt,
        1
    );
}

#[test]
fn truncated_replies_get_a_shorter_answer_hint() {
    let s = Script::default();
    s.push("<thought>a very long", "length");
    s.push("<thought>ok</thought><answer>42</answer>", "stop");
    let out = all()
        .call_text("AnswerGenerate", "", &math(), None, &s.exec())
        .unwrap();
    assert_eq!(out.answer.as_deref(), Some("42"));
    let hint = &s.requests()[1].messages[3].content;
    assert!(hint.contains("cut off"), "{hint}");
}

#[test]
fn unparseable_after_three_retries_is_an_error() {
    let s = Script::new(&["no tags", "still none", "<answer>open", "nothing"]);
    let err = all()
        .call_text("AnswerGenerate", "", &math(), None, &s.exec())
        .unwrap_err();
    match err {
        CallError::Operator(OperatorError::Unparseable {
            attempts, reason, ..
        }) => {
            assert_eq!(attempts, 4);
            assert!(reason.contains("<answer>"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(s.requests().len(), 4);
}

#[test]
fn executor_failures_are_operator_errors() {
    let s = Script::default();
    let err = all()
        .call_text("AnswerGenerate", "", &math(), None, &s.exec())
        .unwrap_err();
    assert!(
        matches!(err, CallError::Operator(OperatorError::Executor { .. })),
        "{err:?}"
    );
}

#[test]
fn malformed_arguments_explain_themselves() {
    let r = all();
    let s = Script::default();
    let e = argument(
        r.call_text("Frobnicate", "x", &qa(), None, &s.exec())
            .unwrap_err(),
    );
    assert!(
        e.contains("no operator `Frobnicate`") && e.contains("AnswerGenerate"),
        "{e}"
    );
    let e = argument(
        r.call_text("Review", "$last", &qa(), None, &s.exec())
            .unwrap_err(),
    );
    assert!(e.contains("$last"), "{e}");
    let e = argument(
        r.call_text("Review", "", &qa(), None, &s.exec())
            .unwrap_err(),
    );
    assert!(e.contains("needs a solution"), "{e}");
    let e = argument(
        r.call_text("Revise", "<solution>x", &qa(), Some("y"), &s.exec())
            .unwrap_err(),
    );
    assert!(e.contains("never closed"), "{e}");
    let e = argument(
        r.call_text("Custom", "", &qa(), None, &s.exec())
            .unwrap_err(),
    );
    assert!(e.contains("instruction"), "{e}");
    let e = argument(
        r.call_text(
            "ScEnsemble",
            "<solution>only one</solution>",
            &qa(),
            None,
            &s.exec(),
        )
        .unwrap_err(),
    );
    assert!(e.contains("at least 2"), "{e}");
    let e = argument(
        r.call("ScEnsemble", &qa(), &OperatorInput::default(), &s.exec())
            .unwrap_err(),
    );
    assert!(e.contains("at least two"), "{e}");
    assert!(
        s.requests().is_empty(),
        "no executor call for a bad argument"
    );
}

#[test]
fn review_then_revise_through_last() {
    let r = all();
    let s = Script::new(&[
        "<review>Marlowe did not write it.</review><verdict>incorrect</verdict>",
        "<thought>Fixed the author.</thought><answer>William Shakespeare</answer>",
    ]);
    let review = r
        .call_text(
            "Review",
            "$last",
            &qa(),
            Some("Thought: guess\nAnswer: Marlowe"),
            &s.exec(),
        )
        .unwrap();
    assert_eq!(review.verdict, Some(false));
    assert!(
        review
            .text
            .starts_with("Verdict: incorrect\nFeedback: Marlowe did not write it."),
        "{}",
        review.text
    );
    assert!(
        review
            .text
            .ends_with("Checked solution: Thought: guess\nAnswer: Marlowe")
    );

    let input = r
        .get("Revise")
        .unwrap()
        .parse_text("$last", &qa(), Some(&review.text))
        .unwrap();
    assert_eq!(input.inputs, vec!["Thought: guess\nAnswer: Marlowe"]);
    assert!(input.feedback.as_deref().unwrap().contains("incorrect"));
    let revised = r.call("Revise", &qa(), &input, &s.exec()).unwrap();
    assert_eq!(revised.answer.as_deref(), Some("William Shakespeare"));
    let side = SideChannel::from_metadata(&s.requests()[1].metadata).unwrap();
    assert_eq!(side.inputs, vec!["Thought: guess\nAnswer: Marlowe"]);
    assert!(side.feedback.unwrap().contains("Marlowe did not write it"));
}

#[test]
fn review_verdict_must_be_a_known_word() {
    let s = Script::new(&[
        "<review>fine</review><verdict>maybe</verdict>",
        "<review>fine</review><verdict>correct</verdict>",
    ]);
    let out = all()
        .call_text(
            "Review",
            "<solution>42</solution>",
            &math(),
            None,
            &s.exec(),
        )
        .unwrap();
    assert_eq!(out.verdict, Some(true));
    assert_eq!(out.executor_calls, 2);
    assert!(
        s.requests()[1].messages[3]
            .content
            .contains("`correct` or `incorrect`")
    );
}

#[test]
fn verify_reads_its_verdict() {
    let s = Script::new(&["<analysis>Recomputed: 42.</analysis><verdict>correct</verdict>"]);
    let out = all()
        .call_text("Verify", "42", &math(), None, &s.exec())
        .unwrap();
    assert_eq!(out.verdict, Some(true));
    assert!(out.text.contains("Feedback: Recomputed: 42."));
}

#[test]
fn multi_answer_then_ensemble_by_choice_and_by_fallback_vote() {
    let r = all();
    let s = Script::new(&["<answer_1>42</answer_1><answer_2>41</answer_2><answer_3>42</answer_3>"]);
    let multi = r
        .call_text("MultiAnswerGenerate", "", &math(), None, &s.exec())
        .unwrap();
    assert_eq!(multi.text, "Answer 1: 42\nAnswer 2: 41\nAnswer 3: 42");
    assert_eq!(multi.candidates, vec!["42", "41", "42"]);

    let s = Script::new(&["<thought>B differs.</thought><choice>(C)</choice>"]);
    let ens = r
        .call_text("ScEnsemble", "$last", &math(), Some(&multi.text), &s.exec())
        .unwrap();
    assert_eq!(ens.answer.as_deref(), Some("42"));
    assert!(ens.text.contains("(C)"), "{}", ens.text);
    let prompt = &s.requests()[0].messages[1].content;
    assert!(prompt.contains("(A) 42\n(B) 41\n(C) 42"), "{prompt}");

    // An executor that never names a valid letter: majority vote after the retries.
    let s = Script::new(&[
        "<choice>Z</choice>",
        "none",
        "<choice>AB</choice>",
        "<choice>?</choice>",
    ]);
    let ens = r
        .call_text(
            "ScEnsemble",
            "$last",
            &math(),
            Some("Answer 1: 41\nAnswer 2: 42\nAnswer 3: 42"),
            &s.exec(),
        )
        .unwrap();
    assert_eq!(ens.answer.as_deref(), Some("42"));
    assert_eq!(ens.executor_calls, 4);
    assert!(ens.text.contains("majority vote"));
}

#[test]
fn aggregate_format_plan_decompose_prompt_optimizer_custom() {
    let r = all();
    let s = Script::new(&["<thought>both say 42</thought><answer>42</answer>"]);
    let out = r
        .call_text(
            "Aggregate",
            "<solution>x = 42</solution><solution>it is 42</solution>",
            &math(),
            None,
            &s.exec(),
        )
        .unwrap();
    assert_eq!(out.answer.as_deref(), Some("42"));

    let s = Script::new(&["<answer>William Shakespeare</answer>"]);
    let out = r
        .call_text(
            "Format",
            "$last",
            &qa(),
            Some("It was written by William Shakespeare."),
            &s.exec(),
        )
        .unwrap();
    assert_eq!(out.text, "Answer: William Shakespeare");
    assert!(
        s.requests()[0].messages[1]
            .content
            .contains("a short phrase")
    );

    let s = Script::new(&["<plan>1. Multiply.</plan>"]);
    let out = r.call_text("Plan", "", &math(), None, &s.exec()).unwrap();
    assert_eq!(
        (out.text.as_str(), out.answer),
        ("Plan:\n1. Multiply.", None)
    );

    let s =
        Script::new(&["<subproblem>What is 6*7?</subproblem><subproblem>Report it.</subproblem>"]);
    let out = r
        .call_text("Decompose", "", &math(), None, &s.exec())
        .unwrap();
    assert_eq!(out.text, "Sub-problems:\n1. What is 6*7?\n2. Report it.");

    let s = Script::new(&["<prompt>Compute the product of 6 and 7.</prompt>"]);
    let out = r
        .call_text("PromptOptimizer", "$question", &math(), None, &s.exec())
        .unwrap();
    assert_eq!(out.text, "Refined query: Compute the product of 6 and 7.");

    let s = Script::new(&["<answer>42</answer>"]);
    let out = r
        .call_text(
            "Custom",
            "Answer with digits only.",
            &math(),
            None,
            &s.exec(),
        )
        .unwrap();
    assert_eq!(out.answer.as_deref(), Some("42"));
    let side = SideChannel::from_metadata(&s.requests()[0].metadata).unwrap();
    assert_eq!(
        side.instruction.as_deref(),
        Some("Answer with digits only.")
    );
    assert!(
        s.requests()[0].messages[1]
            .content
            .contains("Instruction: Answer with digits only.")
    );
}

#[test]
fn search_uses_the_bm25_corpus() {
    let s = Script::default();
    let out = all()
        .call_text(
            "Search",
            "who wrote the tragedy Hamlet",
            &qa(),
            None,
            &s.exec(),
        )
        .unwrap();
    assert!(
        out.text
            .starts_with("[1] Hamlet: Hamlet is a tragedy written by William Shakespeare"),
        "{}",
        out.text
    );
    assert!(out.text.lines().count() <= 5);
    assert_eq!(out.executor_calls, 0);
    let err = Registry::workflow_r1()
        .call_text("Search", "x", &qa(), None, &s.exec())
        .unwrap_err();
    assert!(
        matches!(err, CallError::Operator(OperatorError::Unavailable { .. })),
        "{err:?}"
    );
}

#[test]
fn long_outputs_are_cut_in_the_middle() {
    let long = "x".repeat(5000);
    let s = Script::new(&[&format!("<answer>{long}</answer>")]);
    let out = all()
        .call_text("AnswerGenerate", "", &qa(), None, &s.exec())
        .unwrap();
    assert!(out.text.chars().count() <= 2048 + 40, "{}", out.text.len());
    assert!(out.text.contains("...(truncated)..."));
    assert_eq!(out.answer.as_deref().map(str::len), Some(5000));
}

fn sandbox_ok() -> bool {
    flowrl_rewards::Sandbox::new(flowrl_rewards::SandboxConfig::default()).is_ok()
}

#[test]
fn programmer_runs_solve_in_the_sandbox_and_fixes_a_crash() {
    if !sandbox_ok() {
        eprintln!("skipped: bubblewrap is not available");
        return;
    }
    let r = all();
    let s = Script::new(&["<code>def solve():\n    return 6 * 7\n</code>"]);
    let out = r
        .call_text("Programmer", "$question", &math(), None, &s.exec())
        .unwrap();
    assert_eq!(out.answer.as_deref(), Some("42"));
    assert!(out.text.contains("Output: 42"));

    let s = Script::new(&[
        "```python\nprint('no solve here')\n```",
        "<code>def solve():\n    return undefined_name\n</code>",
        "<code>```python\ndef solve():\n    return 6 * 7\n```</code>",
    ]);
    let out = r
        .call_text("Programmer", "", &math(), None, &s.exec())
        .unwrap();
    assert_eq!(out.answer.as_deref(), Some("42"));
    assert_eq!(out.executor_calls, 3);
    let fix = SideChannel::from_metadata(&s.requests()[2].metadata).unwrap();
    assert_eq!(fix.purpose, "fix");
    assert!(fix.feedback.unwrap().contains("NameError"));
}

#[test]
fn test_runs_the_task_tests_and_repairs() {
    if !sandbox_ok() {
        eprintln!("skipped: bubblewrap is not available");
        return;
    }
    let mut ctx = TaskContext::new("c1", "code", "Write add_one(x) returning x + 1.");
    ctx.entry_point = Some("add_one".into());
    ctx.tests = Some("assert add_one(1) == 2\nassert add_one(-1) == 0\n".into());
    let r = all();

    let s = Script::default();
    let out = r
        .call_text(
            "Test",
            "$last",
            &ctx,
            Some("def add_one(x):\n    return x + 1\n"),
            &s.exec(),
        )
        .unwrap();
    assert_eq!(out.verdict, Some(true));
    assert_eq!(out.executor_calls, 0);

    let s = Script::new(&["<code>def add_one(x):\n    return x + 1\n</code>"]);
    let out = r
        .call_text(
            "Test",
            "$last",
            &ctx,
            Some("Answer:\ndef add_one(x):\n    return x + 2\n"),
            &s.exec(),
        )
        .unwrap();
    assert_eq!(out.verdict, Some(true));
    assert_eq!(
        out.answer.as_deref(),
        Some("def add_one(x):\n    return x + 1")
    );
    assert!(out.text.contains("failed the tests"), "{}", out.text);

    let s = Script::new(&["<code>def add_one(x):\n    return x\n</code>"]);
    let out = r
        .call_text(
            "Test",
            "$last",
            &ctx,
            Some("def add_one(x):\n    return x + 2\n"),
            &s.exec(),
        )
        .unwrap();
    assert_eq!(out.verdict, Some(false));
    assert!(out.text.starts_with("Verdict: incorrect"), "{}", out.text);
}

#[test]
fn test_without_tests_runs_a_written_check() {
    if !sandbox_ok() {
        eprintln!("skipped: bubblewrap is not available");
        return;
    }
    let s = Script::new(&["<code>assert 6 * 7 == 41</code>"]);
    let out = all()
        .call_text("Test", "41", &math(), None, &s.exec())
        .unwrap();
    assert_eq!(out.verdict, Some(false));
    assert!(out.text.contains("AssertionError"), "{}", out.text);
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        /// Any argument text gives an input or an explanation, never a panic.
        #[test]
        fn parse_text_is_total(raw in ".{0,80}", tag in prop::sample::select(vec!["solution", "feedback", "question", "instruction", ""]), last in proptest::option::of(".{0,20}")) {
            let text = if tag.is_empty() { raw } else { format!("<{tag}>{raw}") };
            let r = all();
            for op in r.operators() {
                let _ = op.parse_text(&text, &qa(), last.as_deref());
            }
        }
    }
}
