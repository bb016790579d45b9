//! The rollout engine: many episodes stepping together.
//!
//! Each round the policy samples one turn for every live episode in one
//! batched generation; the environments then step in parallel (operator
//! calls and sandbox runs happen there). Prompt spans, policy spans (with
//! the sampler's raw log-probs) and environment spans are recorded as a
//! [`Trajectory`].

use flowrl_data::Task;
use flowrl_envs::{Env, EpisodeSummary, Observation, StepOutcome};
use flowrl_model::GenerateConfig;
use flowrl_trajectory::{Span, Trajectory};
use rayon::prelude::*;

use crate::error::TrainError;
use crate::policy::Policy;

/// How episodes are sampled.
#[derive(Debug, Clone, PartialEq)]
pub struct RolloutSettings {
    /// Sampling temperature (0: greedy).
    pub temperature: f64,
    /// Nucleus mass.
    pub top_p: f64,
    /// Top-k (0 disables).
    pub top_k: usize,
    /// Most tokens per turn.
    pub max_turn_tokens: usize,
    /// Most response tokens per context window (policy and environment text).
    pub max_response_tokens: usize,
    /// Longest prompt; longer prompts keep their last tokens.
    pub max_prompt_tokens: usize,
    /// Seed of the sampler.
    pub seed: u64,
}

/// One finished episode.
#[derive(Debug, Clone)]
pub struct Episode {
    /// The recorded trajectory.
    pub trajectory: Trajectory,
    /// What the environment reports about it.
    pub summary: EpisodeSummary,
}

struct Live {
    spans: Vec<Span>,
    context: Vec<u32>,
    response_tokens: usize,
    reward: Option<f64>,
}

fn clip_prompt(mut tokens: Vec<u32>, max: usize) -> Vec<u32> {
    if tokens.len() > max {
        tokens.drain(..tokens.len() - max);
    }
    tokens
}

/// Runs one episode per `(env, task)` pair to the end.
///
/// `ids[i]` names trajectory `i`; `group_keys[i]` is its advantage group.
///
/// # Errors
/// Model, tokenizer and environment failures (an environment error stops
/// the whole batch: it means the executor or the sandbox is down).
pub fn rollout(
    policy: &Policy,
    envs: &mut [Box<dyn Env>],
    tasks: &[&Task],
    ids: &[String],
    settings: &RolloutSettings,
) -> Result<Vec<Episode>, TrainError> {
    let stop_ids = policy.stop_ids();
    let mut live: Vec<Live> = Vec::with_capacity(tasks.len());
    for (env, task) in envs.iter_mut().zip(tasks) {
        let prompt = env.reset(task)?;
        let tokens = clip_prompt(policy.encode_prompt(&prompt)?, settings.max_prompt_tokens);
        let text = prompt.text();
        live.push(Live {
            spans: vec![Span::prompt(text, tokens.clone())],
            context: tokens,
            response_tokens: 0,
            reward: None,
        });
    }
    let stop_strings = envs.first().map(|e| e.stop_strings()).unwrap_or_default();
    let mut round = 0u64;
    loop {
        let active: Vec<usize> = (0..live.len())
            .filter(|&i| live[i].reward.is_none())
            .collect();
        if active.is_empty() {
            break;
        }
        // One generation for every live episode; the budget left is per episode,
        // so episodes are grouped by the cap they allow.
        let contexts: Vec<Vec<u32>> = active.iter().map(|&i| live[i].context.clone()).collect();
        let cap = active
            .iter()
            .map(|&i| {
                settings
                    .max_response_tokens
                    .saturating_sub(live[i].response_tokens)
            })
            .max()
            .unwrap_or(0)
            .clamp(1, settings.max_turn_tokens);
        let cfg = GenerateConfig {
            max_new_tokens: cap,
            temperature: settings.temperature,
            top_k: settings.top_k,
            top_p: settings.top_p,
            stop_tokens: stop_ids.clone(),
            stop_sequences: Vec::new(),
            stop_strings: stop_strings.clone(),
            seed: settings
                .seed
                .wrapping_mul(0x9E37_79B9_7F4A_7C15)
                .wrapping_add(round),
        };
        let gens = policy.generate(&contexts, &cfg)?;
        let mut texts = Vec::with_capacity(gens.len());
        for g in &gens {
            let visible: Vec<u32> = g
                .tokens
                .iter()
                .copied()
                .filter(|t| !stop_ids.contains(t))
                .collect();
            texts.push(policy.decode(&visible)?);
        }
        // Step the environments of the live episodes in parallel.
        let mut slots: Vec<Option<&mut Box<dyn Env>>> = envs.iter_mut().map(Some).collect();
        let mut work: Vec<(&mut Box<dyn Env>, &str)> = Vec::with_capacity(active.len());
        for (k, &i) in active.iter().enumerate() {
            if let Some(env) = slots[i].take() {
                work.push((env, texts[k].as_str()));
            }
        }
        let outcomes: Vec<Result<StepOutcome, flowrl_envs::EnvError>> = work
            .into_par_iter()
            .map(|(env, text)| env.step(text))
            .collect();
        for (k, (&i, outcome)) in active.iter().zip(outcomes).enumerate() {
            let g = &gens[k];
            let l = &mut live[i];
            l.spans.push(Span::policy(
                texts[k].clone(),
                g.tokens.clone(),
                Some(g.raw_logprobs.iter().map(|v| v.min(0.0)).collect()),
            ));
            l.context.extend_from_slice(&g.tokens);
            l.response_tokens += g.tokens.len();
            let mut outcome = outcome?;
            if !outcome.done {
                match &outcome.observation {
                    Observation::Append(t) => {
                        let tokens = policy.encode(t)?;
                        l.context.extend_from_slice(&tokens);
                        l.response_tokens += tokens.len();
                        l.spans.push(Span::environment(t.clone(), tokens));
                    }
                    Observation::NewContext(p) => {
                        let tokens =
                            clip_prompt(policy.encode_prompt(p)?, settings.max_prompt_tokens);
                        let text = p.text();
                        l.context = tokens.clone();
                        l.response_tokens = 0;
                        l.spans.push(Span::prompt(text, tokens));
                    }
                    Observation::Nothing => {}
                }
                if l.response_tokens >= settings.max_response_tokens {
                    outcome = envs[i].truncate()?;
                }
            }
            if outcome.done {
                l.reward = Some(outcome.reward.unwrap_or(0.0));
            }
        }
        round += 1;
    }
    let mut out = Vec::with_capacity(live.len());
    for (i, l) in live.into_iter().enumerate() {
        let summary = envs[i].summary();
        let task = tasks[i];
        let mut metadata = std::collections::BTreeMap::new();
        metadata.insert(
            "summary".to_string(),
            serde_json::to_value(&summary).unwrap_or_default(),
        );
        metadata.insert(
            "family".to_string(),
            serde_json::json!(task.family.as_str()),
        );
        out.push(Episode {
            trajectory: Trajectory {
                id: ids[i].clone(),
                task_id: task.id.clone(),
                data_source: task.source.clone(),
                group_key: None,
                spans: l.spans,
                reward: l.reward.unwrap_or(0.0),
                metadata,
            },
            summary,
        });
    }
    Ok(out)
}
