//! Dequantisation throughput per block format (values per second, one thread).

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use flowrl_gguf::{GgmlType, dequantize_into};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Random quant bytes with a sane f16 scale (0.01) in every scale field.
fn blocks(ty: GgmlType, n: usize) -> Vec<u8> {
    let mut rng = StdRng::seed_from_u64(7);
    let mut bytes: Vec<u8> = (0..ty.bytes_for(n).unwrap_or(0))
        .map(|_| rng.random())
        .collect();
    let scale = half::f16::from_f32(0.01).to_bits().to_le_bytes();
    let fields: &[usize] = match ty {
        GgmlType::Q4K | GgmlType::Q5K => &[0, 2],
        GgmlType::Q6K => &[208],
        GgmlType::F32 | GgmlType::F16 | GgmlType::BF16 => &[],
        _ => &[0],
    };
    for block in bytes.chunks_exact_mut(ty.type_size()) {
        for &at in fields {
            block[at..at + 2].copy_from_slice(&scale);
        }
    }
    bytes
}

fn bench(c: &mut Criterion) {
    const N: usize = 1 << 20;
    let mut group = c.benchmark_group("dequantize_1M");
    group.throughput(Throughput::Elements(N as u64));
    let mut out = vec![0.0f32; N];
    for ty in [
        GgmlType::F16,
        GgmlType::BF16,
        GgmlType::Q8_0,
        GgmlType::Q5_0,
        GgmlType::Q4_0,
        GgmlType::Q4K,
        GgmlType::Q5K,
        GgmlType::Q6K,
    ] {
        let bytes = blocks(ty, N);
        group.bench_function(ty.name(), |b| {
            b.iter(|| dequantize_into(ty, black_box(&bytes), &mut out).map(|()| out[N - 1]))
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
