//! One AdamW step over 10 M parameters, with a copy of the same size as the
//! machine's memory-bandwidth yardstick measured in the same run.
//!
//! Bytes per AdamW step: read value, grad, m, v and write value, m, v —
//! 28 bytes per parameter. Run short:
//! `cargo bench -p flowrl-optim --bench adamw -- --warm-up-time 1 --measurement-time 3`.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use flowrl_optim::{AdamW, AdamWConfig, Optimizer, ParamMut, clip_grad_norm, grad_norm};

const N: usize = 10_000_000;

fn fill(n: usize, seed: u64) -> Vec<f32> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            ((x >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 0.02
        })
        .collect()
}

fn adamw_step(c: &mut Criterion, name: &str, threads: Option<usize>) {
    let mut value = fill(N, 1);
    let grad = fill(N, 2);
    let mut opt = AdamW::new(AdamWConfig::default()).expect("default config is valid");
    let mut step = move || {
        opt.step(&mut [ParamMut::new("w", &mut value, &grad)], 1e-4)
            .expect("valid step");
        black_box(value[N / 2]);
    };
    #[cfg(feature = "parallel")]
    let pool = threads.map(|t| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(t)
            .build()
            .expect("thread pool")
    });
    #[cfg(not(feature = "parallel"))]
    let _ = threads;
    let mut group = c.benchmark_group("adamw_step_10M");
    group.throughput(Throughput::Bytes(28 * N as u64));
    group.sample_size(10);
    group.bench_function(name, |b| {
        b.iter(|| {
            #[cfg(feature = "parallel")]
            if let Some(pool) = &pool {
                return pool.install(&mut step);
            }
            step()
        })
    });
    group.finish();
}

fn bench(c: &mut Criterion) {
    {
        let src = fill(N, 3);
        let mut dst = vec![0.0f32; N];
        let mut group = c.benchmark_group("copy_10M");
        group.throughput(Throughput::Bytes(8 * N as u64));
        group.sample_size(10);
        group.bench_function("copy_from_slice", |b| {
            b.iter(|| {
                dst.copy_from_slice(black_box(&src));
                black_box(dst[N / 2]);
            })
        });
        group.finish();
    }
    adamw_step(c, "default_pool", None);
    #[cfg(feature = "parallel")]
    adamw_step(c, "one_thread", Some(1));
    {
        let mut g = fill(N, 4);
        let mut group = c.benchmark_group("clip_10M");
        group.throughput(Throughput::Bytes(4 * N as u64));
        group.sample_size(10);
        group.bench_function("grad_norm", |b| b.iter(|| black_box(grad_norm(&[&g]))));
        group.bench_function("clip_grad_norm_no_clip", |b| {
            b.iter(|| black_box(clip_grad_norm(&mut [&mut g], 1e9).expect("finite")))
        });
        group.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
