//! `flowrl schema …`

use std::process::ExitCode;

use clap::{Args, ValueEnum};

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum SchemaKind {
    /// One record of a trajectory JSONL file.
    Trajectory,
}

#[derive(Debug, Args)]
pub struct SchemaArgs {
    /// Which format.
    kind: SchemaKind,
}

pub fn run(args: SchemaArgs) -> anyhow::Result<ExitCode> {
    let text = match args.kind {
        SchemaKind::Trajectory => flowrl_trajectory::schema::trajectory_schema_json(),
    };
    print!("{text}");
    Ok(ExitCode::SUCCESS)
}
