//! The device enum and the ops, with one signature for the CPU and CUDA.

use flowrl_objectives::{LossStats, ObjectiveConfig};
pub(crate) use flowrl_optim::AdamScalars;
use flowrl_optim::AdamWConfig;

use crate::cpu;
use crate::error::{KernelError, Result};
use crate::tensor::{DType, Element, Storage, Tensor};

/// Whether a backward still has to range-check its target ids: the fused
/// ops pass `Checked`, as their `token_logprobs` call has checked the same ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ids {
    Check,
    Checked,
}

/// Where ops run: the CPU reference path, or one CUDA device.
#[derive(Debug, Clone)]
pub enum Device {
    /// The CPU path (f64 arithmetic over rayon; the reference of the tests).
    Cpu,
    /// A CUDA device (driver and NVRTC loaded at run time).
    #[cfg(feature = "cuda")]
    Cuda(crate::cuda::CudaDevice),
}

impl PartialEq for Device {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Device::Cpu, Device::Cpu) => true,
            #[cfg(feature = "cuda")]
            (Device::Cuda(a), Device::Cuda(b)) => a.ordinal() == b.ordinal(),
            #[cfg(feature = "cuda")]
            _ => false,
        }
    }
}

impl std::fmt::Display for Device {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Device::Cpu => f.write_str("cpu"),
            #[cfg(feature = "cuda")]
            Device::Cuda(d) => write!(f, "cuda:{}", d.ordinal()),
        }
    }
}

/// Output of [`Device::token_logprobs`]; every tensor is `f32 [N]` on the op's device.
#[derive(Debug, Clone)]
pub struct TokenLogprobs {
    /// `lp_t = logits[t, y_t] − lse_t` (nats).
    pub logprobs: Tensor,
    /// `lse_t = log Σ_v exp(logits[t, v])`, kept for the backward.
    pub lse: Tensor,
    /// `H_t = −Σ_v p_{t,v} log p_{t,v}` (nats), when asked for.
    pub entropy: Option<Tensor>,
}

/// The entropy part of the backward: `∂J/∂H_t` per token and the entropies.
#[derive(Debug, Clone, Copy)]
pub struct EntropyGrad<'a> {
    /// `f32 [N]` entropies from the forward.
    pub entropy: &'a Tensor,
    /// `f32 [N]` ∂J/∂H_t (for the bonus `−c·token-mean(H)`: `−c/T` on policy tokens).
    pub grad: &'a Tensor,
}

/// The per-token inputs of [`Device::policy_loss`], the tensor form of
/// [`flowrl_objectives::TokenBatch`]: `f32 [N]` log-probs, `u8 [N]` mask,
/// `i32 [N]` sub-sequence and trajectory ids, `f32 [B]` advantages.
#[derive(Debug, Clone, Copy)]
pub struct LossInputs<'a> {
    /// log π_θ per token (the variable of the gradient).
    pub logprobs: &'a Tensor,
    /// log π_old per token.
    pub old_logprobs: &'a Tensor,
    /// log π_ref per token (needed when `kl_coef > 0`).
    pub ref_logprobs: Option<&'a Tensor>,
    /// Entropy per token (needed when `entropy_coef ≠ 0`).
    pub entropy: Option<&'a Tensor>,
    /// 1 for policy tokens, 0 elsewhere.
    pub mask: &'a Tensor,
    /// Dense sub-sequence id per policy token, −1 elsewhere.
    pub subseq: &'a Tensor,
    /// Trajectory index per token (into `advantages`).
    pub traj: &'a Tensor,
    /// One advantage per trajectory.
    pub advantages: &'a Tensor,
}

/// Output of [`Device::policy_loss`].
#[derive(Debug, Clone)]
pub struct PolicyLoss {
    /// The objective J (as [`flowrl_objectives::LossOutput::loss`]).
    pub loss: f64,
    /// `f32 [N]` g_t = ∂J/∂lp_t (0 on masked-out tokens).
    pub grad: Tensor,
    /// Diagnostics (as [`flowrl_objectives::LossStats`]).
    pub stats: LossStats,
}

/// Output of [`Device::fused_policy_loss`].
#[derive(Debug, Clone)]
pub struct FusedLoss {
    /// The objective J.
    pub loss: f64,
    /// Diagnostics.
    pub stats: LossStats,
    /// `f32 [N]` log-probs of the targets.
    pub logprobs: Tensor,
    /// `f32 [N]` entropies, when the config has an entropy bonus.
    pub entropy: Option<Tensor>,
    /// `f32 [N]` g_t = ∂J/∂lp_t.
    pub grad_logprobs: Tensor,
    /// `[N, V]` ∂J/∂logits in the logits' dtype; `None` when written in place.
    pub dlogits: Option<Tensor>,
}

/// Output of [`Device::fused_linear_policy_loss`].
#[derive(Debug, Clone)]
pub struct FusedLinearLoss {
    /// The objective J.
    pub loss: f64,
    /// Diagnostics.
    pub stats: LossStats,
    /// `f32 [N]` log-probs of the targets.
    pub logprobs: Tensor,
    /// `f32 [N]` entropies, when the config has an entropy bonus.
    pub entropy: Option<Tensor>,
    /// `f32 [N]` g_t = ∂J/∂lp_t.
    pub grad_logprobs: Tensor,
    /// `[N, d]` ∂J/∂hidden, in the hidden dtype.
    pub dhidden: Tensor,
    /// `f32 [V, d]` ∂J/∂weight, accumulated over the token chunks in f32.
    pub dweight: Tensor,
}

/// One AdamW update's hyper-parameters (flowrl-optim's arithmetic).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamWStep {
    /// Learning rate of this step (already scheduled and group-scaled).
    pub lr: f64,
    /// β₁.
    pub beta1: f64,
    /// β₂.
    pub beta2: f64,
    /// ε added to √v̂.
    pub eps: f64,
    /// Decoupled weight decay λ.
    pub weight_decay: f64,
    /// 1-based update count of this parameter (bias correction).
    pub step: u64,
}

impl AdamWStep {
    /// The step of [`flowrl_optim::AdamW`] for `config` at learning rate `lr`
    /// and update `step` (1-based), as its `step` computes it.
    pub fn from_config(config: &AdamWConfig, lr: f32, step: u64) -> Self {
        AdamWStep {
            lr: f64::from(lr),
            beta1: f64::from(config.betas[0]),
            beta2: f64::from(config.betas[1]),
            eps: f64::from(config.eps),
            weight_decay: f64::from(config.weight_decay),
            step,
        }
    }

    /// The f32 scalars of the update: flowrl-optim's own computation.
    pub(crate) fn scalars(&self) -> AdamScalars {
        AdamScalars::new(
            self.lr,
            self.beta1,
            self.beta2,
            self.eps,
            self.weight_decay,
            self.step,
        )
    }
}

pub(crate) fn want_dtype(name: &'static str, t: &Tensor, d: DType) -> Result<()> {
    if t.dtype != d {
        return Err(KernelError::DType {
            name,
            expected: match d {
                DType::F32 => "f32",
                DType::I32 => "i32",
                DType::U8 => "u8",
                DType::F16 => "f16",
                DType::BF16 => "bf16",
            },
            got: t.dtype,
        });
    }
    Ok(())
}

pub(crate) fn want_len(name: &'static str, t: &Tensor, n: usize) -> Result<()> {
    if t.shape.len() != 1 || t.shape[0] != n {
        return Err(KernelError::Shape {
            name,
            expected: format!("[{n}]"),
            got: t.shape.clone(),
        });
    }
    Ok(())
}

/// Checks logits `[N, V]` (float) and targets `i32 [N]`; returns (N, V).
pub(crate) fn logits_shape(logits: &Tensor, targets: &Tensor) -> Result<(usize, usize)> {
    if !logits.dtype.is_float() {
        return Err(KernelError::DType {
            name: "logits",
            expected: "f32, f16 or bf16",
            got: logits.dtype,
        });
    }
    if logits.shape.len() != 2 || logits.shape[0] == 0 || logits.shape[1] == 0 {
        return Err(KernelError::Shape {
            name: "logits",
            expected: "[N, V] with N, V ≥ 1".into(),
            got: logits.shape.clone(),
        });
    }
    let (n, v) = (logits.shape[0], logits.shape[1]);
    if n > i32::MAX as usize {
        return Err(KernelError::TooLarge {
            name: "N",
            value: n,
            limit: i32::MAX as usize,
        });
    }
    if v > i32::MAX as usize {
        return Err(KernelError::TooLarge {
            name: "V",
            value: v,
            limit: i32::MAX as usize,
        });
    }
    want_dtype("targets", targets, DType::I32)?;
    want_len("targets", targets, n)?;
    Ok((n, v))
}

impl Device {
    /// The first CUDA device when a driver and a device are present (and
    /// the `cuda` feature is on), the CPU otherwise.
    pub fn cuda_if_available(ordinal: usize) -> Device {
        #[cfg(feature = "cuda")]
        if let Ok(d) = crate::cuda::CudaDevice::new(ordinal) {
            return Device::Cuda(d);
        }
        let _ = ordinal;
        Device::Cpu
    }

    /// CUDA device `ordinal`.
    ///
    /// # Errors
    /// [`KernelError::NoCuda`] without a driver or device;
    /// [`KernelError::CudaDisabled`] in a build without the `cuda` feature.
    pub fn cuda(ordinal: usize) -> Result<Device> {
        #[cfg(feature = "cuda")]
        {
            crate::cuda::CudaDevice::new(ordinal).map(Device::Cuda)
        }
        #[cfg(not(feature = "cuda"))]
        {
            let _ = ordinal;
            Err(KernelError::CudaDisabled)
        }
    }

    /// True for the CPU path.
    pub fn is_cpu(&self) -> bool {
        matches!(self, Device::Cpu)
    }

    /// A tensor of this device with a copy of `data` (`shape`'s product
    /// elements).
    ///
    /// # Errors
    /// [`KernelError::DataLength`]; [`KernelError::Driver`] when the upload fails.
    pub fn tensor<T: Element>(&self, data: &[T], shape: &[usize]) -> Result<Tensor> {
        let expected: usize = shape.iter().product();
        if expected != data.len() {
            return Err(KernelError::DataLength {
                shape: shape.to_vec(),
                expected,
                got: data.len(),
            });
        }
        match self {
            Device::Cpu => Ok(Tensor::from_cpu(T::wrap(data.to_vec()), shape.to_vec())),
            #[cfg(feature = "cuda")]
            Device::Cuda(d) => d.upload(data, shape),
        }
    }

    /// Waits until every op queued on this device has finished.
    ///
    /// # Errors
    /// [`KernelError::Driver`].
    pub fn synchronize(&self) -> Result<()> {
        match self {
            Device::Cpu => Ok(()),
            #[cfg(feature = "cuda")]
            Device::Cuda(d) => d.synchronize(),
        }
    }

    pub(crate) fn check_on(&self, name: &'static str, t: &Tensor) -> Result<()> {
        let ok = match (&t.storage, self) {
            (Storage::Cpu(_), Device::Cpu) => true,
            #[cfg(feature = "cuda")]
            (Storage::Cuda(s), Device::Cuda(d)) => s.ordinal() == d.ordinal(),
            #[cfg(feature = "cuda")]
            _ => false,
        };
        if ok {
            Ok(())
        } else {
            Err(KernelError::DeviceMismatch {
                name,
                expected: self.to_string(),
                got: t.device().to_string(),
            })
        }
    }

    /// Token log-probabilities from logits `[N, V]` (f32, f16 or bf16) and
    /// target ids `i32 [N]`: one read of the logits with an online
    /// log-sum-exp; the entropy in the same pass when `with_entropy`.
    ///
    /// # Errors
    /// [`KernelError::DType`] / [`KernelError::Shape`] for bad arguments,
    /// [`KernelError::DeviceMismatch`], [`KernelError::TargetOutOfRange`]
    /// (first such row), driver or compile errors on CUDA.
    pub fn token_logprobs(
        &self,
        logits: &Tensor,
        targets: &Tensor,
        with_entropy: bool,
    ) -> Result<TokenLogprobs> {
        self.check_on("logits", logits)?;
        self.check_on("targets", targets)?;
        let (n, v) = logits_shape(logits, targets)?;
        match self {
            Device::Cpu => cpu::token_logprobs(logits, targets, n, v, with_entropy),
            #[cfg(feature = "cuda")]
            Device::Cuda(d) => d.token_logprobs(logits, targets, n, v, with_entropy),
        }
    }

    fn check_backward(
        &self,
        logits: &Tensor,
        targets: &Tensor,
        lse: &Tensor,
        grad_lp: &Tensor,
        entropy_grad: Option<EntropyGrad<'_>>,
        ids: Ids,
    ) -> Result<(usize, usize)> {
        self.check_on("logits", logits)?;
        self.check_on("targets", targets)?;
        self.check_on("lse", lse)?;
        self.check_on("grad_logprobs", grad_lp)?;
        let (n, v) = logits_shape(logits, targets)?;
        for (name, t) in [("lse", lse), ("grad_logprobs", grad_lp)] {
            want_dtype(name, t, DType::F32)?;
            want_len(name, t, n)?;
        }
        if let Some(e) = entropy_grad {
            for (name, t) in [("entropy", e.entropy), ("entropy_grad", e.grad)] {
                self.check_on(name, t)?;
                want_dtype(name, t, DType::F32)?;
                want_len(name, t, n)?;
            }
        }
        if ids == Ids::Check {
            self.check_ids(targets, v)?;
        }
        Ok((n, v))
    }

    /// The backward of [`Self::token_logprobs`] to the logits:
    /// `dlogits[t, v] = g_t·(1[v = y_t] − p_{t,v}) − h_t·p_{t,v}·(log p_{t,v} + H_t)`
    /// with `g = grad_lp` (`f32 [N]`, ∂J/∂lp) and, when given, `h` = ∂J/∂H.
    /// One more read of the logits and one write of `[N, V]` in their dtype;
    /// rows with `g_t = h_t = 0` are written as zeros without a read.
    ///
    /// # Errors
    /// As [`Self::token_logprobs`].
    pub fn logits_backward(
        &self,
        logits: &Tensor,
        targets: &Tensor,
        lse: &Tensor,
        grad_lp: &Tensor,
        entropy_grad: Option<EntropyGrad<'_>>,
    ) -> Result<Tensor> {
        self.backward(logits, targets, lse, grad_lp, entropy_grad, Ids::Check)
    }

    /// As [`Self::logits_backward`], overwriting `logits` with the gradient
    /// (no `[N, V]` allocation). Nothing is written when an argument is
    /// rejected (a bad target id included).
    ///
    /// # Errors
    /// As [`Self::token_logprobs`].
    pub fn logits_backward_in_place(
        &self,
        logits: &mut Tensor,
        targets: &Tensor,
        lse: &Tensor,
        grad_lp: &Tensor,
        entropy_grad: Option<EntropyGrad<'_>>,
    ) -> Result<()> {
        self.backward_in_place(logits, targets, lse, grad_lp, entropy_grad, Ids::Check)
    }

    /// Range check of the target ids (`[0, v)`), on the tensor's device.
    fn check_ids(&self, targets: &Tensor, v: usize) -> Result<()> {
        match self {
            Device::Cpu => cpu::check_targets(targets, v),
            #[cfg(feature = "cuda")]
            Device::Cuda(d) => d.check_targets(targets, v),
        }
    }

    fn backward(
        &self,
        logits: &Tensor,
        targets: &Tensor,
        lse: &Tensor,
        grad_lp: &Tensor,
        entropy_grad: Option<EntropyGrad<'_>>,
        ids: Ids,
    ) -> Result<Tensor> {
        let (n, v) = self.check_backward(logits, targets, lse, grad_lp, entropy_grad, ids)?;
        match self {
            Device::Cpu => cpu::logits_backward(logits, targets, lse, grad_lp, entropy_grad, n, v),
            #[cfg(feature = "cuda")]
            Device::Cuda(d) => d.logits_backward(logits, targets, lse, grad_lp, entropy_grad, n, v),
        }
    }

    fn backward_in_place(
        &self,
        logits: &mut Tensor,
        targets: &Tensor,
        lse: &Tensor,
        grad_lp: &Tensor,
        entropy_grad: Option<EntropyGrad<'_>>,
        ids: Ids,
    ) -> Result<()> {
        let (n, v) = self.check_backward(logits, targets, lse, grad_lp, entropy_grad, ids)?;
        match self {
            Device::Cpu => {
                cpu::logits_backward_in_place(logits, targets, lse, grad_lp, entropy_grad, n, v)
            }
            #[cfg(feature = "cuda")]
            Device::Cuda(d) => {
                d.logits_backward_in_place(logits, targets, lse, grad_lp, entropy_grad, n, v)
            }
        }
    }

    /// The policy objective of `config` (GRPO, GSPO, GSsPO, CWRPO,
    /// REINFORCE; KL term; every aggregation) over per-token log-probs:
    /// the loss, g_t = ∂J/∂lp_t and the statistics of
    /// [`flowrl_objectives::compute`], from the same config type.
    ///
    /// # Errors
    /// [`KernelError::Objective`] with the reference's variants for a bad
    /// config, lengths, layout or non-finite values; dtype/shape/device
    /// errors; driver errors on CUDA.
    pub fn policy_loss(
        &self,
        inputs: &LossInputs<'_>,
        config: &ObjectiveConfig,
    ) -> Result<PolicyLoss> {
        config.validate()?;
        let f32s = [
            ("logprobs", Some(inputs.logprobs)),
            ("old_logprobs", Some(inputs.old_logprobs)),
            ("ref_logprobs", inputs.ref_logprobs),
            ("entropy", inputs.entropy),
            ("advantages", Some(inputs.advantages)),
        ];
        for (name, t) in f32s {
            if let Some(t) = t {
                self.check_on(name, t)?;
                want_dtype(name, t, DType::F32)?;
            }
        }
        for (name, t, d) in [
            ("mask", inputs.mask, DType::U8),
            ("subseq", inputs.subseq, DType::I32),
            ("traj", inputs.traj, DType::I32),
        ] {
            self.check_on(name, t)?;
            want_dtype(name, t, d)?;
        }
        match self {
            Device::Cpu => cpu::policy_loss(inputs, config),
            #[cfg(feature = "cuda")]
            Device::Cuda(d) => d.policy_loss(inputs, config),
        }
    }

    /// Log-probs, policy loss and its gradient to the logits in one call:
    /// [`Self::token_logprobs`] (with entropy when `config.entropy_coef ≠ 0`),
    /// [`Self::policy_loss`], then [`Self::logits_backward`] (including the
    /// entropy bonus's gradient `−entropy_coef/T` per policy token). With
    /// `in_place` the gradient overwrites `logits` and `dlogits` is `None`.
    /// `inputs.logprobs` and `inputs.entropy` are ignored (computed here).
    ///
    /// # Errors
    /// As the three ops.
    pub fn fused_policy_loss(
        &self,
        logits: &mut Tensor,
        targets: &Tensor,
        inputs: &LossInputs<'_>,
        config: &ObjectiveConfig,
        in_place: bool,
    ) -> Result<FusedLoss> {
        let with_entropy = config.entropy_coef != 0.0;
        let fwd = self.token_logprobs(logits, targets, with_entropy)?;
        let mut li = *inputs;
        li.logprobs = &fwd.logprobs;
        li.entropy = fwd.entropy.as_ref();
        let pl = self.policy_loss(&li, config)?;
        let hg = match &fwd.entropy {
            Some(_) => {
                let t = pl.stats.num_policy_tokens as f64;
                Some(self.mask_scale(inputs.mask, -config.entropy_coef / t)?)
            }
            None => None,
        };
        let eg = match (&fwd.entropy, &hg) {
            (Some(e), Some(h)) => Some(EntropyGrad {
                entropy: e,
                grad: h,
            }),
            _ => None,
        };
        let dlogits = if in_place {
            // token_logprobs has checked the targets.
            self.backward_in_place(logits, targets, &fwd.lse, &pl.grad, eg, Ids::Checked)?;
            None
        } else {
            Some(self.backward(logits, targets, &fwd.lse, &pl.grad, eg, Ids::Checked)?)
        };
        Ok(FusedLoss {
            loss: pl.loss,
            stats: pl.stats,
            logprobs: fwd.logprobs,
            entropy: fwd.entropy,
            grad_logprobs: pl.grad,
            dlogits,
        })
    }

    /// The policy loss of the logits `hidden [N, d] · weightᵀ` (weight
    /// `[V, d]`, the LM head; same float dtype as `hidden`) and its gradients
    /// to `hidden` and `weight`, without holding all `N × V` logits: tokens go
    /// through in chunks of `chunk_rows` rows (0 picks about 256 MiB of
    /// logits per chunk). Pass 1 computes each chunk's logits with one GEMM
    /// and its log-probs (and entropies); the loss and g_t need every
    /// token's log-prob (a sub-sequence ratio spans chunks), so pass 2
    /// recomputes each chunk's logits, turns them into dlogits in place and
    /// runs two GEMMs: `dhidden = dlogits · weight` and
    /// `dweight += dlogitsᵀ · hidden`. Four GEMMs in all (the forward one
    /// twice). On CUDA the GEMMs are cuBLAS (f32 accumulation); on the CPU,
    /// f64. `inputs.logprobs` and `inputs.entropy` are ignored.
    ///
    /// # Errors
    /// dtype/shape/device errors; those of the three fused ops; cuBLAS errors.
    pub fn fused_linear_policy_loss(
        &self,
        hidden: &Tensor,
        weight: &Tensor,
        targets: &Tensor,
        inputs: &LossInputs<'_>,
        config: &ObjectiveConfig,
        chunk_rows: usize,
    ) -> Result<FusedLinearLoss> {
        self.check_on("hidden", hidden)?;
        self.check_on("weight", weight)?;
        if !hidden.dtype.is_float() || weight.dtype != hidden.dtype {
            return Err(KernelError::DType {
                name: "weight",
                expected: "the float dtype of `hidden`",
                got: weight.dtype,
            });
        }
        if hidden.shape.len() != 2 || weight.shape.len() != 2 || hidden.shape[1] != weight.shape[1]
        {
            return Err(KernelError::Shape {
                name: "weight",
                expected: format!("[V, d] with d = hidden's {:?}", hidden.shape.get(1)),
                got: weight.shape.clone(),
            });
        }
        let (n, d, v) = (hidden.shape[0], hidden.shape[1], weight.shape[0]);
        if n == 0 || d == 0 || v == 0 {
            return Err(KernelError::Shape {
                name: "hidden",
                expected: "N, d, V ≥ 1".into(),
                got: hidden.shape.clone(),
            });
        }
        want_dtype("targets", targets, DType::I32)?;
        want_len("targets", targets, n)?;
        let chunk = if chunk_rows == 0 {
            ((256usize << 20) / (v * hidden.dtype.size())).clamp(1, n)
        } else {
            chunk_rows.min(n)
        };
        let with_entropy = config.entropy_coef != 0.0;
        let ranges: Vec<(usize, usize)> = (0..n)
            .step_by(chunk)
            .map(|a| (a, (a + chunk).min(n)))
            .collect();
        let (mut lps, mut lses, mut ents) = (Vec::new(), Vec::new(), Vec::new());
        for &(a, b) in &ranges {
            let hc = self.slice_rows(hidden, a, b)?;
            let yc = self.slice_rows(targets, a, b)?;
            let logits = self.linear_logits(&hc, weight)?;
            let f = self
                .token_logprobs(&logits, &yc, with_entropy)
                .map_err(|e| match e {
                    // Rows of the whole batch, not of the chunk.
                    KernelError::TargetOutOfRange { row, target, vocab } => {
                        KernelError::TargetOutOfRange {
                            row: row + a,
                            target,
                            vocab,
                        }
                    }
                    e => e,
                })?;
            lps.push(f.logprobs);
            lses.push(f.lse);
            if let Some(e) = f.entropy {
                ents.push(e);
            }
        }
        let lp = self.concat_rows(&lps)?;
        let lse = self.concat_rows(&lses)?;
        let ent = if with_entropy {
            Some(self.concat_rows(&ents)?)
        } else {
            None
        };
        drop((lps, lses, ents));
        let mut li = *inputs;
        li.logprobs = &lp;
        li.entropy = ent.as_ref();
        let pl = self.policy_loss(&li, config)?;
        let hg = match &ent {
            Some(_) => Some(self.mask_scale(
                inputs.mask,
                -config.entropy_coef / pl.stats.num_policy_tokens as f64,
            )?),
            None => None,
        };
        // The first chunk's GEMM writes every element (β = 0): no memset.
        let mut dweight = self.output_f32(&[v, d])?;
        let mut dhs = Vec::with_capacity(ranges.len());
        for (i, &(a, b)) in ranges.iter().enumerate() {
            let hc = self.slice_rows(hidden, a, b)?;
            let yc = self.slice_rows(targets, a, b)?;
            let lc = self.slice_rows(&lse, a, b)?;
            let gc = self.slice_rows(&pl.grad, a, b)?;
            let ec = match (&ent, &hg) {
                (Some(e), Some(h)) => Some((self.slice_rows(e, a, b)?, self.slice_rows(h, a, b)?)),
                _ => None,
            };
            let eg = ec.as_ref().map(|(e, h)| EntropyGrad {
                entropy: e,
                grad: h,
            });
            let mut logits = self.linear_logits(&hc, weight)?;
            // The forward loop has checked these targets.
            self.backward_in_place(&mut logits, &yc, &lc, &gc, eg, Ids::Checked)?;
            dhs.push(self.linear_backward(&logits, &hc, weight, &mut dweight, i > 0)?);
        }
        let dhidden = self.concat_rows(&dhs)?;
        Ok(FusedLinearLoss {
            loss: pl.loss,
            stats: pl.stats,
            logprobs: lp,
            entropy: ent,
            grad_logprobs: pl.grad,
            dhidden,
            dweight,
        })
    }

    /// Rows `r0..r1` of a row-major tensor of this device, copied.
    pub(crate) fn slice_rows(&self, t: &Tensor, r0: usize, r1: usize) -> Result<Tensor> {
        match self {
            Device::Cpu => cpu::slice_rows(t, r0, r1),
            #[cfg(feature = "cuda")]
            Device::Cuda(d) => d.slice_rows(t, r0, r1),
        }
    }

    pub(crate) fn concat_rows(&self, parts: &[Tensor]) -> Result<Tensor> {
        match self {
            Device::Cpu => Ok(cpu::concat_rows(parts)),
            #[cfg(feature = "cuda")]
            Device::Cuda(d) => d.concat_rows(parts),
        }
    }

    /// An f32 tensor whose every element the caller overwrites (zeros on
    /// the CPU, uninitialised device memory on CUDA).
    fn output_f32(&self, shape: &[usize]) -> Result<Tensor> {
        match self {
            Device::Cpu => Ok(Tensor::from_cpu(
                crate::tensor::CpuStorage::F32(vec![0.0; shape.iter().product()]),
                shape.to_vec(),
            )),
            #[cfg(feature = "cuda")]
            Device::Cuda(d) => d.empty(DType::F32, shape),
        }
    }

    /// `logits [C, V] = hidden [C, d] · weightᵀ` in the hidden dtype.
    ///
    /// # Errors
    /// dtype/shape/device errors; cuBLAS errors.
    pub fn linear_logits(&self, hidden: &Tensor, weight: &Tensor) -> Result<Tensor> {
        self.check_on("hidden", hidden)?;
        self.check_on("weight", weight)?;
        if hidden.shape.len() != 2 || weight.shape.len() != 2 || hidden.shape[1] != weight.shape[1]
        {
            return Err(KernelError::Shape {
                name: "weight",
                expected: "[V, d] with hidden [C, d]".into(),
                got: weight.shape.clone(),
            });
        }
        match self {
            Device::Cpu => cpu::linear_logits(hidden, weight),
            #[cfg(feature = "cuda")]
            Device::Cuda(d) => d.linear_logits(hidden, weight),
        }
    }

    /// `dhidden [C, d] = dlogits · weight` (hidden dtype) and
    /// `dweight (f32 [V, d]) = dlogitsᵀ · hidden`, added to its contents when
    /// `accumulate`.
    ///
    /// # Errors
    /// dtype/shape/device errors; cuBLAS errors.
    pub fn linear_backward(
        &self,
        dlogits: &Tensor,
        hidden: &Tensor,
        weight: &Tensor,
        dweight: &mut Tensor,
        accumulate: bool,
    ) -> Result<Tensor> {
        for (name, t) in [
            ("dlogits", dlogits),
            ("hidden", hidden),
            ("weight", weight),
            ("dweight", &*dweight),
        ] {
            self.check_on(name, t)?;
        }
        want_dtype("dweight", dweight, DType::F32)?;
        let ok = hidden.shape.len() == 2
            && weight.shape.len() == 2
            && hidden.shape[1] == weight.shape[1]
            && dlogits.shape == [hidden.shape[0], weight.shape[0]]
            && dweight.shape == weight.shape
            && dlogits.dtype == hidden.dtype
            && weight.dtype == hidden.dtype;
        if !ok {
            return Err(KernelError::Shape {
                name: "dlogits",
                expected:
                    "dlogits [C, V], hidden [C, d], weight and dweight [V, d], one float dtype"
                        .into(),
                got: dlogits.shape.clone(),
            });
        }
        match self {
            Device::Cpu => cpu::linear_backward(dlogits, hidden, weight, dweight, accumulate),
            #[cfg(feature = "cuda")]
            Device::Cuda(d) => d.linear_backward(dlogits, hidden, weight, dweight, accumulate),
        }
    }

    /// `f32 [N]`: `c` where `mask ≠ 0`, 0 elsewhere.
    pub(crate) fn mask_scale(&self, mask: &Tensor, c: f64) -> Result<Tensor> {
        self.check_on("mask", mask)?;
        want_dtype("mask", mask, DType::U8)?;
        match self {
            Device::Cpu => cpu::mask_scale(mask, c),
            #[cfg(feature = "cuda")]
            Device::Cuda(d) => d.mask_scale(mask, c),
        }
    }

    /// One AdamW update in place of `param` from `grad` with the moments
    /// `m`, `v` (all `f32`, same length), bit-identical to flowrl-optim's
    /// [`flowrl_optim::AdamW`] for the same hyper-parameters and step.
    ///
    /// # Errors
    /// [`KernelError::DType`] unless all four are `f32`, [`KernelError::Shape`]
    /// unless they have one length, [`KernelError::DeviceMismatch`]; driver
    /// or compile errors on CUDA.
    pub fn adamw_step(
        &self,
        param: &mut Tensor,
        grad: &Tensor,
        m: &mut Tensor,
        v: &mut Tensor,
        step: &AdamWStep,
    ) -> Result<()> {
        let n = param.len();
        for (name, t) in [("param", &*param), ("grad", grad), ("m", &*m), ("v", &*v)] {
            self.check_on(name, t)?;
            want_dtype(name, t, DType::F32)?;
            if t.len() != n {
                return Err(KernelError::Shape {
                    name,
                    expected: format!("{n} elements, as `param`"),
                    got: t.shape.clone(),
                });
            }
        }
        let s = step.scalars();
        match self {
            Device::Cpu => cpu::adamw_step(param, grad, m, v, &s),
            #[cfg(feature = "cuda")]
            Device::Cuda(d) => d.adamw_step(param, grad, m, v, &s),
        }
    }
}
