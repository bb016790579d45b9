//! `flowrl train`, `flowrl eval`, `flowrl rollout`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, bail};
use clap::Args;
use flowrl_train::config::train_config_schema_json;
use flowrl_train::{TrainConfig, TrainError, Trainer};
use flowrl_trajectory::JsonlWriter;

/// Options shared by the commands that build a run.
#[derive(Debug, Args)]
pub struct RunOpts {
    /// Run configuration (TOML or JSON; see `flowrl train --print-schema`).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Start from a preset: workflow-r1 (default), flowsteer, grpo, gspo.
    #[arg(long)]
    preset: Option<String>,
    /// Run name (outputs in <out>/<name>/).
    #[arg(long)]
    name: Option<String>,
    /// Parent directory of runs.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Seed.
    #[arg(long)]
    seed: Option<u64>,
}

/// Budget flags shared by `flowrl train` and `flowrl compare`; each one
/// left out keeps the value of the config file or preset.
#[derive(Debug, Args)]
pub struct BudgetArgs {
    /// RL steps.
    #[arg(long)]
    steps: Option<usize>,
    /// Supervised warm-up steps.
    #[arg(long)]
    warmup_steps: Option<usize>,
    /// Tasks per RL step.
    #[arg(long)]
    tasks_per_step: Option<usize>,
    /// Rollouts per task (G).
    #[arg(long)]
    group_size: Option<usize>,
}

impl BudgetArgs {
    /// Writes the given flags into `cfg`.
    pub fn apply(&self, cfg: &mut TrainConfig) {
        if let Some(v) = self.steps {
            cfg.rl.steps = v;
        }
        if let Some(v) = self.warmup_steps {
            cfg.warmup.steps = v;
        }
        if let Some(v) = self.tasks_per_step {
            cfg.rl.tasks_per_step = v;
        }
        if let Some(v) = self.group_size {
            cfg.rl.group_size = v;
        }
    }
}

/// `flowrl train`.
#[derive(Debug, Args)]
pub struct TrainArgs {
    #[command(flatten)]
    opts: RunOpts,
    #[command(flatten)]
    budget: BudgetArgs,
    /// Continue from the run's latest checkpoint.
    #[arg(long)]
    resume: bool,
    /// No progress bars.
    #[arg(long)]
    no_progress: bool,
    /// Write every RL step's trajectories to <run>/rollouts/.
    #[arg(long)]
    save_rollouts: bool,
    /// Peak learning rate of the RL optimizer.
    #[arg(long)]
    lr: Option<f32>,
    /// Print the JSON Schema of the configuration and exit.
    #[arg(long)]
    print_schema: bool,
    /// Print the effective configuration as JSON and exit.
    #[arg(long)]
    print_config: bool,
}

/// `flowrl eval`.
#[derive(Debug, Args)]
pub struct EvalArgs {
    #[command(flatten)]
    opts: RunOpts,
    /// Held-out tasks to evaluate.
    #[arg(long)]
    tasks: Option<usize>,
}

/// `flowrl rollout`.
#[derive(Debug, Args)]
pub struct RolloutArgs {
    #[command(flatten)]
    opts: RunOpts,
    /// Number of held-out tasks to run.
    #[arg(long, default_value_t = 8)]
    tasks: usize,
    /// Sampling temperature (0: greedy).
    #[arg(long, default_value_t = 1.0)]
    temperature: f64,
    /// Output JSONL file.
    #[arg(long, short)]
    output: PathBuf,
}

fn load_config(opts: &RunOpts) -> anyhow::Result<TrainConfig> {
    let mut cfg = match &opts.config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read config {}", path.display()))?;
            let is_toml = path.extension().is_some_and(|e| e == "toml");
            if is_toml {
                toml::from_str(&text)
                    .with_context(|| format!("invalid config {}", path.display()))?
            } else {
                serde_json::from_str(&text)
                    .with_context(|| format!("invalid config {}", path.display()))?
            }
        }
        None => TrainConfig::preset(opts.preset.as_deref().unwrap_or("workflow-r1"))?,
    };
    if opts.config.is_some()
        && let Some(p) = &opts.preset
    {
        bail!("--preset {p} and --config cannot be combined: put `preset` in the config file");
    }
    if let Some(n) = &opts.name {
        cfg.name = n.clone();
    }
    if let Some(o) = &opts.out {
        cfg.out_dir = o.clone();
    }
    if let Some(s) = opts.seed {
        cfg.seed = s;
    }
    Ok(cfg)
}

fn interrupt_flag() -> Arc<AtomicBool> {
    let flag = Arc::new(AtomicBool::new(false));
    let f = flag.clone();
    if let Err(e) = ctrlc::set_handler(move || {
        if f.swap(true, Ordering::SeqCst) {
            std::process::exit(130);
        }
        eprintln!(
            "\ninterrupt: saving a checkpoint after the current step (press Ctrl-C again to abort now)"
        );
    }) {
        tracing::warn!("cannot install the Ctrl-C handler: {e}");
    }
    flag
}

pub fn run_train(args: TrainArgs) -> anyhow::Result<ExitCode> {
    if args.print_schema {
        println!("{}", train_config_schema_json());
        return Ok(ExitCode::SUCCESS);
    }
    let mut cfg = load_config(&args.opts)?;
    args.budget.apply(&mut cfg);
    if args.save_rollouts {
        cfg.save_rollouts = true;
    }
    if let Some(lr) = args.lr {
        match &mut cfg.optim.optimizer {
            flowrl_optim::OptimizerConfig::AdamW(c) => c.lr = lr,
            flowrl_optim::OptimizerConfig::Sgd(c) => c.lr = lr,
        }
    }
    if args.print_config {
        println!("{}", serde_json::to_string_pretty(&cfg)?);
        return Ok(ExitCode::SUCCESS);
    }
    let mut trainer = Trainer::new(cfg, args.resume)?;
    trainer.show_progress(!args.no_progress);
    let flag = interrupt_flag();
    eprintln!("flowrl train: outputs in {}", trainer.run_dir().display());
    match trainer.run(&flag) {
        Ok(s) => {
            println!(
                "held-out reward: {:.3} before RL -> {:.3} after RL (accuracy {:.3} -> {:.3}); {} RL steps in {:.0} s",
                s.eval_before,
                s.eval_after,
                s.accuracy_before,
                s.accuracy_after,
                s.steps,
                s.seconds
            );
            if let Some(line) = family_line(&s.run_dir, s.steps) {
                println!("{line}");
            }
            println!(
                "wrote {}/metrics.jsonl, {}/curve.svg, {}/checkpoints/",
                s.run_dir.display(),
                s.run_dir.display(),
                s.run_dir.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(TrainError::Interrupted) => {
            eprintln!(
                "interrupted: checkpoint saved; continue with `flowrl train --resume` and the same options"
            );
            Ok(ExitCode::from(130))
        }
        Err(e) => Err(e.into()),
    }
}

/// `held-out reward by family: code 0.417 -> 0.750, …` from the run's
/// evaluations before RL and after `steps` steps.
fn family_line(run_dir: &std::path::Path, steps: usize) -> Option<String> {
    let recs = flowrl_train::metrics::read_metrics(&run_dir.join("metrics.jsonl")).ok()?;
    let at = |step: usize| {
        recs.iter()
            .rev()
            .find(|r| r["phase"] == "eval" && r["step"].as_u64() == Some(step as u64))
            .and_then(|r| r["reward_by_family"].as_object().cloned())
    };
    let (before, after) = (at(0)?, at(steps)?);
    let parts: Vec<String> = after
        .iter()
        .map(|(fam, a)| {
            let b = before.get(fam).and_then(|v| v.as_f64()).unwrap_or(f64::NAN);
            format!("{fam} {b:.3} -> {:.3}", a.as_f64().unwrap_or(f64::NAN))
        })
        .collect();
    Some(format!("held-out reward by family: {}", parts.join(", ")))
}

pub fn run_eval(args: EvalArgs) -> anyhow::Result<ExitCode> {
    let mut cfg = load_config(&args.opts)?;
    if let Some(t) = args.tasks {
        cfg.eval.tasks = t;
    }
    let root = cfg.run_dir().join("checkpoints");
    if !root.join("latest").exists() {
        bail!(
            "no checkpoint in {}: train first, or pass --name/--out of an existing run",
            root.display()
        );
    }
    let trainer = Trainer::new(cfg, true)?;
    let s = trainer.evaluate()?;
    println!("{}", serde_json::to_string_pretty(&s)?);
    Ok(ExitCode::SUCCESS)
}

pub fn run_rollout(args: RolloutArgs) -> anyhow::Result<ExitCode> {
    let cfg = load_config(&args.opts)?;
    let trainer = Trainer::new(cfg, true)?;
    let tasks: Vec<_> = trainer.heldout().iter().take(args.tasks).collect();
    let eps = trainer.episodes(&tasks, args.temperature, 0, "rollout")?;
    let mut w = JsonlWriter::create(&args.output)
        .with_context(|| format!("cannot create {}", args.output.display()))?;
    for e in &eps {
        w.write(&e.trajectory)?;
    }
    w.finish()?;
    eprintln!(
        "wrote {} trajectories to {}",
        eps.len(),
        args.output.display()
    );
    Ok(ExitCode::SUCCESS)
}
