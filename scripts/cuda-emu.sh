#!/usr/bin/env bash
# The emulated CUDA driver of crates/kernels/emu: runs flowrl's CUDA backend
# (driver, NVRTC and cuBLAS calls, the kernels themselves) on the host CPU.
#
#   scripts/cuda-emu.sh --build DIR   build DIR/lib/{libcuda,libnvrtc,libcublas}.so and exit
#                                     (exit status 3: no C++ compiler)
#   scripts/cuda-emu.sh [COMMAND...]  build into target/cuda-emu, then run COMMAND with the
#                                     emulated libraries first on LD_LIBRARY_PATH
#                                     (default: the flowrl-kernels GPU tests)
#
# With AddressSanitizer (preload its runtime into the test executable only,
# not into cargo):
#   FLOWRL_CUDA_EMU_SANITIZE=address ASAN_OPTIONS=detect_leaks=0 \
#     LD_PRELOAD=$(c++ -print-file-name=libasan.so) scripts/cuda-emu.sh target/debug/deps/gpu-<hash>
#
# `cargo test --workspace` already runs the GPU tests this way when there is
# no GPU (tests/gpu.rs, suite_passes_on_the_emulated_driver).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
emu="$root/crates/kernels/emu"

build() {
  local dir=$1
  local cxx=${CXX:-c++}
  if ! command -v "$cxx" >/dev/null 2>&1; then
    echo "cuda-emu: no C++ compiler ($cxx)" >&2
    exit 3
  fi
  mkdir -p "$dir/lib"
  local so="$dir/lib/libcuda.so"
  # Rebuild only when the driver's sources changed (cuda_emu.h is read by the
  # driver at module load, not compiled into it).
  if [ ! -e "$so" ] || [ "$emu/fake_cuda.cpp" -nt "$so" ] || [ "$emu/emu_half.h" -nt "$so" ]; then
    "$cxx" -std=c++17 -O2 -fPIC -shared -Wall -Wextra -Werror \
      -DFLOWRL_CUDA_EMU_DIR="\"$emu\"" "$emu/fake_cuda.cpp" -o "$so.tmp" -ldl -lpthread
    mv "$so.tmp" "$so"
  fi
  # One library under the three names: symbolic links, so the loader maps a
  # single instance and cuBLAS sees the driver's allocations.
  ln -sf libcuda.so "$dir/lib/libnvrtc.so"
  ln -sf libcuda.so "$dir/lib/libcublas.so"
  # The AddressSanitizer runtime, when the compiler has one: a process that
  # preloads it may set FLOWRL_CUDA_EMU_SANITIZE=address to have the kernels
  # checked for out-of-range accesses.
  local asan
  asan=$("$cxx" -print-file-name=libasan.so 2>/dev/null || true)
  if [ -n "$asan" ] && [ "${asan#/}" != "$asan" ] && [ -e "$asan" ]; then
    echo "$asan" > "$dir/asan-runtime"
  else
    rm -f "$dir/asan-runtime"
  fi
}

if [ "${1:-}" = "--build" ]; then
  build "${2:?--build needs a folder}"
  exit 0
fi

dir="$root/target/cuda-emu"
build "$dir"
export LD_LIBRARY_PATH="$dir/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
# Real PTX must never be read by the emulated driver, nor its output cached as PTX.
export FLOWRL_KERNEL_CACHE=off
export FLOWRL_CUDA_EMU_CACHE="$dir/modules"
if [ $# -eq 0 ]; then
  set -- cargo test -p flowrl-kernels --test gpu -- --nocapture
fi
cd "$root"
exec "$@"
