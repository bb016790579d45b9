//! Demonstration episodes for the supervised warm-up.
//!
//! A scripted demonstrator plays the environment with a workflow drawn at
//! random from a small menu — the same menu for every task family, so the
//! warmed-up policy knows the protocol and several workflows but not which
//! one suits which family. That choice is what RL has to learn. Observations
//! come from really running the environment (operators, executor, sandbox).

use flowrl_data::Task;
use flowrl_envs::{Env, Observation};
use flowrl_trajectory::{Span, Trajectory};
use rand::Rng;
use rand::rngs::StdRng;

use crate::config::EnvKind;
use crate::error::TrainError;
use crate::policy::Policy;

/// Think-action workflows of the demonstrator: operator sequences, each
/// solved from `$question` then refined over `$last`.
pub const THINK_ACTION_MENU: [&[&str]; 5] = [
    &["AnswerGenerate"],
    &["Programmer"],
    &["MultiAnswerGenerate", "ScEnsemble"],
    &["AnswerGenerate", "Review", "Revise"],
    &["Programmer", "Test"],
];

fn thought(op: &str) -> &'static str {
    match op {
        "AnswerGenerate" => "solve",
        "Programmer" => "code",
        "MultiAnswerGenerate" => "draft",
        "ScEnsemble" => "vote",
        "Review" => "check",
        "Revise" => "fix",
        "Test" => "test",
        "Verify" => "verify",
        "Format" => "format",
        _ => "call",
    }
}

/// The policy turns that play one think-action workflow.
pub fn think_action_turns(ops: &[&str]) -> Vec<String> {
    let mut turns: Vec<String> = ops
        .iter()
        .enumerate()
        .map(|(i, op)| {
            let arg = if i == 0 { "$question" } else { "$last" };
            format!("<think>{}</think><tool>{op}: {arg}</tool>", thought(op))
        })
        .collect();
    turns.push("<think>done</think><answer>$last</answer>".to_string());
    turns
}

/// Canvas workflows of the demonstrator (each passes the finish rules).
pub const CANVAS_MENU: [&[&str]; 4] = [
    &[
        "<action>add</action><operator>AnswerGenerate</operator>",
        "<action>add</action><structure>conditional</structure><condition>Review</condition><true>Revise</true><false>done</false>",
        "<action>add</action><operator>Verify</operator>",
        "<action>add</action><operator>Format</operator>",
    ],
    &[
        "<action>add</action><operator>Programmer</operator>",
        "<action>add</action><structure>conditional</structure><condition>Test</condition><true>Revise</true><false>done</false>",
        "<action>add</action><operator>Review</operator>",
        "<action>add</action><operator>Format</operator>",
    ],
    &[
        "<action>add</action><structure>parallel</structure><operators>AnswerGenerate,Programmer</operators>",
        "<action>add</action><operator>ScEnsemble</operator>",
        "<action>add</action><operator>Verify</operator>",
        "<action>add</action><operator>Format</operator>",
    ],
    &[
        "<action>add</action><operator>Programmer</operator>",
        "<action>add</action><structure>loop</structure><operators>Test,Revise</operators><count>1</count>",
        "<action>add</action><operator>Verify</operator>",
        "<action>add</action><operator>Format</operator>",
    ],
];

/// Plays one scripted episode and records it.
///
/// # Errors
/// Environment and tokenizer failures.
pub fn play(
    policy: &Policy,
    env: &mut dyn Env,
    task: &Task,
    kind: EnvKind,
    choice: usize,
    id: String,
) -> Result<Trajectory, TrainError> {
    let prompt = env.reset(task)?;
    let mut spans = vec![Span::prompt(
        prompt.user.clone(),
        policy.encode_prompt(&prompt)?,
    )];
    // Turns that end at the end-of-turn token rather than a stop string.
    let eot: Vec<u32> = if env.stop_strings().is_empty() {
        policy.stop_ids().into_iter().take(1).collect()
    } else {
        Vec::new()
    };
    let turns: Vec<String> = match kind {
        EnvKind::ThinkAction => {
            think_action_turns(THINK_ACTION_MENU[choice % THINK_ACTION_MENU.len()])
        }
        EnvKind::Canvas => {
            let mut v = Vec::new();
            for action in CANVAS_MENU[choice % CANVAS_MENU.len()] {
                v.push((*action).to_string());
                let slots = if action.contains("parallel")
                    || action.contains("conditional")
                    || action.contains("loop")
                {
                    2
                } else {
                    1
                };
                for _ in 0..slots {
                    v.push("Be brief.".to_string());
                }
            }
            v.push("<action>finish</action>".to_string());
            v
        }
    };
    let mut reward = None;
    for turn in turns {
        let mut tokens = policy.encode(&turn)?;
        tokens.extend_from_slice(&eot);
        spans.push(Span::policy(turn.clone(), tokens, None));
        let out = env.step(&turn)?;
        if out.done {
            reward = out.reward;
            break;
        }
        match out.observation {
            Observation::Append(t) => spans.push(Span::environment(t.clone(), policy.encode(&t)?)),
            Observation::NewContext(p) => {
                spans.push(Span::prompt(p.user.clone(), policy.encode_prompt(&p)?))
            }
            Observation::Nothing => {}
        }
    }
    let reward = match reward {
        Some(r) => r,
        None => env.truncate()?.reward.unwrap_or(0.0),
    };
    Ok(Trajectory {
        id,
        task_id: task.id.clone(),
        data_source: task.source.clone(),
        group_key: None,
        spans,
        reward,
        metadata: Default::default(),
    })
}

/// Number of workflows on the menu of an environment.
pub fn menu_len(kind: EnvKind) -> usize {
    match kind {
        EnvKind::ThinkAction => THINK_ACTION_MENU.len(),
        EnvKind::Canvas => CANVAS_MENU.len(),
    }
}

/// Draws a menu entry.
pub fn draw(rng: &mut StdRng, kind: EnvKind) -> usize {
    rng.random_range(0..menu_len(kind))
}
