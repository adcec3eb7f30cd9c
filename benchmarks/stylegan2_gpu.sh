#!/bin/sh
# StyleGAN2 GPU check (a few minutes on one GPU, well under 5): config F 256 px size/latency table on
# CUDA, then each recovery method's step time vs a plain StyleGAN2 step (float32 and bf16), then the
# small CPU step section. Writes stylegan2_gpu.json into $OUT (else the repository root). Needs a CUDA GPU.
set -e
cd "$(dirname "$0")/.."
PY=${PYTHON:-$(command -v python3 || command -v python)}  # python3 where no plain python is installed
if ! "$PY" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)"; then
    echo "stylegan2_gpu.sh: no CUDA GPU visible to torch here; run it on a machine with one" >&2
    exit 2
fi
exec env PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" "$PY" benchmarks/stylegan2.py --device cuda --repeats 2 \
    --json "${OUT:-.}/stylegan2_gpu.json" "$@"
