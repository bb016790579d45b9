//! A Qwen2-family decoder that scores, generates and trains on the CPU.
//!
//! * [`ModelConfig`] — Qwen2 / Qwen2.5 / Qwen3 hyper-parameters from a
//!   Hugging Face `config.json`, plain fields, or the tiny presets.
//! * [`Model`] — the weights, generic over [`Float`] (`f32` for use, `f64`
//!   for finite-difference checks); [`Model::forward_logits`],
//!   [`Model::token_logprobs`] and [`Model::forward_train`] over a
//!   [`Packed`] batch (rows laid end to end, causal attention inside rows).
//! * [`Model::backward`] — hand-written gradients from ∂J/∂lp per position,
//!   for every weight ([`GradMode::Full`]) or LoRA adapters only
//!   ([`GradMode::Lora`], see [`LoraConfig`]).
//! * [`generate`] — batched sampling with a KV cache (temperature, top-k,
//!   top-p, stop tokens / sequences / strings, seeded RNG), returning both
//!   the sampling-distribution and the raw model log-probs.
//! * [`gguf`] — GGUF loading (config from metadata, dequantised tensors).
//! * [`io`] — safetensors loading (memory-mapped; F32/F16/BF16) and saving
//!   of weights and adapters with Hugging Face / PEFT names.
//!
//! ```
//! use flowrl_model::{GradMode, Model, ModelConfig, Packed};
//!
//! let model = Model::<f32>::random(&ModelConfig::tiny(), 7)?;
//! let tokens = [1u32, 2, 3, 4];
//! let positions = [0u32, 1, 0, 1];
//! let offsets = [0usize, 2, 4]; // two rows of two tokens
//! let targets = [2u32, 3, 4, 5];
//! let lp = model.token_logprobs(&Packed::new(&tokens, &positions, &offsets), &targets)?;
//! assert_eq!(lp.len(), 4);
//! assert!(lp.iter().all(|&x| x < 0.0));
//! # Ok::<(), flowrl_model::ModelError>(())
//! ```

pub mod backward;
pub mod config;
pub mod error;
pub mod float;
pub mod forward;
pub mod generate;
pub mod gguf;
pub mod io;
pub mod lora;
mod ops;
pub mod weights;

pub use config::{Architecture, ModelConfig, model_config_schema_json};
pub use error::ModelError;
pub use float::Float;
pub use forward::{Activations, Packed, Support};
pub use generate::{Decode, GenerateConfig, Generation, KvCache, StopReason, generate};
pub use lora::LoraConfig;
pub use weights::{
    GradMode, Layer, Linear, LoraAdapter, Model, Param, TensorData, layer_tensor_name,
};
