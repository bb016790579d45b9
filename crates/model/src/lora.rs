//! LoRA adapters: configuration, attaching to a model, merging into the
//! base weights.

use rand::SeedableRng;
use rand::rngs::StdRng;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::error::ModelError;
use crate::float::{Float, Mat, matmul};
use crate::weights::{LoraAdapter, Model, Param};

/// The linear layers an adapter may target (PEFT `target_modules`).
pub const LORA_MODULES: [&str; 7] = ["q", "k", "v", "o", "gate", "up", "down"];

/// LoRA settings: `W x + (α/r)·B A x`, `A` initialised N(0, 1/in), `B` zero
/// (so the model is unchanged until the first update).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LoraConfig {
    /// Rank `r` (≥ 1).
    pub rank: usize,
    /// Scale numerator `α` (the update is scaled by `α / r`).
    pub alpha: f64,
    /// Target modules among `q`, `k`, `v`, `o`, `gate`, `up`, `down` (the
    /// `_proj` suffix is accepted too).
    pub targets: Vec<String>,
    /// Seed of the initialisation of `A`.
    #[serde(default)]
    pub seed: u64,
}

impl Default for LoraConfig {
    /// Rank 8, α 16, attention and MLP projections.
    fn default() -> Self {
        LoraConfig {
            rank: 8,
            alpha: 16.0,
            targets: LORA_MODULES.iter().map(|s| s.to_string()).collect(),
            seed: 0,
        }
    }
}

impl LoraConfig {
    /// The targets as short module names, checked.
    ///
    /// # Errors
    /// [`ModelError::InvalidConfig`] for rank 0, a non-finite α, no target
    /// or an unknown module.
    pub fn modules(&self) -> Result<Vec<&'static str>, ModelError> {
        if self.rank == 0 {
            return Err(ModelError::config("rank", "must be ≥ 1"));
        }
        if !self.alpha.is_finite() {
            return Err(ModelError::config(
                "alpha",
                format!("{} is not finite", self.alpha),
            ));
        }
        if self.targets.is_empty() {
            return Err(ModelError::config("targets", "no target module"));
        }
        self.targets
            .iter()
            .map(|t| {
                let short = t.strip_suffix("_proj").unwrap_or(t);
                LORA_MODULES
                    .iter()
                    .find(|m| **m == short)
                    .copied()
                    .ok_or_else(|| {
                        ModelError::config(
                            "targets",
                            format!("unknown module `{t}` (q, k, v, o, gate, up, down)"),
                        )
                    })
            })
            .collect()
    }
}

/// PEFT name of the `A` or `B` matrix of the adapter on the linear layer
/// whose weight is `weight_name` (`….q_proj.weight` →
/// `base_model.model.….q_proj.lora_A.weight`).
pub fn peft_name(weight_name: &str, which: char) -> String {
    let module = weight_name.strip_suffix(".weight").unwrap_or(weight_name);
    format!("base_model.model.{module}.lora_{which}.weight")
}

impl<T: Float> Model<T> {
    /// Attaches fresh adapters to the targeted linear layers of every
    /// decoder layer, replacing adapters already there.
    ///
    /// # Errors
    /// As [`LoraConfig::modules`].
    pub fn attach_lora(&mut self, config: &LoraConfig) -> Result<(), ModelError> {
        let modules = config.modules()?;
        let mut rng = Some(StdRng::seed_from_u64(config.seed));
        let r = config.rank;
        let scale = T::from_f64(config.alpha / r as f64);
        for layer in &mut self.layers {
            for (short, lin) in layer.linears_mut() {
                if !modules.contains(&short) {
                    continue;
                }
                let std = 1.0 / (lin.in_features as f64).sqrt();
                let a = Param::normal(
                    peft_name(&lin.weight.name, 'A'),
                    vec![r, lin.in_features],
                    std,
                    &mut rng,
                );
                let b = Param::filled(
                    peft_name(&lin.weight.name, 'B'),
                    vec![lin.out_features, r],
                    T::ZERO,
                );
                lin.lora = Some(LoraAdapter {
                    a,
                    b,
                    rank: r,
                    scale,
                });
            }
        }
        Ok(())
    }

    /// Removes every adapter.
    pub fn detach_lora(&mut self) {
        for layer in &mut self.layers {
            for (_, lin) in layer.linears_mut() {
                lin.lora = None;
            }
        }
    }

    /// Folds every adapter into its base weight (`W += s·B A`) and removes it.
    ///
    /// # Errors
    /// As [`Model::validate`] (checked before anything changes).
    pub fn merge_lora(&mut self) -> Result<(), ModelError> {
        self.validate()?;
        for layer in &mut self.layers {
            for (_, lin) in layer.linears_mut() {
                if let Some(l) = lin.lora.take() {
                    let mut ba = vec![T::ZERO; lin.out_features * lin.in_features];
                    matmul(
                        Mat::new(&l.b.value, lin.out_features, l.rank),
                        Mat::new(&l.a.value, l.rank, lin.in_features),
                        &mut ba,
                        false,
                    );
                    for (w, &x) in lin.weight.value.iter_mut().zip(&ba) {
                        *w += l.scale * x;
                    }
                }
            }
        }
        Ok(())
    }

    /// Runs `f` on the base model: every adapter is moved out (no tensor is
    /// copied), `f` sees the model as if none were attached, and the
    /// adapters are put back before this returns, whatever `f` returned.
    ///
    /// This gives the frozen base's outputs (a KL reference in LoRA
    /// training, say) without a second copy of the weights.
    pub fn with_lora_disabled<R>(&mut self, f: impl FnOnce(&Self) -> R) -> R {
        let taken: Vec<[Option<LoraAdapter<T>>; 7]> = self
            .layers
            .iter_mut()
            .map(|layer| layer.linears_mut().map(|(_, lin)| lin.lora.take()))
            .collect();
        let out = f(self);
        for (layer, adapters) in self.layers.iter_mut().zip(taken) {
            for ((_, lin), a) in layer.linears_mut().into_iter().zip(adapters) {
                lin.lora = a;
            }
        }
        out
    }

    /// The adapter tensors (`A` and `B` of every adapted layer), read-only.
    pub fn lora_params(&self) -> Vec<&Param<T>> {
        let mut out = Vec::new();
        for layer in &self.layers {
            for (_, lin) in layer.linears() {
                if let Some(l) = &lin.lora {
                    out.push(&l.a);
                    out.push(&l.b);
                }
            }
        }
        out
    }
}
