#!/bin/sh
# The GPU benchmark in one command, run from anywhere in the repository:
#
#   bash bench/gpu/run.sh OUT [--device cpu] [--quick] [--tiny] [--deadline SECONDS]
#
# With gpu-pack/ (npm run bench:gpu:pack, brought over load folder by load folder; BENCH_GPU_PACK
# names another folder): joins and
# unpacks it (bench/gpu/unpack.py, Python only) and runs the packed Node; without it, the Node on
# PATH runs the sources (npm run bench:gpu). For CUDA, `cnnc doctor` finds the CUDA and cuDNN
# libraries (pip wheels included) and its folders go on LD_LIBRARY_PATH; its report is kept in OUT.
# TF32 is turned off for onnxruntime with NVIDIA_TF32_OVERRIDE=0 (onnxruntime-node cannot set the
# CUDA provider's use_tf32); bench/torch_gpu.py turns it off for PyTorch. OUT gets gpu-bench.json
# and gpu-bench.md (written after every phase).
set -eu
cd "$(dirname "$0")/../.."
out=${1:?usage: bash bench/gpu/run.sh OUT [--device cpu] [--quick] [--tiny] [--deadline SECONDS]}
shift
mkdir -p "$out"

device=cuda
prev=
for a in "$@"; do
  if [ "$prev" = --device ]; then device=$a; fi
  prev=$a
done

pack=${BENCH_GPU_PACK:-gpu-pack}
if [ -d "$pack" ] && [ -z "${BENCH_FROM_SOURCE:-}" ]; then
  run=$(python3 bench/gpu/unpack.py "$pack")
  BENCH_PACK_MANIFEST=$(ls "$pack"/load-*/manifest.json | head -n 1)
  export BENCH_PACK_MANIFEST
  node="$run/node"
  cnnc="$run/app/bin/cnnc.js"
  set -- "$run/app/bench/bench-gpu.js" "$@"
else
  node=node
  cnnc=bin/cnnc.js
  set -- --import tsx bench/bench-gpu.ts "$@"
fi
"$node" --version > /dev/null || { echo "run.sh: $node does not run here" >&2; exit 1; }

if [ "$device" = cuda ]; then
  if ! "$node" "$cnnc" doctor > "$out/doctor.txt" 2>&1; then
    cat "$out/doctor.txt" >&2
    echo "run.sh: cnnc doctor says --device cuda cannot run here (its report is above and in $out/doctor.txt)" >&2
    exit 1
  fi
  libs=$("$node" "$cnnc" doctor --json | python3 -c 'import json, sys; print(":".join(json.load(sys.stdin)["addToLibraryPath"]))')
  if [ -n "$libs" ]; then
    LD_LIBRARY_PATH="${LD_LIBRARY_PATH:+$LD_LIBRARY_PATH:}$libs"
    export LD_LIBRARY_PATH
  fi
fi

# The first Python that has PyTorch: python3 on the GPU machine, Debian's where python3 is another one.
if [ -z "${BENCH_PYTHON:-}" ]; then
  for p in python3 /usr/bin/python3; do
    if "$p" -c 'import torch' 2> /dev/null; then BENCH_PYTHON=$p; break; fi
  done
fi
NVIDIA_TF32_OVERRIDE=0
BENCH_PYTHON=${BENCH_PYTHON:-python3}
export NVIDIA_TF32_OVERRIDE BENCH_PYTHON
exec "$node" "$@" --out "$out"
