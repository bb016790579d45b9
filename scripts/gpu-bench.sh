#!/usr/bin/env bash
# Builds the flowrl-kernels test and benchmark executables here (release),
# strips them and copies them into .gpu-bin/kernels/ (git-ignored; about
# 10 MB), for a GPU machine that has the NVIDIA driver and CUDA but no Rust
# toolchain.
#
# Then, on the GPU machine, from the repository root (with .gpu-bin/kernels
# carried):
#   .gpu-bin/kernels/run-gpu.sh [all|tests|bench|torch]   # → $OUT (or ./gpu-out)
set -euo pipefail
cd "$(dirname "$0")/.."
dest=.gpu-bin/kernels
rm -rf "$dest"
mkdir -p "$dest"
json=$(mktemp)
cargo test -p flowrl-kernels --release --no-run --message-format=json > "$json"
cargo build -p flowrl-kernels --release --bin flowrl-kernels-bench --benches --message-format=json >> "$json"
python3 - "$json" "$dest" <<'PY'
import json, os, shutil, subprocess, sys
seen = set()
for line in open(sys.argv[1]):
    try:
        m = json.loads(line)
    except ValueError:
        continue
    if m.get("reason") != "compiler-artifact" or not m.get("executable"):
        continue
    kind = m["target"]["kind"][0]
    name = m["target"]["name"]
    # The integration tests, the criterion bench and the bench binary itself
    # (not the bin's unit-test harness, which `cargo test --no-run` also
    # builds under the same target name).
    wanted = {"test": ("gpu", "nvrtc", "cpu"), "bench": ("kernels",), "bin": ("flowrl-kernels-bench",)}
    if name not in wanted.get(kind, ()) or (kind == "bin" and m["profile"]["test"]):
        continue
    dest = os.path.join(sys.argv[2], f"{kind}-{name}")
    if dest in seen:
        continue
    seen.add(dest)
    shutil.copy2(m["executable"], dest)
    if shutil.which("strip"):
        subprocess.run(["strip", dest], check=False)
    print(dest)
PY
rm -f "$json"
cp scripts/bench_kernels_torch.py "$dest/"
cat > "$dest/run-gpu.sh" <<'SH'
#!/usr/bin/env bash
# Runs on the GPU machine from the repository root:
#   .gpu-bin/kernels/run-gpu.sh [all|tests|bench|torch]
# Each phase has its own time limit (tests 150 s, bench 200 s, torch 2 × 110 s),
# so `all` stays under a 10-minute command; a phase that is cut off keeps what
# it wrote so far in $OUT (or ./gpu-out).
set -uo pipefail
cd "$(dirname "$0")/../.."
# cudarc loads libcuda, libnvrtc and libcublas at run time by their usual names.
export LD_LIBRARY_PATH="/usr/local/cuda/lib64:/usr/local/cuda/targets/x86_64-linux/lib:${LD_LIBRARY_PATH:-}"
out=${OUT:-gpu-out}
mkdir -p "$out"
bin=.gpu-bin/kernels
phase=${1:-all}
case "$phase" in all|tests|bench|torch) ;; *) echo "usage: $0 [all|tests|bench|torch]" >&2; exit 2 ;; esac
nvidia-smi > "$out/nvidia-smi.txt" 2>&1
if [ "$phase" = all ] || [ "$phase" = tests ]; then
  for t in gpu:100 nvrtc:20 cpu:30; do
    name=test-${t%%:*}
    timeout "${t##*:}" "$bin/$name" --nocapture > "$out/$name.log" 2>&1; echo "$name: exit $?"
    grep -E "^test result|FAILED|panicked" "$out/$name.log" | head -5
  done
fi
if [ "$phase" = all ] || [ "$phase" = bench ]; then
  timeout 200 $bin/bin-flowrl-kernels-bench --reps 30 > "$out/bench.md" 2>&1; echo "bench: exit $?"
  cat "$out/bench.md"
fi
if [ "$phase" = all ] || [ "$phase" = torch ]; then
  : > "$out/torch.md"
  for v in 151936 32000; do
    timeout 110 python3 -u $bin/bench_kernels_torch.py --vocab $v >> "$out/torch.md" 2>&1; echo "torch V=$v: exit $?"
  done
  cat "$out/torch.md"
fi
SH
chmod +x "$dest/run-gpu.sh"
ls -la "$dest"
du -sh "$dest"
