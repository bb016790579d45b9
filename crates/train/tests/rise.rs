//! RL must improve on the warmed-up policy: the embedded default's recipe on
//! a smaller budget, over several seeds, judged on held-out tasks (greedy).

use std::sync::atomic::AtomicBool;

use flowrl_data::{SuiteConfig, TaskFamily};
use flowrl_train::config::{DataSpec, EvalConfig, RlConfig, WarmupConfig};
use flowrl_train::{TrainConfig, Trainer};

fn budget(dir: &std::path::Path, seed: u64) -> TrainConfig {
    let base = TrainConfig::default();
    TrainConfig {
        out_dir: dir.to_path_buf(),
        name: format!("seed-{seed}"),
        seed,
        data: DataSpec::Suite {
            config: SuiteConfig {
                seed,
                train_per_family: 24,
                heldout_per_family: 12,
                families: vec![TaskFamily::Math, TaskFamily::Qa, TaskFamily::Code],
            },
        },
        warmup: WarmupConfig {
            steps: 100,
            batch_size: 16,
            demos_per_task: 3,
            ..base.warmup.clone()
        },
        rl: RlConfig {
            steps: 10,
            // Many distinct tasks, two rollouts each: the executor answers
            // a task the same way every time, so more tasks carry more
            // information about the workflows than more rollouts of one.
            tasks_per_step: 24,
            group_size: 2,
            ..base.rl.clone()
        },
        eval: EvalConfig {
            tasks: 36,
            every: 0,
        },
        checkpoint_every: 0,
        ..base
    }
}

/// Measured on this budget with the current recipe (family tag at the end of
/// the compact prompt, nucleus 0.9 with log-probs over the same nucleus,
/// lr 5e-5, 24 tasks × G = 2 a step): held-out gains +0.167 (seed 1),
/// −0.028 (seed 2) and +0.083 (seed 3), mean +0.074. Seeds 4–9, run on the
/// same budget after these three were fixed, gained +0.056, +0.153, +0.069,
/// +0.042, +0.083 and +0.222: eight of nine seeds improved, mean +0.094
/// (docs/training.md). The runs are bit-identical with 1 and 2 rayon
/// threads, so the figures do not depend on the machine's core count. About
/// 100–120 s a seed on 2 cores.
#[test]
fn rl_beats_the_warm_up_policy_on_held_out_tasks() {
    let dir = tempfile::tempdir().unwrap();
    let stop = AtomicBool::new(false);
    let mut gains = Vec::new();
    for seed in [1, 2, 3] {
        let mut t = Trainer::new(budget(dir.path(), seed), false).unwrap();
        t.show_progress(false);
        let s = t.run(&stop).unwrap();
        eprintln!(
            "seed {seed}: held-out reward {:.3} -> {:.3}",
            s.eval_before, s.eval_after
        );
        gains.push(s.eval_after - s.eval_before);
    }
    let mean = gains.iter().sum::<f64>() / gains.len() as f64;
    let improved = gains.iter().filter(|g| **g > 0.0).count();
    assert!(
        mean >= 0.05,
        "mean held-out gain {mean:.3} over seeds is below 0.05: {gains:?}"
    );
    assert!(
        improved >= 2,
        "RL improved on the warm-up policy for only {improved} of 3 seeds: {gains:?}"
    );
}
