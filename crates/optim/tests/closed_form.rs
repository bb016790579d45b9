//! Optimizer steps checked against closed forms and an independent `f64`
//! re-derivation of the textbook formulas.

use flowrl_optim::{
    AdamW, AdamWConfig, GroupConfig, OptimError, Optimizer, ParamGroups, ParamMut, ScheduleConfig,
    Sgd, SgdConfig, clip_grad_norm, clip_grad_norm_named, grad_norm,
};

fn close(a: f64, b: f64, rtol: f64, atol: f64) -> bool {
    (a - b).abs() <= atol + rtol * b.abs()
}

/// Deterministic pseudo-random values in (-scale, scale), no zeros.
fn values(n: usize, seed: u64, scale: f32) -> Vec<f32> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let u = (x >> 40) as f32 / (1u64 << 24) as f32; // [0, 1)
            let v = (2.0 * u - 1.0) * scale;
            if v == 0.0 { scale * 0.5 } else { v }
        })
        .collect()
}

#[test]
fn first_adamw_step_is_lr_times_sign_minus_decay() {
    let lr = 1e-3f32;
    let wd = 0.1f32;
    let eps = 1e-8f32;
    let mut opt = AdamW::new(AdamWConfig {
        lr,
        betas: [0.9, 0.999],
        eps,
        weight_decay: wd,
    })
    .unwrap();
    let w0 = vec![0.5f32, -1.5, 2.0, 0.25, -0.75];
    let g = vec![3.0f32, -0.01, 1e-3, -40.0, 1e-9];
    let mut w = w0.clone();
    opt.step(&mut [ParamMut::new("w", &mut w, &g)], lr).unwrap();
    for i in 0..w.len() {
        let (w0, g) = (f64::from(w0[i]), f64::from(g[i]));
        // m̂ = g, v̂ = g², so the Adam term is lr·g/(|g| + eps) ≈ lr·sign(g).
        let expected = w0 * (1.0 - f64::from(lr) * f64::from(wd))
            - f64::from(lr) * g / (g.abs() + f64::from(eps));
        assert!(
            close(f64::from(w[i]), expected, 1e-6, 1e-9),
            "element {i}: {} vs {expected}",
            w[i]
        );
    }
    // Large gradients move by lr·sign(g) (minus decay) to f32 precision.
    let moved = f64::from(w[0]) - f64::from(w0[0]) * (1.0 - 1e-4);
    assert!(close(moved, -1e-3, 1e-5, 0.0), "{moved}");
    // A gradient far below eps barely moves the weight (1e-9/(1e-9+1e-8)).
    let moved = f64::from(w[4]) - f64::from(w0[4]) * (1.0 - 1e-4);
    assert!(close(moved, -1e-3 / 11.0, 1e-4, 1e-10), "{moved}");
}

/// The textbook AdamW in `f64`: m̂ = m/(1−β₁ᵗ), v̂ = v/(1−β₂ᵗ),
/// w ← w(1 − ηλ) − η m̂/(√v̂ + ε).
struct RefAdamW {
    w: Vec<f64>,
    m: Vec<f64>,
    v: Vec<f64>,
    t: i32,
}

impl RefAdamW {
    fn step(&mut self, g: &[f32], lr: f64, b1: f64, b2: f64, eps: f64, wd: f64) {
        self.t += 1;
        for i in 0..self.w.len() {
            let g = f64::from(g[i]);
            self.m[i] = b1 * self.m[i] + (1.0 - b1) * g;
            self.v[i] = b2 * self.v[i] + (1.0 - b2) * g * g;
            let mhat = self.m[i] / (1.0 - b1.powi(self.t));
            let vhat = self.v[i] / (1.0 - b2.powi(self.t));
            self.w[i] = self.w[i] * (1.0 - lr * wd) - lr * mhat / (vhat.sqrt() + eps);
        }
    }
}

#[test]
fn adamw_matches_f64_rederivation_over_many_steps_with_schedule() {
    let n = 1000;
    let cfg = AdamWConfig {
        lr: 3e-3,
        betas: [0.8, 0.95],
        eps: 1e-6,
        weight_decay: 0.05,
    };
    let schedule = ScheduleConfig::Cosine {
        warmup_steps: 3,
        total_steps: 25,
        final_factor: 0.1,
    };
    let mut opt = AdamW::new(cfg).unwrap();
    let mut w = values(n, 7, 1.0);
    let mut reference = RefAdamW {
        w: w.iter().map(|&x| f64::from(x)).collect(),
        m: vec![0.0; n],
        v: vec![0.0; n],
        t: 0,
    };
    for s in 0..25u64 {
        let g = values(n, 100 + s, 0.5);
        let lr = schedule.lr_at(cfg.lr, s);
        opt.step(&mut [ParamMut::new("w", &mut w, &g)], lr).unwrap();
        reference.step(&g, f64::from(lr), 0.8, 0.95, 1e-6, 0.05);
    }
    assert_eq!(opt.step_count(), 25);
    let max_err = w
        .iter()
        .zip(&reference.w)
        .map(|(&a, &b)| (f64::from(a) - b).abs())
        .fold(0.0, f64::max);
    assert!(max_err < 2e-6, "max abs error {max_err}");
    let (m, v) = opt.moments("w").unwrap();
    for i in 0..n {
        assert!(close(f64::from(m[i]), reference.m[i], 1e-4, 1e-7));
        assert!(close(f64::from(v[i]), reference.v[i], 1e-4, 1e-9));
    }
}

#[test]
fn adamw_large_tensor_matches_small_tensor_path() {
    // Long enough for the chunked (and, with `parallel`, multi-threaded) path.
    let n = 300_007;
    let g = values(n, 11, 1.0);
    let w0 = values(n, 12, 1.0);
    let mut big = w0.clone();
    let mut opt = AdamW::new(AdamWConfig::default()).unwrap();
    for _ in 0..3 {
        opt.step(&mut [ParamMut::new("big", &mut big, &g)], 1e-2)
            .unwrap();
    }
    // The same elements updated as many small parameters must agree bit for bit.
    let mut small = w0.clone();
    let mut opt2 = AdamW::new(AdamWConfig::default()).unwrap();
    let names: Vec<String> = (0..n.div_ceil(1000)).map(|i| format!("p{i}")).collect();
    for _ in 0..3 {
        let mut params: Vec<ParamMut<'_>> = small
            .chunks_mut(1000)
            .zip(g.chunks(1000))
            .zip(&names)
            .map(|((w, g), name)| ParamMut::new(name, w, g))
            .collect();
        opt2.step(&mut params, 1e-2).unwrap();
    }
    assert!(
        big.iter()
            .zip(&small)
            .all(|(a, b)| a.to_bits() == b.to_bits())
    );
}

#[test]
fn groups_change_lr_and_decay() {
    let mut groups = ParamGroups::new();
    groups
        .add(GroupConfig::no_decay_norms_and_biases())
        .unwrap();
    let mut slow = GroupConfig::new("slow");
    slow.lr_scale = 0.5;
    groups.add(slow).unwrap();
    groups.assign("head.weight", "slow").unwrap();
    let cfg = AdamWConfig {
        lr: 0.1,
        weight_decay: 0.5,
        ..AdamWConfig::default()
    };
    let mut opt = AdamW::with_groups(cfg, groups).unwrap();
    let g = [1.0f32];
    let (mut a, mut b, mut c) = ([2.0f32], [2.0f32], [2.0f32]);
    opt.step(
        &mut [
            ParamMut::new("layer.weight", &mut a, &g),
            ParamMut::new("final_norm.weight", &mut b, &g),
            ParamMut::new("head.weight", &mut c, &g),
        ],
        0.1,
    )
    .unwrap();
    let adam = 0.1 * 1.0 / (1.0 + 1e-8);
    assert!(close(f64::from(a[0]), 2.0 * (1.0 - 0.05) - adam, 1e-6, 0.0));
    assert!(close(f64::from(b[0]), 2.0 - adam, 1e-6, 0.0));
    assert!(close(
        f64::from(c[0]),
        2.0 * (1.0 - 0.025) - adam / 2.0,
        1e-6,
        0.0
    ));
}

#[test]
fn sgd_momentum_recurrence_and_nesterov() {
    for nesterov in [false, true] {
        let (lr, mu, tau, wd) = if nesterov {
            (0.1f64, 0.9f64, 0.0f64, 0.01f64)
        } else {
            (0.1, 0.9, 0.25, 0.01)
        };
        let mut opt = Sgd::new(SgdConfig {
            lr: lr as f32,
            momentum: mu as f32,
            dampening: tau as f32,
            nesterov,
            weight_decay: wd as f32,
        })
        .unwrap();
        let mut w = vec![1.0f32, -2.0, 0.5];
        let mut rw: Vec<f64> = w.iter().map(|&x| f64::from(x)).collect();
        let mut rb = [0.0f64; 3];
        for s in 0..6u64 {
            let g = values(3, 40 + s, 1.0);
            opt.step(&mut [ParamMut::new("w", &mut w, &g)], lr as f32)
                .unwrap();
            for i in 0..3 {
                let d = f64::from(g[i]) + wd * rw[i];
                rb[i] = if s == 0 {
                    d
                } else {
                    mu * rb[i] + (1.0 - tau) * d
                };
                let step = if nesterov { d + mu * rb[i] } else { rb[i] };
                rw[i] -= lr * step;
            }
        }
        for i in 0..3 {
            assert!(
                close(f64::from(w[i]), rw[i], 1e-5, 1e-6),
                "nesterov={nesterov} {i}"
            );
            let b = opt.momentum_buffer("w").unwrap()[i];
            assert!(close(f64::from(b), rb[i], 1e-5, 1e-6));
        }
    }
    // Plain SGD: w − lr·g exactly.
    let mut opt = Sgd::new(SgdConfig::default()).unwrap();
    let mut w = [1.0f32, 2.0];
    opt.step(&mut [ParamMut::new("w", &mut w, &[0.5, -1.0])], 0.5)
        .unwrap();
    assert_eq!(w, [0.75, 2.5]);
    assert!(opt.momentum_buffer("w").is_none());
}

#[test]
fn clipping_scales_exactly_to_max_norm() {
    let mut a = values(1000, 1, 3.0);
    let mut b = values(300_000, 2, 0.1);
    let before = grad_norm(&[&a, &b]);
    let plain: f64 = a
        .iter()
        .chain(&b)
        .map(|&x| f64::from(x) * f64::from(x))
        .sum::<f64>()
        .sqrt();
    assert!(close(before, plain, 1e-12, 0.0));
    let a0 = a.clone();
    let total = clip_grad_norm(&mut [&mut a, &mut b], 1.0).unwrap();
    assert_eq!(total, before);
    let after = grad_norm(&[&a, &b]);
    assert!(close(after, 1.0, 1e-6, 0.0), "{after}");
    let coef = 1.0 / before;
    assert!(close(f64::from(a[17]), f64::from(a0[17]) * coef, 1e-6, 0.0));

    // Below the threshold nothing changes.
    let a1 = a.clone();
    let total = clip_grad_norm(&mut [&mut a, &mut b], 2.0).unwrap();
    assert!(close(total, 1.0, 1e-6, 0.0));
    assert_eq!(a, a1);
}

#[test]
fn clipping_reports_non_finite_without_touching_grads() {
    let mut a = vec![1.0f32, 2.0];
    let mut b = vec![3.0f32, f32::INFINITY, 4.0];
    let err = clip_grad_norm_named(&mut [("a", &mut a), ("layer.b", &mut b)], 1.0).unwrap_err();
    assert_eq!(
        err,
        OptimError::NonFinite {
            param: "layer.b".into(),
            index: 1,
            value: f32::INFINITY
        }
    );
    assert_eq!(a, [1.0, 2.0]);
    let err = clip_grad_norm(&mut [&mut a, &mut b], 1.0).unwrap_err();
    assert!(matches!(err, OptimError::NonFinite { ref param, .. } if param == "grads[1]"));
    assert!(clip_grad_norm(&mut [&mut a], 0.0).is_err());
    assert!(clip_grad_norm(&mut [&mut a], f64::NAN).is_err());
}

#[test]
fn failed_step_changes_nothing() {
    let mut opt = AdamW::new(AdamWConfig::default()).unwrap();
    let mut w = vec![1.0f32; 4];
    let g = vec![1.0f32; 4];
    opt.step(&mut [ParamMut::new("w", &mut w, &g)], 0.1)
        .unwrap();
    let snapshot = opt.state();
    let w_before = w.clone();
    let mut x = vec![1.0f32; 2];
    let short = vec![1.0f32; 3];
    // A bad second parameter must not let the first one move.
    let err = opt
        .step(
            &mut [
                ParamMut::new("w", &mut w, &g),
                ParamMut::new("x", &mut x, &short),
            ],
            0.1,
        )
        .unwrap_err();
    assert!(matches!(err, OptimError::LengthMismatch { .. }));
    let mut w5 = vec![1.0f32; 5];
    let g5 = vec![1.0f32; 5];
    let err = opt
        .step(&mut [ParamMut::new("w", &mut w5, &g5)], 0.1)
        .unwrap_err();
    assert_eq!(
        err,
        OptimError::StateLengthMismatch {
            param: "w".into(),
            expected: 4,
            got: 5
        }
    );
    assert!(
        opt.step(&mut [ParamMut::new("w", &mut w, &g)], -1.0)
            .is_err()
    );
    assert!(
        opt.step(&mut [ParamMut::new("w", &mut w, &g)], f32::NAN)
            .is_err()
    );
    assert_eq!(w, w_before);
    assert_eq!(opt.state(), snapshot);
}
