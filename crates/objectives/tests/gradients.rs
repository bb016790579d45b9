//! Finite-difference checks (f64) of ∂J/∂lp for every loss × aggregation ×
//! KL estimator, in the unclipped and the clipped regions, at points kept
//! away from every kink (clip bounds, dual-clip cap, clamps).

mod common;

use common::{ALGORITHMS, Layout, Point, Rng, assert_close, config};
use flowrl_objectives::{Aggregation, Algorithm, KlEstimator, ObjectiveConfig, compute};

fn layout() -> Layout {
    Layout::new(&[vec![3, 2], vec![4], vec![1, 2, 3], vec![2, 5]], 2)
}

#[derive(Clone, Copy, PartialEq, Debug)]
enum Region {
    Unclipped,
    Clipped,
}

/// Draws a point; in the clipped region every sub-sequence gets a common
/// shift of ±0.5 or ~0 so that token, sub-sequence and trajectory ratios are
/// each clearly inside or outside the clip band.
fn point(l: &Layout, region: Region, seed: u64) -> Point {
    let mut rng = Rng(seed);
    let n = l.len();
    let mut p = Point {
        lp: vec![0.0; n],
        old: vec![0.0; n],
        reference: vec![0.0; n],
        entropy: vec![0.0; n],
        adv: vec![0.9, -0.7, 1.3, -1.1],
    };
    let shifts = [-0.5, 0.5, 0.02];
    let subs = l.subseq_tokens();
    for toks in &subs {
        let shift = match region {
            Region::Unclipped => 0.0,
            Region::Clipped => shifts[(rng.uniform() * 3.0) as usize % 3],
        };
        for &t in toks {
            p.old[t] = rng.range(-3.0, -0.1);
            let noise = match region {
                Region::Unclipped => rng.range(-0.08, 0.08),
                Region::Clipped => rng.range(-0.04, 0.04),
            };
            p.lp[t] = p.old[t] + shift + noise;
            p.reference[t] = p.old[t] + rng.range(-0.3, 0.3);
            p.entropy[t] = rng.range(0.1, 2.0);
        }
    }
    // Masked-out positions hold values that must never be read.
    for t in 0..n {
        if l.mask[t] == 0 {
            p.lp[t] = 123.0;
            p.old[t] = f64::NAN;
            p.reference[t] = f64::INFINITY;
            p.entropy[t] = f64::NAN;
        }
    }
    p
}

/// Smallest distance, in log space, from any unit's log-ratio to a kink.
fn kink_margin(l: &Layout, p: &Point, cfg: &ObjectiveConfig) -> f64 {
    let mut kinks = vec![(1.0 - cfg.clip_low).ln(), (1.0 + cfg.clip_high).ln()];
    if let Some(c) = cfg.dual_clip {
        kinks.push(c.ln());
    }
    let mut logs = vec![];
    for t in 0..l.len() {
        if l.mask[t] != 0 {
            logs.push(p.lp[t] - p.old[t]);
        }
    }
    for group in l.subseq_tokens().iter().chain(l.traj_tokens().iter()) {
        let m: f64 = group.iter().map(|&t| p.lp[t] - p.old[t]).sum::<f64>() / group.len() as f64;
        logs.push(m);
    }
    logs.iter()
        .flat_map(|x| kinks.iter().map(move |k| (x - k).abs()))
        .fold(f64::INFINITY, f64::min)
}

fn check_fd(l: &Layout, p: &Point, cfg: &ObjectiveConfig, what: &str) -> (usize, usize) {
    let out = compute(&p.batch(l), cfg).unwrap();
    let h = 1e-6;
    let mut nonzero = 0;
    for t in 0..l.len() {
        if l.mask[t] == 0 {
            assert_eq!(out.grad[t], 0.0, "{what}: masked token {t}");
            continue;
        }
        let mut q = p.clone();
        q.lp[t] = p.lp[t] + h;
        let up = compute(&q.batch(l), cfg).unwrap().loss;
        q.lp[t] = p.lp[t] - h;
        let down = compute(&q.batch(l), cfg).unwrap().loss;
        let fd = (up - down) / (2.0 * h);
        assert_close(out.grad[t], fd, 1e-7, 1e-5, &format!("{what}, token {t}"));
        if out.grad[t] != 0.0 {
            nonzero += 1;
        }
    }
    (out.stats.num_clipped_tokens, nonzero)
}

const AGGS: [Aggregation; 6] = [
    Aggregation::TokenMean,
    Aggregation::SeqMeanTokenMean,
    Aggregation::SeqMeanTokenSum,
    Aggregation::SeqMeanTokenSumNorm,
    Aggregation::TrajMeanSubseqMean,
    Aggregation::SubseqMean,
];
const KLS: [KlEstimator; 3] = [KlEstimator::K1, KlEstimator::K2, KlEstimator::K3];

#[test]
fn finite_differences_every_loss_aggregation_and_kl() {
    let l = layout();
    let mut checked = 0;
    for alg in ALGORITHMS {
        for agg in AGGS {
            for kl in KLS {
                for region in [Region::Unclipped, Region::Clipped] {
                    for dual in [None, Some(1.5)] {
                        if region == Region::Unclipped && dual.is_some() {
                            continue;
                        }
                        let cfg = ObjectiveConfig {
                            kl_estimator: kl,
                            kl_coef: 0.05,
                            entropy_coef: 0.01,
                            dual_clip: dual,
                            clip_low: 0.2,
                            clip_high: 0.25,
                            ..config(alg, agg)
                        };
                        let what = format!("{alg} {agg} {kl} {region:?} dual={dual:?}");
                        let mut seed = 17;
                        let p = loop {
                            let p = point(&l, region, seed);
                            if kink_margin(&l, &p, &cfg) > 0.01 {
                                break p;
                            }
                            seed += 1;
                            assert!(seed < 10_000, "{what}: no point away from kinks");
                        };
                        let (clipped, nonzero) = check_fd(&l, &p, &cfg, &what);
                        assert!(nonzero > 0, "{what}: all gradients zero");
                        if alg != Algorithm::Reinforce {
                            match region {
                                Region::Unclipped => assert_eq!(clipped, 0, "{what}"),
                                Region::Clipped => assert!(clipped > 0, "{what}: nothing clipped"),
                            }
                        }
                        checked += 1;
                    }
                }
            }
        }
    }
    assert_eq!(checked, 5 * 6 * 3 * 3);
}

#[test]
fn finite_differences_with_explicit_horizon_and_gspo_scale_clip() {
    let l = layout();
    for alg in [Algorithm::Gspo, Algorithm::Gsspo, Algorithm::Grpo] {
        let cfg = ObjectiveConfig {
            aggregation: Aggregation::SeqMeanTokenSumNorm,
            loss_agg_horizon: Some(64),
            clip_low: 3e-4,
            clip_high: 4e-4,
            kl_coef: 0.0,
            ..alg.default_config().objective
        };
        // Tiny deviations: inside GSPO's band for some units, outside for others.
        let mut p = point(&l, Region::Unclipped, 5);
        for t in 0..l.len() {
            if l.mask[t] != 0 {
                p.lp[t] = p.old[t] + (p.lp[t] - p.old[t]) * 0.001;
            }
        }
        let mut seed = 5;
        while kink_margin(&l, &p, &cfg) < 2e-5 {
            seed += 1;
            p = point(&l, Region::Unclipped, seed);
            for t in 0..l.len() {
                if l.mask[t] != 0 {
                    p.lp[t] = p.old[t] + (p.lp[t] - p.old[t]) * 0.001;
                }
            }
        }
        let out = compute(&p.batch(&l), &cfg).unwrap();
        let h = 1e-7;
        for t in (0..l.len()).filter(|&t| l.mask[t] != 0) {
            let mut q = p.clone();
            q.lp[t] += h;
            let up = compute(&q.batch(&l), &cfg).unwrap().loss;
            q.lp[t] = p.lp[t] - h;
            let down = compute(&q.batch(&l), &cfg).unwrap().loss;
            assert_close(
                out.grad[t],
                (up - down) / (2.0 * h),
                1e-7,
                1e-5,
                &format!("{alg} t={t}"),
            );
        }
    }
}

#[test]
fn k3_clamps_zero_the_gradient() {
    let l = Layout::new(&[vec![3]], 0);
    let p = Point {
        lp: vec![-1.0, -1.0, -1.0],
        old: vec![-1.0, -1.0, -1.0],
        // x = ref − lp: 25 (argument clamp), 5 (value clamp: e⁵ − 6 > 10), 0.5 (free).
        reference: vec![24.0, 4.0, -0.5],
        entropy: vec![0.0; 3],
        adv: vec![0.0],
    };
    let cfg = ObjectiveConfig {
        kl_coef: 1.0,
        kl_estimator: KlEstimator::K3,
        ..Algorithm::Grpo.default_config().objective
    };
    let out = compute(&p.batch(&l), &cfg).unwrap();
    assert_eq!(out.grad[0], 0.0);
    assert_eq!(out.grad[1], 0.0);
    assert_close(
        out.grad[2],
        (1.0 - 0.5f64.exp()) / 3.0,
        1e-15,
        0.0,
        "free k3 gradient",
    );
    let v2 = 0.5f64.exp() - 0.5 - 1.0;
    assert_close(
        out.stats.kl.unwrap(),
        (10.0 + 10.0 + v2) / 3.0,
        1e-12,
        0.0,
        "k3 mean",
    );
}
