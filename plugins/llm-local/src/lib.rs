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

/// Requests that share sampling settings: the settings and each member's
/// (request index, prompt tokens).
type Group = (GenerateConfig, Vec<(usize, Vec<u32>)>);

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

    /// The prompt tokens and sampling settings of a request.
    fn prepare(&self, request: &ChatRequest) -> Result<(Vec<u32>, GenerateConfig), PluginError> {
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
        Ok((prompt, cfg))
    }

    /// Generates a continuation of every prompt with one batched generation.
    fn run(
        &self,
        prompts: &[Vec<u32>],
        cfg: &GenerateConfig,
    ) -> Result<Vec<flowrl_model::Generation>, PluginError> {
        let tok = self.tokenizer.clone();
        let decode = move |ids: &[u32]| tok.decode(ids).unwrap_or_default();
        generate(&self.model, prompts, cfg, Some(&decode))
            .map_err(|e| PluginError::invalid_input(e.to_string()))
    }

    /// The response to `request` from its generation.
    fn finish(
        &self,
        request: &ChatRequest,
        cfg: &GenerateConfig,
        prompt_len: usize,
        g: &flowrl_model::Generation,
    ) -> Result<ChatResponse, PluginError> {
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
                prompt_tokens: prompt_len as u32,
                completion_tokens: g.tokens.len() as u32,
            },
            finish_reason: finish.to_string(),
        })
    }

    fn complete(&self, request: &ChatRequest) -> Result<ChatResponse, PluginError> {
        let (prompt, cfg) = self.prepare(request)?;
        let g = self.run(std::slice::from_ref(&prompt), &cfg)?;
        let g = g
            .first()
            .ok_or_else(|| PluginError::execution("the model returned no generation"))?;
        self.finish(request, &cfg, prompt.len(), g)
    }

    /// Completes requests in batches: requests with identical sampling
    /// settings share one batched generation (one forward per new token for
    /// all of them). Within a batch each prompt draws from its own stream
    /// derived from the seed and its position, so a sampled (temperature >
    /// 0) answer may differ from the same request sent alone; greedy answers
    /// are the same.
    fn complete_batch(&self, requests: &[ChatRequest]) -> Vec<Result<ChatResponse, PluginError>> {
        let mut out: Vec<Option<Result<ChatResponse, PluginError>>> =
            (0..requests.len()).map(|_| None).collect();
        let mut groups: Vec<Group> = Vec::new();
        for (i, r) in requests.iter().enumerate() {
            match self.prepare(r) {
                Ok((prompt, cfg)) => match groups.iter_mut().find(|(c, _)| *c == cfg) {
                    Some((_, members)) => members.push((i, prompt)),
                    None => groups.push((cfg, vec![(i, prompt)])),
                },
                Err(e) => out[i] = Some(Err(e)),
            }
        }
        for (cfg, members) in groups {
            let prompts: Vec<Vec<u32>> = members.iter().map(|(_, p)| p.clone()).collect();
            match self.run(&prompts, &cfg) {
                Ok(gens) => {
                    for ((i, p), g) in members.iter().zip(&gens) {
                        out[*i] = Some(self.finish(&requests[*i], &cfg, p.len(), g));
                    }
                }
                Err(e) => {
                    for (i, _) in &members {
                        out[*i] = Some(Err(e.clone()));
                    }
                }
            }
        }
        out.into_iter()
            .map(|r| r.unwrap_or_else(|| Err(PluginError::execution("no answer was produced"))))
            .collect()
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

    fn chat_batch(&self, requests: &[ChatRequest]) -> Vec<Result<ChatResponse, PluginError>> {
        self.complete_batch(requests)
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
