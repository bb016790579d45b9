//! Plays the policy by hand: the turns a trained policy would write, sent
//! to flowrl's two environments, with the simulated executor (`llm-sim`)
//! answering the operators' requests. It shows the whole loop a rollout
//! runs — prompt, turn, observation, …, reward — without a model.
//!
//! * Think-action (Workflow-R1): `AnswerGenerate → Review → Revise` on a
//!   math problem, then `<answer>$last</answer>`.
//! * Canvas (FlowSteer): a five-operator graph with a conditional review
//!   built edit by edit on a QA question, with one refused `finish` on the
//!   way and the conditional release of the answer reward at the end.
//!
//! The simulator decides from its per-family skill table whether each call
//! succeeds (deterministically, from a hash of the request), so a workflow
//! here can end with a right or a wrong answer; the reward says which.
//!
//! `cargo run -p workflow-by-hand` prints every step. To put a real executor
//! in place of the simulator, build `Services` with
//! `flowrl_llm_openai::OpenAiClient` (any OpenAI-compatible server).

use std::collections::BTreeMap;
use std::sync::Arc;

use flowrl_data::{ScoreConfig, Scorer, Task, TaskFamily};
use flowrl_envs::{
    CanvasConfig, CanvasEnv, Env, EnvError, EpisodeSummary, Observation, Services,
    ThinkActionConfig, ThinkActionEnv,
};
use flowrl_llm_sim::{SimBackend, SimConfig};
use flowrl_operators::Registry;

/// A task with gold answers and nothing else.
fn task(id: &str, family: TaskFamily, question: &str, answer: &str) -> Task {
    Task {
        id: id.into(),
        source: "by-hand".into(),
        family,
        question: question.into(),
        answers: vec![answer.into()],
        context: None,
        tests: None,
        reference: None,
        code_prefix: None,
        metadata: BTreeMap::new(),
    }
}

/// The operators of `registry`, the simulated executor with its default
/// skill table, and the scorer (its sandbox is only needed for code tasks).
fn services(registry: Registry) -> Services {
    let sim = SimBackend::new(SimConfig::default()).expect("the default simulator config is valid");
    Services {
        registry: Arc::new(registry),
        executor: Arc::new(sim),
        scorer: Arc::new(Scorer::new(ScoreConfig::default())),
    }
}

/// Sends `turns` one by one (stopping when the episode ends) and prints the
/// prompt, each turn and each observation when `verbose`.
fn play(
    env: &mut dyn Env,
    task: &Task,
    turns: &[&str],
    verbose: bool,
) -> Result<EpisodeSummary, EnvError> {
    let show = |who: &str, text: &str| {
        if verbose {
            println!("[{who}]\n{}\n", text.trim_end());
        }
    };
    let prompt = env.reset(task)?;
    show("prompt", &prompt.text());
    for turn in turns {
        show("policy", turn);
        let out = env.step(turn)?;
        match &out.observation {
            Observation::Append(text) => show("env", text),
            Observation::NewContext(p) => show("env: new context", &p.user),
            Observation::Nothing => {}
        }
        if out.done {
            if verbose {
                println!("[done] reward {:?}, info {}\n", out.reward, out.info);
            }
            break;
        }
    }
    Ok(env.summary())
}

/// The think-action episode.
pub fn think_action(verbose: bool) -> Result<EpisodeSummary, EnvError> {
    let mut env = ThinkActionEnv::new(
        ThinkActionConfig::default(),
        services(Registry::workflow_r1()),
    );
    let t = task(
        "bakery",
        TaskFamily::Math,
        "A baker fills 3 trays with 12 rolls each and sells 17 rolls. How many rolls are left?",
        "19",
    );
    play(
        &mut env,
        &t,
        &[
            "<think>Let a solver work it out first.</think><tool>AnswerGenerate: $question</tool>",
            "<think>Have the solution checked.</think><tool>Review: $last</tool>",
            "<think>Revise it with the review's feedback.</think><tool>Revise: $last</tool>",
            "<think>The revised answer stands.</think><answer>$last</answer>",
        ],
        verbose,
    )
}

/// The canvas episode.
pub fn canvas(verbose: bool) -> Result<EpisodeSummary, EnvError> {
    let mut env = CanvasEnv::new(CanvasConfig::default(), services(Registry::flowsteer()));
    let t = task(
        "capital",
        TaskFamily::Qa,
        "Which city is the capital of Australia?",
        "Canberra",
    );
    play(
        &mut env,
        &t,
        &[
            "<think>Start with a solver.</think><action>add</action><operator>AnswerGenerate</operator>",
            // After an `add`, one instruction turn per operator of the new node.
            "Answer with the name of the city only.",
            // Refused: no checker, no structure, fewer than 5 operators yet.
            "<action>finish</action>",
            "<action>add</action><structure>conditional</structure><condition>Review</condition><true>Revise</true><false>done</false>",
            "Check that the city really is the capital, not the largest city.",
            "Correct the answer using the review.",
            "<action>add</action><operator>Verify</operator>",
            "Verify the answer against what you know.",
            "<action>add</action><operator>Format</operator>",
            "Give just the city name.",
            "<action>finish</action>",
        ],
        verbose,
    )
}

fn main() -> Result<(), EnvError> {
    println!("===== think-action (Workflow-R1) =====\n");
    let a = think_action(true)?;
    println!("summary: {a:?}\n");
    println!("===== canvas (FlowSteer) =====\n");
    let b = canvas(true)?;
    println!("summary: {b:?}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn think_action_episode_runs_the_three_operators_and_answers() {
        let s = think_action(false).expect("episode");
        assert_eq!(s.operators, ["AnswerGenerate", "Review", "Revise"]);
        assert!(s.well_formed && s.answer.is_some(), "{s:?}");
        // R = F + A with F = 0 (well formed), A = 1 or 0.
        let want = if s.correct { 1.0 } else { 0.0 };
        assert_eq!(s.reward, Some(want), "{s:?}");
    }

    #[test]
    fn canvas_episode_is_released_after_one_refused_finish() {
        let s = canvas(false).expect("episode");
        assert_eq!(s.turns, 11, "{s:?}");
        assert_eq!(s.invalid_turns, 1, "the early finish: {s:?}");
        assert_eq!(s.operators.len(), 5, "{s:?}");
        // R_div = 1, so R = −1 + 1 + R_answer (token F1 ∈ [0, 1]).
        let r = s.reward.expect("finished");
        assert!((0.0..=1.0).contains(&r), "{s:?}");
        assert_eq!(r == 1.0, s.correct, "{s:?}");
    }
}
