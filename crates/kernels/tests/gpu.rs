//! CUDA kernels against the CPU path on fresh random inputs. Each test
//! prints a message and returns when there is no CUDA driver or device;
//! then `suite_passes_on_the_emulated_driver` runs the whole suite again in a
//! child process on the emulated driver of `crates/kernels/emu` (the kernels
//! compiled for the host CPU), so the backend is exercised without a GPU.
//! Outputs are poisoned (NaN) before every run: in-place outputs directly,
//! freshly allocated ones by filling and freeing a buffer of the output's
//! size first, so the stream-ordered allocator hands back NaN memory.

mod common;

use common::{assert_close, batch, f64s, logits, rng};
use flowrl_kernels::{AdamWStep, DType, Device, EntropyGrad, KernelError, LossInputs, Tensor};
use flowrl_objectives::{Aggregation, Algorithm, KlEstimator, ObjectiveConfig};
use flowrl_optim::AdamWConfig;
use half::{bf16, f16};

fn gpu() -> Option<Device> {
    match Device::cuda(0) {
        Ok(d) => Some(d),
        Err(e) => {
            eprintln!("skipping: no CUDA driver or device ({e})");
            None
        }
    }
}

/// Fills `bytes` of fresh device memory with NaN and frees it.
fn poison_pool(d: &Device, bytes: usize) {
    let n = bytes.div_ceil(4).max(1);
    let mut t = d.tensor(&vec![0.0f32; n], &[n]).unwrap();
    t.poison().unwrap();
    d.synchronize().unwrap();
}

fn logits_tensor(d: &Device, x: &[f32], n: usize, v: usize, dt: DType) -> (Tensor, Tensor) {
    let c = Device::Cpu;
    match dt {
        DType::F32 => (d.tensor(x, &[n, v]).unwrap(), c.tensor(x, &[n, v]).unwrap()),
        DType::F16 => {
            let h: Vec<f16> = x.iter().map(|&a| f16::from_f32(a)).collect();
            (
                d.tensor(&h, &[n, v]).unwrap(),
                c.tensor(&h, &[n, v]).unwrap(),
            )
        }
        _ => {
            let h: Vec<bf16> = x.iter().map(|&a| bf16::from_f32(a)).collect();
            (
                d.tensor(&h, &[n, v]).unwrap(),
                c.tensor(&h, &[n, v]).unwrap(),
            )
        }
    }
}

fn as_f64(t: &Tensor) -> Vec<f64> {
    match t.dtype() {
        DType::F32 => f64s(&t.to_vec::<f32>().unwrap()),
        DType::F16 => t
            .to_vec::<f16>()
            .unwrap()
            .iter()
            .map(|a| a.to_f64())
            .collect(),
        DType::BF16 => t
            .to_vec::<bf16>()
            .unwrap()
            .iter()
            .map(|a| a.to_f64())
            .collect(),
        other => panic!("{other}"),
    }
}

/// Tolerances of a gradient written in `dt`: its rounding, plus f32 math.
fn grad_tol(dt: DType) -> (f64, f64) {
    match dt {
        DType::F32 => (1e-6, 1e-4),
        DType::F16 => (2e-6, 2e-3),
        _ => (1e-5, 1.6e-2),
    }
}

const SHAPES: &[(usize, usize)] = &[
    (1, 1),
    (1, 7),
    (3, 1000),
    (5, 4099),
    (2, 4100),
    (17, 32_000),
    (3, 151_936),
];

#[test]
fn logprobs_and_entropy_match_cpu() {
    let Some(d) = gpu() else { return };
    let mut r = rng(11);
    for &(n, v) in SHAPES {
        let (x, y) = logits(&mut r, n, v);
        for dt in [DType::F32, DType::F16, DType::BF16] {
            let (xg, xc) = logits_tensor(&d, &x, n, v, dt);
            let yg = d.tensor(&y, &[n]).unwrap();
            let yc = Device::Cpu.tensor(&y, &[n]).unwrap();
            let want = Device::Cpu.token_logprobs(&xc, &yc, true).unwrap();
            for with_entropy in [true, false] {
                poison_pool(&d, 3 * 4 * n);
                let got = d.token_logprobs(&xg, &yg, with_entropy).unwrap();
                let what = format!("{dt} {n}x{v}");
                // f32 accumulation over V terms with fast exp.
                let tol = 2e-6 * (v as f64).sqrt().max(1.0);
                assert_close(
                    &format!("lp {what}"),
                    &as_f64(&got.logprobs),
                    &as_f64(&want.logprobs),
                    tol,
                    1e-5,
                );
                assert_close(
                    &format!("lse {what}"),
                    &as_f64(&got.lse),
                    &as_f64(&want.lse),
                    tol,
                    1e-5,
                );
                match (&got.entropy, with_entropy) {
                    (Some(h), true) => assert_close(
                        &format!("H {what}"),
                        &as_f64(h),
                        &as_f64(want.entropy.as_ref().unwrap()),
                        tol * 10.0,
                        1e-4,
                    ),
                    (None, false) => {}
                    _ => panic!("entropy presence"),
                }
            }
        }
    }
}

#[test]
fn target_out_of_range_is_reported() {
    let Some(d) = gpu() else { return };
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
}

/// The backward, out of place and in place, reports the first bad target as
/// the CPU path does (rows past the first block of the check included), and
/// the in-place variant leaves the logits untouched when it does.
#[test]
fn backward_target_out_of_range_is_reported_before_writing() {
    let Some(d) = gpu() else { return };
    let c = Device::Cpu;
    let (n, v) = (300usize, 5usize);
    let x: Vec<f32> = (0..n * v).map(|i| (i % 7) as f32 * 0.25).collect();
    let zeros = vec![0.0f32; n];
    for (bad, want_row, want_target) in [
        (vec![(290usize, 5i32), (280, -1)], 280usize, -1i64),
        (vec![(3, 9), (299, 5)], 3, 9),
    ] {
        let mut y: Vec<i32> = (0..n).map(|i| (i % v) as i32).collect();
        for &(r, t) in &bad {
            y[r] = t;
        }
        for dev in [&c, &d] {
            let mut xt = dev.tensor(&x, &[n, v]).unwrap();
            let yt = dev.tensor(&y, &[n]).unwrap();
            let lse = dev.tensor(&zeros, &[n]).unwrap();
            let g = dev.tensor(&vec![1.0f32; n], &[n]).unwrap();
            let check = |r: flowrl_kernels::Result<()>, what: &str| match r {
                Err(KernelError::TargetOutOfRange { row, target, vocab })
                    if row == want_row && target == want_target && vocab == v => {}
                other => panic!("{dev} {what}: {other:?}"),
            };
            check(
                dev.logits_backward(&xt, &yt, &lse, &g, None).map(|_| ()),
                "out of place",
            );
            check(
                dev.logits_backward_in_place(&mut xt, &yt, &lse, &g, None),
                "in place",
            );
            assert_eq!(xt.to_vec::<f32>().unwrap(), x, "{dev}: logits were written");
        }
    }
}

#[test]
fn logits_backward_matches_cpu_out_of_place_and_in_place() {
    let Some(d) = gpu() else { return };
    let c = Device::Cpu;
    let mut r = rng(12);
    for &(n, v) in SHAPES {
        let (x, y) = logits(&mut r, n, v);
        // Some rows with g = 0 (masked tokens), one with an entropy term.
        let g: Vec<f32> = (0..n)
            .map(|i| {
                if i % 3 == 2 {
                    0.0
                } else {
                    0.5 - i as f32 * 0.1
                }
            })
            .collect();
        let hg: Vec<f32> = (0..n)
            .map(|i| if i % 2 == 0 { -0.02 } else { 0.0 })
            .collect();
        for dt in [DType::F32, DType::F16, DType::BF16] {
            let (xg, xc) = logits_tensor(&d, &x, n, v, dt);
            let yg = d.tensor(&y, &[n]).unwrap();
            let yc = c.tensor(&y, &[n]).unwrap();
            let fc = c.token_logprobs(&xc, &yc, true).unwrap();
            let fg = d.token_logprobs(&xg, &yg, true).unwrap();
            let (gc, gg) = (c.tensor(&g, &[n]).unwrap(), d.tensor(&g, &[n]).unwrap());
            let (hc, hgt) = (c.tensor(&hg, &[n]).unwrap(), d.tensor(&hg, &[n]).unwrap());
            let ec = fc.entropy.as_ref().unwrap();
            let eg = fg.entropy.as_ref().unwrap();
            let want = c
                .logits_backward(
                    &xc,
                    &yc,
                    &fc.lse,
                    &gc,
                    Some(EntropyGrad {
                        entropy: ec,
                        grad: &hc,
                    }),
                )
                .unwrap();
            let want = as_f64(&want);
            let (atol, rtol) = grad_tol(dt);
            poison_pool(&d, n * v * dt.size());
            let got = d
                .logits_backward(
                    &xg,
                    &yg,
                    &fg.lse,
                    &gg,
                    Some(EntropyGrad {
                        entropy: eg,
                        grad: &hgt,
                    }),
                )
                .unwrap();
            assert_close(
                &format!("dlogits {dt} {n}x{v}"),
                &as_f64(&got),
                &want,
                atol,
                rtol,
            );
            let mut xi = xg.clone();
            d.logits_backward_in_place(
                &mut xi,
                &yg,
                &fg.lse,
                &gg,
                Some(EntropyGrad {
                    entropy: eg,
                    grad: &hgt,
                }),
            )
            .unwrap();
            assert_eq!(as_f64(&xi), as_f64(&got), "in place {dt} {n}x{v}");
        }
    }
}

struct Inputs {
    t: Vec<Tensor>,
}

fn upload(d: &Device, b: &common::Batch) -> Inputs {
    let n = b.lp.len();
    let f = |v: &[f32]| d.tensor(v, &[v.len()]).unwrap();
    Inputs {
        t: vec![
            f(&b.lp),
            f(&b.old),
            f(&b.rf),
            f(&b.ent),
            d.tensor(&b.mask, &[n]).unwrap(),
            d.tensor(&b.subseq, &[n]).unwrap(),
            d.tensor(&b.traj, &[n]).unwrap(),
            f(&b.adv),
        ],
    }
}

fn inputs(i: &Inputs, with_ref: bool, with_ent: bool) -> LossInputs<'_> {
    LossInputs {
        logprobs: &i.t[0],
        old_logprobs: &i.t[1],
        ref_logprobs: with_ref.then_some(&i.t[2]),
        entropy: with_ent.then_some(&i.t[3]),
        mask: &i.t[4],
        subseq: &i.t[5],
        traj: &i.t[6],
        advantages: &i.t[7],
    }
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-12 + 1e-9 * b.abs() || (a.is_nan() && b.is_nan())
}

#[test]
fn policy_loss_matches_flowrl_objectives_for_every_algorithm_and_aggregation() {
    let Some(d) = gpu() else { return };
    let c = Device::Cpu;
    let mut r = rng(13);
    let mut cases = 0;
    for (nb, spread) in [(1usize, 0.3f32), (2, 0.01), (7, 0.5), (40, 0.3), (400, 0.2)] {
        let b = batch(&mut r, nb, spread);
        let (ig, ic) = (upload(&d, &b), upload(&c, &b));
        for alg in Algorithm::ALL {
            for agg in Aggregation::ALL {
                for (kl, est, dual, ent, horizon) in [
                    (0.0, KlEstimator::K3, None, 0.0, None),
                    (0.01, KlEstimator::K3, Some(3.0), 0.0, None),
                    (0.1, KlEstimator::K1, None, 0.01, Some(17)),
                    (0.1, KlEstimator::K2, Some(2.0), 0.0, None),
                ] {
                    let mut cfg: ObjectiveConfig = alg.default_config().objective;
                    cfg.aggregation = *agg;
                    cfg.kl_coef = kl;
                    cfg.kl_estimator = est;
                    cfg.dual_clip = dual;
                    cfg.entropy_coef = ent;
                    cfg.loss_agg_horizon = horizon;
                    let with_ref = kl > 0.0;
                    let with_ent = ent != 0.0;
                    let want = c
                        .policy_loss(&inputs(&ic, with_ref, with_ent), &cfg)
                        .unwrap();
                    poison_pool(&d, 4 * b.lp.len());
                    let got = d
                        .policy_loss(&inputs(&ig, with_ref, with_ent), &cfg)
                        .unwrap();
                    let what = format!("{alg} {agg} kl {kl} {est} dual {dual:?} nb {nb}");
                    assert!(
                        close(got.loss, want.loss),
                        "{what}: loss {} vs {}",
                        got.loss,
                        want.loss
                    );
                    assert_close(
                        &format!("grad {what}"),
                        &as_f64(&got.grad),
                        &as_f64(&want.grad),
                        1e-9,
                        1e-6,
                    );
                    let (s, w) = (&got.stats, &want.stats);
                    for (name, a, bb) in [
                        ("pg_loss", s.pg_loss, w.pg_loss),
                        ("kl_loss", s.kl_loss, w.kl_loss),
                        ("entropy_loss", s.entropy_loss, w.entropy_loss),
                        ("approx_kl", s.approx_kl, w.approx_kl),
                        ("ratio_mean", s.ratio_mean, w.ratio_mean),
                        ("ratio_min", s.ratio_min, w.ratio_min),
                        ("ratio_max", s.ratio_max, w.ratio_max),
                        ("clip_frac_token", s.clip_frac_token, w.clip_frac_token),
                        ("clip_frac_subseq", s.clip_frac_subseq, w.clip_frac_subseq),
                        (
                            "dual_clip_frac_token",
                            s.dual_clip_frac_token,
                            w.dual_clip_frac_token,
                        ),
                    ] {
                        assert!(close(a, bb), "{what}: {name} {a} vs {bb}");
                    }
                    assert_eq!(s.kl.is_some(), w.kl.is_some(), "{what}");
                    assert_eq!(
                        (
                            s.num_tokens,
                            s.num_policy_tokens,
                            s.num_subseqs,
                            s.num_trajectories
                        ),
                        (
                            w.num_tokens,
                            w.num_policy_tokens,
                            w.num_subseqs,
                            w.num_trajectories
                        ),
                        "{what}"
                    );
                    assert_eq!(
                        (s.num_clipped_tokens, s.num_clipped_subseqs, s.ratio_unit),
                        (w.num_clipped_tokens, w.num_clipped_subseqs, w.ratio_unit),
                        "{what}"
                    );
                    cases += 1;
                }
            }
        }
    }
    eprintln!("{cases} configurations compared");
}

#[test]
fn policy_loss_errors_match_the_reference() {
    let Some(d) = gpu() else { return };
    let c = Device::Cpu;
    let mut r = rng(14);
    let base = batch(&mut r, 5, 0.2);
    let first_policy = base.mask.iter().position(|&m| m == 1).unwrap();
    let first_env = base.mask.iter().position(|&m| m == 0).unwrap();
    let mut cases: Vec<common::Batch> = Vec::new();
    let mut b = base.clone();
    b.subseq[first_env] = 0;
    cases.push(b);
    let mut b = base.clone();
    b.subseq[first_policy] = -1;
    cases.push(b);
    let mut b = base.clone();
    b.lp[first_policy] = f32::NAN;
    cases.push(b);
    let mut b = base.clone();
    b.traj[first_policy] = 99;
    cases.push(b);
    let mut b = base.clone();
    b.adv[1] = f32::INFINITY;
    cases.push(b);
    let mut b = base.clone();
    b.mask.iter_mut().for_each(|m| *m = 0);
    b.subseq.iter_mut().for_each(|s| *s = -1);
    cases.push(b);
    let cfg = ObjectiveConfig::default();
    for (k, b) in cases.iter().enumerate() {
        let (ig, ic) = (upload(&d, b), upload(&c, b));
        let want = c.policy_loss(&inputs(&ic, true, false), &cfg).unwrap_err();
        let got = d.policy_loss(&inputs(&ig, true, false), &cfg).unwrap_err();
        assert_eq!(format!("{got}"), format!("{want}"), "case {k}");
    }
}

#[test]
fn fused_policy_loss_matches_cpu() {
    let Some(d) = gpu() else { return };
    let c = Device::Cpu;
    let mut r = rng(15);
    let b = batch(&mut r, 6, 0.3);
    let n = b.lp.len();
    for &v in &[1000usize, 32_000] {
        let (x, y) = logits(&mut r, n, v);
        for dt in [DType::F32, DType::F16, DType::BF16] {
            let (mut xg, mut xc) = logits_tensor(&d, &x, n, v, dt);
            let (ig, ic) = (upload(&d, &b), upload(&c, &b));
            let yg = d.tensor(&y, &[n]).unwrap();
            let yc = c.tensor(&y, &[n]).unwrap();
            let mut cfg = Algorithm::Gsspo.default_config().objective;
            cfg.entropy_coef = 0.01;
            let want = c
                .fused_policy_loss(&mut xc, &yc, &inputs(&ic, true, false), &cfg, true)
                .unwrap();
            let got = d
                .fused_policy_loss(&mut xg, &yg, &inputs(&ig, true, false), &cfg, true)
                .unwrap();
            assert!(
                (got.loss - want.loss).abs() <= 1e-5 + 1e-4 * want.loss.abs(),
                "{dt} {v}: {} vs {}",
                got.loss,
                want.loss
            );
            let (atol, rtol) = grad_tol(dt);
            assert_close(
                &format!("fused dlogits {dt} {v}"),
                &as_f64(&xg),
                &as_f64(&xc),
                atol * 10.0,
                rtol * 2.0,
            );
        }
    }
}

#[test]
fn adamw_is_bit_identical_to_cpu() {
    let Some(d) = gpu() else { return };
    let c = Device::Cpu;
    let mut r = rng(16);
    for &n in &[1usize, 1023, 1 << 20] {
        let cfg = AdamWConfig {
            lr: 1e-3,
            weight_decay: 0.01,
            ..AdamWConfig::default()
        };
        let w0: Vec<f32> = (0..n)
            .map(|_| rand::Rng::random_range(&mut r, -1.0..1.0))
            .collect();
        let z = vec![0.0f32; n];
        let (mut pg, mut mg, mut vg) = (
            d.tensor(&w0, &[n]).unwrap(),
            d.tensor(&z, &[n]).unwrap(),
            d.tensor(&z, &[n]).unwrap(),
        );
        let (mut pc, mut mc, mut vc) = (
            c.tensor(&w0, &[n]).unwrap(),
            c.tensor(&z, &[n]).unwrap(),
            c.tensor(&z, &[n]).unwrap(),
        );
        for step in 1..=3u64 {
            let g: Vec<f32> = (0..n)
                .map(|_| rand::Rng::random_range(&mut r, -1.0..1.0))
                .collect();
            let s = AdamWStep::from_config(&cfg, 1e-3, step);
            d.adamw_step(&mut pg, &d.tensor(&g, &[n]).unwrap(), &mut mg, &mut vg, &s)
                .unwrap();
            c.adamw_step(&mut pc, &c.tensor(&g, &[n]).unwrap(), &mut mc, &mut vc, &s)
                .unwrap();
            assert_eq!(
                pg.to_vec::<f32>().unwrap(),
                pc.to_vec::<f32>().unwrap(),
                "n {n} step {step}"
            );
            assert_eq!(mg.to_vec::<f32>().unwrap(), mc.to_vec::<f32>().unwrap());
            assert_eq!(vg.to_vec::<f32>().unwrap(), vc.to_vec::<f32>().unwrap());
        }
    }
}

#[test]
fn fused_linear_matches_cpu() {
    let Some(d) = gpu() else { return };
    let c = Device::Cpu;
    let mut r = rng(17);
    let base = batch(&mut r, 8, 0.3);
    let n = base.lp.len();
    for &(dim, v) in &[(24usize, 1001usize), (64, 4096)] {
        let h: Vec<f32> = (0..n * dim)
            .map(|_| rand::Rng::random_range(&mut r, -1.0..1.0))
            .collect();
        let w: Vec<f32> = (0..v * dim)
            .map(|_| rand::Rng::random_range(&mut r, -0.3..0.3))
            .collect();
        let y: Vec<i32> = (0..n)
            .map(|_| rand::Rng::random_range(&mut r, 0..v as i32))
            .collect();
        for dt in [DType::F32, DType::BF16] {
            let (hg, hc) = logits_tensor(&d, &h, n, dim, dt);
            let (wg, wc) = logits_tensor(&d, &w, v, dim, dt);
            let yg = d.tensor(&y, &[n]).unwrap();
            let yc = c.tensor(&y, &[n]).unwrap();
            // The two sides round the GEMM's logits differently (f32 vs f64
            // accumulation, then the dtype), so keep every decision of the
            // loss away from its threshold: old/ref log-probs near the
            // policy's own, and a clip range that never acts.
            let lp0 = c
                .token_logprobs(&c.linear_logits(&hc, &wc).unwrap(), &yc, false)
                .unwrap();
            let lp0 = lp0.logprobs.to_vec::<f32>().unwrap();
            let mut b = base.clone();
            for (t, &l) in lp0.iter().enumerate() {
                if b.mask[t] == 1 {
                    b.old[t] = l + rand::Rng::random_range(&mut r, -0.05..0.05);
                    b.rf[t] = l + rand::Rng::random_range(&mut r, -0.05..0.05);
                }
            }
            let (ig, ic) = (upload(&d, &b), upload(&c, &b));
            let mut cfg = Algorithm::Gsspo.default_config().objective;
            cfg.entropy_coef = 0.01;
            cfg.clip_low = 0.99;
            cfg.clip_high = 100.0;
            let want = c
                .fused_linear_policy_loss(&hc, &wc, &yc, &inputs(&ic, true, false), &cfg, 7)
                .unwrap();
            for chunk in [0usize, 16] {
                poison_pool(&d, 4 * v * dim);
                let got = d
                    .fused_linear_policy_loss(&hg, &wg, &yg, &inputs(&ig, true, false), &cfg, chunk)
                    .unwrap();
                let what = format!("{dt} d {dim} V {v} chunk {chunk}");
                // bf16 logits may differ by one bf16 ulp between the sides.
                let (atol, rtol) = if dt == DType::F32 {
                    (1e-5, 1e-3)
                } else {
                    (2e-3, 5e-2)
                };
                assert!(
                    (got.loss - want.loss).abs() <= atol + rtol * want.loss.abs(),
                    "{what}: loss {} vs {}",
                    got.loss,
                    want.loss
                );
                assert_close(
                    &format!("lp {what}"),
                    &as_f64(&got.logprobs),
                    &as_f64(&want.logprobs),
                    atol * 100.0,
                    rtol,
                );
                assert_close(
                    &format!("dhidden {what}"),
                    &as_f64(&got.dhidden),
                    &as_f64(&want.dhidden),
                    atol,
                    rtol * 4.0,
                );
                assert_close(
                    &format!("dweight {what}"),
                    &as_f64(&got.dweight),
                    &as_f64(&want.dweight),
                    atol,
                    rtol * 4.0,
                );
            }
        }
    }
}

/// Set in the child process that runs this suite on the emulated driver.
const EMU_CHILD: &str = "FLOWRL_CUDA_EMU_CHILD";

/// Without a GPU: builds the emulated driver (`scripts/cuda-emu.sh --build`)
/// and runs every other test of this file in a child process with it first
/// on `LD_LIBRARY_PATH`; fails if any fails there or skips for want of a
/// device. Skips when a real device ran the suite, or without a C++ compiler.
#[test]
fn suite_passes_on_the_emulated_driver() {
    use std::path::Path;
    use std::process::Command;
    if std::env::var_os(EMU_CHILD).is_some() {
        return;
    }
    if Device::cuda(0).is_ok() {
        eprintln!("skipping: a CUDA device is present and ran the suite itself");
        return;
    }
    if !cfg!(target_os = "linux") {
        eprintln!("skipping: the emulated driver is built for Linux only");
        return;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let script = root.join("scripts/cuda-emu.sh");
    if !script.is_file() {
        // A copied test executable, away from its source tree.
        eprintln!("skipping: {} not found", script.display());
        return;
    }
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("cuda-emu");
    let built = match Command::new("bash")
        .arg(&script)
        .arg("--build")
        .arg(&dir)
        .status()
    {
        Ok(s) => s,
        Err(e) => {
            eprintln!("skipping: cannot run bash to build the emulated driver ({e})");
            return;
        }
    };
    if built.code() == Some(3) {
        eprintln!("skipping: no C++ compiler to build the emulated driver");
        return;
    }
    assert!(built.success(), "building the emulated driver: {built}");
    let lib = dir.join("lib");
    let path = match std::env::var("LD_LIBRARY_PATH") {
        Ok(p) if !p.is_empty() => format!("{}:{p}", lib.display()),
        _ => lib.display().to_string(),
    };
    let exe = std::env::current_exe().expect("path of this test executable");
    let listed = Command::new(&exe)
        .arg("--list")
        .output()
        .expect("list the tests of this executable");
    let want = String::from_utf8_lossy(&listed.stdout)
        .lines()
        .filter(|l| l.ends_with(": test"))
        .count()
        - 1;
    // The child run, with AddressSanitizer's runtime preloaded when given:
    // then every out-of-range read or write of a kernel aborts it with a report.
    let run = |asan: Option<&str>| {
        let mut child = Command::new(&exe);
        child
            .args(["--nocapture", "--test-threads", "2"])
            .args(["--skip", "suite_passes_on_the_emulated_driver"])
            .env("LD_LIBRARY_PATH", &path)
            .env(EMU_CHILD, "1")
            .env("FLOWRL_KERNEL_CACHE", "off")
            .env("FLOWRL_CUDA_EMU_CACHE", dir.join("modules"));
        if let Some(rt) = asan {
            child
                .env("LD_PRELOAD", rt)
                .env("ASAN_OPTIONS", "detect_leaks=0")
                .env("FLOWRL_CUDA_EMU_SANITIZE", "address");
        }
        child.output().expect("run this suite in a child process")
    };
    let asan = std::fs::read_to_string(dir.join("asan-runtime"))
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty());
    match &asan {
        Some(rt) => eprintln!("kernel memory accesses checked with AddressSanitizer ({rt})"),
        None => eprintln!("no AddressSanitizer runtime: kernel memory accesses are not checked"),
    }
    let mut out = run(asan.as_deref());
    // A sanitizer runtime that cannot start on this host (before any test
    // ran) is not a finding: run once more without it.
    if asan.is_some()
        && !out.status.success()
        && !String::from_utf8_lossy(&out.stdout).contains("running ")
    {
        eprintln!(
            "AddressSanitizer did not start here ({}); running without it",
            String::from_utf8_lossy(&out.stderr)
                .lines()
                .next()
                .unwrap_or("")
        );
        out = run(None);
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("--- emulated run ---\n{stdout}{stderr}");
    assert!(
        out.status.success(),
        "the suite fails on the emulated driver"
    );
    assert!(
        !stderr.contains("skipping: no CUDA"),
        "the emulated driver was not found by the child"
    );
    let passed = stdout
        .lines()
        .find_map(|l| l.strip_prefix("test result: ok. "))
        .and_then(|l| l.split(' ').next())
        .and_then(|n| n.parse::<usize>().ok());
    assert_eq!(passed, Some(want), "tests passed on the emulated driver");
}

/// On the emulated driver only (the child of the test above): a correct
/// block reduction gives the right sums, and misuse that a GPU leaves
/// undefined (a barrier reached by only part of a warp, a full-mask shuffle
/// after a lane has exited or in a partial warp) fails the launch instead of
/// passing silently; the driver stays usable afterwards.
#[cfg(feature = "cuda")]
#[test]
fn emulated_driver_reports_barrier_misuse() {
    use cudarc::driver::{LaunchConfig, PushKernelArg};
    if std::env::var_os(EMU_CHILD).is_none() {
        return;
    }
    let d = Device::cuda(0).expect("the emulated device");
    let Device::Cuda(cd) = &d else {
        panic!("not a CUDA device")
    };
    let src = r#"
extern "C" __global__ void block_sum(const float* x, float* out) {
    __shared__ float part[32];
    float v = x[blockIdx.x * blockDim.x + threadIdx.x];
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    if ((threadIdx.x & 31) == 0) part[threadIdx.x >> 5] = v;
    __syncthreads();
    if (threadIdx.x == 0) {
        float s = 0.0f;
        for (unsigned w = 0; w < blockDim.x / 32; w++) s += part[w];
        out[blockIdx.x] = s;
    }
}
extern "C" __global__ void split_warp(float* out) {
    float v = (float)threadIdx.x;
    if (threadIdx.x & 1) v = __shfl_xor_sync(0xffffffffu, v, 1);
    else __syncthreads();
    out[threadIdx.x] = v;
}
extern "C" __global__ void shuffle_after_exit(float* out) {
    if (threadIdx.x == 5) return;
    out[threadIdx.x] = __shfl_xor_sync(0xffffffffu, (float)threadIdx.x, 1);
}
extern "C" __global__ void shuffle_in_partial_warp(float* out) {
    out[threadIdx.x] = __shfl_xor_sync(0xffffffffu, (float)threadIdx.x, 1);
}
"#;
    let ptx = cudarc::nvrtc::compile_ptx(src).expect("emulated NVRTC");
    let module = cd.context().load_module(ptx).expect("host compile");
    let stream = cd.stream();
    let cfg = |block: u32| LaunchConfig {
        grid_dim: (4, 1, 1),
        block_dim: (block, 1, 1),
        shared_mem_bytes: 0,
    };
    let x: Vec<f32> = (0..512).map(|i| i as f32).collect();
    let xd = stream.clone_htod(&x).unwrap();
    let mut out = stream.alloc_zeros::<f32>(512).unwrap();
    let sums = |out: &mut cudarc::driver::CudaSlice<f32>| {
        let f = module.load_function("block_sum").unwrap();
        // SAFETY: 4 blocks × 128 threads read x[0..512] and write out[0..4].
        unsafe {
            stream
                .launch_builder(&f)
                .arg(&xd)
                .arg(&mut *out)
                .launch(cfg(128))
        }
        .unwrap();
        stream.clone_dtoh(&*out).unwrap()[..4].to_vec()
    };
    let want: Vec<f32> = (0..4)
        .map(|b| (128 * b..128 * b + 128).map(|i| i as f32).sum())
        .collect();
    assert_eq!(sums(&mut out), want);
    for (name, block) in [
        ("split_warp", 64),
        ("shuffle_after_exit", 64),
        ("shuffle_in_partial_warp", 48),
    ] {
        let f = module.load_function(name).unwrap();
        // SAFETY: each block writes out[0..block], within the 512 elements.
        let r = unsafe { stream.launch_builder(&f).arg(&mut out).launch(cfg(block)) };
        let e = r.expect_err(name);
        assert!(format!("{e:?}").contains("LAUNCH_FAILED"), "{name}: {e:?}");
    }
    assert_eq!(sums(&mut out), want, "usable after the failed launches");
}

/// On the emulated driver only: `__expf` and `__logf` round as the PTX that
/// NVRTC emits computes them (`ex2.approx(x · log2 e)` with the product
/// rounded to f32; `lg2.approx(x) · ln 2`), not as the C library's `expf`
/// and `logf`, so the GPU tests' tolerances meet the GPU's main error.
#[cfg(feature = "cuda")]
#[test]
fn emulated_fast_intrinsics_round_like_the_ptx() {
    use cudarc::driver::{LaunchConfig, PushKernelArg};
    if std::env::var_os(EMU_CHILD).is_none() {
        return;
    }
    let d = Device::cuda(0).expect("the emulated device");
    let Device::Cuda(cd) = &d else {
        panic!("not a CUDA device")
    };
    let src = r#"
extern "C" __global__ void fast(const float* x, float* e, float* l, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) {
        e[i] = __expf(x[i]);
        l[i] = __logf(fabsf(x[i]) + 0.5f);
    }
}
"#;
    let ptx = cudarc::nvrtc::compile_ptx(src).expect("emulated NVRTC");
    let module = cd.context().load_module(ptx).expect("host compile");
    let stream = cd.stream();
    let n = 1024usize;
    // Arguments over [−80, 80], where the product's rounding shows.
    let x: Vec<f32> = (0..n)
        .map(|i| -80.0 + 160.0 * i as f32 / n as f32 + 0.013)
        .collect();
    let xd = stream.clone_htod(&x).unwrap();
    let mut e = stream.alloc_zeros::<f32>(n).unwrap();
    let mut l = stream.alloc_zeros::<f32>(n).unwrap();
    let f = module.load_function("fast").unwrap();
    let cfg = LaunchConfig {
        grid_dim: (4, 1, 1),
        block_dim: (256, 1, 1),
        shared_mem_bytes: 0,
    };
    // SAFETY: 4 × 256 threads read x[0..n] and write e[0..n], l[0..n].
    unsafe {
        stream
            .launch_builder(&f)
            .arg(&xd)
            .arg(&mut e)
            .arg(&mut l)
            .arg(&(n as i32))
            .launch(cfg)
    }
    .unwrap();
    let (e, l) = (
        stream.clone_dtoh(&e).unwrap(),
        stream.clone_dtoh(&l).unwrap(),
    );
    // The PTX constants: log2 e and ln 2 rounded to f32.
    let (log2e, ln2) = (f32::from_bits(0x3FB8_AA3B), f32::from_bits(0x3F31_7218));
    let mut differs_from_libm = 0;
    for i in 0..n {
        assert_eq!(
            e[i].to_bits(),
            (x[i] * log2e).exp2().to_bits(),
            "__expf({})",
            x[i]
        );
        let y = x[i].abs() + 0.5;
        assert_eq!(l[i].to_bits(), (y.log2() * ln2).to_bits(), "__logf({y})");
        differs_from_libm += usize::from(e[i] != x[i].exp());
    }
    // Plain expf would be within half an ulp; the modelled product rounding
    // is not, on most arguments this large.
    assert!(
        differs_from_libm > n / 4,
        "{differs_from_libm} of {n} differ from expf"
    );
}
