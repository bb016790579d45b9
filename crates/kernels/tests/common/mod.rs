//! Random inputs shared by the tests.
#![allow(dead_code)]

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// A flat token batch with every per-token array of the objectives.
#[derive(Debug, Clone)]
pub struct Batch {
    pub lp: Vec<f32>,
    pub old: Vec<f32>,
    pub rf: Vec<f32>,
    pub ent: Vec<f32>,
    pub mask: Vec<u8>,
    pub subseq: Vec<i32>,
    pub traj: Vec<i32>,
    pub adv: Vec<f32>,
}

pub fn rng(seed: u64) -> StdRng {
    StdRng::seed_from_u64(seed)
}

/// `b` trajectories of environment spans and policy turns: some turns of
/// one token, one trajectory fully masked, log-ratio noise of scale `spread`.
pub fn batch(r: &mut StdRng, b: usize, spread: f32) -> Batch {
    let mut out = Batch {
        lp: vec![],
        old: vec![],
        rf: vec![],
        ent: vec![],
        mask: vec![],
        subseq: vec![],
        traj: vec![],
        adv: vec![],
    };
    let mut next_sub = 0i32;
    for i in 0..b {
        out.adv.push(r.random_range(-2.0f32..2.0));
        let fully_masked = b > 1 && i == b / 2;
        let turns = if fully_masked {
            0
        } else {
            r.random_range(1..5)
        };
        let env = |out: &mut Batch, r: &mut StdRng| {
            for _ in 0..r.random_range(0..4) {
                out.lp.push(f32::NAN);
                out.old.push(f32::NAN);
                out.rf.push(f32::NAN);
                out.ent.push(f32::NAN);
                out.mask.push(0);
                out.subseq.push(-1);
                out.traj.push(i as i32);
            }
        };
        env(&mut out, r);
        if fully_masked {
            out.lp.push(0.0);
            out.old.push(0.0);
            out.rf.push(0.0);
            out.ent.push(0.0);
            out.mask.push(0);
            out.subseq.push(-1);
            out.traj.push(i as i32);
        }
        for _ in 0..turns {
            let len = if r.random_bool(0.3) {
                1
            } else {
                r.random_range(2..9)
            };
            for _ in 0..len {
                let old: f32 = r.random_range(-6.0..-0.05);
                let lp = (old + r.random_range(-spread..spread)).min(0.0);
                out.lp.push(lp);
                out.old.push(old);
                out.rf.push(lp + r.random_range(-0.3f32..0.3));
                out.ent.push(r.random_range(0.0f32..3.0));
                out.mask.push(1);
                out.subseq.push(next_sub);
                out.traj.push(i as i32);
            }
            next_sub += 1;
            env(&mut out, r);
        }
    }
    // Masked-out values are never read: keep them finite but arbitrary.
    for t in 0..out.lp.len() {
        if out.mask[t] == 0 {
            out.lp[t] = 123.0;
            out.old[t] = -7.0;
            out.rf[t] = 5.0;
            out.ent[t] = 9.0;
        }
    }
    out
}

/// Logits `[n, v]` with a spread like an LM head's (a few large values).
pub fn logits(r: &mut StdRng, n: usize, v: usize) -> (Vec<f32>, Vec<i32>) {
    let mut x = Vec::with_capacity(n * v);
    for _ in 0..n * v {
        let base: f32 = r.random_range(-4.0..4.0);
        x.push(if r.random_bool(0.01) {
            base + 8.0
        } else {
            base
        });
    }
    let y = (0..n).map(|_| r.random_range(0..v as i32)).collect();
    (x, y)
}

/// `|a − b| ≤ atol + rtol·|b|` element-wise, with a message naming the worst.
pub fn assert_close(what: &str, got: &[f64], want: &[f64], atol: f64, rtol: f64) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    let mut worst = (0usize, 0.0f64);
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let ok = (g - w).abs() <= atol + rtol * w.abs();
        assert!(
            ok || (g.is_nan() && w.is_nan()) || g == w,
            "{what}[{i}]: got {g}, want {w} (atol {atol}, rtol {rtol})"
        );
        let ex = (g - w).abs() - rtol * w.abs();
        if ex > worst.1 {
            worst = (i, ex);
        }
    }
}

pub fn f64s<T: Copy + Into<f64>>(v: &[T]) -> Vec<f64> {
    v.iter().map(|&x| x.into()).collect()
}
