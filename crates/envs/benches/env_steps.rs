//! Environment steps per second with the simulated executor, for both
//! environments: whole scripted episodes on qa and math tasks of the
//! built-in suite (no sandbox runs, so the figure is the environments' own
//! cost plus the operators' prompt building and parsing and the simulator).

use std::hint::black_box;
use std::sync::Arc;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use flowrl_data::{ScoreConfig, Scorer, SuiteConfig, Task, TaskFamily, generate_suite};
use flowrl_envs::canvas::env::CanvasConfig;
use flowrl_envs::think_action::env::ThinkActionConfig;
use flowrl_envs::{CanvasEnv, Env, Services, ThinkActionEnv};
use flowrl_llm_sim::{SimBackend, SimConfig};
use flowrl_operators::Registry;

const THINK: [&str; 3] = [
    "<think>solve</think><tool>AnswerGenerate: $question</tool>",
    "<think>check</think><tool>Review: $last</tool>",
    "<think>done</think><answer>$last</answer>",
];

const CANVAS: [&str; 10] = [
    "<action>add</action><operator>AnswerGenerate</operator>",
    "Solve it.",
    "<action>add</action><structure>conditional</structure><condition>Review</condition><true>Revise</true><false>done</false>",
    "Check it.",
    "Fix it.",
    "<action>add</action><operator>Verify</operator>",
    "Verify it.",
    "<action>add</action><operator>Format</operator>",
    "Short.",
    "<action>finish</action>",
];

fn services() -> Services {
    Services {
        registry: Arc::new(Registry::all_with(&Default::default()).expect("registry")),
        executor: Arc::new(SimBackend::new(SimConfig::default()).expect("sim")),
        scorer: Arc::new(Scorer::new(ScoreConfig::default())),
    }
}

fn tasks() -> Vec<Task> {
    let cfg = SuiteConfig {
        seed: 1,
        train_per_family: 32,
        heldout_per_family: 1,
        families: vec![TaskFamily::Qa, TaskFamily::Math],
    };
    generate_suite(&cfg).expect("suite").train
}

fn episode(env: &mut dyn Env, task: &Task, turns: &[&str]) -> usize {
    env.reset(task).expect("reset");
    let mut steps = 0;
    for t in turns {
        steps += 1;
        if env.step(t).expect("step").done {
            break;
        }
    }
    steps
}

fn bench(c: &mut Criterion) {
    let tasks = tasks();
    let s = services();
    let mut g = c.benchmark_group("env_steps");
    let mut think = ThinkActionEnv::new(ThinkActionConfig::default(), s.clone());
    g.throughput(Throughput::Elements((tasks.len() * THINK.len()) as u64));
    g.bench_function("think_action", |b| {
        b.iter(|| {
            tasks
                .iter()
                .map(|t| episode(&mut think, black_box(t), &THINK))
                .sum::<usize>()
        })
    });
    let mut canvas = CanvasEnv::new(CanvasConfig::default(), s);
    g.throughput(Throughput::Elements((tasks.len() * CANVAS.len()) as u64));
    g.bench_function("canvas", |b| {
        b.iter(|| {
            tasks
                .iter()
                .map(|t| episode(&mut canvas, black_box(t), &CANVAS))
                .sum::<usize>()
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
