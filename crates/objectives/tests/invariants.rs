//! Invariants between the objectives.

mod common;

use common::{Layout, Point, Rng, assert_close, config};
use flowrl_objectives::{Aggregation, Algorithm, ObjectiveConfig, TokenBatch, compute};
use proptest::prelude::*;

const AGGS: [Aggregation; 6] = [
    Aggregation::TokenMean,
    Aggregation::SeqMeanTokenMean,
    Aggregation::SeqMeanTokenSum,
    Aggregation::SeqMeanTokenSumNorm,
    Aggregation::TrajMeanSubseqMean,
    Aggregation::SubseqMean,
];

/// Random values on a layout: `spread` is the scale of lp − old.
fn values(l: &Layout, seed: u64, spread: f64) -> Point {
    let mut rng = Rng(seed);
    let n = l.len();
    let mut p = Point {
        lp: vec![0.0; n],
        old: vec![0.0; n],
        reference: vec![0.0; n],
        entropy: vec![0.0; n],
        adv: (0..l.num_traj).map(|_| rng.range(-1.5, 1.5)).collect(),
    };
    for t in 0..n {
        p.old[t] = rng.range(-4.0, -0.05);
        p.lp[t] = p.old[t] + rng.range(-spread, spread);
        p.reference[t] = p.old[t] + rng.range(-0.2, 0.2);
        p.entropy[t] = rng.range(0.0, 3.0);
    }
    p
}

fn same(
    a: &flowrl_objectives::LossOutput<f64>,
    b: &flowrl_objectives::LossOutput<f64>,
    what: &str,
) {
    assert_close(a.loss, b.loss, 1e-13, 1e-12, &format!("{what}: loss"));
    for (t, (x, y)) in a.grad.iter().zip(&b.grad).enumerate() {
        assert_close(*x, *y, 1e-14, 1e-12, &format!("{what}: grad {t}"));
    }
}

#[test]
fn gsspo_with_one_subseq_per_trajectory_equals_gspo() {
    let l = Layout::new(&[vec![4], vec![1], vec![7], vec![3], vec![5]], 2);
    for seed in 1..6 {
        for spread in [0.05, 0.6] {
            let p = values(&l, seed, spread);
            for agg in AGGS {
                for dual in [None, Some(2.0)] {
                    let g = ObjectiveConfig {
                        dual_clip: dual,
                        kl_coef: 0.01,
                        ..config(Algorithm::Gsspo, agg)
                    };
                    let s = ObjectiveConfig {
                        algorithm: Algorithm::Gspo,
                        ..g
                    };
                    let a = compute(&p.batch(&l), &g).unwrap();
                    let b = compute(&p.batch(&l), &s).unwrap();
                    same(&a, &b, &format!("{agg} seed {seed} spread {spread}"));
                    assert_eq!(a.stats.num_clipped_tokens, b.stats.num_clipped_tokens);
                    assert_eq!(a.stats.clip_frac_subseq, b.stats.clip_frac_subseq);
                }
            }
        }
    }
}

#[test]
fn gspo_over_one_token_sequences_equals_token_level_grpo() {
    let l = Layout::new(&[vec![1], vec![1], vec![1], vec![1], vec![1], vec![1]], 1);
    for seed in 1..6 {
        for spread in [0.05, 0.7] {
            let p = values(&l, seed, spread);
            for agg in AGGS {
                for dual in [None, Some(1.5)] {
                    let s = ObjectiveConfig {
                        dual_clip: dual,
                        kl_coef: 0.01,
                        ..config(Algorithm::Gspo, agg)
                    };
                    let g = ObjectiveConfig {
                        algorithm: Algorithm::Grpo,
                        ..s
                    };
                    let a = compute(&p.batch(&l), &s).unwrap();
                    let b = compute(&p.batch(&l), &g).unwrap();
                    same(&a, &b, &format!("{agg} seed {seed}"));
                    assert_eq!(a.stats.num_clipped_tokens, b.stats.num_clipped_tokens);
                    assert_close(
                        a.stats.ratio_mean,
                        b.stats.ratio_mean,
                        1e-14,
                        1e-12,
                        "ratio",
                    );
                }
            }
        }
    }
}

#[test]
fn on_policy_gradients_equal_the_policy_gradient_form() {
    let l = Layout::new(&[vec![3, 2], vec![4], vec![1, 2, 3], vec![2, 5]], 1);
    let mut p = values(&l, 9, 0.0);
    p.lp = p.old.clone();
    for agg in AGGS {
        let pg_cfg = ObjectiveConfig {
            kl_coef: 0.0,
            ..config(Algorithm::Reinforce, agg)
        };
        let pg = compute(&p.batch(&l), &pg_cfg).unwrap();
        for alg in [
            Algorithm::Grpo,
            Algorithm::Gspo,
            Algorithm::Gsspo,
            Algorithm::Cwrpo,
        ] {
            // GSPO under a sub-sequence aggregation weighs the tokens of one
            // ratio unit unequally; its exact gradient spreads the unit's
            // weight evenly instead (see the crate docs), so it differs from
            // the token-wise policy-gradient form by design.
            let subseq_agg = matches!(
                agg,
                Aggregation::TrajMeanSubseqMean | Aggregation::SubseqMean
            );
            if alg == Algorithm::Gspo && subseq_agg {
                continue;
            }
            let cfg = ObjectiveConfig {
                kl_coef: 0.0,
                dual_clip: Some(3.0),
                ..config(alg, agg)
            };
            let out = compute(&p.batch(&l), &cfg).unwrap();
            for t in 0..l.len() {
                assert_close(
                    out.grad[t],
                    pg.grad[t],
                    1e-15,
                    1e-12,
                    &format!("{alg} {agg} {t}"),
                );
            }
            assert_eq!(out.stats.num_clipped_tokens, 0);
            assert_close(out.stats.ratio_mean, 1.0, 0.0, 0.0, "ratio at π = π_old");
        }
    }
    // The GSsPO formula of the docs: −A_i / (N·K_i·|y_{i,k}|) at s = 1.
    let out = compute(
        &p.batch(&l),
        &config(Algorithm::Gsspo, Aggregation::TrajMeanSubseqMean),
    )
    .unwrap();
    let trajs = [vec![3, 2], vec![4], vec![1, 2, 3], vec![2, 5]];
    for t in 0..l.len() {
        if l.mask[t] == 0 {
            continue;
        }
        let i = l.traj[t] as usize;
        let k = trajs[i].len() as f64;
        let len = l.subseq.iter().filter(|&&s| s == l.subseq[t]).count() as f64;
        let kl_part = out.grad[t] - (-p.adv[i] / (4.0 * k * len));
        // KL (k3, β = 0.001) adds β/T·(1 − e^{ref − lp}).
        let x = p.reference[t] - p.lp[t];
        let total = l.mask.iter().filter(|&&m| m != 0).count() as f64;
        assert_close(
            kl_part,
            0.001 / total * (1.0 - x.exp()),
            1e-15,
            1e-9,
            "gsspo formula",
        );
    }
}

#[test]
fn a_clipped_unit_gets_zero_gradient() {
    let l = Layout::new(&[vec![3, 2], vec![4, 2]], 1);
    let mut p = values(&l, 3, 0.0);
    p.adv = vec![1.0, -1.0];
    p.lp = p.old.clone();
    let subs = l.subseq_tokens();
    // Trajectory 0 (A > 0): sub-sequence 0 above 1 + ε (clipped), 1 inside.
    for &t in &subs[0] {
        p.lp[t] += 0.4;
    }
    // Trajectory 1 (A < 0): sub-sequence 2 below 1 − ε (clipped), 3 above 1 + ε (not clipped).
    for &t in &subs[2] {
        p.lp[t] -= 0.5;
    }
    for &t in &subs[3] {
        p.lp[t] += 0.3;
    }
    for alg in [Algorithm::Gsspo, Algorithm::Grpo] {
        let cfg = ObjectiveConfig {
            kl_coef: 0.0,
            dual_clip: None,
            ..alg.default_config().objective
        };
        let out = compute(&p.batch(&l), &cfg).unwrap();
        for (k, toks) in subs.iter().enumerate() {
            for &t in toks {
                if k == 0 || k == 2 {
                    assert_eq!(out.grad[t], 0.0, "{alg}: clipped sub-sequence {k}");
                } else {
                    assert!(out.grad[t] != 0.0, "{alg}: free sub-sequence {k}");
                }
            }
        }
        assert_eq!(out.stats.num_clipped_subseqs, 2);
        assert_eq!(out.stats.num_clipped_tokens, 3 + 4);
        assert_close(
            out.stats.clip_frac_subseq,
            0.5,
            0.0,
            0.0,
            "clip frac subseq",
        );
    }
    // Dual clip: A < 0 and s > c caps the loss, zero gradient too.
    let cfg = ObjectiveConfig {
        kl_coef: 0.0,
        dual_clip: Some(1.2),
        ..Algorithm::Gsspo.default_config().objective
    };
    let out = compute(&p.batch(&l), &cfg).unwrap();
    for &t in &subs[3] {
        assert_eq!(out.grad[t], 0.0);
    }
    assert_close(
        out.stats.dual_clip_frac_token,
        2.0 / 11.0,
        1e-15,
        0.0,
        "dual frac",
    );
}

#[test]
fn f32_and_f64_agree() {
    let l = Layout::new(&[vec![3, 2], vec![4], vec![1, 2, 3]], 2);
    let p = values(&l, 4, 0.3);
    let f = |v: &[f64]| v.iter().map(|&x| x as f32).collect::<Vec<f32>>();
    let (lp, old, rf, adv) = (f(&p.lp), f(&p.old), f(&p.reference), f(&p.adv));
    for alg in common::ALGORITHMS {
        let cfg = alg.default_config().objective;
        let cfg = ObjectiveConfig {
            kl_coef: 0.01,
            ..cfg
        };
        let b32 = TokenBatch::new(&lp, &old, &l.mask, &l.subseq, &l.traj, &adv).with_ref(&rf);
        let a = compute(&b32, &cfg).unwrap();
        let b = compute(&p.batch(&l), &cfg).unwrap();
        assert_close(a.loss, b.loss, 1e-5, 1e-4, &format!("{alg} loss"));
        for (x, y) in a.grad.iter().zip(&b.grad) {
            assert_close(f64::from(*x), *y, 1e-6, 1e-3, &format!("{alg} grad"));
        }
    }
}

/// A batch larger than one chunk, with sub-sequences straddling chunk
/// boundaries, against a direct evaluation of the GSsPO formula.
#[test]
fn large_batch_matches_direct_gsspo_formula() {
    let trajs: Vec<Vec<usize>> = (0..300)
        .map(|i| {
            (0..(1 + i % 4))
                .map(|k| 50 + (i * 37 + k * 101) % 400)
                .collect()
        })
        .collect();
    let l = Layout::new(&trajs, 3);
    assert!(l.len() > 3 * (1 << 15));
    let mut p = values(&l, 11, 0.3);
    // Every third sub-sequence moves as a whole, out of the clip band.
    for t in 0..l.len() {
        if l.subseq[t] >= 0 && l.subseq[t] % 3 == 0 {
            p.lp[t] += 0.4;
        }
    }
    let cfg = ObjectiveConfig {
        kl_coef: 0.0,
        ..Algorithm::Gsspo.default_config().objective
    };
    let out = compute(&p.batch(&l), &cfg).unwrap();
    let n = trajs.len() as f64;
    let mut loss = 0.0;
    let mut clipped = 0;
    for (s, toks) in l.subseq_tokens().iter().enumerate() {
        let i = l.traj[toks[0]] as usize;
        let k = trajs[i].len() as f64;
        let len = toks.len() as f64;
        let ratio = (toks.iter().map(|&t| p.lp[t] - p.old[t]).sum::<f64>() / len).exp();
        let a = p.adv[i];
        let unclipped = -a * ratio;
        let clip = -a * ratio.clamp(0.8, 1.2);
        loss += unclipped.max(clip) / (n * k);
        let g = if clip > unclipped {
            clipped += 1;
            0.0
        } else {
            -a * ratio / (n * k * len)
        };
        for &t in toks {
            assert_close(out.grad[t], g, 1e-15, 1e-10, &format!("subseq {s}"));
        }
    }
    assert_close(out.loss, loss, 1e-12, 1e-10, "loss");
    assert_eq!(out.stats.num_clipped_subseqs, clipped);
    assert!(clipped > 0 && clipped < out.stats.num_subseqs);
}

fn permuted(l: &Layout, p: &Point, perm: &[usize]) -> (Layout, Point, Vec<usize>) {
    // Token lists of each trajectory (all its positions, in order).
    let mut tok_of: Vec<Vec<usize>> = vec![vec![]; l.num_traj];
    for t in 0..l.len() {
        tok_of[l.traj[t] as usize].push(t);
    }
    let mut nl = Layout {
        mask: vec![],
        subseq: vec![],
        traj: vec![],
        num_traj: l.num_traj,
    };
    let mut q = Point {
        lp: vec![],
        old: vec![],
        reference: vec![],
        entropy: vec![],
        adv: vec![0.0; l.num_traj],
    };
    let mut source = vec![];
    let mut next_sid = 0;
    for (new_i, &old_i) in perm.iter().enumerate() {
        q.adv[new_i] = p.adv[old_i];
        let mut map = std::collections::HashMap::new();
        for &t in &tok_of[old_i] {
            nl.mask.push(l.mask[t]);
            nl.traj.push(new_i as i32);
            let s = l.subseq[t];
            nl.subseq.push(if s < 0 {
                -1
            } else {
                *map.entry(s).or_insert_with(|| {
                    next_sid += 1;
                    next_sid - 1
                })
            });
            q.lp.push(p.lp[t]);
            q.old.push(p.old[t]);
            q.reference.push(p.reference[t]);
            q.entropy.push(p.entropy[t]);
            source.push(t);
        }
    }
    (nl, q, source)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn result_does_not_depend_on_trajectory_order(
        shape in prop::collection::vec(prop::collection::vec(1usize..6, 1..4), 1..7),
        seed in 1u64..1_000_000,
        spread in 0.0f64..0.8,
        alg_i in 0usize..5,
        agg_i in 0usize..6,
        perm_seed in any::<u64>(),
    ) {
        let l = Layout::new(&shape, 1);
        let p = values(&l, seed, spread);
        let mut perm: Vec<usize> = (0..l.num_traj).collect();
        let mut rng = Rng(perm_seed | 1);
        for i in (1..perm.len()).rev() {
            let j = (rng.uniform() * (i + 1) as f64) as usize % (i + 1);
            perm.swap(i, j);
        }
        let (nl, q, source) = permuted(&l, &p, &perm);
        let cfg = ObjectiveConfig {
            kl_coef: 0.01,
            entropy_coef: 0.001,
            ..config(common::ALGORITHMS[alg_i], AGGS[agg_i])
        };
        let a = compute(&p.batch(&l), &cfg).unwrap();
        let b = compute(&q.batch(&nl), &cfg).unwrap();
        prop_assert!((a.loss - b.loss).abs() <= 1e-12 * (1.0 + a.loss.abs()));
        for (new_t, &old_t) in source.iter().enumerate() {
            prop_assert!((a.grad[old_t] - b.grad[new_t]).abs() <= 1e-14 + 1e-12 * a.grad[old_t].abs());
        }
        prop_assert_eq!(a.stats.num_clipped_tokens, b.stats.num_clipped_tokens);
        prop_assert_eq!(a.stats.num_subseqs, b.stats.num_subseqs);
    }
}
