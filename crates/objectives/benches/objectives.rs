//! Loss + gradient over 1 M token positions in ~10 k sub-sequences.
//!
//! Throughput counts the bytes the evaluation must read and write once:
//! `logprobs`, `old_logprobs`, `mask`, `subseq`, `traj` and `grad`
//! (4 + 4 + 1 + 4 + 4 + 4 = 21 bytes per position in f32; plus 4 for
//! `ref_logprobs` when the KL is on).

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use flowrl_objectives::{Algorithm, KlEstimator, Preset, TokenBatch, compute_into};

/// A synthetic batch: trajectories of 4 sub-sequences of 80–120 tokens, each
/// preceded by 20 masked-out environment tokens.
struct Synth {
    lp: Vec<f32>,
    old: Vec<f32>,
    reference: Vec<f32>,
    mask: Vec<u8>,
    subseq: Vec<i32>,
    traj: Vec<i32>,
    adv: Vec<f32>,
}

fn synth(n: usize) -> Synth {
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 11) as f64 / (1u64 << 53) as f64
    };
    let mut s = Synth {
        lp: Vec::with_capacity(n),
        old: Vec::with_capacity(n),
        reference: Vec::with_capacity(n),
        mask: Vec::with_capacity(n),
        subseq: Vec::with_capacity(n),
        traj: Vec::with_capacity(n),
        adv: Vec::new(),
    };
    let (mut sid, mut tid, mut turn) = (0i32, 0i32, 0);
    s.adv.push((next() * 2.0 - 1.0) as f32);
    while s.lp.len() < n {
        let env = 20;
        let pol = 80 + (next() * 40.0) as usize;
        for _ in 0..env {
            if s.lp.len() == n {
                break;
            }
            s.lp.push(0.0);
            s.old.push(0.0);
            s.reference.push(0.0);
            s.mask.push(0);
            s.subseq.push(-1);
            s.traj.push(tid);
        }
        for _ in 0..pol {
            if s.lp.len() == n {
                break;
            }
            let old = -(next() * 3.0) as f32;
            s.old.push(old);
            s.lp.push(old + ((next() - 0.5) * 0.4) as f32);
            s.reference.push(old + ((next() - 0.5) * 0.2) as f32);
            s.mask.push(1);
            s.subseq.push(sid);
            s.traj.push(tid);
        }
        sid += 1;
        turn += 1;
        if turn == 4 {
            turn = 0;
            tid += 1;
            s.adv.push((next() * 2.0 - 1.0) as f32);
        }
    }
    s
}

fn bench(c: &mut Criterion) {
    let n = 1 << 20;
    let s = synth(n);
    let mut grad = vec![0.0f32; n];
    let mut group = c.benchmark_group("objectives_1M");
    let cases = [
        ("gsspo", Algorithm::Gsspo, false),
        ("gspo", Algorithm::Gspo, false),
        ("grpo", Algorithm::Grpo, false),
        ("reinforce", Algorithm::Reinforce, false),
        ("gsspo+k3", Algorithm::Gsspo, true),
        ("grpo+k3", Algorithm::Grpo, true),
    ];
    for (name, alg, kl) in cases {
        let mut cfg = alg.default_config().objective;
        cfg.kl_coef = if kl { 0.001 } else { 0.0 };
        cfg.kl_estimator = KlEstimator::K3;
        let mut batch = TokenBatch::new(&s.lp, &s.old, &s.mask, &s.subseq, &s.traj, &s.adv);
        if kl {
            batch = batch.with_ref(&s.reference);
        }
        let bytes = n as u64 * if kl { 25 } else { 21 };
        group.throughput(Throughput::Bytes(bytes));
        group.bench_function(BenchmarkId::from_parameter(name), |bch| {
            bch.iter(|| compute_into(&batch, &cfg, &mut grad).map(|(l, _)| l))
        });
    }
    // The f64 element type (twice the bytes for the float slices).
    let lp: Vec<f64> = s.lp.iter().map(|&v| f64::from(v)).collect();
    let old: Vec<f64> = s.old.iter().map(|&v| f64::from(v)).collect();
    let adv: Vec<f64> = s.adv.iter().map(|&v| f64::from(v)).collect();
    let mut grad64 = vec![0.0f64; n];
    let cfg = Preset::WorkflowR1.config().objective;
    let cfg = flowrl_objectives::ObjectiveConfig {
        kl_coef: 0.0,
        ..cfg
    };
    let batch = TokenBatch::new(&lp, &old, &s.mask, &s.subseq, &s.traj, &adv);
    group.throughput(Throughput::Bytes(n as u64 * 33));
    group.bench_function(BenchmarkId::from_parameter("gsspo-f64"), |bch| {
        bch.iter(|| compute_into(&batch, &cfg, &mut grad64).map(|(l, _)| l))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
