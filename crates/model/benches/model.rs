//! Throughput of the CPU model: forward (log-probs), forward + backward
//! (full fine-tuning and LoRA) and batched generation for the tiny config;
//! forward for the Qwen2.5-0.5B shape with random weights when
//! `FLOWRL_BENCH_05B=1` (it needs about 2.5 GB of memory and a few seconds
//! per iteration); and the top-p nucleus at the Qwen vocabulary size
//! (151,936 logits a row, logits about N(0, 3²)): nucleus log-probs
//! against full-softmax ones, and top-p sampling.
//!
//! `cargo bench -p flowrl-model --bench model -- --warm-up-time 1 --measurement-time 3`
//!
//! Only the nucleus benches:
//! `cargo bench -p flowrl-model --bench model -- nucleus --warm-up-time 1 --measurement-time 5`

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use flowrl_model::{
    GenerateConfig, GradMode, LoraConfig, Model, ModelConfig, Packed, Support, generate,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

struct Batch {
    tokens: Vec<u32>,
    targets: Vec<u32>,
    positions: Vec<u32>,
    offsets: Vec<usize>,
}

fn batch(vocab: usize, rows: usize, len: usize) -> Batch {
    let mut b = Batch {
        tokens: vec![],
        targets: vec![],
        positions: vec![],
        offsets: vec![0],
    };
    for r in 0..rows {
        for p in 0..len {
            b.tokens.push(((r * 131 + p * 31) % vocab) as u32);
            b.targets.push(((r * 17 + p * 7 + 1) % vocab) as u32);
            b.positions.push(p as u32);
        }
        b.offsets.push(b.tokens.len());
    }
    b
}

fn tiny(c: &mut Criterion) {
    let cfg = ModelConfig::tiny();
    let mut model = Model::<f32>::random(&cfg, 1).unwrap();
    let b = batch(cfg.vocab_size, 8, 128);
    let input = Packed::new(&b.tokens, &b.positions, &b.offsets);
    let dlp = vec![-1.0 / b.tokens.len() as f32; b.tokens.len()];
    let mut g = c.benchmark_group("tiny (d=64, 2 layers), 8 rows x 128 tokens");
    g.throughput(Throughput::Elements(b.tokens.len() as u64));
    g.bench_function("forward log-probs", |bench| {
        bench.iter(|| black_box(model.token_logprobs(&input, &b.targets).unwrap()))
    });
    g.bench_function("forward + backward (full)", |bench| {
        bench.iter(|| {
            let (lp, acts) = model.forward_train(&input, &b.targets).unwrap();
            model.backward(&acts, &dlp, GradMode::Full).unwrap();
            black_box(lp)
        })
    });
    let mut lora = model.clone();
    lora.attach_lora(&LoraConfig::default()).unwrap();
    g.bench_function("forward + backward (LoRA r=8, all modules)", |bench| {
        bench.iter(|| {
            let (lp, acts) = lora.forward_train(&input, &b.targets).unwrap();
            lora.backward(&acts, &dlp, GradMode::Lora).unwrap();
            black_box(lp)
        })
    });
    g.finish();
    model.zero_grad(GradMode::Full);

    let mut g = c.benchmark_group("tiny generation, 8 prompts x 16 tokens, 64 new tokens each");
    g.throughput(Throughput::Elements(8 * 64));
    let prompts: Vec<Vec<u32>> = (0..8)
        .map(|i| (0..16).map(|p| ((i * 37 + p * 11) % 256) as u32).collect())
        .collect();
    let gen_cfg = GenerateConfig {
        max_new_tokens: 64,
        temperature: 1.0,
        top_p: 0.95,
        seed: 1,
        ..GenerateConfig::default()
    };
    g.bench_function("generate (temperature 1, top-p 0.95)", |bench| {
        bench.iter(|| black_box(generate(&model, &prompts, &gen_cfg, None).unwrap()))
    });
    g.finish();
}

fn qwen_half_b(c: &mut Criterion) {
    if std::env::var("FLOWRL_BENCH_05B").ok().as_deref() != Some("1") {
        return;
    }
    let cfg = ModelConfig::qwen2_5_0_5b();
    let model = Model::<f32>::random(&cfg, 1).unwrap();
    let b = batch(cfg.vocab_size, 1, 128);
    let input = Packed::new(&b.tokens, &b.positions, &b.offsets);
    let mut g = c.benchmark_group("Qwen2.5-0.5B shape, 1 row x 128 tokens");
    g.sample_size(10);
    g.throughput(Throughput::Elements(b.tokens.len() as u64));
    g.bench_function("forward log-probs", |bench| {
        bench.iter(|| black_box(model.token_logprobs(&input, &b.targets).unwrap()))
    });
    let mut trainable = model.clone();
    let dlp = vec![-1.0 / b.tokens.len() as f32; b.tokens.len()];
    g.bench_function("forward + backward, full", |bench| {
        bench.iter(|| {
            let (lp, acts) = trainable.forward_train(&input, &b.targets).unwrap();
            trainable.backward(&acts, &dlp, GradMode::Full).unwrap();
            black_box(lp)
        })
    });
    drop(trainable);
    g.finish();
    let mut g = c.benchmark_group("Qwen2.5-0.5B shape generation, 4 prompts x 8 tokens, 8 new");
    g.sample_size(10);
    g.throughput(Throughput::Elements(4 * 8));
    let prompts: Vec<Vec<u32>> = (0..4)
        .map(|i| (0..8).map(|p| i * 100 + p).collect())
        .collect();
    let gen_cfg = GenerateConfig {
        max_new_tokens: 8,
        ..GenerateConfig::default()
    };
    g.bench_function("generate", |bench| {
        bench.iter(|| black_box(generate(&model, &prompts, &gen_cfg, None).unwrap()))
    });
    g.finish();
}

/// A one-layer model with the Qwen vocabulary (151,936) and a tiny hidden
/// size, its untied LM head drawn so that the logits of a position are
/// about N(0, 3²): the cost of a call is then mostly the per-row work on
/// the logits (softmax, nucleus selection, sampling), not the matmuls.
fn wide_vocab_model() -> Model<f32> {
    let cfg = ModelConfig {
        vocab_size: 151_936,
        hidden_size: 16,
        intermediate_size: 32,
        num_hidden_layers: 1,
        num_attention_heads: 2,
        num_key_value_heads: 1,
        head_dim: 8,
        tie_word_embeddings: false,
        ..ModelConfig::tiny()
    };
    let mut model = Model::<f32>::random(&cfg, 3).unwrap();
    // The final norm leaves hidden rows of RMS 1, so weights of standard
    // deviation 3/√d give logits of standard deviation about 3.
    let sd = 3.0 / (cfg.hidden_size as f64).sqrt();
    let mut rng = StdRng::seed_from_u64(4);
    for p in model.trainable_mut(GradMode::Full) {
        if p.name == "lm_head.weight" {
            for v in &mut p.value {
                // Box-Muller.
                let (u1, u2) = (1.0 - rng.random::<f64>(), rng.random::<f64>());
                let z = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
                *v = (sd * z) as f32;
            }
        }
    }
    model
}

fn nucleus(c: &mut Criterion) {
    let model = wide_vocab_model();
    let vocab = model.config.vocab_size;
    let b = batch(vocab, 1, 64);
    let input = Packed::new(&b.tokens, &b.positions, &b.offsets);
    let mut g = c.benchmark_group("nucleus, 64 positions x V = 151,936 (logits ~ N(0, 3))");
    g.sample_size(10);
    g.throughput(Throughput::Elements(b.tokens.len() as u64));
    g.bench_function("log-probs, full softmax", |bench| {
        bench.iter(|| {
            black_box(
                model
                    .token_logprobs_over(&input, &b.targets, Support::Full)
                    .unwrap(),
            )
        })
    });
    g.bench_function("log-probs, nucleus top-p 0.9", |bench| {
        bench.iter(|| {
            black_box(
                model
                    .token_logprobs_over(&input, &b.targets, Support::Nucleus { top_p: 0.9 })
                    .unwrap(),
            )
        })
    });
    let prompts: Vec<Vec<u32>> = (0..64).map(|i| vec![(i * 2_371) as u32]).collect();
    for (name, top_k, top_p) in [
        ("sample 1 token x 64 prompts, no filter", 0, 1.0),
        ("sample 1 token x 64 prompts, top-p 0.9", 0, 0.9),
        ("sample 1 token x 64 prompts, top-k 50", 50, 1.0),
    ] {
        let gen_cfg = GenerateConfig {
            max_new_tokens: 1,
            temperature: 1.0,
            top_k,
            top_p,
            seed: 1,
            ..GenerateConfig::default()
        };
        g.bench_function(name, |bench| {
            bench.iter(|| black_box(generate(&model, &prompts, &gen_cfg, None).unwrap()))
        });
    }
    g.finish();
}

criterion_group!(benches, tiny, qwen_half_b, nucleus);
criterion_main!(benches);
