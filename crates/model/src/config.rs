//! Model configuration: Qwen2 / Qwen2.5 / Qwen3 hyper-parameters, read from
//! a Hugging Face `config.json` or built from plain fields.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::error::ModelError;

/// The decoder family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Architecture {
    /// Qwen2 / Qwen2.5: biases on q, k, v projections; no q/k norm.
    Qwen2,
    /// Qwen3: RMSNorm over each head of q and k before RoPE; no q/k/v bias.
    Qwen3,
}

/// The shape and numerics of a decoder.
///
/// Linear weights follow the Hugging Face layout `[out_features,
/// in_features]`. `head_dim` need not equal `hidden_size /
/// num_attention_heads` (Qwen3 sets it explicitly).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// Decoder family.
    pub architecture: Architecture,
    /// Vocabulary size (rows of the embedding and of the LM head).
    pub vocab_size: usize,
    /// Width of the residual stream `d`.
    pub hidden_size: usize,
    /// Width of the SwiGLU MLP's hidden layer.
    pub intermediate_size: usize,
    /// Number of decoder layers.
    pub num_hidden_layers: usize,
    /// Number of query heads `H`.
    pub num_attention_heads: usize,
    /// Number of key/value heads (grouped-query attention); divides `H`.
    pub num_key_value_heads: usize,
    /// Width of one attention head (even, for RoPE).
    pub head_dim: usize,
    /// RoPE base θ.
    pub rope_theta: f64,
    /// ε added to the mean square in every RMSNorm.
    pub rms_norm_eps: f64,
    /// Whether the LM head shares the embedding matrix.
    pub tie_word_embeddings: bool,
    /// Whether q, k and v projections carry a bias.
    pub attention_bias: bool,
    /// Whether q and k are RMS-normalised per head before RoPE (Qwen3).
    pub qk_norm: bool,
    /// Longest position the model was trained for (informational; positions
    /// beyond it still compute).
    pub max_position_embeddings: usize,
}

/// The subset of a Hugging Face `config.json` that a Qwen2/Qwen3 decoder
/// needs; every other key is ignored.
#[derive(Debug, Clone, Deserialize)]
struct HfConfig {
    #[serde(default)]
    model_type: Option<String>,
    vocab_size: usize,
    hidden_size: usize,
    intermediate_size: usize,
    num_hidden_layers: usize,
    num_attention_heads: usize,
    #[serde(default)]
    num_key_value_heads: Option<usize>,
    #[serde(default)]
    head_dim: Option<usize>,
    #[serde(default = "default_theta")]
    rope_theta: f64,
    #[serde(default = "default_eps")]
    rms_norm_eps: f64,
    #[serde(default)]
    tie_word_embeddings: bool,
    #[serde(default)]
    attention_bias: Option<bool>,
    #[serde(default = "default_max_pos")]
    max_position_embeddings: usize,
    #[serde(default)]
    hidden_act: Option<String>,
    #[serde(default)]
    rope_scaling: Option<serde_json::Value>,
    #[serde(default)]
    use_sliding_window: bool,
}

fn default_theta() -> f64 {
    10_000.0
}
fn default_eps() -> f64 {
    1e-6
}
fn default_max_pos() -> usize {
    32_768
}

impl ModelConfig {
    /// Parses a Hugging Face `config.json` (`model_type` `qwen2` or `qwen3`;
    /// a missing `model_type` is read as `qwen2`).
    ///
    /// # Errors
    /// [`ModelError::Json`] for malformed JSON or missing required keys;
    /// [`ModelError::InvalidConfig`] for another `model_type`, an activation
    /// other than SiLU, a non-null `rope_scaling`, `use_sliding_window:
    /// true` (neither is implemented), or inconsistent sizes.
    pub fn from_hf_json(text: &str) -> Result<Self, ModelError> {
        let hf: HfConfig = serde_json::from_str(text)?;
        let architecture = match hf.model_type.as_deref() {
            None | Some("qwen2") => Architecture::Qwen2,
            Some("qwen3") => Architecture::Qwen3,
            Some(other) => {
                return Err(ModelError::config(
                    "model_type",
                    format!("`{other}` is not supported (qwen2, qwen3)"),
                ));
            }
        };
        if let Some(act) = hf.hidden_act.as_deref()
            && act != "silu"
        {
            return Err(ModelError::config(
                "hidden_act",
                format!("`{act}` is not supported (silu)"),
            ));
        }
        if hf.rope_scaling.as_ref().is_some_and(|v| !v.is_null()) {
            return Err(ModelError::config(
                "rope_scaling",
                "scaled RoPE (linear, dynamic, YaRN) is not supported",
            ));
        }
        if hf.use_sliding_window {
            return Err(ModelError::config(
                "use_sliding_window",
                "sliding-window attention is not supported",
            ));
        }
        if hf.num_attention_heads == 0 {
            return Err(ModelError::config("num_attention_heads", "must be > 0"));
        }
        let head_dim = hf
            .head_dim
            .unwrap_or(hf.hidden_size / hf.num_attention_heads);
        let config = ModelConfig {
            architecture,
            vocab_size: hf.vocab_size,
            hidden_size: hf.hidden_size,
            intermediate_size: hf.intermediate_size,
            num_hidden_layers: hf.num_hidden_layers,
            num_attention_heads: hf.num_attention_heads,
            num_key_value_heads: hf.num_key_value_heads.unwrap_or(hf.num_attention_heads),
            head_dim,
            rope_theta: hf.rope_theta,
            rms_norm_eps: hf.rms_norm_eps,
            tie_word_embeddings: hf.tie_word_embeddings,
            attention_bias: hf
                .attention_bias
                .unwrap_or(architecture == Architecture::Qwen2),
            qk_norm: architecture == Architecture::Qwen3,
            max_position_embeddings: hf.max_position_embeddings,
        };
        config.validate()?;
        Ok(config)
    }

    /// Builds a config from plain fields (as found in GGUF metadata), with
    /// the family's defaults for bias and q/k norm.
    ///
    /// # Errors
    /// [`ModelError::InvalidConfig`] when the sizes are inconsistent.
    #[allow(clippy::too_many_arguments)]
    pub fn from_fields(
        architecture: Architecture,
        vocab_size: usize,
        hidden_size: usize,
        intermediate_size: usize,
        num_hidden_layers: usize,
        num_attention_heads: usize,
        num_key_value_heads: usize,
        head_dim: usize,
        rope_theta: f64,
        rms_norm_eps: f64,
        tie_word_embeddings: bool,
    ) -> Result<Self, ModelError> {
        let config = ModelConfig {
            architecture,
            vocab_size,
            hidden_size,
            intermediate_size,
            num_hidden_layers,
            num_attention_heads,
            num_key_value_heads,
            head_dim,
            rope_theta,
            rms_norm_eps,
            tie_word_embeddings,
            attention_bias: architecture == Architecture::Qwen2,
            qk_norm: architecture == Architecture::Qwen3,
            max_position_embeddings: 32_768,
        };
        config.validate()?;
        Ok(config)
    }

    /// A tiny Qwen2 for tests and the embedded default: byte-level
    /// vocabulary of 256 bytes + 8 special tokens, `d` = 64, 2 layers,
    /// 4 query heads and 2 key/value heads of width 16, MLP width 128, tied
    /// embeddings.
    pub fn tiny() -> Self {
        ModelConfig {
            architecture: Architecture::Qwen2,
            vocab_size: 264,
            hidden_size: 64,
            intermediate_size: 128,
            num_hidden_layers: 2,
            num_attention_heads: 4,
            num_key_value_heads: 2,
            head_dim: 16,
            rope_theta: 10_000.0,
            rms_norm_eps: 1e-6,
            tie_word_embeddings: true,
            attention_bias: true,
            qk_norm: false,
            max_position_embeddings: 4_096,
        }
    }

    /// [`Self::tiny`] in the Qwen3 variant (q/k norm, no q/k/v bias,
    /// untied LM head).
    pub fn tiny_qwen3() -> Self {
        ModelConfig {
            architecture: Architecture::Qwen3,
            attention_bias: false,
            qk_norm: true,
            tie_word_embeddings: false,
            rope_theta: 1_000_000.0,
            ..Self::tiny()
        }
    }

    /// The shape of Qwen2.5-0.5B (vocab 151,936, `d` 896, 24 layers, 14/2
    /// heads of 64, MLP 4,864, tied embeddings, θ = 10⁶).
    pub fn qwen2_5_0_5b() -> Self {
        ModelConfig {
            architecture: Architecture::Qwen2,
            vocab_size: 151_936,
            hidden_size: 896,
            intermediate_size: 4_864,
            num_hidden_layers: 24,
            num_attention_heads: 14,
            num_key_value_heads: 2,
            head_dim: 64,
            rope_theta: 1_000_000.0,
            rms_norm_eps: 1e-6,
            tie_word_embeddings: true,
            attention_bias: true,
            qk_norm: false,
            max_position_embeddings: 32_768,
        }
    }

    /// Checks that every size is positive and that the head layout fits.
    ///
    /// # Errors
    /// [`ModelError::InvalidConfig`] naming the first offending field.
    pub fn validate(&self) -> Result<(), ModelError> {
        let positive: [(&'static str, usize); 7] = [
            ("vocab_size", self.vocab_size),
            ("hidden_size", self.hidden_size),
            ("intermediate_size", self.intermediate_size),
            ("num_hidden_layers", self.num_hidden_layers),
            ("num_attention_heads", self.num_attention_heads),
            ("num_key_value_heads", self.num_key_value_heads),
            ("head_dim", self.head_dim),
        ];
        for (field, value) in positive {
            if value == 0 {
                return Err(ModelError::config(field, "must be > 0"));
            }
        }
        if self.vocab_size > u32::MAX as usize {
            return Err(ModelError::config("vocab_size", "must fit in u32"));
        }
        if !self
            .num_attention_heads
            .is_multiple_of(self.num_key_value_heads)
        {
            return Err(ModelError::config(
                "num_key_value_heads",
                format!(
                    "{} does not divide num_attention_heads = {}",
                    self.num_key_value_heads, self.num_attention_heads
                ),
            ));
        }
        if !self.head_dim.is_multiple_of(2) {
            return Err(ModelError::config(
                "head_dim",
                format!("{} is odd; RoPE needs an even width", self.head_dim),
            ));
        }
        if !(self.rope_theta.is_finite() && self.rope_theta > 0.0) {
            return Err(ModelError::config(
                "rope_theta",
                format!("{} must be finite and > 0", self.rope_theta),
            ));
        }
        if !(self.rms_norm_eps.is_finite() && self.rms_norm_eps >= 0.0) {
            return Err(ModelError::config(
                "rms_norm_eps",
                format!("{} must be finite and >= 0", self.rms_norm_eps),
            ));
        }
        Ok(())
    }

    /// Width of all query heads together, `H · head_dim`.
    pub fn q_dim(&self) -> usize {
        self.num_attention_heads * self.head_dim
    }

    /// Width of all key (or value) heads together, `KV · head_dim`.
    pub fn kv_dim(&self) -> usize {
        self.num_key_value_heads * self.head_dim
    }

    /// Total number of parameters (embedding counted once when tied).
    pub fn num_parameters(&self) -> usize {
        let d = self.hidden_size;
        let per_layer = 2 * d
            + d * self.q_dim()
            + 2 * d * self.kv_dim()
            + self.q_dim() * d
            + 3 * d * self.intermediate_size
            + if self.attention_bias {
                self.q_dim() + 2 * self.kv_dim()
            } else {
                0
            }
            + if self.qk_norm { 2 * self.head_dim } else { 0 };
        let head = if self.tie_word_embeddings {
            0
        } else {
            self.vocab_size * d
        };
        self.vocab_size * d + self.num_hidden_layers * per_layer + d + head
    }
}

/// The JSON Schema of [`ModelConfig`], pretty-printed.
pub fn model_config_schema_json() -> String {
    let schema = schemars::schema_for!(ModelConfig);
    serde_json::to_string_pretty(&schema).unwrap_or_default()
}
