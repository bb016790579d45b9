//! The CPU path: the same ops in f64 arithmetic over rayon (rows of the
//! logits in parallel). It is the reference of the GPU tests and the path
//! used when there is no GPU.

use flowrl_objectives::{TokenBatch, compute};
use half::{bf16, f16};
use rayon::prelude::*;

use crate::device::{AdamScalars, EntropyGrad, LossInputs, PolicyLoss, TokenLogprobs};
use crate::error::{KernelError, Result};
use crate::tensor::{CpuStorage, Element, Storage, Tensor};

/// A device tensor reaching the CPU path (callers check devices first).
#[cfg(feature = "cuda")]
fn not_host() -> KernelError {
    KernelError::DeviceMismatch {
        name: "tensor",
        expected: "cpu".into(),
        got: "cuda".into(),
    }
}

/// A tensor of an unexpected dtype reaching the CPU path (callers check first).
fn not_float(t: &Tensor) -> KernelError {
    KernelError::DType {
        name: "logits",
        expected: "f32, f16 or bf16",
        got: t.dtype,
    }
}

fn host(t: &Tensor) -> Result<&CpuStorage> {
    match &t.storage {
        Storage::Cpu(s) => Ok(s),
        #[cfg(feature = "cuda")]
        Storage::Cuda(_) => Err(not_host()),
    }
}

fn host_mut(t: &mut Tensor) -> Result<&mut CpuStorage> {
    match &mut t.storage {
        Storage::Cpu(s) => Ok(s),
        #[cfg(feature = "cuda")]
        Storage::Cuda(_) => Err(not_host()),
    }
}

/// The elements of a CPU tensor of type `T` (empty for another type or
/// device, which the callers rule out before).
fn slice<T: Element>(t: &Tensor) -> &[T] {
    host(t).ok().and_then(T::unwrap).unwrap_or(&[])
}

/// `(lse, entropy)` of one row, in f64 (max, then one pass of exp-sums).
fn row_stats<T: Element>(row: &[T], with_entropy: bool) -> (f64, f64) {
    let mut m = f64::NEG_INFINITY;
    for &x in row {
        m = m.max(x.to_f64());
    }
    if m == f64::NEG_INFINITY {
        return (f64::NEG_INFINITY, f64::NAN);
    }
    let (mut s, mut t) = (0.0f64, 0.0f64);
    for &x in row {
        let x = x.to_f64();
        let e = (x - m).exp();
        s += e;
        if with_entropy && e > 0.0 {
            t += e * x;
        }
    }
    let lse = m + s.ln();
    (lse, if with_entropy { lse - t / s } else { 0.0 })
}

fn logprobs_typed<T: Element>(
    x: &[T],
    y: &[i32],
    v: usize,
    with_entropy: bool,
) -> Result<(Vec<f32>, Vec<f32>, Vec<f32>)> {
    check_target_ids(y, v)?;
    let rows: Vec<(f32, f32, f32)> = x
        .par_chunks(v)
        .zip(y.par_iter())
        .map(|(row, &t)| {
            let (lse, h) = row_stats(row, with_entropy);
            let lp = row[t as usize].to_f64() - lse;
            (lp as f32, lse as f32, h as f32)
        })
        .collect();
    let lp = rows.iter().map(|r| r.0).collect();
    let lse = rows.iter().map(|r| r.1).collect();
    let h = rows.iter().map(|r| r.2).collect();
    Ok((lp, lse, h))
}

pub(crate) fn token_logprobs(
    logits: &Tensor,
    targets: &Tensor,
    n: usize,
    v: usize,
    with_entropy: bool,
) -> Result<TokenLogprobs> {
    let y = slice::<i32>(targets);
    let (lp, lse, h) = match host(logits)? {
        CpuStorage::F32(x) => logprobs_typed(x, y, v, with_entropy)?,
        CpuStorage::F16(x) => logprobs_typed(x, y, v, with_entropy)?,
        CpuStorage::BF16(x) => logprobs_typed(x, y, v, with_entropy)?,
        _ => return Err(not_float(logits)),
    };
    Ok(TokenLogprobs {
        logprobs: Tensor::from_cpu(CpuStorage::F32(lp), vec![n]),
        lse: Tensor::from_cpu(CpuStorage::F32(lse), vec![n]),
        entropy: with_entropy.then(|| Tensor::from_cpu(CpuStorage::F32(h), vec![n])),
    })
}

/// Per-row inputs of the backward.
struct RowGrad {
    y: usize,
    lse: f64,
    g: f64,
    h: f64,
    ent: f64,
}

#[inline]
fn grad_row<T: Element, O: Element>(row_in: &[T], out: &mut [O], r: &RowGrad) {
    if r.g == 0.0 && r.h == 0.0 {
        out.iter_mut().for_each(|o| *o = O::from_f64(0.0));
        return;
    }
    for (j, (o, &x)) in out.iter_mut().zip(row_in).enumerate() {
        let lpj = x.to_f64() - r.lse;
        let p = lpj.exp();
        let mut d = -r.g * p;
        if r.h != 0.0 && p > 0.0 {
            d -= r.h * p * (lpj + r.ent);
        }
        if j == r.y {
            d += r.g;
        }
        *o = O::from_f64(d);
    }
}

fn row_inputs(
    targets: &Tensor,
    lse: &Tensor,
    grad_lp: &Tensor,
    eg: Option<EntropyGrad<'_>>,
) -> Vec<RowGrad> {
    let y = slice::<i32>(targets);
    let l = slice::<f32>(lse);
    let g = slice::<f32>(grad_lp);
    let (e, h) = match eg {
        Some(eg) => (slice::<f32>(eg.entropy), slice::<f32>(eg.grad)),
        None => (&[][..], &[][..]),
    };
    (0..y.len())
        .map(|i| RowGrad {
            y: y[i].max(0) as usize,
            lse: f64::from(l[i]),
            g: f64::from(g[i]),
            h: h.get(i).map_or(0.0, |&v| f64::from(v)),
            ent: e.get(i).map_or(0.0, |&v| f64::from(v)),
        })
        .collect()
}

fn backward_typed<T: Element>(x: &[T], rows: &[RowGrad], v: usize) -> Vec<T> {
    let mut out = vec![T::from_f64(0.0); x.len()];
    out.par_chunks_mut(v)
        .zip(x.par_chunks(v))
        .zip(rows.par_iter())
        .for_each(|((o, xr), r)| grad_row(xr, o, r));
    out
}

/// [`KernelError::TargetOutOfRange`] for the first target id outside `[0, v)`.
pub(crate) fn check_targets(targets: &Tensor, v: usize) -> Result<()> {
    check_target_ids(slice::<i32>(targets), v)
}

/// [`check_targets`] over host ids.
fn check_target_ids(targets: &[i32], v: usize) -> Result<()> {
    if let Some((row, &t)) = targets
        .iter()
        .enumerate()
        .find(|&(_, &t)| t < 0 || t as usize >= v)
    {
        return Err(KernelError::TargetOutOfRange {
            row,
            target: i64::from(t),
            vocab: v,
        });
    }
    Ok(())
}

pub(crate) fn logits_backward(
    logits: &Tensor,
    targets: &Tensor,
    lse: &Tensor,
    grad_lp: &Tensor,
    eg: Option<EntropyGrad<'_>>,
    n: usize,
    v: usize,
) -> Result<Tensor> {
    let rows = row_inputs(targets, lse, grad_lp, eg);
    let s = match host(logits)? {
        CpuStorage::F32(x) => CpuStorage::F32(backward_typed(x, &rows, v)),
        CpuStorage::F16(x) => CpuStorage::F16(backward_typed::<f16>(x, &rows, v)),
        CpuStorage::BF16(x) => CpuStorage::BF16(backward_typed::<bf16>(x, &rows, v)),
        _ => return Err(not_float(logits)),
    };
    Ok(Tensor::from_cpu(s, vec![n, v]))
}

fn in_place_typed<T: Element>(x: &mut [T], rows: &[RowGrad], v: usize) {
    x.par_chunks_mut(v)
        .zip(rows.par_iter())
        .for_each(|(xr, r)| {
            let copy = xr.to_vec();
            grad_row(&copy, xr, r);
        });
}

pub(crate) fn logits_backward_in_place(
    logits: &mut Tensor,
    targets: &Tensor,
    lse: &Tensor,
    grad_lp: &Tensor,
    eg: Option<EntropyGrad<'_>>,
    _n: usize,
    v: usize,
) -> Result<()> {
    let rows = row_inputs(targets, lse, grad_lp, eg);
    match host_mut(logits)? {
        CpuStorage::F32(x) => in_place_typed(x, &rows, v),
        CpuStorage::F16(x) => in_place_typed(x, &rows, v),
        CpuStorage::BF16(x) => in_place_typed(x, &rows, v),
        _ => return Err(not_float(logits)),
    }
    Ok(())
}

pub(crate) fn policy_loss(
    inputs: &LossInputs<'_>,
    config: &flowrl_objectives::ObjectiveConfig,
) -> Result<PolicyLoss> {
    let mut b = TokenBatch::new(
        slice::<f32>(inputs.logprobs),
        slice::<f32>(inputs.old_logprobs),
        slice::<u8>(inputs.mask),
        slice::<i32>(inputs.subseq),
        slice::<i32>(inputs.traj),
        slice::<f32>(inputs.advantages),
    );
    b.ref_logprobs = inputs.ref_logprobs.map(slice::<f32>);
    b.entropy = inputs.entropy.map(slice::<f32>);
    let out = compute(&b, config)?;
    let n = out.grad.len();
    Ok(PolicyLoss {
        loss: out.loss,
        grad: Tensor::from_cpu(CpuStorage::F32(out.grad), vec![n]),
        stats: out.stats,
    })
}

pub(crate) fn mask_scale(mask: &Tensor, c: f64) -> Result<Tensor> {
    let m = slice::<u8>(mask);
    let out: Vec<f32> = m
        .iter()
        .map(|&b| if b != 0 { c as f32 } else { 0.0 })
        .collect();
    let n = out.len();
    Ok(Tensor::from_cpu(CpuStorage::F32(out), vec![n]))
}

/// The f32 AdamW update of flowrl-optim, element by element in the same
/// order of operations (so results are bit-identical).
pub(crate) fn adamw_step(
    param: &mut Tensor,
    grad: &Tensor,
    m: &mut Tensor,
    v: &mut Tensor,
    s: &AdamScalars,
) -> Result<()> {
    let g = slice::<f32>(grad);
    let mut mv = std::mem::replace(host_mut(m)?, CpuStorage::F32(Vec::new()));
    let mut vv = std::mem::replace(host_mut(v)?, CpuStorage::F32(Vec::new()));
    if let (Some(pp), Some(mm), Some(vvv)) = (
        f32::unwrap_mut(host_mut(param)?),
        f32::unwrap_mut(&mut mv),
        f32::unwrap_mut(&mut vv),
    ) {
        flowrl_optim::adamw_update(pp, g, mm, vvv, s);
    }
    *host_mut(m)? = mv;
    *host_mut(v)? = vv;
    Ok(())
}

fn to_f64s(t: &Tensor) -> Result<Vec<f64>> {
    Ok(match host(t)? {
        CpuStorage::F32(x) => x.iter().map(|&a| f64::from(a)).collect(),
        CpuStorage::F16(x) => x.iter().map(|a| a.to_f64()).collect(),
        CpuStorage::BF16(x) => x.iter().map(|a| a.to_f64()).collect(),
        CpuStorage::I32(x) => x.iter().map(|&a| f64::from(a)).collect(),
        CpuStorage::U8(x) => x.iter().map(|&a| f64::from(a)).collect(),
    })
}

fn from_f64s(v: &[f64], dtype: crate::tensor::DType, shape: Vec<usize>) -> Tensor {
    use crate::tensor::DType;
    let s = match dtype {
        DType::F16 => CpuStorage::F16(v.iter().map(|&a| f16::from_f64(a)).collect()),
        DType::BF16 => CpuStorage::BF16(v.iter().map(|&a| bf16::from_f64(a)).collect()),
        _ => CpuStorage::F32(v.iter().map(|&a| a as f32).collect()),
    };
    Tensor::from_cpu(s, shape)
}

/// Rows `r0..r1` of a row-major tensor, copied.
pub(crate) fn slice_rows(t: &Tensor, r0: usize, r1: usize) -> Result<Tensor> {
    let row: usize = t.shape[1..].iter().product();
    let (a, b) = (r0 * row, r1 * row);
    let mut shape = t.shape.clone();
    shape[0] = r1 - r0;
    let s = match host(t)? {
        CpuStorage::F32(x) => CpuStorage::F32(x[a..b].to_vec()),
        CpuStorage::F16(x) => CpuStorage::F16(x[a..b].to_vec()),
        CpuStorage::BF16(x) => CpuStorage::BF16(x[a..b].to_vec()),
        CpuStorage::I32(x) => CpuStorage::I32(x[a..b].to_vec()),
        CpuStorage::U8(x) => CpuStorage::U8(x[a..b].to_vec()),
    };
    Ok(Tensor::from_cpu(s, shape))
}

/// `parts` stacked along the first dimension (same dtype and row shape).
pub(crate) fn concat_rows(parts: &[Tensor]) -> Tensor {
    let mut shape = parts
        .first()
        .map(|p| p.shape.clone())
        .unwrap_or_else(|| vec![0]);
    shape[0] = parts.iter().map(|p| p.shape[0]).sum();
    fn cat<T: Element>(parts: &[Tensor]) -> CpuStorage {
        let mut v = Vec::new();
        for p in parts {
            v.extend_from_slice(slice::<T>(p));
        }
        T::wrap(v)
    }
    let s = match parts.first().and_then(|p| host(p).ok()) {
        Some(CpuStorage::F16(_)) => cat::<f16>(parts),
        Some(CpuStorage::BF16(_)) => cat::<bf16>(parts),
        Some(CpuStorage::I32(_)) => cat::<i32>(parts),
        Some(CpuStorage::U8(_)) => cat::<u8>(parts),
        _ => cat::<f32>(parts),
    };
    Tensor::from_cpu(s, shape)
}

/// `c [m, n] = beta·c + a [m, k] · b` with `b` given as `[n, k]` when
/// `b_transposed`, else `[k, n]`; all row-major f64.
#[allow(clippy::too_many_arguments)]
fn dgemm(
    m: usize,
    k: usize,
    n: usize,
    a: &[f64],
    b: &[f64],
    b_transposed: bool,
    beta: f64,
    c: &mut [f64],
) {
    let (rsb, csb) = if b_transposed {
        (1, k as isize)
    } else {
        (n as isize, 1)
    };
    // SAFETY: the slices hold m·k, k·n and m·n elements with these strides.
    unsafe {
        matrixmultiply::dgemm(
            m,
            k,
            n,
            1.0,
            a.as_ptr(),
            k as isize,
            1,
            b.as_ptr(),
            rsb,
            csb,
            beta,
            c.as_mut_ptr(),
            n as isize,
            1,
        );
    }
}

/// `hidden [C, d] · weightᵀ` in f64, rounded to the hidden dtype.
pub(crate) fn linear_logits(h: &Tensor, w: &Tensor) -> Result<Tensor> {
    let (c, d, v) = (h.shape[0], h.shape[1], w.shape[0]);
    let (hf, wf) = (to_f64s(h)?, to_f64s(w)?);
    let mut out = vec![0.0; c * v];
    dgemm(c, d, v, &hf, &wf, true, 0.0, &mut out);
    Ok(from_f64s(&out, h.dtype, vec![c, v]))
}

/// `dhidden = dlogits · weight` (hidden dtype); `dweight (f32) (+)= dlogitsᵀ · hidden`.
pub(crate) fn linear_backward(
    dl: &Tensor,
    h: &Tensor,
    w: &Tensor,
    dw: &mut Tensor,
    accumulate: bool,
) -> Result<Tensor> {
    let (c, d, v) = (h.shape[0], h.shape[1], w.shape[0]);
    let (dlf, hf, wf) = (to_f64s(dl)?, to_f64s(h)?, to_f64s(w)?);
    let mut dh = vec![0.0; c * d];
    dgemm(c, v, d, &dlf, &wf, false, 0.0, &mut dh);
    // dlᵀ [V, C] as a row-major copy.
    let mut dlt = vec![0.0; v * c];
    for i in 0..c {
        for j in 0..v {
            dlt[j * c + i] = dlf[i * v + j];
        }
    }
    let mut dwf = if accumulate {
        to_f64s(dw)?
    } else {
        vec![0.0; v * d]
    };
    dgemm(v, c, d, &dlt, &hf, false, 1.0, &mut dwf);
    if let Some(o) = f32::unwrap_mut(host_mut(dw)?) {
        for (o, &a) in o.iter_mut().zip(&dwf) {
            *o = a as f32;
        }
    }
    Ok(from_f64s(&dh, h.dtype, vec![c, d]))
}
