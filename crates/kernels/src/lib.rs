//! Fused kernels for flowrl's policy objectives, on CUDA and on the CPU.
//!
//! * [`Device::token_logprobs`]: per-token log-probs (and entropies) from
//!   logits `[N, V]` in f32, f16 or bf16, reading the logits once with an
//!   online log-sum-exp.
//! * [`Device::policy_loss`]: GRPO / GSPO / GSsPO / CWRPO / REINFORCE with
//!   the KL term over per-token log-probs, from the same
//!   [`flowrl_objectives::ObjectiveConfig`] as the CPU reference, giving the
//!   loss, g_t = ∂J/∂lp_t and [`flowrl_objectives::LossStats`].
//! * [`Device::logits_backward`] / [`Device::logits_backward_in_place`]:
//!   `dlogits = g_t·(onehot − softmax)` (plus the entropy bonus's term),
//!   one more read of the logits and one write.
//! * [`Device::fused_policy_loss`]: the three in one call.
//! * [`Device::fused_linear_policy_loss`]: the same from hidden states and
//!   the LM head, in token chunks through cuBLAS, giving dhidden and dweight
//!   without holding all `N × V` logits.
//! * [`Device::adamw_step`]: AdamW on device buffers, bit-identical to
//!   [`flowrl_optim::AdamW`].
//!
//! Every op has one signature for both devices: tensors ([`Tensor`]) live on
//! a [`Device`], which is [`Device::Cpu`] (the f64 reference path, also used
//! when there is no GPU) or `Device::Cuda` (feature `cuda`, on by default).
//! The CUDA path uses cudarc with dynamic loading: the crate builds without
//! CUDA installed, [`Device::cuda_if_available`] falls back to the CPU, and
//! the kernels (`kernels/*.cu`, embedded in the binary) are compiled by
//! NVRTC at first use, once per process and device.

pub mod cpu;
#[cfg(feature = "cuda")]
pub mod cuda;
pub mod device;
pub mod error;
pub mod sources;
pub mod tensor;

pub use device::{
    AdamWStep, Device, EntropyGrad, FusedLinearLoss, FusedLoss, LossInputs, PolicyLoss,
    TokenLogprobs,
};
pub use error::{KernelError, Result};
pub use tensor::{CpuStorage, DType, Element, Tensor};
/// The crates whose types appear in this API, re-exported so that a user of
/// flowrl-kernels alone gets the same versions: the objective configuration
/// and statistics ([`flowrl_objectives`]), the AdamW configuration
/// ([`flowrl_optim`]) and the 16-bit float types of [`Element`] ([`half`]).
pub use {flowrl_objectives, flowrl_optim, half};
