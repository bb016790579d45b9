//! The CPU path against plain f64 formulas, finite differences,
//! flowrl-objectives and flowrl-optim.

mod common;

use common::{assert_close, batch, f64s, logits, rng};
use flowrl_kernels::{AdamWStep, DType, Device, EntropyGrad, KernelError, LossInputs, Tensor};
use flowrl_objectives::{Aggregation, Algorithm, ObjectiveConfig, TokenBatch, compute};
use flowrl_optim::{AdamW, AdamWConfig, Optimizer, ParamMut};
use half::{bf16, f16};

/// (lp, H) of one row in f64.
fn naive(row: &[f64], y: usize) -> (f64, f64) {
    let m = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let s: f64 = row.iter().map(|x| (x - m).exp()).sum();
    let lse = m + s.ln();
    let h = -row.iter().map(|x| (x - lse).exp() * (x - lse)).sum::<f64>();
    (row[y] - lse, h)
}

#[test]
fn logprobs_match_f64_formula_for_every_dtype() {
    let d = Device::Cpu;
    let mut r = rng(1);
    for &(n, v) in &[(1usize, 1usize), (1, 7), (3, 1000), (5, 4099)] {
        let (x, y) = logits(&mut r, n, v);
        let yt = d.tensor(&y, &[n]).unwrap();
        for dt in [DType::F32, DType::F16, DType::BF16] {
            let (t, xs): (Tensor, Vec<f64>) = match dt {
                DType::F32 => (d.tensor(&x, &[n, v]).unwrap(), f64s(&x)),
                DType::F16 => {
                    let h: Vec<f16> = x.iter().map(|&a| f16::from_f32(a)).collect();
                    let xs = h.iter().map(|a| a.to_f64()).collect();
                    (d.tensor(&h, &[n, v]).unwrap(), xs)
                }
                _ => {
                    let h: Vec<bf16> = x.iter().map(|&a| bf16::from_f32(a)).collect();
                    let xs = h.iter().map(|a| a.to_f64()).collect();
                    (d.tensor(&h, &[n, v]).unwrap(), xs)
                }
            };
            let out = d.token_logprobs(&t, &yt, true).unwrap();
            let lp = f64s(&out.logprobs.to_vec::<f32>().unwrap());
            let h = f64s(&out.entropy.unwrap().to_vec::<f32>().unwrap());
            let (mut wl, mut wh) = (vec![], vec![]);
            for i in 0..n {
                let (a, b) = naive(&xs[i * v..(i + 1) * v], y[i] as usize);
                wl.push(a);
                wh.push(b);
            }
            assert_close(&format!("lp {dt} {n}x{v}"), &lp, &wl, 1e-5, 1e-6);
            assert_close(&format!("H {dt} {n}x{v}"), &h, &wh, 1e-5, 1e-5);
        }
    }
}

#[test]
fn target_out_of_range_is_an_error() {
    let d = Device::Cpu;
    let x = d.tensor(&[0.0f32; 6], &[2, 3]).unwrap();
    let y = d.tensor(&[0i32, 3], &[2]).unwrap();
    match d.token_logprobs(&x, &y, false) {
        Err(KernelError::TargetOutOfRange {
            row: 1,
            target: 3,
            vocab: 3,
        }) => {}
        other => panic!("{other:?}"),
    }
    let y = d.tensor(&[0i32], &[1]).unwrap();
    assert!(matches!(
        d.token_logprobs(&x, &y, false),
        Err(KernelError::Shape { .. })
    ));
    let y = d.tensor(&[0.0f32, 1.0], &[2]).unwrap();
    assert!(matches!(
        d.token_logprobs(&x, &y, false),
        Err(KernelError::DType { .. })
    ));
}

/// J(z) = Σ_t g_t·lp_t(z) + Σ_t h_t·H_t(z), in f64.
fn j_of(z: &[f64], n: usize, v: usize, y: &[i32], g: &[f64], h: &[f64]) -> f64 {
    (0..n)
        .map(|i| {
            let (lp, ent) = naive(&z[i * v..(i + 1) * v], y[i] as usize);
            g[i] * lp + h[i] * ent
        })
        .sum()
}

#[test]
fn logits_backward_matches_finite_differences() {
    let d = Device::Cpu;
    let mut r = rng(2);
    let (n, v) = (4usize, 37usize);
    let (x, y) = logits(&mut r, n, v);
    let g = [0.7f32, -1.3, 0.0, 0.25];
    let hg = [0.1f32, 0.0, 0.0, -0.4];
    let xt = d.tensor(&x, &[n, v]).unwrap();
    let yt = d.tensor(&y, &[n]).unwrap();
    let fwd = d.token_logprobs(&xt, &yt, true).unwrap();
    let gt = d.tensor(&g, &[n]).unwrap();
    let ht = d.tensor(&hg, &[n]).unwrap();
    let ent = fwd.entropy.clone().unwrap();
    let eg = Some(EntropyGrad {
        entropy: &ent,
        grad: &ht,
    });
    let dl = d.logits_backward(&xt, &yt, &fwd.lse, &gt, eg).unwrap();
    let dl = f64s(&dl.to_vec::<f32>().unwrap());
    let (g64, h64) = (f64s(&g), f64s(&hg));
    let z = f64s(&x);
    let mut fd = vec![0.0; n * v];
    let eps = 1e-5;
    for k in 0..n * v {
        let mut zp = z.clone();
        zp[k] += eps;
        let mut zm = z.clone();
        zm[k] -= eps;
        fd[k] = (j_of(&zp, n, v, &y, &g64, &h64) - j_of(&zm, n, v, &y, &g64, &h64)) / (2.0 * eps);
    }
    assert_close("dlogits vs finite differences", &dl, &fd, 1e-6, 1e-4);
    // Row 2 has g = h = 0: exact zeros.
    assert!(dl[2 * v..3 * v].iter().all(|&a| a == 0.0));

    // In place gives the same bits.
    let mut xi = xt.clone();
    d.logits_backward_in_place(&mut xi, &yt, &fwd.lse, &gt, eg)
        .unwrap();
    assert_eq!(f64s(&xi.to_vec::<f32>().unwrap()), dl);
}

#[test]
fn policy_loss_is_flowrl_objectives() {
    let d = Device::Cpu;
    let mut r = rng(3);
    let b = batch(&mut r, 9, 0.4);
    let n = b.lp.len();
    let t = |v: &[f32]| d.tensor(v, &[v.len()]).unwrap();
    let (lp, old, rf, ent, adv) = (t(&b.lp), t(&b.old), t(&b.rf), t(&b.ent), t(&b.adv));
    let mask = d.tensor(&b.mask, &[n]).unwrap();
    let subseq = d.tensor(&b.subseq, &[n]).unwrap();
    let traj = d.tensor(&b.traj, &[n]).unwrap();
    for alg in Algorithm::ALL {
        let mut c: ObjectiveConfig = alg.default_config().objective;
        c.entropy_coef = 0.01;
        let inputs = LossInputs {
            logprobs: &lp,
            old_logprobs: &old,
            ref_logprobs: Some(&rf),
            entropy: Some(&ent),
            mask: &mask,
            subseq: &subseq,
            traj: &traj,
            advantages: &adv,
        };
        let got = d.policy_loss(&inputs, &c).unwrap();
        let tb = TokenBatch::new(&b.lp, &b.old, &b.mask, &b.subseq, &b.traj, &b.adv)
            .with_ref(&b.rf)
            .with_entropy(&b.ent);
        let want = compute(&tb, &c).unwrap();
        assert_eq!(got.loss, want.loss, "{alg}");
        assert_eq!(got.grad.to_vec::<f32>().unwrap(), want.grad, "{alg}");
        assert_eq!(got.stats, want.stats, "{alg}");
    }
}

#[test]
fn fused_loss_gradient_is_the_chain_rule() {
    // dJ/dlogits of the fused call = backward of (g from the loss, entropy
    // bonus), and J moves by ⟨dlogits, Δz⟩ for a small step Δz.
    let d = Device::Cpu;
    let mut r = rng(4);
    let b = batch(&mut r, 3, 0.3);
    let n = b.lp.len();
    let v = 29;
    let (x, y) = logits(&mut r, n, v);
    let t = |v: &[f32]| d.tensor(v, &[v.len()]).unwrap();
    let (old, rf, adv) = (t(&b.old), t(&b.rf), t(&b.adv));
    let mask = d.tensor(&b.mask, &[n]).unwrap();
    let subseq = d.tensor(&b.subseq, &[n]).unwrap();
    let traj = d.tensor(&b.traj, &[n]).unwrap();
    let yt = d.tensor(&y, &[n]).unwrap();
    let mut c = Algorithm::Gsspo.default_config().objective;
    c.entropy_coef = 0.05;
    c.aggregation = Aggregation::SubseqMean;
    let dummy = t(&b.lp);
    let inputs = LossInputs {
        logprobs: &dummy,
        old_logprobs: &old,
        ref_logprobs: Some(&rf),
        entropy: None,
        mask: &mask,
        subseq: &subseq,
        traj: &traj,
        advantages: &adv,
    };
    let j = |z: &[f32]| -> f64 {
        let mut zt = d.tensor(z, &[n, v]).unwrap();
        d.fused_policy_loss(&mut zt, &yt, &inputs, &c, false)
            .unwrap()
            .loss
    };
    let mut xt = d.tensor(&x, &[n, v]).unwrap();
    let out = d
        .fused_policy_loss(&mut xt, &yt, &inputs, &c, false)
        .unwrap();
    let dl = out.dlogits.unwrap().to_vec::<f32>().unwrap();
    // Directional derivative along a random direction.
    let dir: Vec<f32> = (0..n * v)
        .map(|i| ((i * 7919 % 13) as f32 - 6.0) * 0.1)
        .collect();
    let eps = 1e-3f32;
    let zp: Vec<f32> = x.iter().zip(&dir).map(|(a, b)| a + eps * b).collect();
    let zm: Vec<f32> = x.iter().zip(&dir).map(|(a, b)| a - eps * b).collect();
    let fd = (j(&zp) - j(&zm)) / (2.0 * f64::from(eps));
    let an: f64 = dl
        .iter()
        .zip(&dir)
        .map(|(a, b)| f64::from(*a) * f64::from(*b))
        .sum();
    assert!(
        (fd - an).abs() <= 1e-3 + 1e-2 * an.abs(),
        "fd {fd} vs analytic {an}"
    );
    // In place writes the same gradient into the logits.
    let mut xi = d.tensor(&x, &[n, v]).unwrap();
    let o2 = d
        .fused_policy_loss(&mut xi, &yt, &inputs, &c, true)
        .unwrap();
    assert!(o2.dlogits.is_none());
    assert_eq!(xi.to_vec::<f32>().unwrap(), dl);
}

#[test]
fn adamw_is_bit_identical_to_flowrl_optim() {
    let d = Device::Cpu;
    let mut r = rng(5);
    let n = 70_001;
    let cfg = AdamWConfig {
        lr: 3e-3,
        weight_decay: 0.1,
        ..AdamWConfig::default()
    };
    let mut opt = AdamW::new(cfg).unwrap();
    let w0: Vec<f32> = (0..n)
        .map(|_| rand::Rng::random_range(&mut r, -1.0..1.0))
        .collect();
    let mut w_ref = w0.clone();
    let mut p = d.tensor(&w0, &[n]).unwrap();
    let mut m = d.tensor(&vec![0.0f32; n], &[n]).unwrap();
    let mut v = d.tensor(&vec![0.0f32; n], &[n]).unwrap();
    for step in 1..=4u64 {
        let g: Vec<f32> = (0..n)
            .map(|_| rand::Rng::random_range(&mut r, -0.5..0.5))
            .collect();
        let lr = 2e-3 * step as f32;
        opt.step(&mut [ParamMut::new("w", &mut w_ref, &g)], lr)
            .unwrap();
        let gt = d.tensor(&g, &[n]).unwrap();
        d.adamw_step(
            &mut p,
            &gt,
            &mut m,
            &mut v,
            &AdamWStep::from_config(&cfg, lr, step),
        )
        .unwrap();
        assert_eq!(p.to_vec::<f32>().unwrap(), w_ref, "step {step}");
        let (mr, vr) = opt.moments("w").unwrap();
        assert_eq!(m.to_vec::<f32>().unwrap(), mr);
        assert_eq!(v.to_vec::<f32>().unwrap(), vr);
    }
}

#[test]
fn objective_errors_keep_the_reference_variants() {
    let d = Device::Cpu;
    let t = |v: &[f32]| d.tensor(v, &[v.len()]).unwrap();
    let lp = t(&[-1.0, -2.0]);
    let adv = t(&[1.0]);
    let mask = d.tensor(&[1u8, 0], &[2]).unwrap();
    let subseq = d.tensor(&[0i32, 0], &[2]).unwrap();
    let traj = d.tensor(&[0i32, 0], &[2]).unwrap();
    let inputs = LossInputs {
        logprobs: &lp,
        old_logprobs: &lp,
        ref_logprobs: None,
        entropy: None,
        mask: &mask,
        subseq: &subseq,
        traj: &traj,
        advantages: &adv,
    };
    let c = ObjectiveConfig {
        kl_coef: 0.0,
        ..ObjectiveConfig::default()
    };
    match d.policy_loss(&inputs, &c) {
        Err(KernelError::Objective(flowrl_objectives::ObjectiveError::SubseqOnMaskedToken {
            index: 1,
            subseq: 0,
        })) => {}
        other => panic!("{other:?}"),
    }
}

fn linear_case(
    seed: u64,
    n_traj: usize,
    d: usize,
    v: usize,
) -> (common::Batch, Vec<f32>, Vec<f32>, Vec<i32>) {
    let mut r = rng(seed);
    let b = batch(&mut r, n_traj, 0.3);
    let n = b.lp.len();
    let h: Vec<f32> = (0..n * d)
        .map(|_| rand::Rng::random_range(&mut r, -1.0..1.0))
        .collect();
    let w: Vec<f32> = (0..v * d)
        .map(|_| rand::Rng::random_range(&mut r, -0.5..0.5))
        .collect();
    let y: Vec<i32> = (0..n)
        .map(|_| rand::Rng::random_range(&mut r, 0..v as i32))
        .collect();
    (b, h, w, y)
}

#[test]
fn fused_linear_matches_materialised_logits_and_finite_differences() {
    let d = Device::Cpu;
    let (dim, v) = (6usize, 23usize);
    let (b, h, w, y) = linear_case(7, 4, dim, v);
    let n = b.lp.len();
    let t = |x: &[f32]| d.tensor(x, &[x.len()]).unwrap();
    let (old, rf, adv) = (t(&b.old), t(&b.rf), t(&b.adv));
    let mask = d.tensor(&b.mask, &[n]).unwrap();
    let subseq = d.tensor(&b.subseq, &[n]).unwrap();
    let traj = d.tensor(&b.traj, &[n]).unwrap();
    let yt = d.tensor(&y, &[n]).unwrap();
    let ht = d.tensor(&h, &[n, dim]).unwrap();
    let wt = d.tensor(&w, &[v, dim]).unwrap();
    let mut cfg = Algorithm::Gsspo.default_config().objective;
    cfg.entropy_coef = 0.02;
    let inputs = LossInputs {
        logprobs: &old,
        old_logprobs: &old,
        ref_logprobs: Some(&rf),
        entropy: None,
        mask: &mask,
        subseq: &subseq,
        traj: &traj,
        advantages: &adv,
    };
    // Materialised reference.
    let mut logits = d.linear_logits(&ht, &wt).unwrap();
    let full = d
        .fused_policy_loss(&mut logits, &yt, &inputs, &cfg, true)
        .unwrap();
    let dl = f64s(&logits.to_vec::<f32>().unwrap());
    let mut dh_ref = vec![0.0; n * dim];
    let mut dw_ref = vec![0.0; v * dim];
    for i in 0..n {
        for j in 0..v {
            for k in 0..dim {
                dh_ref[i * dim + k] += dl[i * v + j] * f64::from(w[j * dim + k]);
                dw_ref[j * dim + k] += dl[i * v + j] * f64::from(h[i * dim + k]);
            }
        }
    }
    for chunk in [0usize, 1, 3, 1000] {
        let out = d
            .fused_linear_policy_loss(&ht, &wt, &yt, &inputs, &cfg, chunk)
            .unwrap();
        assert_eq!(out.loss, full.loss, "chunk {chunk}");
        assert_eq!(out.stats, full.stats, "chunk {chunk}");
        assert_close(
            &format!("dhidden chunk {chunk}"),
            &f64s(&out.dhidden.to_vec::<f32>().unwrap()),
            &dh_ref,
            1e-6,
            1e-5,
        );
        assert_close(
            &format!("dweight chunk {chunk}"),
            &f64s(&out.dweight.to_vec::<f32>().unwrap()),
            &dw_ref,
            1e-6,
            1e-5,
        );
    }
    // Directional finite differences of J in hidden and in weight.
    let out = d
        .fused_linear_policy_loss(&ht, &wt, &yt, &inputs, &cfg, 5)
        .unwrap();
    let dh = out.dhidden.to_vec::<f32>().unwrap();
    let dw = out.dweight.to_vec::<f32>().unwrap();
    let j = |hh: &[f32], ww: &[f32]| -> f64 {
        let ht = d.tensor(hh, &[n, dim]).unwrap();
        let wt = d.tensor(ww, &[v, dim]).unwrap();
        d.fused_linear_policy_loss(&ht, &wt, &yt, &inputs, &cfg, 5)
            .unwrap()
            .loss
    };
    let eps = 1e-3f32;
    let dir_h: Vec<f32> = (0..n * dim)
        .map(|i| ((i * 31 % 11) as f32 - 5.0) * 0.1)
        .collect();
    let dir_w: Vec<f32> = (0..v * dim)
        .map(|i| ((i * 17 % 7) as f32 - 3.0) * 0.1)
        .collect();
    let shift = |x: &[f32], dir: &[f32], s: f32| -> Vec<f32> {
        x.iter().zip(dir).map(|(a, b)| a + s * b).collect()
    };
    let fd_h =
        (j(&shift(&h, &dir_h, eps), &w) - j(&shift(&h, &dir_h, -eps), &w)) / (2.0 * f64::from(eps));
    let an_h: f64 = dh
        .iter()
        .zip(&dir_h)
        .map(|(a, b)| f64::from(*a) * f64::from(*b))
        .sum();
    assert!(
        (fd_h - an_h).abs() <= 1e-3 + 1e-2 * an_h.abs(),
        "hidden: fd {fd_h} vs {an_h}"
    );
    let fd_w =
        (j(&h, &shift(&w, &dir_w, eps)) - j(&h, &shift(&w, &dir_w, -eps))) / (2.0 * f64::from(eps));
    let an_w: f64 = dw
        .iter()
        .zip(&dir_w)
        .map(|(a, b)| f64::from(*a) * f64::from(*b))
        .sum();
    assert!(
        (fd_w - an_w).abs() <= 1e-3 + 1e-2 * an_w.abs(),
        "weight: fd {fd_w} vs {an_w}"
    );
    // A bad target is reported by its row in the batch, whatever the chunk.
    let bad_row = n - 2;
    let mut yb = y.clone();
    yb[bad_row] = v as i32;
    let ybt = d.tensor(&yb, &[n]).unwrap();
    for chunk in [0usize, 1, 3] {
        match d.fused_linear_policy_loss(&ht, &wt, &ybt, &inputs, &cfg, chunk) {
            Err(KernelError::TargetOutOfRange { row, target, vocab })
                if row == bad_row && target == v as i64 && vocab == v => {}
            other => panic!("chunk {chunk}: {:?}", other.map(|o| o.loss)),
        }
    }
}
