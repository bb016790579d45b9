//! `flowrl loss --input batch.json`: evaluate a policy objective on a token
//! batch given as JSON and print `{"loss", "grad", "stats", …}` as JSON.

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use flowrl_objectives::LossRequest;

#[derive(Debug, Args)]
pub struct LossArgs {
    /// Request file (JSON); `-` reads standard input.
    #[arg(long, short)]
    input: PathBuf,
}

pub fn run(args: LossArgs) -> anyhow::Result<ExitCode> {
    let text = if args.input.as_os_str() == "-" {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .context("reading the request from standard input")?;
        s
    } else {
        std::fs::read_to_string(&args.input)
            .with_context(|| format!("reading {}", args.input.display()))?
    };
    let request: LossRequest = serde_json::from_str(&text)
        .with_context(|| format!("parsing the request in {}", args.input.display()))?;
    let response = request
        .evaluate()
        .with_context(|| format!("evaluating the request in {}", args.input.display()))?;
    println!("{}", serde_json::to_string(&response)?);
    Ok(ExitCode::SUCCESS)
}
