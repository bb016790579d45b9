//! The policy: a `flowrl-model` decoder with its tokenizer.

use std::sync::Arc;

use flowrl_envs::Prompt;
use flowrl_model::{GenerateConfig, Generation, GradMode, Model, Packed, Support, generate};
use flowrl_tokenizer::{ChatMessage, Tokenizer, encode_chatml};
use flowrl_trajectory::PackedBatch;

use crate::error::TrainError;

/// A trainable policy.
pub struct Policy {
    /// The model (f32 weights and gradients).
    pub model: Model<f32>,
    /// Its tokenizer.
    pub tokenizer: Arc<dyn Tokenizer>,
    /// Which parameters train.
    pub mode: GradMode,
}

impl Policy {
    /// Encodes a prompt with the ChatML template and the assistant
    /// generation prompt.
    ///
    /// # Errors
    /// Tokenizer errors.
    pub fn encode_prompt(&self, p: &Prompt) -> Result<Vec<u32>, TrainError> {
        let mut msgs = Vec::new();
        if let Some(s) = &p.system {
            msgs.push(ChatMessage::system(s.clone()));
        }
        msgs.push(ChatMessage::user(p.user.clone()));
        Ok(encode_chatml(&*self.tokenizer, &msgs, true)?)
    }

    /// Encodes plain text (environment observations, demonstration turns).
    ///
    /// # Errors
    /// Tokenizer errors.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>, TrainError> {
        Ok(self.tokenizer.encode(text)?)
    }

    /// Decodes tokens to text.
    ///
    /// # Errors
    /// Tokenizer errors.
    pub fn decode(&self, ids: &[u32]) -> Result<String, TrainError> {
        Ok(self.tokenizer.decode(ids)?)
    }

    /// Token ids that end a turn (`<|im_end|>`, `<|endoftext|>`).
    pub fn stop_ids(&self) -> Vec<u32> {
        self.tokenizer.special_tokens().stop_ids()
    }

    /// Samples one continuation of each context.
    ///
    /// # Errors
    /// Model errors (bad ids, bad sampling settings).
    pub fn generate(
        &self,
        contexts: &[Vec<u32>],
        cfg: &GenerateConfig,
    ) -> Result<Vec<Generation>, TrainError> {
        let tok = self.tokenizer.clone();
        let decode = move |ids: &[u32]| tok.decode(ids).unwrap_or_default();
        Ok(generate(&self.model, contexts, cfg, Some(&decode))?)
    }

    /// Log-probs of every target of a packed batch over `support` (no
    /// gradient).
    ///
    /// # Errors
    /// Model errors.
    pub fn logprobs(&self, batch: &PackedBatch, support: Support) -> Result<Vec<f32>, TrainError> {
        logprobs_of(&self.model, batch, support)
    }

    /// Log-probs over `support` with activations, then the backward pass of
    /// `J` given `grad_fn(lp) = (loss, ∂J/∂lp)`; gradients are zeroed
    /// first. Returns what `grad_fn` returned alongside.
    ///
    /// # Errors
    /// Model errors and whatever `grad_fn` returns.
    pub fn forward_backward<R>(
        &mut self,
        batch: &PackedBatch,
        support: Support,
        grad_fn: impl FnOnce(&[f32]) -> Result<(Vec<f32>, R), TrainError>,
    ) -> Result<R, TrainError> {
        let input = Packed::new(&batch.input_ids, &batch.position_ids, &batch.offsets);
        let (lp, acts) = self
            .model
            .forward_train_over(&input, &batch.target_ids, support)?;
        let (dlp, out) = grad_fn(&lp)?;
        self.model.zero_grad(self.mode);
        self.model.backward(&acts, &dlp, self.mode)?;
        Ok(out)
    }
}

/// Log-probs of every target of a packed batch under `model`, over
/// `support`.
///
/// # Errors
/// Model errors.
pub fn logprobs_of(
    model: &Model<f32>,
    batch: &PackedBatch,
    support: Support,
) -> Result<Vec<f32>, TrainError> {
    let input = Packed::new(&batch.input_ids, &batch.position_ids, &batch.offsets);
    Ok(model.token_logprobs_over(&input, &batch.target_ids, support)?)
}
