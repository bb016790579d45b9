//! Expected reward of fixed workflows against the simulator with its default
//! skill table, by Monte Carlo over the built-in task suite (fixed seeds).
//!
//! The rewards are the real ones: SQuAD exact match for QA, `math_equal`
//! for math, the task's tests in the sandbox for code; every operator call
//! goes through the real prompts, parsers, retries and sandbox. The net
//! figure subtracts `call_cost` per executor call. Run with `--nocapture` to
//! see the table (it is copied into docs/backends.md).

use flowrl_data::{SuiteConfig, Task, TaskFamily, generate_suite};
use flowrl_llm_sim::{SimBackend, SimConfig};
use flowrl_operators::{
    Executor, OperatorInput, OperatorOutput, OperatorsConfig, Registry, TaskContext,
};
use flowrl_rewards::{Sandbox, SandboxConfig};

fn context(task: &Task) -> TaskContext {
    let mut ctx = TaskContext::new(task.id.clone(), task.family.as_str(), task.question.clone());
    ctx.tests = task.tests.as_ref().map(TaskContext::tests_text);
    ctx.entry_point = task
        .tests
        .as_ref()
        .and_then(|t| t.harness.as_ref().map(|h| h.entry_point.clone()))
        .or_else(|| {
            task.reference.as_ref().and_then(|r| {
                let at = r.find("def ")? + 4;
                Some(r[at..at + r[at..].find('(')?].to_string())
            })
        });
    ctx.gold = Some(serde_json::json!({ "answers": task.answers, "reference": task.reference }));
    ctx
}

struct Run<'a> {
    reg: &'a Registry,
    ctx: &'a TaskContext,
    exec: &'a dyn Executor,
    calls: u32,
    answer: Option<String>,
    last: Option<String>,
}

impl Run<'_> {
    fn op(&mut self, name: &str, input: OperatorInput) -> OperatorOutput {
        let out = self
            .reg
            .call(name, self.ctx, &input, self.exec)
            .expect("operator call");
        self.calls += out.executor_calls;
        if out.answer.is_some() {
            self.answer.clone_from(&out.answer);
        }
        self.last = Some(out.text.clone());
        out
    }

    fn with(inputs: Vec<String>) -> OperatorInput {
        OperatorInput {
            inputs,
            ..OperatorInput::default()
        }
    }

    /// The current answer, else the last output text.
    fn current(&self) -> Vec<String> {
        self.answer
            .iter()
            .chain(self.last.iter())
            .take(1)
            .cloned()
            .collect()
    }
}

/// A workflow: a name and the steps it runs.
type Workflow = (&'static str, fn(&mut Run<'_>));

fn ag(r: &mut Run<'_>) {
    r.op("AnswerGenerate", OperatorInput::default());
}
fn prog(r: &mut Run<'_>) {
    r.op("Programmer", OperatorInput::default());
}
fn multi_ens(r: &mut Run<'_>) {
    let m = r.op("MultiAnswerGenerate", OperatorInput::default());
    r.op("ScEnsemble", Run::with(m.candidates));
}
fn review_revise_if(r: &mut Run<'_>, checker: &str) {
    let c = r.op(checker, Run::with(r.current()));
    if c.verdict == Some(false) {
        let input = OperatorInput {
            inputs: r.current(),
            feedback: Some(c.text),
            ..OperatorInput::default()
        };
        r.op("Revise", input);
    }
}
fn ag_review_revise(r: &mut Run<'_>) {
    ag(r);
    review_revise_if(r, "Review");
}
fn ag_review_revise_always(r: &mut Run<'_>) {
    ag(r);
    let c = r.op("Review", Run::with(r.current()));
    let input = OperatorInput {
        inputs: r.current(),
        feedback: Some(c.text),
        ..OperatorInput::default()
    };
    r.op("Revise", input);
}
fn multi_ens_review_revise(r: &mut Run<'_>) {
    multi_ens(r);
    review_revise_if(r, "Review");
}
fn long_chain(r: &mut Run<'_>) {
    ag(r);
    for _ in 0..4 {
        ag_like_review_revise(r);
    }
}
fn ag_like_review_revise(r: &mut Run<'_>) {
    let c = r.op("Review", Run::with(r.current()));
    let input = OperatorInput {
        inputs: r.current(),
        feedback: Some(c.text),
        ..OperatorInput::default()
    };
    r.op("Revise", input);
}
fn prog_test(r: &mut Run<'_>) {
    prog(r);
    let t = r.op("Test", Run::with(r.current()));
    if t.verdict == Some(false) {
        let input = OperatorInput {
            inputs: r.current(),
            feedback: Some(t.text),
            ..OperatorInput::default()
        };
        r.op("Revise", input);
    }
}
fn ag_verify_revise(r: &mut Run<'_>) {
    ag(r);
    review_revise_if(r, "Verify");
}
fn plan_prog_test(r: &mut Run<'_>) {
    let p = r.op("Plan", OperatorInput::default());
    r.op("Programmer", Run::with(vec![p.text]));
    let t = r.op("Test", Run::with(r.current()));
    if t.verdict == Some(false) {
        let input = OperatorInput {
            inputs: r.current(),
            feedback: Some(t.text),
            ..OperatorInput::default()
        };
        r.op("Revise", input);
    }
}
fn ag_test(r: &mut Run<'_>) {
    ag(r);
    r.op("Test", Run::with(r.current()));
}

fn reward(task: &Task, answer: Option<&str>, sandbox: &Sandbox) -> f64 {
    let Some(a) = answer else { return 0.0 };
    match task.family {
        TaskFamily::Qa => f64::from(u8::from(flowrl_rewards::exact_match_any(a, &task.answers))),
        TaskFamily::Math => f64::from(u8::from(
            task.answers
                .first()
                .is_some_and(|g| flowrl_rewards::math_equal(a, g)),
        )),
        TaskFamily::Code => {
            let tests = task.tests.clone().unwrap_or_default();
            flowrl_rewards::code_reward(sandbox, &task.solution_program(a), &tests)
                .map_or(0.0, |r| f64::from(r.reward))
        }
    }
}

struct Row {
    family: &'static str,
    workflow: &'static str,
    reward: f64,
    calls: f64,
    net: f64,
}

fn evaluate(
    family: TaskFamily,
    n: usize,
    workflows: &[Workflow],
    sim: &SimBackend,
    sandbox: &Sandbox,
) -> Vec<Row> {
    let suite = generate_suite(&SuiteConfig {
        seed: 7,
        train_per_family: n,
        heldout_per_family: 0,
        families: vec![family],
    })
    .expect("suite");
    let reg = Registry::flowsteer_with(&OperatorsConfig::default()).expect("registry");
    let mut all = Registry::workflow_r1();
    for op in reg.operators() {
        all.register(op.clone());
    }
    let cost = sim.config().call_cost;
    workflows
        .iter()
        .map(|(name, wf)| {
            let (mut total, mut calls) = (0.0, 0u64);
            for task in &suite.train {
                let ctx = context(task);
                let mut run = Run {
                    reg: &all,
                    ctx: &ctx,
                    exec: sim,
                    calls: 0,
                    answer: None,
                    last: None,
                };
                wf(&mut run);
                total += reward(task, run.answer.as_deref(), sandbox);
                calls += u64::from(run.calls);
            }
            let k = suite.train.len() as f64;
            let (reward, calls) = (total / k, calls as f64 / k);
            Row {
                family: family.as_str(),
                workflow: name,
                reward,
                calls,
                net: reward - cost * calls,
            }
        })
        .collect()
}

fn find<'a>(rows: &'a [Row], family: &str, workflow: &str) -> &'a Row {
    rows.iter()
        .find(|r| r.family == family && r.workflow == workflow)
        .expect("row")
}

#[test]
fn default_skills_make_workflow_structure_matter() {
    let sim = SimBackend::new(SimConfig::default()).expect("sim");
    let Ok(sandbox) = Sandbox::new(SandboxConfig::default()) else {
        eprintln!("skipped: the code sandbox (bubblewrap) is not available");
        return;
    };
    let qa: Vec<Workflow> = vec![
        ("AnswerGenerate", ag),
        ("MultiAnswerGenerate -> ScEnsemble", multi_ens),
        ("AnswerGenerate -> Review ? Revise", ag_review_revise),
        (
            "AnswerGenerate -> Review -> Revise",
            ag_review_revise_always,
        ),
        (
            "MultiAnswerGenerate -> ScEnsemble -> Review ? Revise",
            multi_ens_review_revise,
        ),
        ("AnswerGenerate -> (Review -> Revise) * 4", long_chain),
    ];
    let math: Vec<Workflow> = vec![
        ("AnswerGenerate", ag),
        ("MultiAnswerGenerate -> ScEnsemble", multi_ens),
        ("AnswerGenerate -> Verify ? Revise", ag_verify_revise),
        ("Programmer", prog),
        ("Programmer -> Test ? Revise", prog_test),
        ("Plan -> Programmer -> Test ? Revise", plan_prog_test),
    ];
    let code: Vec<Workflow> = vec![
        ("AnswerGenerate", ag),
        ("Programmer", prog),
        ("AnswerGenerate -> Test", ag_test),
        ("Programmer -> Test ? Revise", prog_test),
    ];
    let mut rows = evaluate(TaskFamily::Qa, 400, &qa, &sim, &sandbox);
    rows.extend(evaluate(TaskFamily::Math, 150, &math, &sim, &sandbox));
    rows.extend(evaluate(TaskFamily::Code, 80, &code, &sim, &sandbox));

    println!(
        "| family | workflow | E[reward] | calls | net (cost {}/call) |",
        sim.config().call_cost
    );
    println!("| --- | --- | --- | --- | --- |");
    for r in &rows {
        println!(
            "| {} | {} | {:.3} | {:.2} | {:.3} |",
            r.family, r.workflow, r.reward, r.calls, r.net
        );
    }

    // QA: a single answer ≈ 0.55; an ensemble of three clearly beats it; a
    // conditional review/revise adds a little; a long review/revise chain
    // costs more than it gains.
    let qa_ag = find(&rows, "qa", "AnswerGenerate");
    let qa_ens = find(&rows, "qa", "MultiAnswerGenerate -> ScEnsemble");
    let qa_rr = find(&rows, "qa", "AnswerGenerate -> Review ? Revise");
    let qa_long = find(&rows, "qa", "AnswerGenerate -> (Review -> Revise) * 4");
    assert!(
        (qa_ag.reward - 0.55).abs() < 0.07,
        "qa AnswerGenerate {}",
        qa_ag.reward
    );
    assert!(
        qa_ens.net > qa_ag.net + 0.08,
        "qa ensemble {} vs {}",
        qa_ens.net,
        qa_ag.net
    );
    assert!(
        qa_rr.reward > qa_ag.reward,
        "qa review/revise {} vs {}",
        qa_rr.reward,
        qa_ag.reward
    );
    assert!(
        qa_long.net < qa_ens.net,
        "qa long chain {} vs ensemble {}",
        qa_long.net,
        qa_ens.net
    );

    // Math: code beats free-text answers by a wide margin.
    let m_ag = find(&rows, "math", "AnswerGenerate");
    let m_pt = find(&rows, "math", "Programmer -> Test ? Revise");
    assert!(
        (m_ag.reward - 0.5).abs() < 0.1,
        "math AnswerGenerate {}",
        m_ag.reward
    );
    assert!(
        m_pt.net > m_ag.net + 0.2,
        "math Programmer -> Test {} vs {}",
        m_pt.net,
        m_ag.net
    );

    // Code: running the tests and repairing beats a single attempt.
    let c_ag = find(&rows, "code", "AnswerGenerate");
    let c_pt = find(&rows, "code", "Programmer -> Test ? Revise");
    assert!(
        c_pt.net > c_ag.net + 0.2,
        "code Programmer -> Test {} vs {}",
        c_pt.net,
        c_ag.net
    );
}
