//! The model's parameters: named tensors with gradient buffers, grouped
//! into linear layers, decoder layers and the whole [`Model`].

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::config::ModelConfig;
use crate::error::ModelError;
use crate::float::Float;

/// A tensor as loaders hand it over: shape (outermost first) and row-major
/// `f32` data.
pub type TensorData = (Vec<usize>, Vec<f32>);

/// One named parameter tensor, row-major, with its gradient buffer.
///
/// `grad` is empty until a backward pass (or [`Param::zero_grad`])
/// allocates it; afterwards it has the length of `value`.
#[derive(Debug, Clone, PartialEq)]
pub struct Param<T> {
    /// Hugging Face / PEFT tensor name, e.g. `model.layers.0.mlp.up_proj.weight`.
    pub name: String,
    /// Shape, outermost first (`[out_features, in_features]` for a linear weight).
    pub shape: Vec<usize>,
    /// The values, `shape.iter().product()` long.
    pub value: Vec<T>,
    /// ∂J/∂value accumulated by backward passes; empty or as long as `value`.
    pub grad: Vec<T>,
}

impl<T: Float> Param<T> {
    pub(crate) fn filled(name: String, shape: Vec<usize>, fill: T) -> Self {
        let n = shape.iter().product();
        Param {
            name,
            shape,
            value: vec![fill; n],
            grad: Vec::new(),
        }
    }

    pub(crate) fn normal(
        name: String,
        shape: Vec<usize>,
        std: f64,
        rng: &mut Option<StdRng>,
    ) -> Self {
        let n: usize = shape.iter().product();
        let value = match rng {
            Some(rng) => (0..n).map(|_| T::from_f64(std * gaussian(rng))).collect(),
            None => vec![T::ZERO; n],
        };
        Param {
            name,
            shape,
            value,
            grad: Vec::new(),
        }
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.value.len()
    }

    /// Whether the tensor has no elements.
    pub fn is_empty(&self) -> bool {
        self.value.is_empty()
    }

    /// Sets the gradient to zeros of the right length (allocating it if needed).
    pub fn zero_grad(&mut self) {
        self.grad.clear();
        self.grad.resize(self.value.len(), T::ZERO);
    }

    /// Allocates a zero gradient if none is there yet; keeps an existing one.
    pub(crate) fn ensure_grad(&mut self) {
        if self.grad.len() != self.value.len() {
            self.zero_grad();
        }
    }

    /// The name, mutable values and gradient at once (what an optimizer needs).
    pub fn parts_mut(&mut self) -> (&str, &mut [T], &[T]) {
        (&self.name, &mut self.value, &self.grad)
    }

    /// A copy in another float type (gradient dropped).
    pub fn cast<U: Float>(&self) -> Param<U> {
        Param {
            name: self.name.clone(),
            shape: self.shape.clone(),
            value: self
                .value
                .iter()
                .map(|&x| U::from_f64(x.to_f64()))
                .collect(),
            grad: Vec::new(),
        }
    }
}

/// A standard normal draw (Box–Muller), so that no distribution crate is needed.
pub(crate) fn gaussian(rng: &mut StdRng) -> f64 {
    let u1: f64 = rng.random::<f64>().max(f64::MIN_POSITIVE);
    let u2: f64 = rng.random::<f64>();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// A low-rank adapter on one linear layer: `y += s · (x Aᵀ) Bᵀ` with
/// `A` `[rank, in]`, `B` `[out, rank]` and `s = α / rank`.
#[derive(Debug, Clone, PartialEq)]
pub struct LoraAdapter<T> {
    /// `A`, `[rank, in_features]`, PEFT name `….lora_A.weight`.
    pub a: Param<T>,
    /// `B`, `[out_features, rank]`, PEFT name `….lora_B.weight`.
    pub b: Param<T>,
    /// Rank `r`.
    pub rank: usize,
    /// Scale `α / r`.
    pub scale: T,
}

/// A linear layer `y = x Wᵀ + b` (plus an optional LoRA adapter).
#[derive(Debug, Clone, PartialEq)]
pub struct Linear<T> {
    /// `W`, `[out_features, in_features]`.
    pub weight: Param<T>,
    /// `b`, `[out_features]`, when the layer has one.
    pub bias: Option<Param<T>>,
    /// The attached adapter, if any.
    pub lora: Option<LoraAdapter<T>>,
    /// Output width.
    pub out_features: usize,
    /// Input width.
    pub in_features: usize,
}

impl<T: Float> Linear<T> {
    fn random(
        prefix: &str,
        out_features: usize,
        in_features: usize,
        bias: bool,
        rng: &mut Option<StdRng>,
    ) -> Self {
        let std = 0.02;
        Linear {
            weight: Param::normal(
                format!("{prefix}.weight"),
                vec![out_features, in_features],
                std,
                rng,
            ),
            bias: bias
                .then(|| Param::normal(format!("{prefix}.bias"), vec![out_features], std, rng)),
            lora: None,
            out_features,
            in_features,
        }
    }

    fn cast<U: Float>(&self) -> Linear<U> {
        Linear {
            weight: self.weight.cast(),
            bias: self.bias.as_ref().map(Param::cast),
            lora: self.lora.as_ref().map(|l| LoraAdapter {
                a: l.a.cast(),
                b: l.b.cast(),
                rank: l.rank,
                scale: U::from_f64(l.scale.to_f64()),
            }),
            out_features: self.out_features,
            in_features: self.in_features,
        }
    }
}

/// The weights of one decoder layer.
#[derive(Debug, Clone, PartialEq)]
pub struct Layer<T> {
    /// RMSNorm before attention, `[d]`.
    pub input_norm: Param<T>,
    /// Query projection, `[H·hd, d]`.
    pub q_proj: Linear<T>,
    /// Key projection, `[KV·hd, d]`.
    pub k_proj: Linear<T>,
    /// Value projection, `[KV·hd, d]`.
    pub v_proj: Linear<T>,
    /// Output projection, `[d, H·hd]`, no bias.
    pub o_proj: Linear<T>,
    /// Per-head RMSNorm of queries, `[hd]` (Qwen3).
    pub q_norm: Option<Param<T>>,
    /// Per-head RMSNorm of keys, `[hd]` (Qwen3).
    pub k_norm: Option<Param<T>>,
    /// RMSNorm before the MLP, `[d]`.
    pub post_norm: Param<T>,
    /// SwiGLU gate projection, `[I, d]`.
    pub gate_proj: Linear<T>,
    /// SwiGLU up projection, `[I, d]`.
    pub up_proj: Linear<T>,
    /// SwiGLU down projection, `[d, I]`.
    pub down_proj: Linear<T>,
}

impl<T> Layer<T> {
    /// The seven linear layers with their short module names (`q`, `k`, `v`,
    /// `o`, `gate`, `up`, `down`).
    pub fn linears_mut(&mut self) -> [(&'static str, &mut Linear<T>); 7] {
        [
            ("q", &mut self.q_proj),
            ("k", &mut self.k_proj),
            ("v", &mut self.v_proj),
            ("o", &mut self.o_proj),
            ("gate", &mut self.gate_proj),
            ("up", &mut self.up_proj),
            ("down", &mut self.down_proj),
        ]
    }

    /// The seven linear layers, read-only, in the order of [`Self::linears_mut`].
    pub fn linears(&self) -> [(&'static str, &Linear<T>); 7] {
        [
            ("q", &self.q_proj),
            ("k", &self.k_proj),
            ("v", &self.v_proj),
            ("o", &self.o_proj),
            ("gate", &self.gate_proj),
            ("up", &self.up_proj),
            ("down", &self.down_proj),
        ]
    }
}

/// Which parameters a backward pass produces gradients for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GradMode {
    /// Every base weight (and attached adapters).
    Full,
    /// Only the LoRA adapters; base weights stay frozen.
    Lora,
}

/// A Qwen2-family decoder with its weights, generic over the float type.
#[derive(Debug, Clone, PartialEq)]
pub struct Model<T> {
    /// The validated configuration.
    pub config: ModelConfig,
    /// Token embedding, `[V, d]` (`model.embed_tokens.weight`).
    pub embed: Param<T>,
    /// Decoder layers.
    pub layers: Vec<Layer<T>>,
    /// Final RMSNorm, `[d]` (`model.norm.weight`).
    pub norm: Param<T>,
    /// Untied LM head, `[V, d]` (`lm_head.weight`); `None` when tied to
    /// [`Self::embed`].
    pub lm_head: Option<Param<T>>,
}

/// Hugging Face name of a tensor of layer `i`.
pub fn layer_tensor_name(i: usize, rest: &str) -> String {
    format!("model.layers.{i}.{rest}")
}

impl<T: Float> Model<T> {
    /// A model with random weights: linear weights and embeddings
    /// N(0, 0.02²), biases likewise, norm weights 1. Deterministic in `seed`.
    ///
    /// # Errors
    /// [`ModelError::InvalidConfig`] when `config` does not validate.
    pub fn random(config: &ModelConfig, seed: u64) -> Result<Self, ModelError> {
        Self::build(config, Some(StdRng::seed_from_u64(seed)))
    }

    /// All tensors zero (`rng` `None`) or drawn from `rng`; norms 1.
    fn build(config: &ModelConfig, mut rng: Option<StdRng>) -> Result<Self, ModelError> {
        config.validate()?;
        let c = config;
        let d = c.hidden_size;
        let embed = Param::normal(
            "model.embed_tokens.weight".into(),
            vec![c.vocab_size, d],
            0.02,
            &mut rng,
        );
        let mut layers = Vec::with_capacity(c.num_hidden_layers);
        for i in 0..c.num_hidden_layers {
            let p = |rest: &str| layer_tensor_name(i, rest);
            layers.push(Layer {
                input_norm: Param::filled(p("input_layernorm.weight"), vec![d], T::ONE),
                q_proj: Linear::random(
                    &p("self_attn.q_proj"),
                    c.q_dim(),
                    d,
                    c.attention_bias,
                    &mut rng,
                ),
                k_proj: Linear::random(
                    &p("self_attn.k_proj"),
                    c.kv_dim(),
                    d,
                    c.attention_bias,
                    &mut rng,
                ),
                v_proj: Linear::random(
                    &p("self_attn.v_proj"),
                    c.kv_dim(),
                    d,
                    c.attention_bias,
                    &mut rng,
                ),
                o_proj: Linear::random(&p("self_attn.o_proj"), d, c.q_dim(), false, &mut rng),
                q_norm: c
                    .qk_norm
                    .then(|| Param::filled(p("self_attn.q_norm.weight"), vec![c.head_dim], T::ONE)),
                k_norm: c
                    .qk_norm
                    .then(|| Param::filled(p("self_attn.k_norm.weight"), vec![c.head_dim], T::ONE)),
                post_norm: Param::filled(p("post_attention_layernorm.weight"), vec![d], T::ONE),
                gate_proj: Linear::random(
                    &p("mlp.gate_proj"),
                    c.intermediate_size,
                    d,
                    false,
                    &mut rng,
                ),
                up_proj: Linear::random(&p("mlp.up_proj"), c.intermediate_size, d, false, &mut rng),
                down_proj: Linear::random(
                    &p("mlp.down_proj"),
                    d,
                    c.intermediate_size,
                    false,
                    &mut rng,
                ),
            });
        }
        let norm = Param::filled("model.norm.weight".into(), vec![d], T::ONE);
        let lm_head = (!c.tie_word_embeddings).then(|| {
            Param::normal(
                "lm_head.weight".into(),
                vec![c.vocab_size, d],
                0.02,
                &mut rng,
            )
        });
        Ok(Model {
            config: c.clone(),
            embed,
            layers,
            norm,
            lm_head,
        })
    }

    /// Builds a model from named `f32` tensors: `source(name)` returns the
    /// shape and row-major data of a tensor, `Ok(None)` when it is absent.
    /// Names are the Hugging Face ones ([`Self::tensor_names`]); when the
    /// embeddings are tied, `lm_head.weight` is not asked for.
    ///
    /// # Errors
    /// [`ModelError::MissingTensor`], [`ModelError::ShapeMismatch`], any
    /// error `source` returns, and [`ModelError::InvalidConfig`].
    pub fn from_source<F>(config: &ModelConfig, mut source: F) -> Result<Self, ModelError>
    where
        F: FnMut(&str) -> Result<Option<TensorData>, ModelError>,
    {
        // Start from a zero-initialised skeleton and fill every tensor.
        let mut model = Model::<T>::build(config, None)?;
        model.visit_base_mut(|p| {
            let (shape, data) =
                source(&p.name)?.ok_or_else(|| ModelError::MissingTensor(p.name.clone()))?;
            if shape != p.shape || data.len() != p.value.len() {
                return Err(ModelError::ShapeMismatch {
                    name: p.name.clone(),
                    expected: p.shape.clone(),
                    got: shape,
                });
            }
            p.value = data.into_iter().map(T::from_f32).collect();
            Ok(())
        })?;
        model.validate()?;
        Ok(model)
    }

    /// [`Self::from_source`] over a map `name → (shape, data)`.
    ///
    /// # Errors
    /// As [`Self::from_source`].
    pub fn from_tensor_map(
        config: &ModelConfig,
        map: &std::collections::HashMap<String, TensorData>,
    ) -> Result<Self, ModelError> {
        Self::from_source(config, |name| Ok(map.get(name).cloned()))
    }

    /// Calls `f` on every base (non-adapter) parameter, in a fixed order:
    /// embedding, each layer's tensors, final norm, LM head.
    ///
    /// # Errors
    /// The first error `f` returns.
    pub fn visit_base_mut<F>(&mut self, mut f: F) -> Result<(), ModelError>
    where
        F: FnMut(&mut Param<T>) -> Result<(), ModelError>,
    {
        f(&mut self.embed)?;
        for layer in &mut self.layers {
            f(&mut layer.input_norm)?;
            for (_, lin) in layer.linears_mut() {
                f(&mut lin.weight)?;
                if let Some(b) = &mut lin.bias {
                    f(b)?;
                }
            }
            if let Some(p) = &mut layer.q_norm {
                f(p)?;
            }
            if let Some(p) = &mut layer.k_norm {
                f(p)?;
            }
            f(&mut layer.post_norm)?;
        }
        f(&mut self.norm)?;
        if let Some(p) = &mut self.lm_head {
            f(p)?;
        }
        Ok(())
    }

    /// The base parameters in the order of [`Self::visit_base_mut`].
    pub fn base_params(&self) -> Vec<&Param<T>> {
        let mut out = vec![&self.embed];
        for layer in &self.layers {
            out.push(&layer.input_norm);
            for (_, lin) in layer.linears() {
                out.push(&lin.weight);
                if let Some(b) = &lin.bias {
                    out.push(b);
                }
            }
            out.extend(layer.q_norm.iter());
            out.extend(layer.k_norm.iter());
            out.push(&layer.post_norm);
        }
        out.push(&self.norm);
        out.extend(self.lm_head.iter());
        out
    }

    /// The Hugging Face names of every base tensor.
    pub fn tensor_names(&self) -> Vec<String> {
        self.base_params().iter().map(|p| p.name.clone()).collect()
    }

    /// The trainable parameters of `mode`, mutable: every base tensor and
    /// adapter for [`GradMode::Full`], adapters only for [`GradMode::Lora`].
    pub fn trainable_mut(&mut self, mode: GradMode) -> Vec<&mut Param<T>> {
        let mut out: Vec<&mut Param<T>> = Vec::new();
        if mode == GradMode::Full {
            out.push(&mut self.embed);
        }
        for layer in &mut self.layers {
            let full = mode == GradMode::Full;
            let Layer {
                input_norm,
                q_proj,
                k_proj,
                v_proj,
                o_proj,
                q_norm,
                k_norm,
                post_norm,
                gate_proj,
                up_proj,
                down_proj,
            } = layer;
            if full {
                out.push(input_norm);
            }
            for lin in [
                q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj,
            ] {
                let Linear {
                    weight, bias, lora, ..
                } = lin;
                if full {
                    out.push(weight);
                    if let Some(b) = bias {
                        out.push(b);
                    }
                }
                if let Some(l) = lora {
                    out.push(&mut l.a);
                    out.push(&mut l.b);
                }
            }
            if full {
                out.extend(q_norm.iter_mut());
                out.extend(k_norm.iter_mut());
                out.push(post_norm);
            }
        }
        if mode == GradMode::Full {
            out.push(&mut self.norm);
            out.extend(self.lm_head.iter_mut());
        }
        out
    }

    /// Zeroes (allocating if needed) the gradients of `mode`'s parameters.
    pub fn zero_grad(&mut self, mode: GradMode) {
        for p in self.trainable_mut(mode) {
            p.zero_grad();
        }
    }

    /// A copy in another float type (gradients dropped) — e.g. `f64` for
    /// finite-difference checks.
    pub fn cast<U: Float>(&self) -> Model<U> {
        Model {
            config: self.config.clone(),
            embed: self.embed.cast(),
            layers: self
                .layers
                .iter()
                .map(|l| Layer {
                    input_norm: l.input_norm.cast(),
                    q_proj: l.q_proj.cast(),
                    k_proj: l.k_proj.cast(),
                    v_proj: l.v_proj.cast(),
                    o_proj: l.o_proj.cast(),
                    q_norm: l.q_norm.as_ref().map(Param::cast),
                    k_norm: l.k_norm.as_ref().map(Param::cast),
                    post_norm: l.post_norm.cast(),
                    gate_proj: l.gate_proj.cast(),
                    up_proj: l.up_proj.cast(),
                    down_proj: l.down_proj.cast(),
                })
                .collect(),
            norm: self.norm.cast(),
            lm_head: self.lm_head.as_ref().map(Param::cast),
        }
    }

    /// Checks that every tensor has the length and shape its config
    /// implies (the fields are public, so a caller may have replaced one).
    ///
    /// # Errors
    /// [`ModelError::ShapeMismatch`] naming the first bad tensor;
    /// [`ModelError::InvalidConfig`] when the config does not validate or
    /// the layer count differs from `num_hidden_layers`.
    pub fn validate(&self) -> Result<(), ModelError> {
        let c = &self.config;
        c.validate()?;
        if self.layers.len() != c.num_hidden_layers {
            return Err(ModelError::config(
                "num_hidden_layers",
                format!("{} layers in the model", self.layers.len()),
            ));
        }
        if c.tie_word_embeddings == self.lm_head.is_some() {
            return Err(ModelError::config(
                "tie_word_embeddings",
                "does not match the presence of an LM head tensor",
            ));
        }
        let d = c.hidden_size;
        let check = |p: &Param<T>, want: &[usize]| -> Result<(), ModelError> {
            if p.shape != want || p.value.len() != want.iter().product::<usize>() {
                return Err(ModelError::ShapeMismatch {
                    name: p.name.clone(),
                    expected: want.to_vec(),
                    got: if p.shape == want {
                        vec![p.value.len()]
                    } else {
                        p.shape.clone()
                    },
                });
            }
            Ok(())
        };
        let check_lin = |l: &Linear<T>, out: usize, inp: usize, bias: bool| {
            if l.out_features != out || l.in_features != inp || l.bias.is_some() != bias {
                return Err(ModelError::ShapeMismatch {
                    name: l.weight.name.clone(),
                    expected: vec![out, inp],
                    got: vec![l.out_features, l.in_features],
                });
            }
            check(&l.weight, &[out, inp])?;
            if let Some(b) = &l.bias {
                check(b, &[out])?;
            }
            if let Some(a) = &l.lora {
                check(&a.a, &[a.rank, inp])?;
                check(&a.b, &[out, a.rank])?;
            }
            Ok(())
        };
        check(&self.embed, &[c.vocab_size, d])?;
        for layer in &self.layers {
            check(&layer.input_norm, &[d])?;
            check(&layer.post_norm, &[d])?;
            let qb = c.attention_bias;
            check_lin(&layer.q_proj, c.q_dim(), d, qb)?;
            check_lin(&layer.k_proj, c.kv_dim(), d, qb)?;
            check_lin(&layer.v_proj, c.kv_dim(), d, qb)?;
            check_lin(&layer.o_proj, d, c.q_dim(), false)?;
            check_lin(&layer.gate_proj, c.intermediate_size, d, false)?;
            check_lin(&layer.up_proj, c.intermediate_size, d, false)?;
            check_lin(&layer.down_proj, d, c.intermediate_size, false)?;
            match (&layer.q_norm, &layer.k_norm, c.qk_norm) {
                (Some(q), Some(k), true) => {
                    check(q, &[c.head_dim])?;
                    check(k, &[c.head_dim])?;
                }
                (None, None, false) => {}
                _ => {
                    return Err(ModelError::config(
                        "qk_norm",
                        "does not match the q/k norm tensors present",
                    ));
                }
            }
        }
        check(&self.norm, &[d])?;
        if let Some(h) = &self.lm_head {
            check(h, &[c.vocab_size, d])?;
        }
        Ok(())
    }

    /// The LM head matrix `[V, d]` (the embedding when tied).
    pub fn head(&self) -> &Param<T> {
        self.lm_head.as_ref().unwrap_or(&self.embed)
    }
}

impl Model<f32> {
    /// The trainable parameters of `mode` as optimizer views (name, values,
    /// gradient). Call after a backward pass of the same mode, so that every
    /// gradient is allocated.
    pub fn optim_params(&mut self, mode: GradMode) -> Vec<flowrl_optim::ParamMut<'_>> {
        self.trainable_mut(mode)
            .into_iter()
            .map(|p| {
                p.ensure_grad();
                let (name, value, grad) = p.parts_mut();
                flowrl_optim::ParamMut::new(name, value, grad)
            })
            .collect()
    }
}
