//! Criterion benchmarks of the kernels: the CPU path at a small shape, and
//! the CUDA kernels at N = 16,384, V = 32,000 (bf16) when a GPU is present
//! (the group prints a message and is skipped otherwise). The table of the
//! issue's shapes comes from the `flowrl-kernels-bench` binary.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use flowrl_kernels::{AdamWStep, Device, Tensor};
use flowrl_optim::AdamWConfig;
use half::bf16;

fn random_logits(n: usize, v: usize) -> (Vec<bf16>, Vec<i32>) {
    let mut s = 0x9e3779b97f4a7c15u64;
    let x = (0..n * v)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            bf16::from_f32(((s >> 40) as f32 / (1u64 << 24) as f32) * 8.0 - 4.0)
        })
        .collect();
    let y = (0..n).map(|i| ((i * 7919) % v) as i32).collect();
    (x, y)
}

fn bench_device(c: &mut Criterion, d: &Device, label: &str, n: usize, v: usize) {
    let (x, y) = random_logits(n, v);
    let xt: Tensor = d.tensor(&x, &[n, v]).expect("logits");
    let yt = d.tensor(&y, &[n]).expect("targets");
    let mut g = c.benchmark_group(format!("{label} {n}x{v} bf16"));
    g.sample_size(10);
    g.throughput(Throughput::Bytes((n * v * 2) as u64));
    g.bench_function("logprob_fwd", |b| {
        b.iter(|| {
            d.token_logprobs(&xt, &yt, false).expect("fwd");
            d.synchronize().expect("sync");
        })
    });
    g.bench_function("logprob_fwd_entropy", |b| {
        b.iter(|| {
            d.token_logprobs(&xt, &yt, true).expect("fwd");
            d.synchronize().expect("sync");
        })
    });
    let fwd = d.token_logprobs(&xt, &yt, false).expect("fwd");
    let gr: Vec<f32> = (0..n).map(|i| 0.01 * ((i % 13) as f32 - 6.0)).collect();
    let gt = d.tensor(&gr, &[n]).expect("g");
    g.throughput(Throughput::Bytes((2 * n * v * 2) as u64));
    g.bench_function("logits_backward", |b| {
        b.iter(|| {
            d.logits_backward(&xt, &yt, &fwd.lse, &gt, None)
                .expect("bwd");
            d.synchronize().expect("sync");
        })
    });
    g.finish();

    let p = 1 << 20;
    let w: Vec<f32> = (0..p).map(|i| ((i % 1000) as f32 - 500.0) * 1e-3).collect();
    let mut pt = d.tensor(&w, &[p]).expect("p");
    let gt = d.tensor(&w, &[p]).expect("g");
    let mut m = d.tensor(&w, &[p]).expect("m");
    let mut v2 = d.tensor(&w, &[p]).expect("v");
    let s = AdamWStep::from_config(&AdamWConfig::default(), 1e-4, 3);
    let mut g = c.benchmark_group(format!("{label} adamw"));
    g.throughput(Throughput::Bytes((p * 28) as u64));
    g.bench_function("adamw_1M", |b| {
        b.iter(|| {
            d.adamw_step(&mut pt, &gt, &mut m, &mut v2, &s)
                .expect("adamw");
            d.synchronize().expect("sync");
        })
    });
    g.finish();
}

fn kernels(c: &mut Criterion) {
    bench_device(c, &Device::Cpu, "cpu", 64, 32_000);
    match Device::cuda(0) {
        Ok(d) => bench_device(c, &d, "cuda", 16_384, 32_000),
        Err(e) => eprintln!("skipping the CUDA group: {e}"),
    }
}

criterion_group!(benches, kernels);
criterion_main!(benches);
