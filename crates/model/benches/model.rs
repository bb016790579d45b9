//! Throughput of the CPU model: forward (log-probs), forward + backward
//! (full fine-tuning and LoRA) and batched generation for the tiny config;
//! forward for the Qwen2.5-0.5B shape with random weights when
//! `FLOWRL_BENCH_05B=1` (it needs about 2.5 GB of memory and a few seconds
//! per iteration).
//!
//! `cargo bench -p flowrl-model --bench model -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use flowrl_model::{GenerateConfig, GradMode, LoraConfig, Model, ModelConfig, Packed, generate};

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

criterion_group!(benches, tiny, qwen_half_b);
criterion_main!(benches);
