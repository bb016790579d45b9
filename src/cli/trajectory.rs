//! `flowrl trajectory validate|stats|export`

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand};
use flowrl_trajectory::export::to_trainer_records;
use flowrl_trajectory::{JsonlReport, ReadMode, TrajectoryStats};

#[derive(Debug, Subcommand)]
pub enum TrajectoryCmd {
    /// Check every line of a JSONL file; report bad lines and count good ones.
    Validate(ReadArgs),
    /// Counts, turns per trajectory, token counts and a reward summary (JSON).
    Stats(ReadArgs),
    /// Write the prompt/response/response_mask/reward layout of Python RL trainers.
    Export {
        #[command(flatten)]
        read: ReadArgs,
        /// Output JSONL file (standard output when absent).
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
}

#[derive(Debug, Args)]
pub struct ReadArgs {
    /// Trajectory JSONL file.
    file: PathBuf,
    /// Stop at the first bad line instead of reporting all of them.
    #[arg(long)]
    strict: bool,
}

fn read(args: &ReadArgs) -> anyhow::Result<JsonlReport> {
    if !args.file.exists() {
        anyhow::bail!("no such file: {}", args.file.display());
    }
    let mode = if args.strict {
        ReadMode::Strict
    } else {
        ReadMode::Lenient
    };
    JsonlReport::read_file(&args.file, mode)
        .with_context(|| format!("reading {}", args.file.display()))
}

pub fn run(cmd: TrajectoryCmd) -> anyhow::Result<ExitCode> {
    match cmd {
        TrajectoryCmd::Validate(args) => {
            let report = read(&args)?;
            for e in &report.errors {
                println!("{}:{e}", args.file.display());
            }
            println!(
                "{} valid, {} invalid, {} lines",
                report.trajectories.len(),
                report.errors.len(),
                report.lines
            );
            Ok(if report.errors.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        TrajectoryCmd::Stats(args) => {
            let report = read(&args)?;
            for e in &report.errors {
                tracing::warn!("{}:{e}", args.file.display());
            }
            let stats = TrajectoryStats::of(&report.trajectories);
            let mut v = serde_json::to_value(&stats)?;
            v["invalid_lines"] = report.errors.len().into();
            println!("{}", serde_json::to_string_pretty(&v)?);
            Ok(ExitCode::SUCCESS)
        }
        TrajectoryCmd::Export { read: args, output } => {
            let report = read(&args)?;
            for e in &report.errors {
                tracing::warn!("skipping {}:{e}", args.file.display());
            }
            let mut out: Box<dyn Write> = match &output {
                Some(p) => Box::new(std::io::BufWriter::new(
                    std::fs::File::create(p)
                        .with_context(|| format!("creating {}", p.display()))?,
                )),
                None => Box::new(std::io::stdout().lock()),
            };
            let mut n = 0;
            for t in &report.trajectories {
                for rec in to_trainer_records(t)? {
                    serde_json::to_writer(&mut out, &rec)?;
                    out.write_all(b"\n")?;
                    n += 1;
                }
            }
            out.flush()?;
            tracing::info!("wrote {n} records");
            Ok(ExitCode::SUCCESS)
        }
    }
}
