#!/usr/bin/env bash
# Builds the flowrl-kernels test and benchmark executables here (release),
# strips them and copies them into .gpu-bin/kernels/ (git-ignored; about
# 10 MB), for a GPU machine that has the NVIDIA driver and CUDA but no Rust
# toolchain.
#
# Then, on the GPU machine, from the repository root (with .gpu-bin/kernels
# carried):
#   .gpu-bin/kernels/run-gpu.sh    # tests, bench table, PyTorch baselines → $OUT (or ./gpu-out)
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
    if m["target"]["name"] not in ("gpu", "nvrtc", "cpu", "kernels", "flowrl-kernels-bench", "flowrl_kernels"):
        continue
    kind = m["target"]["kind"][0]
    name = m["target"]["name"] if kind != "lib" else "flowrl_kernels-unit"
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
# Runs on the GPU machine from the repository root.
set -uo pipefail
cd "$(dirname "$0")/../.."
# cudarc loads libcuda, libnvrtc and libcublas at run time by their usual names.
export LD_LIBRARY_PATH="/usr/local/cuda/lib64:/usr/local/cuda/targets/x86_64-linux/lib:${LD_LIBRARY_PATH:-}"
out=${OUT:-gpu-out}
mkdir -p "$out"
nvidia-smi > "$out/nvidia-smi.txt" 2>&1
bin=.gpu-bin/kernels
for t in $bin/test-gpu $bin/test-nvrtc $bin/test-cpu; do
  "$t" --nocapture > "$out/$(basename "$t").log" 2>&1; echo "$(basename "$t"): exit $?"
  tail -3 "$out/$(basename "$t").log"
done
$bin/bin-flowrl-kernels-bench --reps 30 > "$out/bench.md" 2>&1; echo "bench: exit $?"
python3 $bin/bench_kernels_torch.py > "$out/torch.md" 2>&1; echo "torch: exit $?"
cat "$out/bench.md" "$out/torch.md"
SH
chmod +x "$dest/run-gpu.sh"
ls -la "$dest"
du -sh "$dest"
