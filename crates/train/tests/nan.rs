//! A non-finite loss skips the update and is logged; several in a row stop
//! the run with a clear message and leave the last checkpoint intact.
//!
//! The fault is real, not a test hook: a checkpoint's KL reference weights
//! are overwritten with NaN on disk, the run resumes from it, and every
//! reference log-prob — hence every KL term and every loss — is NaN while
//! the policy itself still samples normally.

use std::path::Path;
use std::sync::atomic::AtomicBool;

use flowrl_data::{SuiteConfig, TaskFamily};
use flowrl_train::config::{DataSpec, EvalConfig, RlConfig, WarmupConfig};
use flowrl_train::metrics::read_metrics;
use flowrl_train::{TrainConfig, TrainError, Trainer};

fn small(dir: &Path, steps: usize, max_bad_steps: usize) -> TrainConfig {
    let base = TrainConfig::default();
    assert!(base.algorithm().objective.kl_coef > 0.0, "needs a KL term");
    TrainConfig {
        out_dir: dir.to_path_buf(),
        name: "nan".into(),
        seed: 5,
        data: DataSpec::Suite {
            config: SuiteConfig {
                seed: 5,
                train_per_family: 4,
                heldout_per_family: 1,
                families: vec![TaskFamily::Math, TaskFamily::Qa, TaskFamily::Code],
            },
        },
        warmup: WarmupConfig {
            steps: 4,
            batch_size: 4,
            demos_per_task: 1,
            ..base.warmup.clone()
        },
        rl: RlConfig {
            steps,
            tasks_per_step: 2,
            group_size: 2,
            ppo_epochs: 1,
            minibatches: 1,
            ..base.rl.clone()
        },
        eval: EvalConfig { tasks: 2, every: 0 },
        checkpoint_every: 1,
        max_bad_steps,
        ..base
    }
}

/// Overwrites every F32 tensor of a safetensors file with NaN, keeping its
/// layout (and thus its loadability) intact.
fn poison_safetensors(path: &Path) {
    let mut bytes = std::fs::read(path).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    let mut poisoned = 0;
    for (name, t) in header.as_object().unwrap() {
        if name == "__metadata__" || t["dtype"] != "F32" {
            continue;
        }
        let start = 8 + n + t["data_offsets"][0].as_u64().unwrap() as usize;
        let end = 8 + n + t["data_offsets"][1].as_u64().unwrap() as usize;
        for chunk in bytes[start..end].chunks_exact_mut(4) {
            chunk.copy_from_slice(&f32::NAN.to_le_bytes());
        }
        poisoned += 1;
    }
    assert!(poisoned > 0, "no F32 tensor in {}", path.display());
    std::fs::write(path, bytes).unwrap();
}

fn latest(run: &Path) -> std::path::PathBuf {
    let name = std::fs::read_to_string(run.join("checkpoints/latest")).unwrap();
    run.join("checkpoints").join(name.trim())
}

#[test]
fn nan_losses_are_skipped_logged_and_stop_the_run_when_they_persist() {
    let dir = tempfile::tempdir().unwrap();
    let never = AtomicBool::new(false);
    let run = dir.path().join("nan");

    // One healthy step writes a checkpoint with the KL reference.
    let mut t = Trainer::new(small(dir.path(), 1, 3), false).unwrap();
    t.show_progress(false);
    t.run(&never).unwrap();
    let ckpt = latest(&run);
    let reference = ckpt.join("reference.safetensors");
    assert!(reference.is_file(), "the checkpoint keeps the KL reference");
    poison_safetensors(&reference);
    let weights_before = std::fs::read(ckpt.join("model.safetensors")).unwrap();

    // Resumed with a tolerance larger than the run: every update is skipped,
    // counted and the run still ends.
    let mut t = Trainer::new(small(dir.path(), 3, 10), true).unwrap();
    t.show_progress(false);
    t.run(&never).unwrap();
    let rl: Vec<_> = read_metrics(&run.join("metrics.jsonl"))
        .unwrap()
        .into_iter()
        .filter(|r| r["phase"] == "rl")
        .collect();
    assert_eq!(rl.len(), 3);
    assert_eq!(rl[0]["skipped_updates"], 0, "the healthy step: {}", rl[0]);
    let entropy = rl[0]["entropy"].as_f64().unwrap();
    assert!(
        entropy.is_finite() && entropy > 0.0,
        "the sampled tokens' mean negative log-prob: {entropy}"
    );
    for r in &rl[1..] {
        assert_eq!(r["skipped_updates"], 1, "{r}");
        assert!(
            r["loss"].as_f64().is_none_or(f64::is_nan),
            "no loss is reported for a skipped update: {r}"
        );
    }
    // No update was applied: the final weights are the poisoned
    // checkpoint's policy weights, bit for bit.
    let end = latest(&run);
    assert_ne!(end, ckpt);
    assert_eq!(
        std::fs::read(end.join("model.safetensors")).unwrap(),
        weights_before,
        "a skipped update must not change the weights"
    );

    // With the default tolerance the run stops, naming the cause, and the
    // checkpoint it resumed from stays intact and loadable.
    // Two epochs: both updates of the first resumed step fail, so the run
    // stops inside that step, before it could write a checkpoint.
    let mut cfg = small(dir.path(), 8, 2);
    cfg.name = "nan-stop".into();
    cfg.rl.ppo_epochs = 2;
    let run2 = dir.path().join("nan-stop");
    let mut t = Trainer::new(
        TrainConfig {
            rl: RlConfig {
                steps: 1,
                ..cfg.rl.clone()
            },
            ..cfg.clone()
        },
        false,
    )
    .unwrap();
    t.show_progress(false);
    t.run(&never).unwrap();
    let ckpt2 = latest(&run2);
    poison_safetensors(&ckpt2.join("reference.safetensors"));
    let snapshot: Vec<_> = ["model.safetensors", "optim.bin", "state.json"]
        .iter()
        .map(|f| std::fs::read(ckpt2.join(f)).unwrap())
        .collect();
    let mut t = Trainer::new(cfg.clone(), true).unwrap();
    t.show_progress(false);
    let err = t.run(&never).unwrap_err();
    assert!(matches!(err, TrainError::Diverged(2)), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains("non-finite") && msg.contains("checkpoint is intact"),
        "{msg}"
    );
    assert_eq!(
        latest(&run2),
        ckpt2,
        "no checkpoint written after the fault"
    );
    for (f, bytes) in ["model.safetensors", "optim.bin", "state.json"]
        .iter()
        .zip(&snapshot)
    {
        assert_eq!(&std::fs::read(ckpt2.join(f)).unwrap(), bytes, "{f} changed");
    }
    Trainer::new(cfg, true).expect("the last checkpoint still loads");
}
