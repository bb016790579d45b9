//! GGUF model files for flowrl: reading, dequantising, naming.
//!
//! [`GgufFile::open`] memory-maps a GGUF v2/v3 file and validates its whole
//! structure (every length, count and offset is bounds-checked; a truncated
//! or corrupt file gives a [`GgufError`] naming the field, never a panic).
//! Metadata comes back as typed [`MetaValue`]s, tensors as [`TensorInfo`]s,
//! and [`GgufFile::dequantize`] turns a tensor into a plain f32 [`Tensor`].
//!
//! # Shapes
//! GGUF stores dimensions as ggml `ne`, fastest-varying first. This crate's
//! [`Tensor::shape`] and [`TensorInfo::shape`] are **reversed** into the
//! Hugging Face / PyTorch row-major order, so `token_embd.weight` with
//! `ne = [896, 151936]` has shape `[151936, 896]` (vocab × hidden) and a
//! projection `blk.0.attn_q.weight` has shape `[out_features, in_features]`,
//! exactly like `model.layers.0.self_attn.q_proj.weight` in transformers.
//! The data is the same row-major buffer either way.
//!
//! # Q/K permutation
//! llama.cpp's Hugging Face converter permutes the rows of the query and key
//! projections of LLaMA-architecture models (it undoes the interleaving
//! Hugging Face applied when converting Meta's checkpoints, because ggml's
//! LLaMA RoPE rotates adjacent pairs). It does **not** do that for `qwen2`
//! (nor `qwen3`): those classes pass Q/K through unchanged, and ggml runs
//! them with NeoX-style RoPE (rotating the two halves of each head), which is
//! what transformers' Qwen2 does. So Qwen2/Qwen3 tensors from GGUF are used
//! exactly as their Hugging Face counterparts, no un-permutation. A loader
//! for `general.architecture = "llama"` would have to invert the permutation.
//!
//! # Names
//! [`gguf_to_hf_name`] / [`hf_to_gguf_name`] map between GGUF tensor names
//! and Hugging Face parameter names; [`ArchInfo`] gathers the
//! hyper-parameters needed for a decoder config.

mod arch;
mod dequant;
mod error;
mod metadata;
mod names;
mod quant;
mod reader;
mod types;
mod writer;

pub use arch::{ArchInfo, DEFAULT_ROPE_FREQ_BASE};
pub use dequant::{QK_K, dequantize, dequantize_into};
pub use error::{GgufError, Result};
pub use metadata::{MetaArray, MetaValue, MetaValueType};
pub use names::{gguf_to_hf_name, hf_to_gguf_name};
pub use quant::quantize;
pub use reader::{GGUF_MAGIC, GgufFile, TensorInfo};
pub use types::GgmlType;
pub use writer::GgufWriter;

/// Alignment of the data section and tensor offsets when the file has no
/// `general.alignment` key, in bytes.
pub const DEFAULT_ALIGNMENT: u64 = 32;

/// Most dimensions a tensor may have (ggml's limit).
pub const MAX_DIMS: usize = 4;

/// Deepest nesting of metadata arrays accepted (arrays of arrays of …).
pub const MAX_ARRAY_DEPTH: usize = 8;

/// A dequantised tensor.
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    /// The tensor's GGUF name (see [`gguf_to_hf_name`] for the Hugging Face one).
    pub name: String,
    /// Shape in Hugging Face / PyTorch row-major order (reversed GGUF `ne`).
    pub shape: Vec<usize>,
    /// The values, row-major, `shape.iter().product()` of them.
    pub data: Vec<f32>,
}
