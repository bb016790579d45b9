//! Prints a markdown table of the kernels' speed: on the GPU (when there is
//! one) at N = 16,384 tokens with V = 151,936 and V = 32,000 (bf16 logits),
//! against the device copy bandwidth measured in the same run; on the CPU
//! path at a smaller shape. Times are medians after a warm-up (CUDA events
//! on the GPU), inputs are random, never zeros.
//!
//! `flowrl-kernels-bench [--reps R] [--n N] [--cpu-only]` (`--help` says more;
//! an unknown or malformed argument is an error, exit status 2).

use std::time::Instant;

use flowrl_kernels::{AdamWStep, Device, LossInputs, Tensor};
use flowrl_objectives::Algorithm;
use flowrl_optim::AdamWConfig;
use half::bf16;

struct Row {
    what: String,
    shape: String,
    ms: f64,
    bytes: f64,
    floor_ms: Option<f64>,
    extra: Option<usize>,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// Cheap deterministic pseudo-random numbers (xorshift), never all zeros.
struct Rng(u64);
impl Rng {
    fn next_f32(&mut self) -> f32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        ((self.0 >> 40) as f32 / (1u64 << 24) as f32) * 8.0 - 4.0
    }
}

/// A GSsPO-like token batch of `n` positions: trajectories of 512 tokens,
/// an environment span of 32 tokens then policy turns of 96.
fn layout(n: usize) -> (Vec<u8>, Vec<i32>, Vec<i32>, usize) {
    let (mut mask, mut sub, mut traj) = (vec![0u8; n], vec![-1i32; n], vec![0i32; n]);
    let mut next = 0;
    for t in 0..n {
        traj[t] = (t / 512) as i32;
        let p = t % 512;
        let in_turn = p >= 32 && (p - 32) % 128 < 96;
        if in_turn {
            mask[t] = 1;
            sub[t] = (t / 512 * 4 + (p - 32) / 128) as i32;
            next = next.max(sub[t] as usize + 1);
        }
    }
    (mask, sub, traj, n.div_ceil(512))
}

/// The policy-loss inputs of a [`layout`] batch of `n` positions, on `d`:
/// log-probs near −1, old (= reference) log-probs equal to them or, with
/// `jitter`, perturbed by up to 0.01, and advantages in [0, 0.25).
struct LossTensors {
    lp: Tensor,
    old: Tensor,
    adv: Tensor,
    mask: Tensor,
    sub: Tensor,
    traj: Tensor,
}

impl LossTensors {
    fn new(d: &Device, rng: &mut Rng, n: usize, jitter: bool) -> Self {
        let (mask, sub, traj, nb) = layout(n);
        let lp: Vec<f32> = (0..n).map(|_| -1.0 + 0.1 * rng.next_f32()).collect();
        let old: Vec<f32> = if jitter {
            lp.iter().map(|&a| a + 0.01 * rng.next_f32()).collect()
        } else {
            lp.clone()
        };
        let adv: Vec<f32> = (0..nb).map(|_| rng.next_f32() * 0.25).collect();
        let t = |v: &[f32]| d.tensor(v, &[v.len()]).expect("tensor");
        LossTensors {
            lp: t(&lp),
            old: t(&old),
            adv: t(&adv),
            mask: d.tensor(&mask, &[n]).expect("mask"),
            sub: d.tensor(&sub, &[n]).expect("subseq"),
            traj: d.tensor(&traj, &[n]).expect("traj"),
        }
    }

    /// The inputs, with the old log-probs as the KL reference.
    fn inputs(&self) -> LossInputs<'_> {
        LossInputs {
            logprobs: &self.lp,
            old_logprobs: &self.old,
            ref_logprobs: Some(&self.old),
            entropy: None,
            mask: &self.mask,
            subseq: &self.sub,
            traj: &self.traj,
            advantages: &self.adv,
        }
    }
}

fn table(title: &str, rows: &[Row], copy_gbs: Option<f64>) {
    println!("\n### {title}\n");
    if let Some(c) = copy_gbs {
        println!("copy bandwidth measured in this run: {c:.0} GB/s (read + write)\n");
    }
    println!("| op | shape | time (ms) | effective GB/s | % of copy | vs floor | extra memory |");
    println!("| --- | --- | ---: | ---: | ---: | ---: | ---: |");
    for r in rows {
        let gbs = r.bytes / (r.ms * 1e-3) / 1e9;
        let pct = copy_gbs.map_or("—".into(), |c| format!("{:.0}%", 100.0 * gbs / c));
        let floor = r
            .floor_ms
            .map_or("—".into(), |f| format!("{:.2}×", r.ms / f));
        let extra = r
            .extra
            .map_or("—".into(), |b| format!("{:.1} MB", b as f64 / 1e6));
        println!(
            "| {} | {} | {:.3} | {:.2} | {} | {} | {} |",
            r.what, r.shape, r.ms, gbs, pct, floor, extra
        );
    }
}

fn cpu_rows(reps: usize) -> Vec<Row> {
    let d = Device::Cpu;
    let (n, v) = (256usize, 32_000usize);
    let mut rng = Rng(0x9e3779b97f4a7c15);
    let x: Vec<bf16> = (0..n * v).map(|_| bf16::from_f32(rng.next_f32())).collect();
    let y: Vec<i32> = (0..n).map(|i| (i * 7919 % v) as i32).collect();
    let xt = d.tensor(&x, &[n, v]).expect("logits");
    let yt = d.tensor(&y, &[n]).expect("targets");
    let bytes = (n * v * 2) as f64;
    let time = |f: &mut dyn FnMut()| {
        f();
        median(
            (0..reps)
                .map(|_| {
                    let t = Instant::now();
                    f();
                    t.elapsed().as_secs_f64() * 1e3
                })
                .collect(),
        )
    };
    let shape = format!("{n}×{v} bf16");
    let mut rows = Vec::new();
    let fwd_ms = time(&mut || {
        d.token_logprobs(&xt, &yt, false).expect("fwd");
    });
    rows.push(Row {
        what: "log-prob fwd".into(),
        shape: shape.clone(),
        ms: fwd_ms,
        bytes,
        floor_ms: None,
        extra: None,
    });
    let fwd = d.token_logprobs(&xt, &yt, true).expect("fwd");
    let ms = time(&mut || {
        d.token_logprobs(&xt, &yt, true).expect("fwd");
    });
    rows.push(Row {
        what: "log-prob + entropy fwd".into(),
        shape: shape.clone(),
        ms,
        bytes,
        floor_ms: None,
        extra: None,
    });
    let g: Vec<f32> = (0..n).map(|i| 0.01 * (i as f32 - 100.0)).collect();
    let gt = d.tensor(&g, &[n]).expect("g");
    let ms = time(&mut || {
        d.logits_backward(&xt, &yt, &fwd.lse, &gt, None)
            .expect("bwd");
    });
    rows.push(Row {
        what: "logits backward".into(),
        shape: shape.clone(),
        ms,
        bytes: 2.0 * bytes,
        floor_ms: None,
        extra: None,
    });
    // Policy loss alone at 1 M tokens.
    let nt = 1 << 20;
    let loss_tensors = LossTensors::new(&d, &mut rng, nt, true);
    let inputs = loss_tensors.inputs();
    let cfg = Algorithm::Gsspo.default_config().objective;
    let ms = time(&mut || {
        d.policy_loss(&inputs, &cfg).expect("loss");
    });
    rows.push(Row {
        what: "GSsPO policy loss + g_t (k3 KL)".into(),
        shape: format!("{nt} tokens"),
        ms,
        bytes: (nt * (4 * 4 + 1 + 4 + 4)) as f64,
        floor_ms: None,
        extra: None,
    });
    // Fused-linear at a small shape (f64 GEMMs on the CPU path).
    let (nl, dl, vl) = (512usize, 256usize, 8192usize);
    let hl: Vec<f32> = (0..nl * dl).map(|_| 0.25 * rng.next_f32()).collect();
    let wl: Vec<f32> = (0..vl * dl).map(|_| 0.01 * rng.next_f32()).collect();
    let yl: Vec<i32> = (0..nl).map(|i| ((i * 7919) % vl) as i32).collect();
    let (ht, wt, ylt) = (
        d.tensor(&hl, &[nl, dl]).expect("h"),
        d.tensor(&wl, &[vl, dl]).expect("w"),
        d.tensor(&yl, &[nl]).expect("y"),
    );
    let loss_tensors_l = LossTensors::new(&d, &mut rng, nl, false);
    let inputs_l = loss_tensors_l.inputs();
    let ms = time(&mut || {
        d.fused_linear_policy_loss(&ht, &wt, &ylt, &inputs_l, &cfg, 128)
            .expect("fused linear");
    });
    rows.push(Row {
        what: "fused-linear GSsPO fwd + bwd (4 GEMMs)".into(),
        shape: format!("N {nl}, V {vl}, d {dl} f32"),
        ms,
        bytes: ((nl * dl + vl * dl) * 4) as f64,
        floor_ms: None,
        extra: None,
    });
    let p = 1 << 22;
    let w: Vec<f32> = (0..p).map(|_| rng.next_f32()).collect();
    let mut pt = d.tensor(&w, &[p]).expect("p");
    let gr = d.tensor(&w, &[p]).expect("g");
    let mut m = d.tensor(&vec![0.0f32; p], &[p]).expect("m");
    let mut vv = d.tensor(&vec![0.0f32; p], &[p]).expect("v");
    let s = AdamWStep::from_config(&AdamWConfig::default(), 1e-4, 1);
    let ms = time(&mut || {
        d.adamw_step(&mut pt, &gr, &mut m, &mut vv, &s)
            .expect("adamw");
    });
    rows.push(Row {
        what: "AdamW".into(),
        shape: format!("{p} params f32"),
        ms,
        bytes: (p * 28) as f64,
        floor_ms: None,
        extra: None,
    });
    rows
}

#[cfg(feature = "cuda")]
fn gpu_rows(reps: usize, n: usize) -> Option<(Vec<Row>, f64, String)> {
    use cudarc::driver::sys::CUevent_flags;
    let d = match Device::cuda(0) {
        Ok(d) => d,
        Err(e) => {
            println!("\nno CUDA device ({e}): GPU rows skipped");
            return None;
        }
    };
    let Device::Cuda(cd) = &d else { return None };
    if let Err(e) = cd.warm_up() {
        println!("\nkernels did not compile/load ({e}): GPU rows skipped");
        return None;
    }
    let stream = cd.stream().clone();
    let ctx = cd.context().clone();
    let timed = |f: &mut dyn FnMut()| -> f64 {
        for _ in 0..3 {
            f();
        }
        let mut v = Vec::with_capacity(reps);
        for _ in 0..reps {
            let a = ctx
                .new_event(Some(CUevent_flags::CU_EVENT_DEFAULT))
                .expect("event");
            let b = ctx
                .new_event(Some(CUevent_flags::CU_EVENT_DEFAULT))
                .expect("event");
            a.record(&stream).expect("record");
            f();
            b.record(&stream).expect("record");
            b.synchronize().expect("sync");
            v.push(f64::from(a.elapsed_ms(&b).expect("elapsed")));
        }
        median(v)
    };
    let mut rows = Vec::new();
    let mut copy_best: f64 = 0.0;
    let mut rng = Rng(0x2545f4914f6cdd1d);
    for &v in &[151_936usize, 32_000] {
        let elems = n * v;
        let bytes = (elems * 2) as f64;
        let shape = format!("{n}×{v} bf16");
        // Random logits, uploaded in chunks from one random host block.
        let mut logits = cd.alloc_bytes(elems * 2).expect("alloc logits");
        let block: Vec<u8> = {
            let h: Vec<bf16> = (0..(1 << 24))
                .map(|_| bf16::from_f32(rng.next_f32()))
                .collect();
            h.iter().flat_map(|b| b.to_bits().to_le_bytes()).collect()
        };
        let mut off = 0;
        while off < elems * 2 {
            let len = block.len().min(elems * 2 - off);
            let mut view = logits.slice_mut(off..off + len);
            stream
                .memcpy_htod(&block[..len], &mut view)
                .expect("upload");
            off += len;
        }
        let mut other = cd.alloc_bytes(elems * 2).expect("alloc copy");
        let ms = timed(&mut || {
            stream.memcpy_dtod(&logits, &mut other).expect("copy");
        });
        let memcpy_gbs = 2.0 * bytes / (ms * 1e-3) / 1e9;
        rows.push(Row {
            what: "device copy (memcpy D2D)".into(),
            shape: shape.clone(),
            ms,
            bytes: 2.0 * bytes,
            floor_ms: None,
            extra: None,
        });
        let ms = timed(&mut || {
            cd.copy_kernel(&logits, &mut other).expect("copy kernel");
        });
        rows.push(Row {
            what: "device copy (copy kernel)".into(),
            shape: shape.clone(),
            ms,
            bytes: 2.0 * bytes,
            floor_ms: None,
            extra: None,
        });
        // The copy bandwidth of this shape: the better of the two copies
        // (bytes read + bytes written per second).
        let copy_gbs = memcpy_gbs.max(2.0 * bytes / (ms * 1e-3) / 1e9);
        copy_best = copy_best.max(copy_gbs);
        drop(other);
        // Reinterpret the bytes as bf16 logits.
        let logits_bf16: cudarc::driver::CudaSlice<bf16> =
            unsafe { logits.transmute::<bf16>(elems) }
                .map(|v| stream.clone_dtod(&v).expect("clone"))
                .expect("view");
        drop(logits);
        let mut xt = flowrl_kernels::Tensor::from_cuda_slice(logits_bf16, &[n, v]).expect("tensor");
        let y: Vec<i32> = (0..n).map(|i| ((i * 7919) % v) as i32).collect();
        let yt = d.tensor(&y, &[n]).expect("targets");
        // Floor of one read of the logits: their size at the copy bandwidth
        // (as in performance.md: 4.98 GB at 3.0 TB/s = 1.66 ms).
        let read_floor = bytes / (copy_gbs * 1e9) * 1e3;
        cd.reset_allocated();
        let ms = timed(&mut || {
            d.token_logprobs(&xt, &yt, false).expect("fwd");
        });
        let extra = cd.allocated_bytes() / (reps + 3);
        rows.push(Row {
            what: "log-prob fwd".into(),
            shape: shape.clone(),
            ms,
            bytes,
            floor_ms: Some(read_floor),
            extra: Some(extra),
        });
        let ms = timed(&mut || {
            d.token_logprobs(&xt, &yt, true).expect("fwd");
        });
        rows.push(Row {
            what: "log-prob + entropy fwd".into(),
            shape: shape.clone(),
            ms,
            bytes,
            floor_ms: Some(read_floor),
            extra: None,
        });
        let fwd = d.token_logprobs(&xt, &yt, false).expect("fwd");
        let g: Vec<f32> = (0..n).map(|i| 1e-3 * ((i % 17) as f32 - 8.0)).collect();
        let gt = d.tensor(&g, &[n]).expect("g");
        let ms = timed(&mut || {
            d.logits_backward_in_place(&mut xt, &yt, &fwd.lse, &gt, None)
                .expect("bwd");
        });
        rows.push(Row {
            what: "logits backward (in place)".into(),
            shape: shape.clone(),
            ms,
            bytes: 2.0 * bytes,
            floor_ms: Some(2.0 * read_floor),
            extra: None,
        });
        // The fused GSsPO loss: forward, reduction, backward in place.
        let loss_tensors = LossTensors::new(&d, &mut rng, n, false);
        let inputs = loss_tensors.inputs();
        let cfg = Algorithm::Gsspo.default_config().objective;
        cd.reset_allocated();
        let ms = timed(&mut || {
            d.fused_policy_loss(&mut xt, &yt, &inputs, &cfg, true)
                .expect("fused");
        });
        let extra = cd.allocated_bytes() / (reps + 3);
        rows.push(Row {
            what: "GSsPO loss fwd + bwd (in place)".into(),
            shape: shape.clone(),
            ms,
            bytes: 3.0 * bytes,
            floor_ms: Some(3.0 * read_floor),
            extra: Some(extra),
        });
    }
    let p = 1usize << 27;
    let w: Vec<f32> = (0..p).map(|i| ((i % 1000) as f32 - 500.0) * 1e-3).collect();
    let mut pt = d.tensor(&w, &[p]).expect("p");
    let gr = d.tensor(&w, &[p]).expect("g");
    let mut m = d.tensor(&w, &[p]).expect("m");
    let mut vv = d
        .tensor(&w.iter().map(|a| a * a).collect::<Vec<_>>(), &[p])
        .expect("v");
    let s = AdamWStep::from_config(&AdamWConfig::default(), 1e-4, 10);
    let ms = timed(&mut || {
        d.adamw_step(&mut pt, &gr, &mut m, &mut vv, &s)
            .expect("adamw");
    });
    rows.push(Row {
        what: "AdamW".into(),
        shape: format!("{p} params f32"),
        ms,
        bytes: (p * 28) as f64,
        floor_ms: Some((p * 28) as f64 / (copy_best * 1e9) * 1e3),
        extra: Some(0),
    });
    Some((rows, copy_best, cd.name()))
}

/// A bf16 device tensor of random values in [-scale, scale), uploaded in
/// chunks from one random host block.
#[cfg(feature = "cuda")]
fn random_bf16(
    cd: &flowrl_kernels::cuda::CudaDevice,
    rng: &mut Rng,
    shape: &[usize],
    scale: f32,
) -> flowrl_kernels::Tensor {
    let elems: usize = shape.iter().product();
    let stream = cd.stream().clone();
    let mut buf = cd.alloc_bytes(elems * 2).expect("alloc");
    let block: Vec<u8> = (0..(1usize << 22))
        .flat_map(|_| {
            bf16::from_f32(rng.next_f32() * scale / 4.0)
                .to_bits()
                .to_le_bytes()
        })
        .collect();
    let mut off = 0;
    while off < elems * 2 {
        let len = block.len().min(elems * 2 - off);
        let mut view = buf.slice_mut(off..off + len);
        stream
            .memcpy_htod(&block[..len], &mut view)
            .expect("upload");
        off += len;
    }
    // SAFETY: the bytes are `elems` bf16 values.
    let typed = unsafe { buf.transmute::<bf16>(elems) }
        .map(|v| stream.clone_dtod(&v).expect("clone"))
        .expect("view");
    flowrl_kernels::Tensor::from_cuda_slice(typed, shape).expect("tensor")
}

/// One fused-linear row: name and shape, ms, FLOPs, ratio to the three
/// GEMMs, extra bytes.
#[cfg(feature = "cuda")]
type LinearRow = (String, f64, f64, Option<f64>, Option<usize>);

/// Fused-linear rows: the chunked loss against the three cuBLAS GEMMs alone.
#[cfg(feature = "cuda")]
fn linear_rows(reps: usize, n: usize) -> Vec<LinearRow> {
    use cudarc::driver::sys::CUevent_flags;
    let Ok(d) = Device::cuda(0) else {
        return Vec::new();
    };
    let Device::Cuda(cd) = &d else {
        return Vec::new();
    };
    let stream = cd.stream().clone();
    let ctx = cd.context().clone();
    let timed = |f: &mut dyn FnMut()| -> f64 {
        f();
        let mut v = Vec::with_capacity(reps);
        for _ in 0..reps {
            let a = ctx
                .new_event(Some(CUevent_flags::CU_EVENT_DEFAULT))
                .expect("event");
            let b = ctx
                .new_event(Some(CUevent_flags::CU_EVENT_DEFAULT))
                .expect("event");
            a.record(&stream).expect("record");
            f();
            b.record(&stream).expect("record");
            b.synchronize().expect("sync");
            v.push(f64::from(a.elapsed_ms(&b).expect("elapsed")));
        }
        median(v)
    };
    let mut rng = Rng(0x853c49e6748fea9b);
    let v = 151_936usize;
    let mut rows = Vec::new();
    for &dim in &[1536usize, 3584] {
        let h = random_bf16(cd, &mut rng, &[n, dim], 1.0);
        let w = random_bf16(cd, &mut rng, &[v, dim], 0.05);
        let y: Vec<i32> = (0..n).map(|i| ((i * 7919) % v) as i32).collect();
        let yt = d.tensor(&y, &[n]).expect("targets");
        let flop = 2.0 * n as f64 * v as f64 * dim as f64;
        let shape = format!("N {n}, V {v}, d {dim} bf16");
        let gemm_fwd = timed(&mut || {
            d.linear_logits(&h, &w).expect("gemm");
        });
        let logits = d.linear_logits(&h, &w).expect("gemm");
        let mut dw = d.tensor(&vec![0.0f32; v * dim], &[v, dim]).expect("dw");
        let gemm_bwd = timed(&mut || {
            d.linear_backward(&logits, &h, &w, &mut dw, false)
                .expect("gemm");
        });
        drop(logits);
        let three = gemm_fwd + gemm_bwd;
        rows.push((
            format!("cuBLAS logits GEMM | {shape}"),
            gemm_fwd,
            flop,
            None,
            None,
        ));
        rows.push((
            format!("cuBLAS dX + dW GEMMs | {shape}"),
            gemm_bwd,
            2.0 * flop,
            None,
            None,
        ));
        let loss_tensors = LossTensors::new(&d, &mut rng, n, false);
        let inputs = loss_tensors.inputs();
        let cfg = Algorithm::Gsspo.default_config().objective;
        cd.reset_allocated();
        let ms = timed(&mut || {
            d.fused_linear_policy_loss(&h, &w, &yt, &inputs, &cfg, 0)
                .expect("fused linear");
        });
        // Outputs (dhidden, dweight f32) are not extra memory.
        let outputs = n * dim * 2 + v * dim * 4;
        let extra = (cd.allocated_bytes() / (reps + 1)).saturating_sub(outputs);
        rows.push((
            format!("fused-linear GSsPO fwd + bwd | {shape}"),
            ms,
            4.0 * flop,
            Some(ms / three),
            Some(extra),
        ));
    }
    rows
}

const USAGE: &str = "usage: flowrl-kernels-bench [--reps R] [--n N] [--cpu-only]
  --reps R     timed repetitions per row (default 20; the CPU and fused-linear rows use at most 10)
  --n N        tokens of the GPU rows, at least 64 (default 16384)
  --cpu-only   skip the GPU rows";

/// The command line: `(reps, n, cpu_only)`, or a message for an unknown flag,
/// a missing or malformed number, or `--n` below 64.
fn parse_args(args: &[String]) -> Result<(usize, usize, bool), String> {
    let (mut reps, mut n, mut cpu_only) = (20usize, 16_384usize, false);
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut number = |flag: &str| -> Result<usize, String> {
            let v = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
            v.parse::<usize>()
                .map_err(|_| format!("{flag}: not a count: {v:?}"))
        };
        match a.as_str() {
            "--reps" => reps = number("--reps")?.max(1),
            "--n" => n = number("--n")?,
            "--cpu-only" => cpu_only = true,
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    if n < 64 {
        // The loss layout puts 32 environment tokens before each policy turn.
        return Err(format!("--n must be at least 64 (got {n})"));
    }
    Ok((reps, n, cpu_only))
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "-h" || a == "--help") {
        println!("{USAGE}");
        return;
    }
    let (reps, n, cpu_only) = match parse_args(&args) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("flowrl-kernels-bench: {e}\n{USAGE}");
            std::process::exit(2);
        }
    };
    println!("# flowrl-kernels benchmark (median of {reps} repetitions after warm-up)");
    #[cfg(feature = "cuda")]
    if !cpu_only && let Some((rows, copy, name)) = gpu_rows(reps, n) {
        table(&format!("GPU: {name}"), &rows, Some(copy));
        let lin = linear_rows(reps.min(10), n);
        println!("\n### GPU: fused-linear (hidden × LM head)\n");
        println!(
            "extra memory excludes the outputs dhidden (bf16) and dweight (f32); bytes allocated per call, averaged\n"
        );
        println!("| op | shape | time (ms) | TFLOP/s | vs the three GEMMs | extra memory |");
        println!("| --- | --- | ---: | ---: | ---: | ---: |");
        for (what, ms, flop, ratio, extra) in lin {
            let r = ratio.map_or("—".into(), |r| format!("{r:.2}×"));
            let e = extra.map_or("—".into(), |b| format!("{:.1} MB", b as f64 / 1e6));
            println!(
                "| {what} | {ms:.3} | {:.0} | {r} | {e} |",
                flop / (ms * 1e-3) / 1e12
            );
        }
    }
    #[cfg(not(feature = "cuda"))]
    let _ = (cpu_only, n);
    let threads = rayon::current_num_threads();
    table(
        &format!("CPU path ({threads} threads)"),
        &cpu_rows(reps.min(10)),
        None,
    );
}

#[cfg(test)]
mod tests {
    use super::parse_args;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn arguments_are_parsed_strictly() {
        assert_eq!(parse_args(&args(&[])), Ok((20, 16_384, false)));
        assert_eq!(
            parse_args(&args(&["--n", "64", "--cpu-only", "--reps", "0"])),
            Ok((1, 64, true))
        );
        for bad in [
            &["--n", "63"][..],
            &["--n"],
            &["--reps", "x"],
            &["--repz", "3"],
            &["16384"],
        ] {
            assert!(parse_args(&args(bad)).is_err(), "{bad:?}");
        }
    }
}
