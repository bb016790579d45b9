//! `flowrl compare`: algorithm presets on equal budgets over several seeds,
//! summarised as a markdown table of held-out reward.
//!
//! For each environment and seed one supervised warm-up is run and
//! checkpointed; every algorithm then starts RL from a copy of that
//! checkpoint (same weights, same KL reference, same held-out "before"
//! figure), so the arms differ only in their advantages and objective.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use flowrl_data::SuiteConfig;
use flowrl_objectives::Preset;
use flowrl_train::config::DataSpec;
use flowrl_train::metrics::read_metrics;
use flowrl_train::{TrainConfig, Trainer};

use super::train::BudgetArgs;
use serde::Serialize;

/// Which environments to compare on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SuiteChoice {
    /// GRPO vs GSPO vs GSsPO on the think-action environment.
    ThinkAction,
    /// GRPO vs CWRPO on the canvas environment.
    Canvas,
    /// Both.
    Both,
}

/// `flowrl compare`.
#[derive(Debug, Args)]
pub struct CompareArgs {
    /// Environments: think-action (GRPO, GSPO, GSsPO), canvas (GRPO, CWRPO) or both.
    #[arg(long, value_enum, default_value_t = SuiteChoice::Both)]
    suite: SuiteChoice,
    /// Number of seeds (seeds first-seed, first-seed + 1, …).
    #[arg(long, default_value_t = 3)]
    seeds: u64,
    /// First seed.
    #[arg(long, default_value_t = 1)]
    first_seed: u64,
    // --steps, --warmup-steps, --tasks-per-step, --group-size: left out, the preset's.
    #[command(flatten)]
    budget: BudgetArgs,
    /// Most tokens the policy generates in one turn (default: the preset's).
    #[arg(long)]
    max_turn_tokens: Option<usize>,
    /// Held-out tasks evaluated before and after RL (default: the preset's).
    #[arg(long)]
    eval_tasks: Option<usize>,
    /// Training tasks per family of the built-in suite (default: the preset's).
    #[arg(long)]
    train_per_family: Option<usize>,
    /// Held-out tasks per family of the built-in suite (default: the preset's).
    #[arg(long)]
    heldout_per_family: Option<usize>,
    /// Output directory: runs, `compare.md` and `compare.json`.
    #[arg(long, default_value = "runs/compare")]
    out: PathBuf,
    /// Progress bars of the individual runs.
    #[arg(long)]
    progress: bool,
}

/// One arm of the comparison: an algorithm on an environment.
#[derive(Debug, Clone, Copy)]
struct Arm {
    env: &'static str,
    name: &'static str,
    /// The run preset the environment and budget come from.
    base: &'static str,
    /// The algorithm (advantages and objective).
    algorithm: Preset,
}

const THINK_ACTION_ARMS: [Arm; 3] = [
    Arm {
        env: "think-action",
        name: "GRPO",
        base: "workflow-r1",
        algorithm: Preset::Grpo,
    },
    Arm {
        env: "think-action",
        name: "GSPO",
        base: "workflow-r1",
        algorithm: Preset::Gspo,
    },
    Arm {
        env: "think-action",
        name: "GSsPO (workflow-r1)",
        base: "workflow-r1",
        algorithm: Preset::WorkflowR1,
    },
];

const CANVAS_ARMS: [Arm; 2] = [
    Arm {
        env: "canvas",
        name: "GRPO",
        base: "flowsteer",
        algorithm: Preset::Grpo,
    },
    Arm {
        env: "canvas",
        name: "CWRPO (flowsteer)",
        base: "flowsteer",
        algorithm: Preset::Flowsteer,
    },
];

/// The result of one run.
#[derive(Debug, Clone, Serialize)]
struct RunRecord {
    env: String,
    algorithm: String,
    seed: u64,
    before: f64,
    after: f64,
    before_by_family: BTreeMap<String, f64>,
    after_by_family: BTreeMap<String, f64>,
    seconds: f64,
}

/// Mean ± sample std over seeds of one arm.
#[derive(Debug, Clone, Serialize)]
struct ArmSummary {
    env: String,
    algorithm: String,
    seeds: usize,
    before_mean: f64,
    after_mean: f64,
    after_std: f64,
    gain_mean: f64,
    gain_std: f64,
    after_by_family: BTreeMap<String, f64>,
}

fn mean_std(v: &[f64]) -> (f64, f64) {
    let n = v.len() as f64;
    if v.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    let m = v.iter().sum::<f64>() / n;
    let s = if v.len() > 1 {
        (v.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / (n - 1.0)).sqrt()
    } else {
        0.0
    };
    (m, s)
}

impl CompareArgs {
    /// The configuration of `arm` on seed `seed`, with the budget applied.
    fn config(&self, arm: &Arm, seed: u64, dir: &Path, name: &str) -> anyhow::Result<TrainConfig> {
        let mut cfg = TrainConfig::preset(arm.base)?;
        cfg.preset = arm.algorithm;
        cfg.algorithm = None;
        cfg.name = name.to_string();
        cfg.out_dir = dir.to_path_buf();
        cfg.seed = seed;
        cfg.checkpoint_every = 0;
        cfg.eval.every = 0;
        self.budget.apply(&mut cfg);
        if let Some(v) = self.max_turn_tokens {
            cfg.rl.max_turn_tokens = v;
        }
        if let Some(v) = self.eval_tasks {
            cfg.eval.tasks = v;
        }
        match &mut cfg.data {
            DataSpec::Suite { config } => {
                *config = SuiteConfig {
                    seed,
                    train_per_family: self.train_per_family.unwrap_or(config.train_per_family),
                    heldout_per_family: self
                        .heldout_per_family
                        .unwrap_or(config.heldout_per_family),
                    families: config.families.clone(),
                };
            }
            DataSpec::Files { .. } => {
                if self.train_per_family.is_some() || self.heldout_per_family.is_some() {
                    bail!(
                        "--train-per-family and --heldout-per-family apply to the built-in suite"
                    );
                }
            }
        }
        Ok(cfg)
    }
}

/// The held-out reward per family of the last evaluation at `step` in a
/// run's metrics.
fn family_rewards(run_dir: &Path, step: usize) -> anyhow::Result<BTreeMap<String, f64>> {
    let recs = read_metrics(&run_dir.join("metrics.jsonl"))?;
    let rec = recs
        .iter()
        .rev()
        .find(|r| r["phase"] == "eval" && r["step"].as_u64() == Some(step as u64))
        .with_context(|| format!("no evaluation at step {step} in {}", run_dir.display()))?;
    Ok(rec["reward_by_family"]
        .as_object()
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_f64()?)))
                .collect()
        })
        .unwrap_or_default())
}

fn copy_dir(from: &Path, to: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(to).with_context(|| format!("cannot create {}", to.display()))?;
    for entry in
        std::fs::read_dir(from).with_context(|| format!("cannot read {}", from.display()))?
    {
        let entry = entry?;
        let dst = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &dst)?;
        } else {
            std::fs::copy(entry.path(), &dst)
                .with_context(|| format!("cannot copy to {}", dst.display()))?;
        }
    }
    Ok(())
}

fn fmt_family(m: &BTreeMap<String, f64>, fam: &str) -> String {
    m.get(fam).map_or("–".to_string(), |v| format!("{v:.3}"))
}

/// The markdown table of the arms.
fn table(summaries: &[ArmSummary]) -> String {
    let mut s = String::from(
        "| env | algorithm | seeds | held-out before RL | held-out after RL | gain | after: qa | after: math | after: code |\n\
         | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n",
    );
    for a in summaries {
        s.push_str(&format!(
            "| {} | {} | {} | {:.3} | {:.3} ± {:.3} | {:+.3} ± {:.3} | {} | {} | {} |\n",
            a.env,
            a.algorithm,
            a.seeds,
            a.before_mean,
            a.after_mean,
            a.after_std,
            a.gain_mean,
            a.gain_std,
            fmt_family(&a.after_by_family, "qa"),
            fmt_family(&a.after_by_family, "math"),
            fmt_family(&a.after_by_family, "code"),
        ));
    }
    s
}

fn summarise(runs: &[RunRecord], arms: &[Arm]) -> Vec<ArmSummary> {
    arms.iter()
        .map(|arm| {
            let rs: Vec<&RunRecord> = runs
                .iter()
                .filter(|r| r.env == arm.env && r.algorithm == arm.name)
                .collect();
            let before: Vec<f64> = rs.iter().map(|r| r.before).collect();
            let after: Vec<f64> = rs.iter().map(|r| r.after).collect();
            let gain: Vec<f64> = rs.iter().map(|r| r.after - r.before).collect();
            let mut fam: BTreeMap<String, Vec<f64>> = BTreeMap::new();
            for r in &rs {
                for (k, v) in &r.after_by_family {
                    fam.entry(k.clone()).or_default().push(*v);
                }
            }
            let (after_mean, after_std) = mean_std(&after);
            let (gain_mean, gain_std) = mean_std(&gain);
            ArmSummary {
                env: arm.env.to_string(),
                algorithm: arm.name.to_string(),
                seeds: rs.len(),
                before_mean: mean_std(&before).0,
                after_mean,
                after_std,
                gain_mean,
                gain_std,
                after_by_family: fam.into_iter().map(|(k, v)| (k, mean_std(&v).0)).collect(),
            }
        })
        .collect()
}

/// Runs the comparison.
pub fn run(args: CompareArgs) -> anyhow::Result<ExitCode> {
    if args.seeds == 0 {
        bail!("--seeds must be at least 1");
    }
    let start = Instant::now();
    let never = AtomicBool::new(false);
    let arms: Vec<Arm> = match args.suite {
        SuiteChoice::ThinkAction => THINK_ACTION_ARMS.to_vec(),
        SuiteChoice::Canvas => CANVAS_ARMS.to_vec(),
        SuiteChoice::Both => THINK_ACTION_ARMS
            .iter()
            .chain(&CANVAS_ARMS)
            .copied()
            .collect(),
    };
    let envs: Vec<&str> = {
        let mut v: Vec<&str> = arms.iter().map(|a| a.env).collect();
        v.dedup();
        v
    };
    let seeds: Vec<u64> = (0..args.seeds).map(|i| args.first_seed + i).collect();
    let mut runs = Vec::new();
    for env in &envs {
        let env_arms: Vec<&Arm> = arms.iter().filter(|a| a.env == *env).collect();
        for &seed in &seeds {
            let dir = args.out.join(env).join(format!("seed-{seed}"));
            // One warm-up per environment and seed, shared by every arm.
            let mut warm_cfg = args.config(env_arms[0], seed, &dir, "warmup")?;
            warm_cfg.rl.steps = 0;
            // A fresh start: an old comparison's checkpoints would be resumed.
            if dir.exists() {
                std::fs::remove_dir_all(&dir)
                    .with_context(|| format!("cannot clear {}", dir.display()))?;
            }
            eprintln!("flowrl compare: {env}, seed {seed}: warm-up");
            let mut warm = Trainer::new(warm_cfg, false)?;
            warm.show_progress(args.progress);
            let ws = warm.run(&never)?;
            let before_by_family = family_rewards(&ws.run_dir, 0)?;
            for arm in &env_arms {
                let name = arm
                    .name
                    .split_whitespace()
                    .next()
                    .unwrap_or(arm.name)
                    .to_lowercase();
                let cfg = args.config(arm, seed, &dir, &name)?;
                let run_dir = cfg.run_dir();
                copy_dir(
                    &ws.run_dir.join("checkpoints"),
                    &run_dir.join("checkpoints"),
                )?;
                std::fs::copy(
                    ws.run_dir.join("metrics.jsonl"),
                    run_dir.join("metrics.jsonl"),
                )
                .with_context(|| format!("cannot copy metrics to {}", run_dir.display()))?;
                let steps = cfg.rl.steps;
                let mut t = Trainer::new(cfg, true)?;
                t.show_progress(args.progress);
                let s = t.run(&never)?;
                let after_by_family = family_rewards(&s.run_dir, steps)?;
                eprintln!(
                    "flowrl compare: {env}, seed {seed}, {}: held-out {:.3} -> {:.3} ({:.0} s)",
                    arm.name, s.eval_before, s.eval_after, s.seconds
                );
                runs.push(RunRecord {
                    env: env.to_string(),
                    algorithm: arm.name.to_string(),
                    seed,
                    before: s.eval_before,
                    after: s.eval_after,
                    before_by_family: before_by_family.clone(),
                    after_by_family,
                    seconds: s.seconds,
                });
            }
        }
    }
    let summaries = summarise(&runs, &arms);
    let wall = start.elapsed().as_secs_f64();
    let budget = args
        .config(&arms[0], seeds[0], &args.out, "budget")
        .map(|c| {
            format!(
                "{} warm-up steps, {} RL steps × {} tasks × G = {}, {} held-out tasks",
                c.warmup.steps, c.rl.steps, c.rl.tasks_per_step, c.rl.group_size, c.eval.tasks
            )
        })?;
    let md = format!(
        "{}\nHeld-out reward (greedy), mean ± std over seeds {:?}; per-family columns are means after RL. \
         Budget per run: {budget}. Wall time {:.0} s.\n",
        table(&summaries),
        seeds,
        wall
    );
    print!("{md}");
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create {}", args.out.display()))?;
    let md_path = args.out.join("compare.md");
    std::fs::write(&md_path, &md).with_context(|| format!("cannot write {}", md_path.display()))?;
    let json_path = args.out.join("compare.json");
    let json = serde_json::json!({
        "seeds": seeds,
        "budget": budget,
        "wall_seconds": wall,
        "summary": summaries,
        "runs": runs,
    });
    std::fs::write(&json_path, serde_json::to_string_pretty(&json)?)
        .with_context(|| format!("cannot write {}", json_path.display()))?;
    eprintln!("wrote {} and {}", md_path.display(), json_path.display());
    Ok(ExitCode::SUCCESS)
}
