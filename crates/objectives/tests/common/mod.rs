//! Shared helpers of the integration tests.
#![allow(dead_code)]

use flowrl_objectives::{Aggregation, Algorithm, ObjectiveConfig, TokenBatch};

/// A token layout: per-position mask, sub-sequence and trajectory ids.
#[derive(Debug, Clone)]
pub struct Layout {
    pub mask: Vec<u8>,
    pub subseq: Vec<i32>,
    pub traj: Vec<i32>,
    pub num_traj: usize,
}

impl Layout {
    /// `trajs[i]` lists the token counts of trajectory i's sub-sequences;
    /// `gap` masked-out tokens precede every sub-sequence.
    pub fn new(trajs: &[Vec<usize>], gap: usize) -> Self {
        let mut l = Layout {
            mask: vec![],
            subseq: vec![],
            traj: vec![],
            num_traj: trajs.len(),
        };
        let mut sid = 0;
        for (i, subs) in trajs.iter().enumerate() {
            for &len in subs {
                for _ in 0..gap {
                    l.mask.push(0);
                    l.subseq.push(-1);
                    l.traj.push(i as i32);
                }
                for _ in 0..len {
                    l.mask.push(1);
                    l.subseq.push(sid);
                    l.traj.push(i as i32);
                }
                sid += 1;
            }
        }
        l
    }

    pub fn len(&self) -> usize {
        self.mask.len()
    }

    /// Sub-sequence ranges (token index lists) by sub-sequence id.
    pub fn subseq_tokens(&self) -> Vec<Vec<usize>> {
        let ns = self.subseq.iter().copied().max().unwrap_or(-1) + 1;
        let mut v = vec![vec![]; ns as usize];
        for (t, &s) in self.subseq.iter().enumerate() {
            if s >= 0 {
                v[s as usize].push(t);
            }
        }
        v
    }

    /// Policy-token lists by trajectory.
    pub fn traj_tokens(&self) -> Vec<Vec<usize>> {
        let mut v = vec![vec![]; self.num_traj];
        for t in 0..self.len() {
            if self.mask[t] != 0 {
                v[self.traj[t] as usize].push(t);
            }
        }
        v
    }
}

/// xorshift64* in [0, 1).
pub struct Rng(pub u64);

impl Rng {
    pub fn uniform(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
    }

    pub fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.uniform()
    }
}

/// Per-token values of one test point.
#[derive(Debug, Clone)]
pub struct Point {
    pub lp: Vec<f64>,
    pub old: Vec<f64>,
    pub reference: Vec<f64>,
    pub entropy: Vec<f64>,
    pub adv: Vec<f64>,
}

impl Point {
    pub fn batch<'a>(&'a self, l: &'a Layout) -> TokenBatch<'a, f64> {
        TokenBatch::new(&self.lp, &self.old, &l.mask, &l.subseq, &l.traj, &self.adv)
            .with_ref(&self.reference)
            .with_entropy(&self.entropy)
    }
}

pub const ALGORITHMS: [Algorithm; 5] = [
    Algorithm::Grpo,
    Algorithm::Gspo,
    Algorithm::Gsspo,
    Algorithm::Cwrpo,
    Algorithm::Reinforce,
];

pub fn config(alg: Algorithm, agg: Aggregation) -> ObjectiveConfig {
    ObjectiveConfig {
        aggregation: agg,
        ..alg.default_config().objective
    }
}

pub fn assert_close(a: f64, b: f64, atol: f64, rtol: f64, what: &str) {
    assert!(
        (a - b).abs() <= atol + rtol * b.abs().max(a.abs()),
        "{what}: {a} vs {b} (diff {})",
        (a - b).abs()
    );
}
