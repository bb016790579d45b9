//! One policy update written with nothing but `flowrl-kernels` (and the
//! objective and optimiser types it re-exports), on the first CUDA device
//! when there is one and on the CPU path otherwise — the same code either way.
//!
//! 1. A GRPO group of two rollouts of one task, laid out as a think-action
//!    token batch: prompt and tool results masked out, two policy turns per
//!    rollout (the GSsPO sub-sequences).
//! 2. The loss and its gradient to the logits, once with the fused call
//!    (in place) and once op by op: token log-probs, policy loss, backward.
//! 3. A few AdamW steps on an LM head through the fused-linear op (hidden
//!    states × head, gradients to both without holding all the logits).
//!
//! `cargo run -p kernels-only` prints each step.

use flowrl_kernels::flowrl_objectives::{Preset, group_advantages};
use flowrl_kernels::flowrl_optim::AdamWConfig;
use flowrl_kernels::half::bf16;
use flowrl_kernels::{AdamWStep, Device, KernelError, LossInputs, Tensor};

/// Vocabulary size of the toy policy (not a multiple of the kernels'
/// vector width, so their scalar tails run too).
const V: usize = 1000;
/// Hidden size of the toy LM head.
const D: usize = 32;

/// A think-action batch: two rollouts of one task, 16 positions each.
struct Batch {
    /// 1 on policy tokens.
    mask: Vec<u8>,
    /// Sub-sequence (policy turn) id per position, −1 off the policy.
    subseq: Vec<i32>,
    /// Rollout id per position.
    traj: Vec<i32>,
    /// The sampled token at each position.
    targets: Vec<i32>,
    /// One advantage per rollout.
    advantages: Vec<f32>,
}

fn batch() -> Result<Batch, KernelError> {
    // prompt (4), turn (5), tool result (3), turn (4) — per rollout.
    let spans: [(u8, usize); 4] = [(0, 4), (1, 5), (0, 3), (1, 4)];
    let (mut mask, mut subseq, mut traj) = (Vec::new(), Vec::new(), Vec::new());
    let mut next_sub = 0;
    for rollout in 0..2 {
        for &(on, len) in &spans {
            for _ in 0..len {
                mask.push(on);
                subseq.push(if on == 1 { next_sub } else { -1 });
                traj.push(rollout);
            }
            next_sub += i32::from(on);
        }
    }
    let mut rng = Lcg(7);
    let targets = (0..mask.len())
        .map(|_| (rng.next() * V as f64) as i32)
        .collect();
    // Rewards → GRPO group advantages (both rollouts answer task 17).
    let preset = Preset::WorkflowR1.config();
    let advantages = group_advantages(&[1.0f32, 0.0], &["task-17", "task-17"], &preset.advantage)?;
    Ok(Batch {
        mask,
        subseq,
        traj,
        targets,
        advantages,
    })
}

/// The batch's tensors on a device.
struct OnDevice {
    mask: Tensor,
    subseq: Tensor,
    traj: Tensor,
    targets: Tensor,
    advantages: Tensor,
}

impl OnDevice {
    fn new(dev: &Device, b: &Batch) -> Result<Self, KernelError> {
        let n = b.mask.len();
        Ok(OnDevice {
            mask: dev.tensor(&b.mask, &[n])?,
            subseq: dev.tensor(&b.subseq, &[n])?,
            traj: dev.tensor(&b.traj, &[n])?,
            targets: dev.tensor(&b.targets, &[n])?,
            advantages: dev.tensor(&b.advantages, &[b.advantages.len()])?,
        })
    }

    /// Loss inputs over `old` (the sampling policy's log-probs, also the KL
    /// reference here); `logprobs` is filled in by the fused ops.
    fn inputs<'a>(&'a self, old: &'a Tensor) -> LossInputs<'a> {
        LossInputs {
            logprobs: old,
            old_logprobs: old,
            ref_logprobs: Some(old),
            entropy: None,
            mask: &self.mask,
            subseq: &self.subseq,
            traj: &self.traj,
            advantages: &self.advantages,
        }
    }
}

/// What [`run`] found, for the caller to print or check.
#[derive(Debug)]
pub struct Summary {
    /// The device the ops ran on (`cpu` or `cuda:N`).
    pub device: String,
    /// The loss of the logits batch (fused call).
    pub loss: f64,
    /// Largest |fused − op-by-op| over the bf16 logit gradients.
    pub max_dlogit_diff: f32,
    /// The fused-linear loss before each AdamW step on the head, then after
    /// the last.
    pub head_losses: Vec<f64>,
}

/// Runs the three parts on `dev`; `verbose` prints as it goes.
///
/// # Errors
/// Any [`KernelError`] of the ops (none is expected on valid input).
pub fn run(dev: &Device, verbose: bool) -> Result<Summary, KernelError> {
    let say = |s: String| {
        if verbose {
            println!("{s}");
        }
    };
    let b = batch()?;
    let n = b.mask.len();
    let on = OnDevice::new(dev, &b)?;
    let config = Preset::WorkflowR1.config().objective;
    say(format!(
        "device {dev}: {n} positions, V = {V}, advantages {:?}",
        b.advantages
    ));

    // Logits [N, V] in bf16 as a model would hand them over; the sampling
    // policy's are a slightly different set.
    let mut rng = Lcg(1);
    let cur: Vec<bf16> = (0..n * V)
        .map(|_| bf16::from_f64(3.0 * rng.next() - 1.5))
        .collect();
    let old_logits: Vec<bf16> = cur
        .iter()
        .map(|x| bf16::from_f64(x.to_f64() + 0.05 * (rng.next() - 0.5)))
        .collect();
    let old = dev
        .token_logprobs(&dev.tensor(&old_logits, &[n, V])?, &on.targets, false)?
        .logprobs;

    // Fused: log-probs, loss, g_t and dlogits, written over the logits.
    let mut logits = dev.tensor(&cur, &[n, V])?;
    let fused = dev.fused_policy_loss(&mut logits, &on.targets, &on.inputs(&old), &config, true)?;
    let s = &fused.stats;
    say(format!(
        "fused: loss {:.6}, ratio mean {:.4} over {} sub-sequences, approx KL {:.2e}",
        fused.loss, s.ratio_mean, s.num_subseqs, s.approx_kl
    ));

    // Op by op: the same chain, the gradient into a new tensor.
    let logits2 = dev.tensor(&cur, &[n, V])?;
    let fwd = dev.token_logprobs(&logits2, &on.targets, false)?;
    let mut inputs = on.inputs(&old);
    inputs.logprobs = &fwd.logprobs;
    let pl = dev.policy_loss(&inputs, &config)?;
    let dlogits = dev.logits_backward(&logits2, &on.targets, &fwd.lse, &pl.grad, None)?;
    let a = logits.to_vec::<bf16>()?;
    let c = dlogits.to_vec::<bf16>()?;
    let max_dlogit_diff = a
        .iter()
        .zip(&c)
        .map(|(x, y)| (x.to_f32() - y.to_f32()).abs())
        .fold(0.0f32, f32::max);
    say(format!(
        "op by op: loss {:.6}; largest dlogit difference to the fused call {max_dlogit_diff:.2e}",
        pl.loss
    ));

    // Fused-linear: hidden [N, D] × head [V, D] (f32), AdamW on the head.
    let hidden: Vec<f32> = (0..n * D).map(|_| rng.next() as f32 - 0.5).collect();
    let head0: Vec<f32> = (0..V * D)
        .map(|_| 0.2 * (rng.next() as f32 - 0.5))
        .collect();
    let hidden = dev.tensor(&hidden, &[n, D])?;
    let mut head = dev.tensor(&head0, &[V, D])?;
    // The sampling policy is the head before any step.
    let old_logits = dev.linear_logits(&hidden, &head)?;
    let old = dev
        .token_logprobs(&old_logits, &on.targets, false)?
        .logprobs;
    let zeros = vec![0.0f32; V * D];
    let (mut m, mut v) = (dev.tensor(&zeros, &[V, D])?, dev.tensor(&zeros, &[V, D])?);
    let adamw = AdamWConfig {
        weight_decay: 0.0,
        ..AdamWConfig::default()
    };
    // The loss falls until the sub-sequence ratios reach the clip range
    // (1 ± 0.2): past it PPO gives no more gradient, so it levels off near
    // −0.2·|A| (the advantages are ±0.707).
    let mut head_losses = Vec::new();
    for step in 1..=5u64 {
        // 4 rows a chunk: the op never holds more than 4 × V logits.
        let out = dev.fused_linear_policy_loss(
            &hidden,
            &head,
            &on.targets,
            &on.inputs(&old),
            &config,
            4,
        )?;
        head_losses.push(out.loss);
        say(format!("head step {step}: loss {:.6}", out.loss));
        dev.adamw_step(
            &mut head,
            &out.dweight,
            &mut m,
            &mut v,
            &AdamWStep::from_config(&adamw, 1e-2, step),
        )?;
    }
    let last =
        dev.fused_linear_policy_loss(&hidden, &head, &on.targets, &on.inputs(&old), &config, 0)?;
    head_losses.push(last.loss);
    say(format!("after 5 AdamW steps: loss {:.6}", last.loss));
    Ok(Summary {
        device: dev.to_string(),
        loss: fused.loss,
        max_dlogit_diff,
        head_losses,
    })
}

/// A small deterministic generator (uniform in [0, 1)), so the example
/// needs no random-number crate.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

fn main() -> Result<(), KernelError> {
    let dev = Device::cuda_if_available(0);
    run(&dev, true)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fused call and the op-by-op chain agree, and AdamW on the
    /// fused-linear gradient lowers the loss (a wrong sign or a lost
    /// gradient would raise it or leave it flat).
    fn check(dev: &Device) {
        let s = run(dev, false).expect("run");
        assert!(s.loss.is_finite(), "{s:?}");
        // bf16 gradients: both are rounded from the same f32/f64 value.
        assert!(s.max_dlogit_diff <= 1e-3, "{s:?}");
        let (first, last) = (s.head_losses[0], *s.head_losses.last().unwrap());
        assert!(last < first - 1e-3, "{s:?}");
    }

    #[test]
    fn cpu_path() {
        check(&Device::Cpu);
    }

    #[test]
    fn first_device() {
        // The CPU again where there is no GPU.
        check(&Device::cuda_if_available(0));
    }
}
