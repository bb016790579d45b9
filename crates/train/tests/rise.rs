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
            tasks_per_step: 6,
            group_size: 8,
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
/// lr 5e-5): held-out gains +0.069 (seed 1), −0.028 (seed 2) and +0.028
/// (seed 3), 266 s for the three seeds in release on the quiet 2-core
/// machine (with full-softmax log-probs: +0.111, 0.000, −0.014). The first
/// operator follows the advantage pooled over families rather than each
/// family's own (docs/training.md, "The rise budget, second round"), and
/// lr ≥ 1e-4 breaks the protocol. Until a recipe passes on this budget the
/// test stays ignored.
#[test]
#[ignore = "not yet robust on this budget (measured gains +0.07 / -0.03 / +0.03) and 5-10 minutes on 2 cores; run with `cargo test -p flowrl-train --test rise -- --ignored`"]
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
