//! Architecture hyper-parameters read from GGUF metadata.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::error::{GgufError, Result};
use crate::reader::GgufFile;

/// Default RoPE base when `{arch}.rope.freq_base` is absent (ggml's default).
pub const DEFAULT_ROPE_FREQ_BASE: f32 = 10_000.0;

/// The hyper-parameters needed to build a decoder config from a GGUF file.
///
/// Read from the keys `general.architecture` (`arch`, e.g. `qwen2`) and
/// `{arch}.block_count`, `{arch}.embedding_length`,
/// `{arch}.feed_forward_length`, `{arch}.attention.head_count`,
/// `{arch}.attention.head_count_kv`, `{arch}.attention.key_length`,
/// `{arch}.rope.freq_base`, `{arch}.attention.layer_norm_rms_epsilon`,
/// `{arch}.context_length`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ArchInfo {
    /// `general.architecture` (`qwen2`, `qwen3`, `llama`, …).
    pub architecture: String,
    /// Number of decoder layers (`block_count`).
    pub block_count: usize,
    /// Hidden size (`embedding_length`).
    pub embedding_length: usize,
    /// MLP intermediate size (`feed_forward_length`).
    pub feed_forward_length: usize,
    /// Number of query heads (`attention.head_count`).
    pub head_count: usize,
    /// Number of key/value heads (`attention.head_count_kv`; equals
    /// `head_count` when absent).
    pub head_count_kv: usize,
    /// Dimension of one attention head (`attention.key_length` when present,
    /// else `embedding_length / head_count`).
    pub head_dim: usize,
    /// RoPE base frequency θ (`rope.freq_base`; 10000 when absent).
    pub rope_freq_base: f32,
    /// RMSNorm epsilon (`attention.layer_norm_rms_epsilon`).
    pub rms_norm_eps: f32,
    /// Maximum context length in tokens the model was trained for (`context_length`).
    pub context_length: usize,
    /// Vocabulary size: rows of `token_embd.weight` when that tensor exists,
    /// else `{arch}.vocab_size`, else the length of `tokenizer.ggml.tokens`.
    pub vocab_size: usize,
    /// Whether the output projection reuses the token embedding (no
    /// `output.weight` tensor in the file).
    pub tied_embeddings: bool,
}

impl ArchInfo {
    /// Reads the architecture info of `file`.
    ///
    /// # Errors
    /// [`GgufError::MissingKey`] when a required key is absent,
    /// [`GgufError::WrongType`] when a value has the wrong type or an
    /// impossible value (zero layers, heads not dividing the hidden size, a
    /// key/value head count not dividing the head count, a non-positive
    /// epsilon or RoPE base, no way to find the vocabulary size).
    pub fn from_gguf(file: &GgufFile) -> Result<Self> {
        let arch = file.get_str("general.architecture")?.to_owned();
        let key = |k: &str| format!("{arch}.{k}");
        let usize_key = |k: &str| -> Result<usize> {
            let full = key(k);
            let v = file.get_u64(&full)?;
            positive_usize(&full, v)
        };
        let optional_usize = |k: &str| -> Result<Option<usize>> {
            let full = key(k);
            match file.get(&full) {
                None => Ok(None),
                Some(_) => positive_usize(&full, file.get_u64(&full)?).map(Some),
            }
        };

        let block_count = usize_key("block_count")?;
        let embedding_length = usize_key("embedding_length")?;
        let feed_forward_length = usize_key("feed_forward_length")?;
        let head_count = usize_key("attention.head_count")?;
        let head_count_kv = optional_usize("attention.head_count_kv")?.unwrap_or(head_count);
        let head_dim = match optional_usize("attention.key_length")? {
            Some(d) => d,
            None => {
                if !embedding_length.is_multiple_of(head_count) {
                    return Err(GgufError::WrongType {
                        key: key("attention.head_count"),
                        expected: "a divisor of embedding_length",
                        found: format!("{head_count} (embedding_length {embedding_length})"),
                    });
                }
                embedding_length / head_count
            }
        };
        if !head_count.is_multiple_of(head_count_kv) {
            return Err(GgufError::WrongType {
                key: key("attention.head_count_kv"),
                expected: "a divisor of attention.head_count",
                found: format!("{head_count_kv} (head_count {head_count})"),
            });
        }
        let rope_key = key("rope.freq_base");
        let rope_freq_base = match file.get(&rope_key) {
            None => DEFAULT_ROPE_FREQ_BASE,
            Some(_) => positive_f32(&rope_key, file.get_f64(&rope_key)?)?,
        };
        let eps_key = key("attention.layer_norm_rms_epsilon");
        let rms_norm_eps = positive_f32(&eps_key, file.get_f64(&eps_key)?)?;
        let context_length = usize_key("context_length")?;

        let vocab_size = if let Some(t) = file.tensor_info("token_embd.weight") {
            // GGUF ne = [hidden, vocab]: the vocabulary is the outer dimension.
            let shape = t.shape();
            shape.first().copied().unwrap_or(0)
        } else if let Some(v) = optional_usize("vocab_size")? {
            v
        } else if let Some(tokens) = file.get("tokenizer.ggml.tokens").and_then(|v| v.as_array()) {
            tokens.len()
        } else {
            0
        };
        if vocab_size == 0 {
            return Err(GgufError::MissingKey {
                key: "token_embd.weight, vocab_size or tokenizer.ggml.tokens".into(),
            });
        }

        Ok(Self {
            architecture: arch,
            block_count,
            embedding_length,
            feed_forward_length,
            head_count,
            head_count_kv,
            head_dim,
            rope_freq_base,
            rms_norm_eps,
            context_length,
            vocab_size,
            tied_embeddings: file.tensor_info("output.weight").is_none(),
        })
    }
}

fn positive_usize(key: &str, v: u64) -> Result<usize> {
    match usize::try_from(v) {
        Ok(v) if v > 0 => Ok(v),
        _ => Err(GgufError::WrongType {
            key: key.into(),
            expected: "a positive integer",
            found: v.to_string(),
        }),
    }
}

fn positive_f32(key: &str, v: f64) -> Result<f32> {
    let f = v as f32;
    if f.is_finite() && f > 0.0 {
        Ok(f)
    } else {
        Err(GgufError::WrongType {
            key: key.into(),
            expected: "a positive finite number",
            found: v.to_string(),
        })
    }
}
