//! Subcommands of the `flowrl` binary.

mod compare;
mod gguf;
mod loss;
mod model;
mod openai;
mod optim;
mod plugins;
mod schema;
mod score;
mod serve;
mod train;
mod trajectory;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// flowrl: reinforcement learning for workflow-building LLM agents.
#[derive(Debug, Parser)]
#[command(name = "flowrl", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Train a policy (no arguments: the embedded default, a tiny policy on the built-in suite).
    Train(train::TrainArgs),
    /// Generate text with a model (GGUF file or Hugging Face directory).
    Generate(model::GenerateArgs),
    /// Teacher-forced log-probs of a token sequence, with top-K alternatives.
    Logprobs(model::LogprobsArgs),
    /// Evaluate a checkpoint greedily on the held-out tasks.
    Eval(train::EvalArgs),
    /// Compare algorithm presets on equal budgets over several seeds (markdown table of held-out reward).
    Compare(compare::CompareArgs),
    /// Run episodes with a policy and write their trajectories as JSONL.
    Rollout(train::RolloutArgs),
    /// Inspect and validate trajectory JSONL files.
    #[command(subcommand)]
    Trajectory(trajectory::TrajectoryCmd),
    /// Print the JSON Schema of a file format.
    Schema(schema::SchemaArgs),
    /// Score a predictions JSONL file against a dataset (EM/F1, math_equal, sandboxed tests).
    Score(score::ScoreArgs),
    /// Optimizer tools: learning-rate schedules, state files, config checks.
    #[command(subcommand)]
    Optim(optim::OptimCmd),
    /// Evaluate a policy objective (loss, gradient, statistics) on a JSON token batch.
    Loss(loss::LossArgs),
    /// Check an OpenAI-compatible server with the `openai` backend: list models, send one chat.
    #[command(subcommand)]
    Openai(openai::OpenAiCmd),
    /// Serve an LLM backend (a local GGUF/Hugging Face model, the simulator…) as an OpenAI-compatible server.
    Serve(serve::ServeArgs),
    /// List plugin libraries and load errors; run a plugin operator.
    #[command(subcommand)]
    Plugins(plugins::PluginsCmd),
    /// Inspect GGUF model files: metadata, architecture, tensors.
    #[command(subcommand)]
    Gguf(gguf::GgufCmd),
    /// Encode text to token ids or decode ids (Hugging Face tokenizer.json or bytes).
    #[command(subcommand)]
    Tokenize(gguf::TokenizeCmd),
}

/// Logs go to stderr, filtered by `RUST_LOG` (default `info`).
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

/// Runs one parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Train(args) => train::run_train(args),
        Command::Eval(args) => train::run_eval(args),
        Command::Compare(args) => compare::run(args),
        Command::Generate(args) => model::run_generate(args),
        Command::Logprobs(args) => model::run_logprobs(args),
        Command::Rollout(args) => train::run_rollout(args),
        Command::Trajectory(cmd) => trajectory::run(cmd),
        Command::Schema(args) => schema::run(args),
        Command::Score(args) => score::run(args),
        Command::Optim(cmd) => optim::run(cmd),
        Command::Loss(args) => loss::run(args),
        Command::Plugins(cmd) => plugins::run(cmd),
        Command::Openai(cmd) => openai::run(cmd),
        Command::Serve(args) => serve::run(args),
        Command::Gguf(cmd) => gguf::run(cmd),
        Command::Tokenize(cmd) => gguf::run_tokenize(cmd),
    }
}
