//! End-to-end runs of the trainer on small budgets.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use flowrl_data::{SuiteConfig, TaskFamily};
use flowrl_train::config::{DataFile, DataSpec, EvalConfig, RlConfig, WarmupConfig};
use flowrl_train::metrics::read_metrics;
use flowrl_train::{TrainConfig, TrainError, Trainer};

fn small(dir: &Path, name: &str, seed: u64) -> TrainConfig {
    let base = TrainConfig::default();
    TrainConfig {
        out_dir: dir.to_path_buf(),
        name: name.into(),
        seed,
        data: DataSpec::Suite {
            config: SuiteConfig {
                seed,
                train_per_family: 4,
                heldout_per_family: 2,
                families: vec![TaskFamily::Math, TaskFamily::Qa, TaskFamily::Code],
            },
        },
        warmup: WarmupConfig {
            steps: 10,
            batch_size: 6,
            demos_per_task: 1,
            ..base.warmup.clone()
        },
        rl: RlConfig {
            steps: 3,
            tasks_per_step: 2,
            group_size: 3,
            ppo_epochs: 1,
            ..base.rl.clone()
        },
        eval: EvalConfig { tasks: 3, every: 0 },
        checkpoint_every: 1,
        ..base
    }
}

fn rl_curve(dir: &Path, name: &str) -> Vec<(u64, f64, f64)> {
    read_metrics(&dir.join(name).join("metrics.jsonl"))
        .unwrap()
        .into_iter()
        .filter(|r| r["phase"] == "rl")
        .map(|r| {
            (
                r["step"].as_u64().unwrap(),
                r["reward_mean"].as_f64().unwrap(),
                r["loss"].as_f64().unwrap_or(f64::NAN),
            )
        })
        .collect()
}

#[test]
fn a_run_writes_metrics_curve_and_checkpoints_and_resumes_on_the_same_curve() {
    let dir = tempfile::tempdir().unwrap();
    let never = AtomicBool::new(false);

    // Uninterrupted.
    let mut a = Trainer::new(small(dir.path(), "a", 3), false).unwrap();
    a.show_progress(false);
    let sa = a.run(&never).unwrap();
    assert_eq!(sa.steps, 3);
    let run = dir.path().join("a");
    for f in [
        "metrics.jsonl",
        "curve.svg",
        "config.json",
        "checkpoints/latest",
        "checkpoints/step-000003/model.safetensors",
    ] {
        assert!(run.join(f).exists(), "missing {f}");
    }
    assert!(
        std::fs::read_to_string(run.join("curve.svg"))
            .unwrap()
            .contains("<polyline")
    );
    let curve_a = rl_curve(dir.path(), "a");
    assert_eq!(curve_a.iter().map(|c| c.0).collect::<Vec<_>>(), [0, 1, 2]);

    // Interrupted as soon as the first RL step is logged, then resumed.
    let flag = Arc::new(AtomicBool::new(false));
    let metrics = dir.path().join("b").join("metrics.jsonl");
    let watcher = {
        let flag = flag.clone();
        std::thread::spawn(move || {
            for _ in 0..60_000 {
                if std::fs::read_to_string(&metrics).is_ok_and(|t| t.contains("\"phase\":\"rl\"")) {
                    flag.store(true, Ordering::SeqCst);
                    return;
                }
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
        })
    };
    let mut b = Trainer::new(small(dir.path(), "b", 3), false).unwrap();
    b.show_progress(false);
    let first = b.run(&flag);
    watcher.join().unwrap();
    assert!(matches!(first, Err(TrainError::Interrupted)), "{first:?}");
    let done = rl_curve(dir.path(), "b").len();
    assert!((1..3).contains(&done), "interrupted after {done} steps");

    let mut b = Trainer::new(small(dir.path(), "b", 3), true).unwrap();
    b.show_progress(false);
    let sb = b.run(&never).unwrap();
    assert_eq!(
        rl_curve(dir.path(), "b"),
        curve_a,
        "the resumed run must continue the same curve"
    );
    assert_eq!(sb.eval_after, sa.eval_after);
    assert_eq!(sb.eval_before, sa.eval_before);
}

#[test]
fn invalid_configurations_name_the_field() {
    let e = TrainConfig::preset("ppo").unwrap_err().to_string();
    assert!(
        e.contains("preset") && e.contains("workflow-r1, flowsteer, grpo, gspo"),
        "{e}"
    );
    let bad = |rl: RlConfig| {
        TrainConfig {
            rl,
            ..TrainConfig::default()
        }
        .validate()
        .unwrap_err()
        .to_string()
    };
    assert!(
        bad(RlConfig {
            group_size: 0,
            ..RlConfig::default()
        })
        .contains("rl.group_size")
    );
    assert!(
        bad(RlConfig {
            top_p: 1.5,
            ..RlConfig::default()
        })
        .contains("rl.top_p")
    );
    // The default objective has a KL term, which needs the reference.
    let e = bad(RlConfig {
        reference: false,
        ..RlConfig::default()
    });
    assert!(e.contains("rl.reference") && e.contains("kl_coef"), "{e}");
    let files = |path: &str, format: &str| TrainConfig {
        data: DataSpec::Files {
            files: vec![DataFile {
                path: path.into(),
                format: format.into(),
            }],
            heldout_fraction: 0.1,
        },
        ..TrainConfig::default()
    };
    let e = Trainer::new(files("/nonexistent/nq.jsonl", "qa"), false)
        .err()
        .expect("missing file")
        .to_string();
    assert!(e.contains("/nonexistent/nq.jsonl"), "{e}");
    let e = files("x.jsonl", "csv").validate().unwrap_err().to_string();
    assert!(e.contains("data.files[0].format"), "{e}");
    // Unknown fields are rejected by the config parser.
    let e = serde_json::from_str::<TrainConfig>("{\"rl\": {\"stepz\": 3}}")
        .unwrap_err()
        .to_string();
    assert!(e.contains("stepz"), "{e}");
}

#[test]
fn an_unreachable_executor_stops_the_run_with_a_clear_message() {
    // A loopback port with nothing listening.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = tempfile::tempdir().unwrap();
    let cfg = TrainConfig {
        executor: flowrl_train::config::ExecutorSpec::Openai {
            config: flowrl_llm_openai::OpenAiConfig {
                base_url: Some(format!("http://127.0.0.1:{port}/v1")),
                model: Some("m".into()),
                max_retries: 1,
                backoff_base_ms: 10,
                connect_timeout_s: 1.0,
                timeout_s: 2.0,
                ..Default::default()
            },
        },
        ..small(dir.path(), "dead", 1)
    };
    let mut t = Trainer::new(cfg, false).unwrap();
    t.show_progress(false);
    let e = t.run(&AtomicBool::new(false)).unwrap_err().to_string();
    assert!(
        e.contains("executor") && e.contains(&format!("127.0.0.1:{port}")),
        "{e}"
    );
}

/// The values of the policy's LoRA adapters, in order.
fn adapter_values(t: &Trainer) -> Vec<Vec<f32>> {
    t.policy()
        .model
        .lora_params()
        .iter()
        .map(|p| p.value.clone())
        .collect()
}

#[test]
fn lora_rl_trains_adapters_only_and_resumes_them() {
    let dir = tempfile::tempdir().unwrap();
    let never = AtomicBool::new(false);
    let mut cfg = small(dir.path(), "l", 4);
    // Enough warm-up and rollouts for rewards to differ within a group.
    cfg.warmup.steps = 40;
    cfg.rl.tasks_per_step = 3;
    cfg.rl.group_size = 4;
    cfg.rl.lora = Some(flowrl_model::LoraConfig {
        rank: 4,
        alpha: 8.0,
        ..Default::default()
    });
    let mut t = Trainer::new(cfg.clone(), false).unwrap();
    t.show_progress(false);
    t.run(&never).unwrap();
    assert_eq!(t.policy().mode, flowrl_model::GradMode::Lora);
    let ckpts = dir.path().join("l/checkpoints");
    let step = ckpts.join("step-000003");
    // The base weights are the warmed-up ones (saved at step 0, before any
    // RL update), byte for byte; they are the KL reference, so no copy of
    // them is written; the adapters moved.
    assert_eq!(
        std::fs::read(step.join("model.safetensors")).unwrap(),
        std::fs::read(ckpts.join("step-000000/model.safetensors")).unwrap(),
        "RL changed the frozen base weights"
    );
    assert!(!step.join("reference.safetensors").exists());
    // The KL term reads the base with the adapters switched off: zero at
    // the first update (B = 0), positive once the adapters moved.
    let kls: Vec<f64> = std::fs::read_to_string(dir.path().join("l/metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| v["phase"] == "rl")
        .map(|v| v["kl"].as_f64().unwrap())
        .collect();
    assert_eq!(kls.len(), 3, "{kls:?}");
    assert!(kls[2] > 0.0, "no KL to the base after three steps: {kls:?}");
    let trained = adapter_values(&t);
    assert!(!trained.is_empty());
    assert!(
        t.policy()
            .model
            .lora_params()
            .iter()
            .filter(|p| p.name.contains("lora_B"))
            .any(|p| p.value.iter().any(|v| *v != 0.0)),
        "no adapter was trained"
    );
    assert!(step.join("adapter.safetensors").is_file());

    // Resuming loads the adapters; resuming without rl.lora is refused.
    let resumed = Trainer::new(cfg.clone(), true).unwrap();
    assert_eq!(resumed.policy().mode, flowrl_model::GradMode::Lora);
    assert_eq!(adapter_values(&resumed), trained);
    let mut full = cfg.clone();
    full.rl.lora = None;
    let err = Trainer::new(full, true)
        .err()
        .expect("resumed without rl.lora");
    assert!(err.to_string().contains("rl.lora"), "{err}");

    let mut bad = cfg;
    bad.name = "bad".into();
    bad.rl.lora.as_mut().unwrap().targets = vec!["mlp".into()];
    let err = Trainer::new(bad, false)
        .err()
        .expect("unknown LoRA target accepted");
    assert!(err.to_string().contains("rl.lora"), "{err}");
}

#[test]
fn updates_take_log_probs_over_the_sampled_nucleus() {
    use flowrl_model::Support;
    let rl = RlConfig::default();
    assert_eq!(rl.logprob_support(), Support::Nucleus { top_p: 0.9 });
    let full = RlConfig {
        nucleus_logprobs: false,
        ..rl.clone()
    };
    assert_eq!(full.logprob_support(), Support::Full);
    let unfiltered = RlConfig { top_p: 1.0, ..rl };
    assert_eq!(unfiltered.logprob_support(), Support::Full);
}
