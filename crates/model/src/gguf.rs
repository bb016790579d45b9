//! Loading a model from a GGUF file (through `flowrl-gguf`): the config
//! from the architecture metadata, every tensor dequantised to `f32` and
//! renamed to its Hugging Face name.

use std::path::Path;

use flowrl_gguf::{ArchInfo, GgufError, GgufFile};

use crate::config::{Architecture, ModelConfig};
use crate::error::ModelError;
use crate::float::Float;
use crate::weights::Model;

/// The model config described by a GGUF file's metadata
/// (`general.architecture` `qwen2` or `qwen3`).
///
/// # Errors
/// [`ModelError::Gguf`] for missing or malformed keys;
/// [`ModelError::InvalidConfig`] for another architecture.
pub fn config_from_gguf(file: &GgufFile) -> Result<ModelConfig, ModelError> {
    let info = ArchInfo::from_gguf(file)?;
    let architecture = match info.architecture.as_str() {
        "qwen2" => Architecture::Qwen2,
        "qwen3" => Architecture::Qwen3,
        other => {
            return Err(ModelError::config(
                "architecture",
                format!("GGUF architecture `{other}` is not supported (qwen2, qwen3)"),
            ));
        }
    };
    let mut config = ModelConfig::from_fields(
        architecture,
        info.vocab_size,
        info.embedding_length,
        info.feed_forward_length,
        info.block_count,
        info.head_count,
        info.head_count_kv,
        info.head_dim,
        f64::from(info.rope_freq_base),
        f64::from(info.rms_norm_eps),
        info.tied_embeddings,
    )?;
    config.max_position_embeddings = info.context_length;
    if architecture == Architecture::Qwen2 {
        // Some exports drop the q/k/v biases; follow the file.
        config.attention_bias = file.tensor_info("blk.0.attn_q.bias").is_some();
    }
    Ok(config)
}

impl<T: Float> Model<T> {
    /// Loads a Qwen2/Qwen3 GGUF file: config from its metadata, tensors
    /// dequantised (F32, F16, BF16, Q4_0, Q5_0, Q8_0, K-quants) to `f32`.
    ///
    /// # Errors
    /// [`ModelError::Gguf`] when the file cannot be read or a tensor cannot
    /// be dequantised; as [`config_from_gguf`] and [`Model::from_source`].
    pub fn from_gguf(path: &Path) -> Result<Self, ModelError> {
        let file = GgufFile::open(path)?;
        let config = config_from_gguf(&file)?;
        Self::from_source(&config, |name| match file.dequantize_hf(name) {
            Ok(t) => Ok(Some((t.shape, t.data))),
            Err(GgufError::TensorNotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        })
    }
}
