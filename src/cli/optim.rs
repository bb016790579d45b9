//! `flowrl optim schedule|inspect|check|schema`

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand};
use flowrl_optim::{OptimConfig, OptimizerState, ParamGroups};

#[derive(Debug, Subcommand)]
pub enum OptimCmd {
    /// Print the learning rate of every update of a configured run (TSV: step, lr, factor).
    Schedule {
        #[command(flatten)]
        config: ConfigArgs,
        /// Number of updates to print (default: the schedule's total, or 100).
        #[arg(long)]
        steps: Option<u64>,
    },
    /// Summarise an optimizer state file: kind, hyper-parameters, steps, parameters per group.
    Inspect {
        /// State file written by the trainer.
        file: PathBuf,
        /// Also list every parameter (name, group, length, updates).
        #[arg(long)]
        params: bool,
    },
    /// Validate an optimization config file and print it with defaults filled in.
    Check(ConfigArgs),
    /// Print the JSON Schema of optimization config files.
    Schema,
}

#[derive(Debug, Args)]
pub struct ConfigArgs {
    /// Optimization config (JSON, see `flowrl optim schema`).
    #[arg(long, conflicts_with = "flowsteer")]
    config: Option<PathBuf>,
    /// Use FlowSteer's setting (AdamW 1e-5, cosine with 10 warm-up updates) over this many updates.
    #[arg(long, value_name = "TOTAL_STEPS")]
    flowsteer: Option<u64>,
}

fn load_config(args: &ConfigArgs) -> anyhow::Result<OptimConfig> {
    let config = match (&args.config, args.flowsteer) {
        (Some(path), _) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            serde_json::from_str::<OptimConfig>(&text)
                .with_context(|| format!("parsing {}", path.display()))?
        }
        (None, Some(total)) => OptimConfig::flowsteer(total),
        (None, None) => anyhow::bail!("give --config FILE or --flowsteer TOTAL_STEPS"),
    };
    config.validate().context("invalid optimization config")?;
    Ok(config)
}

pub fn run(cmd: OptimCmd) -> anyhow::Result<ExitCode> {
    match cmd {
        OptimCmd::Schedule { config, steps } => {
            let config = load_config(&config)?;
            let steps = steps.unwrap_or(match config.schedule {
                flowrl_optim::ScheduleConfig::Linear { total_steps, .. }
                | flowrl_optim::ScheduleConfig::Cosine { total_steps, .. } => total_steps,
                _ => 100,
            });
            println!("step\tlr\tfactor");
            for s in 0..steps {
                println!(
                    "{s}\t{:e}\t{:.6}",
                    config.lr_at(s),
                    config.schedule.factor(s)
                );
            }
        }
        OptimCmd::Inspect { file, params } => {
            let state = OptimizerState::load(&file)
                .with_context(|| format!("reading {}", file.display()))?;
            let mut groups_with = ParamGroups::from_configs(state.groups.iter().cloned())
                .context("state file groups")?;
            for (p, g) in &state.assignments {
                groups_with
                    .assign(p.clone(), g)
                    .context("state file assignments")?;
            }
            println!("optimizer: {}", serde_json::to_string(&state.config)?);
            println!("updates:   {}", state.step);
            let total: usize = state.params.values().map(|p| p.len()).sum();
            println!(
                "params:    {} tensors, {total} elements",
                state.params.len()
            );
            let mut per_group: std::collections::BTreeMap<&str, (usize, usize)> =
                Default::default();
            for (name, p) in &state.params {
                let e = per_group.entry(groups_with.group_name(name)).or_default();
                e.0 += 1;
                e.1 += p.len();
            }
            for (g, (n, len)) in &per_group {
                println!("group {g}: {n} tensors, {len} elements");
            }
            if params {
                for (name, p) in &state.params {
                    println!(
                        "{name}\t{}\t{}\t{}",
                        groups_with.group_name(name),
                        p.len(),
                        p.step
                    );
                }
            }
        }
        OptimCmd::Check(args) => {
            let config = load_config(&args)?;
            println!("{}", serde_json::to_string_pretty(&config)?);
        }
        OptimCmd::Schema => print!("{}", flowrl_optim::optim_config_schema_json()),
    }
    Ok(ExitCode::SUCCESS)
}
