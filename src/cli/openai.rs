//! `flowrl openai models|chat`: talk to an OpenAI-compatible server with
//! the `openai` backend, to check a vLLM/SGLang/llama.cpp/Ollama set-up.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand, ValueEnum};
use flowrl_llm_openai::{Endpoint, OpenAiClient, OpenAiConfig};
use flowrl_plugin_host::abi::{ChatMessage, ChatRequest};

#[derive(Debug, Subcommand)]
pub enum OpenAiCmd {
    /// List the models the server serves (`GET {base_url}/models`).
    Models {
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Send one chat request and print the answer as JSON (text, usage,
    /// finish reason, per-token log-probs with --logprobs).
    Chat {
        #[command(flatten)]
        server: ServerArgs,
        /// The user message.
        prompt: String,
        /// A system message sent before it.
        #[arg(long)]
        system: Option<String>,
        /// Maximum number of generated tokens.
        #[arg(long, default_value_t = 256)]
        max_tokens: u32,
        /// Sampling temperature (0: greedy).
        #[arg(long, default_value_t = 0.0)]
        temperature: f64,
        /// Ask for one log-prob per generated token.
        #[arg(long)]
        logprobs: bool,
        /// Stop string; repeatable.
        #[arg(long)]
        stop: Vec<String>,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum EndpointArg {
    Chat,
    Completions,
}

#[derive(Debug, Args)]
pub struct ServerArgs {
    /// Backend config file (JSON); the flags below override its fields.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Base URL including /v1 (else FLOWRL_OPENAI_BASE_URL, else http://127.0.0.1:8000/v1).
    #[arg(long)]
    base_url: Option<String>,
    /// Model name (else FLOWRL_OPENAI_MODEL).
    #[arg(long)]
    model: Option<String>,
    /// Endpoint to call.
    #[arg(long, value_enum)]
    endpoint: Option<EndpointArg>,
    /// Limit on one attempt, in seconds.
    #[arg(long)]
    timeout_s: Option<f64>,
    /// Retries after the first attempt.
    #[arg(long)]
    max_retries: Option<u32>,
}

impl ServerArgs {
    /// The client; `listing` (for `models`) needs no model name.
    fn client(&self, listing: bool) -> anyhow::Result<OpenAiClient> {
        let mut config = match &self.config {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading {}", path.display()))?;
                OpenAiConfig::from_json(&text).with_context(|| path.display().to_string())?
            }
            None => OpenAiConfig::default(),
        };
        if self.base_url.is_some() {
            config.base_url.clone_from(&self.base_url);
        }
        if self.model.is_some() {
            config.model.clone_from(&self.model);
        }
        if let Some(endpoint) = self.endpoint {
            config.endpoint = match endpoint {
                EndpointArg::Chat => Endpoint::Chat,
                EndpointArg::Completions => Endpoint::Completions,
            };
        }
        if let Some(t) = self.timeout_s {
            config.timeout_s = t;
        }
        if let Some(n) = self.max_retries {
            config.max_retries = n;
        }
        if listing && config.model.is_none() {
            // `GET /models` sends no model name; any value passes the check.
            config.model = Some("(listing)".into());
        }
        Ok(OpenAiClient::new(&config)?)
    }
}

pub fn run(cmd: OpenAiCmd) -> anyhow::Result<ExitCode> {
    match cmd {
        OpenAiCmd::Models { server } => {
            for id in server.client(true)?.list_models()? {
                println!("{id}");
            }
        }
        OpenAiCmd::Chat {
            server,
            prompt,
            system,
            max_tokens,
            temperature,
            logprobs,
            stop,
        } => {
            let client = server.client(false)?;
            let mut request = ChatRequest::user(prompt);
            if let Some(system) = system {
                request
                    .messages
                    .insert(0, ChatMessage::new("system", system));
            }
            request.max_tokens = max_tokens;
            request.sampling.temperature = temperature;
            request.logprobs = logprobs;
            request.stop = stop;
            let answer = client.chat(&request)?;
            println!("{}", serde_json::to_string_pretty(&answer)?);
        }
    }
    Ok(ExitCode::SUCCESS)
}
