#!/usr/bin/env python3
"""PyTorch baselines of the flowrl-kernels benchmark (eager and torch.compile).

The same work as `flowrl-kernels-bench` on the GPU, at N = 16,384 and
V in {151,936, 32,000} with bf16 logits: token log-prob (log_softmax in f32 +
gather, and cross_entropy), and a GSsPO-like loss (log-prob, sub-sequence
mean log-ratio, exp, clip, advantage) forward + backward through autograd.
Prints a markdown table with the copy bandwidth measured in the same run.
Times: CUDA events after warm-up, median of many repetitions, random inputs.

    python3 scripts/bench_kernels_torch.py [--reps 30] [--n 16384] [--device cuda]
                                           [--vocab 151936,32000]

`--device cpu` runs the same code on the CPU (wall-clock times, extra memory
not measured), so the script itself can be checked on a machine without a GPU,
e.g. `--device cpu --n 64 --reps 2`.
"""
import argparse
import statistics
import time

import torch
import torch.nn.functional as F


def timed(fn, reps, dev):
    for _ in range(3):
        fn()
    if dev.type != "cuda":
        ts = []
        for _ in range(reps):
            t0 = time.perf_counter()
            fn()
            ts.append((time.perf_counter() - t0) * 1e3)
        return statistics.median(ts)
    torch.cuda.synchronize()
    ts = []
    for _ in range(reps):
        a = torch.cuda.Event(enable_timing=True)
        b = torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        b.synchronize()
        ts.append(a.elapsed_time(b))
    return statistics.median(ts)


def extra_memory(fn, dev):
    """Peak bytes allocated by `fn` above what was live before (CUDA only;
    None elsewhere)."""
    if dev.type != "cuda":
        return None
    torch.cuda.synchronize()
    base = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    fn()
    torch.cuda.synchronize()
    return torch.cuda.max_memory_allocated() - base


def lp_log_softmax(x, y):
    return torch.log_softmax(x.float(), dim=-1).gather(1, y[:, None])[:, 0]


def lp_cross_entropy(x, y):
    return -F.cross_entropy(x, y, reduction="none")


def gsspo_loss(x, y, old, sub, nsub, adv_sub, clip=0.2):
    lp = -F.cross_entropy(x.float(), y, reduction="none")
    mask = sub >= 0
    idx = sub.clamp(min=0)
    delta = torch.where(mask, lp - old, torch.zeros_like(lp))
    s_sum = torch.zeros(nsub, device=x.device).index_add(0, idx, delta)
    cnt = torch.zeros(nsub, device=x.device).index_add(0, idx, mask.float())
    log_s = (s_sum / cnt.clamp(min=1)).clamp(max=10.0)
    r = torch.exp(log_s)
    l1 = -adv_sub * r
    l2 = -adv_sub * r.clamp(1 - clip, 1 + clip)
    return torch.maximum(l1, l2).mean()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=30)
    ap.add_argument("--n", type=int, default=16384)
    ap.add_argument("--device", default="cuda", help="cuda (default) or cpu")
    ap.add_argument("--vocab", default="151936,32000",
                    help="comma-separated vocabulary sizes, one table each")
    args = ap.parse_args()
    dev = torch.device(args.device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("no CUDA device visible to PyTorch (use --device cpu to check the script)")
    n = args.n
    if n < 64:
        raise SystemExit("--n must be at least 64 (the loss layout needs policy tokens)")
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else "the CPU"
    print(f"# PyTorch {torch.__version__} baselines on {name} (median of {args.reps})")
    try:
        vocabs = [int(v) for v in args.vocab.split(",")]
    except ValueError:
        raise SystemExit(f"--vocab: not a list of sizes: {args.vocab!r}")
    for v in vocabs:
        x = (torch.rand(n, v, device=dev, dtype=torch.float32) * 8 - 4).to(torch.bfloat16)
        y = torch.randint(0, v, (n,), device=dev)
        nbytes = x.numel() * 2
        other = torch.empty_like(x)
        copy_ms = timed(lambda: other.copy_(x), args.reps, dev)
        copy_gbs = 2 * nbytes / (copy_ms * 1e-3) / 1e9
        del other
        rows = [("device copy (copy_)", copy_ms, 2 * nbytes, 0)]
        f_ls = lambda: lp_log_softmax(x, y)
        f_ce = lambda: lp_cross_entropy(x, y)
        c_ls = torch.compile(lp_log_softmax)
        c_ce = torch.compile(lp_cross_entropy)
        rows.append(("eager log_softmax(float)+gather", timed(f_ls, args.reps, dev), nbytes, extra_memory(f_ls, dev)))
        rows.append(("eager cross_entropy (bf16)", timed(f_ce, args.reps, dev), nbytes, extra_memory(f_ce, dev)))
        rows.append(("compile log_softmax+gather", timed(lambda: c_ls(x, y), args.reps, dev), nbytes,
                     extra_memory(lambda: c_ls(x, y), dev)))
        rows.append(("compile cross_entropy", timed(lambda: c_ce(x, y), args.reps, dev), nbytes,
                     extra_memory(lambda: c_ce(x, y), dev)))
        # GSsPO-like loss forward + backward: trajectories of 512 tokens,
        # 32 environment tokens then 4 turns of 96 policy tokens.
        pos = torch.arange(n, device=dev)
        p = pos % 512
        in_turn = (p >= 32) & (((p - 32) % 128) < 96)
        sub = torch.where(in_turn, (pos // 512) * 4 + (p - 32) // 128, torch.full_like(pos, -1))
        nsub = int(sub.max().item()) + 1
        adv_traj = torch.randn((n + 511) // 512, device=dev) * 0.25
        adv_sub = adv_traj.repeat_interleave(4)[:nsub]
        with torch.no_grad():
            old = lp_cross_entropy(x, y).float() + 0.01 * torch.randn(n, device=dev)
        xl = x.detach().requires_grad_(True)

        def fb(loss_fn):
            def run():
                xl.grad = None
                loss_fn(xl, y, old, sub, nsub, adv_sub).backward()
            return run

        def measured(run):
            # The gradient buffer is an output: free the previous one first so
            # the peak counts the work's temporaries plus that one buffer.
            xl.grad = None
            return extra_memory(run, dev)

        ms = timed(fb(gsspo_loss), args.reps, dev)
        rows.append(("eager GSsPO-like loss fwd+bwd", ms, 3 * nbytes, measured(fb(gsspo_loss))))
        cg = torch.compile(gsspo_loss)
        ms = timed(fb(cg), args.reps, dev)
        rows.append(("compile GSsPO-like loss fwd+bwd", ms, 3 * nbytes, measured(fb(cg))))
        del xl
        print(f"\n### N = {n}, V = {v} bf16 — copy bandwidth {copy_gbs:.0f} GB/s (read + write)\n")
        print("| op | time (ms) | effective GB/s | % of copy | extra memory |")
        print("| --- | ---: | ---: | ---: | ---: |")
        for name, ms, b, extra in rows:
            gbs = b / (ms * 1e-3) / 1e9
            mem = "n/a" if extra is None else f"{extra / 1e6:.1f} MB"
            print(f"| {name} | {ms:.3f} | {gbs:.0f} | {100 * gbs / copy_gbs:.0f}% | {mem} |")
        del x
        if dev.type == "cuda":
            torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
