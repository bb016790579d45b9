//! `llm-local`: an LLM backend that runs a local model in-process with
//! `flowrl-model` (GGUF file or Hugging Face directory) and its Hugging Face
//! tokenizer, so operators can use a real executor without any server.
//!
//! Requests are rendered with the ChatML template; sampling follows the
//! request (temperature 0 is greedy; top-p, top-k, seed, stop strings, max
//! tokens). Log-probs, when asked for, are the model's own (temperature 1)
//! log-probs of the generated tokens.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use flowrl_model::{GenerateConfig, Model, generate};
use flowrl_plugin_abi::{
    ChatRequest, ChatResponse, ComponentKind, LlmBackendImpl, Metadata, Plugin, PluginError, Usage,
};
use flowrl_tokenizer::{ByteTokenizer, ChatMessage, HfTokenizer, Tokenizer, encode_chatml};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Configuration of the local backend.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LocalConfig {
    /// A GGUF file or a Hugging Face model directory.
    pub model: PathBuf,
    /// `tokenizer.json`; defaults to the one next to (or inside) `model`.
    /// The value `bytes` selects the built-in byte-level tokenizer.
    #[serde(default)]
    pub tokenizer: Option<PathBuf>,
}

/// The backend: a model and its tokenizer.
pub struct LocalBackend {
    model: Model<f32>,
    tokenizer: Arc<dyn Tokenizer>,
    name: String,
}

impl LocalBackend {
    /// Loads the model and tokenizer named by `config`.
    ///
    /// # Errors
    /// A message naming the missing or unreadable file.
    pub fn new(config: &LocalConfig) -> Result<Self, String> {
        let path = &config.model;
        if !path.exists() {
            return Err(format!("no such model: {}", path.display()));
        }
        let model = if path.is_dir() {
            Model::from_hf_dir(path)
        } else {
            Model::from_gguf(path)
        }
        .map_err(|e| format!("{}: {e}", path.display()))?;
        let tokenizer: Arc<dyn Tokenizer> = match &config.tokenizer {
            Some(p) if p.as_os_str() == "bytes" => Arc::new(ByteTokenizer::new()),
            Some(p) => {
                Arc::new(HfTokenizer::from_file(p).map_err(|e| format!("{}: {e}", p.display()))?)
            }
            None => {
                let dir = if path.is_dir() {
                    path.clone()
                } else {
                    path.parent().unwrap_or(Path::new(".")).to_path_buf()
                };
                let p = dir.join("tokenizer.json");
                Arc::new(HfTokenizer::from_file(&p).map_err(|e| format!("{}: {e}", p.display()))?)
            }
        };
        Ok(LocalBackend {
            model,
            tokenizer,
            name: path.display().to_string(),
        })
    }

    fn complete(&self, request: &ChatRequest) -> Result<ChatResponse, PluginError> {
        let messages: Vec<ChatMessage> = request
            .messages
            .iter()
            .map(|m| ChatMessage::new(m.role.clone(), m.content.clone()))
            .collect();
        let prompt = encode_chatml(&*self.tokenizer, &messages, true)
            .map_err(|e| PluginError::invalid_input(format!("cannot encode the request: {e}")))?;
        let s = &request.sampling;
        let cfg = GenerateConfig {
            max_new_tokens: request.max_tokens as usize,
            temperature: s.temperature,
            top_k: s.top_k.unwrap_or(0) as usize,
            top_p: s.top_p,
            stop_tokens: self.tokenizer.special_tokens().stop_ids(),
            stop_sequences: Vec::new(),
            stop_strings: request.stop.clone(),
            seed: s.seed.unwrap_or(0),
        };
        let tok = self.tokenizer.clone();
        let decode = move |ids: &[u32]| tok.decode(ids).unwrap_or_default();
        let g = generate(
            &self.model,
            std::slice::from_ref(&prompt),
            &cfg,
            Some(&decode),
        )
        .map_err(|e| PluginError::invalid_input(e.to_string()))?
        .remove(0);
        let visible: Vec<u32> = g
            .tokens
            .iter()
            .copied()
            .filter(|t| !cfg.stop_tokens.contains(t))
            .collect();
        let mut text = self
            .tokenizer
            .decode(&visible)
            .map_err(|e| PluginError::execution(e.to_string()))?;
        let mut finish = match g.stop {
            flowrl_model::StopReason::MaxTokens => "length",
            _ => "stop",
        };
        if let Some(cut) = request
            .stop
            .iter()
            .filter_map(|s| text.find(s.as_str()))
            .min()
        {
            text.truncate(cut);
            finish = "stop";
        }
        Ok(ChatResponse {
            text,
            logprobs: request.logprobs.then(|| g.raw_logprobs.clone()),
            usage: Usage {
                prompt_tokens: prompt.len() as u32,
                completion_tokens: g.tokens.len() as u32,
            },
            finish_reason: finish.to_string(),
        })
    }
}

impl LlmBackendImpl for LocalBackend {
    fn describe(&self) -> String {
        serde_json::json!({
            "backend": "local",
            "model": self.name,
            "architecture": self.model.config.architecture,
            "vocab_size": self.model.config.vocab_size,
            "parameters": self.model.config.num_parameters(),
        })
        .to_string()
    }

    fn chat(&self, request: &ChatRequest) -> Result<ChatResponse, PluginError> {
        self.complete(request)
    }
}

/// The plugin: one LLM backend called `local`, configured with [`LocalConfig`] JSON.
pub struct LocalPlugin;

impl Plugin for LocalPlugin {
    fn metadata() -> Metadata {
        Metadata {
            name: "llm-local".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description:
                "A local model (GGUF or Hugging Face directory) run in-process as the executor"
                    .into(),
            provides: vec![(
                ComponentKind::LLM_BACKEND,
                "local".into(),
                "in-process model; config: {\"model\": PATH, \"tokenizer\": PATH}".into(),
            )],
        }
    }

    fn llm_backend(name: &str, config: &str) -> Result<Box<dyn LlmBackendImpl>, PluginError> {
        if name != "local" {
            return Err(PluginError::not_found(format!(
                "no LLM backend `{name}` in llm-local (it provides `local`)"
            )));
        }
        let config: LocalConfig = serde_json::from_str(config)
            .map_err(|e| PluginError::invalid_input(format!("local config: {e}")))?;
        Ok(Box::new(
            LocalBackend::new(&config).map_err(PluginError::invalid_input)?,
        ))
    }
}

flowrl_plugin_abi::export_plugin!(LocalPlugin);
