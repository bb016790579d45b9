//! End to end: the tiny model learns a fixed string by cross-entropy with
//! AdamW from `flowrl-optim`, in full fine-tuning and with LoRA adapters.

use flowrl_model::{GradMode, LoraConfig, Model, ModelConfig, Packed};
use flowrl_optim::{AdamW, AdamWConfig, Optimizer};

const TEXT: &[u8] = b"Think, then act: Generate, Review, Revise, Ensemble. Done.";

/// Mean negative log-likelihood of `TEXT` (next-byte prediction).
fn sft_step(m: &mut Model<f32>, mode: GradMode) -> f32 {
    let ids: Vec<u32> = TEXT.iter().map(|&b| b as u32).collect();
    let inputs = &ids[..ids.len() - 1];
    let targets = &ids[1..];
    let n = inputs.len();
    let pos: Vec<u32> = (0..n as u32).collect();
    let offsets = [0, n];
    let (lp, acts) = m
        .forward_train(&Packed::new(inputs, &pos, &offsets), targets)
        .unwrap();
    let loss = -lp.iter().sum::<f32>() / n as f32;
    // J = −mean lp ⇒ ∂J/∂lp_t = −1/n.
    let dlp = vec![-1.0 / n as f32; n];
    m.zero_grad(mode);
    m.backward(&acts, &dlp, mode).unwrap();
    loss
}

fn train(m: &mut Model<f32>, mode: GradMode, lr: f32, steps: usize) -> (f32, f32) {
    let mut opt = AdamW::new(AdamWConfig {
        lr,
        weight_decay: 0.0,
        ..AdamWConfig::default()
    })
    .unwrap();
    let first = sft_step(m, mode);
    let mut last = first;
    for _ in 0..steps {
        opt.step(&mut m.optim_params(mode), lr).unwrap();
        last = sft_step(m, mode);
    }
    (first, last)
}

#[test]
fn fifty_adamw_steps_of_sft_reduce_the_loss() {
    let mut m = Model::<f32>::random(&ModelConfig::tiny(), 1).unwrap();
    let (first, last) = train(&mut m, GradMode::Full, 3e-3, 50);
    println!("full fine-tuning: loss {first:.3} -> {last:.3}");
    assert!(first > 5.0, "initial loss {first} (≈ ln 264 expected)");
    assert!(last < 0.5 * first, "loss {first} → {last}");
}

#[test]
fn lora_training_reduces_the_loss_and_keeps_base_weights() {
    let mut m = Model::<f32>::random(&ModelConfig::tiny_qwen3(), 2).unwrap();
    let before = m.clone();
    m.attach_lora(&LoraConfig {
        rank: 8,
        alpha: 16.0,
        ..LoraConfig::default()
    })
    .unwrap();
    let (first, last) = train(&mut m, GradMode::Lora, 1e-2, 50);
    println!("LoRA: loss {first:.3} -> {last:.3}");
    assert!(last < 0.8 * first, "loss {first} → {last}");
    assert_eq!(m.embed, before.embed);
    assert_eq!(m.layers[1].up_proj.weight, before.layers[1].up_proj.weight);
}

#[test]
fn with_lora_disabled_gives_the_base_model_and_restores_the_adapters() {
    let base = Model::<f32>::random(&ModelConfig::tiny(), 3).unwrap();
    let mut m = base.clone();
    m.attach_lora(&LoraConfig::default()).unwrap();
    train(&mut m, GradMode::Lora, 1e-2, 5);
    let ids: Vec<u32> = TEXT.iter().map(|&b| b as u32).collect();
    let n = ids.len() - 1;
    let pos: Vec<u32> = (0..n as u32).collect();
    let offsets = [0, n];
    let input = Packed::new(&ids[..n], &pos, &offsets);
    let targets = &ids[1..];
    let adapters: Vec<_> = m.lora_params().into_iter().cloned().collect();
    let adapted = m.token_logprobs(&input, targets).unwrap();

    let (off, seen) = m.with_lora_disabled(|b| {
        (
            b.token_logprobs(&input, targets).unwrap(),
            b.lora_params().len(),
        )
    });
    assert_eq!(seen, 0, "adapters visible inside with_lora_disabled");
    // Exactly the model the adapters were attached to.
    assert_eq!(off, base.token_logprobs(&input, targets).unwrap());
    assert_ne!(off, adapted, "the trained adapters changed nothing");
    // The adapters are back, unchanged.
    let back: Vec<_> = m.lora_params().into_iter().cloned().collect();
    assert_eq!(back, adapters);
    assert_eq!(m.token_logprobs(&input, targets).unwrap(), adapted);
}
