//! Flattening trajectories into token batches, and the inverse mapping.
//!
//! Every context window of a trajectory (a prompt span and the spans after it
//! up to the next prompt span) becomes one *row*. A row of `L` tokens gives
//! `L − 1` training *positions*: position `j` reads `input_ids[j]` and is
//! trained to predict `target_ids[j]` (the token at `j + 1` of the row). A
//! position is in the loss (`loss_mask = 1`) exactly when its target is a
//! policy token; its `subseq` is then the batch-wide index of the policy span
//! (sub-sequence) that token belongs to, and `-1` otherwise.

use crate::error::BatchError;
use crate::types::{Role, Trajectory};

/// Variable-length (packed) layout: all rows concatenated, no padding.
///
/// All per-position vectors have length [`PackedBatch::len`]. Rows are
/// delimited by `offsets` (`offsets[r]..offsets[r + 1]`, cumulative sequence
/// lengths as varlen attention kernels expect).
#[derive(Debug, Clone, PartialEq)]
pub struct PackedBatch {
    /// Input token id per position.
    pub input_ids: Vec<u32>,
    /// Target (next) token id per position.
    pub target_ids: Vec<u32>,
    /// Position of the input token inside its row (0-based, resets per row).
    pub position_ids: Vec<u32>,
    /// 1 where the target is a policy token, else 0.
    pub loss_mask: Vec<u8>,
    /// Batch-wide sub-sequence id of the target, −1 outside policy spans.
    pub subseq: Vec<i32>,
    /// Index (into the flattened slice) of the trajectory of each position.
    pub traj: Vec<i32>,
    /// The sampler's log-prob of each target, 0 where the mask is 0.
    /// `None` unless every policy span of the input carries log-probs.
    pub sampler_logprobs: Option<Vec<f32>>,
    /// Row boundaries: `R + 1` cumulative offsets into the position vectors.
    pub offsets: Vec<usize>,
    /// Trajectory index of each row (`R` entries).
    pub row_traj: Vec<usize>,
    /// Trajectory index of each sub-sequence (`S` entries).
    pub subseq_traj: Vec<usize>,
    /// Turn index (0-based, counting policy spans) of each sub-sequence inside
    /// its trajectory (`S` entries).
    pub subseq_turn: Vec<usize>,
    /// Sub-sequences of trajectory `b` are `traj_subseq[b]..traj_subseq[b + 1]`
    /// (`B + 1` entries).
    pub traj_subseq: Vec<usize>,
    /// Number of positions of each sub-sequence (`S` entries).
    pub subseq_len: Vec<usize>,
}

/// Flattens trajectories into the packed layout.
///
/// Trajectory `b` of the output is `trajectories[b]`. Each trajectory is
/// validated first.
///
/// # Errors
/// [`BatchError::Empty`] for an empty slice; [`BatchError::Invalid`] naming
/// the first invalid trajectory.
pub fn flatten_packed(trajectories: &[Trajectory]) -> Result<PackedBatch, BatchError> {
    if trajectories.is_empty() {
        return Err(BatchError::Empty);
    }
    let mut all_logprobs = true;
    let mut total = 0usize;
    for (index, t) in trajectories.iter().enumerate() {
        t.validate().map_err(|source| BatchError::Invalid {
            index,
            id: t.id.clone(),
            source,
        })?;
        all_logprobs &= t
            .spans
            .iter()
            .all(|s| s.role != Role::Policy || s.logprobs.is_some());
        total += t.num_tokens();
    }
    let mut b = PackedBatch {
        input_ids: Vec::with_capacity(total),
        target_ids: Vec::with_capacity(total),
        position_ids: Vec::with_capacity(total),
        loss_mask: Vec::with_capacity(total),
        subseq: Vec::with_capacity(total),
        traj: Vec::with_capacity(total),
        sampler_logprobs: all_logprobs.then(|| Vec::with_capacity(total)),
        offsets: vec![0],
        row_traj: Vec::new(),
        subseq_traj: Vec::new(),
        subseq_turn: Vec::new(),
        traj_subseq: vec![0],
        subseq_len: Vec::new(),
    };
    for (ti, t) in trajectories.iter().enumerate() {
        let mut turn = 0usize;
        // Previous token of the current row, if any.
        let mut prev: Option<u32> = None;
        let mut pos_in_row = 0u32;
        for span in &t.spans {
            if span.role == Role::Prompt && prev.is_some() {
                close_row(&mut b, ti);
                prev = None;
                pos_in_row = 0;
            }
            let sid = if span.role == Role::Policy {
                let id = b.subseq_traj.len();
                b.subseq_traj.push(ti);
                b.subseq_turn.push(turn);
                b.subseq_len.push(span.tokens.len());
                turn += 1;
                id as i32
            } else {
                -1
            };
            for (k, &tok) in span.tokens.iter().enumerate() {
                if let Some(p) = prev {
                    b.input_ids.push(p);
                    b.target_ids.push(tok);
                    b.position_ids.push(pos_in_row);
                    b.loss_mask.push(u8::from(sid >= 0));
                    b.subseq.push(sid);
                    b.traj.push(ti as i32);
                    if let Some(lps) = b.sampler_logprobs.as_mut() {
                        let lp = match (&span.logprobs, sid >= 0) {
                            (Some(v), true) => v[k],
                            _ => 0.0,
                        };
                        lps.push(lp);
                    }
                    pos_in_row += 1;
                }
                prev = Some(tok);
            }
        }
        if prev.is_some() {
            close_row(&mut b, ti);
        }
        b.traj_subseq.push(b.subseq_traj.len());
    }
    Ok(b)
}

fn close_row(b: &mut PackedBatch, ti: usize) {
    b.offsets.push(b.input_ids.len());
    b.row_traj.push(ti);
}

impl PackedBatch {
    /// Number of positions.
    pub fn len(&self) -> usize {
        self.input_ids.len()
    }

    /// True when the batch has no positions.
    pub fn is_empty(&self) -> bool {
        self.input_ids.is_empty()
    }

    /// Number of rows (context windows).
    pub fn num_rows(&self) -> usize {
        self.row_traj.len()
    }

    /// Number of trajectories.
    pub fn num_trajectories(&self) -> usize {
        self.traj_subseq.len() - 1
    }

    /// Number of sub-sequences (policy turns) over the batch.
    pub fn num_subseqs(&self) -> usize {
        self.subseq_traj.len()
    }

    /// Number of positions in the loss.
    pub fn num_policy_tokens(&self) -> usize {
        self.loss_mask.iter().map(|&m| m as usize).sum()
    }

    /// The token sequence of row `r` (its input ids plus the last target).
    ///
    /// Returns `None` when `r` is out of range.
    pub fn row_tokens(&self, r: usize) -> Option<Vec<u32>> {
        let (s, e) = (*self.offsets.get(r)?, *self.offsets.get(r + 1)?);
        let mut v = self.input_ids[s..e].to_vec();
        v.push(*self.target_ids.get(e.checked_sub(1)?)?);
        Some(v)
    }

    /// Maps per-position values back to trajectories and turns.
    ///
    /// Returns `out[b][k]`: the values at the loss positions of turn `k` of
    /// trajectory `b`, in token order (so `unflatten(&target_ids)` gives back
    /// each policy span's tokens).
    ///
    /// # Errors
    /// [`BatchError::LengthMismatch`] when `values.len() != self.len()`.
    pub fn unflatten<T: Copy>(&self, values: &[T]) -> Result<Vec<Vec<Vec<T>>>, BatchError> {
        if values.len() != self.len() {
            return Err(BatchError::LengthMismatch {
                expected: self.len(),
                got: values.len(),
            });
        }
        let mut out: Vec<Vec<Vec<T>>> = (0..self.num_trajectories())
            .map(|b| {
                (self.traj_subseq[b]..self.traj_subseq[b + 1])
                    .map(|s| Vec::with_capacity(self.subseq_len[s]))
                    .collect()
            })
            .collect();
        for (j, &sid) in self.subseq.iter().enumerate() {
            if sid >= 0 {
                let s = sid as usize;
                let b = self.subseq_traj[s];
                out[b][self.subseq_turn[s]].push(values[j]);
            }
        }
        Ok(out)
    }

    /// Sums per-position values over each sub-sequence (`S` sums).
    ///
    /// # Errors
    /// [`BatchError::LengthMismatch`] when `values.len() != self.len()`.
    pub fn sum_per_subseq(&self, values: &[f64]) -> Result<Vec<f64>, BatchError> {
        if values.len() != self.len() {
            return Err(BatchError::LengthMismatch {
                expected: self.len(),
                got: values.len(),
            });
        }
        let mut out = vec![0.0; self.num_subseqs()];
        for (&sid, &v) in self.subseq.iter().zip(values) {
            if sid >= 0 {
                out[sid as usize] += v;
            }
        }
        Ok(out)
    }

    /// The rectangular layout of the same positions, padded with `pad_id`.
    ///
    /// # Errors
    /// [`BatchError::TooLarge`] when rows × width overflows.
    pub fn to_padded(&self, pad_id: u32) -> Result<PaddedBatch, BatchError> {
        let rows = self.num_rows();
        let lengths: Vec<usize> = self.offsets.windows(2).map(|w| w[1] - w[0]).collect();
        let width = lengths.iter().copied().max().unwrap_or(0);
        let n = rows
            .checked_mul(width)
            .ok_or(BatchError::TooLarge { rows, width })?;
        let mut p = PaddedBatch {
            rows,
            width,
            lengths,
            pad_id,
            input_ids: vec![pad_id; n],
            target_ids: vec![pad_id; n],
            position_ids: vec![0; n],
            loss_mask: vec![0; n],
            subseq: vec![-1; n],
            traj: vec![-1; n],
            sampler_logprobs: self.sampler_logprobs.as_ref().map(|_| vec![0.0; n]),
        };
        for r in 0..rows {
            let (s, e) = (self.offsets[r], self.offsets[r + 1]);
            let d = r * width;
            let l = e - s;
            p.input_ids[d..d + l].copy_from_slice(&self.input_ids[s..e]);
            p.target_ids[d..d + l].copy_from_slice(&self.target_ids[s..e]);
            p.position_ids[d..d + l].copy_from_slice(&self.position_ids[s..e]);
            p.loss_mask[d..d + l].copy_from_slice(&self.loss_mask[s..e]);
            p.subseq[d..d + l].copy_from_slice(&self.subseq[s..e]);
            p.traj[d..d + l].copy_from_slice(&self.traj[s..e]);
            if let (Some(dst), Some(src)) =
                (p.sampler_logprobs.as_mut(), self.sampler_logprobs.as_ref())
            {
                dst[d..d + l].copy_from_slice(&src[s..e]);
            }
        }
        Ok(p)
    }
}

/// Rectangular layout: `rows × width` positions, row-major, right-padded.
///
/// Padding positions have `input_ids = target_ids = pad_id`,
/// `position_ids = 0`, `loss_mask = 0`, `subseq = −1`, `traj = −1` and a
/// sampler log-prob of 0.
#[derive(Debug, Clone, PartialEq)]
pub struct PaddedBatch {
    /// Number of rows.
    pub rows: usize,
    /// Width of each row (the longest row's length).
    pub width: usize,
    /// Number of real (non-padding) positions of each row.
    pub lengths: Vec<usize>,
    /// Token id used for padding.
    pub pad_id: u32,
    /// `[rows × width]` input ids.
    pub input_ids: Vec<u32>,
    /// `[rows × width]` target ids.
    pub target_ids: Vec<u32>,
    /// `[rows × width]` positions inside the row.
    pub position_ids: Vec<u32>,
    /// `[rows × width]` loss mask.
    pub loss_mask: Vec<u8>,
    /// `[rows × width]` sub-sequence ids (−1 outside policy spans and in padding).
    pub subseq: Vec<i32>,
    /// `[rows × width]` trajectory index (−1 in padding).
    pub traj: Vec<i32>,
    /// `[rows × width]` sampler log-probs, when known.
    pub sampler_logprobs: Option<Vec<f32>>,
}

impl PaddedBatch {
    /// Flattens trajectories straight into the padded layout.
    ///
    /// # Errors
    /// As [`flatten_packed`] and [`PackedBatch::to_padded`].
    pub fn from_trajectories(trajectories: &[Trajectory], pad_id: u32) -> Result<Self, BatchError> {
        flatten_packed(trajectories)?.to_padded(pad_id)
    }

    /// The real (non-padding) input ids of row `r`, or `None` out of range.
    pub fn row_inputs(&self, r: usize) -> Option<&[u32]> {
        let l = *self.lengths.get(r)?;
        Some(&self.input_ids[r * self.width..r * self.width + l])
    }
}
