//! `flowrl serve`: an OpenAI-compatible server over an LLM backend plugin.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use flowrl_plugin_host::abi::ComponentKind;
use flowrl_serve::{ServeConfig, Server};
use serde_json::json;

use super::plugins::{LoadArgs, load};

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:8000")]
    addr: String,
    /// LLM backend to serve: `local` (a GGUF file or Hugging Face directory
    /// run in-process), `sim` (the simulated executor) or a plugin's backend.
    #[arg(long, default_value = "local")]
    backend: String,
    /// Backend configuration: JSON text or `@FILE`. For `local`, `--model`
    /// and `--tokenizer` build it.
    #[arg(long)]
    config: Option<String>,
    /// Model file or directory for the `local` backend.
    #[arg(long)]
    model: Option<PathBuf>,
    /// `tokenizer.json` for the `local` backend (default: next to the model).
    #[arg(long)]
    tokenizer: Option<PathBuf>,
    /// Name clients use in `model` (default: the model file's stem, or the
    /// backend name).
    #[arg(long)]
    served_name: Option<String>,
    /// Most requests generated together in one batch.
    #[arg(long, default_value_t = 16)]
    max_batch: usize,
    /// Milliseconds to wait for more requests before starting a batch.
    #[arg(long, default_value_t = 5)]
    batch_window_ms: u64,
    /// Upper limit on a request's `max_tokens`.
    #[arg(long, default_value_t = 8192)]
    max_tokens_limit: u32,
    /// Print the bound address as JSON on stdout once listening
    /// (`{"base_url": …}`), for scripts.
    #[arg(long)]
    print_address: bool,
    #[command(flatten)]
    load: LoadArgs,
}

pub fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let host = load(&args.load);
    for e in host.errors() {
        tracing::warn!("plugin not loaded: {}", e.error);
    }
    let config = match (&args.config, &args.model) {
        (Some(_), Some(_)) => bail!("give either --config or --model, not both"),
        (Some(text), None) => match text.strip_prefix('@') {
            Some(path) => std::fs::read_to_string(path)
                .with_context(|| format!("reading the backend config {path}"))?,
            None => text.clone(),
        },
        (None, Some(model)) => {
            if !model.exists() {
                bail!("no such model: {}", model.display());
            }
            let mut c = json!({ "model": model });
            if let Some(t) = &args.tokenizer {
                c["tokenizer"] = json!(t);
            }
            c.to_string()
        }
        (None, None) if args.backend == "local" => {
            bail!("the `local` backend needs --model PATH (a GGUF file or Hugging Face directory)")
        }
        (None, None) => "{}".to_string(),
    };
    let lib = host.provider(ComponentKind::LLM_BACKEND, &args.backend)?;
    tracing::info!(backend = %args.backend, library = lib.name(), "loading the backend");
    let backend = lib.llm_backend(&args.backend, &config)?;
    let name = args.served_name.clone().unwrap_or_else(|| {
        args.model
            .as_ref()
            .and_then(|m| m.file_stem())
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| args.backend.clone())
    });
    let server = Server::start(
        &args.addr,
        backend,
        ServeConfig {
            model: name.clone(),
            max_batch: args.max_batch,
            batch_window: Duration::from_millis(args.batch_window_ms),
            max_tokens_limit: args.max_tokens_limit,
            ..ServeConfig::default()
        },
    )?;
    if args.print_address {
        println!("{}", json!({"base_url": server.base_url(), "model": name}));
    }
    eprintln!(
        "serving `{name}` at {} (OpenAI chat completions); Ctrl-C stops",
        server.base_url()
    );
    server.wait();
    Ok(ExitCode::SUCCESS)
}
