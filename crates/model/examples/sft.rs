//! Supervised fine-tuning of the tiny model on a short text, printing the
//! loss and the training throughput.
//!
//! `cargo run --release -p flowrl-model --example sft -- [steps] [rows] [row_len]`

use std::time::Instant;

use flowrl_model::{GenerateConfig, GradMode, Model, ModelConfig, Packed, generate};
use flowrl_optim::{AdamW, AdamWConfig, Optimizer};

const TEXT: &str = "Workflow: <think>split the task</think><tool>Generate</tool> then \
<tool>Review</tool>, <tool>Revise</tool> until the test passes; finish with <tool>Ensemble</tool>. ";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let steps = args.first().copied().unwrap_or(100);
    let rows = args.get(1).copied().unwrap_or(8);
    let row_len = args.get(2).copied().unwrap_or(128);

    let bytes: Vec<u32> = TEXT.bytes().map(u32::from).collect();
    // Each row is a window of the repeated text starting at another offset.
    let (mut tokens, mut targets, mut positions, mut offsets) = (vec![], vec![], vec![], vec![0]);
    for r in 0..rows {
        for p in 0..row_len {
            let i = r * 13 + p;
            tokens.push(bytes[i % bytes.len()]);
            targets.push(bytes[(i + 1) % bytes.len()]);
            positions.push(p as u32);
        }
        offsets.push(tokens.len());
    }
    let n = tokens.len();
    let input = Packed::new(&tokens, &positions, &offsets);

    let mut model = Model::<f32>::random(&ModelConfig::tiny(), 0)?;
    let mut opt = AdamW::new(AdamWConfig {
        lr: 3e-3,
        weight_decay: 0.0,
        ..AdamWConfig::default()
    })?;
    let dlp = vec![-1.0 / n as f32; n];
    let start = Instant::now();
    for step in 0..steps {
        let (lp, acts) = model.forward_train(&input, &targets)?;
        let loss = -lp.iter().sum::<f32>() / n as f32;
        model.zero_grad(GradMode::Full);
        model.backward(&acts, &dlp, GradMode::Full)?;
        opt.step(&mut model.optim_params(GradMode::Full), 3e-3)?;
        if step % 10 == 0 || step + 1 == steps {
            println!("step {step:4}  loss {loss:.4}");
        }
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{steps} steps of {n} tokens in {secs:.2} s: {:.0} tokens/s (forward + backward + AdamW)",
        (steps * n) as f64 / secs
    );
    let prompt: Vec<u32> = "Workflow: ".bytes().map(u32::from).collect();
    let out = generate(
        &model,
        &[prompt],
        &GenerateConfig {
            max_new_tokens: 80,
            temperature: 0.0,
            ..GenerateConfig::default()
        },
        None,
    )?;
    let text: String = out[0]
        .tokens
        .iter()
        .map(|&t| char::from(u8::try_from(t).unwrap_or(b'?')))
        .collect();
    println!("greedy continuation of \"Workflow: \": {text}");
    Ok(())
}
